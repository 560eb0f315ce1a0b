//! `isorun`: the OCI runtime's command line. All logic lives in the library; this file maps
//! subcommands onto it, sets up logging and turns errors into one line on stderr.
#![warn(clippy::too_many_lines)]

mod cli;
mod logging;
mod net;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{Cli, Command, CreateArgs, ExecArgs, ListFormat, UpdateArgs};
use isolab_runtime::checkpoint;
use isolab_runtime::container::{self, CreateOptions};
use isolab_runtime::rootless;
use isolab_runtime::state::StateStore;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli);
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = one_line(&e);
            tracing::error!("{msg}");
            let _ = writeln!(std::io::stderr(), "isorun: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause already quoted by its parent
/// (our error types embed their source in their message).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
    }
    msg.replace('\n', " ")
}

fn create_options(a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
    }
}

fn checkpoint_options(a: &cli::CheckpointArgs) -> checkpoint::CheckpointOptions {
    checkpoint::CheckpointOptions {
        image_path: a.image_path.clone(),
        work_path: a.work_path.clone(),
        leave_running: a.leave_running,
        tcp_established: a.tcp_established,
        file_locks: a.file_locks,
    }
}

fn restore_options(a: &cli::RestoreArgs) -> checkpoint::RestoreOptions {
    checkpoint::RestoreOptions {
        image_path: a.image_path.clone(),
        work_path: a.work_path.clone(),
        bundle: a.bundle.clone(),
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        tcp_established: a.tcp_established,
        file_locks: a.file_locks,
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    // The flag selects where a container's cgroup is made: refused where one is made, never
    // ignored; other commands use the cgroup path recorded at create.
    let makes_cgroup = matches!(
        cli.command,
        Command::Create(_) | Command::Run { .. } | Command::Restore(_) | Command::Update(_)
    );
    if cli.systemd_cgroup && makes_cgroup {
        bail!(
            "--systemd-cgroup: the systemd cgroup driver is not supported by isorun (it manages \
             cgroups through cgroupfs); run without --systemd-cgroup"
        );
    }
    let root = match (&cli.root, &cli.command) {
        (Some(root), _) => root.clone(),
        // Neither keeps state: no root to resolve (and no error for a user without one).
        (None, Command::Spec { .. } | Command::Features) => PathBuf::from(rootless::SYSTEM_STATE_ROOT),
        (None, _) => rootless::default_state_root()?,
    };
    let store = StateStore::new(&root);
    match cli.command {
        Command::Spec { rootless, bundle } => write_spec(&bundle, rootless)?,
        Command::Create(a) => {
            container::create(&store, &a.id, &create_options(&a))?;
        }
        Command::Start { id } => container::start(&store, &id)?,
        Command::Net(a) => net::run(&root, &store, a)?,
        Command::Run { args, detach } => {
            let code = container::run(&store, &args.id, &create_options(&args), detach)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::State { id } => {
            println!("{}", serde_json::to_string_pretty(&container::state(&store, &id)?)?);
        }
        Command::Kill { id, signal, all } => {
            container::kill(&store, &id, container::parse_signal(&signal)?, all)?;
        }
        Command::Delete { id, force } => container::delete(&store, &id, force)?,
        Command::List { format, quiet } => print_list(&container::list(&store)?, format, quiet)?,
        Command::Features => {
            println!("{}", serde_json::to_string_pretty(&isolab_runtime::features::features())?)
        }
        Command::Pause { id } => container::pause(&store, &id)?,
        Command::Resume { id } => container::resume(&store, &id)?,
        Command::Events { id, stats, interval } => events(&store, &id, stats, &interval)?,
        Command::Update(a) => container::update(&store, &a.id, &update_resources(&a)?)?,
        Command::Ps { id, format } => {
            let procs = container::ps(&store, &id)?;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string(&procs.iter().map(|p| p.pid).collect::<Vec<_>>())?);
            } else {
                println!("PID   CMD");
                for p in procs {
                    println!("{:<5} {}", p.pid, p.cmd);
                }
            }
        }
        Command::Exec(a) => {
            let code = container::exec(&store, &a.id, &exec_options(&store, &a)?)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::Checkpoint(a) => checkpoint::checkpoint(&store, &a.id, &checkpoint_options(&a))?,
        Command::Restore(a) => {
            if let Some(code) = checkpoint::restore(&store, &a.id, &restore_options(&a))? {
                return Ok(u8::try_from(code).unwrap_or(255));
            }
        }
    }
    Ok(0)
}

fn write_spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} exists: remove it first", path.display());
    }
    let text = if rootless {
        let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        let mut spec: serde_json::Value = serde_json::from_str(include_str!("../../spec/rootless.json"))?;
        spec["linux"]["uidMappings"][0]["hostID"] = uid.into();
        spec["linux"]["gidMappings"][0]["hostID"] = gid.into();
        serde_json::to_string_pretty(&spec)?
    } else {
        include_str!("../../spec/default.json").to_owned()
    };
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
}

