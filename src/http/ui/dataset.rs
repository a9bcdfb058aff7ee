//! The dataset page (DCAT-AP metadata, distributions, origin, every RDF serialisation, the usage
//! policy in plain words), the access request with a stated purpose, and the negotiation page
//! that follows it live and, once agreed, shows how to read the data from Python.

use super::home::value_label;
use super::layout::{Page, escape, render, url_encode};
use super::session::Session;
use super::{UiError, form_pairs, page as framed};
use crate::catalog::DatasetSummary;
use crate::catalog::terms::DCAT_DATASET;
use crate::contract::{Event, NegotiationRequest, NegotiationState};
use crate::node::Node;
use crate::policy::{self, Policy};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use oxigraph::model::vocab::rdf;
use oxigraph::model::{Graph, NamedNodeRef, NamedOrBlankNodeRef, TermRef};

const DCAT: &str = "http://www.w3.org/ns/dcat#";
const DCT: &str = "http://purl.org/dc/terms/";
const ODRL_HAS_POLICY: &str = "http://www.w3.org/ns/odrl/2/hasPolicy";
const SKOS_PREF_LABEL: &str = "http://www.w3.org/2004/02/skos/core#prefLabel";

fn predicate(namespace: &str, local: &str) -> String {
    format!("{namespace}{local}")
}

fn objects(graph: &Graph, subject: NamedOrBlankNodeRef<'_>, p: &str) -> Vec<String> {
    let mut values: Vec<String> = graph
        .objects_for_subject_predicate(subject, NamedNodeRef::new_unchecked(p))
        .map(|o| match o {
            TermRef::NamedNode(n) => n.as_str().to_owned(),
            TermRef::Literal(l) => l.value().to_owned(),
            other => other.to_string(),
        })
        .collect();
    values.sort();
    values.dedup();
    values
}

/// The name the graph gives an IRI (the node's vocabularies' `skos:prefLabel`, or a title,
/// label or name the description states), else a short form of it.
fn label(graph: &Graph, iri: &str) -> String {
    const NAMING: [&str; 4] = [
        SKOS_PREF_LABEL,
        "http://purl.org/dc/terms/title",
        "http://www.w3.org/2000/01/rdf-schema#label",
        "http://xmlns.com/foaf/0.1/name",
    ];
    let subject = NamedOrBlankNodeRef::NamedNode(NamedNodeRef::new_unchecked(iri));
    NAMING
        .iter()
        .find_map(|p| {
            let literals: Vec<_> = graph
                .objects_for_subject_predicate(subject, NamedNodeRef::new_unchecked(p))
                .filter_map(|o| match o {
                    TermRef::Literal(l) => Some(l),
                    _ => None,
                })
                .collect();
            literals
                .iter()
                .find(|l| l.language().is_none_or(|lang| lang.starts_with("en")))
                .or(literals.first())
                .map(|l| l.value().to_owned())
        })
        .unwrap_or_else(|| value_label("theme", iri, ""))
}

