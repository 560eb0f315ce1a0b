//! isolab-harness
