//! The kinds of letter lettergate knows, and everything the specifications fix for each:
//! [`LetterKind`] with its MESH workflow id, ITK3 event code, document type, default
//! transport, the event its deadline runs from and the deadline itself; and the letter table
//! ([`SPEC_ROWS`], [`KindTable`]) that says how a captured letter is recognised as a kind.
//!
//! This file is the one place these facts live: the simulator builds letters from it,
//! scenario defaults come from it, and captured letters are classified with it. Each row of
//! the table names the specification file it comes from (README, "Kinds of letter"); a target
//! file can add rows of its own for an EHR that uses local codes ([`KindTable::with_local`]).

use super::ids::NhsNumber;
use crate::protocol::clock::{Span, Timestamp};
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
    /// Mental health inpatient discharge summary to the registered practice.
    MentalHealthDischarge,
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

/// The document a `letter_drafted`, `letter_signed` or `letter_countersigned` event is about:
/// the clinic letter of the patient's outpatient attendance, or the discharge summary of their
/// inpatient or emergency stay (both specifications type it `Discharge summary`). A scenario
/// does not write it: the loader takes it from the patient's latest visit before the event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signs {
    #[default]
    ClinicLetter,
    DischargeSummary,
}

impl Signs {
    /// The document type and title the FHIR mapping gives the Composition of the event.
    pub fn document(self) -> (DocumentType, &'static str) {
        match self {
            Signs::ClinicLetter => (DOC_CLINIC_LETTER, "Outpatient clinic letter"),
            Signs::DischargeSummary => (DOC_DISCHARGE_SUMMARY, "Discharge summary"),
        }
    }

    /// What a Composition's type says it is about, for the simulator reading the mapping back.
    pub fn of_document_type(code: &str) -> Signs {
        if code == DOC_DISCHARGE_SUMMARY.code {
            Signs::DischargeSummary
        } else {
            Signs::ClinicLetter
        }
    }
}

/// A SNOMED CT document type put in `Composition.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentType {
    pub code: &'static str,
    pub display: &'static str,
}

/// `Report of clinical encounter`, which the simulator puts on outpatient letters (code choice
/// unverified: no specification names it; the Outpatient Letter specification advises
/// [`DOC_OUTPATIENT_LETTER`], which the table accepts too).
pub const DOC_CLINIC_LETTER: DocumentType = DocumentType {
    code: "371531000",
    display: "Report of clinical encounter",
};
/// `Outpatient letter`, the document type the ITK3 Outpatient Letter specification advises
/// (`nhsconnect/ITK-FHIR-Outpatient-Letter`, `pages/explore/explore_headings.md`).
pub const DOC_OUTPATIENT_LETTER: DocumentType = DocumentType {
    code: "823681000000100",
    display: "Outpatient letter",
};
/// `Discharge summary`, which the specifications advise for every eDischarge (inpatient, mental
/// health, emergency care; `explore_headings.md` of each), so death-in-hospital summaries too.
pub const DOC_DISCHARGE_SUMMARY: DocumentType = DocumentType {
    code: "373942005",
    display: "Discharge summary",
};

impl LetterKind {
    pub const ALL: [LetterKind; 6] = [
        LetterKind::ClinicLetter,
        LetterKind::DischargeSummary,
        LetterKind::EmergencyDischarge,
        LetterKind::MentalHealthDischarge,
        LetterKind::DeathNotification,
        LetterKind::PatientCopy,
    ];

