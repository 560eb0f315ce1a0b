//! The command line, runc-compatible: the same subcommands, flags and defaults, so podman
//! `--runtime`, containerd and OCI test suites can drive isorun.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// `isorun --version`: the version, then which build this binary is (`build: debug` or
/// `build: release`), so that a benchmark can tell (`isolab bench` refuses a debug one).
pub const VERSION: &str = if cfg!(debug_assertions) {
    concat!(env!("CARGO_PKG_VERSION"), "\nbuild: debug")
} else {
    concat!(env!("CARGO_PKG_VERSION"), "\nbuild: release")
};

/// isorun: a small, fast OCI runtime.
#[derive(Debug, Parser)]
#[command(name = "isorun", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// Root directory for container state (tmpfs recommended) [default: /run/isorun as
    /// root; $XDG_RUNTIME_DIR/isorun for another user, else /run/isorun if it can write it].
    #[arg(long, global = true, env = "ISORUN_ROOT")]
    pub root: Option<PathBuf>,
    /// Write logs to this file instead of stderr.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level.
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Warn)]
    pub log_level: LogLevel,
    /// Debug logging (same as --log-level debug).
    #[arg(long, global = true)]
    pub debug: bool,
    /// The systemd cgroup driver: not supported (an error for create, run, restore and
    /// update); other commands use the cgroup recorded at create.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Log levels.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[allow(missing_docs)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Output formats of `list`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ListFormat {
    /// Aligned columns.
    Table,
    /// A JSON array of states.
    Json,
}

// Options shared by `create` and `run`.
// (Not a doc comment: see `Command`.)
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The container id.
    pub id: String,
    /// Path to the bundle (the directory holding config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// File to write the container init's pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to receive the pty master on (process.terminal: true).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Do not use pivot_root (MS_MOVE + chroot; for an initramfs root).
    #[arg(long)]
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of joining a new one named `_ses.<id>`.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N additional fds (3..3+N) to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
}

