//! The order of the series within a round of the startup bench: a Williams design (a
//! carryover-balanced Latin square). Every series runs once per round, and over a cycle of
//! rounds (k rounds for k series when k is even, 2k when it is odd) every series comes
//! directly after every other one equally often.
//!
//! A fixed rotation (round r starts at series r) made each series follow the same one in
//! almost every round, and what a run leaves behind is charged to the next: in a TCG guest a
//! runtime started right after another binary took 15–35 ms longer than right after itself
//! (QEMU's translated code), so `isorun` after `unshare` looked slower than `isorun+docker`
//! after `isorun`, and swapping the series' order reversed it. On a host it is the caches,
//! the kernel's deferred teardown of the last run's namespaces and the like, smaller but of
//! the same kind.

/// The series indexes `0..k` in the order of round `round`.
pub fn round_order(k: usize, round: usize) -> Vec<usize> {
    if k == 0 {
        return Vec::new();
    }
    // First row: 0, 1, k-1, 2, k-2, 3, … (each difference between neighbours taken once);
    // row r adds r to every entry. For an odd k the rows of a second square, the first's
    // rows reversed, balance what one square cannot.
    let first: Vec<usize> =
        (0..k).map(|j| if j % 2 == 1 { j.div_ceil(2) } else { (k - j / 2) % k }).collect();
    let shift = round % k;
    let mut row: Vec<usize> = first.iter().map(|&x| (x + shift) % k).collect();
    if k % 2 == 1 && (round / k) % 2 == 1 {
        row.reverse();
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(1, 0 => vec![0]; "one series")]
    #[test_case(4, 0 => vec![0, 1, 3, 2]; "even, first round")]
    #[test_case(4, 1 => vec![1, 2, 0, 3]; "even, second round")]
    #[test_case(4, 4 => vec![0, 1, 3, 2]; "even, the cycle again")]
    #[test_case(3, 0 => vec![0, 1, 2]; "odd, first square")]
    #[test_case(3, 3 => vec![2, 1, 0]; "odd, second square reversed")]
    #[test_case(0, 5 => Vec::<usize>::new(); "no series")]
    fn rows(k: usize, round: usize) -> Vec<usize> {
        round_order(k, round)
    }

    #[test]
    fn every_round_runs_every_series_once_and_every_pair_is_adjacent_equally_often() {
        for k in 1..=12 {
            let cycle = if k % 2 == 0 { k } else { 2 * k };
            let mut follows = vec![vec![0usize; k]; k];
            let mut first = vec![0usize; k];
            for round in 0..cycle {
                let row = round_order(k, round);
                let mut seen = row.clone();
                seen.sort_unstable();
                assert_eq!(seen, (0..k).collect::<Vec<_>>(), "k={k} round {round}: {row:?}");
                first[row[0]] += 1;
                for w in row.windows(2) {
                    follows[w[0]][w[1]] += 1;
                }
            }
            let per_pair = if k % 2 == 0 { 1 } else { 2 };
            for (a, row) in follows.iter().enumerate() {
                for (b, &n) in row.iter().enumerate() {
                    let want = if a == b { 0 } else { per_pair };
                    assert_eq!(n, want, "k={k}: {b} after {a} {n} times");
                }
            }
            assert!(first.iter().all(|&n| n == cycle / k), "k={k}: first in a round {first:?}");
        }
    }
}