    /// The kinds the built-in simulator sends (every kind but the mental health discharge,
    /// which scenarios may expect from a target).
    pub const SIMULATED: [LetterKind; 5] = [
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
            LetterKind::MentalHealthDischarge => "mental_health_discharge",
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
            LetterKind::MentalHealthDischarge => Some("TOC_FHIR_MH_DISCH"),
            LetterKind::PatientCopy => None,
        }
    }

    /// The ITK3 `MessageHeader.event` code for this kind.
    pub fn itk3_event(self) -> Option<&'static str> {
        match self {
            LetterKind::ClinicLetter => Some("ITK006D"),
            LetterKind::DischargeSummary | LetterKind::DeathNotification => Some("ITK003D"),
            LetterKind::EmergencyDischarge => Some("ITK005D"),
            LetterKind::MentalHealthDischarge => Some("ITK004D"),
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
            LetterKind::MentalHealthDischarge => "ITK Mental Health eDischarge",
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
            LetterKind::DischargeSummary | LetterKind::MentalHealthDischarge => {
                EventKind::Discharge
            }
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

/// Where a row of the letter table comes from: the nhsconnect repositories on GitHub, read at
/// the commit README cites, or DOMAIN.md where no specification file names the value.
const EVENTS: &str = "nhsconnect/STU3-FHIR-Assets CodeSystems/CodeSystem-ITK-MessageEvent-2.xml";

/// One row of the letter table: a kind, and the values that say a letter is of it. Where a
/// specification allows several codes, the row lists each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecRow {
    pub kind: LetterKind,
    /// MESH workflow ids (`mex-WorkflowID`).
    pub workflow_ids: &'static [&'static str],
    /// ITK3 `MessageHeader.event` codes.
    pub itk3_events: &'static [&'static str],
    /// SNOMED CT `Composition.type` codes.
    pub document_types: &'static [&'static str],
    /// The specification files that say so.
    pub sources: &'static [&'static str],
}

/// The letter table from the specifications. README "Kinds of letter" shows the same rows.
pub const SPEC_ROWS: [SpecRow; 6] = [
    SpecRow {
        kind: LetterKind::ClinicLetter,
        workflow_ids: &["TOC_FHIR_OP_ATTEN"],
        itk3_events: &["ITK006D"],
        // The second is lettergate's own choice (unverified), kept so the simulator's letters
        // and existing baselines still read.
        document_types: &[DOC_OUTPATIENT_LETTER.code, DOC_CLINIC_LETTER.code],
        sources: &[
            "nhsconnect/ITK-FHIR-Outpatient-Letter pages/explore/explore_headings.md (document type)",
            "nhsconnect/STU3-FHIR-Assets MessageDefinitions/ITK-OPL-MessageDefinition-4.xml (event)",
            EVENTS,
            "DOMAIN.md (workflow id; no specification file found)",
        ],
    },
    SpecRow {
        kind: LetterKind::DischargeSummary,
        workflow_ids: &["TOC_FHIR_IP_DISCH"],
        itk3_events: &["ITK003D"],
        document_types: &[DOC_DISCHARGE_SUMMARY.code],
        sources: &[
            "nhsconnect/ITK3-FHIR-eDischarge pages/explore/explore_headings.md (document type)",
            "nhsconnect/STU3-FHIR-Assets MessageDefinitions/ITK-eDischarge-MessageDefinition-4.xml (event)",
            EVENTS,
            "DOMAIN.md (workflow id; no specification file found)",
        ],
    },
    SpecRow {
        kind: LetterKind::EmergencyDischarge,
        workflow_ids: &["TOC_FHIR_EC_DISCH"],
        itk3_events: &["ITK005D"],
        document_types: &[DOC_DISCHARGE_SUMMARY.code],
        sources: &[
            "nhsconnect/ITK-FHIR-Emergency-Care-eDischarge pages/explore/explore_headings.md (document type)",
            "nhsconnect/STU3-FHIR-Assets MessageDefinitions/ITK-EC-eDischarge-MessageDefinition-4.xml (event)",
            EVENTS,
            "https://digital.nhs.uk/developer/api-catalogue/transfer-of-care-emergency-care-discharge-fhir (workflow id)",
        ],
    },
    SpecRow {
        kind: LetterKind::MentalHealthDischarge,
        workflow_ids: &["TOC_FHIR_MH_DISCH"],
        itk3_events: &["ITK004D"],
        document_types: &[DOC_DISCHARGE_SUMMARY.code],
        sources: &[
            "nhsconnect/ITK-FHIR-Mental-Health-eDischarge pages/explore/explore_headings.md (document type)",
            "nhsconnect/STU3-FHIR-Assets MessageDefinitions/ITK-MH-eDischarge-MessageDefinition-4.xml (event)",
            EVENTS,
            "https://digital.nhs.uk/developer/api-catalogue/transfer-of-care-mental-health-discharge-fhir (workflow id)",
        ],
    },
    // No specification defines a message of its own for a death in hospital: it is an
    // inpatient discharge whose patient died (see `KindSignals::died`).
    SpecRow {
        kind: LetterKind::DeathNotification,
        workflow_ids: &["TOC_FHIR_IP_DISCH"],
        itk3_events: &["ITK003D"],
        document_types: &[DOC_DISCHARGE_SUMMARY.code],
        sources: &[
            "as discharge_summary",
            "nhsconnect/STU3-FHIR-Assets StructureDefinitions/CareConnect-ITK-Encounter-1.xml (Encounter.hospitalization.extension:dischargeMethod, Extension-CareConnect-DischargeMethod-1; dischargeDisposition bound to CareConnect-DischargeDestination-1)",
            "FHIR STU3 Patient.deceased[x]",
        ],
    },
    SpecRow {
        kind: LetterKind::PatientCopy,
        workflow_ids: &[],
        itk3_events: &[],
        document_types: &[DOC_OUTPATIENT_LETTER.code, DOC_CLINIC_LETTER.code],
        sources: &["as clinic_letter, addressed to the patient (no ITK3 message: print and post)"],
    },
];

