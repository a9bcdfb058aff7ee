//! The data holder's space: the publish form (mapped to DCAT-AP and sent through the same
//! validation as `POST /api/datasets`, with each SHACL violation shown beside its field), the
//! policy templates of `policies/` to choose from, the negotiations waiting for the holder's
//! approval (`agora:obtainApproval`), and the audit trail of each of the holder's datasets.

use super::layout::{escape, url_encode};
use super::session::Session;
use super::{UiError, form_pairs, html, page};
use crate::catalog::form::{
    APPROVAL, COUNTRIES, FORMATS, LICENCES, SECTORS, THEMES, field_of, to_turtle,
};
use crate::catalog::{CatalogError, FindingView};
use crate::contract::NegotiationRecord;
use crate::node::Node;
use crate::rdf_input::RdfSyntax;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use std::collections::HashMap;

/// The fields of the publish form, in order: name, label.
const FIELDS: [(&str, &str); 12] = [
    ("title", "Title"),
    ("description", "Description"),
    ("sector", "Sector pool"),
    ("theme", "Theme"),
    ("keywords", "Keywords"),
    ("publisher", "Publisher name"),
    ("contact", "Contact e-mail"),
    ("spatial", "Spatial coverage"),
    ("format", "Distribution format"),
    ("url", "Distribution URL"),
    ("licence", "Licence"),
    ("policy", "Usage policy"),
];

/// The templates of `policies/` as (uid, title), for the policy picker.
fn template_choices() -> Vec<(String, String)> {
    crate::policy::TEMPLATES
        .iter()
        .filter_map(|(file, body)| {
            let policy = crate::policy::parse(body.as_bytes(), RdfSyntax::JsonLd).ok()?;
            let title = policy
                .title()
                .map_or_else(|| (*file).to_owned(), str::to_owned);
            Some((policy.uid.as_str().to_owned(), title))
        })
        .collect()
}

