//! The web view's route table: every route once, with what it reads and who may use it. The
//! router is built from it, and the security tests walk it, so a new route cannot escape them.

use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::{api, assets, export, list, login, new_ticket, staff_forms, ticket};
use crate::app::App;

/// What a route's request body may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Nothing, or a form of at most `FORM_LIMIT` bytes.
    Form,
    /// A multipart form with files (up to the attachment limits).
    Files,
}

/// Who may use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, assets, the login pages.
    Public,
    /// A logged-in person; what they see of a ticket is `desk::visibility`'s to say.
    Person,
    /// Staff only: anyone else is answered as if the ticket did not exist.
    Staff,
}

/// One route of the table (without its handler: what the tests read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    pub body: Body,
    pub access: Access,
}

struct Route {
    info: RouteInfo,
    handler: MethodRouter<App>,
}

fn route<H, T>(method: &'static str, path: &'static str, body: Body, access: Access, handler: H) -> Route
where
    H: Handler<T, App>,
    T: 'static,
{
    let filter = if method == "POST" { MethodFilter::POST } else { MethodFilter::GET };
    Route { info: RouteInfo { method, path, body, access }, handler: on(filter, handler) }
}

fn table() -> Vec<Route> {
    use Access::{Person, Public, Staff};
    use Body::{Files, Form};
    vec![
        route("GET", "/healthz", Form, Public, crate::ops::health::healthz_public),
        route("GET", "/readyz", Form, Public, crate::ops::health::readyz_public),
        route("GET", "/static/{file}", Form, Public, assets::serve),
        route("GET", "/login", Form, Public, login::form),
        route("POST", "/login", Form, Public, login::request_link),
        route("GET", "/login/{token}", Form, Public, login::confirm_page),
        route("POST", "/login/{token}", Form, Public, login::confirm),
        route("POST", "/logout", Form, Person, login::logout),
        route("GET", "/", Form, Person, list::page),
        route("POST", "/criteria/save", Form, Person, list::save),
        route("POST", "/criteria/forget", Form, Person, list::forget),
        route("GET", "/api/tickets", Form, Person, api::list),
        route("GET", "/api/tickets/{n}", Form, Person, api::ticket),
        route("GET", "/tickets/export.csv", Form, Person, export::csv),
        route("GET", "/tickets/export.xlsx", Form, Person, export::xlsx),
        route("GET", "/tickets/new", Form, Person, new_ticket::form),
        route("POST", "/tickets", Files, Person, new_ticket::create),
        route("GET", "/tickets/{n}", Form, Person, ticket::page),
        route("POST", "/tickets/{n}/reply", Files, Person, ticket::reply),
        route("POST", "/tickets/{n}/close", Form, Person, ticket::close),
        route("POST", "/tickets/{n}/reopen", Form, Person, ticket::reopen),
        route("POST", "/tickets/{n}/note", Files, Staff, ticket::note),
        route("POST", "/tickets/{n}/status", Form, Staff, staff_forms::status),
        route("POST", "/tickets/{n}/priority", Form, Staff, staff_forms::priority),
        route("POST", "/tickets/{n}/assign", Form, Staff, staff_forms::assign),
        route("GET", "/messages/{id}/html", Form, Person, ticket::message_html),
        route("GET", "/attachments/{id}", Form, Person, ticket::attachment),
    ]
}

/// Every route of the web view (not the operator listener's `/metrics`).
pub fn all() -> Vec<RouteInfo> {
    table().into_iter().map(|r| r.info).collect()
}

/// The routes whose body is `body`, as axum routes, one per path with all its methods.
pub(super) fn router(body: Body) -> axum::Router<App> {
    let mut by_path: Vec<(&'static str, MethodRouter<App>)> = Vec::new();
    for r in table().into_iter().filter(|r| r.info.body == body) {
        match by_path.iter_mut().find(|(p, _)| *p == r.info.path) {
            Some((_, methods)) => *methods = std::mem::take(methods).merge(r.handler),
            None => by_path.push((r.info.path, r.handler)),
        }
    }
    by_path.into_iter().fold(axum::Router::new(), |router, (path, methods)| router.route(path, methods))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_and_path_is_in_the_table_once() {
        let all = all();
        for r in &all {
            assert_eq!(all.iter().filter(|o| (o.method, o.path) == (r.method, r.path)).count(), 1, "{r:?}");
        }
        assert!(all.iter().all(|r| r.method == "GET" || r.method == "POST"));
    }
}
