//! Serialising catalogue graphs: compacted JSON-LD against the node's fixed, versioned
//! `@context` (compaction by construction: keys are compact IRIs of the context's prefixes),
//! and Turtle, N-Triples and RDF/XML through Oxigraph's serialisers.

use oxigraph::io::{RdfFormat, RdfSerializer};
use oxigraph::model::vocab::{rdf, xsd};
use oxigraph::model::{Graph, NamedOrBlankNodeRef, TermRef};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The RDF serialisations the catalogue answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// `application/ld+json`, compacted with the node's context.
    JsonLd,
    /// `text/turtle`.
    Turtle,
    /// `application/n-triples`.
    NTriples,
    /// `application/rdf+xml`.
    RdfXml,
}

impl ExportFormat {
    /// Every format, in the server's order of preference.
    pub const ALL: [ExportFormat; 4] = [Self::JsonLd, Self::Turtle, Self::NTriples, Self::RdfXml];

    /// The media type answered in `Content-Type`.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::JsonLd => "application/ld+json",
            Self::Turtle => "text/turtle",
            Self::NTriples => "application/n-triples",
            Self::RdfXml => "application/rdf+xml",
        }
    }

    /// The short name used in `?format=` links.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::JsonLd => "jsonld",
            Self::Turtle => "ttl",
            Self::NTriples => "nt",
            Self::RdfXml => "rdf",
        }
    }

    /// Finds a format by media type or short name.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|f| f.media_type() == name || f.short_name() == name)
    }
}

/// The node's JSON-LD context: the prefixes of `ontologies/context-v1.jsonld`.
#[derive(Debug, Clone)]
pub struct JsonLdContext {
    document: Value,
    prefixes: Vec<(String, String)>,
}

impl JsonLdContext {
    /// Reads the prefix definitions out of a context document.
    pub fn from_document(source: &str) -> Result<Self, String> {
        let document: Value =
            serde_json::from_str(source).map_err(|e| format!("context-v1.jsonld: {e}"))?;
        let definitions = document
            .get("@context")
            .and_then(Value::as_object)
            .ok_or("context-v1.jsonld has no @context object")?;
        let mut prefixes: Vec<(String, String)> = definitions
            .iter()
            .filter(|(term, _)| !term.starts_with('@'))
            .filter_map(|(term, iri)| Some((term.clone(), iri.as_str()?.to_owned())))
            .collect();
        // Longest namespace first, so the most specific prefix wins.
        prefixes.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(Self {
            document: document["@context"].clone(),
            prefixes,
        })
    }

    /// The prefixes, for Turtle output.
    pub fn prefixes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.prefixes
            .iter()
            .map(|(p, iri)| (p.as_str(), iri.as_str()))
    }

    fn compact(&self, iri: &str) -> String {
        for (prefix, namespace) in &self.prefixes {
            if let Some(local) = iri.strip_prefix(namespace.as_str())
                && !local.is_empty()
                && !local.contains(['/', '#', '?', ':'])
            {
                return format!("{prefix}:{local}");
            }
        }
        iri.to_owned()
    }
}

/// Serialises `graph` in `format`.
pub fn serialize(graph: &Graph, format: ExportFormat, context: &JsonLdContext) -> Vec<u8> {
    match format {
        ExportFormat::JsonLd => {
            let document = to_compact_json_ld(graph, context);
            serde_json::to_vec(&document).unwrap_or_default()
        }
        ExportFormat::Turtle => write_with(graph, RdfFormat::Turtle, context),
        ExportFormat::NTriples => write_with(graph, RdfFormat::NTriples, context),
        ExportFormat::RdfXml => write_with(graph, RdfFormat::RdfXml, context),
    }
}

fn write_with(graph: &Graph, format: RdfFormat, context: &JsonLdContext) -> Vec<u8> {
    let mut serializer = RdfSerializer::from_format(format);
    if format != RdfFormat::NTriples {
        for (prefix, iri) in context.prefixes() {
            if let Ok(with_prefix) = serializer.clone().with_prefix(prefix, iri) {
                serializer = with_prefix;
            }
        }
    }
    let mut writer = serializer.for_writer(Vec::new());
    for triple in sorted_triples(graph) {
        // Writing to a Vec cannot fail for valid RDF terms.
        let _ = writer.serialize_triple(triple);
    }
    writer.finish().unwrap_or_default()
}

