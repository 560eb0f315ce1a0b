//! What an assertion's result says, shared by the catalogue that decides it, the protocol that
//! carries it and the reports that show it (a leaf: it imports nothing of the crate).

use serde::{Deserialize, Serialize};

/// Outcome of one assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// The property holds.
    Pass,
    /// The property does not hold.
    Fail,
    /// The kernel or configuration cannot support the check.
    Skip,
    /// The check itself could not run.
    Error,
}

/// A CVE (or a technique's name) and the URL of its advisory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advisory {
    /// `CVE-2024-21626`, or the technique (`shocker (open_by_handle_at)`).
    pub id: String,
    /// The advisory.
    pub url: String,
}
