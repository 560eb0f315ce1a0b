//! `isolab-agent`: PID 1 of an isolab guest VM. See `isolab_harness::agent`.

fn main() {
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