fn link_list(graph: &Graph, values: &[String]) -> String {
    if values.is_empty() {
        return "<span class=\"muted\">not stated</span>".into();
    }
    values
        .iter()
        .map(|v| {
            if v.starts_with("http://") || v.starts_with("https://") {
                format!("<a href=\"{}\">{}</a>", escape(v), escape(&label(graph, v)))
            } else {
                escape(v)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The dataset's node in its graph.
fn dataset_node(graph: &Graph) -> Option<NamedNodeRef<'_>> {
    graph
        .subject_for_predicate_object(rdf::TYPE, DCAT_DATASET)
        .and_then(|s| match s {
            NamedOrBlankNodeRef::NamedNode(n) => Some(n),
            NamedOrBlankNodeRef::BlankNode(_) => None,
        })
}

/// The usage policies (`odrl:hasPolicy`) a dataset's graph carries, parsed.
fn usage_policies(graph: &Graph) -> Vec<Policy> {
    let Some(dataset) = dataset_node(graph) else {
        return Vec::new();
    };
    let uids = objects(graph, dataset.into(), ODRL_HAS_POLICY);
    let triples = graph.iter().map(|t| t.into_owned());
    match policy::policies_in_triples(triples) {
        Ok(policies) => policies
            .into_iter()
            .filter(|p| uids.iter().any(|u| u == p.uid.as_str()))
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "a stored policy does not parse");
            Vec::new()
        }
    }
}

/// The page body for a dataset; `actions` is what follows the policy (the request form).
fn dataset_body(node_id: &str, id: &str, graph: &Graph, actions: &str) -> (String, String) {
    let dataset = dataset_node(graph);
    let summary = dataset
        .map(|d| DatasetSummary::from_graph(graph, id, d, "local"))
        .unwrap_or_default();
    let subject: Option<NamedOrBlankNodeRef<'_>> = dataset.map(Into::into);
    let get =
        |p: &str| -> Vec<String> { subject.map(|s| objects(graph, s, p)).unwrap_or_default() };
    let mut body = String::new();
    body.push_str(&format!(
        "<p class=\"small\"><a href=\"/\">← Search</a></p><h1>{}</h1><p>{}</p>",
        escape(&summary.title),
        escape(&summary.description)
    ));
    body.push_str("<h2 id=\"policy\">Usage policy</h2>");
    let policies = usage_policies(graph);
    if policies.is_empty() {
        body.push_str(
            "<p>No usage policy is attached: ask the publisher before using the data.</p>",
        );
    }
    for policy in &policies {
        let words = policy::describe(policy);
        if let Some(title) = &words.title {
            body.push_str(&format!("<h3>{}</h3>", escape(title)));
        }
        if words.permissions.len() > 1 {
            body.push_str("<p class=\"small muted\">Access is granted under any one of these:</p>");
        }
        body.push_str("<ul class=\"policy\">");
        for line in words.lines() {
            body.push_str(&format!("<li>{}</li>", escape(&line)));
        }
        for prohibition in &words.prohibitions {
            body.push_str(&format!("<li>{}</li>", escape(&capitalised(prohibition))));
        }
        body.push_str("</ul>");
        body.push_str(&format!(
            "<p class=\"small muted\">ODRL policy <code>{}</code></p>",
            escape(policy.uid.as_str())
        ));
    }
    body.push_str(actions);
    let spatial = get(&predicate(DCT, "spatial"));
    let access = get(&predicate(DCT, "accessRights"));
    let periodicity = get(&predicate(DCT, "accrualPeriodicity"));
    body.push_str("<h2>About this dataset</h2><dl class=\"meta\">");
    let rows = [
        (
            "Dataset IRI",
            format!("<a href=\"{0}\">{0}</a>", escape(&summary.iri)),
        ),
        ("Publisher", escape(summary.publisher_label())),
        (
            "Origin node",
            escape(&value_label("origin", &summary.origin, node_id)),
        ),
        ("Themes", link_list(graph, &summary.themes)),
        (
            "Keywords",
            if summary.keywords.is_empty() {
                "<span class=\"muted\">none</span>".into()
            } else {
                summary
                    .keywords
                    .iter()
                    .map(|k| format!("<span class=\"tag\">{}</span>", escape(k)))
                    .collect()
            },
        ),
        ("Spatial coverage", link_list(graph, &spatial)),
        ("Access rights", link_list(graph, &access)),
        ("Update frequency", link_list(graph, &periodicity)),
        ("Formats", link_list(graph, &summary.formats)),
        ("Licences", link_list(graph, &summary.licenses)),
        ("Last modified", escape(&summary.modified)),
    ];
    for (name, value) in rows {
        body.push_str(&format!("<dt>{name}</dt><dd>{value}</dd>"));
    }
    body.push_str("</dl>");

    body.push_str("<h2>Distributions</h2>");
    let distributions = get(&predicate(DCAT, "distribution"));
    if distributions.is_empty() {
        body.push_str("<p class=\"muted\">No distribution is described.</p>");
    } else {
        body.push_str("<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Title</th><th scope=\"col\">Format</th><th scope=\"col\">Licence</th><th scope=\"col\">Access</th></tr></thead><tbody>");
        for distribution in &distributions {
            let node: NamedOrBlankNodeRef<'_> = if distribution.starts_with("_:") {
                continue;
            } else {
                NamedNodeRef::new_unchecked(distribution).into()
            };
            let title = objects(graph, node, &predicate(DCT, "title"));
            let format = objects(graph, node, &predicate(DCT, "format"));
            let licence = objects(graph, node, &predicate(DCT, "license"));
            let mut urls = objects(graph, node, &predicate(DCAT, "accessURL"));
            urls.extend(objects(graph, node, &predicate(DCAT, "downloadURL")));
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(title.first().map_or("—", String::as_str)),
                link_list(graph, &format),
                link_list(graph, &licence),
                urls.iter()
                    .map(|u| format!("<a href=\"{0}\">{0}</a>", escape(u)))
                    .collect::<Vec<_>>()
                    .join("<br>")
            ));
        }
        body.push_str("</tbody></table></div>");
    }

    let quoted = url_encode(id);
    body.push_str(&format!(
        "<h2>Metadata</h2><p>This description in RDF: \
         <a href=\"/api/datasets/{quoted}?format=jsonld\" type=\"application/ld+json\">JSON-LD</a> · \
         <a href=\"/api/datasets/{quoted}?format=ttl\" type=\"text/turtle\">Turtle</a> · \
         <a href=\"/api/datasets/{quoted}?format=nt\" type=\"application/n-triples\">N-Triples</a> · \
         <a href=\"/api/datasets/{quoted}?format=rdf\" type=\"application/rdf+xml\">RDF/XML</a></p>"
    ));

    (summary.title, body)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The dataset page as content negotiation at `/api/datasets/{id}` answers `text/html`: the same
