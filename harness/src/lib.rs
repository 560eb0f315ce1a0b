//! isolab-harness: boots throwaway QEMU VMs on a matrix of real distribution kernels, with the
//! `isolab-agent` as PID 1, and talks to it over a typed JSON-lines protocol.
//!
//! Host side (feature `host`, on by default): [`kernels`] (the pinned matrix, fetching through
//! a private apt configuration, config features), [`image`] (cpio writer, initramfs builder,
//! ELF dependency resolution, kernel modules), [`vm`] (QEMU arguments, running a VM under a
//! watchdog, acceleration probe). Both sides: [`protocol`]. Guest side: [`agent`].
#![warn(missing_docs)]

pub mod agent;
pub mod catalogue;
pub mod kernel_log;
pub mod protocol;
pub mod report;

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
pub mod matrix;
#[cfg(feature = "host")]
pub mod migrate;
#[cfg(feature = "host")]
pub mod snapshot;
#[cfg(feature = "host")]
pub mod vm;