fn sorted_triples(graph: &Graph) -> Vec<oxigraph::model::TripleRef<'_>> {
    let mut triples: Vec<_> = graph.iter().collect();
    triples.sort_by_cached_key(|t| {
        (
            t.subject.to_string(),
            t.predicate.as_str().to_owned(),
            t.object.to_string(),
        )
    });
    triples
}

/// Builds the compacted JSON-LD document: named nodes at the top level, blank nodes embedded
/// where they are referenced exactly once.
pub fn to_compact_json_ld(graph: &Graph, context: &JsonLdContext) -> Value {
    let mut references: HashMap<String, usize> = HashMap::new();
    for triple in graph.iter() {
        if let TermRef::BlankNode(b) = triple.object {
            *references.entry(b.as_str().to_owned()).or_default() += 1;
        }
    }
    let mut subjects: BTreeMap<String, NamedOrBlankNodeRef<'_>> = BTreeMap::new();
    for triple in graph.iter() {
        subjects.insert(triple.subject.to_string(), triple.subject);
    }
    let mut emitted = HashSet::new();
    let mut nodes = Vec::new();
    let is_embedded = |s: &NamedOrBlankNodeRef<'_>| match s {
        NamedOrBlankNodeRef::BlankNode(b) => references.get(b.as_str()) == Some(&1),
        NamedOrBlankNodeRef::NamedNode(_) => false,
    };
    for subject in subjects.values() {
        if !is_embedded(subject) {
            nodes.push(node_object(
                graph,
                *subject,
                context,
                &references,
                &mut emitted,
                true,
            ));
        }
    }
    // Blank nodes referenced once but only from inside a cycle of such nodes.
    for subject in subjects.values() {
        if !emitted.contains(&subject.to_string()) {
            nodes.push(node_object(
                graph,
                *subject,
                context,
                &references,
                &mut emitted,
                true,
            ));
        }
    }
    json!({ "@context": context.document, "@graph": nodes })
}

fn node_object(
    graph: &Graph,
    subject: NamedOrBlankNodeRef<'_>,
    context: &JsonLdContext,
    references: &HashMap<String, usize>,
    emitted: &mut HashSet<String>,
    with_id: bool,
) -> Value {
    emitted.insert(subject.to_string());
    let mut object = Map::new();
    if with_id {
        object.insert("@id".into(), json!(subject_id(subject)));
    }
    let mut properties: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut types = Vec::new();
    let mut triples: Vec<_> = graph.triples_for_subject(subject).collect();
    triples.sort_by_cached_key(|t| (t.predicate.as_str().to_owned(), t.object.to_string()));
    for triple in triples {
        if triple.predicate == rdf::TYPE
            && let TermRef::NamedNode(class) = triple.object
        {
            types.push(json!(context.compact(class.as_str())));
            continue;
        }
        let value = match triple.object {
            TermRef::NamedNode(n) => json!({ "@id": n.as_str() }),
            TermRef::BlankNode(b) => {
                if references.get(b.as_str()) == Some(&1) && !emitted.contains(&b.to_string()) {
                    node_object(graph, b.into(), context, references, emitted, false)
                } else {
                    json!({ "@id": format!("_:{}", b.as_str()) })
                }
            }
            TermRef::Literal(l) => {
                if let Some(language) = l.language() {
                    json!({ "@value": l.value(), "@language": language })
                } else if l.datatype() == xsd::STRING {
                    json!(l.value())
                } else {
                    json!({ "@value": l.value(), "@type": context.compact(l.datatype().as_str()) })
                }
            }
            #[allow(unreachable_patterns)]
            _ => continue,
        };
        properties
            .entry(context.compact(triple.predicate.as_str()))
            .or_default()
            .push(value);
    }
    match types.len() {
        0 => {}
        1 => {
            object.insert("@type".into(), types.remove(0));
        }
        _ => {
            object.insert("@type".into(), Value::Array(types));
        }
    }
    for (key, mut values) in properties {
        let value = if values.len() == 1 {
            values.remove(0)
        } else {
            Value::Array(values)
        };
        object.insert(key, value);
    }
    Value::Object(object)
}

fn subject_id(subject: NamedOrBlankNodeRef<'_>) -> String {
    match subject {
        NamedOrBlankNodeRef::NamedNode(n) => n.as_str().to_owned(),
        NamedOrBlankNodeRef::BlankNode(b) => format!("_:{}", b.as_str()),
    }
}
