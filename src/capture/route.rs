//! Who a captured letter is for, from both sides: what its message says (the ODS code of
//! `MessageHeader.receiver` or a destination's receiver, a destination's endpoint mailbox, an
//! HL7 MSH-6) and what its transport says (the MESH `mex-To` mailbox, a practice's ODS code in
//! an HTTP route's path), each mapped to a practice of the scenario: [`Routing`].
//!
//! A letter is routed by its message when the message names a recipient, and by its transport
//! otherwise: ITK3 allows a header without `receiver` (ITK-MessageHeader-2, 0..1), and then the
//! MESH mailbox is the only address there is. When both name a recipient and they differ,
//! [`Routing::disagreement`] says so, naming both.

use super::store::CapturedLetter;
use crate::protocol::letter::Transport;
use crate::scenario::{Practice, Scenario};

/// A recipient as one side names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addressee {
    /// The practice's ODS code, when the scenario knows the practice.
    pub ods: Option<String>,
    /// How a report names it: the ODS code, or `mailbox X` for a mailbox of no practice.
    pub label: String,
    /// Where it was read: `MessageHeader.receiver`, `MESH mex-To A81001HC001`.
    pub from: String,
}

/// Who a letter is for, by its message and by its transport.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routing {
    pub message: Option<Addressee>,
    pub transport: Option<Addressee>,
}

impl Routing {
    /// Reads both sides of `l`'s routing, mapping mailboxes and routes through `s`'s practices.
    pub fn of(s: &Scenario, l: &CapturedLetter) -> Routing {
        Routing {
            message: by_message(s, l),
            transport: by_transport(s, l),
        }
    }

    /// The ODS code the letter is routed to: the message's, else the transport's.
    pub fn ods(&self) -> Option<&str> {
        self.chosen().and_then(|a| a.ods.as_deref())
    }

    /// The side the letter is routed by.
    pub fn chosen(&self) -> Option<&Addressee> {
        self.message.as_ref().or(self.transport.as_ref())
    }

    /// The message's and the transport's recipients, when both are known and differ.
    pub fn disagreement(&self) -> Option<(&Addressee, &Addressee)> {
        let (m, t) = (self.message.as_ref()?, self.transport.as_ref()?);
        (m.label != t.label).then_some((m, t))
    }
}

fn practice_of_mailbox<'a>(s: &'a Scenario, mailbox: &str) -> Option<&'a Practice> {
    s.practices
        .values()
        .find(|p| p.mailbox.eq_ignore_ascii_case(mailbox))
}

fn at_mailbox(s: &Scenario, mailbox: &str, from: String) -> Addressee {
    match practice_of_mailbox(s, mailbox) {
        Some(p) => Addressee {
            ods: Some(p.ods.to_string()),
            label: p.ods.to_string(),
            from: format!("{from} (the mailbox of {} {})", p.ods, p.name),
        },
        None => Addressee {
            ods: None,
            label: format!("mailbox {mailbox}"),
            from,
        },
    }
}

fn by_message(s: &Scenario, l: &CapturedLetter) -> Option<Addressee> {
    let f = l.facts.as_ref().ok()?;
    if f.to_patient {
        return None;
    }
    if let Some(ods) = &f.recipient_ods {
        let from = match l.transport {
            Transport::Mllp => "MSH-6 receiving facility",
            _ if f.recipient_mailbox.is_some() => "MessageHeader.destination.receiver",
            _ => "MessageHeader.receiver",
        };
        return Some(Addressee {
            ods: Some(ods.clone()),
            label: ods.clone(),
            from: from.into(),
        });
    }
    let mailbox = f.recipient_mailbox.as_deref()?;
    let from = format!("MessageHeader.destination.endpoint {mailbox}");
    Some(at_mailbox(s, mailbox, from))
}

fn by_transport(s: &Scenario, l: &CapturedLetter) -> Option<Addressee> {
    match l.transport {
        Transport::Mesh => {
            let to = l.to_mailbox.as_deref()?;
            Some(at_mailbox(s, to, format!("MESH mex-To {to}")))
        }
        Transport::Http => {
            let path = l.route.split_whitespace().last()?;
            let p = s.practices.values().find(|p| {
                path.split('/')
                    .any(|part| part.eq_ignore_ascii_case(p.ods.as_str()))
            })?;
            Some(Addressee {
                ods: Some(p.ods.to_string()),
                label: p.ods.to_string(),
                from: format!("the HTTP route {path} ({} {})", p.ods, p.name),
            })
        }
        Transport::Mllp | Transport::Folder => None,
    }
}

