//! Server-rendered HTML. For now the dataset page reached by content negotiation; the full web
//! UI of the three journeys comes on top of it.

use crate::catalog::DatasetSummary;
use crate::catalog::terms::DCAT_DATASET;
use oxigraph::model::vocab::rdf;
use oxigraph::model::{Graph, NamedOrBlankNodeRef, TermRef};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The dataset page: its metadata and links to every RDF serialisation.
pub fn dataset_page(id: &str, graph: &Graph) -> String {
    let dataset = graph
        .subject_for_predicate_object(rdf::TYPE, DCAT_DATASET)
        .and_then(|s| match s {
            NamedOrBlankNodeRef::NamedNode(n) => Some(n),
            NamedOrBlankNodeRef::BlankNode(_) => None,
        });
    let summary = dataset
        .map(|d| DatasetSummary::from_graph(graph, id, d, "local"))
        .unwrap_or_default();
    let list = |values: &[String]| {
        values
            .iter()
            .map(|v| {
                let label = graph
                    .object_for_subject_predicate(
                        NamedOrBlankNodeRef::NamedNode(
                            oxigraph::model::NamedNodeRef::new_unchecked(v),
                        ),
                        oxigraph::model::NamedNodeRef::new_unchecked(
                            "http://www.w3.org/2004/02/skos/core#prefLabel",
                        ),
                    )
                    .and_then(|l| match l {
                        TermRef::Literal(l) => Some(l.value().to_owned()),
                        _ => None,
                    })
                    .unwrap_or_else(|| v.clone());
                format!("<li><a href=\"{}\">{}</a></li>", escape(v), escape(&label))
            })
            .collect::<String>()
    };
    let id = escape(id);
    format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · agora</title>
<style>body{{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#111}}a{{color:#0645ad}}dt{{font-weight:600;margin-top:1rem}}</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p>{description}</p>
<dl>
<dt>Dataset IRI</dt><dd><a href="{iri}">{iri}</a></dd>
<dt>Publisher</dt><dd>{publisher}</dd>
<dt>Themes</dt><dd><ul>{themes}</ul></dd>
<dt>Formats</dt><dd><ul>{formats}</ul></dd>
<dt>Licences</dt><dd><ul>{licenses}</ul></dd>
<dt>Keywords</dt><dd>{keywords}</dd>
<dt>Last modified</dt><dd>{modified}</dd>
</dl>
<h2>Metadata</h2>
<ul>
<li><a href="/api/datasets/{id}?format=jsonld">JSON-LD</a></li>
<li><a href="/api/datasets/{id}?format=ttl">Turtle</a></li>
<li><a href="/api/datasets/{id}?format=nt">N-Triples</a></li>
<li><a href="/api/datasets/{id}?format=rdf">RDF/XML</a></li>
</ul>
</main>
</body>
</html>
"#,
        title = escape(&summary.title),
        description = escape(&summary.description),
        iri = escape(&summary.iri),
        publisher = escape(summary.publisher_label()),
        themes = list(&summary.themes),
        formats = list(&summary.formats),
        licenses = list(&summary.licenses),
        keywords = escape(&summary.keywords.join(", ")),
        modified = escape(&summary.modified),
    )
}