/// The discharge method code meaning "Patient died" (NHS Data Dictionary discharge method 4,
/// as `Extension-CareConnect-DischargeMethod-1` carries it).
pub const DISCHARGE_METHOD_DIED: &str = "4";
/// The discharge destination code "Not applicable - Patient died or still birth" (NHS Data
/// Dictionary discharge destination 79), for `Encounter.hospitalization.dischargeDisposition`.
pub const DISCHARGE_DESTINATION_DIED: &str = "79";

/// What a letter's document says about its kind, besides its ITK3 event and whether it is
/// addressed to the patient: kept with the letter so a target's own rows can classify it again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindSignals {
    /// The `Composition.type` code, or what a target's reader reads as the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_type: Option<String>,
    /// The `Encounter.class` code (v3 ActCode `AMB`, `IMP`, `EMER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter_class: Option<String>,
    /// The patient died: the discharge method says so ([`DISCHARGE_METHOD_DIED`]), or the
    /// discharge destination ([`DISCHARGE_DESTINATION_DIED`]), or `Patient.deceased[x]`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub died: bool,
}

/// A row of a [`KindTable`]: a row of [`SPEC_ROWS`], or one a target file adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindRow {
    pub kind: LetterKind,
    pub itk3_events: Vec<String>,
    pub document_types: Vec<String>,
    /// A target's own row: a code it names is its alone (it overrides the specification rows
    /// that share the code).
    pub local: bool,
}

/// The rows letters are classified with: the specification rows, after a target's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindTable {
    rows: Vec<KindRow>,
}

