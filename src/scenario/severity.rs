//! How much each kind of finding matters: [`Severity`] and [`FindingKind`], the names a
//! scenario or target file uses to raise or lower a kind of finding.

use serde::Serialize;

/// How much a finding matters to a change board. Ordered worst first.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A patient's GP does not get, or wrongly gets, a letter: missing, misrouted, to a
    /// deceased patient, reported by MESH.
    Blocker,
    /// The letter arrives, but not as it must: late, duplicated, on the wrong workflow.
    Major,
    /// Something changed that a person must look at: the content or a new snapshot.
    Review,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Blocker => "blocker",
            Severity::Major => "major",
            Severity::Review => "review",
        }
    }
}

/// The kinds of finding, by the names scenarios use to change their severity.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    MissingLetter,
    UnmatchedLetter,
    // Issue 13: a letter on a capture without authentication of its own carrying an id
    // already seen in an earlier run or scenario.
    ReplayedLetter,
    WrongRecipient,
    LetterToDeceased,
    ReportReceived,
    Late,
    // Issue 12: a letter that states its event on another day than it happened.
    WrongDate,
    Duplicate,
    WrongWorkflow,
    WrongEventCode,
    WrongTransport,
    UnexpectedLetter,
    Refused,
    Unreadable,
    // Issue 11: a letter read although its message breaks an ITK3 or FHIR rule; the message
    // and the transport naming different recipients; a Composition sent not final. (Plain
    // comments: doc comments would change the JSON Schema's shape for the severity map.)
    NonConformantLetter,
    RecipientsDisagree,
    NotFinal,
    MissingAck,
    NegativeAck,
    WrongBusinessAck,
    AckNotCollected,
    ContentChanged,
    NewSnapshot,
}

impl FindingKind {
    pub fn default_severity(self) -> Severity {
        use FindingKind as K;
        match self {
            K::MissingLetter | K::WrongRecipient | K::LetterToDeceased | K::ReportReceived => {
                Severity::Blocker
            }
            K::ContentChanged | K::NewSnapshot => Severity::Review,
            _ => Severity::Major,
        }
    }
}
