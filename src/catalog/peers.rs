//! Harvested catalogues of federation peers. Each peer's catalogue lives in one named graph of
//! the public store, `urn:agora:peer:{peer}`, replaced as a whole by each successful harvest
//! (one transaction), so a peer can only ever touch its own graph and readers never see half
//! a harvest. A harvest listing a dataset IRI that the node or another peer already holds is
//! refused as a whole (first holder wins): a peer cannot take over another node's datasets. The graph names itself as the subject of its provenance: the peer's id
//! (`agora:origin`), its base URL (`prov:wasDerivedFrom`), its participant id and the harvest
//! time (`prov:generatedAtTime`), and lists its datasets (`dcat:dataset`). Search indexes each
//! harvested dataset under `{peer}:{id}` with the peer as its origin; SPARQL sees the graph
//! like any other (the public checkpoints copy the whole public store).

use super::model::DatasetSummary;
use super::{Catalog, CatalogError, Result, terms::*};
use oxigraph::model::vocab::rdf;
use oxigraph::model::{
    Graph, GraphNameRef, NamedNode, NamedNodeRef, NamedOrBlankNodeRef, Term, TermRef,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

/// Prefix of the peers' graph names.
pub const PEER_GRAPH_PREFIX: &str = "urn:agora:peer:";

/// `prov:wasDerivedFrom`: the peer's base URL, on the peer graph.
pub const PROV_WAS_DERIVED_FROM: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://www.w3.org/ns/prov#wasDerivedFrom");
/// `prov:generatedAtTime`: when the peer graph was harvested.
pub const PROV_GENERATED_AT_TIME: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://www.w3.org/ns/prov#generatedAtTime");
/// `agora:participant`: the peer's participant id (DSP `participantId`).
pub const AGORA_PARTICIPANT: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("https://w3id.org/agora/ns#participant");
/// `agora:offer`: one offer of a harvested dataset, the DSP JSON exactly as its origin sent
/// it (`rdf:JSON`).
pub const AGORA_OFFER: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("https://w3id.org/agora/ns#offer");

/// `dcat:Catalog`: the type of a peer graph's own node.
pub const DCAT_CATALOG: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://www.w3.org/ns/dcat#Catalog");

/// The graph holding the harvest of `peer`.
pub fn peer_graph(peer: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{PEER_GRAPH_PREFIX}{peer}"))
}

/// The id search and negotiation use for a harvested dataset: `{peer}:{id on its node}` (the
/// last path segment of its IRI when it is a valid id, else a digest of the IRI). A local id
/// never contains `:`, so the two cannot collide.
pub fn harvested_id(peer: &str, iri: &str) -> String {
    let last = iri
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if super::is_valid_id(last) {
        format!("{peer}:{last}")
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(iri.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{peer}:{hex}")
    }
}

/// A harvested dataset a search or a negotiation names by its `{peer}:{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDataset {
    /// The peer's id.
    pub peer: String,
    /// The peer's base URL, as recorded at the harvest.
    pub url: String,
    /// The dataset's IRI on its origin node.
    pub iri: String,
}

impl Catalog {
    /// Replaces the harvest of `peer` by `graph` (its datasets and its provenance, all with
    /// the peer graph as their graph), in one transaction, and re-indexes the peer's datasets.
    /// Returns how many datasets the peer now has here.
    pub fn replace_peer(&self, peer: &str, graph: &Graph) -> Result<usize> {
        let name = peer_graph(peer);
        let _guard = self.lock_writer()?;
        // A peer may not list a dataset that this node or another peer already holds.
        for triple in graph.triples_for_predicate(rdf::TYPE) {
            let NamedOrBlankNodeRef::NamedNode(dataset) = triple.subject else {
                continue;
            };
            if triple.object != TermRef::from(DCAT_DATASET) {
                continue;
            }
            for quad in self.store.quads_for_pattern(
                Some(dataset.into()),
                Some(rdf::TYPE),
                Some(DCAT_DATASET.into()),
                None,
            ) {
                if let oxigraph::model::GraphName::NamedNode(other) = quad?.graph_name
                    && other != name
                {
                    return Err(CatalogError::Conflict {
                        iri: dataset.as_str().to_owned(),
                    });
                }
            }
        }
        let old = self.peer_keys(name.as_ref())?;
        let mut transaction = self.store.start_transaction()?;
        transaction.clear_graph(name.as_ref())?;
        for triple in graph.iter() {
            transaction.insert(triple.in_graph(name.as_ref()));
        }
        transaction.commit()?;
        self.generation.fetch_add(1, Ordering::SeqCst);
        let summaries = summaries_of(peer, graph);
        let count = summaries.len();
        self.index.apply(&summaries, &old)?;
        Ok(count)
    }

    /// The peers that have a harvest here.
    pub fn harvested_peers(&self) -> Result<Vec<String>> {
        let mut peers = Vec::new();
        for graph in self.store.named_graphs() {
            if let oxigraph::model::NamedOrBlankNode::NamedNode(name) = graph?
                && let Some(peer) = name.as_str().strip_prefix(PEER_GRAPH_PREFIX)
            {
                peers.push(peer.to_owned());
            }
        }
        peers.sort();
        Ok(peers)
    }

    /// The harvested dataset named `{peer}:{id}`, if one is here.
    pub fn peer_dataset(&self, name: &str) -> Result<Option<PeerDataset>> {
        let Some((peer, _)) = name.split_once(':') else {
            return Ok(None);
        };
        if peer.is_empty() || name.contains("://") {
            return Ok(None);
        }
        let graph = peer_graph(peer);
        let subject = NamedOrBlankNodeRef::from(graph.as_ref());
        let in_graph = Some(GraphNameRef::from(graph.as_ref()));
        let mut url = None;
        for quad in
            self.store
                .quads_for_pattern(Some(subject), Some(PROV_WAS_DERIVED_FROM), None, in_graph)
        {
            if let Term::NamedNode(n) = quad?.object {
                url = Some(n.into_string());
            }
        }
        let Some(url) = url else {
            return Ok(None);
        };
        for quad in
            self.store
                .quads_for_pattern(Some(subject), Some(DCAT_DATASET_LINK), None, in_graph)
        {
            if let Term::NamedNode(iri) = quad?.object
                && harvested_id(peer, iri.as_str()) == name
            {
                return Ok(Some(PeerDataset {
                    peer: peer.to_owned(),
                    url,
                    iri: iri.into_string(),
                }));
            }
        }
        Ok(None)
    }

    /// What the harvest of its origin says of the harvested dataset `{peer}:{id}`: the
    /// dataset's own statements in the peer graph.
    pub(super) fn describe_harvested(&self, name: &str) -> Result<Option<Graph>> {
        let Some(found) = self.peer_dataset(name)? else {
            return Ok(None);
        };
        let graph = peer_graph(&found.peer);
        let iri = NamedNode::new_unchecked(found.iri);
        let mut out = Graph::new();
        for quad in self.store.quads_for_pattern(
            Some(NamedOrBlankNodeRef::from(iri.as_ref())),
            None,
            None,
            Some(GraphNameRef::from(graph.as_ref())),
        ) {
            out.insert(&oxigraph::model::Triple::from(quad?));
        }
        Ok(Some(out))
    }

    /// The index keys of the datasets currently in the peer graph `name`.
    fn peer_keys(&self, name: NamedNodeRef<'_>) -> Result<Vec<String>> {
        let peer = name
            .as_str()
            .strip_prefix(PEER_GRAPH_PREFIX)
            .unwrap_or_default();
        let mut keys = Vec::new();
        for quad in self.store.quads_for_pattern(
            Some(NamedOrBlankNodeRef::from(name)),
            Some(DCAT_DATASET_LINK),
            None,
            Some(name.into()),
        ) {
            if let Term::NamedNode(iri) = quad?.object {
                keys.push(harvested_id(peer, iri.as_str()));
            }
        }
        Ok(keys)
    }

    /// Re-indexes the harvested datasets whose index entry disagrees with the peer graphs (at
    /// start: the index is derived, and a crash between a harvest and its index commit heals
    /// here); `indexed` maps the index's keys to their `modified`, and harvested keys (with a
    /// `:`) that no peer graph lists are removed.
    pub(super) fn reconcile_peers(&self, indexed: &HashMap<String, String>) -> Result<()> {
        let mut stale = Vec::new();
        let mut present = HashSet::new();
        for peer in self.harvested_peers()? {
            let graph = self.graph(peer_graph(&peer).as_ref())?;
            for summary in summaries_of(&peer, &graph) {
                present.insert(summary.id.clone());
                if indexed.get(&summary.id) != Some(&summary.modified) {
                    stale.push(summary);
                }
            }
        }
        let removed: Vec<String> = indexed
            .keys()
            .filter(|key| key.contains(':') && !present.contains(key.as_str()))
            .cloned()
            .collect();
        if !stale.is_empty() || !removed.is_empty() {
            tracing::info!(
                reindexed = stale.len(),
                removed = removed.len(),
                "harvested datasets reconciled with the search index"
            );
            for chunk in stale.chunks(1000) {
                self.index.apply(chunk, &[])?;
            }
            self.index.apply(&[], &removed)?;
        }
        Ok(())
    }
}

/// The search summaries of the datasets a peer graph lists.
fn summaries_of(peer: &str, graph: &Graph) -> Vec<DatasetSummary> {
    let Some(catalog) = graph
        .subject_for_predicate_object(rdf::TYPE, DCAT_CATALOG)
        .map(NamedOrBlankNodeRef::into_owned)
    else {
        return Vec::new();
    };
    graph
        .objects_for_subject_predicate(&catalog, DCAT_DATASET_LINK)
        .filter_map(|o| match o {
            TermRef::NamedNode(iri) => Some(iri),
            _ => None,
        })
        .map(|iri| {
            let mut summary =
                DatasetSummary::from_graph(graph, &harvested_id(peer, iri.as_str()), iri, peer);
            if summary.modified.is_empty() {
                // The index reconciles by (id, modified); a harvest is its own version.
                summary.modified = harvest_time(graph, &catalog);
            }
            summary
        })
        .collect()
}

fn harvest_time(graph: &Graph, catalog: &oxigraph::model::NamedOrBlankNode) -> String {
    match graph.object_for_subject_predicate(catalog, PROV_GENERATED_AT_TIME) {
        Some(TermRef::Literal(l)) => l.value().to_owned(),
        _ => String::new(),
    }
}
