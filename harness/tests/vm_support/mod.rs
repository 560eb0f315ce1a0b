//! Shared setup of the VM integration tests (`vm_*.rs`): kernels come through the same fetch code and
//! cache as `isolab kernels fetch`; a fetch that cannot happen fails the test with its reason.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use isolab_harness::image::Compression;
use isolab_harness::kernels::{fetch, CheckedKernel, Matrix};
use isolab_harness::lab::{self, LabOptions};

pub fn matrix() -> Matrix {
    Matrix::load(&lab::workspace_root().join("vm-images/kernels.toml")).expect("vm-images/kernels.toml")
}

/// The static agent; built with the documented command when missing.
pub fn agent() -> PathBuf {
    if let Ok(p) = lab::locate_agent(None) {
        return p;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(lab::workspace_root())
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args([
            "build",
            "--release",
            "--target",
            "x86_64-unknown-linux-gnu",
            "-p",
            "isolab-harness",
            "--bin",
            "isolab-agent",
            "--no-default-features",
        ])
        .status()
        .expect("run cargo to build the static agent");
    assert!(status.success(), "building the static isolab-agent failed");
    lab::locate_agent(None).expect("static agent after building it")
}

/// The runtime to pack: $ISOLAB_TEST_RUNTIME, else isorun from the workspace, else runc.
pub fn runtime() -> PathBuf {
    if let Ok(p) = std::env::var("ISOLAB_TEST_RUNTIME") {
        return PathBuf::from(p);
    }
    if let Ok(p) = lab::locate_runtime(None) {
        return p;
    }
    let runc = Path::new("/usr/sbin/runc");
    assert!(runc.is_file(), "no runtime to pack: build isorun or install runc (apt-get install runc)");
    runc.to_path_buf()
}

pub fn options() -> LabOptions {
    LabOptions {
        cache: isolab_harness::cache::cache_root(),
        agent: agent(),
        runtime: Some(runtime()),
        busybox: PathBuf::from("/bin/busybox"),
        qemu: "qemu-system-x86_64".into(),
        accel: isolab_harness::vm::AccelChoice::Tcg,
        memory_mb: 512,
        cpus: 1,
        cpu_model: None,
        compression: Compression::None,
        strip_module_signatures: true,
        tools: lab::default_tools(),
        pvh: true,
        quiet: true,
        extra_cmdline: vec![],
        guest_aslr: false,
        boot_timeout: Duration::from_secs(90),
        step_timeout: Duration::from_secs(60),
    }
}

/// The matrix's description of the cell `kernel`/`mode`/`base` for the runtime `o` packs.
pub fn cell_info(
    kernel: &str,
    mode: isolab_harness::protocol::CgroupMode,
    base: isolab_harness::catalogue::base::BaseConfig,
    o: &LabOptions,
) -> isolab_harness::matrix::CellInfo {
    let runtime = o.runtime.clone().expect("a runtime is packed");
    isolab_harness::matrix::CellInfo {
        kernel: kernel.into(),
        mode,
        runtime: runtime.file_name().unwrap().to_string_lossy().into_owned(),
        runtime_version: isolab_harness::catalogue::runtime_version(&runtime),
        base,
    }
}

/// The kernel, fetched through the cache if needed; panics with the reason when impossible.
pub fn kernel(name: &str, o: &LabOptions) -> CheckedKernel {
    let m = matrix();
    let spec = m.select(&[name.to_string()]).expect("kernel in matrix")[0].clone();
    if fetch::cached(&spec, &o.cache).is_err() {
        lab::fetch_kernel(&spec, &o.cache, &|_| {}).unwrap_or_else(|e| panic!("cannot fetch {name}: {e}"));
    }
    lab::checked_kernel(&spec, &m, &o.cache).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Moves this test process into a mount namespace of its own, nothing propagating back to
/// the host's (nextest runs each test in its own process): what it mounts goes with it.
pub fn private_mount_namespace() {
    // SAFETY: unshare(2) with CLONE_NEWNS only changes this process's mount namespace; the
    // call has no memory arguments.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    assert_eq!(rc, 0, "unshare(CLONE_NEWNS): {}", std::io::Error::last_os_error());
    let st = std::process::Command::new("mount").args(["--make-rprivate", "/"]).status().unwrap();
    assert!(st.success(), "mount --make-rprivate /");
}