impl KindTable {
    /// The table of the specifications alone.
    pub fn standard() -> &'static KindTable {
        static TABLE: std::sync::LazyLock<KindTable> = std::sync::LazyLock::new(|| KindTable {
            rows: SPEC_ROWS
                .iter()
                .map(|r| KindRow {
                    kind: r.kind,
                    itk3_events: r.itk3_events.iter().map(|c| c.to_string()).collect(),
                    document_types: r.document_types.iter().map(|c| c.to_string()).collect(),
                    local: false,
                })
                .collect(),
        });
        &TABLE
    }

    /// The specification rows with a target's own: a code a local row names is that row's
    /// alone, so a target can both add codes and take one from the kind the specifications
    /// give it.
    pub fn with_local(local: Vec<KindRow>) -> KindTable {
        let mut rows: Vec<KindRow> = local
            .into_iter()
            .map(|r| KindRow { local: true, ..r })
            .collect();
        rows.extend(KindTable::standard().rows.iter().cloned());
        KindTable { rows }
    }

    /// The kind of a letter, or `None` when nothing in the table recognises it.
    ///
    /// The document type names the candidate kinds (or, when the table does not know it, the
    /// ITK3 event does); the patient's copy is told by its recipient; the discharges that
    /// share `Discharge summary` are told apart by the encounter class `EMER`, then the ITK3
    /// event, then whether the patient died. The document type decides before the event so
    /// that a letter sent with the wrong event is still its kind, with a wrong-event finding.
    pub fn classify(
        &self,
        signals: &KindSignals,
        itk3_event: Option<&str>,
        to_patient: bool,
    ) -> Option<LetterKind> {
        let by_type = signals
            .document_type
            .as_deref()
            .map(|code| self.kinds_where(|r| r.document_types.iter().any(|c| c == code)))
            .unwrap_or_default();
        let by_event = itk3_event
            .map(|code| self.kinds_where(|r| r.itk3_events.iter().any(|c| c == code)))
            .unwrap_or_default();
        let mut kinds = if by_type.is_empty() {
            by_event.clone()
        } else {
            by_type
        };
        // A clinic letter addressed to the patient is the patient's copy, whichever row named
        // its document type.
        let copy = [LetterKind::PatientCopy, LetterKind::ClinicLetter];
        if to_patient && kinds.iter().any(|k| copy.contains(k)) {
            return Some(LetterKind::PatientCopy);
        }
        kinds.retain(|k| *k != LetterKind::PatientCopy);
        let emergency = signals.encounter_class.as_deref() == Some("EMER");
        if emergency && kinds.contains(&LetterKind::EmergencyDischarge) {
            return Some(LetterKind::EmergencyDischarge);
        }
        let fitting: Vec<LetterKind> = kinds
            .iter()
            .copied()
            .filter(|k| by_event.contains(k))
            .collect();
        if !fitting.is_empty() {
            kinds = fitting;
        }
        if signals.died && kinds.contains(&LetterKind::DeathNotification) {
            return Some(LetterKind::DeathNotification);
        }
        kinds.retain(|k| *k != LetterKind::DeathNotification);
        match kinds.as_slice() {
            [one] => Some(*one),
            _ if kinds.contains(&LetterKind::DischargeSummary) => {
                Some(LetterKind::DischargeSummary)
            }
            _ => kinds.first().copied(),
        }
    }

    /// The kinds of the rows `hit` picks, in table order, each once: the local rows' alone
    /// when any local row is picked.
    fn kinds_where(&self, hit: impl Fn(&KindRow) -> bool) -> Vec<LetterKind> {
        let local: Vec<&KindRow> = self.rows.iter().filter(|r| r.local && hit(r)).collect();
        let rows = match local.is_empty() {
            true => self.rows.iter().filter(|r| !r.local && hit(r)).collect(),
            false => local,
        };
        let mut kinds = Vec::new();
        for r in rows {
            if !kinds.contains(&r.kind) {
                kinds.push(r.kind);
            }
        }
        kinds
    }
}

/// What lettergate keeps in memory about a letter: enough to check routing, timing and
/// identity, and a digest of the content. The content itself ([`LetterContent`]) stays in the
/// body on disk and is read again when a snapshot shows it, so a run of tens of thousands of
/// letters holds only this index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// What the document says about its kind, kept so that a target's own letter rows can
    /// classify it again ([`KindTable::with_local`]).
    #[serde(default)]
    pub signals: KindSignals,
    /// The document's status as written (`Composition.status`, or what a target's reader
    /// reads), when the reader found one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The document's date as written, when a target's reader reads one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// The receiving mailbox the message names (`MessageHeader.destination.endpoint`), for a
    /// message that names its recipient by mailbox rather than by ODS code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_mailbox: Option<String>,
    /// When the clinical event the letter reports on happened (the Encounter's period, else
    /// `Composition.date`): part of the key letters are numbered by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinical_at: Option<Timestamp>,
    /// The ITK3 or FHIR rules the message breaks, though it could be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nonconformance: Vec<Rule>,
    /// The dates the letter states: for its event, and its own (issue 12).
    #[serde(
        default,
        skip_serializing_if = "crate::protocol::dates::StatedDates::is_empty"
    )]
    pub dates: crate::protocol::dates::StatedDates,
}

/// An ITK3 or FHIR rule a letter's message breaks although lettergate could read it: each is
/// a `non-conformant letter` finding, so a receiving system that is stricter than lettergate
/// is not a surprise. Ordered as a reader meets them, from the envelope inwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// FHIR messaging: a message bundle's first entry is its MessageHeader.
    HeaderNotFirst,
    /// FHIR: `Bundle.identifier` identifies a message; ITK3 acknowledgements refer to it.
    MessageWithoutIdentifier,
    /// ITK-MessageHeader-2 allows no `destination` (0..0): the recipient is `receiver`.
    DestinationInHeader,
    /// ITK-MessageHeader-2: `focus` names the payload; here it is missing or leads nowhere,
    /// and the message's only document was taken.
    FocusMissing,
    /// The ITK3 MessageDefinitions' focus is the document `Bundle`; here it is a Composition
    /// whose resources lie in the message bundle itself.
    FocusNotDocumentBundle,
    /// FHIR documents: a document bundle's first entry is its Composition.
    CompositionNotFirst,
    /// FHIR: `Composition.status` is required (1..1).
    CompositionWithoutStatus,
    /// FHIR resolves references through `entry.fullUrl`; an entry without one can be reached
    /// only by guessing from its resource id.
    EntryWithoutFullUrl,
    /// A reference that names no entry's `fullUrl`, followed by resource id only.
    ReferenceById,
    /// A reference that leads to no resource of the bundle; the first resource of its type
    /// was taken instead.
    UnresolvedReference,
}

