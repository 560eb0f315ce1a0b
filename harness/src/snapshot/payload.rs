//! The payload archive of a restored VM (host side of `agent::payload`; `vm::snapvm` writes
//! it behind its header): the runtime under test at `/usr/bin/<name>`, `/isolab/runtime`
//! linking to it, and its shared libraries and interpreter at their host paths.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::SnapshotError;
use crate::agent::payload::HEADER;
use crate::image::cpio::CpioWriter;
use crate::image::elf;
use crate::vm::snapvm::PAYLOAD_BYTES;

type Memo = Mutex<HashMap<(PathBuf, std::time::SystemTime, u64), Arc<Vec<u8>>>>;

/// The archive for `runtime` (built once per runtime file version in this process).
pub fn archive(runtime: &Path) -> Result<Arc<Vec<u8>>, SnapshotError> {
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let err = |detail: String| SnapshotError::Payload { runtime: runtime.to_path_buf(), detail };
    let meta = std::fs::metadata(runtime).map_err(|e| err(e.to_string()))?;
    let stamp = (runtime.to_path_buf(), meta.modified().map_err(|e| err(e.to_string()))?, meta.len());
    let memo = MEMO.get_or_init(Default::default);
    if let Some(a) = memo.lock().unwrap_or_else(|p| p.into_inner()).get(&stamp) {
        return Ok(a.clone());
    }
    let name =
        runtime.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "runtime".into());
    let mut files = vec![(format!("usr/bin/{name}"), runtime.to_path_buf())];
    if elf::dyn_info(runtime).map_err(|e| err(e.to_string()))?.interpreter.is_some() {
        for lib in elf::closure(runtime).map_err(|e| err(e.to_string()))? {
            files.push((lib.to_string_lossy().trim_start_matches('/').to_string(), lib));
        }
    }
    let mut w = CpioWriter::new(Vec::new());
    for (guest, host) in &files {
        let data = std::fs::read(host).map_err(|e| err(format!("{}: {e}", host.display())))?;
        w.file(guest, 0o755, &data).map_err(|e| err(e.to_string()))?;
    }
    w.symlink("isolab/runtime", &format!("/usr/bin/{name}")).map_err(|e| err(e.to_string()))?;
    let a = Arc::new(w.finish().map_err(|e| err(e.to_string()))?);
    if (HEADER + a.len()) as u64 > PAYLOAD_BYTES {
        let (bytes, max) = ((HEADER + a.len()) as u64, PAYLOAD_BYTES);
        return Err(SnapshotError::PayloadTooBig { runtime: runtime.to_path_buf(), bytes, max });
    }
    memo.lock().unwrap_or_else(|p| p.into_inner()).insert(stamp, a.clone());
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::payload::{archive as read_archive, parse_newc};

    #[test]
    fn a_dynamic_runtime_comes_with_its_libraries_and_the_agent_reads_it() {
        let a = archive(Path::new("/bin/ls")).unwrap();
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("payload");
        crate::vm::snapvm::write_payload(&p, Some(&a)).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), PAYLOAD_BYTES);
        let bytes = std::fs::read(&p).unwrap();
        let entries = parse_newc(read_archive(&bytes).unwrap()).unwrap();
        let has = |n: &str| entries.iter().any(|e| e.name == n || e.name.ends_with(n));
        assert!(
            has("usr/bin/ls") && has("isolab/runtime") && has("libc.so.6") && has("ld-linux-x86-64.so.2")
        );
        let too_big = vec![0u8; PAYLOAD_BYTES as usize];
        assert!(crate::vm::snapvm::write_payload(&p, Some(&too_big)).is_err(), "bigger than the device");
    }
}
