//! Home and search: the search box, the facets (theme, publisher, format, licence, origin node),
//! result counts and paging, and the three sector pools at a glance. The results come from
//! [`crate::catalog::Catalog::search`] with the signed-in person's viewer, so restricted datasets
//! show only to those their access policy admits.

use super::layout::{escape, url_encode};
use super::session::Session;
use super::{UiError, page};
use crate::catalog::{FACETS, SearchQuery, SearchResults};
use crate::node::Node;
use actix_web::{HttpRequest, HttpResponse, web};
use oxigraph::model::{NamedNodeRef, Term};
use std::collections::{BTreeMap, HashMap};

/// Results per page.
const PAGE_SIZE: usize = 10;

/// The sector pools: theme IRI, name, what it holds.
const SECTORS: [(&str, &str, &str); 3] = [
    (
        "http://publications.europa.eu/resource/authority/data-theme/HEAL",
        "Health",
        "Patient-level hospital records for secondary use under the EHDS.",
    ),
    (
        "http://publications.europa.eu/resource/authority/data-theme/TRAN",
        "Mobility",
        "Trips by public transport, shared bikes and scooters.",
    ),
    (
        "http://publications.europa.eu/resource/authority/data-theme/ENVI",
        "Climate",
        "Hourly observations of automatic weather stations.",
    ),
];

const FACET_LABELS: [(&str, &str); 5] = [
    ("theme", "Theme"),
    ("publisher", "Publisher"),
    ("format", "Format"),
    ("license", "Licence"),
    ("origin", "Origin node"),
];

/// The names the public store gives these IRIs (`foaf:name`, `skos:prefLabel`, `dct:title`,
/// `rdfs:label`; English first): facet values are IRIs, people read names.
fn names_of(catalog: &crate::catalog::Catalog, iris: &[String]) -> HashMap<String, String> {
    const NAMING: [&str; 4] = [
        "http://xmlns.com/foaf/0.1/name",
        "http://www.w3.org/2004/02/skos/core#prefLabel",
        "http://purl.org/dc/terms/title",
        "http://www.w3.org/2000/01/rdf-schema#label",
    ];
    let mut names = HashMap::new();
    for iri in iris {
        let Ok(subject) = NamedNodeRef::new(iri) else {
            continue;
        };
        'found: for predicate in NAMING {
            let mut fallback = None;
            for quad in catalog.store().quads_for_pattern(
                Some(subject.into()),
                Some(NamedNodeRef::new_unchecked(predicate)),
                None,
                None,
            ) {
                let Ok(quad) = quad else { continue };
                if let Term::Literal(literal) = quad.object {
                    if literal.language().is_none_or(|l| l.starts_with("en")) {
                        names.insert(iri.clone(), literal.value().to_owned());
                        break 'found;
                    }
                    fallback.get_or_insert(literal.value().to_owned());
                }
            }
            if let Some(name) = fallback {
                names.insert(iri.clone(), name);
                break;
            }
        }
    }
    names
}

/// A readable label for a facet value: the last segment of an authority-table IRI, the
/// publisher's name as indexed, or the origin node.
pub fn value_label(facet: &str, value: &str, node_id: &str) -> String {
    if facet == "origin" {
        return if value == "local" {
            format!("{node_id} (this node)")
        } else {
            value.to_owned()
        };
    }
    if let Some((_, name, _)) = SECTORS.iter().find(|(iri, _, _)| *iri == value) {
        return (*name).to_owned();
    }
    if value.starts_with("http://publications.europa.eu/resource/authority/") {
        let last = value.rsplit('/').next().unwrap_or(value);
        return last.replace('_', " ");
    }
    value.to_owned()
}

struct Params {
    q: String,
    filters: Vec<(String, String)>,
    offset: usize,
}

