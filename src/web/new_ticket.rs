//! Opening a ticket from the web (`/tickets/new`, `POST /tickets`): subject, product, priority,
//! description and files, through `actions::open_ticket` like a first mail (acknowledgement to the
//! requester, alert to staff). Staff may open a ticket on behalf of a customer (`requester`), as
//! with `#requester` by mail.

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;

use super::forms::{self, normalise_text};
use super::pages::{Page, text};
use super::session::Viewer;
use super::{WebError, no_store};
use crate::app::App;
use crate::desk::actions::{self, Incoming, Mailing, OpenTicket};
use crate::desk::notices::human_size;
use crate::domain::{EmailAddress, MessageKind, Priority};
use crate::store;

/// What the form shows: empty, or as typed with what went wrong.
struct Draft {
    subject: String,
    product: String,
    priority: Priority,
    body: String,
    requester: String,
    error: String,
}

fn render(app: &App, viewer: &Viewer, d: &Draft, status: StatusCode) -> Result<Response, WebError> {
    let lang = viewer.lang;
    let priorities: Vec<_> = Priority::ALL
        .iter()
        .map(|p| json!({"code": p.as_str(), "label": p.label(lang.code()), "selected": *p == d.priority}))
        .collect();
    let page = Page {
        template: "new_ticket",
        lang,
        title: text(lang, "new_title", &[]),
        viewer: Some(viewer),
        helpdesk_name: &app.settings.helpdesk.name,
        data: json!({
            "subject": d.subject, "product": d.product, "body": d.body, "requester": d.requester,
            "priorities": priorities, "error": d.error,
            "limit": human_size(app.settings.helpdesk.max_attachment_bytes, lang.code()),
        }),
    }
    .render()?;
    Ok((status, no_store(), Html(page)).into_response())
}

/// `GET /tickets/new`
pub async fn form(State(app): State<App>, viewer: Viewer) -> Result<Response, WebError> {
    let empty = Draft {
        subject: String::new(),
        product: String::new(),
        priority: Priority::Normal,
        body: String::new(),
        requester: String::new(),
        error: String::new(),
    };
    render(&app, &viewer, &empty, StatusCode::OK)
}

/// `POST /tickets` (multipart `subject`, `product`, `priority`, `body`, `files`).
pub async fn create(State(app): State<App>, viewer: Viewer, multipart: Multipart) -> Result<Response, WebError> {
    let lang = viewer.lang;
    let limit = app.settings.helpdesk.max_attachment_bytes;
    let upload = forms::read(multipart, limit, lang).await?;
    viewer.check_csrf(upload.fields.get("csrf").map(String::as_str))?;
    let one_line = |s: &str, max: usize| -> String {
        s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().chars().take(max).collect()
    };
    let mut draft = Draft {
        subject: one_line(upload.field("subject"), 200),
        product: one_line(upload.field("product"), 100),
        priority: upload.field("priority").parse().unwrap_or(Priority::Normal),
        body: normalise_text(upload.field("body")),
        requester: one_line(upload.field("requester"), 254),
        error: String::new(),
    };
    let requester = if viewer.is_staff() && !draft.requester.is_empty() {
        match EmailAddress::parse(&draft.requester) {
            Some(a) => a,
            None => {
                draft.error = text(lang, "login_bad_address", &[]);
                return render(&app, &viewer, &draft, StatusCode::BAD_REQUEST);
            }
        }
    } else {
        viewer.address.clone()
    };
    if let Some(refusal) = upload.refusal(lang, limit) {
        draft.error = refusal;
        return render(&app, &viewer, &draft, StatusCode::PAYLOAD_TOO_LARGE);
    }
    if draft.subject.is_empty() || draft.body.is_empty() {
        draft.error = text(lang, "new_needs_subject_and_body", &[]);
        return render(&app, &viewer, &draft, StatusCode::BAD_REQUEST);
    }
    let desk = app.desk.clone();
    let actor = viewer.actor();
    let message = Incoming {
        subject: draft.subject.clone(),
        text: draft.body.clone(),
        full_text: draft.body.clone(),
        attachments: upload.files,
        ..Incoming::default()
    };
    let subject = draft.subject.clone();
    let product = Some(draft.product.clone()).filter(|p| !p.is_empty());
    let priority = draft.priority;
    let email = viewer.address.as_str().to_string();
    let number = app
        .store
        .run(move |s| {
            s.write(|c| {
                let on_behalf = requester != actor.address;
                let now = store::now();
                let queue = desk.default_queue().address.clone();
                let number = actions::open_ticket(
                    c,
                    &desk,
                    &OpenTicket {
                        requester: &requester,
                        actor: &actor,
                        subject: &subject,
                        priority,
                        product: product.as_deref(),
                        service: None,
                        unverified: false,
                        refers_to: None,
                        watchers: &[],
                        queue: &queue,
                        kind: if on_behalf { MessageKind::Staff } else { MessageKind::Customer },
                        message: &message,
                    },
                    Mailing::Send,
                    now,
                )?;
                if let Some(t) = store::tickets::get_ticket(c, number)? {
                    store::reads::mark_read(c, &email, &t, now)?;
                }
                Ok(number)
            })
        })
        .await?;
    Ok(Redirect::to(&format!("/tickets/{number}?done=created")).into_response())
}
