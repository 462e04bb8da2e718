//! A latency histogram bounded in memory whatever the number of samples: log-linear buckets of
//! microseconds (64 sub-buckets per power of two, so a percentile is within 1.6% of the true
//! value), as HdrHistogram with two significant digits.

/// Sub-buckets per power of two.
const SUB: u64 = 64;
/// Powers of two covered above the first 64 µs: up to 2^(6+40) µs, far more than any run.
const RANGES: usize = 40;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (SUB as usize) * (RANGES + 1)],
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    // v in [SUB * 2^e, SUB * 2^(e+1)): bucket SUB*(e+1) + (v >> e) - SUB.
    let e = (63 - v.leading_zeros() as u64) - SUB.trailing_zeros() as u64;
    let e = e.min(RANGES as u64 - 1);
    let sub = (v >> e).min(2 * SUB - 1) - SUB;
    (SUB * (e + 1) + sub) as usize
}

/// The highest value a bucket holds.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let e = i / SUB - 1;
    let sub = i % SUB + SUB;
    ((sub + 1) << e) - 1
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        self.counts[index(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
        self.sum += u128::from(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value below which `q` (0..=1) of the samples fall, in µs (0 without samples).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut last = 0;
        for v in (0..5_000_000u64).step_by(7) {
            let i = index(v);
            assert!(i >= last, "{v}");
            last = i;
            let up = upper(i);
            assert!(up >= v, "{v} above its bucket's {up}");
            assert!((up - v) as f64 <= v as f64 / 60.0 + 1.0, "{v}: {up}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_run() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.02;
        assert!(close(h.quantile(0.5), 5_000), "{}", h.quantile(0.5));
        assert!(close(h.quantile(0.95), 9_500), "{}", h.quantile(0.95));
        assert!(close(h.quantile(0.99), 9_900), "{}", h.quantile(0.99));
        assert_eq!(h.quantile(1.0), 10_000);
        assert_eq!(h.count(), 10_000);
        let mut other = Histogram::default();
        other.record(20_000);
        h.merge(&other);
        assert_eq!(h.max(), 20_000);
        assert_eq!(h.count(), 10_001);
    }
}