/// Who a letter was addressed to, as snapshots and reports name it: the practice's ODS code
/// (the message's, else the transport's), `the patient`, or `unknown recipient`.
pub fn recipient_label(s: &Scenario, l: &CapturedLetter) -> String {
    let facts = l.facts.as_ref().ok();
    if facts.is_some_and(|f| f.to_patient || f.recipient_ods.is_some()) {
        return crate::protocol::read::recipient_label(facts);
    }
    Routing::of(s, l)
        .ods()
        .map_or_else(|| "unknown recipient".into(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ids::NhsNumber;
    use crate::protocol::read::LetterFacts;
    use crate::scenario::Loader;

    fn scenario() -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        std::fs::write(
            &path,
            r#"
name: routing
practices:
  riverside: {ods: A81001, name: Riverside, mailbox: A81001HC001}
  hillside: {ods: B82002, name: Hillside, mailbox: B82002HC001, route: http}
patients:
  alice: {nhs_number: "9990000018", name: Alice, born: 1950-01-01, practice: riverside}
timeline:
  - at: 2025-03-10T10:00:00Z
    event: outpatient_attendance
    patient: alice
expect:
  - letter: clinic_letter
    patient: alice
"#,
        )
        .unwrap();
        Loader::new().load_scenario(&path).unwrap()
    }

    /// A letter over `transport` to `to` (a mailbox, or an HTTP path), whose message names
    /// `ods` and `mailbox`.
    fn letter(
        transport: Transport,
        to: &str,
        ods: Option<&str>,
        mailbox: Option<&str>,
    ) -> CapturedLetter {
        let facts = LetterFacts {
            nhs_number: NhsNumber::parse("9990000018").ok(),
            recipient_ods: ods.map(str::to_string),
            recipient_mailbox: mailbox.map(str::to_string),
            ..LetterFacts::default()
        };
        let route = match transport {
            Transport::Mesh => format!("RXXHC001 -> {to}"),
            _ => format!("POST {to}"),
        };
        let mut l = CapturedLetter::received(
            transport,
            crate::protocol::clock::Timestamp(0),
            route,
            "M1".into(),
            0,
            Ok(facts),
        );
        if transport == Transport::Mesh {
            l.to_mailbox = Some(to.into());
        }
        l
    }

    fn froms(r: &Routing) -> (Option<&str>, Option<&str>) {
        (
            r.message.as_ref().map(|a| a.from.as_str()),
            r.transport.as_ref().map(|a| a.from.as_str()),
        )
    }

    #[test]
    fn the_receiver_and_the_mex_to_mailbox_agree() {
        let s = scenario();
        let r = Routing::of(
            &s,
            &letter(Transport::Mesh, "A81001HC001", Some("A81001"), None),
        );
        assert_eq!(r.ods(), Some("A81001"));
        assert_eq!(
            froms(&r),
            (
                Some("MessageHeader.receiver"),
                Some("MESH mex-To A81001HC001 (the mailbox of A81001 Riverside)")
            )
        );
        assert_eq!(r.disagreement(), None);
    }

    #[test]
    fn a_message_without_recipient_is_routed_by_its_mex_to_mailbox() {
        let s = scenario();
        let l = letter(Transport::Mesh, "a81001hc001", None, None);
        let r = Routing::of(&s, &l);
        assert_eq!((r.message.is_none(), r.ods()), (true, Some("A81001")));
        assert_eq!(recipient_label(&s, &l), "A81001");
    }

    #[test]
    fn a_destination_endpoint_mailbox_is_mapped_to_its_practice() {
        let s = scenario();
        let r = Routing::of(
            &s,
            &letter(Transport::Mesh, "A81001HC001", None, Some("A81001HC001")),
        );
        assert_eq!(
            r.message.as_ref().and_then(|a| a.ods.as_deref()),
            Some("A81001")
        );
        assert_eq!(r.disagreement(), None);
    }

    #[test]
    fn an_http_route_naming_a_practice_is_the_transports_recipient() {
        let s = scenario();
        let r = Routing::of(
            &s,
            &letter(Transport::Http, "/gp-documents/B82002", None, None),
        );
        assert_eq!(r.ods(), Some("B82002"));
        let print = Routing::of(
            &s,
            &letter(Transport::Http, "/print/v1/letters", None, None),
        );
        assert_eq!(print.chosen(), None);
    }

    #[test]
    fn the_mllp_receiving_facility_is_the_messages_recipient() {
        let s = scenario();
        let r = Routing::of(&s, &letter(Transport::Mllp, "", Some("A81001"), None));
        assert_eq!(froms(&r), (Some("MSH-6 receiving facility"), None));
    }

    #[test]
    fn a_receiver_other_than_the_mailbox_practice_is_a_disagreement_naming_both() {
        let s = scenario();
        let r = Routing::of(
            &s,
            &letter(Transport::Mesh, "A81001HC001", Some("B82002"), None),
        );
        let (m, t) = r.disagreement().unwrap();
        assert_eq!((m.label.as_str(), t.label.as_str()), ("B82002", "A81001"));
        let unknown = Routing::of(
            &s,
            &letter(Transport::Mesh, "Z99HC001", Some("A81001"), None),
        );
        let (_, t) = unknown.disagreement().unwrap();
        assert_eq!(t.label, "mailbox Z99HC001");
        let endpoint = Routing::of(
            &s,
            &letter(Transport::Mesh, "A81001HC001", None, Some("B82002HC001")),
        );
        assert!(endpoint.disagreement().is_some());
    }
}