fn options(list: &[(String, String)], chosen: &str, empty: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(label) = empty {
        out.push_str(&format!(
            "<option value=\"\"{}>{}</option>",
            if chosen.is_empty() { " selected" } else { "" },
            escape(label)
        ));
    }
    for (value, label) in list {
        out.push_str(&format!(
            "<option value=\"{}\"{}>{}</option>",
            escape(value),
            if value == chosen { " selected" } else { "" },
            escape(label)
        ));
    }
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The publish form, filled with `form` and annotated with `errors` (field → message) and
/// `general` (findings that belong to no field).
fn publish_body(
    session: &Session,
    form: &HashMap<String, String>,
    errors: &HashMap<&'static str, Vec<String>>,
    general: &[String],
) -> String {
    let value = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let principal_name = session
        .principal
        .as_ref()
        .map(|p| p.subject.clone())
        .unwrap_or_default();
    let mut body = String::from(
        "<p class=\"small\"><a href=\"/holder\">← Data holder space</a></p><h1>Publish a dataset</h1>",
    );
    if !errors.is_empty() || !general.is_empty() {
        let count = errors.values().map(Vec::len).sum::<usize>() + general.len();
        body.push_str(&format!(
            "<div class=\"notice bad\" role=\"alert\" id=\"form-errors\"><p><strong>The description was not published:</strong> {count} problem{} to fix, marked below.</p>",
            if count == 1 { "" } else { "s" }
        ));
        if !general.is_empty() {
            body.push_str("<ul>");
            for message in general {
                body.push_str(&format!("<li>{}</li>", escape(message)));
            }
            body.push_str("</ul>");
        }
        body.push_str("</div>");
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/publish\" class=\"card\" novalidate>{}",
        session.csrf_field()
    ));
    let templates = template_choices();
    let mut policy_choices = vec![(
        APPROVAL.to_owned(),
        "Use after my approval of each request (data permit)".to_owned(),
    )];
    policy_choices.extend(templates);
    for (name, label) in FIELDS {
        let error = errors.get(name);
        let described = if error.is_some() {
            format!(" aria-invalid=\"true\" aria-describedby=\"{name}-error {name}-help\"")
        } else {
            format!(" aria-describedby=\"{name}-help\"")
        };
        let required = matches!(name, "title" | "description");
        body.push_str(&format!(
            "<div class=\"field\" id=\"field-{name}\"><label for=\"{name}\">{label}{}</label>",
            if required {
                " <span class=\"muted small\">(required)</span>"
            } else {
                ""
            }
        ));
        let control = match name {
            "description" => format!(
                "<textarea id=\"{name}\" name=\"{name}\"{described}>{}</textarea>",
                escape(value(name))
            ),
            "sector" => format!(
                "<select id=\"{name}\" name=\"{name}\"{described}>{}</select>",
                options(
                    &SECTORS
                        .iter()
                        .map(|(k, l, _)| ((*k).to_owned(), (*l).to_owned()))
                        .collect::<Vec<_>>(),
                    value(name),
                    Some("None of the three")
                )
            ),
            "theme" => format!(
                "<select id=\"{name}\" name=\"{name}\"{described}>{}</select>",
                options(
                    &pairs(&THEMES),
                    value(name),
                    Some("Only the sector's theme")
                )
            ),
            "spatial" => format!(
                "<select id=\"{name}\" name=\"{name}\"{described}>{}</select>",
                options(&pairs(&COUNTRIES[1..]), value(name), Some("Not stated"))
            ),
            "format" => format!(
                "<select id=\"{name}\" name=\"{name}\"{described}>{}</select>",
                options(&pairs(&FORMATS), value(name), Some("Not stated"))
            ),
            "licence" => format!(
                "<select id=\"{name}\" name=\"{name}\"{described}>{}</select>",
                options(&pairs(&LICENCES), value(name), Some("Not stated"))
            ),
            "policy" => format!(
                "<select id=\"{name}\" name=\"{name}\"{described}>{}</select>",
                options(&policy_choices, value(name), Some("No usage policy"))
            ),
            "publisher" => format!(
                "<input type=\"text\" id=\"{name}\" name=\"{name}\" value=\"{}\"{described}>",
                escape(if form.contains_key(name) {
                    value(name)
                } else {
                    &principal_name
                })
            ),
            "url" => format!(
                "<input type=\"url\" id=\"{name}\" name=\"{name}\" value=\"{}\" placeholder=\"https://data.example.org/files/\"{described}>",
                escape(value(name))
            ),
            _ => format!(
                "<input type=\"text\" id=\"{name}\" name=\"{name}\" value=\"{}\"{described}>",
                escape(value(name))
            ),
        };
        body.push_str(&control);
        if let Some(messages) = error {
            for message in messages {
                body.push_str(&format!(
                    "<p class=\"field-error\" id=\"{name}-error\">{}</p>",
                    escape(message)
                ));
            }
        }
        let help = match name {
            "title" => "A short name, e.g. “Hourly air quality 2024”.",
            "description" => "What the data contain, where and when they come from.",
            "sector" => {
                "Puts the dataset in the health, mobility or climate pool (its EU data theme)."
            }
            "theme" => "Another EU data theme, if it fits one besides the sector's.",
            "keywords" => "Separated by commas.",
            "publisher" => {
                "The organisation that publishes the data; it is identified by your participant id."
            }
            "contact" => "Where people send questions about the data.",
            "url" => "Where the data can be obtained (a landing page or a file folder).",
            "policy" => {
                "What a requester must satisfy, and what the node does to every release. Templates come from policies/."
            }
            _ => "",
        };
        body.push_str(&format!(
            "<p class=\"hint\" id=\"{name}-help\">{help}</p></div>"
        ));
    }
    body.push_str("<p><button type=\"submit\">Publish</button></p></form>");
    body
}

/// `GET /publish`.
pub async fn publish_form(session: Session) -> Result<HttpResponse, UiError> {
    session.require_holder()?;
    let body = publish_body(&session, &HashMap::new(), &HashMap::new(), &[]);
    Ok(page(
        "Publish a dataset",
        "holder",
        &session,
        String::new(),
        body,
    ))
}

