//! isolab-runtime: the library behind `isorun`, a small, fast OCI runtime.
//!
//! Data flow: `config.json` → [`config::parse_config`] (pure: parse + validate, every error
//! names its JSON path) → [`container`] (plan, clone3 into namespaces, parent/child sync) →
//! child: [`rootfs`] (mounts, pivot_root, devices, masked/readonly paths) → [`process`]
//! (user, rlimits, capabilities, exec fifo, execve). State lives under `--root`
//! ([`state`]). Every raw syscall lives in [`sys`].
#![warn(missing_docs)]

pub mod cgroups;
pub mod channel;
pub mod checkpoint;
pub mod config;
pub mod container;
pub mod features;
pub mod hooks;
pub mod init;
pub mod lsm;
pub mod net;
pub mod rootfs;
pub mod seccomp;
pub mod state;
pub mod sys;
