//! A minimal cpio "newc" (SVR4, no CRC) writer, the format the kernel unpacks as initramfs,
//! and a reader for tests and inspection. Timestamps and owners are zero: same input, same bytes.

use std::collections::HashSet;
use std::io::{self, Write};

/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Character device.
pub const S_IFCHR: u32 = 0o020000;

/// Streams entries into a newc archive. Parent directories are added automatically.
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    out: W,
    offset: u64,
    ino: u32,
    dirs: HashSet<String>,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive.
    pub fn new(out: W) -> Self {
        CpioWriter { out, offset: 0, ino: 1, dirs: HashSet::new() }
    }

    fn header(&mut self, name: &str, mode: u32, size: u32, rdev: (u32, u32)) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        let nlink = if mode & 0o170000 == S_IFDIR { 2 } else { 1 };
        let fields = [self.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        self.ino += 1;
        let mut h = String::with_capacity(110 + name.len());
        h.push_str("070701");
        for f in fields {
            h.push_str(&format!("{f:08x}"));
        }
        h.push_str(name);
        h.push('\0');
        self.write(h.as_bytes())?;
        self.pad()
    }

    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.offset += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.offset % 4) as usize) % 4;
        self.write(&[0u8; 3][..n])
    }

    fn parents(&mut self, path: &str) -> io::Result<()> {
        let path = path.trim_start_matches('/');
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(p);
            if self.dirs.insert(acc.clone()) {
                let a = acc.clone();
                self.header(&a, S_IFDIR | 0o755, 0, (0, 0))?;
            }
        }
        Ok(())
    }

    /// Adds a directory (once; later calls are ignored).
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.parents(path)?;
        let p = path.trim_start_matches('/').to_string();
        if self.dirs.insert(p.clone()) {
            self.header(&p, S_IFDIR | (perm & 0o7777), 0, (0, 0))?;
        }
        Ok(())
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.parents(path)?;
        let size =
            u32::try_from(data.len()).map_err(|_| io::Error::other(format!("{path}: too large for cpio")))?;
        self.header(path, S_IFREG | (perm & 0o7777), size, (0, 0))?;
        self.write(data)?;
        self.pad()
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.parents(path)?;
        self.header(path, S_IFLNK | 0o777, target.len() as u32, (0, 0))?;
        self.write(target.as_bytes())?;
        self.pad()
    }

    /// Adds a character device node.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.parents(path)?;
        self.header(path, S_IFCHR | (perm & 0o7777), 0, (major, minor))
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One entry read back from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path (no leading `/`).
    pub name: String,
    /// Mode bits including the type.
    pub mode: u32,
    /// File contents or symlink target.
    pub data: Vec<u8>,
    /// (major, minor) of a device node.
    pub rdev: (u32, u32),
}

/// Reads an uncompressed newc archive (up to the trailer).
pub fn read_archive(mut b: &[u8]) -> io::Result<Vec<Entry>> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut out = Vec::new();
    let total = b.len();
    loop {
        if b.len() < 110 || &b[..6] != b"070701" {
            return Err(bad("bad cpio header"));
        }
        let field = |i: usize| {
            std::str::from_utf8(&b[6 + i * 8..14 + i * 8]).ok().and_then(|s| u32::from_str_radix(s, 16).ok())
        };
        let (mode, size, rmaj, rmin, nsize) = match (field(1), field(6), field(9), field(10), field(11)) {
            (Some(a), Some(b), Some(c), Some(d), Some(e)) => (a, b as usize, c, d, e as usize),
            _ => return Err(bad("bad cpio field")),
        };
        let name_end = 110 + nsize;
        let name = b.get(110..name_end - 1).ok_or_else(|| bad("short name"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        let pos = total - b.len();
        let data_start = name_end + (4 - (pos + name_end) % 4) % 4;
        let data = b.get(data_start..data_start + size).ok_or_else(|| bad("short data"))?.to_vec();
        let next = data_start + size;
        let next = next + (4 - (pos + next) % 4) % 4;
        if name == "TRAILER!!!" {
            return Ok(out);
        }
        out.push(Entry { name, mode, data, rdev: (rmaj, rmin) });
        b = b.get(next.min(b.len())..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn build(f: impl FnOnce(&mut CpioWriter<Vec<u8>>) -> io::Result<()>) -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        f(&mut w).unwrap();
        w.finish().unwrap()
    }

    #[test_case("init", 0o755, b"#!/bin/sh\n" ; "file")]
    #[test_case("a/b/c/deep", 0o644, b"" ; "empty deep file")]
    #[test_case("odd", 0o600, b"12345" ; "odd size")]
    fn file_roundtrip(path: &str, perm: u32, data: &[u8]) {
        let bytes = build(|w| w.file(path, perm, data));
        assert_eq!(bytes.len() % 4, 0);
        let entries = read_archive(&bytes).unwrap();
        let e = entries.iter().find(|e| e.name == path).unwrap();
        assert_eq!((e.mode, e.data.as_slice()), (S_IFREG | perm, data));
        let depth = path.matches('/').count();
        assert_eq!(entries.len(), depth + 1, "parents added: {entries:?}");
    }

    #[test]
    fn nodes_and_links() {
        let bytes = build(|w| {
            w.dir("dev", 0o755)?;
            w.char_dev("dev/console", 0o600, 5, 1)?;
            w.symlink("bin/sh", "busybox")?;
            w.dir("dev", 0o700)
        });
        let e = read_archive(&bytes).unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, vec!["dev", "dev/console", "bin", "bin/sh"]);
        assert_eq!(e[1].rdev, (5, 1));
        assert_eq!(e[3].data, b"busybox");
    }

    #[test]
    fn system_cpio_agrees() {
        let bytes = build(|w| {
            w.file("x/y", 0o644, b"hello")?;
            w.symlink("l", "x/y")
        });
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            panic!("cpio(1) is required for this test (apt-get install cpio)");
        };
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "x\nx/y\nl\n");
    }
}
