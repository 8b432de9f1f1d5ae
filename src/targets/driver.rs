//! [`Driver`]: tells a system under test what happened in a scenario, event by event. The
//! systems are a closed set, so one enum says what each does: the built-in simulator (on the
//! scenario's virtual clock), and a target file's FHIR R4, HTTP-template and HL7 v2 ADT
//! drivers (in real time, one request or message per event).
//!
//! A run calls [`Driver::begin`], then [`Driver::event`] for every event of the timeline at
//! [`Driver::when`], then [`Driver::end`]. A refused request or an unreachable EHR is a
//! [`DriveError`], with its cause chain.

use super::check::{authorization, http_client};
use super::clinical::ClinicalClock;
use super::file::{RawRequest, Template};
use super::model::{Drive, Hl7Drive, HttpDrive};
use super::{Target, TargetError};
use crate::protocol::clock::Timestamp;
use crate::protocol::event::PatientRecord;
use crate::protocol::fhir::r4::{self, FhirRequest, PatientState};
use crate::protocol::hl7::Hl7Error;
use crate::protocol::letter::{EventKind, Signs};
use crate::protocol::mesh::client::SendOutcome;
use crate::scenario::{Event, Scenario};
use crate::sim::ehr::SimError;
use crate::sim::Simulator;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

