//! fstab-style mount options (`ro`, `nosuid`, `rbind`, `rslave`, `mode=755`, ...) split into
//! mount(2) flags, propagation changes and filesystem data. Pure.

use nix::mount::MsFlags;

/// The parsed `options` of one mount entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2) (`MS_RDONLY`, `MS_NOSUID`, ...), without `MS_BIND`/`MS_REC`.
    pub flags: MsFlags,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind` was given (recursive bind).
    pub recursive: bool,
    /// Propagation changes, applied one mount(2) call each after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// Everything else, passed to the filesystem as its data (`mode=755`, `size=65536k`, ...).
    pub data: Vec<String>,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self { flags: MsFlags::empty(), bind: false, recursive: false, propagation: Vec::new(), data: Vec::new() }
    }
}

impl MountOptions {
    /// The filesystem data as one comma-separated string, `None` if empty.
    pub fn data_string(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }
}

/// An option this runtime recognises but cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mount option {option:?} is not supported")]
pub struct UnsupportedOption {
    /// The option as written in config.json.
    pub option: String,
}

/// Map a propagation name (`rslave`, `private`, ...) to its mount(2) flags.
pub fn propagation_flags(name: &str) -> Option<MsFlags> {
    let rec = MsFlags::MS_REC;
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | rec,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | rec,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | rec,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | rec,
        _ => return None,
    })
}

/// `(set, clear)` for the options that are plain mount(2) flags.
fn flag_option(name: &str) -> Option<(MsFlags, MsFlags)> {
    let none = MsFlags::empty();
    let atime = MsFlags::MS_NOATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME;
    Some(match name {
        "defaults" => (none, none),
        "ro" => (MsFlags::MS_RDONLY, none),
        "rw" => (none, MsFlags::MS_RDONLY),
        "nosuid" => (MsFlags::MS_NOSUID, none),
        "suid" => (none, MsFlags::MS_NOSUID),
        "nodev" => (MsFlags::MS_NODEV, none),
        "dev" => (none, MsFlags::MS_NODEV),
        "noexec" => (MsFlags::MS_NOEXEC, none),
        "exec" => (none, MsFlags::MS_NOEXEC),
        "sync" => (MsFlags::MS_SYNCHRONOUS, none),
        "async" => (none, MsFlags::MS_SYNCHRONOUS),
        "dirsync" => (MsFlags::MS_DIRSYNC, none),
        "mand" => (MsFlags::MS_MANDLOCK, none),
        "nomand" => (none, MsFlags::MS_MANDLOCK),
        "remount" => (MsFlags::MS_REMOUNT, none),
        "noatime" => (MsFlags::MS_NOATIME, atime),
        "atime" => (none, MsFlags::MS_NOATIME),
        "relatime" => (MsFlags::MS_RELATIME, atime),
        "norelatime" => (none, MsFlags::MS_RELATIME),
        "strictatime" => (MsFlags::MS_STRICTATIME, atime),
        "nostrictatime" => (none, MsFlags::MS_STRICTATIME),
        "nodiratime" => (MsFlags::MS_NODIRATIME, none),
        "diratime" => (none, MsFlags::MS_NODIRATIME),
        "lazytime" => (MsFlags::MS_LAZYTIME, none),
        "nolazytime" => (none, MsFlags::MS_LAZYTIME),
        "silent" => (MsFlags::MS_SILENT, none),
        "loud" => (none, MsFlags::MS_SILENT),
        _ => return None,
    })
}

/// Options that need mount_setattr(2) or id-mapped mounts, which this runtime does not do.
fn unsupported(name: &str) -> bool {
    matches!(name, "idmap" | "ridmap")
        || (name.len() > 1
            && name.starts_with('r')
            && matches!(
                &name[1..],
                "ro" | "rw" | "nosuid" | "suid" | "nodev" | "dev" | "noexec" | "exec"
                    | "noatime" | "atime" | "relatime" | "norelatime" | "strictatime"
                    | "nostrictatime" | "nodiratime" | "diratime" | "nosymfollow" | "symfollow"
            ))
}

/// Parse fstab-style options. Later options win over earlier ones (`ro,rw` is read-write).
/// `tmpcopyup` (a runc extension) is accepted and ignored.
pub fn parse_mount_options<S: AsRef<str>>(options: &[S]) -> Result<MountOptions, UnsupportedOption> {
    let mut out = MountOptions::default();
    for opt in options {
        let opt = opt.as_ref().trim();
        if opt.is_empty() || opt == "tmpcopyup" {
            continue;
        }
        if let Some((set, clear)) = flag_option(opt) {
            out.flags.remove(clear);
            out.flags.insert(set);
        } else if let Some(p) = propagation_flags(opt) {
            out.propagation.push(p);
        } else if opt == "bind" {
            out.bind = true;
        } else if opt == "rbind" {
            out.bind = true;
            out.recursive = true;
        } else if unsupported(opt) {
            return Err(UnsupportedOption { option: opt.to_owned() });
        } else {
            out.data.push(opt.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn flags(opts: &[&str]) -> MsFlags {
        parse_mount_options(opts).unwrap().flags
    }

    #[test_case(&["ro"], MsFlags::MS_RDONLY ; "ro")]
    #[test_case(&["ro", "rw"], MsFlags::empty() ; "later rw wins")]
    #[test_case(&["nosuid", "nodev", "noexec"], MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC ; "no trio")]
    #[test_case(&["nosuid", "suid"], MsFlags::empty() ; "suid clears")]
    #[test_case(&["relatime", "strictatime"], MsFlags::MS_STRICTATIME ; "atime modes exclusive")]
    #[test_case(&["noatime", "relatime"], MsFlags::MS_RELATIME ; "relatime replaces noatime")]
    #[test_case(&["sync", "dirsync", "mand"], MsFlags::MS_SYNCHRONOUS | MsFlags::MS_DIRSYNC | MsFlags::MS_MANDLOCK ; "sync dirsync mand")]
    #[test_case(&["defaults"], MsFlags::empty() ; "defaults")]
    fn flag_table(opts: &[&str], want: MsFlags) {
        assert_eq!(flags(opts), want);
    }

    #[test]
    fn runc_dev_tmpfs() {
        let o = parse_mount_options(&["nosuid", "strictatime", "mode=755", "size=65536k"]).unwrap();
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=65536k"));
        assert!(!o.bind);
    }

    #[test]
    fn devpts_data_kept_in_order() {
        let o = parse_mount_options(&[
            "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5",
        ])
        .unwrap();
        assert_eq!(o.data, ["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC);
    }

    #[test_case(&["bind"], true, false ; "bind")]
    #[test_case(&["rbind"], true, true ; "rbind")]
    #[test_case(&["ro"], false, false ; "no bind")]
    fn bind_kinds(opts: &[&str], bind: bool, recursive: bool) {
        let o = parse_mount_options(opts).unwrap();
        assert_eq!((o.bind, o.recursive), (bind, recursive));
    }

    #[test]
    fn propagation_is_separate_and_ordered() {
        let o = parse_mount_options(&["rbind", "rprivate", "ro", "slave"]).unwrap();
        assert_eq!(o.propagation, [MsFlags::MS_PRIVATE | MsFlags::MS_REC, MsFlags::MS_SLAVE]);
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert!(o.data.is_empty());
    }

    #[test_case("idmap" ; "idmap")]
    #[test_case("rro" ; "recursive ro")]
    #[test_case("rnosuid" ; "recursive nosuid")]
    fn unsupported_is_an_error(opt: &str) {
        let err = parse_mount_options(&[opt]).unwrap_err();
        assert_eq!(err.option, opt);
    }

    #[test]
    fn tmpcopyup_and_blanks_ignored() {
        assert_eq!(parse_mount_options(&["tmpcopyup", ""]).unwrap(), MountOptions::default());
    }

    #[test_case("rslave", Some(MsFlags::MS_SLAVE | MsFlags::MS_REC) ; "rslave")]
    #[test_case("shared", Some(MsFlags::MS_SHARED) ; "shared")]
    #[test_case("runbindable", Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC) ; "runbindable")]
    #[test_case("bogus", None ; "bogus")]
    fn propagation_names(name: &str, want: Option<MsFlags>) {
        assert_eq!(propagation_flags(name), want);
    }
}