/// page as `/datasets/{id}`, for an anonymous reader.
pub fn dataset_page(node_id: &str, id: &str, graph: &Graph) -> String {
    let session = Session::default();
    let actions = if negotiable(id, graph) {
        format!(
            "<p><a class=\"button\" href=\"/datasets/{}\">Request access</a></p>",
            escape(&url_encode(id))
        )
    } else {
        READ_ONLY.to_owned()
    };
    let (title, body) = dataset_body(node_id, id, graph, &actions);
    render(Page {
        title: &title,
        section: "search",
        session: &session,
        head: String::new(),
        body,
    })
}

/// Whether access to the dataset can be requested. A harvested dataset (`{peer}:{id}`: local
/// ids never contain `:`) without offers — a DCAT-AP portal's, read-only — has nothing to
/// negotiate: `POST /api/negotiations` answers 404 for it, so the page offers no request.
fn negotiable(id: &str, graph: &Graph) -> bool {
    !id.contains(':')
        || graph
            .triples_for_predicate(crate::catalog::AGORA_OFFER)
            .next()
            .is_some()
}

/// What a read-only dataset's page says instead of the access request.
const READ_ONLY: &str = "<h2 id=\"access\">Access</h2><p class=\"muted\" id=\"read-only\">Read-only: this dataset is harvested from a catalogue that publishes no offer for it (an open-data portal), so there is no access to request here. Its distributions above say where the portal publishes the data.</p>";

