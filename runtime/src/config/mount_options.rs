//! `mounts[].options` → what mount(2) and mount_setattr(2) need, as one pure function.
//!
//! The table follows runtime-spec 1.3 ("Linux mount options") and runc's `parseMountOptions`:
//! filesystem-independent options become `MS_*` flags (later options win: `ro,rw` is rw),
//! propagation options are collected in order, the recursive `r*` options become
//! `MOUNT_ATTR_*` bits for `mount_setattr(AT_RECURSIVE)`, `bind`/`rbind`/`tmpcopyup`/
//! `idmap`/`ridmap` are runtime directives, and every other string is filesystem-specific
//! data passed through to mount(2) comma-joined (never rejected).

use nix::mount::MsFlags;

/// `mount_setattr(2)` attribute bits (`<linux/mount.h>`, stable kernel ABI).
pub mod attr {
    /// Read-only.
    pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
    /// Ignore suid and sgid bits.
    pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
    /// Disallow access to device special files.
    pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
    /// Disallow program execution.
    pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
    /// Mask of the access-time setting (one of RELATIME, NOATIME, STRICTATIME).
    pub const MOUNT_ATTR__ATIME: u64 = 0x0000_0070;
    /// Update atime relative to mtime/ctime (the value 0 within `MOUNT_ATTR__ATIME`).
    pub const MOUNT_ATTR_RELATIME: u64 = 0x0000_0000;
    /// Do not update access times.
    pub const MOUNT_ATTR_NOATIME: u64 = 0x0000_0010;
    /// Always update atime.
    pub const MOUNT_ATTR_STRICTATIME: u64 = 0x0000_0020;
    /// Do not update directory access times.
    pub const MOUNT_ATTR_NODIRATIME: u64 = 0x0000_0080;
    /// Idmap the mount.
    pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    /// Do not follow symlinks.
    pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
}

use attr::*;

/// How an `idmap`/`ridmap` option asks for an id-mapped mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idmap {
    /// `idmap`: the mount itself only.
    Mount,
    /// `ridmap`: the mount and everything below it (with `rbind`).
    Recursive,
}

/// What a mount's option strings ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// `MS_*` flags to pass to mount(2) (includes `MS_BIND`/`MS_REC` for bind/rbind and
    /// `MS_REMOUNT` for `remount`; never propagation flags).
    pub flags: MsFlags,
    /// Flags an option explicitly turned off (`rw` clears `MS_RDONLY`, `suid` clears
    /// `MS_NOSUID`, ...): a bind remount must not inherit them from the source.
    pub clear_flags: MsFlags,
    /// Propagation changes in the order given, each one of `MS_PRIVATE`, `MS_SLAVE`,
    /// `MS_SHARED`, `MS_UNBINDABLE`, with `MS_REC` for the `r` forms. Applied by separate
    /// mount(2) calls after the mount itself.
    pub propagation: Vec<MsFlags>,
    /// `attr_set` for `mount_setattr(2)` with `AT_RECURSIVE` (from `rro`, `rnosuid`, ...).
    pub rec_attr_set: u64,
    /// `attr_clr` for the same call (from `rrw`, `rsuid`, ..., and `MOUNT_ATTR__ATIME` when
    /// an access-time mode is set, as the kernel requires).
    pub rec_attr_clr: u64,
    /// Filesystem-specific options (`mode=755`, `size=64k`, `newinstance`, ...), comma-joined
    /// in order, for mount(2)'s `data` argument.
    pub data: String,
    /// `bind` or `rbind` was given: this is a bind mount (its `type` is meaningless).
    pub bind: bool,
    /// `rbind` was given: the bind is recursive (`MS_REC`).
    pub rec: bool,
    /// `tmpcopyup`: copy the directory's existing content into the new tmpfs.
    pub tmpcopyup: bool,
    /// `idmap` / `ridmap`: make this an id-mapped mount.
    pub idmap: Option<Idmap>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            clear_flags: MsFlags::empty(),
            propagation: Vec::new(),
            rec_attr_set: 0,
            rec_attr_clr: 0,
            data: String::new(),
            bind: false,
            rec: false,
            tmpcopyup: false,
            idmap: None,
        }
    }
}

impl MountOptions {
    /// `flags` with `MS_RDONLY` set: the mount must end up read-only.
    pub fn readonly(&self) -> bool {
        self.flags.contains(MsFlags::MS_RDONLY)
    }
}

/// `MS_NOSYMFOLLOW` (Linux 5.10), absent from nix's `MsFlags` list.
fn ms_nosymfollow() -> MsFlags {
    MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)
}

