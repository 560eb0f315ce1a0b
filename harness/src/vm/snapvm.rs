//! The QEMU side of snapshots: the extra arguments of a VM that saves or restores one, and
//! the QMP steps of each.
//!
//! Guest RAM is a file (`memory-backend-file`). The VM that saves maps it shared, so the file
//! *is* the guest's memory; at the agent's hello the VM is stopped and migrated with the
//! `x-ignore-shared` capability, which leaves shared RAM out of the stream: the state file is
//! only device state (~250 KB). A restored VM maps the same RAM file private (copy on write):
//! nothing is copied or read up front, pages come from the page cache as the guest touches
//! them, and the file is never written. The payload device (`ivshmem-plain`, see
//! `agent::payload`) is shared memory too, so it is not in the snapshot either and every
//! restored VM maps its own payload file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::qmp::{Qmp, QmpError};
use crate::protocol::Resume;

/// Size of the payload device (a power of two, for the BAR). Sparse on disk.
pub const PAYLOAD_BYTES: u64 = 256 << 20;

/// What a VM does with a snapshot.
#[derive(Debug, Clone)]
pub enum SnapMode {
    /// Boot, and at the agent's hello save the snapshot (RAM into `ram`, devices into
    /// `state`), then stop.
    Save {
        /// Guest RAM file (written through).
        ram: PathBuf,
        /// Device state file to write.
        state: PathBuf,
    },
    /// Start from a snapshot: send `resume` and the request once the guest runs.
    Restore {
        /// Guest RAM file (mapped private).
        ram: PathBuf,
        /// Device state file to load.
        state: PathBuf,
        /// This VM's payload archive (see `agent::payload`), written into its temp dir.
        archive: Option<Arc<Vec<u8>>>,
        /// What makes this copy its own.
        resume: Resume,
    },
}

/// QEMU's option syntax: a comma in a value is written twice.
fn opt(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

/// The shell syntax of a path inside `exec:` migration URIs.
pub fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', r"'\''"))
}

/// Writes the payload file of a VM: sparse, the device's size; empty for the saving VM (the
/// device must exist in the saved machine) or without a runtime.
pub fn write_payload(path: &Path, archive: Option<&[u8]>) -> std::io::Result<()> {
    use crate::agent::payload::{HEADER, MAGIC};
    let mut f = std::fs::File::create(path)?;
    if let Some(a) = archive {
        if (HEADER + a.len()) as u64 > PAYLOAD_BYTES {
            return Err(std::io::Error::other(format!("{} bytes exceed the payload device", a.len())));
        }
        f.write_all(MAGIC)?;
        f.write_all(&(a.len() as u64).to_le_bytes())?;
        f.write_all(a)?;
    }
    f.set_len(PAYLOAD_BYTES)
}

/// Arguments added to [`super::args::qemu_args`] for `mode` (pure).
pub fn extra_args(mode: &SnapMode, memory_mb: u32, qmp: &Path, payload: &Path) -> Vec<String> {
    let (ram, share) = match mode {
        SnapMode::Save { ram, .. } => (ram, "on"),
        SnapMode::Restore { ram, .. } => (ram, "off"),
    };
    let mut a: Vec<String> = vec![
        "-machine".into(),
        "memory-backend=pc.ram".into(),
        "-object".into(),
        format!("memory-backend-file,id=pc.ram,size={memory_mb}M,mem-path={},share={share}", opt(ram)),
        "-object".into(),
        format!(
            "memory-backend-file,id=isolab-payload,size={PAYLOAD_BYTES},mem-path={},share={share}",
            opt(payload)
        ),
        "-device".into(),
        "ivshmem-plain,memdev=isolab-payload,master=on".into(),
        "-chardev".into(),
        format!("socket,id=qmp,path={}", opt(qmp)),
        "-mon".into(),
        "chardev=qmp,mode=control".into(),
    ];
    if matches!(mode, SnapMode::Restore { .. }) {
        a.extend(["-incoming".into(), "defer".into()]);
    }
    a
}

/// At the hello: stop the guest and write its device state to `state` (RAM stays in its file).
pub fn save(qmp: &mut Qmp, state: &Path) -> Result<(), QmpError> {
    qmp.set_capability("x-ignore-shared")?;
    qmp.execute("stop", json!({}))?;
    qmp.execute("migrate", json!({ "uri": format!("exec:cat > {}", sh_quote(state)) }))?;
    qmp.wait_migration()
}

/// Load `state` into a VM started with `-incoming defer` and run it.
pub fn restore(qmp: &mut Qmp, state: &Path) -> Result<(), QmpError> {
    qmp.set_capability("x-ignore-shared")?;
    qmp.execute("migrate-incoming", json!({ "uri": format!("exec:cat {}", sh_quote(state)) }))?;
    qmp.wait_migration()?;
    qmp.execute("cont", json!({})).map(drop)
}

/// A QMP deadline for `secs` from now.
pub fn deadline(secs: u64) -> Instant {
    Instant::now() + std::time::Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
    }

    #[test]
    fn save_maps_shared_and_restore_private_and_waits_for_the_state() {
        let save = SnapMode::Save { ram: "/c/ram".into(), state: "/c/state".into() };
        let a = extra_args(&save, 512, Path::new("/t/qmp.sock"), Path::new("/c/p,1"));
        let objs = after(&a, "-object");
        assert_eq!(objs[0], "memory-backend-file,id=pc.ram,size=512M,mem-path=/c/ram,share=on");
        assert!(objs[1].contains("mem-path=/c/p,,1,share=on"), "comma doubled: {}", objs[1]);
        assert_eq!(after(&a, "-machine"), vec!["memory-backend=pc.ram"]);
        assert!(after(&a, "-incoming").is_empty());
        let resume = Resume { seed_hex: String::new(), unix_time_ns: 0, payload: true };
        let restore =
            SnapMode::Restore { ram: "/c/ram".into(), state: "/c/state".into(), archive: None, resume };
        let b = extra_args(&restore, 512, Path::new("/t/qmp.sock"), Path::new("/v/p"));
        assert!(after(&b, "-object").iter().all(|o| o.ends_with("share=off")), "{b:?}");
        assert_eq!(after(&b, "-incoming"), vec!["defer"]);
        assert_eq!(after(&b, "-device"), vec!["ivshmem-plain,memdev=isolab-payload,master=on"]);
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }
}
