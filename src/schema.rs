//! JSON Schemas of the files people write, for editors and validators: [`SchemaKind`] names
//! the three (scenario, fixture, target) and renders each as draft-07 JSON Schema generated
//! from the raw YAML types with `schemars`, so a field added to a type is in its schema.
//!
//! Design constraint: the raw types check many scalars in their own `Deserialize` (an ODS
//! code's shape, a synthetic NHS number, a reference to a practice defined elsewhere). Their
//! schemas, below, say what an editor can check without the rest of the suite (the shape of
//! the text); the names a file refers to and the rules between fields stay with `validate`,
//! which has the whole suite. The schemas are therefore looser than lettergate, never stricter:
//! a file `validate` accepts is valid against its schema (the tests check every shipped one).

use crate::protocol::clock::{Span, Timestamp};
use crate::protocol::ids::OdsCode;
use crate::protocol::itk3::Itk3Response;
use crate::scenario::file::{
    BirthDate, Checked, Mailbox, PatientRef, PracticeOrNone, PracticeRef, RawFixtures,
    RawRecipient, RawScenario, SyntheticNhs,
};
use crate::targets::file::{
    Address, EnvName, EventName, FieldPath, HttpUrl, KindName, KindSource, Listen, MatchBy, Method,
    RawTarget, RecipientSource, SpanValue, TargetClock, TargetName, Template, TransportName,
};
use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;

/// The kinds of file lettergate reads that people write by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaKind {
    /// A scenario file (`scenarios/**/*.yaml` outside `fixtures/`).
    Scenario,
    /// A fixture file of practices and patients (`scenarios/fixtures/*.yaml`).
    Fixture,
    /// A target file: a staging EHR, how to drive it and where its letters come out.
    Target,
}

impl SchemaKind {
    pub const ALL: [SchemaKind; 3] = [
        SchemaKind::Scenario,
        SchemaKind::Fixture,
        SchemaKind::Target,
    ];

    /// `scenario`, `fixture`, `target`: the argument of `lettergate schema`.
    pub fn name(self) -> &'static str {
        match self {
            SchemaKind::Scenario => "scenario",
            SchemaKind::Fixture => "fixture",
            SchemaKind::Target => "target",
        }
    }

    /// The file the schema is kept in, `scenario.schema.json`.
    pub fn file_name(self) -> String {
        format!("{}.schema.json", self.name())
    }

    /// The schema, as JSON Schema draft-07 (what YAML language servers read best).
    pub fn schema(self) -> Schema {
        let generator = SchemaSettings::draft07().into_generator();
        let (mut schema, title) = match self {
            SchemaKind::Scenario => (
                generator.into_root_schema_for::<RawScenario>(),
                "lettergate scenario file",
            ),
            SchemaKind::Fixture => (
                generator.into_root_schema_for::<RawFixtures>(),
                "lettergate fixture file (practices and patients)",
            ),
            SchemaKind::Target => (
                generator.into_root_schema_for::<RawTarget>(),
                "lettergate target file",
            ),
        };
        schema.insert("title".into(), title.into());
        schema
    }

    /// The schema as the pretty-printed JSON kept in `schemas/`, ending in a newline.
    pub fn render(self) -> String {
        let mut text = serde_json::to_string_pretty(&self.schema())
            .expect("a schema is plain JSON and always serialises");
        text.push('\n');
        text
    }
}

impl std::str::FromStr for SchemaKind {
    type Err = UnknownSchemaKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SchemaKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownSchemaKind(s.to_string()))
    }
}

/// A name that is not `scenario`, `fixture` or `target`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind of file `{0}`: expected scenario, fixture or target")]
pub struct UnknownSchemaKind(pub String);

