//! The SPARQL editor: a form over the public SPARQL endpoint with example queries over the
//! catalogue, the results as a table and downloads in CSV and JSON (links to `/sparql`, which
//! answers them). With the npm bundle (`ui/dist/editor.js`) the textarea becomes a CodeMirror 6
//! editor with SPARQL highlighting; without it the textarea works the same way.

use super::layout::{escape, url_encode};
use super::session::Session;
use super::{UiError, bundle_present, form_pairs, html};
use crate::catalog::sparql::{FormatChoice, QueryRequest, ResultFormat};
use crate::http::error::ApiError;
use crate::node::Node;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value as Json;

/// Example queries over the catalogue: (title, query).
const EXAMPLES: [(&str, &str); 4] = [
    (
        "Datasets and their titles",
        "PREFIX dcat: <http://www.w3.org/ns/dcat#>\nPREFIX dct: <http://purl.org/dc/terms/>\n\nSELECT ?dataset ?title WHERE {\n  ?dataset a dcat:Dataset ;\n           dct:title ?title .\n}\nORDER BY ?title\nLIMIT 100",
    ),
    (
        "Datasets per theme",
        "PREFIX dcat: <http://www.w3.org/ns/dcat#>\n\nSELECT ?theme (COUNT(DISTINCT ?dataset) AS ?datasets) WHERE {\n  ?dataset a dcat:Dataset ;\n           dcat:theme ?theme .\n}\nGROUP BY ?theme\nORDER BY DESC(?datasets)",
    ),
    (
        "Publishers",
        "PREFIX dct: <http://purl.org/dc/terms/>\nPREFIX foaf: <http://xmlns.com/foaf/0.1/>\n\nSELECT DISTINCT ?publisher ?name WHERE {\n  ?dataset dct:publisher ?publisher .\n  OPTIONAL { ?publisher foaf:name ?name }\n}\nORDER BY ?name",
    ),
    (
        "Distributions and formats",
        "PREFIX dcat: <http://www.w3.org/ns/dcat#>\nPREFIX dct: <http://purl.org/dc/terms/>\n\nSELECT ?dataset ?distribution ?format ?licence WHERE {\n  ?dataset dcat:distribution ?distribution .\n  OPTIONAL { ?distribution dct:format ?format }\n  OPTIONAL { ?distribution dct:license ?licence }\n}\nLIMIT 100",
    ),
];

/// Rows shown in the table (the downloads carry everything).
const MAX_ROWS: usize = 500;

fn term_cell(term: &Json) -> String {
    let value = term.get("value").and_then(Json::as_str).unwrap_or("");
    match term.get("type").and_then(Json::as_str) {
        Some("uri") => format!("<a href=\"{0}\">{0}</a>", escape(value)),
        Some("bnode") => format!("_:{}", escape(value)),
        _ => {
            let suffix = term
                .get("xml:lang")
                .and_then(Json::as_str)
                .map(|l| format!(" <span class=\"muted small\">@{}</span>", escape(l)))
                .unwrap_or_default();
            format!("{}{suffix}", escape(value))
        }
    }
}