fn params(request: &HttpRequest) -> Result<Params, UiError> {
    let fields = super::form_pairs(request.query_string().as_bytes())?;
    let q: String = fields.get("q").cloned().unwrap_or_default();
    if q.len() > 1000 {
        return Err(UiError::bad_request(
            "The search text is longer than 1000 characters; shorten it.",
        ));
    }
    let offset = match fields.get("offset").map(|o| o.trim()) {
        None | Some("") => 0,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|o| *o <= 100_000)
            .ok_or_else(|| {
                UiError::bad_request("The page offset must be a whole number up to 100000.")
            })?,
    };
    let filters = FACETS
        .iter()
        .filter_map(|facet| {
            fields.get(*facet).filter(|v| !v.is_empty()).map(|v| {
                (
                    (*facet).to_owned(),
                    v.lines().next().unwrap_or("").to_owned(),
                )
            })
        })
        .collect();
    Ok(Params { q, filters, offset })
}

/// The link to a search with these parameters.
fn search_link(q: &str, filters: &[(String, String)], offset: usize) -> String {
    let mut parts = Vec::new();
    if !q.is_empty() {
        parts.push(format!("q={}", url_encode(q)));
    }
    for (facet, value) in filters {
        parts.push(format!("{facet}={}", url_encode(value)));
    }
    if offset > 0 {
        parts.push(format!("offset={offset}"));
    }
    if parts.is_empty() {
        "/".into()
    } else {
        format!("/?{}", parts.join("&"))
    }
}

/// `GET /`: the search page.
pub async fn index(
    session: Session,
    node: web::Data<Node>,
    request: HttpRequest,
) -> Result<HttpResponse, UiError> {
    let Params { q, filters, offset } = params(&request)?;
    let viewer = session.viewer();
    let catalog = node.catalog.clone();
    let query = SearchQuery {
        text: q.clone(),
        filters: filters.clone(),
        limit: PAGE_SIZE,
        offset,
    };
    let everything = SearchQuery {
        limit: 1,
        ..SearchQuery::default()
    };
    let (results, overall, names) = web::block(move || {
        let results = catalog.search(&query, &viewer)?;
        let overall = catalog.search(&everything, &viewer)?;
        let shown: Vec<String> = ["publisher", "format", "license"]
            .iter()
            .filter_map(|f| results.facets.get(*f))
            .flat_map(|values| values.keys().cloned())
            .collect();
        let names = names_of(&catalog, &shown);
        Ok::<_, crate::catalog::CatalogError>((results, overall, names))
    })
    .await??;
    let body = render_search(&node.id, &q, &filters, offset, &results, &overall, &names);
    Ok(page("Find data", "search", &session, String::new(), body))
}

