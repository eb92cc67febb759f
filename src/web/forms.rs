//! Multipart forms with files (answers, new tickets): text fields, and files checked against
//! `max_attachment_bytes` so that one file over the limit is named in a clear message instead of
//! being stored.

use std::collections::HashMap;

use axum::extract::Multipart;
use axum::extract::multipart::MultipartError;

use super::WebError;
use super::session::Lang;
use crate::desk::notices::human_size;
use crate::parse::{Attachment, sanitize_file_name};

/// At most this many characters in one text field (a long answer is fine; a megabyte is not).
const MAX_FIELD_CHARS: usize = 200_000;
const MAX_FILES: usize = 10;

#[derive(Debug, Default)]
pub struct Upload {
    pub fields: HashMap<String, String>,
    pub files: Vec<Attachment>,
    /// Files over the limit: (name, size).
    pub too_large: Vec<(String, u64)>,
}

impl Upload {
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }

    /// The clear message about refused files, if any.
    pub fn refusal(&self, lang: Lang, limit: u64) -> Option<String> {
        if self.too_large.is_empty() {
            return None;
        }
        let names: Vec<String> =
            self.too_large.iter().map(|(n, s)| format!("« {n} » ({})", human_size(*s, lang.code()))).collect();
        Some(super::pages::text(
            lang,
            "file_too_large",
            &[("files", names.join(", ")), ("limit", human_size(limit, lang.code()))],
        ))
    }
}

/// Reads every part: text fields by name, files from the `files` fields (empty file inputs skipped).
pub async fn read(mut multipart: Multipart, limit: u64, lang: Lang) -> Result<Upload, WebError> {
    let mut upload = Upload::default();
    while let Some(mut field) = multipart.next_field().await.map_err(|e| multipart_error(e, lang))? {
        let name = field.name().unwrap_or_default().to_string();
        if let Some(file_name) = field.file_name().map(str::to_string) {
            let content_type = field.content_type().unwrap_or("application/octet-stream").to_string();
            let mut data = Vec::new();
            let mut size: u64 = 0;
            while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, lang))? {
                size += chunk.len() as u64;
                // Past the limit the bytes are counted, not kept.
                if size <= limit {
                    data.extend_from_slice(&chunk);
                }
            }
            if file_name.is_empty() && size == 0 {
                continue;
            }
            let content_type = clean_content_type(&content_type);
            let name = sanitize_file_name(&file_name, &content_type);
            if size > limit {
                upload.too_large.push((name, size));
            } else if upload.files.len() < MAX_FILES {
                upload.files.push(Attachment::new(name, content_type, data, None, false, None));
            }
        } else {
            let text = field.text().await.map_err(|e| multipart_error(e, lang))?;
            upload.fields.insert(name, text.chars().take(MAX_FIELD_CHARS).collect());
        }
    }
    Ok(upload)
}

/// A browser-given type reduced to `type/subtype` of safe characters.
fn clean_content_type(ct: &str) -> String {
    let base = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let ok = base.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && base.bytes().all(|c| c.is_ascii_alphanumeric() || b"/.+-_".contains(&c))
    });
    if ok { base } else { "application/octet-stream".into() }
}

fn multipart_error(e: MultipartError, lang: Lang) -> WebError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        WebError::TooLarge(super::pages::text(lang, "form_too_large", &[]))
    } else {
        WebError::BadRequest(super::pages::text(lang, "form_unreadable", &[]))
    }
}

/// Text typed in a form, with Windows line ends made plain.
pub fn normalise_text(s: &str) -> String {
    s.replace("\r\n", "\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_reduced_to_their_base() {
        assert_eq!(clean_content_type("image/PNG; name=x"), "image/png");
        assert_eq!(clean_content_type("text/html\r\nX-Evil: 1"), "application/octet-stream");
        assert_eq!(clean_content_type(""), "application/octet-stream");
    }
}
