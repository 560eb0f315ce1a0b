//! Kernel addresses in a console trace resolved with the kernel's System.map.
//!
//! Debian's kernels are built with kallsyms, so their traces already name functions
//! (`dequeue_task_fair+0x1c/0x2a0`); what a System.map adds is the raw addresses a trace
//! also prints (`? 0xffffffffa1234567`, register values), after undoing KASLR with the
//! trace's `Kernel Offset:` line. Debian's image packages ship only a placeholder System.map
//! ("The real System.map is in the `linux-image-<version>-dbg` package"); [`SystemMap::load`]
//! says so rather than resolving nothing silently.

use std::path::{Path, PathBuf};

/// The text symbols of a System.map, sorted by address.
#[derive(Debug, Clone, Default)]
pub struct SystemMap {
    syms: Vec<(u64, String)>,
}

/// Where the kernel's System.map could be, given its image: next to it
/// (`boot/System.map-<release>`), or where the -dbg package puts the real one.
pub fn candidates(vmlinuz: &Path, release: &str) -> Vec<PathBuf> {
    let dir = vmlinuz.parent().unwrap_or(Path::new("."));
    let mut tree = dir.to_path_buf();
    while !tree.join("usr").exists() && !tree.join("boot").exists() && tree.pop() {}
    vec![
        tree.join(format!("usr/lib/debug/boot/System.map-{release}")),
        dir.join(format!("System.map-{release}")),
        dir.join("System.map"),
    ]
}

impl SystemMap {
    /// Parse `ADDRESS TYPE NAME` lines, keeping text symbols (T, t, W, w).
    pub fn parse(text: &str) -> SystemMap {
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let addr = u64::from_str_radix(w.next()?, 16).ok()?;
                let kind = w.next()?;
                let name = w.next()?;
                matches!(kind, "T" | "t" | "W" | "w").then(|| (addr, name.to_owned()))
            })
            .collect();
        syms.sort();
        SystemMap { syms }
    }

    /// The first usable map among `paths`, or why there is none.
    pub fn load(paths: &[PathBuf]) -> Result<(SystemMap, PathBuf), String> {
        let mut why = Vec::new();
        for p in paths {
            match std::fs::read_to_string(p) {
                Ok(text) => {
                    let map = SystemMap::parse(&text);
                    if map.syms.is_empty() {
                        let first = text.lines().next().unwrap_or_default();
                        why.push(format!("{}: no text symbols ({first:?})", p.display()));
                        continue;
                    }
                    return Ok((map, p.clone()));
                }
                Err(e) => why.push(format!("{}: {e}", p.display())),
            }
        }
        Err(why.join("; "))
    }

    /// Symbol and offset of `addr` (already without the KASLR offset).
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.syms.partition_point(|(a, _)| *a <= addr).checked_sub(1)?;
        let (a, name) = &self.syms[i];
        // Beyond the last symbol by more than 1 MiB is not text.
        (addr - a < 1 << 20).then_some((name.as_str(), addr - a))
    }
}

/// The KASLR offset from a trace's `Kernel Offset: 0x… from 0x…` line (0 when disabled or absent).
pub fn kaslr_offset(lines: &[String]) -> u64 {
    lines
        .iter()
        .find_map(|l| {
            let rest = l.split("Kernel Offset: 0x").nth(1)?;
            u64::from_str_radix(rest.split_whitespace().next()?, 16).ok()
        })
        .unwrap_or(0)
}

/// A kernel text address written as `0xffffffff…`, `ffffffff…` or `[<ffffffff…>]`.
fn kernel_address(token: &str) -> Option<u64> {
    let t = token.trim_start_matches("[<").trim_end_matches(">]").trim_start_matches("0x");
    (t.len() == 16 && t.starts_with("ffffffff")).then(|| u64::from_str_radix(t, 16).ok()).flatten()
}

/// `lines` with every raw kernel address that `map` resolves (after taking the KASLR `offset`
/// off, see [`kaslr_offset`]) followed by ` <symbol+0xoff>`.
pub fn symbolise(lines: &[String], map: &SystemMap, offset: u64) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let mut out = l.clone();
            for tok in l.split(|c: char| c.is_whitespace() || c == ':' || c == ',') {
                let Some(addr) = kernel_address(tok) else { continue };
                if let Some((name, off)) = map.lookup(addr.wrapping_sub(offset)) {
                    out = out.replacen(tok, &format!("{tok} <{name}+{off:#x}>"), 1);
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    const MAP: &str = "ffffffff81000000 T _stext\nffffffff81100000 t dequeue_task_fair\n\
                       ffffffff81100400 T enqueue_task_fair\nffffffff82000000 D some_data\n";

    #[test_case(0xffff_ffff_8110_001c, Some(("dequeue_task_fair", 0x1c)) ; "inside")]
    #[test_case(0xffff_ffff_8110_0400, Some(("enqueue_task_fair", 0)) ; "exact")]
    #[test_case(0xffff_ffff_8000_0000, None ; "before the first")]
    #[test_case(0xffff_ffff_9000_0000, None ; "far past the last")]
    fn lookups(addr: u64, want: Option<(&str, u64)>) {
        assert_eq!(SystemMap::parse(MAP).lookup(addr), want);
    }

    #[test]
    fn raw_addresses_are_resolved_after_undoing_kaslr() {
        let lines: Vec<String> = [
            " ? 0xffffffff9110001c",
            " [<ffffffff91100410>] something",
            " dequeue_task_fair+0x1c/0x2a0",
            "Kernel Offset: 0x10000000 from 0xffffffff81000000 (relocation range: ...)",
        ]
        .map(String::from)
        .to_vec();
        let got = symbolise(&lines, &SystemMap::parse(MAP), kaslr_offset(&lines));
        assert_eq!(got[0], " ? 0xffffffff9110001c <dequeue_task_fair+0x1c>");
        assert_eq!(got[1], " [<ffffffff91100410>] <enqueue_task_fair+0x10> something");
        assert_eq!(got[2], lines[2]);
    }

    #[test]
    fn debians_placeholder_map_is_refused_with_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("System.map-x");
        std::fs::write(
            &p,
            "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n",
        )
        .unwrap();
        let err = SystemMap::load(&[p]).unwrap_err();
        assert!(err.contains("no text symbols") && err.contains("-dbg package"), "{err}");
    }

    #[test]
    fn candidates_cover_the_image_dir_and_the_dbg_layout() {
        let c = candidates(Path::new("/c/tree/boot/vmlinuz-6.1.0-1"), "6.1.0-1");
        assert!(c.contains(&PathBuf::from("/c/tree/boot/System.map-6.1.0-1")), "{c:?}");
        assert!(c.iter().any(|p| p.ends_with("usr/lib/debug/boot/System.map-6.1.0-1")), "{c:?}");
    }
}
