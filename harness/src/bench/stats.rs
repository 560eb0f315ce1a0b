//! Pure statistics over samples (milliseconds or any unit): median, p95, mean, min, max.

use serde::{Deserialize, Serialize};

/// A summary of one series of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample.
    pub min: f64,
    /// Median (the mean of the two middle samples for an even count).
    pub median: f64,
    /// 95th percentile, nearest-rank.
    pub p95: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Largest sample.
    pub max: f64,
}

/// The summary of `samples`; `None` when there are none (or one is NaN).
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Some(Summary {
        n,
        min: v[0],
        median,
        p95: percentile_sorted(&v, 95.0),
        mean: v.iter().sum::<f64>() / n as f64,
        max: v[n - 1],
    })
}

/// Nearest-rank percentile of sorted, non-empty samples: the smallest sample with at least
/// `p` percent of the samples at or below it.
fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `value / base`, or `None` when the base is zero or missing.
pub fn ratio(value: f64, base: Option<f64>) -> Option<f64> {
    base.filter(|b| *b > 0.0).map(|b| value / b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(&[3.0], 3.0, 3.0 ; "one sample")]
    #[test_case(&[5.0, 1.0, 3.0], 3.0, 5.0 ; "odd count, unsorted")]
    #[test_case(&[4.0, 1.0, 2.0, 3.0], 2.5, 4.0 ; "even count takes the middle mean")]
    fn median_and_p95(s: &[f64], median: f64, p95: f64) {
        let x = summarize(s).unwrap();
        assert_eq!((x.median, x.p95), (median, p95));
    }

    #[test]
    fn p95_of_one_hundred_is_the_95th() {
        let s: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let x = summarize(&s).unwrap();
        assert_eq!((x.n, x.min, x.max, x.p95, x.median, x.mean), (100, 1.0, 100.0, 95.0, 50.5, 50.5));
    }

    #[test]
    fn p95_of_twenty_is_the_19th() {
        let s: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(summarize(&s).unwrap().p95, 19.0);
    }

    #[test_case(&[] ; "empty")]
    #[test_case(&[1.0, f64::NAN] ; "nan")]
    fn nothing_to_summarize(s: &[f64]) {
        assert_eq!(summarize(s), None);
    }

    #[test_case(10.0, Some(5.0), Some(2.0) ; "plain")]
    #[test_case(10.0, Some(0.0), None ; "zero base")]
    #[test_case(10.0, None, None ; "no base")]
    fn ratios(v: f64, b: Option<f64>, want: Option<f64>) {
        assert_eq!(ratio(v, b), want);
    }
}
