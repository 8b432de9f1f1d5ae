//! Reading benchmark lines and judging rounds of them: the median ratio of volume to its
//! loopback reference over interleaved rounds, its spread, and whether the spread is narrow
//! enough to trust ([`TOO_WIDE`]).

/// A spread of the round ratios, `(max - min) / median`, above this is too wide to trust: the
/// machine changed under the measurement (other work started or stopped), so the median says
/// little about lettergate. 20 % keeps a reading of 0.50 between about 0.45 and 0.55.
pub const TOO_WIDE: f64 = 0.20;

/// Floating-point noise: a spread of 20 % that comes out as 0.2000000000000001 is 20 %.
const EPSILON: f64 = 1e-9;

/// The value of `key=` in a benchmark line, when it is a number.
pub fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// The median of `values` (the mean of the middle two of an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// The rounds of reference and volume measured one after the other.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rounds {
    /// The reference's requests per second, per round.
    pub loopback: Vec<f64>,
    /// Volume letters per second over that round's reference rate, per round.
    pub ratios: Vec<f64>,
}

/// What the rounds say.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub rounds: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// `(max - min) / median`.
    pub spread: f64,
    pub loopback_median: f64,
}

impl Rounds {
    /// Adds a round from its two lines; false when either has no rate or ratio.
    pub fn add(&mut self, loopback: &str, volume: &str) -> bool {
        match (field(loopback, "letters_per_s"), field(volume, "ratio")) {
            (Some(l), Some(r)) => {
                self.loopback.push(l);
                self.ratios.push(r);
                true
            }
            _ => false,
        }
    }

    /// The median ratio and its spread; `None` before the first round.
    pub fn summary(&self) -> Option<Summary> {
        let median = median(&self.ratios)?;
        let min = self.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self
            .ratios
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        Some(Summary {
            rounds: self.ratios.len(),
            median,
            min,
            max,
            spread: if median > 0.0 {
                (max - min) / median
            } else {
                f64::INFINITY
            },
            loopback_median: self::median(&self.loopback).unwrap_or(0.0),
        })
    }
}

impl Summary {
    /// Whether the spread is narrow enough to trust the median ([`TOO_WIDE`]).
    pub fn trusted(&self) -> bool {
        self.spread <= TOO_WIDE + EPSILON
    }

    /// `bench ratio rounds=5 median=0.62 min=0.58 max=0.66 spread=0.13 loopback_median=31000`.
    pub fn line(&self) -> String {
        format!(
            "bench ratio rounds={} median={:.2} min={:.2} max={:.2} spread={:.2} loopback_median={:.0}",
            self.rounds, self.median, self.min, self.max, self.spread, self.loopback_median
        )
    }

