//! Every raw syscall of this crate, each behind a small safe function.
//! `process.rs` (clone3, setdomainname, ...) belongs to the core; `mount.rs` to rootfs;
//! `mountinfo.rs` parses `/proc/self/mountinfo` for rootfs and cgroups.

pub mod mount;
pub(crate) mod mountinfo;
pub mod net;
pub mod process;
pub mod sched;
pub mod threads;
