//! `linux.netDevices`: host interfaces moved into the container's network namespace (and
//! renamed), and moved back on delete. They must go back before the namespace dies: a
//! physical device would return on its own (under its in-container name), a virtual one
//! (veth, dummy, ...) would be destroyed.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsFd;

use oci_spec::runtime::LinuxNetDevice;

use super::link::Nl;
use super::{in_netns, netns_of, NetError};

/// The name a device gets inside (its `name`, else its host name).
fn inside_name<'a>(host: &'a str, dev: &'a LinuxNetDevice) -> &'a str {
    dev.name().as_deref().filter(|n| !n.is_empty()).unwrap_or(host)
}

/// Every device must exist in the runtime's network namespace (checked before `create`
/// makes anything; a cheap if_nametoindex, no netlink).
pub fn check_devices_exist(devices: &HashMap<String, LinuxNetDevice>) -> Result<(), NetError> {
    let mut names: Vec<&String> = devices.keys().collect();
    names.sort();
    for host in names {
        if crate::sys::net::if_index(host).is_none() {
            return Err(NetError::Invalid {
                field: format!("linux.netDevices.{}", serde_json::Value::from(host.as_str())),
                reason: format!("no network device {host:?} on the host"),
            });
        }
    }
    Ok(())
}

/// Move `devices` into the network namespace `ns` and rename them. On failure the devices
/// already moved are given back.
pub fn move_in(ns: &File, devices: &HashMap<String, LinuxNetDevice>) -> Result<(), NetError> {
    if devices.is_empty() {
        return Ok(());
    }
    let nl = Nl::new()?;
    let mut moved: HashMap<String, LinuxNetDevice> = HashMap::new();
    let mut result = Ok(());
    for (host, dev) in devices {
        let step = nl.must_index(host).and_then(|i| nl.move_to(i, host, ns.as_fd()));
        if let Err(e) = step {
            result = Err(e);
            break;
        }
        moved.insert(host.clone(), LinuxNetDevice::default());
        let renamed = in_netns(ns, "container network namespace", || {
            let nl = Nl::new()?;
            let name = inside_name(host, dev);
            if name != host {
                nl.rename(nl.must_index(host)?, name)?;
            }
            Ok(())
        });
        if let Err(e) = renamed {
            result = Err(e);
            break;
        }
        moved.insert(host.clone(), dev.clone());
    }
    if result.is_err() {
        let _ = move_out(ns, &moved);
    }
    result
}

/// Give `devices` back from the network namespace `ns` to the runtime's, under their host
/// names. A device no longer there is skipped; the first error is returned after trying all.
pub fn move_out(ns: &File, devices: &HashMap<String, LinuxNetDevice>) -> Result<(), NetError> {
    if devices.is_empty() {
        return Ok(());
    }
    let host_ns = netns_of(std::process::id() as i32)?;
    in_netns(ns, "container network namespace", || {
        let nl = Nl::new()?;
        let mut first = Ok(());
        for (host, dev) in devices {
            let name = inside_name(host, dev);
            let step = (|| {
                let Some(i) = nl.index(name)? else { return Ok(()) };
                nl.set_up(i, false)?;
                if name != host {
                    nl.rename(i, host)?;
                }
                nl.move_to(i, host, host_ns.as_fd())
            })();
            if first.is_ok() {
                first = step;
            }
        }
        first
    })
}

/// Devices moved into a container: given back when dropped, unless kept.
#[derive(Debug)]
pub struct MovedDevices<'a> {
    ns: Option<File>,
    devices: &'a HashMap<String, LinuxNetDevice>,
}

impl MovedDevices<'_> {
    /// The container was created: the devices stay in it (`delete` gives them back).
    pub fn keep(mut self) {
        self.ns = None;
    }
}

impl Drop for MovedDevices<'_> {
    fn drop(&mut self) {
        if let Some(ns) = &self.ns {
            let _ = move_out(ns, self.devices);
        }
    }
}

/// Move `devices` into the network namespace of `pid`, or the one at `join` that it is about
/// to join; None when there is nothing to move.
pub fn move_in_for<'a>(
    pid: i32,
    join: Option<&std::path::Path>,
    devices: &'a HashMap<String, LinuxNetDevice>,
) -> Result<Option<MovedDevices<'a>>, NetError> {
    if devices.is_empty() {
        return Ok(None);
    }
    let ns = match join {
        Some(path) => {
            File::open(path).map_err(|source| NetError::Io { op: "open", path: path.to_owned(), source })?
        }
        None => netns_of(pid)?,
    };
    move_in(&ns, devices)?;
    Ok(Some(MovedDevices { ns: Some(ns), devices }))
}