/// Classification of one option string.
enum Opt {
    /// Set (`false`) or clear (`true`) an `MS_*` flag.
    Flag(bool, MsFlags),
    /// A propagation change.
    Propagation(MsFlags),
    /// Set (`false`) or clear (`true`) a recursive `MOUNT_ATTR_*`.
    RecAttr(bool, u64),
    Bind {
        rec: bool,
    },
    TmpCopyUp,
    Idmap(Idmap),
    /// No effect (`defaults`, empty string).
    Nothing,
    Data,
}

fn classify(option: &str) -> Opt {
    use Opt::{Flag, Propagation, RecAttr};
    match option {
        "" | "defaults" => Opt::Nothing,
        "ro" => Flag(false, MsFlags::MS_RDONLY),
        "rw" => Flag(true, MsFlags::MS_RDONLY),
        "nosuid" => Flag(false, MsFlags::MS_NOSUID),
        "suid" => Flag(true, MsFlags::MS_NOSUID),
        "nodev" => Flag(false, MsFlags::MS_NODEV),
        "dev" => Flag(true, MsFlags::MS_NODEV),
        "noexec" => Flag(false, MsFlags::MS_NOEXEC),
        "exec" => Flag(true, MsFlags::MS_NOEXEC),
        "sync" => Flag(false, MsFlags::MS_SYNCHRONOUS),
        "async" => Flag(true, MsFlags::MS_SYNCHRONOUS),
        "dirsync" => Flag(false, MsFlags::MS_DIRSYNC),
        "remount" => Flag(false, MsFlags::MS_REMOUNT),
        "mand" => Flag(false, MsFlags::MS_MANDLOCK),
        "nomand" => Flag(true, MsFlags::MS_MANDLOCK),
        "noatime" => Flag(false, MsFlags::MS_NOATIME),
        "atime" => Flag(true, MsFlags::MS_NOATIME),
        "nodiratime" => Flag(false, MsFlags::MS_NODIRATIME),
        "diratime" => Flag(true, MsFlags::MS_NODIRATIME),
        "relatime" => Flag(false, MsFlags::MS_RELATIME),
        "norelatime" => Flag(true, MsFlags::MS_RELATIME),
        "strictatime" => Flag(false, MsFlags::MS_STRICTATIME),
        "nostrictatime" => Flag(true, MsFlags::MS_STRICTATIME),
        "lazytime" => Flag(false, MsFlags::MS_LAZYTIME),
        "nolazytime" => Flag(true, MsFlags::MS_LAZYTIME),
        "silent" => Flag(false, MsFlags::MS_SILENT),
        "loud" => Flag(true, MsFlags::MS_SILENT),
        "iversion" => Flag(false, MsFlags::MS_I_VERSION),
        "noiversion" => Flag(true, MsFlags::MS_I_VERSION),
        "acl" => Flag(false, MsFlags::MS_POSIXACL),
        "noacl" => Flag(true, MsFlags::MS_POSIXACL),
        "nosymfollow" => Flag(false, ms_nosymfollow()),
        "symfollow" => Flag(true, ms_nosymfollow()),
        "private" => Propagation(MsFlags::MS_PRIVATE),
        "rprivate" => Propagation(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
        "slave" => Propagation(MsFlags::MS_SLAVE),
        "rslave" => Propagation(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        "shared" => Propagation(MsFlags::MS_SHARED),
        "rshared" => Propagation(MsFlags::MS_SHARED | MsFlags::MS_REC),
        "unbindable" => Propagation(MsFlags::MS_UNBINDABLE),
        "runbindable" => Propagation(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
        "rro" => RecAttr(false, MOUNT_ATTR_RDONLY),
        "rrw" => RecAttr(true, MOUNT_ATTR_RDONLY),
        "rnosuid" => RecAttr(false, MOUNT_ATTR_NOSUID),
        "rsuid" => RecAttr(true, MOUNT_ATTR_NOSUID),
        "rnodev" => RecAttr(false, MOUNT_ATTR_NODEV),
        "rdev" => RecAttr(true, MOUNT_ATTR_NODEV),
        "rnoexec" => RecAttr(false, MOUNT_ATTR_NOEXEC),
        "rexec" => RecAttr(true, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => RecAttr(false, MOUNT_ATTR_NODIRATIME),
        "rdiratime" => RecAttr(true, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => RecAttr(false, MOUNT_ATTR_RELATIME),
        "rnorelatime" => RecAttr(true, MOUNT_ATTR_RELATIME),
        "rnoatime" => RecAttr(false, MOUNT_ATTR_NOATIME),
        "ratime" => RecAttr(true, MOUNT_ATTR_NOATIME),
        "rstrictatime" => RecAttr(false, MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => RecAttr(true, MOUNT_ATTR_STRICTATIME),
        "rnosymfollow" => RecAttr(false, MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => RecAttr(true, MOUNT_ATTR_NOSYMFOLLOW),
        "bind" => Opt::Bind { rec: false },
        "rbind" => Opt::Bind { rec: true },
        "tmpcopyup" => Opt::TmpCopyUp,
        "idmap" => Opt::Idmap(Idmap::Mount),
        "ridmap" => Opt::Idmap(Idmap::Recursive),
        _ => Opt::Data,
    }
}

/// Whether `option` is one this table interprets (anything else is filesystem data).
pub fn is_known_option(option: &str) -> bool {
    !matches!(classify(option), Opt::Data)
}

/// Parses `mounts[].options`. Never fails: unknown strings go to [`MountOptions::data`].
pub fn parse_mount_options<S: AsRef<str>>(options: &[S]) -> MountOptions {
    let mut out = MountOptions::default();
    for option in options {
        let option = option.as_ref();
        match classify(option) {
            Opt::Flag(false, f) => {
                out.flags.insert(f);
                out.clear_flags.remove(f);
            }
            Opt::Flag(true, f) => {
                out.flags.remove(f);
                out.clear_flags.insert(f);
            }
            Opt::Propagation(p) => out.propagation.push(p),
            Opt::RecAttr(false, a) => {
                if a & MOUNT_ATTR__ATIME == a {
                    // An access-time mode replaces the whole field: mount_setattr(2) wants
                    // MOUNT_ATTR__ATIME in attr_clr and the mode (possibly 0) in attr_set.
                    out.rec_attr_set &= !MOUNT_ATTR__ATIME;
                    out.rec_attr_clr |= MOUNT_ATTR__ATIME;
                } else {
                    out.rec_attr_clr &= !a;
                }
                out.rec_attr_set |= a;
            }
            Opt::RecAttr(true, a) => {
                out.rec_attr_set &= !a;
                out.rec_attr_clr |= a;
            }
            Opt::Bind { rec } => {
                out.bind = true;
                out.rec |= rec;
                out.flags.insert(MsFlags::MS_BIND);
                if rec {
                    out.flags.insert(MsFlags::MS_REC);
                }
            }
            Opt::TmpCopyUp => out.tmpcopyup = true,
            Opt::Idmap(mode) => out.idmap = Some(mode),
            Opt::Nothing => {}
            Opt::Data => {
                if !out.data.is_empty() {
                    out.data.push(',');
                }
                out.data.push_str(option);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    const NONE: MsFlags = MsFlags::empty();

    #[test_case(&[], NONE, NONE ; "empty")]
    #[test_case(&["ro"], MsFlags::MS_RDONLY, NONE ; "ro")]
    #[test_case(&["ro", "rw"], NONE, MsFlags::MS_RDONLY ; "later rw wins")]
    #[test_case(&["rw", "ro"], MsFlags::MS_RDONLY, NONE ; "later ro wins")]
    #[test_case(&["nosuid", "nodev", "noexec"], MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC), NONE ; "hardening")]
    #[test_case(&["suid", "dev", "exec"], NONE, MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC) ; "explicit clears")]
    #[test_case(&["bind"], MsFlags::MS_BIND, NONE ; "bind")]
    #[test_case(&["rbind"], MsFlags::MS_BIND.union(MsFlags::MS_REC), NONE ; "rbind")]
    #[test_case(&["remount", "ro", "bind"], MsFlags::MS_REMOUNT.union(MsFlags::MS_RDONLY).union(MsFlags::MS_BIND), NONE ; "remount")]
    #[test_case(&["sync", "dirsync", "mand"], MsFlags::MS_SYNCHRONOUS.union(MsFlags::MS_DIRSYNC).union(MsFlags::MS_MANDLOCK), NONE ; "sync")]
    #[test_case(&["sync", "async"], NONE, MsFlags::MS_SYNCHRONOUS ; "async clears sync")]
    #[test_case(&["noatime", "nodiratime"], MsFlags::MS_NOATIME.union(MsFlags::MS_NODIRATIME), NONE ; "noatime")]
    #[test_case(&["relatime", "strictatime", "lazytime"], MsFlags::MS_RELATIME.union(MsFlags::MS_STRICTATIME).union(MsFlags::MS_LAZYTIME), NONE ; "atime modes")]
    #[test_case(&["norelatime", "nostrictatime", "nolazytime", "atime", "diratime"], NONE, MsFlags::MS_RELATIME.union(MsFlags::MS_STRICTATIME).union(MsFlags::MS_LAZYTIME).union(MsFlags::MS_NOATIME).union(MsFlags::MS_NODIRATIME) ; "atime clears")]
    #[test_case(&["silent", "iversion", "acl"], MsFlags::MS_SILENT.union(MsFlags::MS_I_VERSION).union(MsFlags::MS_POSIXACL), NONE ; "misc")]
    #[test_case(&["loud", "noiversion", "noacl", "nomand"], NONE, MsFlags::MS_SILENT.union(MsFlags::MS_I_VERSION).union(MsFlags::MS_POSIXACL).union(MsFlags::MS_MANDLOCK) ; "misc clears")]
    #[test_case(&["nosymfollow"], MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW), NONE ; "nosymfollow")]
    #[test_case(&["defaults", ""], NONE, NONE ; "no ops")]
    fn flags(options: &[&str], set: MsFlags, cleared: MsFlags) {
        let parsed = parse_mount_options(options);
        assert_eq!((parsed.flags, parsed.clear_flags), (set, cleared));
        assert!(parsed.propagation.is_empty() && parsed.data.is_empty());
    }

    #[test_case(&["private"], &[MsFlags::MS_PRIVATE] ; "private")]
    #[test_case(&["rprivate"], &[MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)] ; "rprivate")]
    #[test_case(&["slave", "rslave"], &[MsFlags::MS_SLAVE, MsFlags::MS_SLAVE.union(MsFlags::MS_REC)] ; "slave")]
    #[test_case(&["rshared", "shared"], &[MsFlags::MS_SHARED.union(MsFlags::MS_REC), MsFlags::MS_SHARED] ; "shared in order")]
    #[test_case(&["unbindable", "runbindable"], &[MsFlags::MS_UNBINDABLE, MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)] ; "unbindable")]
    fn propagation(options: &[&str], expected: &[MsFlags]) {
        let parsed = parse_mount_options(options);
        assert_eq!(parsed.propagation, expected);
        assert_eq!(parsed.flags, NONE, "propagation must not leak into the mount flags");
    }

    #[test_case(&["rro"], MOUNT_ATTR_RDONLY, 0 ; "rro")]
    #[test_case(&["rro", "rrw"], 0, MOUNT_ATTR_RDONLY ; "rrw wins")]
    #[test_case(&["rnosuid", "rnodev", "rnoexec", "rnodiratime", "rnosymfollow"], MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NODIRATIME | MOUNT_ATTR_NOSYMFOLLOW, 0 ; "hardening")]
    #[test_case(&["rsuid", "rdev", "rexec", "rdiratime", "rsymfollow"], 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NODIRATIME | MOUNT_ATTR_NOSYMFOLLOW ; "clears")]
    #[test_case(&["rnoatime"], MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME ; "rnoatime")]
    #[test_case(&["rstrictatime"], MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME ; "rstrictatime")]
    #[test_case(&["rnoatime", "rrelatime"], MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME ; "last atime mode wins")]
    #[test_case(&["ratime"], 0, MOUNT_ATTR_NOATIME ; "ratime")]
    #[test_case(&["rnostrictatime", "rnorelatime"], 0, MOUNT_ATTR_STRICTATIME ; "atime clears")]
    fn recursive_attrs(options: &[&str], set: u64, clr: u64) {
        let parsed = parse_mount_options(options);
        assert_eq!((parsed.rec_attr_set, parsed.rec_attr_clr), (set, clr));
        assert_eq!(parsed.flags, NONE);
    }

    #[test_case(&["mode=755", "size=65536k"], "mode=755,size=65536k" ; "tmpfs")]
    #[test_case(&["nosuid", "newinstance", "ro", "ptmxmode=0666", "mode=0620"], "newinstance,ptmxmode=0666,mode=0620" ; "devpts mixed")]
    #[test_case(&["lowerdir=/a:/b,upperdir=/u"], "lowerdir=/a:/b,upperdir=/u" ; "overlay passthrough")]
    #[test_case(&["RO"], "RO" ; "options are case sensitive")]
    fn data(options: &[&str], expected: &str) {
        assert_eq!(parse_mount_options(options).data, expected);
    }

    #[test]
    fn directives() {
        let p = parse_mount_options(&["rbind", "tmpcopyup", "ridmap"]);
        assert!(p.bind && p.rec && p.tmpcopyup);
        assert_eq!(p.idmap, Some(Idmap::Recursive));
        let p = parse_mount_options(&["bind".to_string(), "idmap".to_string()]);
        assert!(p.bind && !p.rec);
        assert_eq!(p.idmap, Some(Idmap::Mount));
        assert!(!parse_mount_options(&["nosuid"]).bind);
        assert!(parse_mount_options(&["ro"]).readonly());
    }

    #[test]
    fn known_options() {
        for o in ["ro", "rbind", "rprivate", "rro", "tmpcopyup", "idmap", "defaults"] {
            assert!(is_known_option(o), "{o}");
        }
        for o in ["mode=755", "newinstance", "size=1k", "uid=0"] {
            assert!(!is_known_option(o), "{o}");
        }
    }
}
