//! isolab-runtime: the library behind `isorun`, a small, fast OCI runtime.
//!
//! **The flow that makes a container** is one pipeline of stages, shared by `create`, `run`
//! and `restore` (`exec` shares its last two), each a type in [`container`]:
//!
//! 1. [`container::Bundle::load`] (`container/bundle.rs`): the bundle directory resolved,
//!    `config.json` parsed and validated by [`config::parse_config`] (pure; every error names
//!    its JSON path) into a [`config::ValidConfig`], the rootfs resolved.
//! 2. [`container::Plan::new`] (`container/plan.rs`, pure): from the `ValidConfig` alone,
//!    what will be made: the namespaces to create and join with their id maps and time
//!    offsets ([`container::plan::NamespacePlan`]), the cgroup path, whether the rootfs is
//!    bound in the caller's mount namespace, the devices to move in.
//! 3. The record, `container::record::Recording` (`container/record.rs`): the state record
//!    ([`state`]) written `creating` under the id's lock *before* anything is made, so a flow
//!    killed at any instant leaves a record `delete --force` undoes; the init's pid added as
//!    soon as it exists; completed once the container is whole.
//! 4. `container::spawn::Spawned` (`container/spawn.rs`): what exists: the cgroup
//!    ([`cgroups`]), the rootfs bind and the init, each undone on drop until kept; also the
//!    seccomp filter ([`seccomp`], compiled or from its cache) and listener a process gets,
//!    the ready handshake and the pid file.
//!
//! **Create** (`container/create.rs`, `isorun create`/`run`; `container/run.rs` adds start
//! and the foreground): after the record, the exec fifo, the cgroup and the rootfs bind are
//! made; clone3 of the init ([`sys::process::clone_into`], single-threaded by check); the
//! parent and the init (`container/init`) talk over one socketpair (`channel`): the parent
//! places the init in its cgroup, writes its id maps, runs createRuntime and prestart
//! [`hooks`]; the init enters its namespaces, sets up the filesystem ([`rootfs`]: mounts,
//! devices, pivot_root, masked and read-only paths), credentials, rlimits, capabilities and
//! [`lsm`] labels, installs the seccomp filter last, and waits on the exec fifo until `start`.
//!
//! **Restore** ([`checkpoint`], `isorun restore`): the same stages, with CRIU's restored
//! process as the init (`criu restore` on the rootfs bound in the state directory).
//!
//! **Exec** (`container/exec.rs`, `isorun exec`): from the record, joins the init's
//! namespaces, cgroup and root, then runs the same credential, capability and seccomp steps
//! of `init`; it shares the spawn stage (seccomp, child guard, handshake, pid file).
//!
//! **The rest**: `start`/`kill`/`delete`/`state`/`list` and `pause`/`resume`/`update`/
//! `events`/`ps` operate on the recorded state; [`checkpoint`] drives CRIU's command line;
//! [`net`] is the optional bridge networking (`isorun net`, usable as OCI hooks);
//! [`features`] answers `isorun features`. Every raw syscall lives in [`sys`].
//!
//! **Rootless** ([`rootless`], applied by `container/rootless.rs`): run by an unprivileged
//! user (or as root of a user namespace, as rootless podman runs its runtime), the default
//! state root, who writes the id maps (this process, or newuidmap/newgidmap) and whether the
//! container gets a cgroup are decided before the record is written; a config asking for
//! what the user cannot make is refused naming the field.
#![warn(missing_docs)]
#![warn(clippy::too_many_lines)]

pub mod cgroups;
mod channel;
pub mod checkpoint;
pub mod config;
pub mod container;
pub mod features;
pub mod hooks;
pub mod lsm;
pub mod net;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod state;
pub mod sys;
