//! `/proc/self/mountinfo` parsing (proc(5)). Pure.

use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// `major:minor` of the superblock.
    pub dev: String,
    /// Root of the mount within its filesystem.
    pub root: PathBuf,
    /// Mount point, relative to the process's root.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,nosuid,...`).
    pub mount_options: String,
    /// Optional fields (`shared:1 master:2`), space-separated.
    pub optional: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mount source.
    pub source: String,
    /// Per-superblock options (`rw,cpu,cpuacct`).
    pub super_options: String,
}

/// Undo mountinfo's octal escapes (`\040` for a space, `\134` for a backslash, ...).
fn unescape_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.len() >= i + 4 && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = b[i + 1..i + 4].iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Undo mountinfo's octal escapes in a field (shared with the cgroup layout reader).
pub(crate) fn unescape(s: &str) -> String {
    String::from_utf8_lossy(&unescape_bytes(s)).into_owned()
}

fn unescape_path(s: &str) -> PathBuf {
    PathBuf::from(std::ffi::OsString::from_vec(unescape_bytes(s)))
}

/// Parse one mountinfo line; `None` if it is malformed.
pub fn parse_line(line: &str) -> Option<MountInfo> {
    let mut it = line.split(' ');
    let _id = it.next()?;
    let _parent = it.next()?;
    let dev = it.next()?.to_owned();
    let root = unescape_path(it.next()?);
    let mount_point = unescape_path(it.next()?);
    let mount_options = it.next()?.to_owned();
    let mut optional = Vec::new();
    loop {
        match it.next()? {
            "-" => break,
            f => optional.push(f),
        }
    }
    let fstype = it.next()?.to_owned();
    let source = unescape(it.next()?);
    let super_options = it.next().unwrap_or("").to_owned();
    Some(MountInfo {
        dev,
        root,
        mount_point,
        mount_options,
        optional: optional.join(" "),
        fstype,
        source,
        super_options,
    })
}

/// Parse a whole mountinfo file; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_optional_fields_and_escapes() {
        let l =
            "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 shared:3 - ext3 /dev/root rw,errors=continue";
        let m = parse_line(l).unwrap();
        assert_eq!(m.dev, "98:0");
        assert_eq!(m.root, PathBuf::from("/mnt1"));
        assert_eq!(m.mount_point, PathBuf::from("/mnt two"));
        assert_eq!(m.optional, "master:1 shared:3");
        assert_eq!(m.fstype, "ext3");
        assert_eq!(m.source, "/dev/root");
        assert_eq!(m.super_options, "rw,errors=continue");
    }

    #[test]
    fn parses_without_optional_fields() {
        let m = parse_line("32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu").unwrap();
        assert_eq!(m.optional, "");
        assert_eq!(m.super_options, "rw,cpu");
    }

    #[test]
    fn malformed_lines_skipped() {
        assert_eq!(parse("garbage\n1 2 3 / / rw no-dash-here\n").len(), 0);
        assert_eq!(unescape("a\\134b\\0"), "a\\b\\0");
    }
}
