//! Which cells a matrix run has and what work they make (pure): every kernel × cgroup mode ×
//! base config, the shard of them this run takes, and the work items, a cell and a group of
//! assertions each, one VM apiece (two when it is retried).

use crate::catalogue::BaseConfig;
use crate::protocol::CgroupMode;

/// A cell of the matrix: a kernel booted in a cgroup mode, every bundle made from a base
/// config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// Kernel name (kernels.toml).
    pub kernel: String,
    /// The cgroup mode booted.
    pub mode: CgroupMode,
    /// The config every bundle starts from.
    pub base: BaseConfig,
}

impl Cell {
    /// The cell's label without the kernel: the cgroup mode, then `/base` when the base config
    /// is not `spec` (as records label it, see [`Record::setup`](crate::report::Record::setup)).
    pub fn label(&self) -> String {
        if self.base.is_spec() {
            self.mode.as_str().to_string()
        } else {
            format!("{}/{}", self.mode.as_str(), self.base.name)
        }
    }
}

/// The base configs of a run: `--base-config`'s, then, with `--rootless`, the rootless one
/// (`podman-rootless`) when not already named: `--rootless` adds a rootless cell per kernel ×
/// cgroup mode; `--base-config podman-rootless` alone runs only rootless cells.
pub fn bases(named: &[BaseConfig], rootless: bool) -> Vec<BaseConfig> {
    let mut all = named.to_vec();
    let extra = BaseConfig::podman_rootless();
    if rootless && !all.contains(&extra) {
        all.push(extra);
    }
    all
}

/// Every cell of `kernels` × `modes` × `bases`, kernel-major, then mode, then base.
pub fn cells(kernels: &[String], modes: &[CgroupMode], bases: &[BaseConfig]) -> Vec<Cell> {
    let mut all = Vec::new();
    for kernel in kernels {
        for mode in modes {
            for base in bases {
                all.push(Cell { kernel: kernel.clone(), mode: *mode, base: base.clone() });
            }
        }
    }
    all
}

/// Shard `I` of `N` (1-based; see [`report::shard`](crate::report::shard)) of `cells`, or all
/// of them.
pub fn shard(cells: Vec<Cell>, shard: Option<(usize, usize)>) -> Vec<Cell> {
    match shard {
        Some((i, n)) => crate::report::shard(&cells, i, n),
        None => cells,
    }
}

/// The kernels `cells` boot, in order, once each.
pub fn kernels(cells: &[Cell]) -> Vec<String> {
    let mut names: Vec<String> = cells.iter().map(|c| c.kernel.clone()).collect();
    names.dedup();
    names
}

/// One VM's work: a cell (its index) and the assertions to run in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// Index of the cell.
    pub cell: usize,
    /// The assertions.
    pub ids: Vec<String>,
}

/// The groups `ids` fall into: `per_vm` assertions each (None: one group of all).
pub fn group_size(ids: &[String], per_vm: Option<usize>) -> usize {
    per_vm.unwrap_or(ids.len()).max(1)
}

/// How many work items each cell has.
pub fn groups_per_cell(ids: &[String], per_vm: Option<usize>) -> usize {
    ids.chunks(group_size(ids, per_vm)).count()
}

/// The work items of `cells` cells, cell-major: each cell's `ids` in groups of `per_vm`
/// (None: one group). With `--per-vm`, a cell's VMs run in parallel too.
pub fn work(cells: usize, ids: &[String], per_vm: Option<usize>) -> Vec<Work> {
    let size = group_size(ids, per_vm);
    (0..cells).flat_map(|cell| ids.chunks(size).map(move |g| Work { cell, ids: g.to_vec() })).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn names(s: &[&str]) -> Vec<String> {
        s.iter().map(|n| n.to_string()).collect()
    }

    fn labels(cells: &[Cell]) -> Vec<String> {
        cells.iter().map(|c| format!("{}/{}", c.kernel, c.label())).collect()
    }

    #[test]
    fn cells_are_kernel_major_then_mode_then_base() {
        let bases = [BaseConfig::default(), BaseConfig::parse("docker").unwrap()];
        let got = cells(&names(&["a", "b"]), &[CgroupMode::V1, CgroupMode::V2], &bases);
        assert_eq!(
            labels(&got),
            ["a/v1", "a/v1/docker", "a/v2", "a/v2/docker", "b/v1", "b/v1/docker", "b/v2", "b/v2/docker"]
        );
    }

    #[test_case("spec", false, &["spec"] ; "no rootless")]
    #[test_case("spec", true, &["spec", "podman-rootless"] ; "rootless adds a cell")]
    #[test_case("docker,spec", true, &["docker", "spec", "podman-rootless"] ; "after the named ones")]
    #[test_case("podman-rootless", true, &["podman-rootless"] ; "named already")]
    #[test_case("podman-rootless", false, &["podman-rootless"] ; "rootless only")]
    fn rootless_bases(named: &str, rootless: bool, want: &[&str]) {
        let got = bases(&BaseConfig::parse_list(named).unwrap(), rootless);
        assert_eq!(got.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), want);
        assert_eq!(got.iter().any(BaseConfig::is_rootless), want.contains(&"podman-rootless"));
    }

    #[test]
    fn rootless_cells_are_labelled() {
        let got = cells(&names(&["debian-6.12"]), &[CgroupMode::V2], &bases(&[BaseConfig::default()], true));
        assert_eq!(labels(&got), ["debian-6.12/v2", "debian-6.12/v2/podman-rootless"]);
    }

    #[test_case(None, &["a/v1", "a/v2", "b/v1", "b/v2", "c/v1", "c/v2"], &["a", "b", "c"] ; "no shard: all")]
    #[test_case(Some((1, 2)), &["a/v1", "b/v1", "c/v1"], &["a", "b", "c"] ; "first of two")]
    #[test_case(Some((2, 4)), &["a/v2", "c/v2"], &["a", "c"] ; "second of four skips a kernel")]
    #[test_case(Some((3, 3)), &["b/v1", "c/v2"], &["b", "c"] ; "last of three")]
    fn shards_and_their_kernels(s: Option<(usize, usize)>, want: &[&str], kernels_wanted: &[&str]) {
        let all =
            cells(&names(&["a", "b", "c"]), &[CgroupMode::V1, CgroupMode::V2], &[BaseConfig::default()]);
        let got = shard(all, s);
        assert_eq!(labels(&got), want);
        assert_eq!(kernels(&got), kernels_wanted);
    }

    #[test_case(2, &["x", "y", "z"], None, &[(0, &["x", "y", "z"]), (1, &["x", "y", "z"])] ; "all in one VM per cell")]
    #[test_case(2, &["x", "y", "z"], Some(2), &[(0, &["x", "y"]), (0, &["z"]), (1, &["x", "y"]), (1, &["z"])] ; "two per VM")]
    #[test_case(1, &["x", "y"], Some(1), &[(0, &["x"]), (0, &["y"])] ; "each alone")]
    #[test_case(1, &["x"], Some(5), &[(0, &["x"])] ; "more per VM than there are")]
    #[test_case(0, &["x"], None, &[] ; "no cells no work")]
    fn work_items(cells: usize, ids: &[&str], per_vm: Option<usize>, want: &[(usize, &[&str])]) {
        let ids = names(ids);
        let got = work(cells, &ids, per_vm);
        let want: Vec<Work> = want.iter().map(|(cell, g)| Work { cell: *cell, ids: names(g) }).collect();
        assert_eq!(got, want);
        if cells > 0 {
            assert_eq!(groups_per_cell(&ids, per_vm) * cells, got.len());
        }
    }
}
