//! Assertions of this area (to be written).

use super::Assertion;

/// This area's assertions.
pub fn assertions() -> Vec<Assertion> {
    Vec::new()
}
