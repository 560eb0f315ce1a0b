//! The payload of a VM restored from a snapshot: the runtime under test and its libraries,
//! which are not in the snapshot (one snapshot serves every runtime).
//!
//! The host backs an `ivshmem-plain` PCI device with a file per VM: [`MAGIC`], the length of
//! what follows (u64, little endian), then a newc cpio archive. The device memory is not part
//! of the snapshot (QEMU's `x-ignore-shared`), so each restored VM sees its own file through
//! the BAR; the agent maps the BAR through sysfs and unpacks the archive into `/`. No guest
//! driver is involved and nothing is cached by the guest kernel before the snapshot.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::sys;

/// First bytes of a payload.
pub const MAGIC: &[u8; 8] = b"ISOLABP1";
/// Bytes before the archive: magic and length.
pub const HEADER: usize = 16;
/// PCI ids of QEMU's ivshmem device (Red Hat, Inter-VM shared memory).
pub const IVSHMEM_IDS: (&str, &str) = ("0x1af4", "0x1110");

/// A payload that could not be found or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// No ivshmem device in /sys/bus/pci/devices.
    #[error("no payload device (PCI {}:{}) in /sys/bus/pci/devices", IVSHMEM_IDS.0, IVSHMEM_IDS.1)]
    NoDevice,
    /// A file could not be read, mapped or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// errno.
        source: io::Error,
    },
    /// The bytes are not a payload.
    #[error("payload {path}: {reason}")]
    Format {
        /// The device file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One archive entry, borrowing its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Path without a leading `/`.
    pub name: &'a str,
    /// Mode including the file type bits.
    pub mode: u32,
    /// Contents, or the target of a symlink.
    pub data: &'a [u8],
}

/// The archive inside a payload (pure): checks the magic and length.
pub fn archive(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err("no ISOLABP1 header (the host wrote no payload?)".into());
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[8..16]);
    let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| "length overflows".to_string())?;
    bytes.get(HEADER..HEADER.saturating_add(len)).ok_or_else(|| format!("length {len} beyond the device"))
}

/// Parses a newc cpio archive up to its trailer (pure).
pub fn parse_newc(b: &[u8]) -> Result<Vec<Entry<'_>>, String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let pad4 = |n: usize| n.div_ceil(4) * 4;
    loop {
        let h = b.get(pos..pos + 110).ok_or_else(|| format!("short header at {pos}"))?;
        if &h[..6] != b"070701" {
            return Err(format!("bad magic at {pos}"));
        }
        let field = |i: usize| {
            std::str::from_utf8(&h[6 + i * 8..14 + i * 8])
                .ok()
                .and_then(|s| u32::from_str_radix(s, 16).ok())
                .ok_or_else(|| format!("bad header field {i} at {pos}"))
        };
        let (mode, size, nsize) = (field(1)?, field(6)? as usize, field(11)? as usize);
        let name_at = pos + 110;
        let name = b.get(name_at..name_at + nsize.saturating_sub(1)).ok_or("short name")?;
        let name = std::str::from_utf8(name).map_err(|_| format!("name at {pos} is not UTF-8"))?;
        let data_at = pad4(name_at + nsize);
        let data = b.get(data_at..data_at + size).ok_or_else(|| format!("{name}: short data"))?;
        if name == "TRAILER!!!" {
            return Ok(out);
        }
        if name.split('/').any(|c| c == "..") {
            return Err(format!("{name}: `..` in a path"));
        }
        out.push(Entry { name: name.trim_start_matches('/'), mode, data });
        pos = pad4(data_at + size);
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PayloadError + '_ {
    move |source| PayloadError::Io { path: path.to_path_buf(), source }
}

