//! The snapshot text of one scenario run: one block per captured letter, in arrival order,
//! with volatile values replaced by [`crate::protocol::normalize`] steps.

use crate::capture::CapturedLetter;
use crate::protocol::letter::{LetterKind, Rule, Transport};
use crate::protocol::normalize::normalize;
use crate::protocol::read::LetterFacts;
use crate::scenario::model::Patient;
use crate::scenario::Scenario;
use std::fmt::Write;

/// True when the snapshot `body` records exactly `rules` as the non-conformance of letter
/// `seq`: a sender's known non-conformance, accepted with its baseline.
pub fn records_nonconformance(body: &str, seq: u32, rules: &[Rule]) -> bool {
    let names: Vec<&str> = rules.iter().map(|r| r.name()).collect();
    let want = format!("  nonconformant: {}", names.join(", "));
    let head = format!("letter {seq}: ");
    body.lines()
        .skip_while(|l| !l.starts_with(&head))
        .skip(1)
        .take_while(|l| !l.starts_with("letter "))
        .any(|l| l == want)
}

/// Renders the letters of a run. Times are shown relative to the clinical event the letter
/// reports, never as absolute timestamps.
pub fn render(s: &Scenario, letters: &[CapturedLetter]) -> String {
    if s.generated {
        return render_volume(s, letters);
    }
    let mut out = String::new();
    let _ = writeln!(out, "scenario: {}", s.name);
    let _ = writeln!(out, "letters: {}", letters.len());
    for l in letters {
        let _ = writeln!(out);
        letter_block(&mut out, s, l);
    }
    normalize(&out)
}

/// One `  name: value` line after another, under a letter's heading.
struct Block<'a>(&'a mut String);

impl Block<'_> {
    fn field(&mut self, name: &str, value: &str) {
        let _ = writeln!(self.0, "  {name}: {value}");
    }
}

/// A letter's heading and fields: how it came, what it is, what came back about it.
fn letter_block(out: &mut String, s: &Scenario, l: &CapturedLetter) {
    let facts = l.facts.as_ref().ok();
    let kind = facts.and_then(|f| f.kind);
    let patient = facts
        .and_then(|f| f.nhs_number)
        .and_then(|n| s.patient_by_nhs(&n));
    let to = crate::capture::route::recipient_label(s, l);
    let _ = writeln!(
        out,
        "letter {}: {} for {} to {to}",
        l.seq,
        kind.map_or("unrecognised".into(), |k| k.name().to_string()),
        patient.map_or("unknown patient", |p| p.key.as_str()),
    );
    let mut b = Block(out);
    transport_fields(&mut b, s, l);
    if let Some(f) = facts {
        letter_fields(&mut b, s, l, f, patient);
    }
    if let Err(why) = &l.facts {
        b.field("unreadable", &why.to_string());
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
        b.field("acks", &acks.join(", "));
    }
    for r in &l.reports {
        b.field("report", &format!("{} {}", r.code, r.description));
    }
}

/// How the letter came: transport, route, the answer it got, its message id and workflow.
fn transport_fields(b: &mut Block, s: &Scenario, l: &CapturedLetter) {
    b.field("transport", &l.transport.to_string());
    b.field("route", &l.route);
    // MLLP answers with an ACK code and a folder answers nothing; only HTTP has a status.
    match (l.transport, &l.refusal) {
        (Transport::Mllp, None) => b.field("status", "AA accepted"),
        (Transport::Mllp, Some(why)) => b.field("status", &format!("AE refused: {why}")),
        (Transport::Folder, _) => b.field("status", "picked up"),
        (_, None) => b.field("status", &format!("{} accepted", l.status)),
        (_, Some(why)) => b.field("status", &format!("{} refused: {why}", l.status)),
    }
    if !l.message_id.is_empty() {
        if s.real_time {
            // A target's ids (MESH's, or ones made from the EHR's own counters) depend on
            // everything the system sent before; number them by order instead.
            b.field("message_id", &format!("[message-id-{}]", l.seq));
        } else {
            b.field("message_id", &l.message_id);
        }
    }
    if let Some(w) = &l.workflow_id {
        b.field("workflow", w);
    }
}