/// The subcommands. Each is built only when it is the one given (`defer`): building the
/// whole tree cost every command ~0.15 ms (page faults and copies of clap's structures).
/// The `Args` structs they flatten (and `net`'s subcommand enum) carry plain comments, not
/// doc comments: clap would take a doc comment as the help text of a lazily built
/// subcommand, over the subcommand's own.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Write a default config.json into the bundle.
    Spec {
        /// A config for running without root (user namespace mapping the current user).
        #[arg(long)]
        rootless: bool,
        /// Where to write config.json.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Create a container; its process waits until `start`.
    Create(CreateArgs),
    /// Bridge networking: `net up` / `net down`, directly or as createRuntime/poststop hooks.
    Net(crate::net::NetArgs),
    /// Start the process of a created container.
    Start {
        /// The container id.
        id: String,
    },
    /// Create and start a container, wait for it and delete it (unless --detach).
    Run {
        /// Common options.
        #[command(flatten)]
        args: CreateArgs,
        /// Do not wait: leave the container running.
        #[arg(short, long)]
        detach: bool,
    },
    /// Print the state of a container as JSON.
    State {
        /// The container id.
        id: String,
    },
    /// Send a signal to the container's init (or all its processes).
    Kill {
        /// The container id.
        id: String,
        /// Signal name or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Signal every process of the container.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a stopped container (--force: kill it first).
    Delete {
        /// The container id.
        id: String,
        /// Kill the container if it is still running.
        #[arg(short, long)]
        force: bool,
    },
    /// List containers.
    #[command(alias = "ps-all")]
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print the OCI features JSON of this runtime.
    Features,
    /// Run a new process in a running container (joins its namespaces, cgroup and root).
    Exec(ExecArgs),
    /// Freeze every process of a running container.
    Pause {
        /// The container id.
        id: String,
    },
    /// Thaw a paused container.
    Resume {
        /// The container id.
        id: String,
    },
    /// Print cgroup statistics: one snapshot with --stats, else one line every --interval.
    Events {
        /// The container id.
        id: String,
        /// Print one snapshot and exit.
        #[arg(long)]
        stats: bool,
        /// Seconds between snapshots in streaming mode.
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Change the resources of a running container.
    Update(UpdateArgs),
    /// List the processes of a container.
    Ps {
        /// The container id.
        id: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Checkpoint a running container with CRIU (it stops unless --leave-running).
    Checkpoint(CheckpointArgs),
    /// Restore a container from a CRIU checkpoint.
    Restore(RestoreArgs),
}

// Options of `checkpoint`, as runc's.
// (Not a doc comment: see `Command`.)
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// The container id.
    pub id: String,
    /// Directory for the CRIU images.
    #[arg(long, default_value = "checkpoint")]
    pub image_path: PathBuf,
    /// Directory for CRIU's logs (default: the image directory).
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    /// Keep the container running after the checkpoint.
    #[arg(long)]
    pub leave_running: bool,
    /// Checkpoint established TCP connections.
    #[arg(long)]
    pub tcp_established: bool,
    /// Checkpoint file locks.
    #[arg(long)]
    pub file_locks: bool,
}

// Options of `restore`, as runc's.
// (Not a doc comment: see `Command`.)
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The container id.
    pub id: String,
    /// Directory of the CRIU images.
    #[arg(long, default_value = "checkpoint")]
    pub image_path: PathBuf,
    /// Directory for CRIU's logs (default: the image directory).
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    /// The bundle (its config.json must be the checkpointed one).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Return once restored.
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the restored init's pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Restore established TCP connections.
    #[arg(long)]
    pub tcp_established: bool,
    /// Restore file locks.
    #[arg(long)]
    pub file_locks: bool,
}

// Options of `exec`, as runc's.
// (Not a doc comment: see `Command`.)
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The container id.
    pub id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A process.json (runtime-spec `process` object) to run instead of the command line.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pty.
    #[arg(short, long)]
    pub tty: bool,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment variables (KEY=VALUE).
    #[arg(short, long)]
    pub env: Vec<String>,
    /// `uid[:gid]` to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional group ids.
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Add a capability (bounding, effective, permitted).
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Do not wait for the process.
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the process's pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to receive the pty master on.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Pass N additional fds (3..3+N).
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    /// Allow exec in a paused container (runc 1.1).
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run the process in an existing sub-cgroup: `[<controller>[,<controller>]:]<path>`,
    /// repeatable (runc 1.1).
    #[arg(long)]
    pub cgroup: Vec<String>,
}

// Options of `update`, as runc's.
// (Not a doc comment: see `Command`.)
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The container id.
    pub id: String,
    /// A resources JSON file (runtime-spec `linux.resources`), `-` for stdin.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k/m/g suffix; -1 for none).
    #[arg(long)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Memory + swap limit.
    #[arg(long)]
    pub memory_swap: Option<String>,
    /// Maximum number of processes (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// CFS quota in microseconds (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_share: Option<u64>,
    /// CPUs allowed (e.g. 0-1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Block IO weight (10-1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The subcommands are built lazily (`defer`): a flattened struct's doc comment would
    /// then replace the subcommand's own help text, so those structs have none.
    #[test]
    fn subcommands_built_lazily_keep_their_own_help_text() {
        let mut cli = Cli::command();
        cli.build();
        for (name, about) in [
            ("create", "Create a container; its process waits until `start`"),
            ("run", "Create and start a container, wait for it and delete it (unless --detach)"),
            ("net", "Bridge networking: `net up` / `net down`, directly or as createRuntime/poststop hooks"),
            ("exec", "Run a new process in a running container (joins its namespaces, cgroup and root)"),
            ("update", "Change the resources of a running container"),
            ("checkpoint", "Checkpoint a running container with CRIU (it stops unless --leave-running)"),
            ("restore", "Restore a container from a CRIU checkpoint"),
        ] {
            let sub = cli.find_subcommand(name).unwrap_or_else(|| panic!("no subcommand {name}"));
            assert_eq!(sub.get_about().map(ToString::to_string).as_deref(), Some(about), "{name}");
            assert!(sub.get_arguments().count() > 0, "{name} was not built");
        }
    }
}
