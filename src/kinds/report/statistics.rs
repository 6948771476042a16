//! Means, their intervals, and the two tests the report rests on.
//!
//! The unit of replication is a split (or, where a relation has a single split, a seed within
//! it): a difference is taken within each unit first, so the base it is measured against
//! cancels, and the interval is Student's t across units, mean ± t(1 − α/2, u − 1) · sd / √u.
//! Two independent groups of units (the dissimilar splits against the similar ones) are
//! compared with Welch's interval. Chance level is a one-sided binomial test of a run's correct
//! count against 1/k. Quantiles come from statrs, so any level works (a Bonferroni-corrected
//! 1 − 0.05/3 as well as 95%) and any degrees of freedom.

use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::function::beta::beta_reg;

/// The level of every interval before correction: tables, figures and findings all state it.
pub const CONFIDENCE: f64 = 0.95;

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

    /// The mean as an effect, with its standard error and `count − 1` degrees of freedom.
    pub fn effect(&self) -> Effect {
        Effect {
            value: self.mean,
            standard_error: self
                .standard_deviation
                .map(|sd| sd / (self.count as f64).sqrt()),
            degrees_of_freedom: self.count.saturating_sub(1) as f64,
        }
    }

    /// The Student t-interval of the mean at `confidence`; `None` for a single value.
    pub fn interval(&self, confidence: f64) -> Option<Interval> {
        self.effect().interval(confidence)
    }
}

/// A closed range of values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// Whether every value of the interval lies strictly on `direction`'s side of `bound`
    /// (below it for a negative direction, above it for a positive one).
    pub fn beyond(&self, bound: f64, direction: f64) -> bool {
        if direction < 0.0 {
            self.high < bound
        } else {
            self.low > bound
        }
    }
}

/// An estimated quantity with what is known of its uncertainty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Effect {
    pub value: f64,
    /// `None` when the spread could not be measured (a single unit on some side).
    pub standard_error: Option<f64>,
    pub degrees_of_freedom: f64,
}

impl Effect {
    /// `first − second` for two independent samples, with Welch–Satterthwaite degrees of
    /// freedom. No interval unless both sides have a spread.
    pub fn welch(first: &Sample, second: &Sample) -> Effect {
        let value = first.mean - second.mean;
        let (Some(first_sd), Some(second_sd)) =
            (first.standard_deviation, second.standard_deviation)
        else {
            return Effect {
                value,
                standard_error: None,
                degrees_of_freedom: 0.0,
            };
        };
        let first_term = first_sd * first_sd / first.count as f64;
        let second_term = second_sd * second_sd / second.count as f64;
        let total = first_term + second_term;
        let spread = first_term * first_term / (first.count - 1) as f64
            + second_term * second_term / (second.count - 1) as f64;
        let degrees_of_freedom = if spread > 0.0 {
            total * total / spread
        } else {
            // Identical values on both sides: a zero-width interval, with the pooled degrees.
            (first.count + second.count - 2) as f64
        };
        Effect {
            value,
            standard_error: Some(total.sqrt()),
            degrees_of_freedom,
        }
    }

    /// The two-sided interval at `confidence` (0.95 for a 95% interval).
    pub fn interval(&self, confidence: f64) -> Option<Interval> {
        let standard_error = self.standard_error?;
        if self.degrees_of_freedom <= 0.0 {
            return None;
        }
        let half_width =
            t_quantile(1.0 - (1.0 - confidence) / 2.0, self.degrees_of_freedom) * standard_error;
        Some(Interval {
            low: self.value - half_width,
            high: self.value + half_width,
        })
    }

    /// The smallest true effect that a two-sided test at `confidence` would detect with
    /// probability `power`, given this spread and these degrees of freedom:
    /// (t(1 − α/2) + t(power)) · standard error.
    pub fn detectable(&self, confidence: f64, power: f64) -> Option<f64> {
        let standard_error = self.standard_error?;
        if self.degrees_of_freedom <= 0.0 {
            return None;
        }
        let degrees = self.degrees_of_freedom;
        Some(
            (t_quantile(1.0 - (1.0 - confidence) / 2.0, degrees) + t_quantile(power, degrees))
                * standard_error,
        )
    }
}

/// The `probability` quantile of Student's t with `degrees_of_freedom` (> 0, fractional allowed).
pub fn t_quantile(probability: f64, degrees_of_freedom: f64) -> f64 {
    StudentsT::new(0.0, 1.0, degrees_of_freedom)
        .expect("degrees of freedom are positive")
        .inverse_cdf(probability)
}

/// P(X ≥ successes) for X ~ Binomial(trials, probability): the one-sided p-value of a run
/// that got `successes` of `trials` right, against guessing with `probability`.
pub fn binomial_upper_tail(successes: u64, trials: u64, probability: f64) -> f64 {
    if successes == 0 {
        return 1.0;
    }
    if successes > trials {
        return 0.0;
    }
    // P(X ≥ k) = I_p(k, n − k + 1), the regularised incomplete beta function.
    beta_reg(
        successes as f64,
        (trials - successes + 1) as f64,
        probability,
    )
}

