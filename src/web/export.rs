//! The list as a file, with the same criteria as the page (every matching row, not one page):
//! `GET /tickets/export.csv` (UTF-8, comma-separated, a header row of the JSON field names) and
//! `GET /tickets/export.xlsx` (a real Excel workbook: headers in the reader's language, dates as
//! dates, a filter on the header row).
//!
//! Cells that a spreadsheet would read as a formula (`=`, `+`, `-`, `@` first) are prefixed with
//! `'` in the CSV; the XLSX writes every text as a string cell, never a formula.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

use super::criteria::Criteria;
use super::pages::text;
use super::session::Viewer;
use super::{WebError, list};
use crate::app::App;
use crate::domain::{Priority, Status};
use crate::store::listing::ListedTicket;

/// At most this many rows in one file.
pub const MAX_ROWS: usize = 100_000;

const COLUMNS: &[&str] = &[
    "number",
    "subject",
    "status",
    "priority",
    "requester",
    "company",
    "product",
    "service",
    "created_at",
    "updated_at",
    "unread",
];

async fn rows(app: &App, viewer: &Viewer, query: Option<String>) -> Result<Vec<ListedTicket>, WebError> {
    let criteria = Criteria::parse(query.as_deref().unwrap_or(""));
    let (_, mut rows) = list::fetch(app, viewer, &criteria, false).await?;
    rows.truncate(MAX_ROWS);
    Ok(rows)
}

fn file_name(ext: &str) -> String {
    format!("tickets-{}.{ext}", chrono::Utc::now().format("%Y-%m-%d"))
}

fn download(content_type: &'static str, name: &str, body: Vec<u8>) -> Result<Response, WebError> {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).map_err(anyhow::Error::from)?,
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}

/// A cell a spreadsheet will not run as a formula.
fn defuse(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_string() }
}

/// `GET /tickets/export.csv`
pub async fn csv(State(app): State<App>, viewer: Viewer, RawQuery(query): RawQuery) -> Result<Response, WebError> {
    let rows = rows(&app, &viewer, query).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).map_err(anyhow::Error::from)?;
    for r in &rows {
        let t = &r.ticket;
        w.write_record([
            t.number.to_string(),
            defuse(&t.subject),
            t.status.clone(),
            t.priority.clone(),
            defuse(&t.requester),
            defuse(t.company.as_deref().unwrap_or("")),
            defuse(t.product.as_deref().unwrap_or("")),
            defuse(t.service.as_deref().unwrap_or("")),
            crate::store::rfc3339(t.created_at),
            crate::store::rfc3339(t.updated_at),
            r.unread.to_string(),
        ])
        .map_err(anyhow::Error::from)?;
    }
    let body = w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))?;
    download("text/csv; charset=utf-8", &file_name("csv"), body)
}

/// `GET /tickets/export.xlsx`
pub async fn xlsx(State(app): State<App>, viewer: Viewer, RawQuery(query): RawQuery) -> Result<Response, WebError> {
    let rows = rows(&app, &viewer, query).await?;
    let lang = viewer.lang;
    let body = tokio::task::spawn_blocking(move || workbook(lang, &rows)).await.map_err(anyhow::Error::from)??;
    download("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", &file_name("xlsx"), body)
}

fn workbook(lang: super::session::Lang, rows: &[ListedTicket]) -> anyhow::Result<Vec<u8>> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(text(lang, "list_title", &[]))?;
    let bold = Format::new().set_bold();
    let date = Format::new().set_num_format(if lang.code() == "fr" { "dd/mm/yyyy hh:mm" } else { "yyyy-mm-dd hh:mm" });
    let headers = [
        "col_number",
        "col_subject",
        "col_status",
        "col_priority",
        "col_requester",
        "col_company",
        "col_product",
        "col_service",
        "col_created",
        "col_updated",
        "col_unread",
    ];
    for (c, key) in headers.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, text(lang, key, &[]), &bold)?;
    }
    let widths = [8.0, 48.0, 18.0, 12.0, 30.0, 22.0, 20.0, 16.0, 17.0, 17.0, 8.0];
    for (c, w) in widths.iter().enumerate() {
        sheet.set_column_width(c as u16, *w)?;
    }
    let yes = text(lang, "yes", &[]);
    for (i, r) in rows.iter().enumerate() {
        let row = (i + 1) as u32;
        let t = &r.ticket;
        let status: Status = t.status.parse().unwrap_or(Status::New);
        let priority: Priority = t.priority.parse().unwrap_or(Priority::Normal);
        sheet.write_number(row, 0, t.number as f64)?;
        sheet.write_string(row, 1, &t.subject)?;
        sheet.write_string(row, 2, status.label(lang.code()))?;
        sheet.write_string(row, 3, priority.label(lang.code()))?;
        sheet.write_string(row, 4, &t.requester)?;
        sheet.write_string(row, 5, t.company.as_deref().unwrap_or(""))?;
        sheet.write_string(row, 6, t.product.as_deref().unwrap_or(""))?;
        sheet.write_string(row, 7, t.service.as_deref().unwrap_or(""))?;
        sheet.write_datetime_with_format(row, 8, ExcelDateTime::from_timestamp(t.created_at)?, &date)?;
        sheet.write_datetime_with_format(row, 9, ExcelDateTime::from_timestamp(t.updated_at)?, &date)?;
        sheet.write_string(row, 10, if r.unread { yes.as_str() } else { "" })?;
    }
    sheet.autofilter(0, 0, rows.len() as u32, (headers.len() - 1) as u16)?;
    sheet.set_freeze_panes(1, 0)?;
    Ok(book.save_to_buffer()?)
}
