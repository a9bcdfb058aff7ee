//! The web UI of the three journeys, served by the node itself: search and facets, the dataset
//! page with its policy in plain words and the access request, the SPARQL editor, and the data
//! holder's space (publish, pending approvals, audit trail). Server-rendered HTML with a little
//! JavaScript (the editor bundle, built from npm into `ui/dist/`, and nothing else is needed).
//!
//! Handlers stay thin: they read the session and the form, call the catalogue, the contracts
//! service or the SPARQL service, and render with [`layout`]. Every string that comes from a
//! person or a store is escaped by [`layout::escape`]. Errors are HTML pages with a message a
//! person can act on ([`UiError`]), never problem+json and never a bare 500 for bad input.

mod dataset;
mod editor;
mod holder;
mod home;
pub mod layout;
pub mod session;

pub use dataset::dataset_page;

use crate::http::error::ApiError;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError, web};
use layout::{Page, escape, render};
use session::Session;
use std::collections::HashMap;
use std::path::PathBuf;

/// Registers the UI's routes. They read the session cookie; the JSON API's routes never do.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/").get(home::index))
        .service(web::resource("/datasets/{id}").get(dataset::page))
        .service(web::resource("/datasets/{id}/request").post(dataset::request_access))
        .service(web::resource("/negotiations/{id}").get(dataset::negotiation))
        .service(web::resource("/negotiations/{id}/status").get(dataset::negotiation_status))
        .service(web::resource("/sparql-editor").get(editor::page))
        .service(
            web::resource("/publish")
                .get(holder::publish_form)
                .post(holder::publish),
        )
        .service(web::resource("/holder").get(holder::space))
        .service(web::resource("/holder/negotiations/{id}/{decision}").post(holder::decide))
        .service(web::resource("/holder/audit/{id}").get(holder::audit))
        .service(
            web::resource("/sign-in")
                .get(session::form)
                .post(session::sign_in),
        )
        .service(web::resource("/sign-out").post(session::sign_out))
        .service(web::resource("/ui/assets/{name}").get(asset));
}

/// An HTML error page: a status and what the person can do about it.
#[derive(Debug, Clone)]
pub struct UiError {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl UiError {
    /// A page with this status, heading and message.
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            title,
            message: message.into(),
        }
    }

    /// `400`: the form or the link is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "This request cannot be handled",
            message,
        )
    }

    /// `401`: sign in first.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Please sign in", message)
    }

    /// `403`: signed in, but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Not allowed", message)
    }

    /// `404`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found", message)
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let session = Session::default();
        let action = match self.status {
            StatusCode::UNAUTHORIZED => "<p><a class=\"button\" href=\"/sign-in\">Sign in</a></p>",
            _ => "<p><a href=\"/\">Back to the search</a></p>",
        };
        let body = format!(
            "<h1>{}</h1><div class=\"notice bad\" role=\"alert\"><p>{}</p></div>{action}",
            escape(self.title),
            escape(&self.message)
        );
        let page = render(Page {
            title: self.title,
            section: "",
            session: &session,
            head: String::new(),
            body,
        });
        html(self.status, page)
    }
}

/// The domain's errors, as pages: the API's status and detail, which already say what to do.
impl From<ApiError> for UiError {
    fn from(error: ApiError) -> Self {
        let problem = error.problem();
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::UNAUTHORIZED => "Please sign in",
            StatusCode::CONFLICT => "Already decided",
            s if s.is_server_error() => "Something went wrong on this node",
            _ => "This request cannot be handled",
        };
        Self::new(status, title, problem.detail)
    }
}

impl From<crate::catalog::CatalogError> for UiError {
    fn from(error: crate::catalog::CatalogError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<crate::contract::ContractError> for UiError {
    fn from(error: crate::contract::ContractError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<actix_web::error::BlockingError> for UiError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        ApiError::internal(error).into()
    }
}

/// An HTML response.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ))
        .body(body)
}

/// A `200` page in the frame.
fn page(title: &str, section: &str, session: &Session, head: String, body: String) -> HttpResponse {
    html(
        StatusCode::OK,
        render(Page {
            title,
            section,
            session,
            head,
            body,
        }),
    )
}

/// Largest form body the UI reads (the publish form included).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// An url-encoded form as name → value (the last value of a repeated name wins, except that
/// repeated names are joined with a newline, which the publish form's multi-value fields use).
pub fn form_pairs(body: &[u8]) -> Result<HashMap<String, String>, UiError> {
    if body.len() > MAX_FORM_BYTES {
        return Err(UiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too much to send",
            format!("The form holds more than {MAX_FORM_BYTES} bytes; shorten it."),
        ));
    }
    let mut fields: HashMap<String, String> = HashMap::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut split = pair.splitn(2, |b| *b == b'=');
        let key = decode(split.next().unwrap_or_default())?;
        let value = decode(split.next().unwrap_or_default())?;
        fields
            .entry(key)
            .and_modify(|existing| {
                existing.push('\n');
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    Ok(fields)
}

fn decode(raw: &[u8]) -> Result<String, UiError> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            UiError::bad_request(
                "A form field is not valid UTF-8 text; send it again from the page.",
            )
        })
}

/// The folders the browser bundle is served from: `AGORA_UI_DIR` alone when it is set (an
/// operator's choice is not second-guessed), else `ui/dist` under the working directory, then in
/// the checkout this binary was built from. Without a bundle the editor is a plain textarea and
/// everything still works.
fn asset_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("AGORA_UI_DIR") {
        return vec![PathBuf::from(dir)];
    }
    let mut dirs = vec![PathBuf::from("ui/dist")];
    dirs.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/ui/dist"
    )));
    dirs
}

/// The small script of the pages (copy buttons), part of the binary: it needs no build step.
const UI_JS: &str = include_str!("ui.js");

/// Whether the editor bundle is available.
fn bundle_present() -> bool {
    asset_dirs().iter().any(|d| d.join("editor.js").is_file())
}

/// A file of the browser bundle (only plain names: no path escapes).
async fn asset(name: web::Path<String>) -> Result<HttpResponse, UiError> {
    let name = name.into_inner();
    let content_type = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("map") => "application/json",
        _ => return Err(UiError::not_found("No such file in the UI bundle.")),
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        || name.starts_with('.')
    {
        return Err(UiError::not_found("No such file in the UI bundle."));
    }
    if name == "ui.js" {
        return Ok(HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(UI_JS));
    }
    let bytes = web::block(move || {
        asset_dirs()
            .into_iter()
            .find_map(|dir| std::fs::read(dir.join(&name)).ok())
    })
    .await?;
    match bytes {
        Some(bytes) => Ok(HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(bytes)),
        None => Err(UiError::not_found(
            "The UI bundle is not built on this node (run scripts/setup.sh); the pages work without it.",
        )),
    }
}
