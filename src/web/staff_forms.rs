//! The staff-only forms of a ticket page: `POST /tickets/{n}/status`, `/priority`, `/assign`.
//! Anyone else gets the same 404 as for a ticket they may not see.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::WebError;
use super::session::Viewer;
use super::ticket::{act, done, number};
use crate::app::App;
use crate::desk::actions::{self, Mailing};
use crate::domain::{EmailAddress, Priority, Status};

#[derive(Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    status: String,
}

/// `POST /tickets/{n}/status` (staff; `status`): as `#status`.
pub async fn status(
    State(app): State<App>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(form): Form<StatusForm>,
) -> Result<Response, WebError> {
    let n = staff_form(&viewer, &n, form.csrf.as_deref())?;
    let to: Status = form.status.parse().map_err(WebError::BadRequest)?;
    act(&app, &viewer, n, move |c, desk, ticket, v, now| {
        actions::change_status(c, desk, ticket, to, &v.address, Mailing::Send, now)
    })
    .await?;
    Ok(done(n, "status"))
}

#[derive(Deserialize)]
pub struct PriorityForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    priority: String,
}

/// `POST /tickets/{n}/priority` (staff; `priority`): as `#priority`.
pub async fn priority(
    State(app): State<App>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(form): Form<PriorityForm>,
) -> Result<Response, WebError> {
    let n = staff_form(&viewer, &n, form.csrf.as_deref())?;
    let to: Priority = form.priority.parse().map_err(WebError::BadRequest)?;
    act(&app, &viewer, n, move |c, desk, ticket, v, now| {
        actions::set_priority(c, desk, ticket, to, &v.address, Mailing::Send, now)
    })
    .await?;
    Ok(done(n, "priority"))
}

#[derive(Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    csrf: Option<String>,
    /// `me`, `none` or a staff address (SPEC §8).
    #[serde(default)]
    assignee: String,
}

/// `POST /tickets/{n}/assign` (`assignee`: `me`, `none` or a staff address).
pub async fn assign(
    State(app): State<App>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(form): Form<AssignForm>,
) -> Result<Response, WebError> {
    let n = staff_form(&viewer, &n, form.csrf.as_deref())?;
    let to = match form.assignee.trim().to_lowercase().as_str() {
        "" | "none" => None,
        "me" => Some(viewer.address.clone()),
        other => Some(EmailAddress::parse(other).ok_or_else(|| WebError::BadRequest("assignee".into()))?),
    };
    if to.as_ref().is_some_and(|a| !app.desk.is_staff(a)) {
        return Err(WebError::BadRequest("the assignee must be a staff member".into()));
    }
    act(&app, &viewer, n, move |c, desk, ticket, v, now| {
        actions::assign(c, desk, ticket, to.as_ref(), &v.address, Mailing::Send, now)
    })
    .await?;
    Ok(done(n, "assigned"))
}

/// The shared gate of the staff-only forms: a ticket number, a staff viewer (anyone else gets the
/// same 404 as for a ticket they may not see), a valid CSRF token.
fn staff_form(viewer: &Viewer, n: &str, csrf: Option<&str>) -> Result<i64, WebError> {
    let n = number(n)?;
    if !viewer.is_staff() {
        return Err(WebError::NotFound);
    }
    viewer.check_csrf(csrf)?;
    Ok(n)
}
