//! The variance model behind every interval of a curve: a linear mixed model with the unit of
//! replication (a split) as a random effect and n as a fixed effect,
//!
//! ```text
//! d[u][n] = μ[n] + a[u] + e[u][n],   a[u] ~ N(0, σ²_unit),   e[u][n] ~ N(0, σ²_residual)
//! ```
//!
//! where `d[u][n]` is one unit's difference from its own base at level n (already averaged over
//! the unit's target tasks and seeds). The data of a curve form a complete units × levels table,
//! a randomised block design, where REML has a closed form (the ANOVA estimators, with σ²_unit
//! held at zero when the units vary less than the residual): the units' mean square
//! `MS_units` (u − 1 degrees of freedom) and the residual mean square `MS_residual`
//! ((u − 1)(N − 1)). An estimate's variance is a combination of the two, and its degrees of
//! freedom are Satterthwaite's for that combination:
//! - a level's mean μ[n]: `(σ²_unit + σ²_residual)/u` = `(MS_units + (N − 1)·MS_residual)/(N·u)`;
//! - the mean over m of the N levels: `(m·σ²_unit + σ²_residual)/(m·u)`, which for all N levels
//!   is `MS_units/(N·u)` on u − 1 degrees of freedom: an average over n is measured by the units
//!   alone;
//! - a difference between two levels: `2·MS_residual/u` on (u − 1)(N − 1), exactly.
//!
//! So a level's interval borrows the residual noise of every level of its curve, with degrees
//! of freedom well above u − 1. Where the levels' noise differs (AnB at n = 7 scatters far more
//! than at n = 1), pooling would understate the noisy levels: a level keeps its own spread
//! (Student's t on u − 1) when that is larger than the pooled one, so no interval is narrower
//! than either the curve's pooled noise or its own units allow. Known answers from statsmodels
//! (`MixedLM`, REML) pin the fit; see the tests.

use super::statistics::{Effect, Sample};

/// A complete table of per-unit values: `values[unit][level]`, no gaps.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockTable {
    pub units: Vec<String>,
    pub levels: Vec<u32>,
    pub values: Vec<Vec<f64>>,
}

/// The fitted model of one table.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockFit {
    pub units: usize,
    pub levels: Vec<u32>,
    pub level_means: Vec<f64>,
    /// Each level's own values across units (for the per-level floor).
    level_samples: Vec<Sample>,
    pub ms_units: f64,
    pub df_units: f64,
    pub ms_residual: f64,
    pub df_residual: f64,
    /// REML estimates of the variance components.
    pub unit_variance: f64,
    pub residual_variance: f64,
}

/// `a·MS₁ + b·MS₂` as a variance with Satterthwaite's degrees of freedom.
fn satterthwaite(terms: &[(f64, f64, f64)]) -> (f64, f64) {
    // terms: (coefficient, mean square, degrees of freedom)
    let variance: f64 = terms.iter().map(|(a, ms, _)| a * ms).sum();
    let spread: f64 = terms
        .iter()
        .filter(|(_, _, df)| *df > 0.0)
        .map(|(a, ms, df)| (a * ms).powi(2) / df)
        .sum();
    let df = if spread > 0.0 {
        variance * variance / spread
    } else {
        terms.iter().map(|(_, _, df)| df).sum()
    };
    (variance, df)
}

