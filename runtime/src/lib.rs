//! isolab-runtime: the library behind `isorun`, a small, fast OCI runtime.
//!
//! **Create** (`isorun create`/`run`, [`container`]): `config.json` → [`config::parse_config`]
//! (pure: parse and validate; every error names its JSON path) → the namespace, id-map and
//! time-offset plan (`container::plan`, pure) → the seccomp filter compiled or taken from
//! its cache ([`seccomp`]) → the state record written before anything is made ([`state`],
//! under a per-id lock) → the cgroup ([`cgroups`]) → clone3 of the init
//! ([`sys::process::clone_into`], single-threaded by check) → the parent and the init talk
//! over one socketpair (`channel`): the parent writes id maps, runs createRuntime and
//! prestart [`hooks`], the init (`init`) enters its namespaces, sets up the filesystem
//! ([`rootfs`]: mounts, devices, pivot_root, masked and read-only paths), credentials,
//! rlimits, capabilities and [`lsm`] labels, installs the seccomp filter last, and waits on
//! the exec fifo until `start`.
//!
//! **Exec** (`isorun exec`, `container::exec`): joins the init's namespaces, cgroup and
//! root, then runs the same credential, capability and seccomp steps of `init`.
//!
//! **The rest**: `start`/`kill`/`delete`/`state`/`list` and `pause`/`resume`/`update`/
//! `events`/`ps` operate on the recorded state; [`checkpoint`] drives CRIU's command line;
//! [`net`] is the optional bridge networking (`isorun net`, usable as OCI hooks);
//! [`features`] answers `isorun features`. Every raw syscall lives in [`sys`].
#![warn(missing_docs)]

pub mod cgroups;
mod channel;
pub mod checkpoint;
pub mod config;
pub mod container;
pub mod features;
pub mod hooks;
mod init;
pub mod lsm;
pub mod net;
pub mod rootfs;
pub mod seccomp;
pub mod state;
pub mod sys;