    /// The verdict on the spread, in words, for the line after [`Summary::line`].
    pub fn verdict(&self) -> String {
        // Whole percents, but one decimal where a whole one would read as the limit itself
        // ("20 % ... more than 20 %").
        let (pct, limit) = (self.spread * 100.0, TOO_WIDE * 100.0);
        let mut shown = format!("{pct:.0}");
        for decimals in 1..=3 {
            if shown.parse::<f64>() == Ok(limit) && (pct - limit).abs() > EPSILON * 100.0 {
                shown = format!("{pct:.decimals$}");
            }
        }
        let range = format!(
            "ratios {:.2} to {:.2} over {} rounds, {shown} % of the median",
            self.min, self.max, self.rounds,
        );
        if self.rounds < 2 {
            format!(
                "  spread unknown: one round only ({range}); give --rounds 3 or more to judge it"
            )
        } else if self.trusted() {
            format!(
                "  spread narrow enough to trust: {range} (at most {:.0} %)",
                TOO_WIDE * 100.0
            )
        } else {
            format!(
                "  spread TOO WIDE TO TRUST: {range} (more than {:.0} %): the machine changed during the run; run again on a quieter machine",
                TOO_WIDE * 100.0
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_just_past_the_limit_does_not_read_as_the_limit() {
        // (0.26 - 0.21) / 0.25 is 20 % exactly, though not in floating point: at most 20 %.
        let s = rounds(&[0.21, 0.25, 0.26, 0.249, 0.2505])
            .summary()
            .unwrap();
        assert!(s.trusted(), "{s:?}");
        assert!(
            s.verdict().contains(" 20 % of the median (at most 20 %)"),
            "{}",
            s.verdict()
        );
        let s = rounds(&[0.21, 0.25, 0.2611, 0.249, 0.2505])
            .summary()
            .unwrap();
        assert!(!s.trusted(), "{s:?}");
        assert!(
            s.verdict()
                .contains("20.4 % of the median (more than 20 %)"),
            "{}",
            s.verdict()
        );
        let s = rounds(&[0.21, 0.25, 0.25, 0.25, 0.25]).summary().unwrap();
        assert!(s.trusted());
        assert!(
            s.verdict().contains("16 % of the median (at most 20 %)"),
            "{}",
            s.verdict()
        );
    }

    #[test]
    fn fields_are_read_by_their_whole_key() {
        let l = "bench volume letters=52997 wall_s=8.000 letters_per_s=6625 peak_rss_mb=141.1 ratio=0.61 decision=GO";
        assert_eq!(field(l, "letters_per_s"), Some(6625.0));
        assert_eq!(field(l, "ratio"), Some(0.61));
        assert_eq!(field(l, "letters"), Some(52997.0));
        assert_eq!(field(l, "decision"), None);
        assert_eq!(field("bench loopback ratio=-", "ratio"), None);
    }

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_and_of_an_even_count_the_mean_of_two() {
        assert_eq!(median(&[0.7, 0.5, 0.6]), Some(0.6));
        assert_eq!(median(&[0.4, 0.8, 0.5, 0.6]), Some(0.55));
        assert_eq!(median(&[]), None);
    }

    fn rounds(ratios: &[f64]) -> Rounds {
        let mut r = Rounds::default();
        for (i, ratio) in ratios.iter().enumerate() {
            let lb = format!("bench loopback letters=13250 letters_per_s={}", 30000 + i);
            assert!(r.add(&lb, &format!("bench volume-quarter ratio={ratio}")));
        }
        r
    }

    #[test]
    fn five_close_rounds_are_trusted_and_their_median_is_the_figure() {
        let s = rounds(&[0.60, 0.62, 0.58, 0.61, 0.63]).summary().unwrap();
        assert_eq!((s.rounds, s.median, s.min, s.max), (5, 0.61, 0.58, 0.63));
        assert!((s.spread - 0.05 / 0.61).abs() < 1e-9);
        assert!(s.trusted());
        assert_eq!(s.loopback_median, 30002.0);
        assert_eq!(
            s.line(),
            "bench ratio rounds=5 median=0.61 min=0.58 max=0.63 spread=0.08 loopback_median=30002"
        );
        assert_eq!(
            s.verdict(),
            "  spread narrow enough to trust: ratios 0.58 to 0.63 over 5 rounds, 8 % of the median (at most 20 %)"
        );
    }

    #[test]
    fn rounds_that_swing_are_said_to_be_too_wide_to_trust() {
        // Issue 16: a reference that swung 4x made ratios of 0.20 to 0.79 on one afternoon.
        let s = rounds(&[0.20, 0.59, 0.71, 0.79, 0.60]).summary().unwrap();
        assert_eq!(s.median, 0.60);
        assert!(!s.trusted());
        assert!(s.verdict().contains("TOO WIDE TO TRUST: ratios 0.20 to 0.79 over 5 rounds, 98 % of the median (more than 20 %)"), "{}", s.verdict());
    }

    #[test]
    fn a_spread_just_over_the_threshold_is_too_wide_and_one_just_under_is_not() {
        let over = rounds(&[0.44, 0.50, 0.555]).summary().unwrap();
        assert!(over.spread > TOO_WIDE && !over.trusted(), "{over:?}");
        let under = rounds(&[0.46, 0.50, 0.55]).summary().unwrap();
        assert!(under.spread < TOO_WIDE && under.trusted(), "{under:?}");
    }

    #[test]
    fn one_round_has_no_spread_to_judge() {
        let s = rounds(&[0.6]).summary().unwrap();
        assert!(s.verdict().starts_with("  spread unknown: one round only"));
        assert_eq!(Rounds::default().summary(), None);
    }

    #[test]
    fn a_round_without_a_rate_or_a_ratio_is_not_counted() {
        let mut r = Rounds::default();
        assert!(!r.add(
            "bench loopback letters_per_s=1",
            "bench volume-quarter ratio=-"
        ));
        assert!(!r.add("bench loopback", "bench volume-quarter ratio=0.5"));
        assert_eq!(r, Rounds::default());
    }
}