impl BlockFit {
    /// Fits a table of at least two units and one level; `None` otherwise.
    pub fn fit(table: &BlockTable) -> Option<BlockFit> {
        let (units, levels) = (table.values.len(), table.levels.len());
        if units < 2 || levels == 0 || table.values.iter().any(|row| row.len() != levels) {
            return None;
        }
        let (u, n) = (units as f64, levels as f64);
        let grand = table.values.iter().flatten().sum::<f64>() / (u * n);
        let unit_means: Vec<f64> = table
            .values
            .iter()
            .map(|row| row.iter().sum::<f64>() / n)
            .collect();
        let level_samples: Vec<Sample> = (0..levels)
            .map(|level| {
                let column: Vec<f64> = table.values.iter().map(|row| row[level]).collect();
                Sample::of(&column).expect("at least two units")
            })
            .collect();
        let level_means: Vec<f64> = level_samples.iter().map(|sample| sample.mean).collect();
        let ss_units = n * unit_means.iter().map(|m| (m - grand).powi(2)).sum::<f64>();
        let mut ss_residual = 0.0;
        for (row, unit_mean) in table.values.iter().zip(&unit_means) {
            for (value, level_mean) in row.iter().zip(&level_means) {
                ss_residual += (value - unit_mean - level_mean + grand).powi(2);
            }
        }
        let df_units = u - 1.0;
        let df_residual = (u - 1.0) * (n - 1.0);
        let ms_units = ss_units / df_units;
        let ms_residual = if df_residual > 0.0 {
            ss_residual / df_residual
        } else {
            0.0
        };
        // REML in a balanced block design: the ANOVA estimators, σ²_unit at its boundary (0)
        // when the units vary less than the residual; then the residual pools both.
        let (unit_variance, residual_variance) = if levels == 1 {
            (0.0, ms_units)
        } else if ms_units >= ms_residual {
            ((ms_units - ms_residual) / n, ms_residual)
        } else {
            (0.0, (ss_units + ss_residual) / (df_units + df_residual))
        };
        Some(BlockFit {
            units,
            levels: table.levels.clone(),
            level_means,
            level_samples,
            ms_units,
            df_units,
            ms_residual,
            df_residual,
            unit_variance,
            residual_variance,
        })
    }

    fn index(&self, level: u32) -> Option<usize> {
        self.levels.iter().position(|&candidate| candidate == level)
    }

    /// Whether σ²_unit sits at its boundary (0), where REML pools the units' mean square into
    /// the residual.
    fn at_boundary(&self) -> bool {
        self.levels.len() > 1 && self.ms_units < self.ms_residual
    }

    /// The mean of the levels `chosen` (all of them: the curve's average), from the model.
    fn pooled_mean(&self, chosen: &[usize]) -> Effect {
        let (u, n, m) = (
            self.units as f64,
            self.levels.len() as f64,
            chosen.len() as f64,
        );
        let value = chosen.iter().map(|&i| self.level_means[i]).sum::<f64>() / m;
        let (variance, df) = if self.levels.len() == 1 {
            (self.ms_units / u, self.df_units)
        } else if self.at_boundary() {
            (
                self.residual_variance / (m * u),
                self.df_units + self.df_residual,
            )
        } else {
            // (m·σ²_unit + σ²_residual)/(m·u) with σ²_unit = (MS_units − MS_residual)/N.
            let share = m / n;
            let (variance, df) = satterthwaite(&[
                (share, self.ms_units, self.df_units),
                (1.0 - share, self.ms_residual, self.df_residual),
            ]);
            (variance / (m * u), df)
        };
        Effect {
            value,
            standard_error: Some(variance.sqrt()),
            degrees_of_freedom: df,
        }
    }

    /// The mean at `level`: the model's pooled estimate, or the level's own spread across the
    /// units when that is larger (then on u − 1 degrees of freedom).
    pub fn level(&self, level: u32) -> Option<Effect> {
        let index = self.index(level)?;
        let pooled = self.pooled_mean(&[index]);
        let own = self.level_samples[index].effect();
        Some(match own.standard_error {
            Some(own_error) if own_error > pooled.standard_error.unwrap_or(0.0) => own,
            _ => pooled,
        })
    }

    /// The mean over the levels in `levels` that the table has (an average over n within each
    /// unit, then across units); `None` when it has none of them.
    pub fn average(&self, levels: impl IntoIterator<Item = u32>) -> Option<Effect> {
        let chosen: Vec<usize> = levels
            .into_iter()
            .filter_map(|level| self.index(level))
            .collect();
        if chosen.is_empty() {
            return None;
        }
        Some(self.pooled_mean(&chosen))
    }
}

