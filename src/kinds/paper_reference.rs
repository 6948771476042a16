//! The published numbers of Yosinski et al. 2014 ("How transferable are features in deep neural
//! networks?"), for reports to show beside a run's own. They were recomputed from the authors'
//! public training logs (yosinski/convnet_transfer, `results/*`, scored as in its plotting
//! notebook: the mean of a run's 10 best validation evaluations), on ImageNet with CaffeNet.
//! They describe the paper, not targets for a small data set: reports must label them as
//! ImageNet figures wherever they appear.

/// Where the figures come from, for captions and table headings.
pub const SOURCE: &str = "Yosinski et al. 2014, ImageNet, CaffeNet";

/// Top-1 of a base net on its own 500-class half (mean of 8 half-nets).
pub const BASE_B: f64 = 0.6251;
/// The lowest and highest of those 8 half-nets.
pub const BASE_B_RANGE: (f64, f64) = (0.615, 0.634);
/// Top-1 of the 1000-class net, the reference for the random-weights control.
pub const WHOLE_NET: f64 = 0.5763;

/// Top-1 on task B after copying `layers_copied` layers, random 500/500 splits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomSplitRow {
    pub layers_copied: u32,
    pub selffer_frozen: f64,
    pub transfer_frozen: f64,
    pub selffer_fine_tuned: f64,
    pub transfer_fine_tuned: f64,
}

const fn row(
    layers_copied: u32,
    bnb: f64,
    anb: f64,
    bnb_plus: f64,
    anb_plus: f64,
) -> RandomSplitRow {
    RandomSplitRow {
        layers_copied,
        selffer_frozen: bnb,
        transfer_frozen: anb,
        selffer_fine_tuned: bnb_plus,
        transfer_fine_tuned: anb_plus,
    }
}

/// BnB, AnB, BnB+ and AnB+ for n = 1..7 (random splits).
pub const RANDOM_SPLITS: [RandomSplitRow; 7] = [
    row(1, 0.6267, 0.6282, 0.618, 0.637),
    row(2, 0.6235, 0.6239, 0.622, 0.636),
    row(3, 0.6211, 0.6189, 0.631, 0.643),
    row(4, 0.6048, 0.5998, 0.629, 0.640),
    row(5, 0.5935, 0.5780, 0.630, 0.645),
    row(6, 0.6188, 0.5806, 0.628, 0.646),
    row(7, 0.6232, 0.5425, 0.627, 0.647),
];

/// Base nets of the dissimilar split (natural vs man-made classes).
pub const DISSIMILAR_BASE_MAN_MADE: f64 = 0.537;
pub const DISSIMILAR_BASE_NATURAL: f64 = 0.653;
/// AnB into the man-made half, n = 1..7.
pub const DISSIMILAR_INTO_MAN_MADE: [f64; 7] = [0.539, 0.521, 0.501, 0.462, 0.410, 0.374, 0.291];
/// AnB into the natural half, n = 1..7.
pub const DISSIMILAR_INTO_NATURAL: [f64; 7] = [0.657, 0.651, 0.625, 0.582, 0.522, 0.485, 0.399];

/// Random frozen lower layers, n = 1 and 2 (to be compared with [`WHOLE_NET`]).
pub const RANDOM_WEIGHTS: [(u32, f64); 2] = [(1, 0.492), (2, 0.403)];
/// For n = 3..7 the paper's logs give only a range, all near chance.
pub const RANDOM_WEIGHTS_HIGH_RANGE: (f64, f64) = (0.001, 0.050);

/// A signed figure in points, as the notes print it.
fn signed(value: f64) -> String {
    format!("{value:+.2}")
}

/// The paper's summary of each effect, quoted beside ours. Every figure in a note is computed
/// from the tables above, so a note cannot disagree with the numbers printed beside it.
pub fn co_adaptation_note() -> String {
    let drop = |n| random_split_drop_points("BnB", n).expect("n in 1..=7");
    format!(
        "BnB dips at n = 4–5 ({} and {} points vs baseB) and recovers at n = 6–7 ({} and {})",
        signed(drop(4)),
        signed(drop(5)),
        signed(drop(6)),
        signed(drop(7))
    )
}