impl Rule {
    /// The rule in words, as the finding names it.
    pub fn words(self) -> &'static str {
        match self {
            Rule::HeaderNotFirst => "the MessageHeader is not the message bundle's first entry (FHIR messaging)",
            Rule::MessageWithoutIdentifier => "the message bundle has no identifier, which acknowledgements refer to (ITK3)",
            Rule::DestinationInHeader => "the MessageHeader names its recipient in destination, which ITK-MessageHeader-2 does not allow; ITK3 uses receiver",
            Rule::FocusMissing => "the MessageHeader's focus does not lead to the document (ITK-MessageHeader-2)",
            Rule::FocusNotDocumentBundle => "the MessageHeader's focus is a Composition, not a document Bundle (ITK3 MessageDefinitions)",
            Rule::CompositionNotFirst => "the Composition is not the document bundle's first entry (FHIR documents)",
            Rule::CompositionWithoutStatus => "the Composition has no status (FHIR: required)",
            Rule::EntryWithoutFullUrl => "an entry without fullUrl (FHIR Bundle: references resolve through fullUrl)",
            Rule::ReferenceById => "a reference that matches no entry's fullUrl, followed by resource id only (FHIR Bundle references)",
            Rule::UnresolvedReference => "a reference that leads to no resource of the bundle (FHIR Bundle references)",
        }
    }

    /// The name a snapshot and a report use: `entry_without_full_url`.
    pub fn name(self) -> &'static str {
        match self {
            Rule::HeaderNotFirst => "header_not_first",
            Rule::MessageWithoutIdentifier => "message_without_identifier",
            Rule::DestinationInHeader => "destination_in_header",
            Rule::FocusMissing => "focus_missing",
            Rule::FocusNotDocumentBundle => "focus_not_document_bundle",
            Rule::CompositionNotFirst => "composition_not_first",
            Rule::CompositionWithoutStatus => "composition_without_status",
            Rule::EntryWithoutFullUrl => "entry_without_full_url",
            Rule::ReferenceById => "reference_by_id",
            Rule::UnresolvedReference => "unresolved_reference",
        }
    }
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
                    "mental_health_discharge",
                    Some("TOC_FHIR_MH_DISCH"),
                    Some("ITK004D")
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

    /// The signals of a letter as the specifications write it for `row`, with its first
    /// document type, event and the died flag and class that tell its kind.
    fn as_specified(row: &SpecRow, doc: &str) -> (KindSignals, Option<&'static str>, bool) {
        let class = match row.kind {
            LetterKind::ClinicLetter | LetterKind::PatientCopy => "AMB",
            LetterKind::EmergencyDischarge => "EMER",
            _ => "IMP",
        };
        let signals = KindSignals {
            document_type: Some(doc.to_string()),
            encounter_class: Some(class.to_string()),
            died: row.kind == LetterKind::DeathNotification,
        };
        (
            signals,
            row.itk3_events.first().copied(),
            row.kind == LetterKind::PatientCopy,
        )
    }

    #[test]
    fn every_row_of_the_table_classifies_as_its_kind_with_each_of_its_document_types() {
        let table = KindTable::standard();
        for row in &SPEC_ROWS {
            assert!(!row.sources.is_empty(), "{:?} names no source", row.kind);
            for doc in row.document_types {
                let (signals, event, to_patient) = as_specified(row, doc);
                assert_eq!(
                    table.classify(&signals, event, to_patient),
                    Some(row.kind),
                    "{:?} with document type {doc}",
                    row.kind
                );
            }
            assert_eq!(
                (
                    row.workflow_ids.first().copied(),
                    row.itk3_events.first().copied()
                ),
                (row.kind.workflow_id(), row.kind.itk3_event()),
                "the row and LetterKind agree for {:?}",
                row.kind
            );
        }
        let kinds: Vec<LetterKind> = SPEC_ROWS.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, LetterKind::ALL, "one row per kind");
    }

    #[test]
    fn discharges_sharing_discharge_summary_are_told_apart_by_event_class_and_death() {
        let t = KindTable::standard();
        let ds = |class: &str, died| KindSignals {
            document_type: Some(DOC_DISCHARGE_SUMMARY.code.into()),
            encounter_class: Some(class.into()),
            died,
        };
        assert_eq!(
            t.classify(&ds("IMP", false), Some("ITK004D"), false),
            Some(LetterKind::MentalHealthDischarge)
        );
        assert_eq!(
            t.classify(&ds("EMER", false), Some("ITK005D"), false),
            Some(LetterKind::EmergencyDischarge)
        );
        // The class alone, as lettergate read emergency discharges before.
        assert_eq!(
            t.classify(&ds("EMER", false), Some("ITK003D"), false),
            Some(LetterKind::EmergencyDischarge)
        );
        // The event alone, as the specifications tell them apart.
        assert_eq!(
            t.classify(&ds("", false), Some("ITK005D"), false),
            Some(LetterKind::EmergencyDischarge)
        );
        assert_eq!(
            t.classify(&ds("IMP", true), Some("ITK003D"), false),
            Some(LetterKind::DeathNotification)
        );
        assert_eq!(
            t.classify(&ds("IMP", true), None, false),
            Some(LetterKind::DeathNotification)
        );
        assert_eq!(
            t.classify(&ds("IMP", false), None, false),
            Some(LetterKind::DischargeSummary)
        );
        // A wrong event does not change the kind: the check says the event is wrong.
        assert_eq!(
            t.classify(&ds("IMP", false), Some("ITK006D"), false),
            Some(LetterKind::DischargeSummary)
        );
    }

    #[test]
    fn an_unknown_document_type_is_read_by_its_event_and_nothing_else_is_unrecognised() {
        let t = KindTable::standard();
        let local = KindSignals {
            document_type: Some("717301000000105".into()),
            encounter_class: None,
            died: false,
        };
        assert_eq!(
            t.classify(&local, Some("ITK005D"), false),
            Some(LetterKind::EmergencyDischarge)
        );
        assert_eq!(t.classify(&local, None, false), None);
        assert_eq!(
            t.classify(&KindSignals::default(), Some("ITK999X"), false),
            None
        );
        // A clinic letter for a patient who has since died is still a clinic letter.
        let opl = KindSignals {
            document_type: Some(DOC_OUTPATIENT_LETTER.code.into()),
            encounter_class: Some("AMB".into()),
            died: true,
        };
        assert_eq!(
            t.classify(&opl, Some("ITK006D"), false),
            Some(LetterKind::ClinicLetter)
        );
        assert_eq!(t.classify(&opl, None, true), Some(LetterKind::PatientCopy));
    }

    #[test]
    fn a_local_row_adds_codes_and_takes_a_code_from_the_specification_rows() {
        let local = KindTable::with_local(vec![KindRow {
            kind: LetterKind::ClinicLetter,
            itk3_events: vec![],
            document_types: vec!["OPL-LOCAL".into(), DOC_DISCHARGE_SUMMARY.code.into()],
            local: false,
        }]);
        let signals = |doc: &str| KindSignals {
            document_type: Some(doc.into()),
            ..KindSignals::default()
        };
        assert_eq!(
            local.classify(&signals("OPL-LOCAL"), None, false),
            Some(LetterKind::ClinicLetter)
        );
        assert_eq!(
            local.classify(&signals("OPL-LOCAL"), None, true),
            Some(LetterKind::PatientCopy)
        );
        assert_eq!(
            local.classify(&signals(DOC_DISCHARGE_SUMMARY.code), Some("ITK003D"), false),
            Some(LetterKind::ClinicLetter),
            "the local row's code is its alone"
        );
        assert_eq!(
            local.classify(&signals(DOC_OUTPATIENT_LETTER.code), None, false),
            Some(LetterKind::ClinicLetter),
            "the specification rows still read"
        );
        assert_eq!(
            KindTable::standard().classify(&signals("OPL-LOCAL"), None, false),
            None
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
