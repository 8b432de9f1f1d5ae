//! ITK3 Transfer of Care messages as FHIR STU3 JSON: a `Bundle` of type `message` whose first
//! entry is the `MessageHeader` and whose focus is a `Bundle` of type `document` (Composition,
//! Patient, Practitioner, Organizations, Encounter).

use crate::protocol::clock::Timestamp;
use crate::protocol::ids::NhsNumber;
use crate::protocol::letter::LetterKind;
use serde_json::{json, Value};

mod write;

pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
pub const EVENT_SYSTEM: &str = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2";
pub const HANDLING_URL: &str =
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2";
/// The identifier system of the local id lettergate drives each event with (see
/// `fhir::r4`); the simulator's letters carry it on their Encounter.
pub const LOCAL_ID_SYSTEM: &str = "urn:lettergate:local-id";
pub const SNOMED: &str = "http://snomed.info/sct";

/// What a letter says and about whom; enough to build its document.
#[derive(Clone, Debug)]
pub struct LetterDoc {
    pub kind: LetterKind,
    pub local_id: String,
    /// The visit the letter reports on, as the EHR was told it (lettergate's local id for the
    /// event): the Encounter's identifier, PV1-19 in HL7. `None` when the EHR was given none.
    pub visit_id: Option<String>,
    pub nhs_number: NhsNumber,
    pub patient_name: String,
    pub born: String,
    /// The receiving practice (ODS, name); `None` for the patient's copy.
    pub practice: Option<(String, String)>,
    pub trust_ods: String,
    pub trust_name: String,
    pub sender_mailbox: String,
    /// When the clinical event the letter reports happened.
    pub event_at: Timestamp,
    /// When the letter was finalised: the date it carries, however late it is sent.
    pub written_at: Timestamp,
    /// When the letter is sent.
    pub sent_at: Timestamp,
    pub sections: Vec<(String, String)>,
}

pub(crate) fn encounter_class(kind: LetterKind) -> (&'static str, &'static str) {
    match kind {
        LetterKind::ClinicLetter | LetterKind::PatientCopy => ("AMB", "ambulatory"),
        LetterKind::EmergencyDischarge => ("EMER", "emergency"),
        _ => ("IMP", "inpatient encounter"),
    }
}

pub fn title(kind: LetterKind) -> &'static str {
    match kind {
        LetterKind::ClinicLetter => "Outpatient clinic letter",
        LetterKind::PatientCopy => "Your outpatient clinic letter",
        LetterKind::DischargeSummary => "Inpatient discharge summary",
        LetterKind::EmergencyDischarge => "Emergency department discharge letter",
        LetterKind::DeathNotification => "Notification of death in hospital",
        LetterKind::MentalHealthDischarge => "Mental health discharge summary",
    }
}

/// The `Bundle` of type `document` for a letter.
pub fn document_bundle(doc: &LetterDoc) -> Value {
    parsed(&write::document(doc))
}

/// The ITK3 message `Bundle` that goes over MESH for a practice letter.
pub fn message_bundle(doc: &LetterDoc) -> Value {
    parsed(&message_json(doc).0)
}

/// [`message_bundle`] as the bytes sent (compact JSON, keys in order, as `serde_json` writes a
/// [`Value`]), and the message bundle's identifier, which acknowledgements refer to.
pub fn message_json(doc: &LetterDoc) -> (Vec<u8>, String) {
    write::message(doc)
}

/// [`paper_request`] as the bytes sent.
pub fn paper_json(doc: &LetterDoc, to: &PaperRecipient) -> Vec<u8> {
    write::paper(doc, to)
}

fn urn() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// An `Organization` by ODS code and name, as a tree (for the acknowledgements); an unknown
/// (empty) code or name is left out, as FHIR allows no empty strings.
fn organization(ods: &str, name: &str) -> Value {
    let mut org = json!({"resourceType": "Organization"});
    if !ods.is_empty() {
        org["identifier"] = json!([{"system": ODS_SYSTEM, "value": ods}]);
    }
    if !name.is_empty() {
        org["name"] = json!(name);
    }
    org
}

/// What [`write`] wrote, read back; it always writes JSON.
fn parsed(json: &[u8]) -> Value {
    serde_json::from_slice(json).unwrap_or(Value::Null)
}

/// Who a letter on paper (or over an HTTP document route) is addressed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaperRecipient {
    Patient,
    Practice { ods: String, name: String },
}

/// The request body for the hybrid-mail print service or an HTTP document route: who it is
/// for, and the document.
pub fn paper_request(doc: &LetterDoc, to: &PaperRecipient) -> Value {
    parsed(&paper_json(doc, to))
}

/// ITK3 response codes: the system, and what each code means.
pub const RESPONSE_SYSTEM: &str = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1";