/// `POST /publish`: validates like `POST /api/datasets` and shows the violations beside their
/// fields (`422`), or goes to the new dataset's page.
pub async fn publish(
    session: Session,
    node: web::Data<Node>,
    body: web::Bytes,
) -> Result<HttpResponse, UiError> {
    let holder = session.require_holder()?.subject.clone();
    let form = form_pairs(&body)?;
    session.check_csrf(form.get("csrf").map(String::as_str))?;
    let refuse = |errors: HashMap<&'static str, Vec<String>>, general: Vec<String>| {
        let body = publish_body(&session, &form, &errors, &general);
        html(
            StatusCode::UNPROCESSABLE_ENTITY,
            super::layout::render(super::layout::Page {
                title: "Publish a dataset",
                section: "holder",
                session: &session,
                head: String::new(),
                body,
            }),
        )
    };
    let turtle = match to_turtle(&form, &node.config.public_url(), &holder) {
        Ok(turtle) => turtle,
        Err(errors) => {
            let errors = errors.into_iter().map(|(k, v)| (k, vec![v])).collect();
            return Ok(refuse(errors, Vec::new()));
        }
    };
    let catalog = node.catalog.clone();
    let outcome =
        web::block(move || catalog.publish(&holder, turtle.as_bytes(), RdfSyntax::Turtle, None))
            .await?;
    match outcome {
        Ok(published) => Ok(HttpResponse::SeeOther()
            .insert_header((
                header::LOCATION,
                format!("/datasets/{}", url_encode(&published.id)),
            ))
            .finish()),
        Err(CatalogError::Invalid { violations }) => {
            let mut errors: HashMap<&'static str, Vec<String>> = HashMap::new();
            let mut general = Vec::new();
            for finding in &violations {
                let view = FindingView::from(finding);
                match field_of(&view.path) {
                    "" => general.push(view.message),
                    field => errors.entry(field).or_default().push(view.message),
                }
            }
            Ok(refuse(errors, general))
        }
        Err(
            error @ (CatalogError::Syntax { .. }
            | CatalogError::BadRequest { .. }
            | CatalogError::Conflict { .. }
            | CatalogError::TooManyTriples { .. }
            | CatalogError::TooLarge { .. }),
        ) => Ok(refuse(HashMap::new(), vec![error.to_string()])),
        Err(other) => Err(other.into()),
    }
}

/// The ids of the datasets `holder` published, sorted.
fn datasets_of(node: &Node, holder: &str) -> Result<Vec<(String, String)>, CatalogError> {
    let mut mine = Vec::new();
    for id in node.catalog.ids()? {
        if node
            .catalog
            .record(&id)?
            .is_some_and(|record| record.holder == holder)
        {
            let title = node
                .catalog
                .offered(&id)
                .map(|(summary, _)| summary.title)
                .unwrap_or_default();
            mine.push((id, title));
        }
    }
    mine.sort();
    Ok(mine)
}

/// `GET /holder`: pending approvals and the holder's datasets.
pub async fn space(session: Session, node: web::Data<Node>) -> Result<HttpResponse, UiError> {
    let principal = session.require_holder()?.clone();
    let worker = node.clone();
    let (pending, mine) = web::block(move || {
        let pending = worker
            .contracts
            .pending_approvals(&principal)
            .map_err(UiError::from)?;
        let mine = datasets_of(&worker, &principal.subject).map_err(UiError::from)?;
        let pending: Vec<(NegotiationRecord, String)> = pending
            .into_iter()
            .map(|record| {
                let title = mine
                    .iter()
                    .find(|(id, _)| *id == record.dataset)
                    .map(|(_, title)| title.clone())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| record.dataset.clone());
                (record, title)
            })
            .collect();
        Ok::<_, UiError>((pending, mine))
    })
    .await??;
    let mut body = String::from(
        "<h1>Data holder space</h1><p><a class=\"button\" href=\"/publish\">Publish a dataset</a></p>",
    );
    body.push_str("<h2 id=\"pending-heading\">Requests waiting for your approval</h2>");
    if pending.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-pending\">Nothing waits for you.</p>");
    } else {
        body.push_str("<div class=\"table-wrap\"><table id=\"pending\" class=\"stack\" aria-labelledby=\"pending-heading\"><thead><tr><th scope=\"col\">Dataset</th><th scope=\"col\">Requester</th><th scope=\"col\">Purpose</th><th scope=\"col\">Since</th><th scope=\"col\">Decision</th></tr></thead><tbody>");
        for (record, title) in &pending {
            let requester = record
                .requester
                .as_deref()
                .or(record.participant.as_deref())
                .unwrap_or("unknown");
            let claims: Vec<String> = record
                .claims
                .iter()
                .filter(|(k, _)| matches!(k.as_str(), "country" | "org_type"))
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
                .collect();
            let id = escape(&url_encode(&record.id));
            body.push_str(&format!(
                "<tr><td data-label=\"Dataset\"><a href=\"/datasets/{}\">{}</a></td><td data-label=\"Requester\">{}<br><span class=\"small muted\">{}</span></td><td data-label=\"Purpose\"><code>{}</code></td><td data-label=\"Since\">{}</td>\
                 <td data-label=\"Decision\"><form method=\"post\" action=\"/holder/negotiations/{id}/approve\">{csrf}\
                 <label for=\"note-{id}\" class=\"small\">Note (optional)</label><input type=\"text\" id=\"note-{id}\" name=\"note\" maxlength=\"1000\">\
                 <div class=\"row\" style=\"margin-top:.5rem\"><button type=\"submit\">Approve</button>\
                 <button type=\"submit\" class=\"danger\" formaction=\"/holder/negotiations/{id}/reject\">Reject</button></div></form></td></tr>",
                escape(&url_encode(&record.dataset)),
                escape(title),
                escape(requester),
                escape(&claims.join(", ")),
                escape(record.purpose.as_deref().unwrap_or("none")),
                escape(&record.created),
                csrf = session.csrf_field(),
            ));
        }
        body.push_str("</tbody></table></div>");
    }
    body.push_str("<h2>Your datasets</h2>");
    if mine.is_empty() {
        body.push_str("<p class=\"muted\">You have published nothing on this node yet.</p>");
    } else {
        body.push_str("<ul>");
        for (id, title) in &mine {
            let quoted = escape(&url_encode(id));
            body.push_str(&format!(
                "<li><a href=\"/datasets/{quoted}\">{}</a> · <a href=\"/holder/audit/{quoted}\">audit trail</a></li>",
                escape(if title.is_empty() { id } else { title })
            ));
        }
        body.push_str("</ul>");
    }
    Ok(page(
        "Data holder space",
        "holder",
        &session,
        String::new(),
        body,
    ))
}

