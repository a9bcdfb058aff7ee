//! Harvested catalogues of federation peers. Each peer's catalogue lives in one named graph of
//! the public store, `urn:agora:peer:{peer}`, so a peer can only ever touch its own graph. A
//! full harvest replaces the graph as a whole ([`Catalog::replace_peer`]: the bulk loader's one
//! ingestion for a new graph, else one transaction writing the difference); an incremental sync
//! replaces the statements of the datasets that changed and drops those that left the peer's
//! view ([`Catalog::apply_peer_changes`], one transaction); either write is atomic, so readers
//! never see half a harvest. A harvest listing a dataset IRI that the node or another peer already holds is
//! refused as a whole (first holder wins): a peer cannot take over another node's datasets.
//! The graph names itself as the subject of its provenance: the peer's id (`agora:origin`),
//! its base URL (`prov:wasDerivedFrom`), its participant id and the time of the last sync
//! (`prov:generatedAtTime`), and lists its datasets (`dcat:dataset`). Each dataset carries the
//! time its description was harvested (`prov:generatedAtTime`) and the entity tag of the DSP
//! JSON it was read from (`agora:etag`), which the incremental sync checks its copy with.
//! Search indexes each harvested dataset under `{peer}:{id}` with the peer as its origin;
//! SPARQL sees the graph like any other (the public checkpoints copy the whole public store).

