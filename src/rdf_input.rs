//! Reading untrusted RDF documents, behind the guards of `SECURITY.md` §1–2, for every part of
//! the node that accepts RDF (dataset descriptions, policies, operator loads): the body is
//! capped and must be UTF-8; JSON nesting is bounded before the JSON-LD parser (which recurses
//! per level) sees it; remote `@context`s are never fetched, only the contexts the node carries
//! in `ontologies/` are resolved; RDF/XML is not a syntax here at all (its entity expansion is
//! unbounded); named graphs are refused; triples are capped.

use oxigraph::io::{JsonLdProfileSet, LoadedDocument, RdfFormat, RdfParser};
use oxigraph::model::{GraphName, Triple};

/// The URL under which the node's own JSON-LD context is known.
pub const AGORA_CONTEXT_URL: &str = "https://w3id.org/agora/context/v1.jsonld";
/// The ODRL 2.2 context URL policies refer to.
pub const ODRL_CONTEXT_URL: &str = "http://www.w3.org/ns/odrl.jsonld";

/// The node's JSON-LD context document.
pub const AGORA_CONTEXT: &str = include_str!("../ontologies/context-v1.jsonld");
/// The node's copy of the ODRL 2.2 JSON-LD context.
pub const ODRL_CONTEXT: &str = include_str!("../ontologies/odrl-context.jsonld");

/// Context URLs resolved from the node's own copies; nothing else is ever loaded.
const KNOWN_CONTEXTS: [(&str, &str); 3] = [
    (AGORA_CONTEXT_URL, AGORA_CONTEXT),
    (ODRL_CONTEXT_URL, ODRL_CONTEXT),
    ("https://www.w3.org/ns/odrl.jsonld", ODRL_CONTEXT),
];

/// The RDF syntaxes the node reads from callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdfSyntax {
    /// `application/ld+json`.
    JsonLd,
    /// `text/turtle`.
    Turtle,
    /// `application/n-triples`.
    NTriples,
}

impl RdfSyntax {
    /// The media types accepted, for error messages.
    pub const ACCEPTED: &'static str = "application/ld+json, text/turtle or application/n-triples";

    /// Maps a `Content-Type` (parameters ignored) to a syntax.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/ld+json" | "application/json" | "application/odrl+json" => {
                Some(Self::JsonLd)
            }
            "text/turtle" => Some(Self::Turtle),
            "application/n-triples" => Some(Self::NTriples),
            _ => None,
        }
    }

    /// Maps a file extension to a syntax.
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension {
            "jsonld" | "json" => Some(Self::JsonLd),
            "ttl" => Some(Self::Turtle),
            "nt" => Some(Self::NTriples),
            _ => None,
        }
    }

    /// The media type to send a document of this syntax with.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::JsonLd => "application/ld+json",
            Self::Turtle => "text/turtle",
            Self::NTriples => "application/n-triples",
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

/// Caps applied while reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// Largest body, in bytes.
    pub max_bytes: usize,
    /// Deepest JSON nesting (at most 64 keeps oxjsonld far from the stack's end).
    pub max_json_depth: usize,
    /// Most triples.
    pub max_triples: usize,
}

/// Why a document was refused; always the sender's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Larger than `max_bytes`.
    #[error("the document is larger than {limit} bytes")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// JSON nested deeper than `max_json_depth`.
    #[error("the JSON is nested deeper than {limit} levels")]
    TooDeep {
        /// The cap.
        limit: usize,
    },
    /// More than `max_triples` triples.
    #[error("the document has more than {limit} triples")]
    TooManyTriples {
        /// The cap.
        limit: usize,
    },
    /// Not UTF-8, not well-formed, a remote context, or named graphs.
    #[error("the document does not parse: {message}")]
    Syntax {
        /// What is wrong, with position.
        message: String,
    },
}

