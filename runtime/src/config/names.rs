//! The closed vocabularies of config.json (runtime-spec 1.3) and the sysctl rules, as pure
//! tables and functions.

use std::path::PathBuf;
use std::str::FromStr;

/// `linux.namespaces[].type` values, in the spec's order.
pub const NAMESPACE_TYPES: [&str; 8] = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"];

/// `process.rlimits[].type` values Linux knows (getrlimit(2)).
pub const RLIMIT_TYPES: [&str; 16] = [
    "RLIMIT_AS",
    "RLIMIT_CORE",
    "RLIMIT_CPU",
    "RLIMIT_DATA",
    "RLIMIT_FSIZE",
    "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_NOFILE",
    "RLIMIT_NPROC",
    "RLIMIT_RSS",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
    "RLIMIT_SIGPENDING",
    "RLIMIT_STACK",
];

/// The five capability sets of `process.capabilities`.
pub const CAPABILITY_SETS: [&str; 5] = ["bounding", "effective", "inheritable", "permitted", "ambient"];

/// Whether `name` is a Linux capability name as the spec writes it (`CAP_SYS_ADMIN`).
pub fn is_known_capability(name: &str) -> bool {
    caps::Capability::from_str(name).is_ok()
}

/// `linux.seccomp.defaultAction` and `syscalls[].action` values.
pub const SECCOMP_ACTIONS: [&str; 9] = [
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

/// `linux.seccomp.syscalls[].args[].op` values.
pub const SECCOMP_OPERATORS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// `linux.seccomp.flags[]` values.
pub const SECCOMP_FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// `linux.seccomp.architectures[]` values (libseccomp names listed by the spec).
pub const SECCOMP_ARCHES: [&str; 22] = [
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
];

/// `linux.rootfsPropagation` values.
pub const ROOTFS_PROPAGATIONS: [&str; 8] =
    ["private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"];

/// The members of `hooks`, in lifecycle order.
pub const HOOK_KINDS: [&str; 6] =
    ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

/// `linux.devices[].type` values.
pub const DEVICE_TYPES: [&str; 4] = ["c", "b", "u", "p"];

/// `linux.timeOffsets` keys: the clocks a time namespace virtualises.
pub const TIME_OFFSET_CLOCKS: [&str; 2] = ["monotonic", "boottime"];

/// The System V IPC sysctls that belong to the ipc namespace (besides `fs.mqueue.*`).
pub const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The namespace (a [`NAMESPACE_TYPES`] name) a sysctl belongs to, per runc's rules:
/// ipc for the System V ones and `fs.mqueue.*`, network for `net.*`, uts for
/// `kernel.hostname` and `kernel.domainname`. `None`: not namespaced, a container may not
/// set it.
pub fn sysctl_namespace(key: &str) -> Option<&'static str> {
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        Some("ipc")
    } else if key.starts_with("net.") {
        Some("network")
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some("uts")
    } else {
        None
    }
}

/// The file under `/proc/sys` for sysctl `key`, as sysctl(8) maps it: `.` separates
/// components and `/` stands for a literal `.` inside one (`net.ipv4.conf.eth0/100.forwarding`
/// is `/proc/sys/net/ipv4/conf/eth0.100/forwarding`). Rejects keys that could name anything
/// outside `/proc/sys` or are malformed.
pub fn sysctl_path(key: &str) -> Result<PathBuf, String> {
    if key.is_empty() {
        return Err("empty sysctl name".into());
    }
    if key.contains('\0') {
        return Err("sysctl name contains a NUL byte".into());
    }
    let mut path = PathBuf::from("/proc/sys");
    for part in key.split('.') {
        let component = part.replace('/', ".");
        if component.is_empty() || component == "." || component == ".." {
            return Err("malformed sysctl name (empty, `.` or `..` component)".into());
        }
        path.push(component);
    }
    Ok(path)
}

/// The closest known name to `bad` among `known` when it differs only in case or a missing
/// prefix, for a "did you mean" hint.
pub(crate) fn suggest<'a>(
    bad: &str,
    known: impl IntoIterator<Item = &'a str>,
    prefix: &str,
) -> Option<&'a str> {
    let upper = bad.to_ascii_uppercase();
    known.into_iter().find(|k| {
        k.eq_ignore_ascii_case(bad)
            || (k.len() == upper.len() + prefix.len() && k.starts_with(prefix) && k.ends_with(&upper))
    })
}

/// Capability names up to Linux 5.9 (`CAP_CHECKPOINT_RESTORE`), as `caps` knows them.
pub(crate) const KNOWN_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("kernel.shmmax" => Some("ipc"))]
    #[test_case("fs.mqueue.queues_max" => Some("ipc"))]
    #[test_case("net.ipv4.ip_forward" => Some("network"))]
    #[test_case("kernel.domainname" => Some("uts"))]
    #[test_case("kernel.hostname" => Some("uts"))]
    #[test_case("kernel.core_pattern" => None)]
    #[test_case("vm.swappiness" => None)]
    #[test_case("fs.mqueue" => None)]
    fn sysctl_namespaces(key: &str) -> Option<&'static str> {
        sysctl_namespace(key)
    }

    #[test_case("net.ipv4.ip_forward" => Ok(PathBuf::from("/proc/sys/net/ipv4/ip_forward")))]
    #[test_case("net.ipv4.conf.eth0/100.forwarding" => Ok(PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding")))]
    #[test_case("net..x" => matches Err(_))]
    #[test_case("net./../x" => matches Err(_))]
    #[test_case("net.//" => matches Err(_))]
    #[test_case("net." => matches Err(_))]
    #[test_case("" => matches Err(_))]
    #[test_case("net.a\0b" => matches Err(_))]
    fn sysctl_paths(key: &str) -> Result<PathBuf, String> {
        sysctl_path(key)
    }

    #[test]
    fn known_caps_matches_the_caps_crate() {
        assert_eq!(caps::all().len(), KNOWN_CAPS.len());
        assert!(KNOWN_CAPS.iter().all(|n| is_known_capability(n)));
    }

    #[test_case("cap_sys_admin" => Some("CAP_SYS_ADMIN"))]
    #[test_case("SYS_ADMIN" => Some("CAP_SYS_ADMIN"))]
    #[test_case("sys_admin" => Some("CAP_SYS_ADMIN"))]
    #[test_case("CAP_FOO" => None)]
    fn capability_hints(bad: &str) -> Option<&'static str> {
        suggest(bad, KNOWN_CAPS, "CAP_")
    }
}
