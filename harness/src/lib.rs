//! isolab-harness: boots throwaway QEMU VMs on a matrix of real distribution kernels, with the
//! `isolab-agent` as PID 1, and talks to it over a typed JSON-lines protocol.
//!
//! **The matrix** (`isolab matrix`, [`matrix`]): [`kernels`] (the pinned matrix, fetched
//! through a private apt configuration, verified, its config features read) → [`image`]
//! (an initramfs: cpio writer, the agent, the runtime under test with its shared libraries,
//! kernel modules) → [`lab`] puts them together and hands back a VM for a cell, booted under
//! [`vm`] (QEMU arguments, the watchdog, the KVM probe) or restored from a [`snapshot`] →
//! the guest's [`agent`] runs the [`catalogue`] against the runtime and streams [`protocol`]
//! events → records, plus [`kernel_findings`] from the console ([`kernel_log`]) → [`report`]
//! (table, results.json, JUnit, KTAP, HTML, summary.md, annotations, KCIDB).
//!
//! **On this host** (`isolab check`, [`check`]): the same catalogue and outputs, no VM.
//!
//! **Around them**: [`bench`](mod@bench) (start latency and density side by side against runc, crun and
//! the floor program), [`migrate`] (CRIU between two guests), [`cache`] (where it all lives).
//! Host-side modules need the `host` feature (on by default); the agent and catalogue build
//! without it.
#![warn(missing_docs)]
#![warn(clippy::too_many_lines)]

pub mod agent;
pub mod catalogue;
pub mod kernel_log;
pub mod outcome;
pub mod protocol;
pub mod report;
pub mod sys;

#[cfg(feature = "host")]
pub mod bench;
#[cfg(feature = "host")]
pub mod cache;
#[cfg(feature = "host")]
pub mod check;
#[cfg(feature = "host")]
pub mod image;
#[cfg(feature = "host")]
pub mod kernel_findings;
#[cfg(feature = "host")]
pub mod kernels;
#[cfg(feature = "host")]
pub mod lab;
#[cfg(feature = "host")]
pub mod launch;
#[cfg(feature = "host")]
pub mod matrix;
#[cfg(feature = "host")]
pub mod migrate;
#[cfg(feature = "host")]
pub mod snapshot;
#[cfg(feature = "host")]
pub mod vm;
