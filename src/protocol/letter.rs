//! The kinds of letter lettergate knows, and everything DOMAIN.md fixes for each:
//! [`LetterKind`] with its MESH workflow id, ITK3 event code, document type, default
//! transport, the event its deadline runs from and the deadline itself.
//!
//! This table is the one place these facts live: the simulator builds letters from it,
//! scenario defaults come from it, and captured letters are classified with it.

use super::ids::NhsNumber;
use crate::protocol::clock::Span;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A letter kind, as written in scenarios (`clinic_letter`, `discharge_summary`, ...).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LetterKind {
    /// Outpatient clinic letter to the registered practice.
    ClinicLetter,
    /// Inpatient or day-case discharge summary to the registered practice.
    DischargeSummary,
    /// Emergency care discharge letter to the registered practice.
    EmergencyDischarge,
    /// Notice to the registered practice that the patient died in hospital.
    DeathNotification,
    /// The patient's own copy of a clinic letter, sent to print and post.
    PatientCopy,
}

/// How a letter travels; each has its capture in the `capture` layer.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// NHS MESH, carrying an ITK3 FHIR message bundle.
    Mesh,
    /// A plain HTTP request, as to a hybrid-mail print service.
    Http,
    /// HL7 v2 over MLLP: an MDM^T02 document message, answered with an ACK.
    Mllp,
    /// A file dropped in a watched folder: an ITK3 message bundle or an MDM^T02 message.
    Folder,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Mesh => "mesh",
            Transport::Http => "http",
            Transport::Mllp => "mllp",
            Transport::Folder => "folder",
        })
    }
}