fn request_form(session: &Session, id: &str, error: Option<&str>, chosen: &str) -> String {
    let quoted = escape(&url_encode(id));
    let Some(principal) = &session.principal else {
        return format!(
            "<h2>Request access</h2><p><a class=\"button\" href=\"/sign-in?next=/datasets/{quoted}\">Sign in to request access</a></p>"
        );
    };
    let options: String = policy::known_purposes()
        .into_iter()
        .map(|(iri, label)| {
            format!(
                "<option value=\"{}\"{}>{}</option>",
                escape(&iri),
                if iri == chosen { " selected" } else { "" },
                escape(&capitalised(&label))
            )
        })
        .collect();
    let error_html = error
        .map(|e| {
            format!(
                "<p class=\"field-error\" id=\"purpose-error\" role=\"alert\">{}</p>",
                escape(e)
            )
        })
        .unwrap_or_default();
    let invalid = if error.is_some() {
        " aria-invalid=\"true\" aria-describedby=\"purpose-error\""
    } else {
        ""
    };
    format!(
        r#"<h2 id="request">Request access</h2>
<div class="card"><form method="post" action="/datasets/{quoted}/request">
{csrf}
<p class="small muted">As <strong>{who}</strong>: the node checks your token's claims (country, organisation type) and the purpose you state against the policy above.</p>
<label for="purpose">Purpose</label>
<select id="purpose" name="purpose"{invalid}><option value="">Choose a purpose…</option>{options}</select>
<label for="purpose_iri">…or another purpose, as an IRI</label>
<input type="text" id="purpose_iri" name="purpose_iri" placeholder="https://w3id.org/dpv#ScientificResearch" aria-describedby="purpose-help">
<p class="hint" id="purpose-help">Purposes come from the Data Privacy Vocabulary (DPV); a narrower purpose qualifies under a broader one the policy allows.</p>
{error_html}
<p><button type="submit">Request access</button></p>
</form></div>"#,
        csrf = session.csrf_field(),
        who = escape(&principal.subject),
    )
}

/// Reads the dataset's graph, or a 404 page when it does not exist or is hidden from this viewer.
async fn visible_graph(
    node: &web::Data<Node>,
    session: &Session,
    id: &str,
) -> Result<Graph, UiError> {
    let catalog = node.catalog.clone();
    let viewer = session.viewer();
    let id = id.to_owned();
    let graph = web::block(move || {
        if !catalog.is_visible(&id, &viewer)? {
            return Err(crate::catalog::CatalogError::NotFound { id });
        }
        catalog.describe(&id)
    })
    .await?;
    graph.map_err(|e| match e {
        crate::catalog::CatalogError::NotFound { id } => UiError::not_found(format!(
            "There is no dataset “{}” here, or it is not visible to you. Search the catalogue for it.",
            id.chars().take(100).collect::<String>()
        )),
        other => other.into(),
    })
}

/// `GET /datasets/{id}`.
pub async fn page_handler(
    session: Session,
    node: web::Data<Node>,
    id: String,
    error: Option<&str>,
    chosen: &str,
) -> Result<HttpResponse, UiError> {
    let graph = visible_graph(&node, &session, &id).await?;
    let actions = if negotiable(&id, &graph) {
        request_form(&session, &id, error, chosen)
    } else {
        READ_ONLY.to_owned()
    };
    let (title, body) = dataset_body(&node.id, &id, &graph, &actions);
    let status = if error.is_some() {
        actix_web::http::StatusCode::BAD_REQUEST
    } else {
        actix_web::http::StatusCode::OK
    };
    Ok(super::html(
        status,
        render(Page {
            title: &title,
            section: "search",
            session: &session,
            head: String::new(),
            body,
        }),
    ))
}

/// `GET /datasets/{id}`: the dataset page.
pub async fn page(
    session: Session,
    node: web::Data<Node>,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    page_handler(session, node, id.into_inner(), None, "").await
}

