//! Means over seeds and their 95% intervals.
//!
//! A cell's interval is Student's t-interval, mean ± t(0.975, n − 1) · sd / √n: with the 3–5
//! seeds a cell usually has, the normal 1.96 would be far too narrow. A difference between
//! independent means (a variant against its split's base) carries the uncertainty of both, with
//! Welch–Satterthwaite degrees of freedom. Where one side has a single run its spread cannot be
//! measured, so it borrows the pooled spread of the other side and the estimate says so.

/// The size, mean and spread of a set of values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub count: usize,
    pub mean: f64,
    /// `None` for a single value.
    pub standard_deviation: Option<f64>,
}

impl Sample {
    /// `None` when there are no values.
    pub fn of(values: &[f64]) -> Option<Sample> {
        if values.is_empty() {
            return None;
        }
        let count = values.len();
        let mean = values.iter().sum::<f64>() / count as f64;
        let standard_deviation = (count >= 2).then(|| {
            let squares: f64 = values.iter().map(|value| (value - mean).powi(2)).sum();
            (squares / (count - 1) as f64).sqrt()
        });
        Some(Sample {
            count,
            mean,
            standard_deviation,
        })
    }

    /// The same sample in other units (accuracy → points).
    pub fn scaled(&self, factor: f64) -> Sample {
        Sample {
            count: self.count,
            mean: self.mean * factor,
            standard_deviation: self.standard_deviation.map(|sd| sd * factor.abs()),
        }
    }

    /// The 95% Student t-interval of the mean; `None` for a single value.
    pub fn interval(&self) -> Option<Interval> {
        Estimate::weighted_sum(self.mean, &[(1.0, *self)]).interval()
    }
}

/// A closed range of values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn is_below_zero(&self) -> bool {
        self.high < 0.0
    }
    pub fn is_above_zero(&self) -> bool {
        self.low > 0.0
    }
}

/// One independent source of uncertainty: the variance it adds to an estimate, and how many
/// degrees of freedom that variance was measured with.
#[derive(Clone, Copy, Debug, PartialEq)]
struct VarianceTerm {
    variance: f64,
    degrees_of_freedom: f64,
}

/// A value built from independent sample means (a mean, a difference of means, a difference
/// of differences), with what is known about its uncertainty.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub value: f64,
    terms: Vec<VarianceTerm>,
    /// Some sample had one value and borrowed the others' spread.
    pub spread_borrowed: bool,
    /// No sample had two values: there is no interval.
    pub spread_unknown: bool,
}

impl Estimate {
    /// An estimate of `value` whose uncertainty is that of Σ weightᵢ · meanᵢ over independent
    /// samples. Samples with one value borrow the pooled variance of those with more.
    pub fn weighted_sum(value: f64, samples: &[(f64, Sample)]) -> Estimate {
        let measured: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|(_, sample)| {
                sample
                    .standard_deviation
                    .map(|sd| (sd * sd, (sample.count - 1) as f64))
            })
            .collect();
        let pooled_degrees: f64 = measured.iter().map(|(_, degrees)| degrees).sum();
        let pooled_variance = (pooled_degrees > 0.0).then(|| {
            measured
                .iter()
                .map(|(variance, degrees)| variance * degrees)
                .sum::<f64>()
                / pooled_degrees
        });

        let mut estimate = Estimate {
            value,
            terms: Vec::new(),
            spread_borrowed: false,
            spread_unknown: false,
        };
        for (weight, sample) in samples.iter().filter(|(weight, _)| *weight != 0.0) {
            let (variance, degrees_of_freedom) = match (sample.standard_deviation, pooled_variance)
            {
                (Some(sd), _) => (sd * sd, (sample.count - 1) as f64),
                (None, Some(pooled)) => {
                    estimate.spread_borrowed = true;
                    (pooled, pooled_degrees)
                }
                (None, None) => {
                    estimate.spread_unknown = true;
                    continue;
                }
            };
            estimate.terms.push(VarianceTerm {
                variance: weight * weight * variance / sample.count as f64,
                degrees_of_freedom,
            });
        }
        estimate
    }

    /// `self − other` for independent estimates.
    pub fn minus(&self, other: &Estimate) -> Estimate {
        Estimate {
            value: self.value - other.value,
            terms: self.terms.iter().chain(&other.terms).copied().collect(),
            spread_borrowed: self.spread_borrowed || other.spread_borrowed,
            spread_unknown: self.spread_unknown || other.spread_unknown,
        }
    }

    pub fn standard_error(&self) -> Option<f64> {
        if self.spread_unknown || self.terms.is_empty() {
            return None;
        }
        Some(
            self.terms
                .iter()
                .map(|term| term.variance)
                .sum::<f64>()
                .sqrt(),
        )
    }

    /// Welch–Satterthwaite degrees of freedom.
    pub fn degrees_of_freedom(&self) -> Option<f64> {
        let total: f64 = self.standard_error()?.powi(2);
        let spread: f64 = self
            .terms
            .iter()
            .map(|term| term.variance.powi(2) / term.degrees_of_freedom)
            .sum();
        if spread == 0.0 {
            // Every sample had identical values: take the smallest sample's degrees.
            return self
                .terms
                .iter()
                .map(|term| term.degrees_of_freedom)
                .reduce(f64::min);
        }
        Some(total * total / spread)
    }

    /// The 95% interval, `None` when the spread is unknown.
    pub fn interval(&self) -> Option<Interval> {
        let half_width = t_quantile_975(self.degrees_of_freedom()?) * self.standard_error()?;
        Some(Interval {
            low: self.value - half_width,
            high: self.value + half_width,
        })
    }
}

