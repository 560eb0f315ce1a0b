//! `isolab-agent`: PID 1 of an isolab guest VM. See `isolab_harness::agent`.

fn main() {
    // The escape catalogue's probes, run inside containers (a copy of this binary, which may
    // be the container's PID 1: checked before the init role).
    let args: Vec<String> = std::env::args().collect();
    if args.first().is_some_and(|a| a.ends_with("isolab-escape-probe")) {
        std::process::exit(isolab_harness::catalogue::escape_probe::main(&args[1..]));
    }
    if args.get(1).map(String::as_str) == Some("escape-probe") {
        std::process::exit(isolab_harness::catalogue::escape_probe::main(&args[2..]));
    }
    if std::process::id() == 1 {
        isolab_harness::agent::run_as_init();
    }
    // For guest scripts (`isolab migrate`): `skip=<why>` when CRIU cannot work on this kernel,
    // nothing when it can — the same test the checkpoint assertions SKIP on.
    if std::env::args().nth(1).as_deref() == Some("criu-usable") {
        if let Some(why) = isolab_harness::catalogue::criu_unusable() {
            println!("skip={}", why.replace('\n', " "));
        }
        std::process::exit(0);
    }
    eprintln!(
        "isolab-agent {}: the init of isolab guest VMs (protocol v{}); it only runs as PID 1.",
        env!("CARGO_PKG_VERSION"),
        isolab_harness::protocol::PROTOCOL_VERSION
    );
    std::process::exit(2);
}