/// `POST /holder/negotiations/{id}/{approve|reject}`.
pub async fn decide(
    session: Session,
    node: web::Data<Node>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, UiError> {
    let principal = session.require_holder()?.clone();
    let form = form_pairs(&body)?;
    session.check_csrf(form.get("csrf").map(String::as_str))?;
    let (id, decision) = path.into_inner();
    let approve = match decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return Err(UiError::not_found(
                "A request is approved or rejected; nothing else.",
            ));
        }
    };
    let note = form
        .get("note")
        .map(|n| n.trim().chars().take(1000).collect::<String>())
        .filter(|n| !n.is_empty());
    let contracts = node.contracts.clone();
    web::block(move || contracts.decide_approval(&principal, &id, approve, note)).await??;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/holder"))
        .finish())
}

/// `GET /holder/audit/{id}`: who pulled what from one of the holder's datasets.
pub async fn audit(
    session: Session,
    node: web::Data<Node>,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let holder = session.require_holder()?.subject.clone();
    let id = id.into_inner();
    let worker = node.clone();
    let dataset = id.clone();
    let entries = web::block(move || {
        let owned = worker
            .catalog
            .record(&dataset)
            .map_err(UiError::from)?
            .is_some_and(|record| record.holder == holder);
        if !owned {
            return Err(UiError::not_found(format!(
                "You hold no dataset “{}” on this node.",
                dataset.chars().take(100).collect::<String>()
            )));
        }
        worker
            .audit
            .entries_for(&dataset)
            .map_err(|e| UiError::from(crate::http::error::ApiError::internal(e)))
    })
    .await??;
    let mut body = format!(
        "<p class=\"small\"><a href=\"/holder\">← Data holder space</a></p><h1>Audit trail of {}</h1><p>Every token issued and every release under the dataset's agreements, from the node's hash-chained log (<code>agora audit verify</code> checks it).</p>",
        escape(&id)
    );
    if entries.is_empty() {
        body.push_str("<p class=\"muted\">Nobody has pulled data from this dataset yet.</p>");
    } else {
        body.push_str("<div class=\"table-wrap\"><table id=\"audit\" class=\"stack\"><thead><tr><th scope=\"col\">#</th><th scope=\"col\">When</th><th scope=\"col\">Event</th><th scope=\"col\">Who</th><th scope=\"col\">Agreement</th><th scope=\"col\">Rows</th><th scope=\"col\">Bytes</th></tr></thead><tbody>");
        for entry in &entries {
            body.push_str(&format!(
                "<tr><td data-label=\"#\">{}</td><td data-label=\"When\">{}</td><td data-label=\"Event\">{}</td><td data-label=\"Who\">{}</td><td data-label=\"Agreement\"><code>{}</code></td><td data-label=\"Rows\">{}</td><td data-label=\"Bytes\">{}</td></tr>",
                entry.seq,
                escape(&entry.at),
                escape(&entry.event),
                escape(&entry.who),
                escape(&entry.agreement),
                entry.rows,
                entry.bytes
            ));
        }
        body.push_str("</tbody></table></div>");
    }
    Ok(page("Audit trail", "holder", &session, String::new(), body))
}