impl BlockTable {
    /// The units both tables have, at the levels both have: `self − other` cell by cell (a
    /// difference paired within each unit and level).
    pub fn paired_minus(&self, other: &BlockTable) -> BlockTable {
        let levels: Vec<u32> = self
            .levels
            .iter()
            .copied()
            .filter(|level| other.levels.contains(level))
            .collect();
        let mut units = Vec::new();
        let mut values = Vec::new();
        for (unit, row) in self.units.iter().zip(&self.values) {
            let Some(theirs) = other.units.iter().position(|candidate| candidate == unit) else {
                continue;
            };
            let cells = levels
                .iter()
                .map(|level| {
                    let mine = self.levels.iter().position(|l| l == level).expect("shared");
                    let their = other
                        .levels
                        .iter()
                        .position(|l| l == level)
                        .expect("shared");
                    row[mine] - other.values[theirs][their]
                })
                .collect();
            units.push(unit.clone());
            values.push(cells);
        }
        BlockTable {
            units,
            levels,
            values,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Known answers from statsmodels 0.15.0 (`MixedLM.from_formula("d ~ 0 + C(n)", groups=unit)`,
    //! `fit(reml=True)`: `cov_re`, `scale`, `bse`) and SciPy 1.17.1; the Python that computed them
    //! is in `known_answers.py` beside this file.

    use super::*;

    pub(crate) fn table(values: &[&[f64]], levels: &[u32]) -> BlockTable {
        BlockTable {
            units: (0..values.len()).map(|unit| format!("s{unit}")).collect(),
            levels: levels.to_vec(),
            values: values.iter().map(|row| row.to_vec()).collect(),
        }
    }

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "expected {expected}, got {actual}"
        );
    }

    /// BnB's differences from baseB in the committed similar-split report (3 splits × n = 1..7).
    pub(crate) const BNB: [[f64; 7]; 3] = [
        [0.12, -0.04, 0.62, 0.34, 0.24, 0.20, 0.30],
        [0.30, 0.28, 0.16, -0.12, 0.20, -0.12, 0.06],
        [0.00, -0.12, 0.00, -0.14, 0.18, -0.16, 0.26],
    ];

    #[test]
    fn variance_components_and_level_errors_match_statsmodels() {
        let rows: Vec<&[f64]> = BNB.iter().map(|row| row.as_slice()).collect();
        let fit = BlockFit::fit(&table(&rows, &[1, 2, 3, 4, 5, 6, 7])).unwrap();
        close(fit.unit_variance, STATSMODELS_BNB_UNIT_VARIANCE, 1e-6);
        close(fit.residual_variance, STATSMODELS_BNB_SCALE, 1e-6);
        let level = fit.pooled_mean(&[2]);
        close(level.value, 0.26, 1e-12);
        close(level.standard_error.unwrap(), STATSMODELS_BNB_BSE_N3, 1e-6);
        close(level.degrees_of_freedom, SATTERTHWAITE_BNB_LEVEL_DF, 1e-6);
    }

    #[test]
    fn averages_and_boundary_fits() {
        let rows: Vec<&[f64]> = BNB.iter().map(|row| row.as_slice()).collect();
        let fit = BlockFit::fit(&table(&rows, &[1, 2, 3, 4, 5, 6, 7])).unwrap();
        // The average over every level is the units' means' t-interval: MS_units/(N·u), u − 1.
        let all = fit.average(1..=7).unwrap();
        let unit_means: Vec<f64> = BNB
            .iter()
            .map(|row| row.iter().sum::<f64>() / 7.0)
            .collect();
        let direct = Sample::of(&unit_means).unwrap().effect();
        close(all.value, direct.value, 1e-12);
        close(
            all.standard_error.unwrap(),
            direct.standard_error.unwrap(),
            1e-12,
        );
        close(all.degrees_of_freedom, 2.0, 1e-12);
        let middle = fit.average(3..=5).unwrap();
        close(
            middle.standard_error.unwrap(),
            STATSMODELS_BNB_MIDDLE_SE,
            1e-6,
        );
        close(middle.degrees_of_freedom, SATTERTHWAITE_BNB_MIDDLE_DF, 1e-6);
        // Units that vary less than the residual: σ²_unit = 0 and the residual pools both.
        let flat = [[1.0, 2.0, 0.4], [2.1, 0.5, 1.0], [0.6, 1.1, 1.9]];
        let rows: Vec<&[f64]> = flat.iter().map(|row| row.as_slice()).collect();
        let fit = BlockFit::fit(&table(&rows, &[1, 2, 3])).unwrap();
        assert_eq!(fit.unit_variance, 0.0);
        close(fit.residual_variance, STATSMODELS_FLAT_SCALE, 1e-6);
        let level = fit.pooled_mean(&[0]);
        close(level.standard_error.unwrap(), STATSMODELS_FLAT_BSE, 1e-6);
        close(level.degrees_of_freedom, 6.0, 1e-12);
    }

    #[test]
    fn a_level_never_gets_a_tighter_interval_than_its_curve_or_its_own_units_allow() {
        // n = 5 of BnB: 0.24, 0.20, 0.18 (sd 0.03) is tight by luck; the curve's pooled noise
        // is larger, so the pooled error holds.
        let rows: Vec<&[f64]> = BNB.iter().map(|row| row.as_slice()).collect();
        let fit = BlockFit::fit(&table(&rows, &[1, 2, 3, 4, 5, 6, 7])).unwrap();
        let n5 = fit.level(5).unwrap();
        assert!(n5.degrees_of_freedom > 2.0);
        assert!(n5.standard_error.unwrap() > 0.03 / 3f64.sqrt() * 5.0);
        // A noisy level keeps its own (larger) spread, on u − 1 degrees of freedom.
        let noisy = [[0.1, -10.0], [0.2, -16.0], [0.0, -13.0]];
        let rows: Vec<&[f64]> = noisy.iter().map(|row| row.as_slice()).collect();
        let fit = BlockFit::fit(&table(&rows, &[1, 7])).unwrap();
        let high = fit.level(7).unwrap();
        close(high.standard_error.unwrap(), 3.0 / 3f64.sqrt(), 1e-12);
        close(high.degrees_of_freedom, 2.0, 1e-12);
    }

    #[test]
    fn paired_tables_keep_shared_units_and_levels() {
        let a = table(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]], &[1, 2, 3]);
        let mut b = table(&[&[0.5, 0.5], &[1.0, 1.0], &[9.0, 9.0]], &[2, 3]);
        b.units = vec!["s1".into(), "s0".into(), "s9".into()];
        let difference = a.paired_minus(&b);
        assert_eq!(difference.units, ["s0", "s1"]);
        assert_eq!(difference.levels, [2, 3]);
        assert_eq!(difference.values, [[1.0, 2.0], [4.5, 5.5]]);
    }

    // From known_answers.py (statsmodels 0.15.0 MixedLM, REML fitted with Powell's method;
    // the Satterthwaite degrees of freedom from statsmodels' ANOVA mean squares).
    const STATSMODELS_BNB_UNIT_VARIANCE: f64 = 0.011419029303122103;
    const STATSMODELS_BNB_SCALE: f64 = 0.03162857721338009;
    const STATSMODELS_BNB_BSE_N3: f64 = 0.11978815539178904;
    const SATTERTHWAITE_BNB_LEVEL_DF: f64 = 9.843940698525463;
    const STATSMODELS_BNB_MIDDLE_SE: f64 = 0.0855606770548418;
    const SATTERTHWAITE_BNB_MIDDLE_DF: f64 = 3.70947702420304;
    const STATSMODELS_FLAT_SCALE: f64 = 0.5811111111106653;
    const STATSMODELS_FLAT_BSE: f64 = 0.44011782936276045;
}
