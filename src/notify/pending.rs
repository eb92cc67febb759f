//! A notification as the outbox keeps it until it is sent: everything decided when it was queued
//! (recipient, Message-ID, threading headers, template variables, which files), nothing rendered.
//!
//! Rendering and composing a mail cost about a quarter of an inbound mail's CPU, and a composed
//! mail (text and HTML, quoted-printable) is several times the size of what it is made from. So
//! the transaction that queues a notification writes this description (JSON), and the sender
//! renders and composes it just before sending (BENCHMARKS.md, fifth round). The Message-ID is
//! fixed here, so a retry still sends the same mail; a template that fails to render fails that
//! notification (recorded on the ticket and counted by `guichet status`), not the mail that
//! caused it.

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::compose::{self, OutgoingMail, shorten_subject};
use super::render::Renderer;
use crate::store::Store;
use crate::store::messages;

/// See the module's documentation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PendingMail {
    pub lang: String,
    /// The template set (`mail-templates/<lang>/<event>.*.hbs`).
    pub event: String,
    /// The template variables.
    pub ctx: Value,
    /// The ticket token, kept whole when the subject is shortened.
    pub token: String,
    pub from_name: String,
    pub from_address: String,
    pub to: Vec<String>,
    /// The recipient's signed reply address (`trust::reply_address`); absent in rows queued by
    /// versions before it.
    #[serde(default)]
    pub reply_to: Option<String>,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub auto_submitted: Option<String>,
    pub loop_id: String,
    /// Stored files sent along (a relayed staff answer's): name, content type, SHA-256.
    pub files: Vec<(String, String, String)>,
}

/// Why a pending mail could not become a mail: the notification fails, nothing else does.
#[derive(Debug)]
pub struct CannotCompose(pub String);

impl PendingMail {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a pending mail is plain data")
    }

    /// The mail's bytes; `file` reads a relayed file's bytes by digest (the only database read).
    /// `Err` is for the database (the send is tried again later); a mail that cannot be rendered
    /// or composed is `Ok(Err(_))`, for good.
    pub fn compose(
        &self,
        file: &mut dyn FnMut(&str) -> anyhow::Result<Vec<u8>>,
        renderer: &Renderer,
    ) -> anyhow::Result<Result<Vec<u8>, CannotCompose>> {
        let mut attachments = Vec::with_capacity(self.files.len());
        for (name, content_type, sha) in &self.files {
            let bytes = file(sha).with_context(|| format!("the file {name} of a notification"))?;
            attachments.push((name.clone(), content_type.clone(), bytes));
        }
        Ok(self.render_and_compose(renderer, attachments).map_err(|e| CannotCompose(format!("{e:#}"))))
    }

    fn render_and_compose(
        &self,
        renderer: &Renderer,
        attachments: Vec<(String, String, Vec<u8>)>,
    ) -> anyhow::Result<Vec<u8>> {
        let rendered = renderer.render(&self.lang, &self.event, &self.ctx)?;
        let auto_submitted = match self.auto_submitted.as_deref() {
            None => None,
            Some(value) => Some(
                *compose::AUTO_SUBMITTED_VALUES
                    .iter()
                    .find(|v| **v == value)
                    .ok_or_else(|| anyhow!("invalid Auto-Submitted value `{value}`"))?,
            ),
        };
        compose::compose(&OutgoingMail {
            from_name: self.from_name.clone(),
            from_address: self.from_address.clone(),
            to: self.to.clone(),
            reply_to: self.reply_to.clone(),
            subject: shorten_subject(&rendered.subject, &self.token, compose::MAX_SUBJECT_CHARS),
            message_id: self.message_id.clone(),
            in_reply_to: self.in_reply_to.clone(),
            references: self.references.clone(),
            auto_submitted,
            loop_id: self.loop_id.clone(),
            text: rendered.text,
            html: Some(rendered.html),
            attachments,
        })
    }
}

/// The bytes of an outbox row's mail: composed now from its description, or (rows queued by a
/// version before descriptions) as stored. `file` reads a relayed file by digest: the only
/// database read, so a sender composing an acknowledgement takes no connection.
pub fn mail_of(
    file: &mut dyn FnMut(&str) -> anyhow::Result<Vec<u8>>,
    renderer: &Renderer,
    row: &crate::store::outbox::OutboxRow,
) -> anyhow::Result<Result<Vec<u8>, CannotCompose>> {
    let Some(spec) = &row.spec else { return Ok(Ok(row.data.clone())) };
    match serde_json::from_str::<PendingMail>(spec) {
        Ok(pending) => pending.compose(file, renderer),
        Err(e) => Ok(Err(CannotCompose(format!("unreadable notification: {e}")))),
    }
}

/// A reader of relayed files for [`mail_of`], each read with a connection of `store`.
pub fn files_of(store: &Store) -> impl FnMut(&str) -> anyhow::Result<Vec<u8>> + '_ {
    |sha| store.read(|c| messages::blob_data(c, sha))
}