/// Clinical event kinds, as written in a scenario timeline.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    OutpatientAttendance,
    LetterDrafted,
    LetterSigned,
    Admission,
    Discharge,
    EmergencyAttendance,
    EmergencyDischarge,
    Death,
    GpChange,
    NamedGpLeft,
    LetterCountersigned,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::OutpatientAttendance,
        EventKind::LetterDrafted,
        EventKind::LetterSigned,
        EventKind::Admission,
        EventKind::Discharge,
        EventKind::EmergencyAttendance,
        EventKind::EmergencyDischarge,
        EventKind::Death,
        EventKind::GpChange,
        EventKind::NamedGpLeft,
        EventKind::LetterCountersigned,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::OutpatientAttendance => "outpatient_attendance",
            EventKind::LetterDrafted => "letter_drafted",
            EventKind::LetterSigned => "letter_signed",
            EventKind::Admission => "admission",
            EventKind::Discharge => "discharge",
            EventKind::EmergencyAttendance => "emergency_attendance",
            EventKind::EmergencyDischarge => "emergency_discharge",
            EventKind::Death => "death",
            EventKind::GpChange => "gp_change",
            EventKind::NamedGpLeft => "named_gp_left",
            EventKind::LetterCountersigned => "letter_countersigned",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A SNOMED CT document type put in `Composition.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentType {
    pub code: &'static str,
    pub display: &'static str,
}

/// `Report of clinical encounter`, used for outpatient letters (code choice unverified).
pub const DOC_CLINIC_LETTER: DocumentType = DocumentType {
    code: "371531000",
    display: "Report of clinical encounter",
};
/// `Discharge summary`, used for inpatient, emergency and death-in-hospital summaries.
pub const DOC_DISCHARGE_SUMMARY: DocumentType = DocumentType {
    code: "373942005",
    display: "Discharge summary",
};

impl LetterKind {
    pub const ALL: [LetterKind; 5] = [
        LetterKind::ClinicLetter,
        LetterKind::DischargeSummary,
        LetterKind::EmergencyDischarge,
        LetterKind::DeathNotification,
        LetterKind::PatientCopy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LetterKind::ClinicLetter => "clinic_letter",
            LetterKind::DischargeSummary => "discharge_summary",
            LetterKind::EmergencyDischarge => "emergency_discharge",
            LetterKind::DeathNotification => "death_notification",
            LetterKind::PatientCopy => "patient_copy",
        }
    }

    /// Human words for reports: "clinic letter".
    pub fn words(self) -> String {
        self.name().replace('_', " ")
    }

    /// The MESH workflow id this kind must be sent with, if it goes over MESH.
    pub fn workflow_id(self) -> Option<&'static str> {
        match self {
            LetterKind::ClinicLetter => Some("TOC_FHIR_OP_ATTEN"),
            // A death in hospital is reported with an inpatient discharge summary whose
            // discharge method is "died" (our reading; DOMAIN.md names no own workflow).
            LetterKind::DischargeSummary | LetterKind::DeathNotification => {
                Some("TOC_FHIR_IP_DISCH")
            }
            LetterKind::EmergencyDischarge => Some("TOC_FHIR_EC_DISCH"),
            LetterKind::PatientCopy => None,
        }
    }

    /// The ITK3 `MessageHeader.event` code for this kind.
    pub fn itk3_event(self) -> Option<&'static str> {
        match self {
            LetterKind::ClinicLetter => Some("ITK006D"),
            LetterKind::DischargeSummary | LetterKind::DeathNotification => Some("ITK003D"),
            LetterKind::EmergencyDischarge => Some("ITK005D"),
            LetterKind::PatientCopy => None,
        }
    }

    pub fn itk3_event_display(self) -> &'static str {
        match self {
            LetterKind::ClinicLetter => "ITK Outpatient Letter",
            LetterKind::DischargeSummary | LetterKind::DeathNotification => {
                "ITK Inpatient Discharge"
            }
            LetterKind::EmergencyDischarge => "ITK Emergency Care Discharge",
            LetterKind::PatientCopy => "",
        }
    }

    pub fn document_type(self) -> DocumentType {
        match self {
            LetterKind::ClinicLetter | LetterKind::PatientCopy => DOC_CLINIC_LETTER,
            _ => DOC_DISCHARGE_SUMMARY,
        }
    }

    pub fn default_transport(self) -> Transport {
        match self {
            LetterKind::PatientCopy => Transport::Http,
            _ => Transport::Mesh,
        }
    }

    /// The clinical event the deadline of this kind runs from.
    pub fn trigger(self) -> EventKind {
        match self {
            LetterKind::ClinicLetter | LetterKind::PatientCopy => EventKind::OutpatientAttendance,
            LetterKind::DischargeSummary => EventKind::Discharge,
            LetterKind::EmergencyDischarge => EventKind::EmergencyDischarge,
            LetterKind::DeathNotification => EventKind::Death,
        }
    }

    /// The NHS Standard Contract deadline: 24 hours for discharges, 7 days for clinic letters.
    pub fn default_deadline(self) -> Span {
        match self {
            LetterKind::ClinicLetter | LetterKind::PatientCopy => Span::days(7),
            _ => Span::hours(24),
        }
    }

    /// Kinds addressed to a GP practice rather than to the patient.
    pub fn goes_to_practice(self) -> bool {
        self != LetterKind::PatientCopy
    }
}

impl fmt::Display for LetterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What lettergate keeps in memory about a letter: enough to check routing, timing and
/// identity, and a digest of the content. The content itself ([`LetterContent`]) stays in the
/// body on disk and is read again when a snapshot shows it, so a run of tens of thousands of
/// letters holds only this index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterFacts {
    /// `None` when the document is not of a kind lettergate knows.
    pub kind: Option<LetterKind>,
    pub itk3_event: Option<String>,
    pub nhs_number: Option<NhsNumber>,
    /// The receiving practice's ODS code from the message header.
    pub recipient_ods: Option<String>,
    pub to_patient: bool,
    pub document_id: Option<String>,
    /// SHA-256 of the normalised document, first 16 hex digits.
    pub digest: String,
    /// `Bundle.identifier` of an ITK3 message, which acknowledgements refer to.
    pub message_id: Option<String>,
    /// A print or document request's `reference`: the sender's own id for the letter.
    #[serde(default)]
    pub reference: Option<String>,
    /// The visit the letter reports on: the document's Encounter identifier, or PV1-19 of an
    /// HL7 message. Where the EHR keeps the local id lettergate drove the event with.
    #[serde(default)]
    pub visit_id: Option<String>,
}

/// What a letter says, as snapshots show it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LetterContent {
    /// `code display` of `Composition.type`.
    pub document_type: Option<String>,
    pub title: Option<String>,
    /// Each section's title and its text without markup.
    pub sections: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_practice_letter_has_the_workflow_and_event_of_domain_md() {
        let table: Vec<_> = LetterKind::ALL
            .iter()
            .map(|k| (k.name(), k.workflow_id(), k.itk3_event()))
            .collect();
        assert_eq!(
            table,
            vec![
                ("clinic_letter", Some("TOC_FHIR_OP_ATTEN"), Some("ITK006D")),
                (
                    "discharge_summary",
                    Some("TOC_FHIR_IP_DISCH"),
                    Some("ITK003D")
                ),
                (
                    "emergency_discharge",
                    Some("TOC_FHIR_EC_DISCH"),
                    Some("ITK005D")
                ),
                (
                    "death_notification",
                    Some("TOC_FHIR_IP_DISCH"),
                    Some("ITK003D")
                ),
                ("patient_copy", None, None),
            ]
        );
    }

    #[test]
    fn deadlines_follow_the_standard_contract() {
        assert_eq!(LetterKind::ClinicLetter.default_deadline(), Span::days(7));
        assert_eq!(
            LetterKind::DischargeSummary.default_deadline(),
            Span::hours(24)
        );
        assert_eq!(
            LetterKind::EmergencyDischarge.default_deadline(),
            Span::hours(24)
        );
    }

    #[test]
    fn names_round_trip_through_serde() {
        for k in LetterKind::ALL {
            let v: LetterKind = serde_json::from_value(serde_json::json!(k.name())).unwrap();
            assert_eq!(v, k);
        }
        for e in EventKind::ALL {
            let v: EventKind = serde_json::from_value(serde_json::json!(e.name())).unwrap();
            assert_eq!(v, e);
        }
    }
}