/// What the letter is: its ITK3 event, recipient, patient, document, when it was sent after
/// its event, title, sections and digest.
fn letter_fields(
    b: &mut Block,
    s: &Scenario,
    l: &CapturedLetter,
    f: &LetterFacts,
    patient: Option<&Patient>,
) {
    // The content is not kept in memory: read it again from the body on disk.
    let content = match l.read_body() {
        Err(e) => Err(format!("could not read the body back: {e}")),
        Ok(body) => {
            crate::protocol::read::letter_content(l.transport, &body).map_err(|e| e.to_string())
        }
    };
    let content = content.unwrap_or_else(|why| {
        b.field("content_unreadable", &why);
        Default::default()
    });
    if let Some(e) = &f.itk3_event {
        b.field("itk3_event", e);
    }
    if let Some(ods) = &f.recipient_ods {
        b.field("recipient_ods", ods);
    }
    if let Some(n) = f.nhs_number {
        b.field("nhs_number", &n.to_string());
    }
    if let Some(t) = &content.document_type {
        b.field("document_type", t);
    }
    if let Some(k) = f.kind.filter(|_| !s.real_time) {
        b.field("sent", &sent_after(s, l, k, patient));
    }
    if let Some(d) = f.kind.and_then(|k| dated(s, l, k, patient, f)) {
        b.field("dated", &d);
    }
    if let Some(t) = &content.title {
        b.field("title", t);
    }
    for (title, text) in &content.sections {
        b.field(&format!("section {title}"), text);
    }
    b.field("digest", &f.digest);
    // Only a letter that breaks a rule has this line, so a sender's known non-conformance is
    // part of its baseline and a new one is a change.
    if !f.nonconformance.is_empty() {
        let rules: Vec<&str> = f.nonconformance.iter().map(|r| r.name()).collect();
        b.field("nonconformant", &rules.join(", "));
    }
}

