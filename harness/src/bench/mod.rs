//! `isolab bench`: the same workload against several OCI runtimes in one run, interleaved,
//! with warm-up — start latency ([`startup`]), density ([`density`]) — and the VM boot
//! samples of `isolab bench boot`, with the floor program ([`floor`]) as a startup runtime and
//! bundle variants ([`variant`]: default, docker's seccomp and capabilities, a user namespace)
//! for startup and density; [`stats`] summarises, [`report`] prints the table and
//! writes `bench.json`, [`plot`] draws the SVG plots. With `--vm` the startup bench runs in
//! throwaway VMs of the matrix ([`guest`]: the same code, packed into the guest image), one
//! table across the cells and a baseline comparison in [`cells`]. Every container a bench makes is
//! registered with [`guard`], which deletes it on every exit path, SIGINT/SIGTERM included.

pub mod build;
pub mod cells;
pub mod density;
pub mod floor;
pub mod guard;
pub mod guest;
pub mod interleave;
pub mod plot;
pub mod report;
pub mod startup;
pub mod state_dir;
pub mod stats;
pub mod variant;
mod workspace;

use std::path::PathBuf;

pub use variant::Variant;
pub use workspace::{resolve_runtimes, Runtime, Workspace};

/// Errors of the bench driver, each naming the command or path that failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file or directory could not be read or written.
    #[error("{what} {path}: {error}")]
    Io {
        /// What was attempted (`write config.json`, ...).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error (shown in the message, so not a `source`).
        error: std::io::Error,
    },
    /// A command could not be started.
    #[error("spawn {cmd}: {error}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The error (shown in the message, so not a `source`).
        error: std::io::Error,
    },
    /// A command ran and failed.
    #[error("{cmd}: {status}: {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: String,
        /// The last line of its stderr (or stdout).
        stderr: String,
    },
    /// The generated config.json is not what a runtime's `spec` should print.
    #[error("config {path}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An SVG plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// The plotting error.
        message: String,
    },
    /// A runtime is a debug build (or does not say) and the bench was not told to allow it.
    #[error("{runtime} {}: {reason}", path.display())]
    DebugBuild {
        /// Its display name.
        runtime: String,
        /// The binary.
        path: PathBuf,
        /// Why, and how to go on.
        reason: String,
    },
    /// SIGINT/SIGTERM arrived: the guard is cleaning up.
    #[error("interrupted")]
    Interrupted,
}

fn io_err(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BenchError {
    let path = path.into();
    move |error| BenchError::Io { what, path, error }
}