fn render_search(
    node_id: &str,
    q: &str,
    filters: &[(String, String)],
    offset: usize,
    results: &SearchResults,
    overall: &SearchResults,
    names: &HashMap<String, String>,
) -> String {
    let mut body = String::new();
    body.push_str("<h1>Find data</h1>");
    let hidden: String = filters
        .iter()
        .map(|(f, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(f),
                escape(v)
            )
        })
        .collect();
    body.push_str(&format!(
        r#"<form class="search" role="search" method="get" action="/">
<label for="q" style="margin:0;align-self:center">Search the catalogue</label>
<input type="search" id="q" name="q" value="{}" placeholder="e.g. diabetes, trips, temperature">
{hidden}<button type="submit">Search</button></form>"#,
        escape(q)
    ));
    // The sector pools at a glance.
    let themes = overall.facets.get("theme");
    body.push_str("<section aria-labelledby=\"pools\"><h2 id=\"pools\">Sector pools</h2><div class=\"cards\">");
    for (iri, name, about) in SECTORS {
        let count = themes.and_then(|t| t.get(iri)).copied().unwrap_or(0);
        body.push_str(&format!(
            "<div class=\"card pool\"><h3><a href=\"{}\">{name}</a></h3><p class=\"count\">{count} <span class=\"muted small\">dataset{}</span></p><p class=\"small muted about\">{about}</p></div>",
            escape(&search_link("", &[("theme".into(), iri.into())], 0)),
            if count == 1 { "" } else { "s" }
        ));
    }
    body.push_str("</div></section>");

    body.push_str("<div class=\"layout\"><aside class=\"facets\" aria-labelledby=\"refine\"><h2 id=\"refine\" style=\"font-size:1.1rem;margin-top:0\">Refine</h2>");
    if !filters.is_empty() {
        body.push_str(&format!(
            "<p><a href=\"{}\">Clear all filters</a></p>",
            escape(&search_link(q, &[], 0))
        ));
    }
    let empty = BTreeMap::new();
    for (facet, label) in FACET_LABELS {
        let values = results.facets.get(facet).unwrap_or(&empty);
        body.push_str(&format!("<nav aria-label=\"{label}\"><h2>{label}</h2><ul>"));
        if values.is_empty() {
            body.push_str("<li class=\"muted\">none</li>");
        }
        let mut sorted: Vec<(&String, &u64)> = values.iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (value, count) in sorted.into_iter().take(12) {
            let active = filters.iter().any(|(f, v)| f == facet && v == value);
            let next: Vec<(String, String)> = if active {
                filters
                    .iter()
                    .filter(|(f, _)| f != facet)
                    .cloned()
                    .collect()
            } else {
                filters
                    .iter()
                    .filter(|(f, _)| f != facet)
                    .cloned()
                    .chain([(facet.to_owned(), value.clone())])
                    .collect()
            };
            body.push_str(&format!(
                "<li><a href=\"{}\"{}>{}{}</a> <span class=\"muted\">({count})</span></li>",
                escape(&search_link(q, &next, 0)),
                if active { " aria-current=\"true\"" } else { "" },
                if active { "✓ " } else { "" },
                escape(
                    &names
                        .get(value)
                        .cloned()
                        .unwrap_or_else(|| value_label(facet, value, node_id))
                ),
            ));
        }
        body.push_str("</ul></nav>");
    }
    body.push_str("</aside><section aria-labelledby=\"results-heading\">");
    let shown_to = (offset + results.items.len()).min(results.total);
    body.push_str(&format!(
        "<h2 id=\"results-heading\" style=\"margin-top:0\" aria-live=\"polite\"><span id=\"result-count\">{}</span> dataset{} found{}</h2>",
        results.total,
        if results.total == 1 { "" } else { "s" },
        if results.total > 0 {
            format!(
                " <span class=\"muted small\">· showing {}–{shown_to}</span> <a class=\"narrow-only small\" href=\"#refine\">Filters ↓</a>",
                offset + 1
            )
        } else {
            String::new()
        }
    ));
    if results.items.is_empty() {
        body.push_str("<p>No dataset matches. Try fewer words or clear a filter.</p>");
    }
    body.push_str("<ul class=\"results\">");
    for item in &results.items {
        let description: String = item.description.chars().take(280).collect();
        let more = if item.description.chars().count() > 280 {
            "…"
        } else {
            ""
        };
        let themes: String = item
            .themes
            .iter()
            .map(|t| {
                format!(
                    "<span class=\"tag\">{}</span>",
                    escape(&value_label("theme", t, node_id))
                )
            })
            .collect();
        body.push_str(&format!(
            "<li><h3><a href=\"/datasets/{}\">{}</a></h3><p class=\"small muted\">{} · origin: {}</p><p>{}{more}</p><p>{themes}</p></li>",
            escape(&url_encode(&item.id)),
            escape(&item.title),
            escape(&item.publisher),
            escape(&value_label("origin", &item.origin, node_id)),
            escape(&description),
        ));
    }
    body.push_str("</ul>");
    if results.total > PAGE_SIZE {
        body.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
        if offset > 0 {
            body.push_str(&format!(
                "<a rel=\"prev\" href=\"{}\">← Previous</a>",
                escape(&search_link(q, filters, offset.saturating_sub(PAGE_SIZE)))
            ));
        }
        body.push_str(&format!(
            "<span>Page {} of {}</span>",
            offset / PAGE_SIZE + 1,
            results.total.div_ceil(PAGE_SIZE)
        ));
        if offset + PAGE_SIZE < results.total {
            body.push_str(&format!(
                "<a rel=\"next\" href=\"{}\">Next →</a>",
                escape(&search_link(q, filters, offset + PAGE_SIZE))
            ));
        }
        body.push_str("</nav>");
    }
    body.push_str("</section></div>");
    body
}
