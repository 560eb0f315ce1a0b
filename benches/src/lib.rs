//! isolab-benches
