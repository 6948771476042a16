//! The paper's effects carried over to this data set.
//!
//! The paper measured its effects on ImageNet, where baseB scores 62.5% (37.5 points of
//! error); a small data set may score 90% (10 points of error), and an effect of 3 ImageNet
//! points is then no yardstick. Two rules carry an effect over from a paper accuracy `a`
//! measured against a paper reference `r` to this run's reference `R`:
//! - **error rate** (the primary rule): the effect is the same share of the error,
//!   `(a − r)·(1 − R)/(1 − r)`;
//! - **log-odds** (beside it): the effect moves the log-odds of being right by the same amount,
//!   `σ(logit R + logit a − logit r) − R`.
//!
//! A finding's effect is a contrast: a weighted sum of such terms (a variant at several n
//! against its base, or one variant against another), each with its own paper reference and
//! ours.

/// One term of a contrast: `weight × (paper accuracy − paper reference)`, carried over to a run
/// whose reference scores `ours`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Term {
    pub weight: f64,
    pub paper: f64,
    pub paper_reference: f64,
    pub ours: f64,
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A paper effect in ImageNet points and carried over by both rules, in points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaperEffect {
    pub imagenet: f64,
    pub error_rate: f64,
    pub log_odds: f64,
}

impl PaperEffect {
    pub fn of(terms: &[Term]) -> PaperEffect {
        let sum = |value: &dyn Fn(&Term) -> f64| -> f64 {
            terms
                .iter()
                .map(|term| term.weight * value(term))
                .sum::<f64>()
                * 100.0
        };
        PaperEffect {
            imagenet: sum(&|term| term.paper - term.paper_reference),
            error_rate: sum(&|term| {
                (term.paper - term.paper_reference) * (1.0 - term.ours)
                    / (1.0 - term.paper_reference)
            }),
            log_odds: sum(&|term| {
                logistic(logit(term.ours) + logit(term.paper) - logit(term.paper_reference))
                    - term.ours
            }),
        }
    }

    /// The size every verdict measures against: the error-rate rule's.
    pub fn scaled(&self) -> f64 {
        self.error_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_co_adaptation_dip_carried_over_to_a_ninety_percent_base() {
        // The check: the paper's BnB dip at n = 5, −3.16 points on a 62.51% base, is
        // −0.84 points on a 90.1% base by error rate and −1.25 by log-odds.
        let dip = PaperEffect::of(&[Term {
            weight: 1.0,
            paper: 0.5935,
            paper_reference: 0.6251,
            ours: 0.901,
        }]);
        assert!((dip.imagenet - -3.16).abs() < 1e-9);
        assert!((dip.error_rate - -3.16 * 0.099 / 0.3749).abs() < 1e-9);
        assert!((dip.error_rate - -0.834).abs() < 1e-3, "{dip:?}");
        assert!((dip.log_odds - -1.25).abs() < 0.01, "{dip:?}");
        // A contrast of two variants is the difference of their terms; nothing for equal ones.
        let none = PaperEffect::of(&[
            Term {
                weight: 1.0,
                paper: 0.6,
                paper_reference: 0.6251,
                ours: 0.9,
            },
            Term {
                weight: -1.0,
                paper: 0.6,
                paper_reference: 0.6251,
                ours: 0.9,
            },
        ]);
        assert!(none.error_rate.abs() < 1e-12 && none.log_odds.abs() < 1e-12);
    }
}
