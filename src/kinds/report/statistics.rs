//! Means, their intervals, and the two tests the report rests on.
//!
//! The unit of replication is a split (or, where a relation has a single split, a seed within
//! it): a difference is taken within each unit first, so the base it is measured against
//! cancels, and the interval is Student's t across units, mean ± t(1 − α/2, u − 1) · sd / √u.
//! Two independent groups of units (the dissimilar splits against the similar ones) are
//! compared with Welch's interval. Chance level is a one-sided binomial test of a run's correct
//! count against 1/k. Quantiles come from statrs, so any level works (a Holm-adjusted one as
//! well as 95%) and any degrees of freedom, fractional ones (Satterthwaite, Welch) included.

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

/// An estimated quantity with what is known of its uncertainty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Effect {
    pub value: f64,
    /// `None` when the spread could not be measured (a single unit on some side).
    pub standard_error: Option<f64>,
    pub degrees_of_freedom: f64,
}

impl Effect {
    /// `first − second` for two independent estimates, each with its own standard error and
    /// degrees of freedom (Welch–Satterthwaite). No interval unless both have one.
    pub fn welch_of(first: &Effect, second: &Effect) -> Effect {
        let value = first.value - second.value;
        let (Some(first_error), Some(second_error)) = (first.standard_error, second.standard_error)
        else {
            return Effect {
                value,
                standard_error: None,
                degrees_of_freedom: 0.0,
            };
        };
        let (a, b) = (first_error * first_error, second_error * second_error);
        let spread = a * a / first.degrees_of_freedom + b * b / second.degrees_of_freedom;
        Effect {
            value,
            standard_error: Some((a + b).sqrt()),
            degrees_of_freedom: if spread > 0.0 {
                (a + b) * (a + b) / spread
            } else {
                first.degrees_of_freedom + second.degrees_of_freedom
            },
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

    /// The smallest true effect that a two-sided t-test at level `alpha` would detect with
    /// probability `power`, given this standard error and these degrees of freedom: exact,
    /// from the noncentral t distribution (see [`detectable_shift`]).
    pub fn detectable(&self, alpha: f64, power: f64) -> Option<f64> {
        let standard_error = self.standard_error?;
        if self.degrees_of_freedom <= 0.0 {
            return None;
        }
        Some(detectable_shift(self.degrees_of_freedom, alpha, power) * standard_error)
    }

    /// `value / standard_error`, the t statistic against zero.
    fn t(&self, against: f64) -> Option<f64> {
        let standard_error = self.standard_error?;
        if self.degrees_of_freedom <= 0.0 {
            return None;
        }
        // Units that agree exactly measure without noise: any distance is infinitely many
        // standard errors.
        Some(if standard_error > 0.0 {
            (self.value - against) / standard_error
        } else if self.value == against {
            0.0
        } else {
            (self.value - against).signum() * f64::INFINITY
        })
    }

    /// The two-sided p-value of H0: the true effect is 0.
    pub fn p_value_against_zero(&self) -> Option<f64> {
        let t = self.t(0.0)?;
        Some(2.0 * t_upper_tail(t.abs(), self.degrees_of_freedom))
    }

    /// The one-sided p-value of H0: the true effect is at least as large as `size` in `size`'s
    /// direction, against H1: it is smaller (nearer zero, or beyond it).
    pub fn p_value_smaller_than(&self, size: f64) -> Option<f64> {
        let t = self.t(size)?;
        // Small when the estimate lies well short of `size` on zero's side.
        let toward_zero = if size < 0.0 { t } else { -t };
        Some(t_upper_tail(toward_zero, self.degrees_of_freedom))
    }
}

/// P(T > t) for Student's t with `degrees_of_freedom`.
pub fn t_upper_tail(t: f64, degrees_of_freedom: f64) -> f64 {
    let distribution =
        StudentsT::new(0.0, 1.0, degrees_of_freedom).expect("degrees of freedom are positive");
    1.0 - distribution.cdf(t)
}

/// P(T' ≤ t) for the noncentral t distribution with `degrees_of_freedom` and noncentrality
/// `delta`: Lenth's series (Applied Statistics algorithm AS 243), Poisson-weighted regularised
/// incomplete beta functions, summed outward from the largest weight until the weights left
/// are below 1e-15.
pub fn noncentral_t_cdf(t: f64, degrees_of_freedom: f64, delta: f64) -> f64 {
    if t < 0.0 {
        return 1.0 - noncentral_t_cdf(-t, degrees_of_freedom, -delta);
    }
    let normal = statrs::distribution::Normal::new(0.0, 1.0).expect("standard normal");
    let base = normal.cdf(-delta);
    if t == 0.0 {
        return base;
    }
    let x = t * t / (t * t + degrees_of_freedom);
    let lambda = delta * delta / 2.0;
    let half_df = degrees_of_freedom / 2.0;
    // Term j: p_j·I_x(j + 1/2, ν/2) + q_j·I_x(j + 1, ν/2), with Poisson weights p_j and
    // q_j = δ/√2 · e^{−λ} λ^j / Γ(j + 3/2).
    let term = |j: f64| -> (f64, f64) {
        let log_poisson = -lambda + j * lambda.max(f64::MIN_POSITIVE).ln() - ln_gamma(j + 1.0);
        let p = if lambda == 0.0 && j > 0.0 {
            0.0
        } else if lambda == 0.0 {
            1.0
        } else {
            log_poisson.exp()
        };
        let q = if lambda == 0.0 {
            if j == 0.0 {
                delta / std::f64::consts::SQRT_2 / gamma_three_halves()
            } else {
                0.0
            }
        } else {
            delta / std::f64::consts::SQRT_2 * (-lambda + j * lambda.ln() - ln_gamma(j + 1.5)).exp()
        };
        let value = p * beta_reg(j + 0.5, half_df, x) + q * beta_reg(j + 1.0, half_df, x);
        (value, p)
    };
    // Sum from the mode of the Poisson weights outward, so no early term underflows the rest.
    let mode = lambda.floor();
    let mut sum = 0.0;
    let mut weight_left = 1.0;
    let mut j = mode;
    loop {
        let (value, p) = term(j);
        sum += value;
        weight_left -= p;
        if j == 0.0 || (p < 1e-16 && j < mode) {
            break;
        }
        j -= 1.0;
    }
    let mut j = mode + 1.0;
    while weight_left > 1e-15 && j < mode + 10_000.0 {
        let (value, p) = term(j);
        sum += value;
        weight_left -= p;
        if p < 1e-18 && j > mode + 5.0 {
            break;
        }
        j += 1.0;
    }
    (base + sum / 2.0).clamp(0.0, 1.0)
}

fn gamma_three_halves() -> f64 {
    std::f64::consts::PI.sqrt() / 2.0
}

fn ln_gamma(x: f64) -> f64 {
    statrs::function::gamma::ln_gamma(x)
}

/// The probability that a two-sided t-test at level `alpha` rejects when the true effect is
/// `shift` standard errors (the noncentrality): P(|T'| > t(1 − α/2)).
pub fn power(degrees_of_freedom: f64, alpha: f64, shift: f64) -> f64 {
    let critical = t_quantile(1.0 - alpha / 2.0, degrees_of_freedom);
    1.0 - noncentral_t_cdf(critical, degrees_of_freedom, shift)
        + noncentral_t_cdf(-critical, degrees_of_freedom, shift)
}

/// The shift (in standard errors) a two-sided t-test at level `alpha` detects with probability
/// `wanted`: the root of [`power`], by bisection. Exact, where (t(1 − α/2) + t(power))
/// underestimates it at few degrees of freedom (by 5–13% at 2).
pub fn detectable_shift(degrees_of_freedom: f64, alpha: f64, wanted: f64) -> f64 {
    let (mut low, mut high) = (0.0, 1.0);
    while power(degrees_of_freedom, alpha, high) < wanted {
        high *= 2.0;
    }
    for _ in 0..100 {
        let middle = (low + high) / 2.0;
        if power(degrees_of_freedom, alpha, middle) < wanted {
            low = middle;
        } else {
            high = middle;
        }
    }
    (low + high) / 2.0
}

/// Holm's step-down adjustment of `p_values` (in their order): each adjusted value is the
/// largest of (k − rank)·p over the ranks up to its own, capped at 1.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p_values.len()).collect();
    order.sort_by(|a, b| p_values[*a].total_cmp(&p_values[*b]));
    let count = p_values.len() as f64;
    let mut adjusted = vec![0.0; p_values.len()];
    let mut running = 0.0f64;
    for (rank, &index) in order.iter().enumerate() {
        running = running.max(((count - rank as f64) * p_values[index]).min(1.0));
        adjusted[index] = running;
    }
    adjusted
}

/// The exact (Clopper–Pearson) two-sided interval at `confidence` for a proportion of
/// `successes` in `trials`.
pub fn clopper_pearson(successes: u64, trials: u64, confidence: f64) -> Interval {
    use statrs::distribution::Beta;
    let alpha = 1.0 - confidence;
    let (k, n) = (successes as f64, trials as f64);
    let low = if successes == 0 {
        0.0
    } else {
        Beta::new(k, n - k + 1.0)
            .expect("positive shapes")
            .inverse_cdf(alpha / 2.0)
    };
    let high = if successes == trials {
        1.0
    } else {
        Beta::new(k + 1.0, n - k)
            .expect("positive shapes")
            .inverse_cdf(1.0 - alpha / 2.0)
    };
    Interval { low, high }
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

/// P(X ≤ successes) for X ~ Binomial(trials, probability).
pub fn binomial_lower_tail(successes: u64, trials: u64, probability: f64) -> f64 {
    if successes >= trials {
        return 1.0;
    }
    1.0 - binomial_upper_tail(successes + 1, trials, probability)
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
        let gap = Effect::welch_of(&dissimilar.effect(), &similar.effect());
        close(gap.value, -22.1 / 3.0 - 19.5 / 3.0 - 8.0 + 61.7 / 4.0, 1e-9);
        close(gap.degrees_of_freedom, WELCH_DEGREES, 1e-9);
        let interval = gap.interval(0.95).unwrap();
        close(interval.low, WELCH_LOW, 1e-9);
        close(interval.high, WELCH_HIGH, 1e-9);
        // One side with a single unit: no spread to measure, no interval.
        let single = Sample::of(&[-20.0]).unwrap();
        assert_eq!(
            Effect::welch_of(&single.effect(), &similar.effect()).interval(0.95),
            None
        );
    }

    // From known_answers.py (SciPy 1.17.1: `stats.nct`, `stats.t`, `stats.binomtest`;
    // statsmodels 0.15.0: `multipletests(method="holm")`, `proportion_confint(method="beta")`).
    const NCT_CDF_2_5_AT_3: f64 = 0.7110484176468772;
    const NCT_CDF_M1_AT_12: f64 = 0.04981367317773247;
    const NCT_CDF_4_AT_40: f64 = 0.7606194977593961;
    const NCT_CDF_0_AT_2: f64 = 0.9772498680518208;
    const DETECTABLE_SE1_DF2: f64 = 5.653489266197126;
    const DETECTABLE_SE03_DF14: f64 = 0.9039805367260112;
    const DETECTABLE_SE1_DF5_BONFERRONI7: f64 = 5.569785571726153;
    const POWER_2_5_DF6: f64 = 0.5537696917716903;
    const HOLM: [f64; 5] = [0.04, 0.09, 0.09, 0.025, 0.2];
    const T_TWO_SIDED_P: f64 = 0.07560767647571079;
    const T_LOWER_P: f64 = 0.061673831071911926;
    const CLOPPER_PEARSON_14_OF_21: (f64, f64) = (0.4303245170958757, 0.8541230576569033);
    const CLOPPER_PEARSON_0_OF_21: (f64, f64) = (0.0, 0.16109761521907962);

    #[test]
    fn noncentral_t_and_power_match_scipy() {
        // nct.cdf(2.5, 3, 1.5), nct.cdf(-1, 12, 0.7), nct.cdf(4, 40.5, 3.2), nct.cdf(0, 2, -2)
        close(noncentral_t_cdf(2.5, 3.0, 1.5), NCT_CDF_2_5_AT_3, 1e-10);
        close(noncentral_t_cdf(-1.0, 12.0, 0.7), NCT_CDF_M1_AT_12, 1e-10);
        close(noncentral_t_cdf(4.0, 40.5, 3.2), NCT_CDF_4_AT_40, 1e-10);
        close(noncentral_t_cdf(0.0, 2.0, -2.0), NCT_CDF_0_AT_2, 1e-10);
        close(power(6.0, 0.05, 2.5), POWER_2_5_DF6, 1e-9);
    }

    #[test]
    fn the_smallest_detectable_effect_is_exact() {
        // brentq on nct.sf(t.ppf(1 − α/2, ν), ν, λ) + nct.cdf(−t.ppf(…), ν, λ) = 0.8
        let effect = |standard_error: f64, degrees_of_freedom: f64| Effect {
            value: 0.0,
            standard_error: Some(standard_error),
            degrees_of_freedom,
        };
        close(
            effect(1.0, 2.0).detectable(0.05, 0.8).unwrap(),
            DETECTABLE_SE1_DF2,
            1e-7,
        );
        close(
            effect(0.3, 14.0).detectable(0.05, 0.8).unwrap(),
            DETECTABLE_SE03_DF14,
            1e-7,
        );
        close(
            effect(1.0, 5.0).detectable(0.05 / 7.0, 0.8).unwrap(),
            DETECTABLE_SE1_DF5_BONFERRONI7,
            1e-7,
        );
        // The normal-style shortcut (t(1 − α/2) + t(power))·SE undershoots at 2 df.
        let shortcut = 4.302652729749464 + 1.060660171779821;
        assert!(DETECTABLE_SE1_DF2 > shortcut * 1.05);
    }

    #[test]
    fn p_values_holm_and_clopper_pearson_match_scipy_and_statsmodels() {
        let effect = Effect {
            value: 2.3,
            standard_error: Some(1.0),
            degrees_of_freedom: 4.5,
        };
        // 2·t.sf(2.3, 4.5)
        close(effect.p_value_against_zero().unwrap(), T_TWO_SIDED_P, 1e-10);
        // H0: the effect is at least −3.4 (negative direction); estimate −5.1, se 1, 9 df:
        // t.cdf(−1.7, 9) is the p-value that it is smaller in size... (it is larger here, so
        // the one-sided p of "smaller" is t.sf(−1.7, 9) = 1 − t.cdf(−1.7, 9)).
        let larger = Effect {
            value: -5.1,
            standard_error: Some(1.0),
            degrees_of_freedom: 9.0,
        };
        close(
            larger.p_value_smaller_than(-3.4).unwrap(),
            1.0 - T_LOWER_P,
            1e-10,
        );
        let smaller = Effect {
            value: -1.7,
            ..larger
        };
        close(
            smaller.p_value_smaller_than(-3.4).unwrap(),
            T_LOWER_P,
            1e-10,
        );
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005, 0.2]);
        for (got, want) in adjusted.iter().zip(HOLM) {
            close(*got, want, 1e-12);
        }
        let interval = clopper_pearson(14, 21, 0.95);
        close(interval.low, CLOPPER_PEARSON_14_OF_21.0, 1e-9);
        close(interval.high, CLOPPER_PEARSON_14_OF_21.1, 1e-9);
        let interval = clopper_pearson(0, 21, 0.95);
        close(interval.low, CLOPPER_PEARSON_0_OF_21.0, 1e-12);
        close(interval.high, CLOPPER_PEARSON_0_OF_21.1, 1e-9);
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
