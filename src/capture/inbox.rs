//! [`Inbox`]: the MESH inboxes of lettergate's endpoint, holding what comes back to the
//! sender: ITK3 acknowledgements from the synthetic GP receiver, and `REPORT` messages for
//! letters nobody collected.
//!
//! Design constraint: MESH reports a message not collected within 5 days (status `14`) some
//! time after it accepted it. Reports are made lazily, when the clock is read at a list of the
//! inbox or when the capture finishes, so virtual days cost nothing.

use crate::protocol::clock::{Span, Timestamp};
use crate::protocol::itk3::Itk3Response;
use crate::protocol::mesh::MeshErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// How long MESH waits for a recipient to collect before it reports.
pub const COLLECT_WITHIN: Span = Span::days(5);

/// An acknowledgement the synthetic GP receiver sent for a letter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRecord {
    pub code: Itk3Response,
    /// True once the sender downloaded and acknowledged it.
    pub collected: bool,
}

/// A MESH `REPORT` about a letter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    pub code: MeshErrorCode,
    pub description: String,
    pub collected: bool,
}

/// What an inbox message is about: the captured letter (by `seq`) it refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum About {
    Ack { seq: u32, index: usize },
    Report { seq: u32, index: usize },
}

#[derive(Clone, Debug)]
pub struct InboxItem {
    pub id: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub about: About,
}

/// A letter accepted for a mailbox nobody collects from.
#[derive(Clone, Debug)]
struct Uncollected {
    seq: u32,
    message_id: String,
    sender: String,
    recipient: String,
    workflow: String,
    accepted_at: Timestamp,
}

/// Messages waiting in the inboxes. Taken messages are forgotten, bodies and all, so memory
/// follows what is waiting, not what has passed through.
#[derive(Default, Debug)]
pub struct Inbox {
    /// Waiting message ids per mailbox, in arrival order.
    waiting: BTreeMap<String, BTreeMap<u64, String>>,
    /// Waiting messages by id, with their mailbox and arrival number.
    items: HashMap<String, (String, u64, InboxItem)>,
    arrivals: u64,
    uncollected: Vec<Uncollected>,
}

impl Inbox {
    pub fn deliver(&mut self, mailbox: &str, item: InboxItem) {
        self.arrivals += 1;
        let waiting = self.waiting.entry(mailbox.to_string()).or_default();
        waiting.insert(self.arrivals, item.id.clone());
        self.items
            .insert(item.id.clone(), (mailbox.to_string(), self.arrivals, item));
    }

    pub fn note_uncollected(
        &mut self,
        seq: u32,
        message_id: &str,
        sender: &str,
        recipient: &str,
        workflow: &str,
        accepted_at: Timestamp,
    ) {
        self.uncollected.push(Uncollected {
            seq,
            message_id: message_id.into(),
            sender: sender.into(),
            recipient: recipient.into(),
            workflow: workflow.into(),
            accepted_at,
        });
    }

    /// Makes the reports that are due at `now`; returns (letter seq, report) for each.
    pub fn make_due_reports(
        &mut self,
        now: Timestamp,
        mut next_id: impl FnMut() -> String,
    ) -> Vec<(u32, ReportRecord)> {
        let (due, waiting): (Vec<_>, Vec<_>) = self
            .uncollected
            .drain(..)
            .partition(|u| now >= u.accepted_at.plus(COLLECT_WITHIN));
        self.uncollected = waiting;
        let mut made = Vec::new();
        for u in due {
            let record = ReportRecord {
                code: MeshErrorCode::NotCollected,
                description: format!(
                    "message not collected by recipient {} after 5 days",
                    u.recipient
                ),
                collected: false,
            };
            let headers = vec![
                ("mex-messagetype".to_string(), "REPORT".to_string()),
                ("mex-linkedmsgid".to_string(), u.message_id.clone()),
                ("mex-statuscode".to_string(), record.code.to_string()),
                ("mex-statusevent".to_string(), "TRANSFER".to_string()),
                ("mex-statussuccess".to_string(), "ERROR".to_string()),
                (
                    "mex-statusdescription".to_string(),
                    record.description.clone(),
                ),
                ("mex-workflowid".to_string(), u.workflow.clone()),
                ("mex-to".to_string(), u.sender.clone()),
            ];
            let index = made.iter().filter(|(s, _)| *s == u.seq).count();
            self.deliver(
                &u.sender,
                InboxItem {
                    id: next_id(),
                    headers,
                    body: Vec::new(),
                    about: About::Report { seq: u.seq, index },
                },
            );
            made.push((u.seq, record));
        }
        made
    }

    /// Ids of the messages in `mailbox` not yet acknowledged, oldest first.
    pub fn list(&self, mailbox: &str) -> Vec<String> {
        self.waiting
            .get(mailbox)
            .map(|w| w.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn get(&self, mailbox: &str, id: &str) -> Option<&InboxItem> {
        self.items
            .get(id)
            .filter(|(m, _, _)| m == mailbox)
            .map(|(_, _, item)| item)
    }

    /// Takes a message out of the inbox; returns what it was about, the first time only.
    pub fn acknowledge(&mut self, mailbox: &str, id: &str) -> Option<About> {
        if self.items.get(id).is_none_or(|(m, _, _)| m != mailbox) {
            return None;
        }
        let (_, arrival, item) = self.items.remove(id)?;
        if let Some(w) = self.waiting.get_mut(mailbox) {
            w.remove(&arrival);
        }
        Some(item.about)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_made_only_once_five_days_have_passed() {
        let mut inbox = Inbox::default();
        inbox.note_uncollected(
            3,
            "M1",
            "RXXHC001",
            "E85005HC001",
            "TOC_FHIR_OP_ATTEN",
            Timestamp(0),
        );
        let mut n = 0;
        let mut id = || {
            n += 1;
            format!("R{n}")
        };
        assert!(inbox
            .make_due_reports(Timestamp(0).plus(Span::days(4)), &mut id)
            .is_empty());
        let made = inbox.make_due_reports(Timestamp(0).plus(Span::days(5)), &mut id);
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].0, 3);
        assert_eq!(inbox.list("RXXHC001"), vec!["R1".to_string()]);
        assert!(inbox
            .make_due_reports(Timestamp(0).plus(Span::days(9)), &mut id)
            .is_empty());
        assert_eq!(
            inbox.acknowledge("RXXHC001", "R1"),
            Some(About::Report { seq: 3, index: 0 })
        );
        assert_eq!(inbox.acknowledge("RXXHC001", "R1"), None);
        assert!(inbox.list("RXXHC001").is_empty());
    }
}
