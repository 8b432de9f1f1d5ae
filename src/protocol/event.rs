//! What an EHR is told, whoever tells it: a patient's demographics ([`PatientRecord`]) and a
//! clinical event ([`SimEvent`]). The simulator's API, the HL7 v2 ADT builder and the drivers
//! all speak these.

use super::clock::Timestamp;
use super::ids::{NhsNumber, OdsCode};
use super::letter::{EventKind, Signs};
use serde::{Deserialize, Serialize};

/// A patient as an EHR (and its PDS) holds them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PatientRecord {
    pub nhs_number: NhsNumber,
    pub name: String,
    pub born: String,
    /// The registered practice; `None` for no registered GP.
    pub practice: Option<OdsCode>,
    #[serde(default)]
    pub named_gp: Option<String>,
}

/// A clinical event as an EHR (the simulator, or a target through a driver) is told it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimEvent {
    /// When the EHR acts on the event (on its clock).
    pub at: Timestamp,
    /// When it happened clinically, when the sender said so and it differs from `at`: a
    /// back-dated event (a FHIR resource's time, EVN-6) that the EHR is told of later. The
    /// letters about it carry this date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinical_at: Option<Timestamp>,
    pub event: EventKind,
    pub nhs_number: NhsNumber,
    /// For `gp_change`: the new practice.
    #[serde(default)]
    pub to: Option<OdsCode>,
    /// For `outpatient_attendance`: the letter needs a second signer.
    #[serde(default)]
    pub second_signer: bool,
    /// The sender's id for the event (a FHIR Encounter's identifier, HL7 PV1-19 visit
    /// number). The EHR keeps it as the visit's, and the letters about the visit carry it.
    #[serde(default)]
    pub local_id: Option<String>,
    /// For letter events: the document they are about.
    #[serde(default)]
    pub signs: Signs,
    /// For discharges: the summary waits for a later `letter_signed` instead of leaving now.
    #[serde(default)]
    pub held_for_signature: bool,
}
