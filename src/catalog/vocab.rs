//! The EU controlled vocabularies the node knows (`ontologies/vocabularies.ttl`). Data holders
//! write plain IRIs; the node adds what the shapes need about them (types, scheme, label) so
//! that every export validates on its own.

use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::{Graph, NamedNode, NamedOrBlankNodeRef, TermRef, Triple};
use std::collections::HashSet;

/// Parses the vocabulary file.
pub fn load(source: &str) -> Result<Graph, String> {
    let mut graph = Graph::new();
    for quad in RdfParser::from_format(RdfFormat::Turtle).for_slice(source) {
        let quad = quad.map_err(|e| format!("vocabularies.ttl: {e}"))?;
        graph.insert(&Triple::from(quad));
    }
    Ok(graph)
}

/// Copies into `graph` what the vocabularies say about every IRI it refers to, transitively
/// (a concept brings its scheme).
pub fn enrich(graph: &mut Graph, vocabularies: &Graph) {
    let mut pending: Vec<NamedNode> = graph
        .iter()
        .filter_map(|t| match t.object {
            TermRef::NamedNode(n) => Some(n.into_owned()),
            _ => None,
        })
        .collect();
    let mut seen = HashSet::new();
    while let Some(iri) = pending.pop() {
        if !seen.insert(iri.clone()) {
            continue;
        }
        let subject = NamedOrBlankNodeRef::NamedNode(iri.as_ref());
        let known: Vec<Triple> = vocabularies
            .triples_for_subject(subject)
            .map(|t| t.into_owned())
            .collect();
        for triple in known {
            if let oxigraph::model::Term::NamedNode(next) = &triple.object {
                pending.push(next.clone());
            }
            graph.insert(&triple);
        }
    }
}
