//! isolab-harness: boots throwaway QEMU VMs on a matrix of real distribution kernels, with the
//! `isolab-agent` as PID 1, and talks to it over a typed JSON-lines protocol.
//!
//! **The matrix** (`isolab matrix`; the binary parses the CLI, calls [`matrix`] and renders),
//! one pipeline, Cell → VM → records:
//!
//! 1. [`matrix::plan`]: the [`Cell`](matrix::Cell)s (kernel × cgroup mode × base config), the
//!    shard of them this run takes, the work items (a cell and a group of assertions).
//! 2. [`matrix::prepare`]: each cell's kernel from [`kernels`] (the pinned matrix, fetched
//!    through a private apt configuration, verified, its config features read), checked, and
//!    its image from [`image`] (an initramfs: cpio writer, the agent, the runtime under test
//!    with its shared libraries, kernel modules), through [`lab`] (which puts kernel, image
//!    and QEMU configuration together).
//! 3. [`matrix::MatrixRun`]: the work items on parallel VMs; for each, [`launch`] hands back a
//!    VM for the cell, booted fresh under [`vm`] (QEMU arguments, the [`vm::watchdog`] as a pure
//!    state machine, the KVM probe) or restored from the cell's [`snapshot`]; a VM that broke is
//!    started once more ([`matrix::cell_run`]).
//! 4. In the guest, the [`agent`] runs the [`catalogue`] against the runtime and streams
//!    [`protocol`] events; [`matrix::records`] turns each VM's report into one record per
//!    expected assertion ([`report::Record::new`], the only constructor), plus each cell's
//!    [`kernel_findings`] from the console ([`kernel_log`]).
//! 5. [`report`]: table, results.json, JUnit, KTAP, HTML, summary.md, annotations, KCIDB.
//!
//! **On this host** (`isolab check`, [`check`]): the same catalogue and outputs, no VM.
//!
//! **Around them**: [`bench`](mod@bench) (start latency and density side by side against runc, crun and
//! the floor program, on this host or, with `--vm`, in VMs of the matrix), [`migrate`] (CRIU between two guests), [`cache`] (where it all lives).
//! Leaves everyone may use: [`outcome`] (an assertion's outcome and advisory) and [`sys`] (the
//! guest side's raw syscalls). No two top-level modules import each other.
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