/// `POST /datasets/{id}/request`: negotiates with the stated purpose, then shows the
/// negotiation.
pub async fn request_access(
    session: Session,
    node: web::Data<Node>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, UiError> {
    let id = id.into_inner();
    let fields = form_pairs(&body)?;
    let principal = session
        .require("Requesting access needs to know who asks")?
        .clone();
    session.check_csrf(fields.get("csrf").map(String::as_str))?;
    let typed = fields.get("purpose_iri").map(|p| p.trim()).unwrap_or("");
    let chosen = fields.get("purpose").map(|p| p.trim()).unwrap_or("");
    let purpose = if typed.is_empty() { chosen } else { typed };
    if purpose.is_empty() {
        return page_handler(
            session,
            node,
            id,
            Some("State a purpose: choose one from the list or type its IRI."),
            "",
        )
        .await;
    }
    if purpose.chars().any(char::is_whitespace) || purpose.len() > 500 {
        return page_handler(
            session,
            node,
            id,
            Some("A purpose IRI has no spaces and is at most 500 characters, e.g. https://w3id.org/dpv#AcademicResearch."),
            chosen,
        )
        .await;
    }
    let contracts = node.contracts.clone();
    let request = NegotiationRequest {
        dataset: id.clone(),
        offer: None,
        purpose: Some(purpose.to_owned()),
        provider: None,
    };
    let outcome = web::block(move || contracts.negotiate(&principal, request)).await?;
    match outcome {
        Ok(record) => Ok(HttpResponse::SeeOther()
            .insert_header((
                header::LOCATION,
                format!("/negotiations/{}", url_encode(&record.id)),
            ))
            .finish()),
        Err(crate::contract::ContractError::BadMessage(message)) => {
            page_handler(session, node, id, Some(&message), chosen).await
        }
        Err(other) => Err(other.into()),
    }
}

fn events_table(events: &[Event]) -> String {
    let rows: String = events
        .iter()
        .map(|e| {
            format!(
                "<tr><td data-label=\"When\">{}</td><td data-label=\"State\">{}</td><td data-label=\"What\">{}</td></tr>",
                escape(&e.at),
                escape(&e.state),
                escape(&e.detail)
            )
        })
        .collect();
    format!(
        "<div class=\"table-wrap\"><table id=\"events\" class=\"stack\"><caption class=\"small muted\" style=\"text-align:left\">Events, oldest first</caption><thead><tr><th scope=\"col\">When</th><th scope=\"col\">State</th><th scope=\"col\">What</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
}

/// `GET /negotiations/{id}/status`: the state and the number of events, for the page's poll
/// (a UI route: it reads the session cookie, as the page does).
pub async fn negotiation_status(
    session: Session,
    node: web::Data<Node>,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let principal = session
        .require("A negotiation is shown to its parties")?
        .clone();
    let contracts = node.contracts.clone();
    let id = id.into_inner();
    let (state, events) = web::block(move || {
        let (record, _) = contracts.negotiation_view(&principal, &id)?;
        let events = contracts.negotiation_events(&principal, &id)?;
        Ok::<_, crate::contract::ContractError>((record.state, events.len()))
    })
    .await??;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "state": state.as_str(), "events": events })))
}

