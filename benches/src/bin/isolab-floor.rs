//! `isolab-floor ROOTFS CGROUP`: the floor of `isolab bench startup` — runs `/bin/true` in
//! ROOTFS with the kernel calls a container start needs and nothing else (see
//! `isolab_benches::floor`). Exit status: the container's; 125 when the floor itself fails
//! (the message names the step and the path); 2 on a usage error.
#![warn(clippy::too_many_lines)]

use std::path::Path;
use std::process::ExitCode;

use isolab_benches::floor::{self, EXIT_FLOOR_ERROR};

const USAGE: &str = "usage: isolab-floor ROOTFS CGROUP\n\
    runs /bin/true in ROOTFS (pivot_root) in new mount, pid, uts, ipc, net and cgroup\n\
    namespaces, in a new cgroup CGROUP at the root of every cgroup hierarchy, then removes it";

/// `--version`, with the build line `isolab bench` checks (it refuses a debug build).
const VERSION: &str = if cfg!(debug_assertions) {
    concat!("isolab-floor ", env!("CARGO_PKG_VERSION"), "\nbuild: debug")
} else {
    concat!("isolab-floor ", env!("CARGO_PKG_VERSION"), "\nbuild: release")
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [v] if v == "--version" || v == "-V" => {
            println!("{VERSION}");
            ExitCode::SUCCESS
        }
        [h] if h == "--help" || h == "-h" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        [rootfs, cgroup] => match floor::run(Path::new(rootfs), cgroup) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)),
            Err(e) => {
                eprintln!("isolab-floor: {e}");
                ExitCode::from(EXIT_FLOOR_ERROR as u8)
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
