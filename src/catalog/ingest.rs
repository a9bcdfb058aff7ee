//! Turning an untrusted request body into one dataset graph, behind the guards of
//! `SECURITY.md` §1–2: the body is capped, must be UTF-8, JSON nesting is bounded before the
//! JSON-LD parser (which recurses per level) sees it, remote `@context`s are never fetched, and
//! RDF/XML is not accepted for upload at all (its entity expansion is unbounded).

use super::CatalogError;
use oxigraph::io::{JsonLdProfileSet, LoadedDocument, RdfFormat, RdfParser};
use oxigraph::model::{Graph, GraphName, Triple};

/// The syntaxes a data holder may upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadSyntax {
    /// `application/ld+json`.
    JsonLd,
    /// `text/turtle`.
    Turtle,
    /// `application/n-triples`.
    NTriples,
}

impl UploadSyntax {
    /// Maps a `Content-Type` (parameters ignored) to a syntax, or explains what is accepted.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, CatalogError> {
        let essence = content_type
            .and_then(|ct| ct.split(';').next())
            .map(|ct| ct.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("application/ld+json") | Some("application/json") => Ok(Self::JsonLd),
            Some("text/turtle") => Ok(Self::Turtle),
            Some("application/n-triples") => Ok(Self::NTriples),
            other => Err(CatalogError::UnsupportedMediaType {
                found: other.unwrap_or("none").chars().take(100).collect(),
            }),
        }
    }

    fn format(self) -> RdfFormat {
        match self {
            Self::JsonLd => RdfFormat::JsonLd {
                profile: JsonLdProfileSet::empty(),
            },
            Self::Turtle => RdfFormat::Turtle,
            Self::NTriples => RdfFormat::NTriples,
        }
    }
}

/// Caps applied while reading a description.
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    /// Largest body, in bytes.
    pub max_bytes: usize,
    /// Deepest JSON nesting.
    pub max_json_depth: usize,
    /// Most triples.
    pub max_triples: usize,
}

/// A JSON-LD context the node resolves from its own copy instead of the network.
#[derive(Debug, Clone)]
pub struct KnownContext {
    /// The URL documents refer to.
    pub url: &'static str,
    /// The context document.
    pub document: &'static str,
}

/// Parses `body` into a graph, resolving relative IRIs against `base_iri`.
pub fn parse_description(
    body: &[u8],
    syntax: UploadSyntax,
    base_iri: &str,
    limits: IngestLimits,
    contexts: &'static [KnownContext],
) -> Result<Graph, CatalogError> {
    if body.len() > limits.max_bytes {
        return Err(CatalogError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| CatalogError::Syntax {
        message: format!(
            "the body is not valid UTF-8 (first bad byte at offset {})",
            e.valid_up_to()
        ),
    })?;
    if syntax == UploadSyntax::JsonLd {
        check_json_depth(text, limits.max_json_depth)?;
    }
    let parser = RdfParser::from_format(syntax.format())
        .with_base_iri(base_iri)
        .map_err(|e| CatalogError::Internal(format!("invalid base IRI {base_iri}: {e}")))?
        .without_named_graphs();
    let quads = parser.for_slice(text).with_document_loader(move |url| {
        contexts
            .iter()
            .find(|known| known.url == url)
            .map(|known| LoadedDocument {
                url: known.url.to_owned(),
                content: known.document.as_bytes().to_vec(),
                format: RdfFormat::JsonLd {
                    profile: JsonLdProfileSet::empty(),
                },
            })
            .ok_or_else(|| {
                let allowed: Vec<&str> = contexts.iter().map(|c| c.url).collect();
                format!(
                    "remote contexts are never fetched; inline the context or use one the node knows: {}",
                    allowed.join(", ")
                )
                .into()
            })
    });
    let mut graph = Graph::new();
    for quad in quads {
        let quad = quad.map_err(|e| CatalogError::Syntax {
            message: e.to_string(),
        })?;
        if quad.graph_name != GraphName::DefaultGraph {
            return Err(CatalogError::Syntax {
                message: "a dataset description is one graph; named graphs are not accepted".into(),
            });
        }
        graph.insert(&Triple::from(quad));
        if graph.len() > limits.max_triples {
            return Err(CatalogError::TooManyTriples {
                limit: limits.max_triples,
            });
        }
    }
    Ok(graph)
}

/// Refuses JSON nested deeper than `max_depth` without building anything: a linear scan that
/// tracks strings and escapes, so brackets inside strings do not count.
pub fn check_json_depth(text: &str, max_depth: usize) -> Result<(), CatalogError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(CatalogError::TooDeep { limit: max_depth });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_only_structure() {
        assert!(check_json_depth(r#"{"a":"[[[[[[[[[[","b":[{"c":1}]}"#, 3).is_ok());
        assert!(matches!(
            check_json_depth(&"[".repeat(65), 64),
            Err(CatalogError::TooDeep { limit: 64 })
        ));
        assert!(check_json_depth(r#"{"a":"\"[[[[","b":1}"#, 1).is_ok());
    }

    #[test]
    fn content_types_map_or_explain() {
        assert_eq!(
            UploadSyntax::from_content_type(Some("text/turtle; charset=utf-8")).ok(),
            Some(UploadSyntax::Turtle)
        );
        assert!(matches!(
            UploadSyntax::from_content_type(Some("application/rdf+xml")),
            Err(CatalogError::UnsupportedMediaType { .. })
        ));
    }
}