/// Writes the entries under `root` (directories, regular files, symlinks; others ignored).
pub fn extract(entries: &[Entry<'_>], root: &Path) -> Result<usize, PayloadError> {
    use std::os::unix::fs::PermissionsExt;
    let mut bytes = 0;
    for e in entries {
        let path = root.join(e.name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        match e.mode & 0o170000 {
            0o040000 => fs::create_dir_all(&path).map_err(io_err(&path))?,
            0o100000 => {
                let _ = fs::remove_file(&path);
                fs::write(&path, e.data).map_err(io_err(&path))?;
                fs::set_permissions(&path, fs::Permissions::from_mode(e.mode & 0o7777))
                    .map_err(io_err(&path))?;
                bytes += e.data.len();
            }
            0o120000 => {
                let _ = fs::remove_file(&path);
                let target = String::from_utf8_lossy(e.data).into_owned();
                std::os::unix::fs::symlink(target, &path).map_err(io_err(&path))?;
            }
            _ => {}
        }
    }
    Ok(bytes)
}

/// The BAR file (`resource2`) of the ivshmem device.
pub fn find_device(pci: &Path) -> Result<PathBuf, PayloadError> {
    let rd = fs::read_dir(pci).map_err(io_err(pci))?;
    for dev in rd.flatten().map(|e| e.path()) {
        let id = |f: &str| fs::read_to_string(dev.join(f)).map(|s| s.trim().to_string()).unwrap_or_default();
        if (id("vendor").as_str(), id("device").as_str()) == IVSHMEM_IDS {
            return Ok(dev.join("resource2"));
        }
    }
    Err(PayloadError::NoDevice)
}

/// Maps the payload device and unpacks its archive into `root`; returns (files, bytes).
pub fn unpack(root: &Path) -> Result<(usize, usize), PayloadError> {
    let bar = find_device(Path::new("/sys/bus/pci/devices"))?;
    let f = fs::File::open(&bar).map_err(io_err(&bar))?;
    let len = f.metadata().map_err(io_err(&bar))?.len() as usize;
    let map = sys::Mapping::new(&f, len).map_err(io_err(&bar))?;
    let fmt = |reason: String| PayloadError::Format { path: bar.clone(), reason };
    let entries = parse_newc(archive(map.bytes()).map_err(fmt)?).map_err(fmt)?;
    let bytes = extract(&entries, root)?;
    Ok((entries.len(), bytes))
}

#[cfg(all(test, feature = "host"))]
mod tests {
    use super::*;
    use crate::image::cpio::CpioWriter;

    fn payload(build: impl FnOnce(&mut CpioWriter<Vec<u8>>)) -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        build(&mut w);
        let a = w.finish().unwrap();
        let mut p = MAGIC.to_vec();
        p.extend_from_slice(&(a.len() as u64).to_le_bytes());
        p.extend_from_slice(&a);
        p.resize(p.len() + 4096, 0); // the rest of the device
        p
    }

    #[test]
    fn round_trip_through_the_host_writer_and_extract() {
        let p = payload(|w| {
            w.file("usr/bin/rt", 0o755, b"\x7fELF runtime").unwrap();
            w.symlink("isolab/runtime", "/usr/bin/rt").unwrap();
        });
        let entries = parse_newc(archive(&p).unwrap()).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name).collect();
        assert!(names.contains(&"usr/bin/rt") && names.contains(&"isolab/runtime"), "{names:?}");
        let t = tempfile::tempdir().unwrap();
        extract(&entries, t.path()).unwrap();
        assert_eq!(fs::read(t.path().join("usr/bin/rt")).unwrap(), b"\x7fELF runtime");
        assert_eq!(fs::read_link(t.path().join("isolab/runtime")).unwrap(), Path::new("/usr/bin/rt"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(t.path().join("usr/bin/rt")).unwrap().permissions().mode() & 0o777, 0o755);
    }

    #[test]
    fn bad_payloads_are_errors() {
        assert!(archive(&[0u8; 64]).unwrap_err().contains("no ISOLABP1 header"));
        let mut p = payload(|_| {});
        p[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(archive(&p).is_err(), "a length beyond the device");
        assert!(parse_newc(b"070701zz").unwrap_err().contains("short header"));
        let evil = payload(|w| w.file("../etc/x", 0o644, b"x").unwrap());
        assert!(parse_newc(archive(&evil).unwrap()).unwrap_err().contains(".."));
    }
}