fn print_list(states: &[container::OciState], format: ListFormat, quiet: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if quiet {
        for s in states {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(());
    }
    if format == ListFormat::Json {
        writeln!(out, "{}", serde_json::to_string(states)?)?;
        return Ok(());
    }
    let rows: Vec<[String; 6]> = states
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.pid.to_string(),
                s.status.to_string(),
                s.bundle.display().to_string(),
                s.created.clone(),
                s.owner.clone(),
            ]
        })
        .collect();
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
    let widths: Vec<usize> =
        (0..6).map(|i| rows.iter().chain([&header]).map(|r| r[i].len()).max().unwrap_or(0)).collect();
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        writeln!(out, "{}", line.join("   ").trim_end())?;
    }
    Ok(())
}

fn exec_options(store: &StateStore, a: &ExecArgs) -> Result<container::ExecOptions> {
    let process = match &a.process {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
            let de = &mut serde_json::Deserializer::from_slice(&bytes);
            serde_path_to_error::deserialize(de)
                .map_err(|e| anyhow::anyhow!("{}: process.{}: {}", path.display(), e.path(), e.inner()))?
        }
        None => {
            if a.command.is_empty() {
                bail!("exec: a command or --process is required");
            }
            let user = a.user.as_deref().map(parse_user).transpose()?;
            let base = store.load(&a.id)?.process;
            let overrides = container::ExecOverrides {
                args: a.command.clone(),
                tty: a.tty,
                cwd: a.cwd.clone(),
                env: a.env.clone(),
                user,
                additional_gids: a.additional_gids.clone(),
                caps: a.cap.clone(),
                no_new_privs: a.no_new_privs,
            };
            container::exec_process(base.as_ref(), &overrides)?
        }
    };
    Ok(container::ExecOptions {
        process,
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        sub_cgroups: isolab_runtime::cgroups::parse_sub_cgroups(&a.cgroup)?,
    })
}

/// `uid` or `uid:gid`, numeric (as runc without a passwd lookup).
fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = u.parse().with_context(|| format!("--user {s:?}: uid must be a number"))?;
    let gid =
        g.map(|g| g.parse().with_context(|| format!("--user {s:?}: gid must be a number"))).transpose()?;
    Ok((uid, gid))
}

fn events(store: &StateStore, id: &str, once: bool, interval: &str) -> Result<()> {
    let secs: f64 = interval
        .trim_end_matches('s')
        .parse()
        .with_context(|| format!("--interval {interval:?}: expected seconds like 5s"))?;
    loop {
        match container::stats(store, id) {
            Ok(ev) => println!("{}", serde_json::to_string(&ev)?),
            // Streaming ends when the container does.
            Err(e) if !once && matches!(e, container::ContainerError::WrongStatus { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if once {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs_f64(secs.max(0.1)));
    }
}

fn update_resources(a: &UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    if let Some(path) = &a.resources {
        let bytes = if path.as_os_str() == "-" {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
            v
        } else {
            std::fs::read(path).with_context(|| format!("read {}", path.display()))?
        };
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        return serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("resources.{}: {}", e.path(), e.inner()));
    }
    let size = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| {
                container::parse_size(s).with_context(|| format!("--{flag} {s:?}: expected bytes, e.g. 100m"))
            })
            .transpose()
    };
    let mut r = serde_json::json!({});
    let mut memory = serde_json::Map::new();
    for (key, flag, v) in [
        ("limit", "memory", &a.memory),
        ("reservation", "memory-reservation", &a.memory_reservation),
        ("swap", "memory-swap", &a.memory_swap),
    ] {
        if let Some(n) = size(flag, v)? {
            memory.insert(key.into(), n.into());
        }
    }
    if !memory.is_empty() {
        r["memory"] = memory.into();
    }
    if let Some(l) = a.pids_limit {
        r["pids"] = serde_json::json!({ "limit": l });
    }
    let mut cpu = serde_json::Map::new();
    if let Some(q) = a.cpu_quota {
        cpu.insert("quota".into(), q.into());
    }
    if let Some(p) = a.cpu_period {
        cpu.insert("period".into(), p.into());
    }
    if let Some(s) = a.cpu_share {
        cpu.insert("shares".into(), s.into());
    }
    if let Some(c) = &a.cpuset_cpus {
        cpu.insert("cpus".into(), c.clone().into());
    }
    if let Some(m) = &a.cpuset_mems {
        cpu.insert("mems".into(), m.clone().into());
    }
    if !cpu.is_empty() {
        r["cpu"] = cpu.into();
    }
    if let Some(w) = a.blkio_weight {
        r["blockIO"] = serde_json::json!({ "weight": w });
    }
    if r.as_object().is_some_and(|o| o.is_empty()) {
        bail!("update: nothing to change (give --memory, --pids-limit, --cpu-quota, ... or -r FILE)");
    }
    Ok(serde_json::from_value(r)?)
}
