//! `isolab-agent`: PID 1 of an isolab guest VM. See `isolab_harness::agent`.

fn main() {
    if std::process::id() == 1 {
        isolab_harness::agent::run_as_init();
    }
    eprintln!(
        "isolab-agent {}: the init of isolab guest VMs (protocol v{}); it only runs as PID 1.",
        env!("CARGO_PKG_VERSION"),
        isolab_harness::protocol::PROTOCOL_VERSION
    );
    std::process::exit(2);
}
