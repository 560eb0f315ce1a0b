use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use super::*;
use crate::seccomp::{compile, parse};

const LIMIT: Duration = Duration::from_secs(10);

fn profile() -> LinuxSeccomp {
    parse(&json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}))
    .unwrap()
}

fn same(a: &Filter, b: &Filter) -> bool {
    a.flags == b.flags
        && a.program.len() == b.program.len()
        && a.program
            .iter()
            .zip(&b.program)
            .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k))
}

fn entry_path(root: &Path) -> PathBuf {
    dir(root).join(entry::file_name(&key_of(&profile()).unwrap()))
}

#[test]
fn key_ignores_key_order_and_whitespace_of_the_json() {
    let a = parse(
        &serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_LOG"}]}"#,
        )
        .unwrap(),
    )
    .unwrap();
    let b = parse(&serde_json::from_str("{ \"syscalls\": [ {\"action\": \"SCMP_ACT_LOG\",\n \"names\": [\"mkdir\"]} ],\n \"defaultAction\": \"SCMP_ACT_ALLOW\" }").unwrap()).unwrap();
    assert_eq!(key_of(&a).unwrap(), key_of(&b).unwrap());
    let c = parse(&json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["rmdir"], "action": "SCMP_ACT_LOG"}]})).unwrap();
    assert_ne!(key_of(&a).unwrap(), key_of(&c).unwrap());
}

#[test]
fn first_compile_stores_second_hits_with_the_same_program() {
    let root = tempfile::tempdir().unwrap();
    let key = key_of(&profile()).unwrap();
    assert!(matches!(lookup(&dir(root.path()), &key), Err(Miss::Absent)));
    let compiled = compile_cached(root.path(), &profile(), LIMIT).unwrap();
    let path = entry_path(root.path());
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(dir(root.path())).unwrap().permissions().mode() & 0o777, 0o700);
    let hit = lookup(&dir(root.path()), &key).unwrap();
    assert!(same(&compiled, &hit));
    assert!(same(&compile_cached(root.path(), &profile(), LIMIT).unwrap(), &compile(&profile()).unwrap()));
    // Only the entry: no temp file left.
    assert_eq!(std::fs::read_dir(dir(root.path())).unwrap().count(), 1);
}

#[test]
fn a_corrupt_entry_is_a_miss_and_is_rewritten() {
    let root = tempfile::tempdir().unwrap();
    compile_cached(root.path(), &profile(), LIMIT).unwrap();
    let path = entry_path(root.path());
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    let key = key_of(&profile()).unwrap();
    assert!(matches!(lookup(&dir(root.path()), &key), Err(Miss::Corrupt(EntryError::Checksum))));
    let f = compile_cached(root.path(), &profile(), LIMIT).unwrap();
    assert!(same(&f, &compile(&profile()).unwrap()));
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn a_truncated_entry_is_a_miss() {
    let root = tempfile::tempdir().unwrap();
    compile_cached(root.path(), &profile(), LIMIT).unwrap();
    let path = entry_path(root.path());
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, &good[..good.len() - 1]).unwrap();
    let key = key_of(&profile()).unwrap();
    assert!(matches!(lookup(&dir(root.path()), &key), Err(Miss::Corrupt(EntryError::Length { .. }))));
}

#[test]
fn an_entry_writable_by_others_is_not_trusted() {
    let root = tempfile::tempdir().unwrap();
    compile_cached(root.path(), &profile(), LIMIT).unwrap();
    let path = entry_path(root.path());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let key = key_of(&profile()).unwrap();
    assert!(matches!(lookup(&dir(root.path()), &key), Err(Miss::Untrusted(_))));
    // The miss rewrites it with our own mode.
    compile_cached(root.path(), &profile(), LIMIT).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(lookup(&dir(root.path()), &key).is_ok());
}

#[test]
fn a_symlinked_entry_is_not_followed() {
    let root = tempfile::tempdir().unwrap();
    compile_cached(root.path(), &profile(), LIMIT).unwrap();
    let path = entry_path(root.path());
    let elsewhere = root.path().join("elsewhere.bpf");
    std::fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let key = key_of(&profile()).unwrap();
    assert!(matches!(lookup(&dir(root.path()), &key), Err(Miss::Read(_))));
}

#[test]
fn an_unwritable_cache_only_costs_the_compile() {
    let root = tempfile::tempdir().unwrap();
    // A file where the cache directory should be: nothing can be stored.
    std::fs::write(dir(root.path()), b"in the way").unwrap();
    let f = compile_cached(root.path(), &profile(), LIMIT).unwrap();
    assert!(same(&f, &compile(&profile()).unwrap()));
}

#[test]
fn a_failing_compile_stores_nothing() {
    let root = tempfile::tempdir().unwrap();
    let bad = parse(&json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}))
    .unwrap();
    assert!(compile_cached(root.path(), &bad, LIMIT).is_err());
    assert!(!dir(root.path()).exists() || std::fs::read_dir(dir(root.path())).unwrap().count() == 0);
}

#[test]
fn concurrent_writers_and_readers_only_see_whole_entries() {
    let root = tempfile::tempdir().unwrap();
    let key = key_of(&profile()).unwrap();
    let filter = compile(&profile()).unwrap();
    let d = dir(root.path());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    store(&d, &key, &filter).unwrap();
                }
            });
        }
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..200 {
                    match lookup(&d, &key) {
                        Ok(f) => assert!(same(&f, &filter)),
                        Err(Miss::Absent) => {}
                        Err(other) => panic!("a reader saw {other}"),
                    }
                }
            });
        }
    });
    let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [std::ffi::OsString::from(entry::file_name(&key))]);
}

#[test]
fn a_missing_root_is_made_as_the_state_store_makes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("run/isorun");
    compile_cached(&root, &profile(), LIMIT).unwrap();
    let umask_default = {
        let probe = tmp.path().join("probe");
        std::fs::create_dir(&probe).unwrap();
        std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(std::fs::metadata(&root).unwrap().permissions().mode() & 0o777, umask_default);
    assert_eq!(std::fs::metadata(dir(&root)).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(entry_path(&root).is_file());
}
