//! The static files of the pages (`web-static/`), compiled into the binary: one CSS file and one
//! small progressive script (the pages work without it).

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use include_dir::{Dir, include_dir};

use super::WebError;

static STATIC: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web-static");

/// `GET /static/{file}`
pub async fn serve(Path(file): Path<String>) -> Result<Response, WebError> {
    let f = STATIC.get_file(&file).ok_or(WebError::NotFound)?;
    let content_type = match file.rsplit_once('.').map(|(_, e)| e) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    let mut response = f.contents().to_vec().into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    Ok(response)
}