pub fn specificity_note() -> String {
    let drop = |variant, n| random_split_drop_points(variant, n).expect("n in 1..=7");
    format!(
        "AnB falls at high n ({} points vs baseB at n = 6, {} at n = 7; {} vs BnB at n = 7)",
        signed(drop("AnB", 6)),
        signed(drop("AnB", 7)),
        signed(drop("AnB", 7) - drop("BnB", 7))
    )
}

pub fn dissimilar_note() -> String {
    format!(
        "at n = 7 AnB is {} points vs baseB on the dissimilar split (natural ↔ man-made, both directions averaged) and {} on random splits",
        signed(dissimilar_drop_points(7).expect("n = 7")),
        signed(random_split_drop_points("AnB", 7).expect("n = 7"))
    )
}

pub fn random_weights_note() -> String {
    format!(
        "random frozen layers: {} points at n = 1, {} at n = 2 (vs the 1000-class net), near chance ({:.3}–{:.3} top-1) for n = 3–7",
        signed(random_weights_drop_points(1).expect("n = 1")),
        signed(random_weights_drop_points(2).expect("n = 2")),
        RANDOM_WEIGHTS_HIGH_RANGE.0,
        RANDOM_WEIGHTS_HIGH_RANGE.1
    )
}

/// What the paper's Table 1 prints for the lingering boost (AnB+ over baseB averaged over
/// n = 1–7 and 5–7) and for AnB+ over BnB+: rounded figures from its own evaluations. The
/// notes and verdicts use the logs' per-n figures instead, which average over any range of n
/// and carry over n by n; the two differ by at most 0.16 points.
pub const TABLE_1_BOOST: [(&str, f64); 3] =
    [("n = 1–7", 1.6), ("n = 5–7", 2.1), ("over BnB+", 1.4)];

pub fn lingering_boost_note() -> String {
    format!(
        "AnB+ beats baseB by {} points averaged over n = 1–7 and {} over n = 5–7 (the logs; Table 1 prints +{:.1} and +{:.1})",
        signed(random_split_mean_points("AnB+", 1..=7)),
        signed(random_split_mean_points("AnB+", 5..=7)),
        TABLE_1_BOOST[0].1,
        TABLE_1_BOOST[1].1
    )
}

pub fn boost_control_note() -> String {
    format!(
        "AnB+ beats BnB+ by {} points averaged over n = 1–7 (the logs; Table 1 prints +{:.1}), and BnB+ itself is {} vs baseB: the boost comes from the other task's features, not from training longer",
        signed(random_split_mean_points("AnB+", 1..=7) - random_split_mean_points("BnB+", 1..=7)),
        TABLE_1_BOOST[2].1,
        signed(random_split_mean_points("BnB+", 1..=7))
    )
}

pub fn dissimilar_beats_random_note() -> String {
    let contrast = |n: u32| {
        dissimilar_drop_points(n).expect("n in 1..=7")
            - random_weights_drop_points(n).expect("n in 1..=2")
    };
    format!(
        "even between dissimilar tasks, transferred features beat random ones: at n = 1 and 2 the dissimilar AnB falls {} and {} points less below its base than random frozen layers fall below the 1000-class net (beyond n = 2 the random layers are near chance)",
        signed(contrast(1)),
        signed(contrast(2))
    )
}

/// A variant's mean difference from baseB over `layers`, in points (random splits).
pub fn random_split_mean_points(variant: &str, layers: std::ops::RangeInclusive<u32>) -> f64 {
    let drops: Vec<f64> = layers
        .filter_map(|n| random_split_drop_points(variant, n))
        .collect();
    drops.iter().sum::<f64>() / drops.len().max(1) as f64
}

/// Accuracy points (1 point = 0.01 top-1) between two top-1 figures.
fn points(accuracy: f64, reference: f64) -> f64 {
    (accuracy - reference) * 100.0
}