/// Why lettergate could not tell the system under test a scenario's events.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("could not drive the simulator")]
    Simulator(#[source] SimError),
    #[error(
        "the capture path was not proven alive: the canary letter was not recorded (send: {0:?})"
    )]
    SimulatorCanary(SendOutcome),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("the hl7v2 driver cannot tell the EHR `{0}`: ADT carries patient administration (attendances, admissions, discharges, deaths, registrations), not document workflow; drive this scenario with a fhir or http target; nothing was sent")]
    NotAdt(&'static str),
    #[error("the target's http driver has no request for `{0}` (add it under drive.http.requests); nothing was sent")]
    NoRequest(&'static str),
    #[error("invalid HTTP method `{0}`")]
    Method(String),
    #[error("could not drive the target: {method} {url} ({what}) failed")]
    Send {
        method: String,
        url: String,
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("could not drive the target: {method} {url} ({what}) answered {status}: {excerpt}")]
    Refused {
        method: String,
        url: String,
        what: String,
        status: reqwest::StatusCode,
        excerpt: String,
    },
    /// A FHIR server that answered a request with something that is not FHIR (an HTML page
    /// with 200): lettergate cannot know the event was taken, so it stops, never goes on to
    /// report the letters missing.
    #[error("could not drive the target: {method} {url} ({what}) did not answer FHIR: it answered {answered}")]
    NotFhir {
        method: String,
        url: String,
        what: String,
        answered: String,
    },
    #[error("no ADT message for `{0}`")]
    NoAdt(&'static str),
    #[error("could not drive the target: {address} does not resolve")]
    Resolve {
        address: String,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("could not drive the target: ADT for {kind} to {addr} was not accepted")]
    NotAccepted {
        kind: &'static str,
        addr: SocketAddr,
        #[source]
        source: Hl7Error,
    },
}

/// Tells one scenario's events to a system under test.
pub enum Driver<'a> {
    /// The built-in simulator, on the scenario's virtual clock.
    Simulator(Box<Simulator>, &'a Scenario),
    /// FHIR R4 resources, or the file's request for an event kind where it gives one.
    Fhir(Ehr<'a>, &'a HttpDrive),
    /// The file's request template for each event kind.
    Http(Ehr<'a>, &'a HttpDrive),
    /// HL7 v2 ADT over MLLP, each message acknowledged.
    Hl7v2(Ehr<'a>, &'a Hl7Drive),
}

/// What a target driver keeps while it drives one scenario.
pub struct Ehr<'a> {
    http: reqwest::Client,
    authorization: Option<String>,
    scenario: &'a Scenario,
    /// What the EHR has been told of each patient, by key.
    patients: HashMap<String, PatientState>,
    /// The local id of each event of the timeline (see [`super::matching`]).
    local_ids: Vec<String>,
    /// The clinical time each event is told with (the target's `clock:`).
    clinical: ClinicalClock,
    sent: u32,
}

impl<'a> Driver<'a> {
    /// The simulator, driven through `scenario` on its clock.
    pub fn simulator(sim: Simulator, scenario: &'a Scenario) -> Driver<'a> {
        Driver::Simulator(Box::new(sim), scenario)
    }

    /// A driver of `t` for `scenario`'s events, each sent with its local id from `local_ids`
    /// and its clinical time from `clinical`. An event the driver cannot tell is refused
    /// here, before anything is sent.
    pub async fn for_target(
        t: &'a Target,
        scenario: &'a Scenario,
        local_ids: Vec<String>,
        clinical: ClinicalClock,
    ) -> Result<Driver<'a>, DriveError> {
        let http = http_client(None, Duration::from_secs(30))?;
        let auth = match &t.drive {
            Drive::Fhir(h) | Drive::Http(h) => h.auth.as_ref(),
            Drive::Hl7v2(_) => None,
        };
        let authorization = authorization(&http, auth).await?;
        refuse_what_cannot_be_told(&t.drive, scenario)?;
        let ehr = Ehr {
            http,
            authorization,
            scenario,
            patients: HashMap::new(),
            local_ids,
            clinical,
            sent: 0,
        };
        Ok(match &t.drive {
            Drive::Fhir(h) => Driver::Fhir(ehr, h),
            Drive::Http(h) => Driver::Http(ehr, h),
            Drive::Hl7v2(h) => Driver::Hl7v2(ehr, h),
        })
    }

    /// When event `i` happens: its time on the simulator's virtual clock; now, for a target.
    pub fn when(&self, i: usize) -> Timestamp {
        match self {
            Driver::Simulator(_, s) => s.timeline[i].at,
            Driver::Fhir(..) | Driver::Http(..) | Driver::Hl7v2(..) => Timestamp::now(),
        }
    }

    /// Before the first event: the simulator says hello to MESH and learns the scenario's
    /// practices and patients. A target already knows its own.
    pub async fn begin(&mut self) -> Result<(), DriveError> {
        match self {
            Driver::Simulator(sim, s) => super::sim::prepare(sim, s)
                .await
                .map_err(DriveError::Simulator),
            Driver::Fhir(..) | Driver::Http(..) | Driver::Hl7v2(..) => Ok(()),
        }
    }

    /// Drives event `i` of the timeline at `at`.
    pub async fn event(&mut self, i: usize, at: Timestamp) -> Result<(), DriveError> {
        match self {
            Driver::Simulator(sim, s) => super::sim::apply(sim, s, i, at)
                .await
                .map_err(DriveError::Simulator),
            Driver::Fhir(ehr, f) => ehr.fhir_event(f, i, at).await,
            Driver::Http(ehr, h) => {
                let kind = ehr.scenario.timeline[i].kind;
                match h.requests.get(&kind) {
                    Some(r) => ehr.template(&h.base_url, r, i, at).await,
                    None => Err(DriveError::NoRequest(kind.name())),
                }
            }
            Driver::Hl7v2(ehr, h) => ehr.hl7(h, i, at).await,
        }
    }

    /// After the last event: the simulator runs on to the end of the observation period and
    /// sends its canary, which its MESH must accept. A target runs on its own.
    pub async fn end(&mut self) -> Result<(), DriveError> {
        match self {
            Driver::Simulator(sim, s) => {
                let sent = super::sim::finish(sim, s)
                    .await
                    .map_err(DriveError::Simulator)?;
                match sent {
                    SendOutcome::Accepted { .. } => Ok(()),
                    other => Err(DriveError::SimulatorCanary(other)),
                }
            }
            Driver::Fhir(..) | Driver::Http(..) | Driver::Hl7v2(..) => Ok(()),
        }
    }
}

/// Refuses a scenario with an event the driver cannot tell, before anything is sent.
fn refuse_what_cannot_be_told(d: &Drive, scenario: &Scenario) -> Result<(), DriveError> {
    let kinds = || scenario.timeline.iter().map(|e| e.kind);
    match d {
        // ADT carries patient administration only; say so before anything is sent.
        Drive::Hl7v2(_) => {
            match kinds().find(|k| crate::protocol::hl7::adt::trigger_for(*k).is_none()) {
                Some(k) => Err(DriveError::NotAdt(k.name())),
                None => Ok(()),
            }
        }
        // Every event the scenario has needs a request before anything is sent.
        Drive::Http(h) => match kinds().find(|k| !h.requests.contains_key(k)) {
            Some(k) => Err(DriveError::NoRequest(k.name())),
            None => Ok(()),
        },
        Drive::Fhir(_) => Ok(()),
    }
}

impl Ehr<'_> {
    fn placeholders(&self, i: usize, at: Timestamp) -> BTreeMap<&'static str, String> {
        let clinical = self.clinical.at(i, at);
        let s = self.scenario;
        let e = &s.timeline[i];
        let p = &s.patients[&e.patient];
        let (given, family) = p.name.rsplit_once(' ').unwrap_or(("", p.name.as_str()));
        let ods = |key: Option<&String>| {
            key.and_then(|k| s.practices.get(k))
                .map(|pr| pr.ods.to_string())
                .unwrap_or_default()
        };
        let hl7 = |t: Timestamp| {
            let text = t.rfc3339().replace(['-', ':', 'T'], "");
            text.trim_end_matches('Z').to_string()
        };
        BTreeMap::from([
            ("nhs_number", p.nhs_number.to_string()),
            ("patient_name", p.name.clone()),
            ("family_name", family.to_string()),
            ("given_name", given.to_string()),
            ("born", p.born.clone()),
            ("practice_ods", ods(p.practice.as_ref())),
            ("event", e.kind.name().to_string()),
            ("at", at.rfc3339()),
            ("at_hl7", hl7(at)),
            ("clinical_at", clinical.rfc3339()),
            ("clinical_at_hl7", hl7(clinical)),
            (
                "clinical_date",
                crate::protocol::calendar::uk_day(clinical).to_string(),
            ),
            ("to_practice_ods", ods(e.to_practice.as_ref())),
            ("local_id", self.local_ids[i].clone()),
            ("scenario", s.id.clone()),
        ])
    }

    async fn send(
        &mut self,
        method: &str,
        url: &str,
        body: Option<String>,
        headers: &[(String, String)],
        what: &str,
        fhir: bool,
    ) -> Result<(), DriveError> {
        let m = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| DriveError::Method(method.to_string()))?;
        let mut req = self.http.request(m, url);
        if let Some(a) = &self.authorization {
            req = req.header("authorization", a);
        }
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|source| DriveError::Send {
            method: method.to_string(),
            url: url.to_string(),
            what: what.to_string(),
            source,
        })?;
        let status = resp.status();
        if !status.is_success() {
            // Only an excerpt is shown, so no more than the response cap is read.
            let cap = crate::protocol::limits::Limits::current().max_response;
            let text =
                crate::protocol::limits::read_response_capped(resp, cap, "LETTERGATE_MAX_RESPONSE")
                    .await
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_else(|e| format!("({e})"));
            return Err(DriveError::Refused {
                method: method.to_string(),
                url: url.to_string(),
                what: what.to_string(),
                status,
                excerpt: text.chars().take(300).collect(),
            });
        }
        if fhir {
            if let Some(answered) = super::check::not_fhir(resp).await {
                return Err(DriveError::NotFhir {
                    method: method.to_string(),
                    url: url.to_string(),
                    what: what.to_string(),
                    answered,
                });
            }
        }
        self.sent += 1;
        Ok(())
    }

    async fn template(
        &mut self,
        base: &str,
        r: &RawRequest,
        i: usize,
        at: Timestamp,
    ) -> Result<(), DriveError> {
        let values = self.placeholders(i, at);
        let e = &self.scenario.timeline[i];
        let fill = |t: &Template| fill(&t.0, &values);
        let url = format!("{base}/{}", fill(&r.path).trim_start_matches('/'));
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), fill(v)))
            .collect();
        let body = r.body.as_ref().map(fill);
        self.send(&r.method.0, &url, body, &headers, e.kind.name(), false)
            .await
    }

    async fn fhir(&mut self, base: &str, req: FhirRequest, what: &str) -> Result<(), DriveError> {
        let url = format!("{base}/{}", req.path);
        let headers = vec![(
            "content-type".to_string(),
            "application/fhir+json".to_string(),
        )];
        self.send(
            req.method,
            &url,
            Some(req.body.to_string()),
            &headers,
            what,
            true,
        )
        .await
    }

    /// A FHIR event: the patient first (as the EHR's registration would have them), then the
    /// file's request for its kind if it gives one, else the event's default mapping, or the
    /// patient updated for an event that only changes them.
    ///
    /// Why the patient comes first also before the file's own request: an EHR told of an
    /// attendance for a patient it has never seen refuses it, or files it under nobody, and
    /// nothing in the target file would say why.
    async fn fhir_event(
        &mut self,
        f: &HttpDrive,
        i: usize,
        at: Timestamp,
    ) -> Result<(), DriveError> {
        let s = self.scenario;
        let e: &Event = &s.timeline[i];
        if !self.patients.contains_key(&e.patient) {
            let p = self.initial(&e.patient);
            self.fhir(&f.base_url, r4::patient(&p), "register the patient")
                .await?;
            self.patients.insert(e.patient.clone(), p);
        }
        if let Some(r) = f.requests.get(&e.kind) {
            return self.template(&f.base_url, r, i, at).await;
        }
        let nhs = s.patients[&e.patient].nhs_number;
        let local_id = self.local_ids[i].clone();
        // The resources carry when the event happened clinically (Encounter.period,
        // Composition.date, Patient.deceasedDateTime), which `clock: scenario` moves.
        let at = self.clinical.at(i, at);
        if e.held_for_signature {
            // The summary is drafted, and waits for its signature: that is how the EHR learns
            // not to send it at discharge (the simulator holds it until a final Composition).
            let draft = r4::request_for(
                EventKind::LetterDrafted,
                &nhs,
                at,
                false,
                None,
                Signs::DischargeSummary,
            );
            if let Some(req) = draft {
                self.fhir(&f.base_url, req, "draft the discharge summary")
                    .await?;
            }
        }
        if let Some(req) =
            r4::request_for(e.kind, &nhs, at, e.second_signer, Some(&local_id), e.signs)
        {
            return self.fhir(&f.base_url, req, e.kind.name()).await;
        }
        let mut p = self.patients[&e.patient].clone();
        match e.kind {
            EventKind::Death => p.died_at = Some(at),
            EventKind::NamedGpLeft => p.named_gp = None,
            _ => p.practice = self.to_practice(e),
        }
        self.fhir(&f.base_url, r4::patient(&p), e.kind.name())
            .await?;
        self.patients.insert(e.patient.clone(), p);
        Ok(())
    }

    /// The ODS code of the practice an event moves its patient to.
    fn to_practice(&self, e: &Event) -> Option<crate::protocol::ids::OdsCode> {
        e.to_practice
            .as_ref()
            .and_then(|k| self.scenario.practices.get(k))
            .map(|pr| pr.ods.clone())
    }

    /// Sends the event's ADT message over MLLP and requires an AA (or CA) acknowledgement.
    async fn hl7(&mut self, h: &Hl7Drive, i: usize, at: Timestamp) -> Result<(), DriveError> {
        let e = &self.scenario.timeline[i];
        let mut p = self
            .patients
            .get(&e.patient)
            .cloned()
            .unwrap_or_else(|| self.initial(&e.patient));
        let clinical = self.clinical.at(i, at);
        match e.kind {
            EventKind::GpChange => p.practice = self.to_practice(e),
            EventKind::Death => p.died_at = Some(clinical),
            _ => {}
        }
        let msg = self.adt(h, e.kind, &p, (at, clinical), &self.local_ids[i])?;
        let addr = resolve(&h.address).await?;
        crate::protocol::hl7::mllp::send(addr, &msg, h.ack_timeout)
            .await
            .map_err(|source| DriveError::NotAccepted {
                kind: e.kind.name(),
                addr,
                source,
            })?;
        self.patients.insert(e.patient.clone(), p);
        self.sent += 1;
        Ok(())
    }

    /// The ADT message for an event about `p`, with MSH-3 to MSH-6 as the target file names
    /// them.
    fn adt(
        &self,
        h: &Hl7Drive,
        kind: EventKind,
        p: &PatientState,
        times: (Timestamp, Timestamp),
        local_id: &str,
    ) -> Result<String, DriveError> {
        use crate::protocol::hl7::message::escape;
        let record = PatientRecord {
            nhs_number: p.nhs_number,
            name: p.name.clone(),
            born: p.born.clone(),
            practice: p.practice.clone(),
            named_gp: p.named_gp.clone(),
        };
        let control_id = format!("LG{}", self.sent + 1);
        let msg =
            crate::protocol::hl7::adt::build_at(kind, &record, times, &control_id, Some(local_id))
                .ok_or(DriveError::NoAdt(kind.name()))?;
        let msh = format!(
            "MSH|^~\\&|{}|{}|{}|{}|",
            escape(&h.sending_application),
            escape(&h.sending_facility),
            escape(&h.receiving_application),
            escape(&h.receiving_facility),
        );
        Ok(msg.replacen("MSH|^~\\&|LETTERGATE|DRIVER|EHR|TRUST|", &msh, 1))
    }

    /// The patient as the scenario starts them.
    fn initial(&self, key: &str) -> PatientState {
        let p = &self.scenario.patients[key];
        PatientState {
            nhs_number: p.nhs_number,
            name: p.name.clone(),
            born: p.born.clone(),
            practice: self.scenario.registered_ods(p),
            named_gp: p.named_gp.clone(),
            died_at: None,
        }
    }
}