/// The dates the letter states, relative to the day (in England) its trigger event happened
/// clinically: `event +0d 09:30 (Encounter.period.start), letter +1d 11:30 (Composition.date)`.
/// A date that moves is a diff. With a target's `clock: now` each run happens at another
/// time of day, so only the days are kept. With `clock: scenario` a date the EHR stamped from
/// its own clock (at or after it was first told of the scenario, a minute's skew allowed) is
/// `when driven`: the events are back-dated, the EHR's own clock is not, and that date moves
/// with the day of the run, not with the EHR.
fn dated(
    s: &Scenario,
    l: &CapturedLetter,
    kind: LetterKind,
    patient: Option<&Patient>,
    f: &LetterFacts,
) -> Option<String> {
    use crate::protocol::calendar::{uk_day, uk_local};
    let anchor = patient
        .map(|p| s.events_of(&p.key, kind.trigger()))
        .and_then(|ev| ev.into_iter().rev().find(|e| e.at <= l.received_at))?;
    let day = uk_day(anchor.clinical_at);
    let with_time = s.clinical_clock != Some("now");
    let driven_from = (s.clinical_clock == Some("scenario"))
        .then(|| s.timeline.iter().map(|e| e.at).min())
        .flatten()
        .map(|t| crate::protocol::clock::Timestamp(t.0 - 60));
    let show = |what: &str, d: &crate::protocol::dates::StatedDate| {
        if driven_from.is_some_and(|from| d.at >= from) {
            return format!("{what} when driven ({})", d.from);
        }
        let local = uk_local(d.at);
        let days = (local.date() - day).whole_days();
        let time = if with_time {
            format!(" {:02}:{:02}", local.hour(), local.minute())
        } else {
            String::new()
        };
        format!("{what} {days:+}d{time} ({})", d.from)
    };
    let parts: Vec<String> = [("event", &f.dates.event), ("letter", &f.dates.document)]
        .into_iter()
        .filter_map(|(what, d)| d.as_ref().map(|d| show(what, d)))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// When a letter was sent, after the patient's latest event that triggers its kind (or the
/// scenario's start): `discharge + 1d 2h`.
fn sent_after(
    s: &Scenario,
    l: &CapturedLetter,
    kind: LetterKind,
    patient: Option<&Patient>,
) -> String {
    let trigger = kind.trigger();
    let anchor = patient
        .map(|p| s.events_of(&p.key, trigger))
        .and_then(|ev| {
            ev.into_iter()
                .rev()
                .find(|e| e.at <= l.received_at)
                .map(|e| e.at)
        });
    match anchor {
        Some(at) => format!("{trigger} + {}", l.received_at.since(at)),
        None => format!("start + {}", l.received_at.since(s.start)),
    }
}

/// The day of the clinical event a letter reports on: the patient's latest event of the kind
/// that triggers the letter, at or before it arrived.
fn trigger_day(
    s: &Scenario,
    patient: &str,
    kind: crate::protocol::letter::LetterKind,
    at: crate::protocol::clock::Timestamp,
) -> String {
    s.events_of(patient, kind.trigger())
        .into_iter()
        .rev()
        .find(|e| e.at <= at)
        .map_or_else(
            || "unknown day".into(),
            |e| e.at.rfc3339()[..10].to_string(),
        )
}

/// The snapshot of a generated population: letters counted per kind, recipient and day, and
/// one digest over every letter's identity and content, so a change to any letter shows
/// without keeping tens of thousands of letters in the file.
fn render_volume(s: &Scenario, letters: &[CapturedLetter]) -> String {
    use sha2::{Digest, Sha256};
    use std::collections::BTreeMap;
    let mut counts: BTreeMap<(String, String, String), u32> = BTreeMap::new();
    let mut lines: Vec<String> = Vec::with_capacity(letters.len());
    let (mut refused, mut unreadable) = (0, 0);
    for l in letters {
        if l.refusal.is_some() {
            refused += 1;
        }
        let Ok(f) = &l.facts else {
            unreadable += 1;
            continue;
        };
        let patient = f.nhs_number.and_then(|n| s.patient_by_nhs(&n));
        let kind = f
            .kind
            .map_or("unrecognised".to_string(), |k| k.name().to_string());
        let recipient = crate::protocol::read::recipient_label(Some(f));
        let day = match (patient, f.kind) {
            (Some(p), Some(k)) => trigger_day(s, &p.key, k, l.received_at),
            _ => "unknown day".into(),
        };
        *counts
            .entry((kind.clone(), recipient.clone(), day))
            .or_default() += 1;
        let acks: Vec<String> = l.acks.iter().map(|a| a.code.to_string()).collect();
        lines.push(format!(
            "{kind}|{recipient}|{}|{}|{}|{}",
            patient.map_or("?", |p| p.key.as_str()),
            l.workflow_id.as_deref().unwrap_or(""),
            f.digest,
            acks.join(",")
        ));
    }
    lines.sort_unstable();
    let mut hash = Sha256::new();
    for line in &lines {
        hash.update(line.as_bytes());
        hash.update(b"\n");
    }
    let mut out = String::new();
    let _ = writeln!(out, "scenario: {}", s.name);
    let _ = writeln!(out, "letters: {}", letters.len());
    let _ = writeln!(out, "refused: {refused}");
    let _ = writeln!(out, "unreadable: {unreadable}");
    let _ = writeln!(
        out,
        "content digest: {}",
        &hex::encode(hash.finalize())[..32]
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<22} {:<14} {:<12} {:>7}",
        "kind", "recipient", "day", "letters"
    );
    for ((kind, recipient, day), n) in counts {
        let _ = writeln!(out, "{kind:<22} {recipient:<14} {day:<12} {n:>7}");
    }
    out
}

#[cfg(test)]
mod nonconformance_tests {
    use super::*;

    const BODY: &str = "scenario: s\nletters: 2\n\nletter 1: clinic_letter for alice to A81001\n  digest: 1\n  nonconformant: entry_without_full_url, reference_by_id\n\nletter 2: clinic_letter for bob to A81001\n  digest: 2\n";

    #[test]
    fn a_baseline_records_the_rules_of_its_own_letter_only() {
        let both = [Rule::EntryWithoutFullUrl, Rule::ReferenceById];
        assert!(records_nonconformance(BODY, 1, &both));
        assert!(!records_nonconformance(
            BODY,
            1,
            &[Rule::EntryWithoutFullUrl]
        ));
        assert!(!records_nonconformance(BODY, 2, &both));
        assert!(!records_nonconformance(BODY, 3, &both));
    }
}