/// `GET /negotiations/{id}`: where a negotiation stands, refreshed every two seconds until it
/// ends; the refusal with its failed constraints; the agreement with a Python snippet.
pub async fn negotiation(
    session: Session,
    node: web::Data<Node>,
    id: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, UiError> {
    let principal = session
        .require("A negotiation is shown to its parties")?
        .clone();
    let contracts = node.contracts.clone();
    let id = id.into_inner();
    let (record, agreement, events) = web::block(move || {
        let (record, agreement) = contracts.negotiation_view(&principal, &id)?;
        let events = contracts.negotiation_events(&principal, &id)?;
        Ok::<_, crate::contract::ContractError>((record, agreement, events))
    })
    .await??;
    let state = record.state.as_str();
    let mut body = format!(
        "<p class=\"small\"><a href=\"/datasets/{}\">← Dataset {}</a></p><h1>Access request</h1>",
        escape(&url_encode(&record.dataset)),
        escape(&record.dataset)
    );
    body.push_str(&format!(
        "<div aria-live=\"polite\"><p>State: <span class=\"state {state}\" id=\"negotiation-state\">{state}</span> · purpose: {}</p>",
        record.purpose.as_deref().map_or_else(
            || "none stated".to_owned(),
            |p| format!(
                "{} <code class=\"small\">{}</code>",
                escape(&policy::purpose_label(p)),
                escape(p)
            )
        )
    ));
    let mut head = String::new();
    if let Some(waiting) = &record.waiting {
        body.push_str(&format!(
            "<div class=\"notice warn\" id=\"waiting\"><p><strong>Waiting.</strong> {}</p><p class=\"small\">This page refreshes by itself.</p></div>",
            escape(waiting)
        ));
    }
    if !record.state.is_final() {
        // With the page script, the status is polled and the page reloads only when it changes;
        // without it, the page refreshes itself.
        head.push_str(&format!(
            "<noscript><meta http-equiv=\"refresh\" content=\"2\"></noscript><script src=\"/ui/assets/ui.js\" defer></script><meta name=\"agora-poll\" content=\"/negotiations/{}/status\" data-state=\"{state}\" data-events=\"{}\">",
            escape(&url_encode(&record.id)),
            events.len()
        ));
    }
    if let Some(refusal) = &record.refusal {
        body.push_str(&format!(
            "<div class=\"notice bad\" role=\"alert\" id=\"refusal\"><p><strong>Refused</strong> by the {}: {}</p>",
            escape(&refusal.by),
            escape(&refusal.reason)
        ));
        if !refusal.failed_constraints.is_empty() {
            body.push_str(if refusal.failed_constraints.len() == 1 {
                "<p>The constraint that failed:</p><ul id=\"failed-constraints\">"
            } else {
                "<p>The constraints that failed:</p><ul id=\"failed-constraints\">"
            });
            for constraint in &refusal.failed_constraints {
                body.push_str(&format!("<li>{}</li>", escape(constraint)));
            }
            body.push_str("</ul>");
        }
        body.push_str(&format!(
            "<p><a href=\"/datasets/{}#request\">Request again with another purpose</a></p></div>",
            escape(&url_encode(&record.dataset))
        ));
    }
    if let (NegotiationState::Finalized, Some(agreement)) = (record.state, &agreement) {
        let base = node.config.public_url();
        let base = if base.contains("0.0.0.0") || base.is_empty() {
            let info = request.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        } else {
            base
        };
        let snippet = format!(
            "import agora_client\nimport agora_client.torch\n\nnode = agora_client.Node(\"{base}\", token)  # your participant token\nagreement = node.agreement(\"{id}\")\n\ntable = node.read(agreement)  # the enforced view, as a pyarrow.Table\n\n# or feed PyTorch, each rank its own part of every epoch\ndataset = agora_client.torch.AgoraIterableDataset(node, agreement)\n",
            id = agreement.id
        );
        body.push_str(&format!(
            "<div class=\"notice ok\" id=\"agreement\"><p><strong>Agreed.</strong> Agreement <code id=\"agreement-id\">{}</code>{}</p></div>\
             <h2>Read the data from Python</h2><pre class=\"snippet\" id=\"snippet\" tabindex=\"0\" aria-label=\"Python code\"><code>{}</code></pre>\
             <p><button type=\"button\" class=\"secondary\" data-copy=\"snippet\">Copy the snippet</button></p>\
             <script src=\"/ui/assets/ui.js\" defer></script>",
            escape(&agreement.id),
            agreement
                .expires
                .as_deref()
                .map(|e| format!(", valid until {}", escape(e)))
                .unwrap_or_default(),
            escape(&snippet)
        ));
    }
    body.push_str("</div><h2>What happened</h2>");
    body.push_str(&events_table(&events));
    Ok(framed("Access request", "search", &session, head, body))
}