/// The first address `address` (`host:port`) resolves to.
async fn resolve(address: &str) -> Result<SocketAddr, DriveError> {
    let resolve_error = |source| DriveError::Resolve {
        address: address.to_string(),
        source,
    };
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| resolve_error(Some(e)))?
        .next()
        .ok_or_else(|| resolve_error(None))
}

/// Fills `{{placeholder}}`s (names were checked when the file was loaded).
pub fn fill(template: &str, values: &BTreeMap<&'static str, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        match rest[i + 2..].find("}}") {
            Some(j) => {
                let name = rest[i + 2..i + 2 + j].trim();
                out.push_str(values.get(name).map_or("", String::as_str));
                rest = &rest[i + 2 + j + 2..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before, an event with the file's own request skipped `PUT Patient`: the EHR was told
    /// of an attendance of a patient it had never seen.
    #[tokio::test]
    async fn a_fhir_event_with_the_files_own_request_still_registers_the_patient_first() {
        use wiremock::{matchers::any, Mock, MockServer, ResponseTemplate};
        let ehr = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200))
            .mount(&ehr)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.yaml");
        let text = format!("name: staging-epr\nnon_production: true\ndrive:\n  fhir:\n    base_url: {}/fhir\n    requests:\n      outpatient_attendance: {{path: /Appointment, body: '{{{{nhs_number}}}}'}}\ncapture:\n  http_endpoint: {{listen: 127.0.0.1:0}}\n", ehr.uri());
        std::fs::write(&file, text).unwrap();
        let t = crate::targets::load(&file).unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/outpatient/clinic_letter.yaml");
        let s = crate::scenario::Loader::new().load_scenario(&path).unwrap();
        let ids = (0..s.timeline.len()).map(|i| format!("LG-{i}")).collect();
        let mut d = Driver::for_target(&t, &s, ids, ClinicalClock::DRIVEN)
            .await
            .unwrap();
        d.event(0, Timestamp::now()).await.unwrap();
        let sent: Vec<String> = ehr
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url.path()))
            .collect();
        assert_eq!(sent, ["PUT /fhir/Patient", "POST /fhir/Appointment"]);
    }

    #[test]
    fn fills_placeholders_and_leaves_the_rest() {
        let v = BTreeMap::from([("nhs_number", "9990000018".to_string())]);
        assert_eq!(
            fill("/p/{{nhs_number}}?x={{ nhs_number }}", &v),
            "/p/9990000018?x=9990000018"
        );
        assert_eq!(fill("no {{ end", &v), "no {{ end");
        assert_eq!(fill("{\"a\": 1}", &v), "{\"a\": 1}");
    }
}
