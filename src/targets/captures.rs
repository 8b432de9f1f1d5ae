//! What a target run captures: the [`CapturePlan`] of one scenario from the target's
//! `capture:` (with its secrets read from the environment), and what the run notes before
//! anything is driven ([`before_run`]).

use super::file::{RawMailbox, RawMeshPoll};
use super::model::Capture;
use super::{secret, Target, TargetError};
use crate::capture::folder::KnownFiles;
use crate::capture::group::{Carried, FolderPlan, MeshPlan};
use crate::capture::poll::{MailboxCredentials, MeshPoller, PollConfig, PollError};
use crate::capture::{CapturePlan, GpReceiver};
use crate::protocol::clock::Clock;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a target run could not note what was waiting before it began.
#[derive(Debug, thiserror::Error)]
pub enum BeforeRunError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("could not capture from MESH")]
    Mesh(#[source] PollError),
    #[error("could not read the folder {}", .path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The captures of one scenario run against `t`, recording under `dir`. `gp` answers for the
/// practices with ITK3 acknowledgements, as in a simulator run: lettergate's MESH endpoint
/// stands in for the practices' mailboxes.
pub fn capture_plan(
    t: &Target,
    dir: &Path,
    gp: Option<GpReceiver>,
) -> Result<CapturePlan, TargetError> {
    let c: &Capture = &t.capture;
    let mesh = match &c.mesh_endpoint {
        Some(m) => {
            let shared_key = secret(&m.shared_key_env, "the MESH shared key")?;
            let mut mailboxes = BTreeMap::new();
            for (id, env) in &m.mailboxes {
                mailboxes.insert(id.clone(), secret(env, &format!("{id}'s password"))?);
            }
            let canary_mailbox = mailboxes
                .keys()
                .next()
                .cloned()
                .ok_or(TargetError::NoMailboxes)?;
            Some(MeshPlan {
                listen: m.listen.0,
                shared_key,
                monitored: mailboxes.keys().cloned().collect(),
                mailboxes,
                gp,
                directory: Vec::new(),
                canary_mailbox,
            })
        }
        None => None,
    };
    Ok(CapturePlan {
        dir: dir.to_path_buf(),
        clock: Clock::System,
        mesh,
        http: c.http_endpoint,
        mllp: c.mllp,
        folder: c.folder.as_ref().map(|f| FolderPlan {
            path: f.path.clone(),
            interval: f.poll_interval,
        }),
    })
}

/// Notes what is waiting in the MESH mailboxes and the folder before anything is driven,
/// and leaves it out of the run (where it is: nothing is acknowledged or removed).
pub async fn before_run(t: &Target) -> Result<Carried, BeforeRunError> {
    let c = &t.capture;
    let mut poller = None;
    if let Some(p) = &c.mesh_poll {
        let mut pl = MeshPoller::new(poll_config(p)?).map_err(BeforeRunError::Mesh)?;
        let waiting = pl.skip_waiting().await.map_err(BeforeRunError::Mesh)?.len();
        if waiting > 0 {
            eprintln!("note: {waiting} message(s) were waiting in the MESH mailboxes before the run began; they are left where they are, and out of the run");
        }
        poller = Some(pl);
    }
    let files = match &c.folder {
        Some(f) => {
            let known =
                KnownFiles::in_folder(&f.path).map_err(|source| BeforeRunError::Folder {
                    path: f.path.clone(),
                    source,
                })?;
            if !known.is_empty() {
                eprintln!(
                    "note: {} file(s) were in the folder {} before the run began; they are left out of the run",
                    known.len(),
                    f.path.display()
                );
            }
            known
        }
        None => KnownFiles::default(),
    };
    Ok(Carried { poller, files })
}

/// How the MESH poller signs in, from a target's `capture.mesh_poll`, with the secrets read.
pub fn poll_config(p: &RawMeshPoll) -> Result<PollConfig, TargetError> {
    let creds = |m: &RawMailbox| {
        secret(&m.password_env, &format!("{}'s password", m.id))
            .map(|pw| MailboxCredentials::new(&m.id, pw))
    };
    Ok(PollConfig {
        base_url: p.url.0.clone(),
        shared_key: secret(&p.shared_key_env, "the MESH shared key")?,
        recipients: p.mailboxes.iter().map(creds).collect::<Result<_, _>>()?,
        sender: p.sending_mailbox.as_ref().map(creds).transpose()?,
        tls: super::check::tls_options(p.tls.as_ref()),
        acknowledge: p.acknowledge,
        acknowledge_reports: false,
        workflows: None,
    })
}