/// The 0.975 quantile of Student's t with `degrees_of_freedom` (rounded down, so fractional
/// Welch degrees give a slightly wider interval, never a narrower one).
pub fn t_quantile_975(degrees_of_freedom: f64) -> f64 {
    const TABLE: [f64; 30] = [
        12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010,
        2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739,
        2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
    ];
    let whole = degrees_of_freedom.floor().max(1.0);
    if whole <= TABLE.len() as f64 {
        return TABLE[whole as usize - 1];
    }
    // Cornish–Fisher expansion about the normal quantile; within 1e-4 of the table above 30.
    let z: f64 = 1.959_964;
    let v = whole;
    z + (z.powi(3) + z) / (4.0 * v)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
        + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / (384.0 * v * v * v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn sample_mean_and_standard_deviation() {
        let sample = Sample::of(&[0.80, 0.82, 0.84]).unwrap();
        assert_eq!(sample.count, 3);
        close(sample.mean, 0.82, 1e-12);
        close(sample.standard_deviation.unwrap(), 0.02, 1e-12);
        assert_eq!(Sample::of(&[]), None);
        assert_eq!(Sample::of(&[0.5]).unwrap().standard_deviation, None);
    }

    #[test]
    fn t_interval_of_three_seeds_uses_t_with_two_degrees() {
        let interval = Sample::of(&[0.80, 0.82, 0.84]).unwrap().interval().unwrap();
        // 0.82 ± 4.3027 · 0.02 / √3
        let half_width = 4.3027 * 0.02 / 3f64.sqrt();
        close(interval.low, 0.82 - half_width, 1e-9);
        close(interval.high, 0.82 + half_width, 1e-9);
    }

    #[test]
    fn a_single_value_has_no_interval() {
        assert_eq!(Sample::of(&[0.7]).unwrap().interval(), None);
    }

    #[test]
    fn identical_values_give_a_zero_width_interval() {
        let interval = Sample::of(&[0.5, 0.5, 0.5]).unwrap().interval().unwrap();
        assert_eq!(
            interval,
            Interval {
                low: 0.5,
                high: 0.5
            }
        );
    }

    #[test]
    fn t_quantiles_match_the_table_and_approach_the_normal() {
        close(t_quantile_975(1.0), 12.7062, 1e-4);
        close(t_quantile_975(2.9), 4.3027, 1e-4);
        close(t_quantile_975(30.0), 2.0423, 1e-4);
        close(t_quantile_975(31.0), 2.0395, 2e-4);
        close(t_quantile_975(60.0), 2.0003, 2e-4);
        close(t_quantile_975(1e6), 1.96, 1e-3);
        close(t_quantile_975(0.3), 12.7062, 1e-4);
    }

    #[test]
    fn welch_difference_of_two_means() {
        let first = Sample::of(&[0.80, 0.82, 0.84]).unwrap();
        let second = Sample::of(&[0.70, 0.71, 0.72, 0.73]).unwrap();
        let difference =
            Estimate::weighted_sum(first.mean - second.mean, &[(1.0, first), (-1.0, second)]);
        let (variance_first, variance_second) = (
            0.02f64.powi(2) / 3.0,
            second.standard_deviation.unwrap().powi(2) / 4.0,
        );
        close(
            difference.standard_error().unwrap(),
            (variance_first + variance_second).sqrt(),
            1e-12,
        );
        let expected_degrees = (variance_first + variance_second).powi(2)
            / (variance_first.powi(2) / 2.0 + variance_second.powi(2) / 3.0);
        close(
            difference.degrees_of_freedom().unwrap(),
            expected_degrees,
            1e-9,
        );
        assert!(difference.interval().unwrap().is_above_zero());
        assert!(!difference.spread_borrowed);
    }

    #[test]
    fn a_single_run_borrows_the_other_sides_spread() {
        let variant = Sample::of(&[0.80, 0.82, 0.84]).unwrap();
        let base = Sample::of(&[0.90]).unwrap();
        let difference =
            Estimate::weighted_sum(variant.mean - base.mean, &[(1.0, variant), (-1.0, base)]);
        assert!(difference.spread_borrowed);
        close(
            difference.standard_error().unwrap(),
            (0.02f64.powi(2) / 3.0 + 0.02f64.powi(2)).sqrt(),
            1e-12,
        );
        assert!(difference.interval().is_some());
    }

    #[test]
    fn two_single_runs_have_no_interval() {
        let (first, second) = (Sample::of(&[0.8]).unwrap(), Sample::of(&[0.9]).unwrap());
        let difference = Estimate::weighted_sum(-0.1, &[(1.0, first), (-1.0, second)]);
        assert!(difference.spread_unknown);
        assert_eq!(difference.interval(), None);
    }

    #[test]
    fn minus_adds_the_variances_of_independent_estimates() {
        let first = Estimate::weighted_sum(1.0, &[(1.0, Sample::of(&[0.0, 2.0]).unwrap())]);
        let second = Estimate::weighted_sum(3.0, &[(1.0, Sample::of(&[2.0, 4.0]).unwrap())]);
        let gap = first.minus(&second);
        close(gap.value, -2.0, 1e-12);
        close(gap.standard_error().unwrap(), 2f64.sqrt(), 1e-12);
    }
}
