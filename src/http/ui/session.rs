//! Signing in to the web UI: the bearer token a person pastes is kept only in the browser's
//! session, as a session cookie (no `Expires`/`Max-Age`, `HttpOnly`, `SameSite=Strict`, `Secure`
//! behind TLS) that the UI's routes — and only they — turn into the same [`Principal`] the API's
//! extractors produce. The JSON API never reads the cookie, so a page on another site can never
//! make a browser spend it there.
//!
//! Forms that change something carry a per-session CSRF token derived from the session token
//! (SHA-256 under a fixed label): another site can neither read the cookie nor compute it, and
//! `SameSite=Strict` keeps the cookie off cross-site requests in the first place.
//!
//! OIDC fits in here later: the callback of an authorization-code flow would set the same
//! cookie with the ID token (from a trusted issuer) instead of a pasted one.

use super::layout::{Page, escape, render};
use super::{UiError, form_pairs, html};
use crate::http::auth::principal_from_token;
use crate::identity::{Principal, Role};
use crate::node::Node;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};
use std::future::{Ready, ready};

/// The cookie the UI keeps the token in.
pub const COOKIE: &str = "agora_session";

/// Who is using the UI: the signed-in principal, or nobody.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// The verified principal, when the cookie holds a valid participant token.
    pub principal: Option<Principal>,
    /// The token's CSRF companion (empty when signed out).
    pub csrf: String,
    /// Whether a cookie was sent but no longer holds a valid token (expired, revoked issuer).
    pub stale: bool,
}

/// The CSRF token of a session token.
pub fn csrf_for(token: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"agora-ui-csrf\0");
    digest.update(token.as_bytes());
    hex::encode(&digest.finalize()[..16])
}

fn session_token(request: &HttpRequest) -> Option<String> {
    let cookies = request.headers().get_all(header::COOKIE);
    for value in cookies {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=')
                && name == COOKIE
                && !value.is_empty()
            {
                return Some(value.to_owned());
            }
        }
    }
    None
}

impl Session {
    /// The session of a request.
    pub fn of(request: &HttpRequest) -> Self {
        let Some(node) = request.app_data::<web::Data<Node>>() else {
            return Self::default();
        };
        let Some(token) = session_token(request) else {
            return Self::default();
        };
        match principal_from_token(node, &token) {
            Ok(principal) => Self {
                principal: Some(principal),
                csrf: csrf_for(&token),
                stale: false,
            },
            Err(_) => Self {
                stale: true,
                ..Self::default()
            },
        }
    }

    /// The catalogue's view of this person.
    pub fn viewer(&self) -> crate::catalog::Viewer {
        match &self.principal {
            Some(p) => crate::catalog::Viewer::with_claims(p.claims()),
            None => crate::catalog::Viewer::anonymous(),
        }
    }

    /// The signed-in principal, or a 401 page asking to sign in.
    pub fn require(&self, why: &str) -> Result<&Principal, UiError> {
        self.principal.as_ref().ok_or_else(|| {
            UiError::unauthorized(format!(
                "{why}: sign in with your participant token first{}.",
                if self.stale {
                    " (your session's token expired or is no longer accepted)"
                } else {
                    ""
                }
            ))
        })
    }

    /// The signed-in principal with the `holder` role, or a 401/403 page.
    pub fn require_holder(&self) -> Result<&Principal, UiError> {
        let principal = self.require("The data holder space is for data holders")?;
        if principal.has_role(Role::Holder) {
            Ok(principal)
        } else {
            Err(UiError::forbidden(format!(
                "You are signed in as {}, whose token has no `holder` role. Sign in with a data holder's token to publish datasets and decide on access requests.",
                principal.subject
            )))
        }
    }

    /// Checks a submitted form's CSRF token against the session's.
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), UiError> {
        if self.principal.is_none() || submitted != Some(self.csrf.as_str()) {
            return Err(UiError::forbidden(
                "This form was not sent from a page of this node's current session (its CSRF token is missing or does not match). Reload the page and send it again.",
            ));
        }
        Ok(())
    }

    /// The hidden form field carrying the CSRF token.
    pub fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            escape(&self.csrf)
        )
    }
}