/// Reads the triples of `body`, resolving relative IRIs against `base_iri`.
pub fn read_triples(
    body: &[u8],
    syntax: RdfSyntax,
    base_iri: Option<&str>,
    limits: InputLimits,
) -> Result<Vec<Triple>, InputError> {
    if body.len() > limits.max_bytes {
        return Err(InputError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| InputError::Syntax {
        message: format!(
            "the body is not valid UTF-8 (first bad byte at offset {})",
            e.valid_up_to()
        ),
    })?;
    if syntax == RdfSyntax::JsonLd {
        check_json_depth(text, limits.max_json_depth)?;
    }
    let mut parser = RdfParser::from_format(syntax.format()).without_named_graphs();
    if let Some(base) = base_iri {
        parser = parser.with_base_iri(base).map_err(|e| InputError::Syntax {
            message: format!("invalid base IRI {base}: {e}"),
        })?;
    }
    let quads = parser.for_slice(text).with_document_loader(|url| {
        KNOWN_CONTEXTS
            .iter()
            .find(|(known, _)| *known == url)
            .map(|(known, document)| LoadedDocument {
                url: (*known).to_owned(),
                content: document.as_bytes().to_vec(),
                format: RdfFormat::JsonLd {
                    profile: JsonLdProfileSet::empty(),
                },
            })
            .ok_or_else(|| {
                format!(
                    "remote contexts are never fetched; inline the context or use one the node knows: {AGORA_CONTEXT_URL}, {ODRL_CONTEXT_URL}"
                )
                .into()
            })
    });
    let mut triples = Vec::new();
    for quad in quads {
        let quad = quad.map_err(|e| InputError::Syntax {
            message: e.to_string(),
        })?;
        if quad.graph_name != GraphName::DefaultGraph {
            return Err(InputError::Syntax {
                message: "the document must be one graph; named graphs are not accepted".into(),
            });
        }
        triples.push(Triple::from(quad));
        if triples.len() > limits.max_triples {
            return Err(InputError::TooManyTriples {
                limit: limits.max_triples,
            });
        }
    }
    Ok(triples)
}

/// Refuses JSON nested deeper than `max_depth` without building anything: a linear scan that
/// tracks strings and escapes, so brackets inside strings do not count.
pub fn check_json_depth(text: &str, max_depth: usize) -> Result<(), InputError> {
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
                    return Err(InputError::TooDeep { limit: max_depth });
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

    const LIMITS: InputLimits = InputLimits {
        max_bytes: 1 << 20,
        max_json_depth: 64,
        max_triples: 100,
    };

    #[test]
    fn depth_counts_only_structure() {
        assert!(check_json_depth(r#"{"a":"[[[[[[[[[[","b":[{"c":1}]}"#, 3).is_ok());
        assert_eq!(
            check_json_depth(&"[".repeat(65), 64),
            Err(InputError::TooDeep { limit: 64 })
        );
        assert!(check_json_depth(r#"{"a":"\"[[[[","b":1}"#, 1).is_ok());
    }

    #[test]
    fn content_types_and_extensions_map_to_syntaxes() {
        assert_eq!(
            RdfSyntax::from_content_type("text/turtle; charset=utf-8"),
            Some(RdfSyntax::Turtle)
        );
        assert_eq!(RdfSyntax::from_content_type("application/rdf+xml"), None);
        assert_eq!(RdfSyntax::from_extension("jsonld"), Some(RdfSyntax::JsonLd));
    }

    #[test]
    fn only_known_contexts_resolve() {
        let known = br#"{"@context": "http://www.w3.org/ns/odrl.jsonld", "@id": "urn:p", "@type": "Offer"}"#;
        assert_eq!(
            read_triples(known, RdfSyntax::JsonLd, None, LIMITS).map(|t| t.len()),
            Ok(1)
        );
        let remote = br#"{"@context": "http://127.0.0.1:9/c.jsonld", "@id": "urn:p"}"#;
        assert!(matches!(
            read_triples(remote, RdfSyntax::JsonLd, None, LIMITS),
            Err(InputError::Syntax { message }) if message.contains("never fetched")
        ));
    }

    #[test]
    fn caps_hold() {
        let many: String = (0..101)
            .map(|i| format!("<urn:s{i}> <urn:p> <urn:o> .\n"))
            .collect();
        assert_eq!(
            read_triples(many.as_bytes(), RdfSyntax::NTriples, None, LIMITS),
            Err(InputError::TooManyTriples { limit: 100 })
        );
        let named = b"<urn:s> <urn:p> <urn:o> <urn:g> .";
        assert!(read_triples(named, RdfSyntax::NTriples, None, LIMITS).is_err());
    }
}
