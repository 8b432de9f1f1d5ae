//! [`Shard`]: one of N slices of a suite (`--shard K/N`), so CI can spread a run over N jobs and
//! `report merge` can put the slices back together.
//!
//! A scenario's shard depends on a hash of its id alone, never on its position in the suite, so
//! adding or removing scenarios moves no other scenario to another shard (a count-based split
//! would move half of them, and two jobs of one pipeline could then disagree).
//!
//! ```
//! use lettergate::Shard;
//! let shard: Shard = "2/3".parse().unwrap();
//! assert_eq!(shard.to_string(), "2/3");
//! let ids = ["a/one", "a/two", "b/three"];
//! let mine = ids.iter().filter(|id| shard.contains(id)).count();
//! assert!(mine <= ids.len());
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count`, 1-based as GitLab's `CI_NODE_INDEX`/`CI_NODE_TOTAL`;
/// `1 <= index <= count` always holds. Written and read as `K/N`, also in the JSON report.
///
/// Shards order by index: `2/12` before `10/12`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Shard {
    // Field order matters: the derived `Ord` compares the index first.
    index: u32,
    count: u32,
}

/// A shard argument that is not `K/N` with `1 <= K <= N`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected K/N with 1 <= K <= N, such as `1/3`; found `{input}`")]
pub struct ShardParseError {
    input: String,
}

impl Shard {
    /// Shard `index` of `count`; `None` unless `1 <= index <= count`.
    pub fn new(index: u32, count: u32) -> Option<Shard> {
        (index >= 1 && index <= count).then_some(Shard { index, count })
    }

    /// The 1-based number of this shard.
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many shards the suite is split into.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether the scenario with this id runs in this shard: by a hash of the id alone.
    pub fn contains(self, id: &str) -> bool {
        let h = Sha256::digest(id.as_bytes());
        let v = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        v % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl FromStr for Shard {
    type Err = ShardParseError;

    fn from_str(text: &str) -> Result<Shard, ShardParseError> {
        let bad = || ShardParseError {
            input: text.to_string(),
        };
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let k: u32 = k.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        Shard::new(k, n).ok_or_else(bad)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl TryFrom<String> for Shard {
    type Error = ShardParseError;

    fn try_from(text: String) -> Result<Shard, ShardParseError> {
        text.parse()
    }
}

impl From<Shard> for String {
    fn from(shard: Shard) -> String {
        shard.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(n: u32) -> Vec<Shard> {
        (1..=n).filter_map(|k| Shard::new(k, n)).collect()
    }

    #[test]
    fn a_scenario_is_in_exactly_one_shard_and_adding_scenarios_moves_none() {
        let ids: Vec<String> = (0..200).map(|i| format!("area/scenario_{i}")).collect();
        let shard_of = |id: &str| {
            shards(4)
                .into_iter()
                .filter(|s| s.contains(id))
                .collect::<Vec<_>>()
        };
        for id in &ids {
            assert_eq!(shard_of(id).len(), 1, "{id}");
        }
        // A shard depends on the id alone, so nothing moves when the list grows.
        let before: Vec<_> = ids.iter().map(|id| shard_of(id)).collect();
        let mut more = ids.clone();
        more.push("new/scenario".into());
        let after: Vec<_> = more.iter().take(ids.len()).map(|id| shard_of(id)).collect();
        assert_eq!(before, after);
        let sizes: Vec<usize> = shards(4)
            .into_iter()
            .map(|s| ids.iter().filter(|id| s.contains(id)).count())
            .collect();
        assert!(
            sizes.iter().all(|n| *n > 30),
            "shards are roughly even: {sizes:?}"
        );
    }

    #[test]
    fn shard_arguments_are_checked() {
        assert_eq!("2/3".parse(), Ok(Shard::new(2, 3).unwrap()));
        assert_eq!(" 2 / 3 ".parse::<Shard>().map(Shard::count), Ok(3));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_shard_says_what_was_expected_and_what_was_found() {
        let e = "4/3".parse::<Shard>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected K/N with 1 <= K <= N, such as `1/3`; found `4/3`"
        );
    }

    #[test]
    fn a_shard_is_written_as_it_is_read_also_in_json() {
        let s: Shard = "3/7".parse().unwrap();
        assert_eq!(s.to_string(), "3/7");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"3/7\"");
        assert_eq!(serde_json::from_str::<Shard>("\"3/7\"").unwrap(), s);
        assert!(serde_json::from_str::<Shard>("\"8/7\"").is_err());
    }

    #[test]
    fn shards_sort_by_number_not_by_text() {
        let mut v: Vec<Shard> = ["10/12", "2/12", "1/12"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        v.sort();
        let texts: Vec<String> = v.iter().map(Shard::to_string).collect();
        assert_eq!(texts, ["1/12", "2/12", "10/12"]);
    }
}
