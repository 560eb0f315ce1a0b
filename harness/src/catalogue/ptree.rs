//! What a hung command was doing: its process tree read from /proc, each process with its
//! state, the kernel function it sleeps in (wchan) and its command line. Attached to a
//! timeout's error so a flake seen once in CI says where it hung.

use std::collections::BTreeMap;

/// One process as /proc shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// Process id.
    pub pid: i32,
    /// Parent process id.
    pub ppid: i32,
    /// `comm`.
    pub comm: String,
    /// One-letter state (R, S, D, Z, T …).
    pub state: char,
}

/// Parse `/proc/PID/stat`: `pid (comm) state ppid …`; comm may hold spaces and parentheses,
/// so it ends at the last `)`.
pub fn parse_stat(stat: &str) -> Option<Proc> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(Proc { pid, ppid, comm, state })
}

/// The pids of `root` and all its descendants among `procs`, parents before children.
pub fn descendants(procs: &[Proc], root: i32) -> Vec<i32> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if out.contains(&pid) {
            continue;
        }
        out.push(pid);
        if let Some(c) = children.get(&pid) {
            stack.extend(c.iter().rev());
        }
    }
    out.retain(|pid| procs.iter().any(|p| p.pid == *pid));
    out
}

fn read(pid: i32, file: &str) -> String {
    std::fs::read(format!("/proc/{pid}/{file}"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_owned())
        .unwrap_or_default()
}

/// Every process of this system, as far as /proc can be read.
fn all() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| parse_stat(&read(pid, "stat")))
        .collect()
}

/// The function names of a kernel stack (`[<0>] do_select+0x3a/0x60` → `do_select`), innermost
/// first, at most `n`.
pub fn stack_functions(stack: &str, n: usize) -> Vec<&str> {
    stack
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|f| f.split('+').next().unwrap_or(f))
        .take(n)
        .collect()
}

/// The sockets of a `/proc/net/tcp` table with a state other than LISTEN (0A), as
/// `local>remote:state`, hex as the kernel prints it.
pub fn tcp_connections(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f[3] != "0A").then(|| format!("{}>{}:{}", f[1], f[2], f[3]))
        })
        .collect()
}

/// `root`'s process tree, a line per process: `pid state comm wchan=… stack=… cmdline`, and
/// the TCP connections of each network namespace the tree is in (once per namespace).
pub fn describe(root: i32) -> String {
    let procs = all();
    let mut netns_seen = Vec::new();
    descendants(&procs, root)
        .into_iter()
        .filter_map(|pid| procs.iter().find(|p| p.pid == pid))
        .map(|p| {
            let wchan = read(p.pid, "wchan");
            let wchan = if wchan.is_empty() || wchan == "0" { "-".to_owned() } else { wchan };
            let stack = read(p.pid, "stack");
            let mut line = format!(
                "{} {} {} wchan={} stack={} {}",
                p.pid,
                p.state,
                p.comm,
                wchan,
                stack_functions(&stack, 4).join("<"),
                read(p.pid, "cmdline")
            );
            let ns = std::fs::read_link(format!("/proc/{}/ns/net", p.pid)).ok();
            if ns.is_some() && !netns_seen.contains(&ns) {
                netns_seen.push(ns);
                let tcp = tcp_connections(&read(p.pid, "net/tcp"));
                line.push_str(&format!(" [its netns's tcp: {}]", tcp.join(" ")));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32) -> Proc {
        Proc { pid, ppid, comm: format!("p{pid}"), state: 'S' }
    }

    type Parsed<'a> = Option<(i32, i32, &'a str, char)>;

    #[test]
    fn stat_lines() {
        let cases: &[(&str, Parsed)] = &[
            ("12 (isorun) S 1 12 12 0 -1", Some((12, 1, "isorun", 'S'))),
            ("7 (a b) c)) D 3 7", Some((7, 3, "a b) c)", 'D'))),
            ("9 () Z 2", Some((9, 2, "", 'Z'))),
            ("x (sh) S 1", None),
            ("5 (sh) S", None),
            ("5 sh S 1", None),
            ("", None),
        ];
        for (line, want) in cases {
            let got = parse_stat(line).map(|p| (p.pid, p.ppid, p.comm, p.state));
            let want = want.map(|(a, b, c, d)| (a, b, c.to_owned(), d));
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn descendants_parents_first_and_only_the_subtree() {
        let procs = [p(1, 0), p(10, 1), p(11, 10), p(12, 10), p(13, 11), p(20, 1)];
        assert_eq!(descendants(&procs, 10), [10, 11, 13, 12]);
        assert_eq!(descendants(&procs, 20), [20]);
        assert_eq!(descendants(&procs, 99), Vec::<i32>::new());
    }

    #[test]
    fn stacks_and_tcp_tables() {
        let stack =
            "[<0>] do_select+0x3a/0x60\n[<0>] core_sys_select+0x1f/0x30\n[<0>] __x64_sys_select+0x1/0x2\n";
        assert_eq!(stack_functions(stack, 2), ["do_select", "core_sys_select"]);
        assert_eq!(stack_functions("", 2), Vec::<&str>::new());
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue\n   \
            0: 00000000:1B58 00000000:0000 0A 00000000:00000000\n   \
            1: 02014D0A:1B58 03014D0A:A2C4 01 00000000:00000000\n";
        assert_eq!(tcp_connections(tcp), ["02014D0A:1B58>03014D0A:A2C4:01"]);
    }

    #[test]
    fn describes_this_process() {
        let me = std::process::id() as i32;
        let text = describe(me);
        assert!(text.starts_with(&format!("{me} ")), "{text}");
    }
}
