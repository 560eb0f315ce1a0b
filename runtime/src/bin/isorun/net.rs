//! `isorun net up|down`: attach a container to a bridge (or detach it), either directly
//! (`isorun net up --subnet 10.88.0.0/24 ID`) or as an OCI `createRuntime`/`poststop` hook,
//! which gets the container's state JSON on stdin.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use isolab_runtime::net::{self, NetOptions};
use isolab_runtime::state::StateStore;

// `isorun net`.
// (Not a doc comment: see `Command`.)
#[derive(Debug, clap::Args)]
pub struct NetArgs {
    /// up or down.
    #[command(subcommand)]
    pub cmd: NetCmd,
}

// The net subcommands.
// (Not a doc comment: see `Command`.)
#[derive(Debug, clap::Subcommand)]
pub enum NetCmd {
    /// Give a container a veth on the bridge (created if missing), addresses and a default route.
    Up {
        /// The bridge.
        #[arg(long, default_value = "isorun0")]
        bridge: String,
        /// IPv4 subnet; the bridge is its first address.
        #[arg(long)]
        subnet: String,
        /// IPv6 subnet, likewise.
        #[arg(long)]
        subnet6: Option<String>,
        /// MTU of both veth ends (and of the bridge when created).
        #[arg(long)]
        mtu: Option<u32>,
        /// MAC address of the container's interface.
        #[arg(long)]
        mac: Option<String>,
        /// The interface name inside the container.
        #[arg(long, default_value = "eth0")]
        ifname: String,
        /// The container (of --root); without it, the OCI state JSON is read from stdin.
        id: Option<String>,
    },
    /// Remove a container's veth and lease (and the bridge, if we made it and it is unused).
    Down {
        /// The bridge.
        #[arg(long, default_value = "isorun0")]
        bridge: String,
        /// The container; without it, the OCI state JSON is read from stdin.
        id: Option<String>,
    },
}

/// The container's id and init pid: from the state store, or the OCI state on stdin.
fn target(store: &StateStore, id: Option<String>) -> Result<(String, i32)> {
    if let Some(id) = id {
        let rec = store.load(&id)?;
        return Ok((id, rec.pid));
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("read the OCI state from stdin")?;
    let state: serde_json::Value = serde_json::from_str(&text).context("parse the OCI state on stdin")?;
    let Some(id) = state["id"].as_str() else { bail!("the OCI state on stdin has no \"id\"") };
    Ok((id.to_owned(), state["pid"].as_i64().unwrap_or(0) as i32))
}

/// Run `isorun net ...`.
pub fn run(root: &Path, store: &StateStore, args: NetArgs) -> Result<()> {
    match args.cmd {
        NetCmd::Up { bridge, subnet, subnet6, mtu, mac, ifname, id } => {
            let opts = NetOptions::new(&bridge, &subnet, subnet6.as_deref(), mtu, mac.as_deref(), &ifname)?;
            let (id, pid) = target(store, id)?;
            if pid <= 0 {
                bail!("container {id} has no running init (pid {pid})");
            }
            let a = net::up(root, &opts, &id, pid)?;
            let v6 =
                a.v6.map(|ip| format!(" {ip}/{}", opts.subnet6.map_or(0, |s| s.prefix))).unwrap_or_default();
            println!(
                "{id}: {ifname} {}/{}{v6} on {bridge} (host end {})",
                a.v4, opts.subnet.prefix, a.host_veth
            );
        }
        NetCmd::Down { bridge, id } => {
            // By id the container need not exist any more (`delete` first, then `net down`).
            let id = match id {
                Some(id) => id,
                None => target(store, None)?.0,
            };
            net::down(root, &bridge, &id)?;
        }
    }
    Ok(())
}
