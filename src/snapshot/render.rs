//! The snapshot text of one scenario run: one block per captured letter, in arrival order,
//! with volatile values replaced by [`crate::normalize`] steps.

use crate::capture::CapturedLetter;
use crate::normalize::normalize;
use crate::scenario::Scenario;
use std::fmt::Write;

/// Renders the letters of a run. Times are shown relative to the clinical event the letter
/// reports, never as absolute timestamps.
pub fn render(s: &Scenario, letters: &[CapturedLetter]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "scenario: {}", s.name);
    let _ = writeln!(out, "letters: {}", letters.len());
    for l in letters {
        let _ = writeln!(out);
        let facts = l.facts.as_ref().ok();
        let kind = facts.and_then(|f| f.kind);
        let patient = facts
            .and_then(|f| f.nhs_number)
            .and_then(|n| s.patient_by_nhs(&n));
        let to = match facts {
            Some(f) if f.to_patient => "the patient".to_string(),
            Some(f) => f
                .recipient_ods
                .clone()
                .unwrap_or_else(|| "unknown recipient".into()),
            None => "unknown recipient".into(),
        };
        let _ = writeln!(
            out,
            "letter {}: {} for {} to {to}",
            l.seq,
            kind.map_or("unrecognised".into(), |k| k.name().to_string()),
            patient.map_or("unknown patient", |p| p.key.as_str()),
        );
        let mut field = |name: &str, value: &str| {
            let _ = writeln!(out, "  {name}: {value}");
        };
        field("transport", &l.transport.to_string());
        field("route", &l.route);
        match &l.refusal {
            None => field("status", &format!("{} accepted", l.status)),
            Some(why) => field("status", &format!("{} refused: {why}", l.status)),
        }
        if !l.message_id.is_empty() {
            field("message_id", &l.message_id);
        }
        if let Some(w) = &l.workflow_id {
            field("workflow", w);
        }
        if let Some(f) = facts {
            {
                if let Some(e) = &f.itk3_event {
                    field("itk3_event", e);
                }
                if let Some(ods) = &f.recipient_ods {
                    field("recipient_ods", ods);
                }
                if let Some(n) = f.nhs_number {
                    field("nhs_number", &n.to_string());
                }
                if let Some(t) = &f.document_type {
                    field("document_type", t);
                }
                if let Some(k) = kind {
                    let trigger = k.trigger();
                    let anchor = patient
                        .map(|p| s.events_of(&p.key, trigger))
                        .and_then(|ev| {
                            ev.into_iter()
                                .rev()
                                .find(|e| e.at <= l.received_at)
                                .map(|e| e.at)
                        });
                    match anchor {
                        Some(at) => {
                            field("sent", &format!("{trigger} + {}", l.received_at.since(at)))
                        }
                        None => field("sent", &format!("start + {}", l.received_at.since(s.start))),
                    }
                }
                if let Some(t) = &f.title {
                    field("title", t);
                }
                for (title, text) in &f.sections {
                    field(&format!("section {title}"), text);
                }
                field("digest", &f.digest);
            }
        }
        if let Err(why) = &l.facts {
            field("unreadable", why);
        }
        if !l.acks.is_empty() {
            let acks: Vec<String> = l
                .acks
                .iter()
                .map(|a| {
                    format!(
                        "{}{}",
                        a.code,
                        if a.collected { "" } else { " (not collected)" }
                    )
                })
                .collect();
            field("acks", &acks.join(", "));
        }
        for r in &l.reports {
            field("report", &format!("{} {}", r.code, r.description));
        }
    }
    normalize(&out)
}