impl FromRequest for Session {
    type Error = UiError;
    type Future = Ready<Result<Self, UiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Session::of(request)))
    }
}

fn sign_in_page(session: &Session, message: Option<&str>, next: &str) -> String {
    let error = message
        .map(|m| {
            format!(
                "<p class=\"field-error\" id=\"token-error\" role=\"alert\">{}</p>",
                escape(m)
            )
        })
        .unwrap_or_default();
    let invalid = if message.is_some() {
        " aria-invalid=\"true\" aria-describedby=\"token-error token-help\""
    } else {
        " aria-describedby=\"token-help\""
    };
    let body = format!(
        r#"<h1>Sign in</h1>
<div class="card" style="max-width:40rem">
<form method="post" action="/sign-in">
<input type="hidden" name="next" value="{next}">
<label for="token">Participant token (JWT)</label>
<textarea id="token" name="token" class="code" rows="5" required autocomplete="off" spellcheck="false"{invalid}></textarea>
{error}
<p class="hint" id="token-help">A token from an identity provider this node trusts, or for local use <code>agora token issue --sub NAME --role researcher</code>. It stays in this browser session only (a session cookie the API never accepts) and is forgotten when you sign out or close the browser.</p>
<p><button type="submit">Sign in</button></p>
</form>
</div>"#,
        next = escape(next),
    );
    render(Page {
        title: "Sign in",
        section: "sign-in",
        session,
        head: String::new(),
        body,
    })
}

/// Refuses a form posted from another site. Signing in has no session yet, hence no CSRF token
/// and no SameSite cookie to lean on; browsers send `Origin` with every form POST, and a page of
/// another origin must not sign a visitor in with a token of its choosing (login CSRF).
fn same_origin(request: &HttpRequest) -> Result<(), UiError> {
    let Some(origin) = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return Ok(());
    };
    let host = request.connection_info().host().to_owned();
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    if origin == "null" || origin_host != host {
        return Err(UiError::forbidden(
            "This sign-in form was sent from another site. Open the sign-in page of this node and sign in there.",
        ));
    }
    Ok(())
}

/// Where a sign-in may send the person back to: a local path only.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

/// The sign-in form.
pub async fn form(session: Session, request: HttpRequest) -> HttpResponse {
    let next =
        web::Query::<std::collections::HashMap<String, String>>::from_query(request.query_string())
            .ok()
            .and_then(|q| q.get("next").cloned())
            .unwrap_or_else(|| "/".into());
    html(
        actix_web::http::StatusCode::OK,
        sign_in_page(&session, None, safe_next(&next)),
    )
}

/// Checks the pasted token like the API would and keeps it in a session cookie.
pub async fn sign_in(
    node: web::Data<Node>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, UiError> {
    let session = Session::default();
    same_origin(&request)?;
    let fields = form_pairs(&body)?;
    let token: String = fields
        .get("token")
        .map(|t| t.split_whitespace().collect())
        .unwrap_or_default();
    let token = token
        .strip_prefix("Bearer")
        .map(str::to_owned)
        .unwrap_or(token);
    let next = safe_next(fields.get("next").map_or("/", String::as_str)).to_owned();
    if token.is_empty() {
        return Ok(html(
            actix_web::http::StatusCode::BAD_REQUEST,
            sign_in_page(&session, Some("Paste your token to sign in."), &next),
        ));
    }
    if let Err(error) = principal_from_token(&node, &token) {
        let detail = error.problem().detail;
        return Ok(html(
            actix_web::http::StatusCode::UNAUTHORIZED,
            sign_in_page(
                &session,
                Some(&format!("This token was not accepted: {detail}")),
                &next,
            ),
        ));
    }
    let secure = request.connection_info().scheme() == "https"
        || node.config.public_url().starts_with("https://");
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, next))
        .insert_header((header::SET_COOKIE, cookie))
        .finish())
}

/// Forgets the token: the cookie is cleared.
pub async fn sign_out(session: Session, body: web::Bytes) -> Result<HttpResponse, UiError> {
    let fields = form_pairs(&body)?;
    if session.principal.is_some() {
        session.check_csrf(fields.get("csrf").map(String::as_str))?;
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .insert_header((
            header::SET_COOKIE,
            format!(
                "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
            ),
        ))
        .finish())
}