/// The paper's top-1 for a variant named as in the paper (`BnB`, `AnB`, `BnB+`, `AnB+`, or
/// `baseB` at n = 0), random splits.
pub fn random_split_accuracy(variant: &str, layers_copied: u32) -> Option<f64> {
    if variant == "baseB" {
        return (layers_copied == 0).then_some(BASE_B);
    }
    let row = RANDOM_SPLITS
        .iter()
        .find(|row| row.layers_copied == layers_copied)?;
    match variant {
        "BnB" => Some(row.selffer_frozen),
        "AnB" => Some(row.transfer_frozen),
        "BnB+" => Some(row.selffer_fine_tuned),
        "AnB+" => Some(row.transfer_fine_tuned),
        _ => None,
    }
}

/// A variant's curve over n = 1..7 (random splits), with baseB at n = 0 when `with_base`.
pub fn random_split_series(variant: &str, with_base: bool) -> Vec<(u32, f64)> {
    let mut series = Vec::new();
    if with_base {
        series.push((0, BASE_B));
    }
    series.extend(
        (1..=7).filter_map(|n| random_split_accuracy(variant, n).map(|accuracy| (n, accuracy))),
    );
    series
}

/// A variant's difference from baseB in points, random splits (Figure 3's "random split" curve).
pub fn random_split_drop_points(variant: &str, layers_copied: u32) -> Option<f64> {
    random_split_accuracy(variant, layers_copied).map(|accuracy| points(accuracy, BASE_B))
}

/// AnB's difference from its own base on the dissimilar split, averaged over both directions.
pub fn dissimilar_drop_points(layers_copied: u32) -> Option<f64> {
    let index = (layers_copied as usize)
        .checked_sub(1)
        .filter(|index| *index < 7)?;
    let into_man_made = points(DISSIMILAR_INTO_MAN_MADE[index], DISSIMILAR_BASE_MAN_MADE);
    let into_natural = points(DISSIMILAR_INTO_NATURAL[index], DISSIMILAR_BASE_NATURAL);
    Some((into_man_made + into_natural) / 2.0)
}

/// Random frozen layers against the 1000-class net, in points (n = 1 and 2 only: the paper
/// gives only a near-chance range beyond).
pub fn random_weights_drop_points(layers_copied: u32) -> Option<f64> {
    RANDOM_WEIGHTS
        .iter()
        .find(|(n, _)| *n == layers_copied)
        .map(|(_, accuracy)| points(*accuracy, WHOLE_NET))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_match_the_reference_notes() {
        // AnB at n = 7: 0.5425 − 0.6251.
        let drop = random_split_drop_points("AnB", 7).unwrap();
        assert!((drop + 8.26).abs() < 0.01, "{drop}");
        // The dissimilar split's mean drop at n = 7 is about 25 points.
        let dissimilar = dissimilar_drop_points(7).unwrap();
        assert!((dissimilar + 25.0).abs() < 0.5, "{dissimilar}");
        assert!((random_weights_drop_points(1).unwrap() + 8.43).abs() < 0.01);
        assert_eq!(random_weights_drop_points(3), None);
        assert_eq!(dissimilar_drop_points(0), None);
        assert_eq!(dissimilar_drop_points(8), None);
    }

    #[test]
    fn notes_quote_the_tables() {
        // The figures the notes print, checked against the tables by hand: BnB n = 4, 5 is
        // 0.6048 and 0.5935 against 0.6251; AnB+ averages 0.6420 over n = 1–7.
        assert!(co_adaptation_note().contains("(-2.03 and -3.16 points vs baseB)"));
        assert!(specificity_note().contains("-8.26 at n = 7; -8.07 vs BnB"));
        assert!(dissimilar_note().contains("AnB is -25.00 points vs baseB on the dissimilar split"));
        assert!(random_weights_note().contains("-8.43 points at n = 1, -17.33 at n = 2"));
        assert!(lingering_boost_note().contains("by +1.69 points averaged over n = 1–7 and +2.09"));
        assert!(dissimilar_beats_random_note().contains("+8.73 and +16.43 points"));
        assert!(boost_control_note().contains("by +1.56 points"));
    }

    #[test]
    fn series_start_at_base_when_asked() {
        let series = random_split_series("BnB", true);
        assert_eq!(series.len(), 8);
        assert_eq!(series[0], (0, BASE_B));
        assert_eq!(random_split_series("AnB+", false).len(), 7);
        assert!(random_split_series("random", false).is_empty());
    }
}