impl<T: JsonSchema> JsonSchema for Checked<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A scalar type's schema, written once: the type, its name and the schema's JSON.
macro_rules! scalar_schema {
    ($ty:ty, $name:literal, $schema:tt) => {
        impl JsonSchema for $ty {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

// A duration: one or more of a number and a unit (`7d`, `24h`, `1d 2h`).
const SPAN: &str = r"^\s*[0-9]+[dhms](\s+[0-9]+[dhms])*\s*$";

scalar_schema!(Span, "Span", {
    "description": "A duration: a number and a unit (d, h, m, s), such as `7d`, `24h` or `1d 2h`.",
    "type": "string",
    "pattern": SPAN
});
scalar_schema!(SpanValue, "Span", {
    "description": "A duration: a number and a unit (d, h, m, s), such as `30s` or `10m`.",
    "type": "string",
    "pattern": SPAN
});
scalar_schema!(Timestamp, "Timestamp", {
    "description": "An RFC 3339 time with seconds and a zone, such as `2025-03-03T09:30:00Z`.",
    "type": "string",
    "format": "date-time"
});
scalar_schema!(OdsCode, "OdsCode", {
    "description": "A GP practice ODS code: one letter (not I, O, X, Z) and five digits, such as `A81001`.",
    "type": "string",
    "pattern": "^[A-HJ-NP-WY][0-9]{5}$"
});
scalar_schema!(SyntheticNhs, "SyntheticNhsNumber", {
    "description": "An NHS number in the synthetic 999 range (999 000 0000 to 999 999 9999), with a valid check digit.",
    "type": ["string", "integer"],
    "pattern": "^ *9 *9 *9( *[0-9]){7} *$",
    "minimum": 9_990_000_000_u64,
    "maximum": 9_999_999_999_u64
});
scalar_schema!(BirthDate, "BirthDate", {
    "description": "A date of birth, `YYYY-MM-DD`.",
    "type": "string",
    "format": "date"
});
scalar_schema!(Mailbox, "Mailbox", {
    "description": "A MESH mailbox id: uppercase letters and digits, such as `A81001HC001`.",
    "type": "string",
    "pattern": "^[A-Z0-9]{1,100}$"
});
scalar_schema!(PracticeRef, "PracticeName", {
    "description": "The name of a practice defined under `practices:` in this file or an included one.",
    "type": "string"
});
scalar_schema!(PatientRef, "PatientName", {
    "description": "The name of a patient defined under `patients:` in this file or an included one.",
    "type": "string"
});
scalar_schema!(PracticeOrNone, "PracticeNameOrNone", {
    "description": "The name of a practice defined under `practices:`, or `none` for a patient with no registered GP.",
    "type": "string"
});
scalar_schema!(RawRecipient, "Recipient", {
    "description": "`registered_practice`, `patient`, or the name of a practice defined under `practices:`.",
    "type": "string",
    "examples": ["registered_practice", "patient"]
});
scalar_schema!(Itk3Response, "Itk3Response", {
    "description": "An ITK3 business response code: 30001 (known here), 30002 (not known here), 30003 (no longer registered here) or 30004 (known here and recently deceased).",
    "type": ["integer", "string"],
    "enum": [30001, 30002, 30003, 30004, "30001", "30002", "30003", "30004"]
});
scalar_schema!(TargetName, "TargetName", {
    "description": "Names the target in reports and its snapshot folder: letters, digits, `-` and `_`.",
    "type": "string",
    "pattern": "^[A-Za-z0-9_-]{1,64}$"
});
scalar_schema!(HttpUrl, "HttpUrl", {
    "description": "An `http://` or `https://` URL.",
    "type": "string",
    "pattern": "^https?://"
});
scalar_schema!(Address, "Address", {
    "description": "`host:port`.",
    "type": "string",
    "pattern": "^[^\\s:]+:[0-9]+$"
});
scalar_schema!(Listen, "Listen", {
    "description": "An address to listen on, `IP:port`, such as `127.0.0.1:8443`.",
    "type": "string"
});
scalar_schema!(EnvName, "EnvName", {
    "description": "The name of an environment variable that holds the secret (never the secret itself).",
    "type": "string",
    "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"
});
scalar_schema!(Method, "Method", {
    "description": "An HTTP method, such as `POST` or `PUT`.",
    "type": "string",
    "pattern": "^[A-Za-z]+$"
});
scalar_schema!(Template, "Template", {
    "description": "Text with `{{placeholder}}`s: nhs_number, patient_name, family_name, given_name, born, practice_ods, event, at, at_hl7, clinical_at, clinical_at_hl7, clinical_date, to_practice_ods, local_id, scenario.",
    "type": "string"
});
scalar_schema!(FieldPath, "FieldPath", {
    "description": "A place in a letter: a FHIR path such as `Encounter.identifier.value`, an HL7 v2 field such as `PV1-19`, or a MESH header such as `mex-LocalID`.",
    "type": "string"
});

impl JsonSchema for EventName {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "EventName".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        crate::protocol::letter::EventKind::json_schema(generator)
    }
}

scalar_schema!(RecipientSource, "RecipientSource", {
    "description": "Where a reader finds whom a letter is for: a field path to a practice's ODS code (or the word `patient`), or `patient` when every letter it reads goes to the patient.",
    "type": "string"
});
scalar_schema!(KindSource, "KindSource", {
    "description": "Where a reader finds a letter's kind: a field path to a document type code or a kind's name, or a kind's name such as `patient_copy`.",
    "type": "string"
});

impl JsonSchema for KindName {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "KindName".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        crate::protocol::letter::LetterKind::json_schema(generator)
    }
}

impl JsonSchema for TransportName {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "TransportName".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        crate::protocol::letter::Transport::json_schema(generator)
    }
}

impl JsonSchema for TargetClock {
    fn schema_name() -> Cow<'static, str> {
        "TargetClock".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The clinical time the EHR is told of each event: `now` (the default: when it is driven), `scenario` (the scenario's own times, moved as a whole onto the most recent days that keep its weekdays, clock times, bank holidays, clock changes and month ends), or `{scenario: {not_after: YYYY-MM-DD}}` (the same, on or before that day).",
            "oneOf": [
                {"type": "string", "enum": ["now", "scenario"]},
                {
                    "type": "object",
                    "properties": {
                        "scenario": {
                            "type": "object",
                            "properties": {"not_after": {"type": "string", "format": "date"}},
                            "required": ["not_after"],
                            "additionalProperties": false
                        }
                    },
                    "required": ["scenario"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl JsonSchema for MatchBy {
    fn schema_name() -> Cow<'static, str> {
        "MatchBy".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let path = generator.subschema_for::<FieldPath>();
        json_schema!({
            "description": "How a captured letter is matched to its scenario: `nhs_number` (the default), `local_id`, or `{field: PATH}` / `{field: [PATH, ...]}`.",
            "oneOf": [
                {"type": "string", "enum": ["nhs_number", "local_id"]},
                {
                    "type": "object",
                    "properties": {
                        "field": {"oneOf": [path, {"type": "array", "items": path, "minItems": 1}]}
                    },
                    "required": ["field"],
                    "additionalProperties": false
                }
            ]
        })
    }
}