/// An ITK3 response code, as an acknowledgement (`ITK008M`) carries it: infrastructure codes
/// (`2xxxx`, `10004`) say whether the message could be taken, business codes (`3xxxx`) what
/// the practice knows of the patient.
///
/// Design constraint: a real GP system may answer a code this list does not name; it is kept
/// as [`Itk3Response::Other`], never dropped, so a report shows what was really answered. It
/// is written and read as the bare number (`20013`), in JSON as in YAML, exactly as before
/// this type existed.
#[derive(Clone, Copy, Debug)]
pub enum Itk3Response {
    /// `20013`.
    Success,
    /// `20007`.
    DuplicateMessage,
    /// `20008`.
    DuplicateDocument,
    /// `20009`.
    PayloadInvalid,
    /// `20002`.
    UnrecognisedRecipient,
    /// `10004`.
    UnsupportedMessageDefinition,
    /// `30001`.
    PatientKnown,
    /// `30002`.
    PatientNotKnown,
    /// `30003`.
    PatientNoLongerRegistered,
    /// `30004`.
    PatientKnownRecentlyDeceased,
    /// Any other code; [`Itk3Response::from_code`] never puts a named code here.
    Other(u32),
}

impl Itk3Response {
    /// The business codes a practice answers, in order.
    pub const BUSINESS: [Itk3Response; 4] = [
        Itk3Response::PatientKnown,
        Itk3Response::PatientNotKnown,
        Itk3Response::PatientNoLongerRegistered,
        Itk3Response::PatientKnownRecentlyDeceased,
    ];

    pub fn from_code(code: u32) -> Itk3Response {
        use Itk3Response as R;
        match code {
            20013 => R::Success,
            20007 => R::DuplicateMessage,
            20008 => R::DuplicateDocument,
            20009 => R::PayloadInvalid,
            20002 => R::UnrecognisedRecipient,
            10004 => R::UnsupportedMessageDefinition,
            30001 => R::PatientKnown,
            30002 => R::PatientNotKnown,
            30003 => R::PatientNoLongerRegistered,
            30004 => R::PatientKnownRecentlyDeceased,
            other => R::Other(other),
        }
    }

    pub fn code(self) -> u32 {
        use Itk3Response as R;
        match self {
            R::Success => 20013,
            R::DuplicateMessage => 20007,
            R::DuplicateDocument => 20008,
            R::PayloadInvalid => 20009,
            R::UnrecognisedRecipient => 20002,
            R::UnsupportedMessageDefinition => 10004,
            R::PatientKnown => 30001,
            R::PatientNotKnown => 30002,
            R::PatientNoLongerRegistered => 30003,
            R::PatientKnownRecentlyDeceased => 30004,
            R::Other(code) => code,
        }
    }

    /// What the code means, as the `display` of its coding.
    pub fn display(self) -> &'static str {
        use Itk3Response as R;
        match self {
            R::Success => "Success",
            R::DuplicateMessage => "Duplicate message",
            R::DuplicateDocument => "Duplicate document",
            R::PayloadInvalid => "Payload invalid",
            R::UnrecognisedRecipient => "Unrecognised recipient organisation",
            R::UnsupportedMessageDefinition => "Unsupported message definition",
            R::PatientKnown => "Patient known here",
            R::PatientNotKnown => "Patient not known here",
            R::PatientNoLongerRegistered => "Patient no longer registered here",
            R::PatientKnownRecentlyDeceased => "Patient known here and recently deceased",
            R::Other(_) => "Unknown response code",
        }
    }

    /// A business response (`3xxxx`), as opposed to an infrastructure one; unknown codes are
    /// told apart by their number as well.
    pub fn is_business(self) -> bool {
        self.code() >= 30000
    }

    /// Whether the acknowledgement says `ok` rather than `fatal-error`.
    pub fn is_ok(self) -> bool {
        use Itk3Response as R;
        matches!(
            self,
            R::Success
                | R::PatientKnown
                | R::PatientNoLongerRegistered
                | R::PatientKnownRecentlyDeceased
        )
    }
}

// Equality, order and hashing go by the code, so `Other(20013)` built by hand still equals
// `Success`.
impl PartialEq for Itk3Response {
    fn eq(&self, other: &Self) -> bool {
        self.code() == other.code()
    }
}

impl Eq for Itk3Response {}

impl PartialOrd for Itk3Response {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Itk3Response {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.code().cmp(&other.code())
    }
}

impl std::hash::Hash for Itk3Response {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.code().hash(state)
    }
}

impl From<u32> for Itk3Response {
    fn from(code: u32) -> Self {
        Itk3Response::from_code(code)
    }
}

/// The bare number, as reports and snapshots show it.
impl std::fmt::Display for Itk3Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

impl std::str::FromStr for Itk3Response {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<u32>().map(Itk3Response::from_code)
    }
}

impl serde::Serialize for Itk3Response {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Itk3Response {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u32::deserialize(d).map(Itk3Response::from_code)
    }
}

