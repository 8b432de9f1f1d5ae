//! A serde helper for scalars that are checked as they are read: [`parse_scalar`].
//!
//! Why: `yaml_serde` attaches the position of a scalar only to errors raised *inside* its
//! visitor call. A check made after `String::deserialize` returns would be reported at the
//! enclosing mapping instead, so every checked scalar validates inside `visit_str`.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::marker::PhantomData;

struct ScalarVisitor<T, F> {
    expecting: &'static str,
    check: F,
    out: PhantomData<T>,
}

impl<'de, T, E, F> Visitor<'de> for ScalarVisitor<T, F>
where
    E: fmt::Display,
    F: FnOnce(&str) -> Result<T, E>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<DE: de::Error>(self, v: &str) -> Result<T, DE> {
        (self.check)(v).map_err(DE::custom)
    }

    // Unquoted numbers in YAML (an NHS number written without quotes) arrive as integers.
    fn visit_u64<DE: de::Error>(self, v: u64) -> Result<T, DE> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<DE: de::Error>(self, v: i64) -> Result<T, DE> {
        self.visit_str(&v.to_string())
    }
}

/// Reads a string scalar and checks it with `check`, so a refusal carries the scalar's position
/// and the check's message.
pub fn parse_scalar<'de, D, T, E>(
    d: D,
    expecting: &'static str,
    check: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    E: fmt::Display,
{
    d.deserialize_any(ScalarVisitor {
        expecting,
        check,
        out: PhantomData,
    })
}
