//! Real container engines (Docker 20.10, containerd 1.6's ctr, podman 4.3) as test clients of
//! isorun and of runc: private daemons under a temp dir ([`daemons`]), a busybox image built
//! locally ([`image`]), bounded commands ([`cmd`]) and a step recorder ([`steps`]) that runs one
//! scenario per engine × runtime, asserts what runc gives at each step, and writes the results
//! for the README table (`ci/engine-table`).
#![allow(dead_code)]

pub mod cmd;
/// The runtime tests' fixtures (the busybox rootfs builder is shared).
#[path = "../common/mod.rs"]
pub mod common;
pub mod daemons;
pub mod image;
pub mod steps;

use std::path::{Path, PathBuf};

/// The two runtimes every scenario runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Runc,
    Isorun,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Isorun => "isorun",
        }
    }

    /// The binary the engine is told to call: Debian's runc, and the isorun under test (this
    /// build's, or `ENGINE_ISORUN` to test another one, e.g. `target/release/isorun`).
    pub fn binary(self) -> PathBuf {
        match self {
            Runtime::Runc => PathBuf::from("/usr/sbin/runc"),
            Runtime::Isorun => match std::env::var_os("ENGINE_ISORUN") {
                Some(p) => PathBuf::from(p),
                None => PathBuf::from(env!("CARGO_BIN_EXE_isorun")),
            },
        }
    }
}

/// Fail loudly, with the reason, when the engine tests cannot run here: they need root and the
/// engines installed by `ci/engines-setup` (which `ci/setup` runs).
pub fn require_engines(binaries: &[&str]) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the engine tests start private dockerd/containerd and real containers: run them as root"
    );
    for b in binaries.iter().chain(["/bin/busybox", "/usr/sbin/runc", "/usr/bin/tar"].iter()) {
        assert!(
            Path::new(b).exists(),
            "{b} is missing: the engine tests need ci/engines-setup (docker.io, containerd, podman, \
             tini from Debian) and ci/setup (runc, busybox-static) to have run"
        );
    }
}

/// Host pids of the processes whose command line is exactly `cmdline` (words joined by spaces):
/// finds what a container left running.
pub fn process_alive(cmdline: &str) -> Vec<u32> {
    let want: Vec<u8> = cmdline.split(' ').flat_map(|w| w.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            (std::fs::read(e.path().join("cmdline")).ok()? == want).then_some(pid)
        })
        .collect()
}