#[cfg(test)]
mod tests {
    //! Known answers computed independently with SciPy 1.17.1 (`scipy.stats.t.ppf`,
    //! `scipy.stats.t.interval`, `scipy.stats.ttest_ind(equal_var=False)`,
    //! `scipy.stats.binom.sf`); the Python lines are quoted beside each value.

    use super::*;

    const T_975_AT_3_7: f64 = 2.8675207071911895;
    const T_BONFERRONI_3_AT_2: f64 = 7.648803937915553;
    const INTERVAL_LOW: f64 = -3.8525608927143464;
    const INTERVAL_HIGH: f64 = 4.852560892714346;
    const WELCH_DEGREES: f64 = 2.786776040023496;
    const WELCH_LOW: f64 = -11.182650074567558;
    const WELCH_HIGH: f64 = -1.7006832587657712;
    const BINOMIAL_562_OF_2500: f64 = 0.0012020161098077623;
    const BINOMIAL_520_OF_2500: f64 = 0.16471090438011382;

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
        assert_eq!(Sample::of(&[0.5]).unwrap().interval(0.95), None);
    }

    #[test]
    fn t_quantiles_match_scipy() {
        // t.ppf(0.975, 2), t.ppf(0.975, 6), t.ppf(0.975, 3.7), t.ppf(1 - 0.05/6, 2), t.ppf(0.8, 2)
        close(t_quantile(0.975, 2.0), 4.302652729749464, 1e-9);
        close(t_quantile(0.975, 6.0), 2.446911851144979, 1e-9);
        close(t_quantile(0.975, 3.7), T_975_AT_3_7, 1e-7);
        close(t_quantile(1.0 - 0.05 / 6.0, 2.0), T_BONFERRONI_3_AT_2, 1e-6);
        close(t_quantile(0.8, 2.0), 1.060660171779821, 1e-9);
        close(t_quantile(0.975, 1000.0), 1.962339080826408, 1e-7);
    }

    #[test]
    fn t_interval_of_three_splits_matches_scipy() {
        // t.interval(0.95, 2, loc=mean, scale=sem) for [-1.2, 0.4, 2.3]
        let interval = Sample::of(&[-1.2, 0.4, 2.3])
            .unwrap()
            .interval(0.95)
            .unwrap();
        close(interval.low, INTERVAL_LOW, 1e-9);
        close(interval.high, INTERVAL_HIGH, 1e-9);
    }

    #[test]
    fn welch_interval_matches_scipy() {
        // ttest_ind([-22.1, -19.5, -24.0], [-15.2, -14.1, -16.9, -15.5], equal_var=False)
        let dissimilar = Sample::of(&[-22.1, -19.5, -24.0]).unwrap();
        let similar = Sample::of(&[-15.2, -14.1, -16.9, -15.5]).unwrap();
        let gap = Effect::welch(&dissimilar, &similar);
        close(gap.value, -22.1 / 3.0 - 19.5 / 3.0 - 8.0 + 61.7 / 4.0, 1e-9);
        close(gap.degrees_of_freedom, WELCH_DEGREES, 1e-9);
        let interval = gap.interval(0.95).unwrap();
        close(interval.low, WELCH_LOW, 1e-9);
        close(interval.high, WELCH_HIGH, 1e-9);
        // One side with a single unit: no spread to measure, no interval.
        let single = Sample::of(&[-20.0]).unwrap();
        assert_eq!(Effect::welch(&single, &similar).interval(0.95), None);
    }

    #[test]
    fn detectable_effect_adds_the_power_quantile() {
        let effect = Sample::of(&[-1.2, 0.4, 2.3]).unwrap().effect();
        let standard_error = effect.standard_error.unwrap();
        close(
            effect.detectable(0.95, 0.8).unwrap(),
            (4.302652729749464 + 1.060660171779821) * standard_error,
            1e-9,
        );
    }

    #[test]
    fn binomial_tail_matches_scipy() {
        // binom.sf(561, 2500, 0.2): 562 of 2,500 right on a 5-class task (0.2248)
        close(
            binomial_upper_tail(562, 2500, 0.2),
            BINOMIAL_562_OF_2500,
            1e-9,
        );
        // binom.sf(519, 2500, 0.2): 0.2076, not distinguishable from guessing
        close(
            binomial_upper_tail(520, 2500, 0.2),
            BINOMIAL_520_OF_2500,
            1e-9,
        );
        // binom.sf(2, 10, 0.5)
        close(binomial_upper_tail(3, 10, 0.5), 0.9453125, 1e-12);
        assert_eq!(binomial_upper_tail(0, 10, 0.5), 1.0);
        assert_eq!(binomial_upper_tail(11, 10, 0.5), 0.0);
    }
}