/// An ITK3 acknowledgement (`ITK008M`) of the message bundle `original_id`, from `ods`.
pub fn ack_bundle(
    original_id: &str,
    code: Itk3Response,
    ods: &str,
    mailbox: &str,
    at: Timestamp,
) -> Value {
    let (header, outcome, org) = (urn(), urn(), urn());
    let ok = code.is_ok();
    json!({
        "resourceType": "Bundle",
        "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": uuid::Uuid::new_v4().to_string()},
        "type": "message",
        "entry": [
            {"fullUrl": header, "resource": {
                "resourceType": "MessageHeader",
                "event": {"system": EVENT_SYSTEM, "code": "ITK008M", "display": "ITK Response"},
                "sender": {"reference": org},
                "timestamp": at.rfc3339(),
                "source": {"endpoint": mailbox},
                "response": {"identifier": original_id, "code": if ok { "ok" } else { "fatal-error" }, "details": {"reference": outcome}},
            }},
            {"fullUrl": outcome, "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": if ok { "information" } else { "error" }, "code": "informational",
                    "details": {"coding": [{"system": RESPONSE_SYSTEM, "code": code.to_string(), "display": code.display()}]}}],
            }},
            {"fullUrl": org, "resource": organization(ods, "")},
        ],
    })
}

/// Reads an acknowledgement: the id of the message it answers, and its response code.
pub fn read_ack(body: &[u8]) -> Option<(String, Itk3Response)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let entries = v["entry"].as_array()?;
    let header = entries
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "MessageHeader")?;
    let original = header["response"]["identifier"].as_str()?.to_string();
    let outcome = entries
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "OperationOutcome")?;
    let code = outcome["issue"][0]["details"]["coding"][0]["code"]
        .as_str()?
        .parse()
        .ok()?;
    Some((original, code))
}

/// The fixed, readable content the simulator writes for each kind of letter.
pub fn default_sections(kind: LetterKind) -> Vec<(String, String)> {
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    match kind {
        LetterKind::ClinicLetter | LetterKind::PatientCopy => vec![
            s("Diagnoses", "Type 2 diabetes mellitus"),
            s("Medications", "Metformin 500 mg twice daily (started)"),
            s("Plan", "HbA1c in 3 months; clinic review in 6 months"),
        ],
        LetterKind::DischargeSummary => vec![
            s("Diagnoses", "Community-acquired pneumonia"),
            s("Procedures", "None"),
            s(
                "Medications",
                "Amoxicillin 500 mg three times daily for 5 days",
            ),
            s("Follow-up", "GP review in 2 weeks; chest X-ray in 6 weeks"),
        ],
        LetterKind::EmergencyDischarge => vec![
            s("Presenting complaint", "Fall with wrist injury"),
            s("Diagnoses", "Distal radius fracture, closed"),
            s("Medications", "Paracetamol 1 g four times daily as needed"),
            s("Follow-up", "Fracture clinic in 7 days"),
        ],
        LetterKind::DeathNotification => vec![
            s("Death", "Died in hospital; verification of death completed"),
            s("Cause of death", "To be confirmed by the medical examiner"),
        ],
        LetterKind::MentalHealthDischarge => vec![
            s("Diagnoses", "Moderate depressive episode"),
            s("Medications", "Sertraline 50 mg once daily"),
            s("Follow-up", "Community mental health team review in 7 days"),
        ],
    }
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_codes_keep_their_number_known_or_not() {
        for code in [
            20013, 20007, 20008, 20009, 20002, 10004, 30001, 30002, 30003, 30004, 20015,
        ] {
            let r = Itk3Response::from_code(code);
            assert_eq!(r.code(), code);
            assert_eq!(r.to_string(), code.to_string());
            assert_eq!(serde_json::to_string(&r).unwrap(), code.to_string());
            assert_eq!(code.to_string().parse::<Itk3Response>().unwrap(), r);
        }
        assert_eq!(Itk3Response::from_code(20015), Itk3Response::Other(20015));
        assert_eq!(Itk3Response::Other(30001), Itk3Response::PatientKnown);
        assert_eq!(
            Itk3Response::Other(20015).display(),
            "Unknown response code"
        );
    }

    #[test]
    fn business_codes_are_the_3xxxx_ones_known_or_not() {
        assert!(Itk3Response::PatientNotKnown.is_business());
        assert!(Itk3Response::Other(30009).is_business());
        assert!(!Itk3Response::Success.is_business());
        assert!(!Itk3Response::UnsupportedMessageDefinition.is_business());
    }

    #[test]
    fn an_acknowledgement_reads_back_as_the_code_it_was_built_with() {
        for code in [Itk3Response::PayloadInvalid, Itk3Response::Other(40001)] {
            let ack = ack_bundle("B1", code, "A81001", "A81001HC001", Timestamp(0));
            let read = read_ack(&serde_json::to_vec(&ack).unwrap());
            assert_eq!(read, Some(("B1".to_string(), code)));
        }
    }
}
