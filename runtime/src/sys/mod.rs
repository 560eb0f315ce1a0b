//! Every raw syscall of this crate, each behind a small safe function.
//! `process.rs` (clone3, setdomainname, ...) belongs to the core; `mount.rs` to rootfs.

pub mod mount;
pub mod net;
pub mod process;
pub mod sched;
pub mod threads;