use super::model::DatasetSummary;
use super::{Catalog, CatalogError, Result, terms::*};
use crate::federation::AGORA_ETAG;
use oxigraph::model::vocab::{rdf, xsd};
use oxigraph::model::{
    Graph, GraphNameRef, Literal, NamedNode, NamedNodeRef, NamedOrBlankNode, NamedOrBlankNodeRef,
    Quad, QuadRef, Term, TermRef, Triple,
};
use std::collections::{HashMap, HashSet};

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
    /// the peer graph as their graph), in one atomic write, and re-indexes the peer's datasets.
    /// Returns how many datasets the peer now has here.
    ///
    /// Only the difference with the stored harvest is written (`write_peer_graph`):
    /// with 20 peers of 10,000 datasets the store writes were the whole full crawl, one peer
    /// after another under the writer lock (BENCHMARKS.md, "Federation").
    pub fn replace_peer(&self, peer: &str, graph: &Graph) -> Result<usize> {
        let name = peer_graph(peer);
        // Derived from `graph` alone, so built before the writer lock is taken.
        let summaries = summaries_of(peer, graph);
        let count = summaries.len();
        let _guard = self.lock_writer()?;
        self.refuse_foreign(&name, graph)?;
        let old = self.peer_keys(name.as_ref())?;
        self.write_peer_graph(name.as_ref(), graph)?;
        self.committed(super::Change::Peers);
        self.index.apply(&summaries, &old)?;
        Ok(count)
    }

    /// Makes the graph `name` hold exactly `graph`, atomically (readers see the old harvest or
    /// the new one, never a mix), writing as little as it can. A graph the store does not hold
    /// yet (a peer's first harvest) goes through the bulk loader: sorted files ingested at once,
    /// several times faster than a transaction, which looks up every key it buffers and then
    /// inserts each into the memtables in no order. A graph already held is diffed: one
    /// transaction removes the statements that are no longer in `graph` and inserts the new
    /// ones, so re-reading an unchanged catalogue writes only what changed (the harvest times).
    /// The caller holds the writer lock, so nothing writes the graph between the read and the
    /// write.
    fn write_peer_graph(&self, name: NamedNodeRef<'_>, graph: &Graph) -> Result<()> {
        let in_graph = GraphNameRef::from(name);
        let mut stored = Graph::new();
        for quad in self
            .store
            .quads_for_pattern(None, None, None, Some(in_graph))
        {
            stored.insert(&Triple::from(quad?));
        }
        if stored.is_empty() {
            let mut loader = self.store.bulk_loader().with_num_threads(1);
            loader.load_quads(graph.iter().map(|t| t.in_graph(in_graph).into_owned()))?;
            loader.commit()?;
            return Ok(());
        }
        let mut transaction = self.store.start_transaction()?;
        // Removals first: a statement the store keeps in another form than it was given (an
        // `xsd:nonNegativeInteger` read back as `xsd:integer`) is removed and inserted again,
        // and the insert, coming last, wins.
        for triple in stored.iter() {
            if !graph.contains(triple) {
                transaction.remove(triple.in_graph(in_graph));
            }
        }
        for triple in graph.iter() {
            if !stored.contains(triple) {
                transaction.insert(triple.in_graph(in_graph));
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// Applies an incremental sync of `peer`: the datasets of `upserts` (their statements, with
    /// the dataset as subject, and nothing else) replace what the graph held about them, the
    /// datasets of `removed` leave the graph, and the graph's harvest time becomes
    /// `harvested_at`, all in one transaction; the search index follows. A removed dataset the
    /// graph does not hold is no error (a tombstone may repeat). Returns how many datasets the
    /// peer now has here.
    pub fn apply_peer_changes(
        &self,
        peer: &str,
        upserts: &Graph,
        removed: &[NamedNode],
        harvested_at: &str,
    ) -> Result<usize> {
        let name = peer_graph(peer);
        let in_graph = GraphNameRef::from(name.as_ref());
        let catalog = NamedOrBlankNodeRef::from(name.as_ref());
        let _guard = self.lock_writer()?;
        self.refuse_foreign(&name, upserts)?;
        let upserted: Vec<NamedNode> = upserts
            .subjects_for_predicate_object(rdf::TYPE, DCAT_DATASET)
            .filter_map(|s| match s {
                NamedOrBlankNodeRef::NamedNode(n) => Some(n.into_owned()),
                NamedOrBlankNodeRef::BlankNode(_) => None,
            })
            .collect();
        let mut transaction = self.store.start_transaction()?;
        for dataset in upserted.iter().chain(removed) {
            let stale: Vec<Quad> = self
                .store
                .quads_for_pattern(Some(dataset.as_ref().into()), None, None, Some(in_graph))
                .collect::<std::result::Result<_, _>>()?;
            for quad in &stale {
                transaction.remove(quad);
            }
            transaction.remove(QuadRef::new(
                catalog,
                DCAT_DATASET_LINK,
                dataset.as_ref(),
                in_graph,
            ));
        }
        for quad in self.store.quads_for_pattern(
            Some(catalog),
            Some(PROV_GENERATED_AT_TIME),
            None,
            Some(in_graph),
        ) {
            transaction.remove(&quad?);
        }
        let at = Literal::new_typed_literal(harvested_at, xsd::DATE_TIME);
        transaction.insert(QuadRef::new(
            catalog,
            PROV_GENERATED_AT_TIME,
            at.as_ref(),
            in_graph,
        ));
        for dataset in &upserted {
            transaction.insert(QuadRef::new(
                catalog,
                DCAT_DATASET_LINK,
                dataset.as_ref(),
                in_graph,
            ));
        }
        for triple in upserts.iter() {
            transaction.insert(triple.in_graph(in_graph));
        }
        transaction.commit()?;
        self.committed(super::Change::Peers);
        let summaries: Vec<DatasetSummary> = upserted
            .iter()
            .map(|iri| summary_of(peer, upserts, iri.as_ref(), harvested_at))
            .collect();
        let gone: Vec<String> = removed
            .iter()
            .filter(|iri| !upserted.contains(iri))
            .map(|iri| harvested_id(peer, iri.as_str()))
            .collect();
        self.index.apply(&summaries, &gone)?;
        Ok(self.peer_keys(name.as_ref())?.len())
    }

    /// The datasets of `peer`'s graph with their entity tags (`agora:etag`; empty for a
    /// dataset harvested before tags were kept), for the incremental sync's check.
    pub fn peer_etags(&self, peer: &str) -> Result<Vec<(String, String)>> {
        let name = peer_graph(peer);
        let in_graph = Some(GraphNameRef::from(name.as_ref()));
        let mut tags: HashMap<String, String> = HashMap::new();
        for quad in self
            .store
            .quads_for_pattern(None, Some(AGORA_ETAG), None, in_graph)
        {
            let quad = quad?;
            if let (NamedOrBlankNode::NamedNode(iri), Term::Literal(tag)) =
                (quad.subject, quad.object)
            {
                tags.insert(iri.into_string(), tag.value().to_owned());
            }
        }
        let mut out = Vec::new();
        for quad in self.store.quads_for_pattern(
            Some(NamedOrBlankNodeRef::from(name.as_ref())),
            Some(DCAT_DATASET_LINK),
            None,
            in_graph,
        ) {
            if let Term::NamedNode(iri) = quad?.object {
                let tag = tags.remove(iri.as_str()).unwrap_or_default();
                out.push((iri.into_string(), tag));
            }
        }
        Ok(out)
    }

    /// Refuses a harvest of the graph `name` that lists a dataset this node or another peer
    /// already holds.
    fn refuse_foreign(&self, name: &NamedNode, graph: &Graph) -> Result<()> {
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
                    && other != *name
                {
                    return Err(CatalogError::Conflict {
                        iri: dataset.as_str().to_owned(),
                    });
                }
            }
        }
        Ok(())
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
    /// dataset's own statements in the peer graph, then those about the blank nodes and
    /// resources they point to (a DCAT-AP portal's distributions, publisher, contact point),
    /// up to four hops and 20,000 statements, never into another dataset or the graph's node.
    /// Integer values get back the datatype the shapes declare, as for local datasets.
    pub(super) fn describe_harvested(&self, name: &str) -> Result<Option<Graph>> {
        use oxigraph::model::{Literal, NamedOrBlankNode, QuadRef, Triple, vocab::xsd};
        let Some(found) = self.peer_dataset(name)? else {
            return Ok(None);
        };
        let graph = peer_graph(&found.peer);
        let in_graph = GraphNameRef::from(graph.as_ref());
        let start = NamedOrBlankNode::from(NamedNode::new_unchecked(found.iri));
        let own_node = NamedOrBlankNode::from(graph.clone());
        let mut out = Graph::new();
        let mut visited = HashSet::from([start.clone()]);
        let mut queue = std::collections::VecDeque::from([(start, 0usize)]);
        while let Some((subject, depth)) = queue.pop_front() {
            for quad in
                self.store
                    .quads_for_pattern(Some(subject.as_ref()), None, None, Some(in_graph))
            {
                let mut triple = Triple::from(quad?);
                if let Term::Literal(literal) = &triple.object
                    && literal.datatype() == xsd::INTEGER
                    && let Some(declared) = self.integer_datatypes.get(&triple.predicate)
                {
                    triple.object =
                        Literal::new_typed_literal(literal.value(), declared.clone()).into();
                }
                let next: Option<NamedOrBlankNode> = match &triple.object {
                    Term::NamedNode(n) => Some(n.clone().into()),
                    Term::BlankNode(b) => Some(b.clone().into()),
                    _ => None,
                };
                if let Some(next) = next
                    && depth < 4
                    && triple.predicate != rdf::TYPE
                    && next != own_node
                    && !self.store.contains(QuadRef::new(
                        next.as_ref(),
                        rdf::TYPE,
                        DCAT_DATASET,
                        in_graph,
                    ))?
                    && visited.insert(next.clone())
                {
                    queue.push_back((next, depth + 1));
                }
                out.insert(&triple);
                if out.len() >= 20_000 {
                    return Ok(Some(out));
                }
            }
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
        self.apply_reconciliation(&stale, &removed, "peers")
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
    let harvested = harvest_time(graph, catalog.as_ref());
    graph
        .objects_for_subject_predicate(&catalog, DCAT_DATASET_LINK)
        .filter_map(|o| match o {
            TermRef::NamedNode(iri) => Some(iri),
            _ => None,
        })
        .map(|iri| summary_of(peer, graph, iri, &harvested))
        .collect()
}

/// The search summary of one harvested dataset. The index reconciles by (id, modified); a
/// harvested description is its own version, dated by its harvest (the dataset's own
/// `prov:generatedAtTime`, else the graph's).
fn summary_of(peer: &str, graph: &Graph, iri: NamedNodeRef<'_>, harvested: &str) -> DatasetSummary {
    let mut summary =
        DatasetSummary::from_graph(graph, &harvested_id(peer, iri.as_str()), iri, peer);
    if summary.modified.is_empty() {
        summary.modified = harvest_time(graph, iri.into());
        if summary.modified.is_empty() {
            harvested.clone_into(&mut summary.modified);
        }
    }
    summary
}

fn harvest_time(graph: &Graph, subject: NamedOrBlankNodeRef<'_>) -> String {
    match graph.object_for_subject_predicate(subject, PROV_GENERATED_AT_TIME) {
        Some(TermRef::Literal(l)) => l.value().to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{CatalogOptions, SearchQuery, Viewer};
    use crate::rdf_input::InputLimits;
    use oxigraph::model::BlankNode;
    use std::sync::Arc;

    const PEER: &str = "b";

    fn catalog(dir: &std::path::Path) -> Catalog {
        let options = CatalogOptions {
            public_url: "http://node-a.example".into(),
            limits: InputLimits {
                max_bytes: 1 << 20,
                max_json_depth: 32,
                max_triples: 10_000,
            },
            allow_roots: Vec::new(),
        };
        Catalog::open(dir, options, Arc::new(crate::clock::SystemClock)).unwrap()
    }

    /// A peer graph as the crawler builds it: provenance, then each `(name, title)` dataset.
    fn harvest(at: &str, datasets: &[(&str, &str)]) -> Graph {
        let node = peer_graph(PEER);
        let mut graph = Graph::new();
        let time = || Literal::new_typed_literal(at, xsd::DATE_TIME);
        graph.insert(&Triple::new(node.clone(), rdf::TYPE, DCAT_CATALOG));
        graph.insert(&Triple::new(node.clone(), PROV_GENERATED_AT_TIME, time()));
        for (name, title) in datasets {
            let iri = NamedNode::new_unchecked(format!("http://node-b.example/datasets/{name}"));
            graph.insert(&Triple::new(node.clone(), DCAT_DATASET_LINK, iri.clone()));
            graph.insert(&Triple::new(iri.clone(), rdf::TYPE, DCAT_DATASET));
            graph.insert(&Triple::new(
                iri.clone(),
                DCT_TITLE,
                Literal::new_simple_literal(*title),
            ));
            graph.insert(&Triple::new(iri, PROV_GENERATED_AT_TIME, time()));
        }
        graph
    }

    fn stored(catalog: &Catalog) -> Graph {
        let mut graph = Graph::new();
        for quad in catalog.store.quads_for_pattern(
            None,
            None,
            None,
            Some(peer_graph(PEER).as_ref().into()),
        ) {
            graph.insert(&Triple::from(quad.unwrap()));
        }
        graph
    }

    fn found(catalog: &Catalog, text: &str) -> Vec<String> {
        let query = SearchQuery {
            text: text.into(),
            filters: Vec::new(),
            limit: 10,
            offset: 0,
        };
        let results = catalog.search(&query, &Viewer::anonymous()).unwrap();
        results.items.into_iter().map(|i| i.id).collect()
    }

    /// A first harvest (bulk-loaded) and a second one (diffed) each leave exactly the graph
    /// they were given, and search follows both.
    #[test]
    fn a_full_harvest_leaves_exactly_the_new_graph_first_and_again() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog(dir.path());
        let first = harvest(
            "2026-01-01T00:00:00Z",
            &[("x", "Rivers"), ("y", "Lakes"), ("z", "Glaciers")],
        );
        assert_eq!(catalog.replace_peer(PEER, &first).unwrap(), 3);
        assert_eq!(stored(&catalog), first);
        assert_eq!(found(&catalog, "glaciers"), vec!["b:z".to_owned()]);

        // Again a day later: x unchanged, y retitled, z gone, w new; and two statements the
        // store keeps in another form or under another label than it was given.
        let mut second = harvest(
            "2026-01-02T00:00:00Z",
            &[("x", "Rivers"), ("y", "Lakes and ponds"), ("w", "Wetlands")],
        );
        let x = NamedNode::new_unchecked("http://node-b.example/datasets/x");
        let size = NamedNode::new_unchecked("http://www.w3.org/ns/dcat#byteSize");
        let count = Literal::new_typed_literal("5", xsd::NON_NEGATIVE_INTEGER);
        second.insert(&Triple::new(x.clone(), size.clone(), count));
        let distribution = BlankNode::default();
        second.insert(&Triple::new(x.clone(), DCAT_DISTRIBUTION, distribution));
        assert_eq!(catalog.replace_peer(PEER, &second).unwrap(), 3);
        let after = stored(&catalog);
        assert_eq!(after.len(), second.len());
        for triple in second.iter().filter(|t| t.predicate != size.as_ref()) {
            assert!(after.contains(triple), "{triple} is missing");
        }
        let sizes: Vec<String> = after
            .objects_for_subject_predicate(&x, &size)
            .map(|o| match o {
                TermRef::Literal(l) => l.value().to_owned(),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(sizes, vec!["5".to_owned()]);
        assert_eq!(found(&catalog, "glaciers"), Vec::<String>::new());
        assert_eq!(found(&catalog, "ponds"), vec!["b:y".to_owned()]);
        assert_eq!(found(&catalog, "wetlands"), vec!["b:w".to_owned()]);
        assert_eq!(found(&catalog, "rivers"), vec!["b:x".to_owned()]);

        // The same harvest once more writes nothing and changes nothing.
        assert_eq!(catalog.replace_peer(PEER, &second).unwrap(), 3);
        assert_eq!(stored(&catalog).len(), second.len());
    }
}