/// Renders a SPARQL JSON results document as a table (or an ASK answer).
fn results_html(body: &[u8]) -> Result<String, String> {
    let json: Json =
        serde_json::from_slice(body).map_err(|e| format!("unreadable results: {e}"))?;
    if let Some(answer) = json.get("boolean").and_then(Json::as_bool) {
        return Ok(format!(
            "<p id=\"ask-answer\">The answer is <strong>{}</strong>.</p>",
            if answer { "yes (true)" } else { "no (false)" }
        ));
    }
    let vars: Vec<&str> = json
        .pointer("/head/vars")
        .and_then(Json::as_array)
        .map(|v| v.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let rows = json
        .pointer("/results/bindings")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = format!(
        "<p id=\"row-count\" aria-live=\"polite\">{} row{}{}</p><div class=\"table-wrap\"><table id=\"results\"><thead><tr>",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        if rows.len() > MAX_ROWS {
            format!(" (the first {MAX_ROWS} shown; download for all)")
        } else {
            String::new()
        }
    );
    for var in &vars {
        out.push_str(&format!("<th scope=\"col\">{}</th>", escape(var)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows.iter().take(MAX_ROWS) {
        out.push_str("<tr>");
        for var in &vars {
            out.push_str(&format!(
                "<td>{}</td>",
                row.get(*var).map(term_cell).unwrap_or_default()
            ));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    Ok(out)
}

/// `GET /sparql-editor?query=`: the editor, and the results when a query is given.
pub async fn page(
    session: Session,
    node: web::Data<Node>,
    request: HttpRequest,
) -> Result<HttpResponse, UiError> {
    let fields = form_pairs(request.query_string().as_bytes())?;
    let query = fields.get("query").cloned().unwrap_or_default();
    if query.len() > 64 * 1024 {
        return Err(UiError::bad_request(
            "The query is longer than 64 KiB; shorten it.",
        ));
    }
    let mut status = StatusCode::OK;
    let mut results = String::new();
    if !query.trim().is_empty() {
        let answer = node
            .sparql
            .execute_federated(
                QueryRequest {
                    query: query.clone(),
                    default_graphs: Vec::new(),
                    named_graphs: Vec::new(),
                    formats: FormatChoice {
                        solutions: ResultFormat::Json,
                        graph: ResultFormat::Turtle,
                    },
                    base_iri: format!("{}/sparql", node.config.public_url()),
                },
                crate::http::sparql::service_access(&node),
            )
            .await;
        match answer {
            Ok(answer) if answer.media_type.contains("sparql-results+json") => {
                let encoded = url_encode(&query);
                let table = results_html(&answer.body)
                    .unwrap_or_else(|e| format!("<p class=\"notice bad\">{}</p>", escape(&e)));
                results = format!(
                    "<section aria-labelledby=\"results-heading\"><h2 id=\"results-heading\">Results</h2>\
                     <p class=\"row\">Download: <a class=\"button secondary\" id=\"download-csv\" download=\"results.csv\" href=\"/sparql?query={encoded}&amp;format=csv\">CSV</a> \
                     <a class=\"button secondary\" id=\"download-json\" download=\"results.json\" href=\"/sparql?query={encoded}&amp;format=json\">JSON</a></p>{table}</section>"
                );
            }
            Ok(answer) => {
                let text = String::from_utf8_lossy(&answer.body);
                let encoded = url_encode(&query);
                results = format!(
                    "<section aria-labelledby=\"results-heading\"><h2 id=\"results-heading\">Results</h2>\
                     <p class=\"row\">Download: <a class=\"button secondary\" download=\"results.ttl\" href=\"/sparql?query={encoded}&amp;format=ttl\">Turtle</a> \
                     <a class=\"button secondary\" download=\"results.jsonld\" href=\"/sparql?query={encoded}&amp;format=jsonld\">JSON-LD</a></p>\
                     <pre class=\"snippet\" tabindex=\"0\">{}</pre></section>",
                    escape(&text.chars().take(200_000).collect::<String>())
                );
            }
            Err(error) => {
                let problem = ApiError::from(error).problem();
                status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
                results = format!(
                    "<div class=\"notice bad\" role=\"alert\" id=\"query-error\"><p><strong>{}.</strong> {}</p></div>",
                    escape(&problem.title),
                    escape(&problem.detail)
                );
            }
        }
    }
    let shown = if query.trim().is_empty() {
        EXAMPLES[0].1.to_owned()
    } else {
        query.clone()
    };
    let examples: String = EXAMPLES
        .iter()
        .map(|(title, text)| {
            format!(
                "<li><a href=\"/sparql-editor?query={}\" data-example=\"{}\">{}</a></li>",
                escape(&url_encode(text)),
                escape(text),
                escape(title)
            )
        })
        .collect();
    let script = if bundle_present() {
        "<script src=\"/ui/assets/editor.js\" defer></script>"
    } else {
        ""
    };
    let body = format!(
        r#"<h1>SPARQL</h1>
<p>Query the public catalogue graphs with SPARQL 1.1. The protocol endpoint for programs is <code>/sparql</code>.</p>
<div class="layout">
<aside><h2 style="margin-top:0;font-size:1.05rem">Examples</h2><ul>{examples}</ul></aside>
<div>
<form method="get" action="/sparql-editor" id="sparql-form">
<label for="query">Query</label>
<textarea id="query" name="query" class="code" rows="12" spellcheck="false" aria-describedby="query-help">{query}</textarea>
<p class="hint" id="query-help">Ctrl+Enter runs the query. In the editor, press Escape then Tab to move on to the next control.</p>
<p><button type="submit">Run query</button></p>
</form>
{results}
</div></div>"#,
        query = escape(&shown),
    );
    Ok(html(
        status,
        super::layout::render(super::layout::Page {
            title: "SPARQL",
            section: "sparql",
            session: &session,
            head: script.to_owned(),
            body,
        }),
    ))
}
