//! The catalogue: DCAT-AP 3 datasets in a persistent Oxigraph store, validated against the
//! project's shapes, searchable through a derived full-text index and queryable with SPARQL.
//!
//! Storage layout, two RocksDB stores:
//! - `data_dir/catalog` holds only public data: each dataset's description in its own named
//!   graph `urn:agora:local:{id}` (each federated peer's harvest is one graph
//!   `urn:agora:peer:{peer}`, see `peers`), so
//!   replacing or deleting a dataset is one graph operation and shared nodes (publishers)
//!   never leak between datasets. The public SPARQL endpoint reads checkpoints of this store.
//! - `data_dir/catalog-private` holds the node's bookkeeping: who published what, where its
//!   data lives. It is never checkpointed for SPARQL, so no query can reach it (Oxigraph's
//!   union default graph includes every graph of a store, so separation must be physical).
//!
//! A publish writes the private record, then the public graph; a delete removes the public
//! graph, then the record. Each step is an Oxigraph transaction, and RocksDB's write-ahead log
//! makes an acknowledged write survive `kill -9`. A crash between the two steps leaves a
//! private record without a public graph (never acknowledged); [`Catalog::open`] removes it.

mod access;
mod export;
mod export_cache;
pub mod form;
mod journal;
mod model;
mod peers;
mod search;
mod shapes;
pub mod sparql;
mod vocab;

pub use access::{ACCESS_POLICY, Viewer};
pub use export::{ExportFormat, JsonLdContext, serialize};
pub use model::{DatasetSummary, terms};
pub use peers::{
    AGORA_OFFER, AGORA_PARTICIPANT, DCAT_CATALOG, PEER_GRAPH_PREFIX, PROV_GENERATED_AT_TIME,
    PROV_WAS_DERIVED_FROM, PeerDataset, harvested_id, peer_graph,
};
pub use search::{FACETS, SearchItem, SearchQuery, SearchResults};
pub use shapes::{Finding, Severity};

use crate::clock::SharedClock;
use crate::policy;
use crate::rdf_input::{self, InputError, InputLimits, RdfSyntax};
use bytes::Bytes;
use export_cache::{Change, ExportCache};
use journal::ChangeJournal;
use model::{as_subject, single_dataset};
use oxigraph::model::vocab::{rdf, xsd};
use oxigraph::model::{
    Graph, GraphName, GraphNameRef, Literal, NamedNode, NamedNodeRef, NamedOrBlankNode,
    NamedOrBlankNodeRef, Quad, Term, TermRef, Triple, TripleRef,
};
use oxigraph::store::Store;
use search::SearchIndex;
use shapes::ShapeSet;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use terms::*;

/// What went wrong in the catalogue, and whose fault it is: the `4xx`-style variants describe
/// the caller's input; [`CatalogError::Internal`] is a fault of the node.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No dataset with this id.
    #[error("no dataset `{id}` in this catalogue")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The caller may not change this dataset.
    #[error("only the holder who published dataset `{id}` may change or delete it")]
    NotOwner {
        /// The dataset id.
        id: String,
    },
    /// The body is larger than the node accepts.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// JSON nested deeper than the node accepts.
    #[error("the JSON is nested deeper than {limit} levels")]
    TooDeep {
        /// The cap.
        limit: usize,
    },
    /// More triples than one description may hold.
    #[error("the description has more than {limit} triples")]
    TooManyTriples {
        /// The cap.
        limit: usize,
    },
    /// A body in a syntax the node does not accept.
    #[error(
        "cannot read a dataset from `{found}`: send application/ld+json, text/turtle or application/n-triples"
    )]
    UnsupportedMediaType {
        /// The `Content-Type` received.
        found: String,
    },
    /// The body does not parse.
    #[error("the description does not parse: {message}")]
    Syntax {
        /// The parser's message, with position.
        message: String,
    },
    /// A request parameter is wrong.
    #[error("{message}")]
    BadRequest {
        /// What is wrong and what is accepted.
        message: String,
    },
    /// The description violates the DCAT-AP shapes.
    #[error("the description violates {} DCAT-AP constraint(s)", violations.len())]
    Invalid {
        /// Every violation found.
        violations: Vec<Finding>,
    },
    /// Another dataset already has this IRI.
    #[error("another dataset already uses the IRI {iri}")]
    Conflict {
        /// The IRI.
        iri: String,
    },
    /// A fault of the node (storage, index, broken ontology files).
    #[error("internal catalogue error: {0}")]
    Internal(String),
}

impl From<InputError> for CatalogError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::TooLarge { limit } => Self::TooLarge { limit },
            InputError::TooDeep { limit } => Self::TooDeep { limit },
            InputError::TooManyTriples { limit } => Self::TooManyTriples { limit },
            InputError::Syntax { message } => Self::Syntax { message },
        }
    }
}

impl From<oxigraph::store::StorageError> for CatalogError {
    fn from(e: oxigraph::store::StorageError) -> Self {
        Self::Internal(format!("store: {e}"))
    }
}

/// The catalogue's result type.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// The ontology files compiled into the binary: the node carries what it needs at run time.
mod embedded {
    pub const SHAPES_CORE: &str = include_str!("../../ontologies/dcat-ap-shapes.ttl");
    pub const SHAPES_HEALTH: &str = include_str!("../../ontologies/healthdcat-ap-shapes.ttl");
    pub const SHAPES_MOBILITY: &str = include_str!("../../ontologies/mobilitydcat-ap-shapes.ttl");
    pub const VOCABULARIES: &str = include_str!("../../ontologies/vocabularies.ttl");
    pub const CATALOG: &str = include_str!("../../ontologies/catalog.ttl");
}

/// The public graph holding the controlled vocabularies the node knows.
pub const VOCABULARIES_GRAPH: &str = "urn:agora:vocabularies";

/// Settings of a catalogue.
#[derive(Debug, Clone)]
pub struct CatalogOptions {
    /// The node's base URL (no trailing slash): dataset IRIs are minted under it.
    pub public_url: String,
    /// Caps on uploads.
    pub limits: InputLimits,
    /// Folders `file://` distributions may point into.
    pub allow_roots: Vec<PathBuf>,
}

/// A dataset accepted into the catalogue.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Published {
    /// The id in this catalogue.
    pub id: String,
    /// The dataset IRI.
    pub iri: String,
    /// Recommended properties that are missing or wrong: accepted, but worth fixing.
    pub warnings: Vec<FindingView>,
}

/// A SHACL finding as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct FindingView {
    /// The node at fault.
    pub focus_node: String,
    /// The property.
    pub path: String,
    /// What to do.
    pub message: String,
    /// The offending value, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl From<&Finding> for FindingView {
    fn from(f: &Finding) -> Self {
        Self {
            focus_node: f.focus_node.clone(),
            path: f.path.clone(),
            message: f.message.clone(),
            value: f.value.clone(),
        }
    }
}

/// Where a dataset's data lives (private: never in the public graph).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectorRef {
    /// A `file://` URL under an allowed root, or a pool path relative to the data directory.
    pub location: String,
    /// `parquet`, `csv` or `ndjson`.
    pub format: String,
}

/// The catalogue of one node.
pub struct Catalog {
    store: Store,
    private: Store,
    index: SearchIndex,
    shapes_core: ShapeSet,
    shapes_health: ShapeSet,
    shapes_mobility: ShapeSet,
    vocabularies: Graph,
    context: JsonLdContext,
    options: CatalogOptions,
    allow_roots: Vec<PathBuf>,
    integer_datatypes: HashMap<NamedNode, NamedNode>,
    clock: SharedClock,
    write_lock: Mutex<()>,
    generation: AtomicU64,
    exports: Mutex<ExportCache>,
    /// Also serialises the generation's moves, so a reader sees a generation and the journal
    /// that leads up to it together.
    journal: Mutex<ChangeJournal>,
    restricted: Mutex<Option<(u64, access::Restricted)>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("public_url", &self.options.public_url)
            .finish_non_exhaustive()
    }
}

fn local_graph(id: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("urn:agora:local:{id}"))
}

/// Whether `id` can name a dataset: 1–64 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Catalog {
    /// Opens (or creates) the catalogue under `data_dir`, reconciling the search index with
    /// the store.
    pub fn open(data_dir: &Path, options: CatalogOptions, clock: SharedClock) -> Result<Self> {
        let internal = |e: String| CatalogError::Internal(e);
        let store = Store::open(data_dir.join("catalog"))?;
        let private = Store::open(data_dir.join("catalog-private"))?;
        let index = SearchIndex::open(&data_dir.join("search"))?;
        let shapes_core = ShapeSet::from_turtle("dcat-ap-shapes.ttl", embedded::SHAPES_CORE)
            .map_err(|e| internal(e.to_string()))?;
        // Sector shapes may refer to the core shapes (sh:node), so each sector set includes them.
        let sector = |file: &str, source: &str| -> Result<ShapeSet> {
            ShapeSet::from_turtle(file, source).map_err(|e| internal(e.to_string()))
        };
        let mut shapes_health = sector("healthdcat-ap-shapes.ttl", embedded::SHAPES_HEALTH)?;
        shapes_health.merge(sector("dcat-ap-shapes.ttl", embedded::SHAPES_CORE)?);
        let mut shapes_mobility = sector("mobilitydcat-ap-shapes.ttl", embedded::SHAPES_MOBILITY)?;
        shapes_mobility.merge(sector("dcat-ap-shapes.ttl", embedded::SHAPES_CORE)?);
        let vocabularies = vocab::load(embedded::VOCABULARIES).map_err(internal)?;
        let context = JsonLdContext::from_document(rdf_input::AGORA_CONTEXT).map_err(internal)?;
        let allow_roots = options
            .allow_roots
            .iter()
            .filter_map(|root| root.canonicalize().ok())
            .collect();
        let mut integer_datatypes = shapes_health.derived_integer_datatypes();
        integer_datatypes.extend(shapes_mobility.derived_integer_datatypes());
        let catalog = Self {
            store,
            private,
            index,
            shapes_core,
            shapes_health,
            shapes_mobility,
            vocabularies,
            context,
            options,
            allow_roots,
            integer_datatypes,
            clock,
            write_lock: Mutex::new(()),
            generation: AtomicU64::new(0),
            exports: Mutex::new(ExportCache::default()),
            journal: Mutex::new(ChangeJournal::default()),
            restricted: Mutex::new(None),
        };
        catalog.store_vocabularies()?;
        catalog.remove_orphan_records()?;
        catalog.reconcile_index()?;
        Ok(catalog)
    }

    /// Flushes both stores' memtables to disk, so the next start replays no write-ahead log.
    /// Called on graceful shutdown; durability never depends on it (the WAL already has
    /// every acknowledged write).
    pub fn flush(&self) -> Result<()> {
        self.store.flush()?;
        self.private.flush()?;
        Ok(())
    }

    /// The underlying store, for the SPARQL snapshots.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A counter that moves after every committed write, so readers of snapshots know when
    /// theirs is stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The node's JSON-LD context.
    pub fn context(&self) -> &JsonLdContext {
        &self.context
    }

    /// Publishes a new dataset for `holder`. `id` is minted unless given (demo pools).
    pub fn publish(
        &self,
        holder: &str,
        body: &[u8],
        syntax: RdfSyntax,
        id: Option<&str>,
    ) -> Result<Published> {
        let id = id.map(str::to_owned).unwrap_or_else(new_id);
        self.write(holder, &id, body, syntax, WriteMode::Create)
    }

    /// Publishes the demo pool `id` with its connector, replacing an older version.
    pub fn publish_pool(
        &self,
        holder: &str,
        id: &str,
        description: &[u8],
        pool: &PoolSource,
    ) -> Result<Published> {
        let parsed = self.parse(id, description, RdfSyntax::Turtle, Some(pool))?;
        let _guard = self.lock_writer()?;
        let write = self.check(holder, parsed, WriteMode::Upsert, &HashSet::new())?;
        let published = write.published();
        self.commit(vec![write])?;
        Ok(published)
    }

    /// Replaces dataset `id`; only its holder may.
    pub fn replace(
        &self,
        holder: &str,
        id: &str,
        body: &[u8],
        syntax: RdfSyntax,
    ) -> Result<Published> {
        self.write(holder, id, body, syntax, WriteMode::Replace)
    }

    fn write(
        &self,
        holder: &str,
        id: &str,
        body: &[u8],
        syntax: RdfSyntax,
        mode: WriteMode,
    ) -> Result<Published> {
        let parsed = self.parse(id, body, syntax, None)?;
        let _guard = self.lock_writer()?;
        let write = self.check(holder, parsed, mode, &HashSet::new())?;
        let published = write.published();
        self.commit(vec![write])?;
        Ok(published)
    }

    /// Publishes many new datasets for `holder` in one commit: each document is checked on its
    /// own, the valid ones are stored together (one transaction, one index commit) and the
    /// others answered with their error. Returns one outcome per document, in order.
    pub fn publish_batch(
        &self,
        holder: &str,
        documents: &[&[u8]],
        syntax: RdfSyntax,
    ) -> Result<Vec<Result<Published>>> {
        let started = std::time::Instant::now();
        let parsed: Vec<Result<ParsedDataset>> = documents
            .iter()
            .map(|body| self.parse(&new_id(), body, syntax, None))
            .collect();
        let parsed_in = started.elapsed();
        let _guard = self.lock_writer()?;
        let mut outcomes = Vec::with_capacity(parsed.len());
        let mut writes = Vec::new();
        let mut pending = HashSet::new();
        for parsed in parsed {
            let checked = parsed.and_then(|p| self.check(holder, p, WriteMode::Create, &pending));
            outcomes.push(match checked {
                Ok(write) => {
                    pending.insert(write.dataset.clone());
                    let published = write.published();
                    writes.push(write);
                    Ok(published)
                }
                Err(e) => Err(e),
            });
        }
        let checked_in = started.elapsed();
        let stored = writes.len();
        self.commit(writes)?;
        tracing::info!(
            documents = documents.len(),
            stored,
            parse_ms = parsed_in.as_millis() as u64,
            check_ms = (checked_in - parsed_in).as_millis() as u64,
            commit_ms = (started.elapsed() - checked_in).as_millis() as u64,
            "batch published"
        );
        Ok(outcomes)
    }

    fn lock_writer(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.write_lock
            .lock()
            .map_err(|_| CatalogError::Internal("catalogue writer poisoned".into()))
    }

    /// Parses a description for dataset `id`: names the dataset, moves `file://` locations to
    /// the private connector, adds what the vocabularies know. Needs no lock.
    fn parse(
        &self,
        id: &str,
        body: &[u8],
        syntax: RdfSyntax,
        pool: Option<&PoolSource>,
    ) -> Result<ParsedDataset> {
        if !is_valid_id(id) {
            return Err(CatalogError::NotFound { id: id.to_owned() });
        }
        let base_iri = format!("{}/datasets/{id}", self.options.public_url);
        let parsed = read_graph(body, syntax, &base_iri, self.options.limits)?;
        let (mut graph, dataset) = name_dataset(parsed, &base_iri)?;
        drop_node_owned_statements(&mut graph);
        let connector = match pool {
            Some(pool) => Some(pool.connector.clone()),
            None => self.take_file_connector(&mut graph, dataset.as_ref())?,
        };
        attach_policies(
            &mut graph,
            dataset.as_ref(),
            pool.map(|p| p.columns.as_slice()),
            self.options.limits,
        )?;
        // Validated with what the vocabularies say about the IRIs it uses; stored without it
        // (the vocabularies live once, in their own graph, and are added back on every read).
        // The catalogue record is the node's own and added under the lock; everything the
        // holder wrote is validated here, outside it, so concurrent publishers validate at once.
        let mut enriched = graph.clone();
        vocab::enrich(&mut enriched, &self.vocabularies);
        let findings = self.shapes_for(&enriched).validate(&enriched);
        let (violations, warnings): (Vec<_>, Vec<_>) = findings
            .into_iter()
            .partition(|f| f.severity == Severity::Violation);
        if !violations.is_empty() {
            return Err(CatalogError::Invalid { violations });
        }
        Ok(ParsedDataset {
            id: id.to_owned(),
            base_iri,
            graph,
            dataset,
            connector,
            warnings: warnings.iter().map(FindingView::from).collect(),
        })
    }

    /// Decides whether the write may happen (under the writer lock): existence, ownership,
    /// IRI conflicts (also against `pending` IRIs of the same batch), then stamps the catalogue
    /// record and validates against the shapes.
    fn check(
        &self,
        holder: &str,
        parsed: ParsedDataset,
        mode: WriteMode,
        pending: &HashSet<NamedNode>,
    ) -> Result<CheckedWrite> {
        let ParsedDataset {
            id,
            base_iri,
            mut graph,
            dataset,
            connector,
            warnings,
        } = parsed;
        let graph_name = local_graph(&id);
        let existing = self.record(&id)?;
        match (&existing, mode) {
            (Some(_), WriteMode::Create) => {
                return Err(CatalogError::Conflict { iri: base_iri });
            }
            (None, WriteMode::Replace) => return Err(CatalogError::NotFound { id }),
            (Some(record), WriteMode::Replace) if record.holder != holder => {
                return Err(CatalogError::NotOwner { id });
            }
            _ => {}
        }
        let taken = match self.graph_using_iri(dataset.as_ref())? {
            Some(other) => other != graph_name,
            None => pending.contains(&dataset),
        };
        if taken {
            return Err(CatalogError::Conflict {
                iri: dataset.as_str().to_owned(),
            });
        }
        let now = canonical_date_time(self.clock.now());
        let issued = existing
            .as_ref()
            .map(|r| r.issued.clone())
            .unwrap_or_else(|| now.clone());
        add_record(&mut graph, &base_iri, dataset.as_ref(), &issued, &now);
        let summary = DatasetSummary::from_graph(&graph, &id, dataset.as_ref(), "local");
        Ok(CheckedWrite {
            is_new: existing.is_none(),
            record: DatasetRecord {
                id,
                iri: dataset.as_str().to_owned(),
                holder: holder.to_owned(),
                issued,
                modified: now,
                connector,
            },
            graph_name,
            graph,
            dataset,
            summary,
            warnings,
        })
    }

    /// Stores checked writes: the private records, then the public graphs (see the module
    /// documentation for why this order), then the search index.
    fn commit(&self, writes: Vec<CheckedWrite>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut private = self.private.start_transaction()?;
        for write in &writes {
            // A new dataset has no record to replace.
            let old = if write.is_new {
                Vec::new()
            } else {
                self.record_quads(&write.graph_name)?
            };
            for quad in old {
                private.remove(&quad);
            }
            for quad in record_quads_for(&write.graph_name, &write.record)? {
                private.insert(&quad);
            }
        }
        private.commit()?;
        if writes.len() > 1 && writes.iter().all(|w| w.is_new) {
            // New graphs only: the bulk loader writes sorted files and ingests them at once
            // (atomic, durable), an order of magnitude faster than a transaction that indexes
            // every key it buffers.
            let mut loader = self.store.bulk_loader().with_num_threads(1);
            loader.load_quads(writes.iter().flat_map(|w| {
                w.graph
                    .iter()
                    .map(|t| t.in_graph(w.graph_name.as_ref()).into_owned())
            }))?;
            loader.commit()?;
        } else {
            let mut public = self.store.start_transaction()?;
            for write in &writes {
                public.clear_graph(write.graph_name.as_ref())?;
                for triple in write.graph.iter() {
                    public.insert(triple.in_graph(write.graph_name.as_ref()));
                }
            }
            public.commit()?;
        }
        let ids: Vec<&str> = writes.iter().map(|w| w.record.id.as_str()).collect();
        self.committed(Change::Datasets(&ids));
        let summaries: Vec<DatasetSummary> = writes.into_iter().map(|w| w.summary).collect();
        self.index.apply(&summaries, &[])
    }

    /// Loads an operator's RDF file (Turtle, N-Triples or JSON-LD) into the public named graph
    /// `graph`, replacing what it held: reference data and vocabularies that SPARQL users join
    /// with the catalogue. Graphs under `urn:agora:` are the node's own and cannot be loaded.
    pub fn load_graph(&self, graph: &str, body: &[u8], syntax: RdfSyntax) -> Result<usize> {
        let name = NamedNode::new(graph).map_err(|e| CatalogError::BadRequest {
            message: format!("the graph name must be an absolute IRI: {e}"),
        })?;
        if name.as_str().starts_with("urn:agora:") {
            return Err(CatalogError::BadRequest {
                message: "graphs under urn:agora: belong to the catalogue; pick another graph IRI"
                    .into(),
            });
        }
        let limits = InputLimits {
            max_bytes: usize::MAX,
            max_json_depth: self.options.limits.max_json_depth,
            max_triples: usize::MAX,
        };
        let parsed = read_graph(body, syntax, graph, limits)?;
        let _guard = self.lock_writer()?;
        let mut transaction = self.store.start_transaction()?;
        transaction.clear_graph(name.as_ref())?;
        for triple in parsed.iter() {
            transaction.insert(triple.in_graph(name.as_ref()));
        }
        transaction.commit()?;
        self.committed(Change::Everything);
        Ok(parsed.len())
    }

    /// Deletes dataset `id`; only its holder may.
    pub fn delete(&self, holder: &str, id: &str) -> Result<()> {
        let _guard = self.lock_writer()?;
        let record = self
            .record(id)?
            .ok_or_else(|| CatalogError::NotFound { id: id.into() })?;
        if record.holder != holder {
            return Err(CatalogError::NotOwner { id: id.into() });
        }
        let graph_name = local_graph(id);
        self.store.remove_named_graph(graph_name.as_ref())?;
        self.committed(Change::Datasets(&[id]));
        self.remove_record(&graph_name)?;
        self.index.apply(&[], &[id.to_owned()])?;
        Ok(())
    }

    /// The private record of dataset `id`, if it exists.
    pub fn record(&self, id: &str) -> Result<Option<DatasetRecord>> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        let graph_name = local_graph(id);
        let subject = NamedOrBlankNodeRef::from(graph_name.as_ref());
        let value = |predicate| -> Result<Option<Term>> {
            Ok(self
                .private
                .quads_for_pattern(
                    Some(subject),
                    Some(predicate),
                    None,
                    Some(GraphNameRef::DefaultGraph),
                )
                .next()
                .transpose()?
                .map(|q| q.object))
        };
        let Some(Term::Literal(holder)) = value(AGORA_HOLDER)? else {
            return Ok(None);
        };
        let Some(Term::NamedNode(iri)) = value(AGORA_DATASET_IRI)? else {
            return Err(CatalogError::Internal(format!(
                "dataset {id} has no IRI record"
            )));
        };
        let issued = match value(DCT_ISSUED)? {
            Some(Term::Literal(l)) => l.value().to_owned(),
            _ => String::new(),
        };
        let modified = match value(DCT_MODIFIED)? {
            Some(Term::Literal(l)) => l.value().to_owned(),
            _ => String::new(),
        };
        let connector = match value(AGORA_CONNECTOR)? {
            Some(Term::Literal(l)) => serde_json::from_str(l.value()).ok(),
            _ => None,
        };
        Ok(Some(DatasetRecord {
            id: id.to_owned(),
            iri: iri.into_string(),
            holder: holder.value().to_owned(),
            issued,
            modified,
            connector,
        }))
    }

    /// The ODRL policies dataset `id` is offered under (the ones its description carries), in
    /// uid order, with its summary: what a DSP catalogue and a negotiation need.
    pub fn offered(&self, id: &str) -> Result<(DatasetSummary, Vec<policy::Policy>)> {
        let name = is_valid_id(id).then(|| local_graph(id));
        let Some(name) =
            name.filter(|n| self.store.contains_named_graph(n.as_ref()).unwrap_or(false))
        else {
            return Err(CatalogError::NotFound { id: id.into() });
        };
        let graph = self.graph(name.as_ref())?;
        let dataset = match single_dataset(&graph) {
            Ok(NamedOrBlankNodeRef::NamedNode(node)) => node.into_owned(),
            _ => {
                return Err(CatalogError::Internal(format!(
                    "dataset {id} has no single named dcat:Dataset"
                )));
            }
        };
        let summary = DatasetSummary::from_graph(&graph, id, dataset.as_ref(), "local");
        let offers: HashSet<Term> = graph
            .objects_for_subject_predicate(dataset.as_ref(), ODRL_HAS_POLICY)
            .map(TermRef::into_owned)
            .collect();
        let policies = policy::policies_in_triples(graph.iter().map(|t| t.into_owned()))
            .map_err(|e| CatalogError::Internal(format!("dataset {id}: {e}")))?
            .into_iter()
            .filter(|p| offers.contains(&Term::NamedNode(p.uid.clone())))
            .collect();
        Ok((summary, policies))
    }

    /// The id of the local dataset whose IRI is `iri`, if there is one.
    pub fn id_for_iri(&self, iri: &str) -> Result<Option<String>> {
        let Ok(node) = NamedNode::new(iri) else {
            return Ok(None);
        };
        let found = self
            .store
            .quads_for_pattern(
                Some(node.as_ref().into()),
                Some(rdf::TYPE),
                Some(DCAT_DATASET.into()),
                None,
            )
            .filter_map(std::result::Result::ok)
            .find_map(|q| match q.graph_name {
                GraphName::NamedNode(g) => g
                    .as_str()
                    .strip_prefix("urn:agora:local:")
                    .map(str::to_owned),
                _ => None,
            });
        Ok(found)
    }

    /// The public description of dataset `id`, local or harvested (`{peer}:{id}`: what the
    /// peer's catalogue said of it).
    pub fn describe(&self, id: &str) -> Result<Graph> {
        let name = is_valid_id(id).then(|| local_graph(id));
        match name {
            Some(name) if self.store.contains_named_graph(name.as_ref())? => {
                let mut graph = self.graph(name.as_ref())?;
                vocab::enrich(&mut graph, &self.vocabularies);
                Ok(graph)
            }
            _ => match self.describe_harvested(id)? {
                Some(mut graph) => {
                    vocab::enrich(&mut graph, &self.vocabularies);
                    Ok(graph)
                }
                None => Err(CatalogError::NotFound { id: id.into() }),
            },
        }
    }

    /// The serialised description of dataset `id`, from the export cache when no write
    /// happened since it was made.
    pub fn export(&self, id: &str, format: ExportFormat) -> Result<Bytes> {
        if let Some(bytes) = self.cached_export(id, format) {
            return Ok(bytes);
        }
        // Read the generation first: a write racing with this read makes the entry stale.
        let generation = self.generation();
        let bytes = Bytes::from(serialize(&self.describe(id)?, format, &self.context));
        let compressed = export_cache::Compressed::new(&bytes);
        if let Ok(mut cache) = self.exports.lock() {
            cache.insert(id, format, generation, compressed);
        }
        Ok(bytes)
    }

    /// Fills the export cache with the JSON-LD (the default representation) of local datasets
    /// that are not cached: every dataset when `since` is `None`, else those written since
    /// that generation (all of them when the journal no longer reaches back that far).
    /// Answers the generation it covered, to pass as `since` next time. Stops early, with
    /// `since` unchanged, when the cache is nearly full. Blocking.
    ///
    /// Why: a reader of a dataset nobody asked for since the node started (or since its last
    /// write) otherwise waits for the store to describe it, which across a 100,000-dataset
    /// catalogue read at random was most requests of the first minutes.
    pub fn warm_exports(&self, since: Option<u64>) -> Option<u64> {
        let (now, changed) = match since {
            Some(generation) => self.local_changes_since(generation),
            None => (self.generation(), None),
        };
        if since == Some(now) {
            return since;
        }
        let ids = match changed {
            Some(changed) => {
                let mut ids: Vec<String> = changed.into_iter().collect();
                ids.sort();
                ids
            }
            None => match self.ids() {
                Ok(ids) => ids,
                Err(error) => {
                    tracing::warn!(%error, "export cache warming: cannot list the datasets");
                    return since;
                }
            },
        };
        const FORMAT: ExportFormat = ExportFormat::JsonLd;
        for id in ids {
            let lock = self.exports.lock();
            let (held, full) = lock.as_ref().map_or((true, true), |cache| {
                (cache.holds(&id, FORMAT), cache.nearly_full())
            });
            drop(lock);
            if full {
                // Readers fill what is left as they go; warming on would only evict.
                return Some(now);
            }
            // A dataset deleted meanwhile is simply not described.
            if !held && let Err(CatalogError::Internal(error)) = self.export(&id, FORMAT) {
                tracing::warn!(%error, id, "export cache warming failed");
            }
        }
        Some(now)
    }

    /// The cached export of `id`, if still current. Cheap: no storage access.
    pub fn cached_export(&self, id: &str, format: ExportFormat) -> Option<Bytes> {
        let compressed = self.exports.lock().ok()?.get(id, format)?;
        compressed.decompress()
    }

    /// The current generation and the local datasets written since `generation` (`None`:
    /// too long ago, or a write changed everything; rebuild in full). For caches derived from
    /// the catalogue that would rather update the datasets that changed than rebuild.
    pub fn local_changes_since(&self, generation: u64) -> (u64, Option<HashSet<String>>) {
        let journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.generation();
        (now, journal.local_since(generation, now))
    }

    /// Moves the generation after a committed write and drops what the write made stale.
    fn committed(&self, change: Change<'_>) {
        let generation = {
            let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
            let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
            journal.record(&change, generation);
            generation
        };
        self.exports
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .invalidate(change, generation);
    }

    /// Reads a stored graph. Oxigraph stores derived integer types (`xsd:nonNegativeInteger`)
    /// as `xsd:integer`; the datatype the shapes declare for the property is put back.
    fn graph(&self, name: NamedNodeRef<'_>) -> Result<Graph> {
        let mut graph = Graph::new();
        for quad in self
            .store
            .quads_for_pattern(None, None, None, Some(name.into()))
        {
            let mut triple = Triple::from(quad?);
            if let Term::Literal(literal) = &triple.object
                && literal.datatype() == xsd::INTEGER
                && let Some(declared) = self.integer_datatypes.get(&triple.predicate)
            {
                triple.object =
                    Literal::new_typed_literal(literal.value(), declared.clone()).into();
            }
            graph.insert(&triple);
        }
        Ok(graph)
    }

    /// The ids of every local dataset, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for quad in self.private.quads_for_pattern(
            None,
            Some(AGORA_HOLDER),
            None,
            Some(GraphNameRef::DefaultGraph),
        ) {
            if let NamedOrBlankNode::NamedNode(subject) = quad?.subject
                && let Some(id) = subject.as_str().strip_prefix("urn:agora:local:")
            {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The catalogue as one `dcat:Catalog` graph, with the page `[offset, offset + limit)` of
    /// datasets fully described. Returns the graph and the total number of datasets.
    pub fn catalog_page(
        &self,
        limit: usize,
        offset: usize,
        viewer: &Viewer,
    ) -> Result<(Graph, usize)> {
        let catalog_iri = format!("{}/catalog", self.options.public_url);
        let mut graph = Graph::new();
        let parser = oxigraph::io::RdfParser::from_format(oxigraph::io::RdfFormat::Turtle)
            .with_base_iri(&catalog_iri)
            .map_err(|e| CatalogError::Internal(e.to_string()))?;
        for quad in parser.for_slice(embedded::CATALOG) {
            let quad = quad.map_err(|e| CatalogError::Internal(format!("catalog.ttl: {e}")))?;
            graph.insert(&Triple::from(quad));
        }
        let catalog = NamedNode::new_unchecked(catalog_iri);
        let hidden = self.hidden_from(viewer)?;
        let mut ids = self.ids()?;
        ids.retain(|id| !hidden.contains(id));
        let total = ids.len();
        for id in ids.iter().skip(offset).take(limit) {
            let dataset_graph = self.graph(local_graph(id).as_ref())?;
            for triple in dataset_graph.iter() {
                graph.insert(triple);
            }
            if let Ok(NamedOrBlankNodeRef::NamedNode(dataset)) = single_dataset(&dataset_graph) {
                graph.insert(&Triple::new(
                    catalog.clone(),
                    DCAT_DATASET_LINK,
                    dataset.into_owned(),
                ));
            }
            if let Some(record) =
                dataset_graph.subject_for_predicate_object(rdf::TYPE, DCAT_CATALOG_RECORD)
            {
                graph.insert(&Triple::new(
                    catalog.clone(),
                    DCAT_RECORD,
                    record.into_owned(),
                ));
            }
        }
        vocab::enrich(&mut graph, &self.vocabularies);
        Ok((graph, total))
    }

    /// Full-text search with facets.
    pub fn search(&self, query: &SearchQuery, viewer: &Viewer) -> Result<SearchResults> {
        let hidden = self.hidden_from(viewer)?;
        self.index.search(query, &hidden)
    }

    fn shapes_for(&self, graph: &Graph) -> &ShapeSet {
        let has_theme = |theme: &str| {
            graph
                .triples_for_predicate(DCAT_THEME)
                .any(|t| matches!(t.object, TermRef::NamedNode(n) if n.as_str() == theme))
        };
        if has_theme(terms::THEME_HEALTH) {
            &self.shapes_health
        } else if has_theme(terms::THEME_TRANSPORT) {
            &self.shapes_mobility
        } else {
            &self.shapes_core
        }
    }

    fn graph_using_iri(&self, dataset: NamedNodeRef<'_>) -> Result<Option<NamedNode>> {
        for quad in self.store.quads_for_pattern(
            Some(dataset.into()),
            Some(rdf::TYPE),
            Some(DCAT_DATASET.into()),
            None,
        ) {
            if let GraphName::NamedNode(graph) = quad?.graph_name {
                return Ok(Some(graph));
            }
        }
        Ok(None)
    }

    /// Moves `file://` distribution URLs out of the public graph into the private connector
    /// record, after checking they stay inside an allowed root. The distribution keeps an
    /// `accessURL` pointing at the node's DSP endpoint.
    fn take_file_connector(
        &self,
        graph: &mut Graph,
        dataset: NamedNodeRef<'_>,
    ) -> Result<Option<ConnectorRef>> {
        let mut connector = None;
        let distributions: Vec<NamedOrBlankNode> = graph
            .objects_for_subject_predicate(dataset, DCAT_DISTRIBUTION)
            .filter_map(as_subject)
            .map(NamedOrBlankNodeRef::into_owned)
            .collect();
        let dsp = NamedNode::new_unchecked(format!("{}/dsp", self.options.public_url));
        for distribution in distributions {
            for predicate in [DCAT_DOWNLOAD_URL, DCAT_ACCESS_URL] {
                let files: Vec<NamedNode> = graph
                    .objects_for_subject_predicate(&distribution, predicate)
                    .filter_map(|o| match o {
                        TermRef::NamedNode(n) if n.as_str().starts_with("file:") => {
                            Some(n.into_owned())
                        }
                        _ => None,
                    })
                    .collect();
                for url in files {
                    let found = self.resolve_file_url(url.as_str())?;
                    connector.get_or_insert(found);
                    graph.remove(&Triple::new(distribution.clone(), predicate, url));
                }
            }
            if graph
                .object_for_subject_predicate(&distribution, DCAT_ACCESS_URL)
                .is_none()
            {
                graph.insert(&Triple::new(
                    distribution.clone(),
                    DCAT_ACCESS_URL,
                    dsp.clone(),
                ));
            }
        }
        Ok(connector)
    }

    fn resolve_file_url(&self, url: &str) -> Result<ConnectorRef> {
        let refuse = |why: &str| CatalogError::Invalid {
            violations: vec![Finding {
                focus_node: url.to_owned(),
                path: DCAT_DOWNLOAD_URL.as_str().to_owned(),
                message: why.to_owned(),
                value: Some(url.to_owned()),
                severity: Severity::Violation,
            }],
        };
        let path = url
            .strip_prefix("file://")
            .map(|rest| rest.strip_prefix("localhost").unwrap_or(rest))
            .filter(|p| p.starts_with('/'))
            .ok_or_else(|| refuse("a file URL must be absolute: file:///folder/data.parquet"))?;
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| refuse("the file URL is not valid UTF-8 once decoded"))?;
        let outside = "the file is not inside a folder this node serves (agora serve --allow-root DIR), or does not exist";
        let canonical = Path::new(decoded.as_ref())
            .canonicalize()
            .map_err(|_| refuse(outside))?;
        if !self
            .allow_roots
            .iter()
            .any(|root| canonical.starts_with(root))
        {
            return Err(refuse(outside));
        }
        let format = data_format(&canonical).ok_or_else(|| {
            refuse("the file (or every file in the folder) must be .parquet, .csv or .ndjson")
        })?;
        Ok(ConnectorRef {
            location: url.to_owned(),
            format: format.to_owned(),
        })
    }

    /// Keeps the public graph of the controlled vocabularies equal to the node's copy, so SPARQL
    /// users can join datasets with concept labels and schemes. Rewritten only when it changed.
    fn store_vocabularies(&self) -> Result<()> {
        let name = NamedNode::new_unchecked(VOCABULARIES_GRAPH);
        if self.graph(name.as_ref())? == self.vocabularies {
            return Ok(());
        }
        let _guard = self.lock_writer()?;
        let mut transaction = self.store.start_transaction()?;
        transaction.clear_graph(name.as_ref())?;
        for triple in self.vocabularies.iter() {
            transaction.insert(triple.in_graph(name.as_ref()));
        }
        transaction.commit()?;
        self.committed(Change::Everything);
        Ok(())
    }

    /// The private quads currently stored about the dataset of `graph_name`.
    fn record_quads(&self, graph_name: &NamedNode) -> Result<Vec<Quad>> {
        let subject = NamedOrBlankNodeRef::from(graph_name.as_ref());
        Ok(self
            .private
            .quads_for_pattern(Some(subject), None, None, Some(GraphNameRef::DefaultGraph))
            .collect::<std::result::Result<_, _>>()?)
    }

    fn remove_record(&self, graph_name: &NamedNode) -> Result<()> {
        let old = self.record_quads(graph_name)?;
        let mut transaction = self.private.start_transaction()?;
        for quad in &old {
            transaction.remove(quad);
        }
        transaction.commit()?;
        Ok(())
    }

    /// Removes private records whose public graph was never written (a crash between the
    /// two steps of a publish, or of a delete): none of them was acknowledged.
    fn remove_orphan_records(&self) -> Result<()> {
        for id in self.ids()? {
            let graph_name = local_graph(&id);
            if !self.store.contains_named_graph(graph_name.as_ref())? {
                tracing::warn!(dataset = %id, "removing the record of an unacknowledged write");
                self.remove_record(&graph_name)?;
            }
        }
        Ok(())
    }

    /// The recorded `dct:modified` of every local dataset, in one scan of the private store.
    fn modified_by_id(&self) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        for quad in self.private.quads_for_pattern(
            None,
            Some(DCT_MODIFIED),
            None,
            Some(GraphNameRef::DefaultGraph),
        ) {
            let quad = quad?;
            if let (NamedOrBlankNode::NamedNode(subject), Term::Literal(modified)) =
                (&quad.subject, &quad.object)
                && let Some(id) = subject.as_str().strip_prefix("urn:agora:local:")
            {
                out.insert(id.to_owned(), modified.value().to_owned());
            }
        }
        Ok(out)
    }

    /// Rebuilds index entries that disagree with the store (after a crash or a schema change).
    fn reconcile_index(&self) -> Result<()> {
        let indexed = self.index.fingerprints()?;
        let ids = self.ids()?;
        let recorded = self.modified_by_id()?;
        let mut stale = Vec::new();
        for id in &ids {
            // Only datasets whose record disagrees with the index are read back.
            if indexed.contains_key(id) && indexed.get(id) == recorded.get(id) {
                continue;
            }
            let graph = self.graph(local_graph(id).as_ref())?;
            let Ok(NamedOrBlankNodeRef::NamedNode(dataset)) = single_dataset(&graph) else {
                continue;
            };
            let summary = DatasetSummary::from_graph(&graph, id, dataset, "local");
            if indexed.get(id) != Some(&summary.modified) {
                stale.push(summary);
            }
        }
        // Keys with a `:` are harvested datasets (local ids have none): `reconcile_peers`.
        let removed: Vec<String> = indexed
            .keys()
            .filter(|id| !id.contains(':') && ids.binary_search(id).is_err())
            .cloned()
            .collect();
        self.apply_reconciliation(&stale, &removed, "local")?;
        self.reconcile_peers(&indexed)
    }

    /// Brings the search index in line after a reconciliation found `stale` summaries and
    /// `removed` keys, in chunks so one commit never holds the whole catalogue.
    fn apply_reconciliation(
        &self,
        stale: &[DatasetSummary],
        removed: &[String],
        origin: &str,
    ) -> Result<()> {
        if stale.is_empty() && removed.is_empty() {
            return Ok(());
        }
        tracing::info!(
            reindexed = stale.len(),
            removed = removed.len(),
            origin,
            "search index reconciled with the store"
        );
        for chunk in stale.chunks(1000) {
            self.index.apply(chunk, &[])?;
        }
        self.index.apply(&[], removed)
    }
}

/// A parsed description, not yet checked against the catalogue.
struct ParsedDataset {
    id: String,
    base_iri: String,
    graph: Graph,
    dataset: NamedNode,
    connector: Option<ConnectorRef>,
    warnings: Vec<FindingView>,
}

/// A write that passed every check and only waits to be committed.
struct CheckedWrite {
    /// Whether the dataset is new (its graph does not exist yet).
    is_new: bool,
    record: DatasetRecord,
    graph_name: NamedNode,
    graph: Graph,
    dataset: NamedNode,
    summary: DatasetSummary,
    warnings: Vec<FindingView>,
}

impl CheckedWrite {
    fn published(&self) -> Published {
        Published {
            id: self.record.id.clone(),
            iri: self.record.iri.clone(),
            warnings: self.warnings.clone(),
        }
    }
}

/// Reads an untrusted document into a graph behind the node's input guards.
fn read_graph(
    body: &[u8],
    syntax: RdfSyntax,
    base_iri: &str,
    limits: InputLimits,
) -> Result<Graph> {
    let mut graph = Graph::new();
    for triple in rdf_input::read_triples(body, syntax, Some(base_iri), limits)? {
        graph.insert(&triple);
    }
    Ok(graph)
}

/// What the node knows about a sector pool it publishes: where the data is and its columns,
/// against which the pool's policy is checked.
#[derive(Debug, Clone)]
pub struct PoolSource {
    /// Where the data lives.
    pub connector: ConnectorRef,
    /// The columns of the data.
    pub columns: Vec<String>,
}

/// Makes every `odrl:hasPolicy` of the dataset enforceable or refuses the description: a
/// policy referred to by the uid of a template of `policies/` is filled in from it; every policy
/// must pass the node's publication check (and, when the columns are known, name only existing
/// columns). An unknown or unenforceable policy is a violation, never silently ignored.
fn attach_policies(
    graph: &mut Graph,
    dataset: NamedNodeRef<'_>,
    columns: Option<&[String]>,
    limits: InputLimits,
) -> Result<()> {
    let violation = |focus: &str, message: String| Finding {
        focus_node: focus.to_owned(),
        path: ODRL_HAS_POLICY.as_str().to_owned(),
        message,
        value: None,
        severity: Severity::Violation,
    };
    let mut violations = Vec::new();
    let referenced: Vec<Term> = graph
        .objects_for_subject_predicate(dataset, ODRL_HAS_POLICY)
        .chain(graph.objects_for_subject_predicate(dataset, ACCESS_POLICY))
        .map(TermRef::into_owned)
        .collect();
    let mut uids = Vec::new();
    for policy in referenced {
        let Term::NamedNode(uid) = policy else {
            violations.push(violation(
                dataset.as_str(),
                "a policy needs a uid: give the odrl:Offer an IRI".into(),
            ));
            continue;
        };
        uids.push(uid.clone());
        if graph.triples_for_subject(&uid).next().is_some() {
            continue;
        }
        match policy::template(uid.as_str()) {
            Some(document) => {
                for triple in rdf_input::read_triples(document.as_bytes(), RdfSyntax::JsonLd, None, limits)? {
                    graph.insert(&triple);
                }
            }
            None => violations.push(violation(
                uid.as_str(),
                format!(
                    "the policy {uid} is neither described in the document nor a template of this node ({})",
                    policy::template_uids().join(", ")
                ),
            )),
        }
    }
    // Reading policies costs a copy of the graph: skip it when nothing in it is typed ODRL.
    let mentions_odrl = graph.triples_for_predicate(rdf::TYPE).any(|t| {
        matches!(t.object, TermRef::NamedNode(class) if class.as_str().starts_with(policy::vocab::ODRL))
    });
    if violations.is_empty() && (mentions_odrl || !uids.is_empty()) {
        let triples = graph.iter().map(oxigraph::model::TripleRef::into_owned);
        match policy::policies_in_triples(triples) {
            Ok(policies) => {
                for uid in &uids {
                    if !policies.iter().any(|p| p.uid == *uid) {
                        violations.push(violation(
                            uid.as_str(),
                            format!("{uid} is not an ODRL policy: type it odrl:Offer, odrl:Set or odrl:Agreement"),
                        ));
                    }
                }
                for found in policies {
                    let checked = match columns {
                        Some(columns) => policy::validate_for_dataset(&found, columns),
                        None => policy::validate(&found),
                    };
                    violations.extend(policy_findings(found.uid.as_str(), checked.err()));
                }
            }
            Err(error) => violations.extend(policy_findings(dataset.as_str(), Some(error))),
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(CatalogError::Invalid { violations })
    }
}

/// The findings a policy error stands for: one per problem the publication check found.
fn policy_findings(focus: &str, error: Option<policy::PolicyError>) -> Vec<Finding> {
    let finding = |message: String| Finding {
        focus_node: focus.to_owned(),
        path: ODRL_HAS_POLICY.as_str().to_owned(),
        message,
        value: None,
        severity: Severity::Violation,
    };
    match error {
        None => Vec::new(),
        Some(policy::PolicyError::Unenforceable { problems }) => problems
            .iter()
            .map(|p| finding(format!("the node cannot enforce this policy: {p}")))
            .collect(),
        Some(other) => vec![finding(other.to_string())],
    }
}

/// `at` as a canonical `xsd:dateTime` (no trailing zeros in the fraction), the form Oxigraph
/// reads back, so the private record and the stored graph agree on `dct:modified`.
fn canonical_date_time(at: chrono::DateTime<chrono::Utc>) -> String {
    let text = at.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    format!("{}Z", text.trim_end_matches('0').trim_end_matches('.'))
}

/// A fresh dataset id: 12 hex digits (48 random bits).
fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// The private quads that record `record`.
fn record_quads_for(graph_name: &NamedNode, record: &DatasetRecord) -> Result<Vec<Quad>> {
    let subject: NamedOrBlankNode = graph_name.clone().into();
    let default = GraphName::DefaultGraph;
    let iri = NamedNode::new(&record.iri)
        .map_err(|e| CatalogError::Internal(format!("dataset IRI: {e}")))?;
    let mut quads = vec![
        Quad::new(
            subject.clone(),
            AGORA_HOLDER,
            Literal::from(record.holder.as_str()),
            default.clone(),
        ),
        Quad::new(subject.clone(), AGORA_DATASET_IRI, iri, default.clone()),
        Quad::new(
            subject.clone(),
            DCT_MODIFIED,
            Literal::from(record.modified.as_str()),
            default.clone(),
        ),
        Quad::new(
            subject.clone(),
            DCT_ISSUED,
            Literal::from(record.issued.as_str()),
            default.clone(),
        ),
    ];
    if let Some(connector) = &record.connector {
        let json =
            serde_json::to_string(connector).map_err(|e| CatalogError::Internal(e.to_string()))?;
        quads.push(Quad::new(
            subject,
            AGORA_CONNECTOR,
            Literal::from(json),
            default,
        ));
    }
    Ok(quads)
}

/// The private record the node keeps about one of its datasets.
#[derive(Debug, Clone)]
pub struct DatasetRecord {
    /// The id.
    pub id: String,
    /// The dataset IRI.
    pub iri: String,
    /// The `sub` of the holder who published it.
    pub holder: String,
    /// When it was first published.
    pub issued: String,
    /// When it was last written (the catalogue record's `dct:modified`).
    pub modified: String,
    /// Where its data lives.
    pub connector: Option<ConnectorRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    Create,
    Replace,
    Upsert,
}

/// Ensures the description has exactly one dataset and that it has an IRI: a blank-node
/// dataset is renamed to the minted IRI.
fn name_dataset(graph: Graph, minted: &str) -> Result<(Graph, NamedNode)> {
    let dataset = match single_dataset(&graph) {
        Ok(node) => node.into_owned(),
        Err(0) => {
            return Err(CatalogError::Invalid {
                violations: vec![Finding {
                    focus_node: minted.to_owned(),
                    path: rdf::TYPE.as_str().to_owned(),
                    message: "the description has no dcat:Dataset; type the dataset node as http://www.w3.org/ns/dcat#Dataset".into(),
                    value: None,
                    severity: Severity::Violation,
                }],
            });
        }
        Err(n) => {
            return Err(CatalogError::Invalid {
                violations: vec![Finding {
                    focus_node: minted.to_owned(),
                    path: rdf::TYPE.as_str().to_owned(),
                    message: format!(
                        "the description has {n} dcat:Dataset nodes; publish one dataset per request"
                    ),
                    value: None,
                    severity: Severity::Violation,
                }],
            });
        }
    };
    match dataset {
        NamedOrBlankNode::NamedNode(iri) => Ok((graph, iri)),
        NamedOrBlankNode::BlankNode(blank) => {
            let iri = NamedNode::new_unchecked(minted);
            let renamed = graph
                .iter()
                .map(|t| {
                    let subject: NamedOrBlankNode = if t.subject == blank.as_ref().into() {
                        iri.clone().into()
                    } else {
                        t.subject.into_owned()
                    };
                    let object: Term = if t.object == blank.as_ref().into() {
                        iri.clone().into()
                    } else {
                        t.object.into_owned()
                    };
                    Triple::new(subject, t.predicate.into_owned(), object)
                })
                .collect::<Vec<_>>();
            let mut graph = Graph::new();
            for t in &renamed {
                graph.insert(t);
            }
            Ok((graph, iri))
        }
    }
}

/// Removes what a description says in the node's stead: any catalogue record (the node
/// stamps its own: issue and change dates, origin) and the node's bookkeeping properties
/// (holder, origin, connector). A holder cannot backdate a dataset or name another holder,
/// and a description read from this node (record included) can be written back unchanged.
fn drop_node_owned_statements(graph: &mut Graph) {
    let records: HashSet<NamedOrBlankNode> = graph
        .subjects_for_predicate_object(rdf::TYPE, DCAT_CATALOG_RECORD)
        .chain(
            graph
                .triples_for_predicate(FOAF_PRIMARY_TOPIC)
                .map(|triple| triple.subject),
        )
        .map(NamedOrBlankNodeRef::into_owned)
        .collect();
    let node_owned = [
        AGORA_HOLDER,
        AGORA_ORIGIN,
        AGORA_CONNECTOR,
        AGORA_DATASET_IRI,
    ];
    let dropped: Vec<Triple> = graph
        .iter()
        .filter(|triple| {
            records.contains(&triple.subject.into_owned())
                || node_owned.contains(&triple.predicate)
                || match triple.object {
                    TermRef::NamedNode(object) => records.contains(&object.into_owned().into()),
                    TermRef::BlankNode(object) => records.contains(&object.into_owned().into()),
                    _ => false,
                }
        })
        .map(TripleRef::into_owned)
        .collect();
    for triple in &dropped {
        graph.remove(triple);
    }
}

fn add_record(
    graph: &mut Graph,
    base_iri: &str,
    dataset: NamedNodeRef<'_>,
    issued: &str,
    modified: &str,
) {
    let record = NamedNode::new_unchecked(format!("{base_iri}#record"));
    let date = |value: &str| Literal::new_typed_literal(value, xsd::DATE_TIME);
    graph.insert(&Triple::new(record.clone(), rdf::TYPE, DCAT_CATALOG_RECORD));
    graph.insert(&Triple::new(record.clone(), FOAF_PRIMARY_TOPIC, dataset));
    // DCAT-AP's record shape checks the topic's class without inference: state the superclass.
    graph.insert(&Triple::new(dataset, rdf::TYPE, DCAT_RESOURCE));
    graph.insert(&Triple::new(record.clone(), DCT_ISSUED, date(issued)));
    // mobilityDCAT-AP makes the record's creation date mandatory.
    graph.insert(&Triple::new(record.clone(), DCT_CREATED, date(issued)));
    graph.insert(&Triple::new(record.clone(), DCT_MODIFIED, date(modified)));
    graph.insert(&Triple::new(record, AGORA_ORIGIN, Literal::from("local")));
}

/// The data format of a file, or of every data file in a folder.
fn data_format(path: &Path) -> Option<&'static str> {
    let of = |p: &Path| match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "parquet" => Some("parquet"),
        "csv" => Some("csv"),
        "ndjson" | "jsonl" => Some("ndjson"),
        _ => None,
    };
    if path.is_file() {
        return of(path);
    }
    let mut found = None;
    for entry in walk(path, 4) {
        let format = of(&entry)?;
        if found.is_some_and(|f| f != format) {
            return None;
        }
        found = Some(format);
    }
    found
}

/// Files under `root`, descending at most `depth` folders (hive partitions).
fn walk(root: &Path, depth: usize) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(['.', '_']) {
            continue;
        }
        if path.is_dir() && depth > 0 {
            files.extend(walk(&path, depth - 1));
        } else if path.is_file() {
            files.push(path);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use oxigraph::model::QuadRef;

    #[test]
    fn record_times_are_canonical_date_times() {
        let at = |ms| {
            chrono::Utc
                .timestamp_millis_opt(ms)
                .single()
                .expect("valid")
        };
        assert_eq!(
            canonical_date_time(at(1_700_000_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            canonical_date_time(at(1_700_000_000_100)),
            "2023-11-14T22:13:20.1Z"
        );
        assert_eq!(
            canonical_date_time(at(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        // The store gives the same lexical form back.
        let literal =
            Literal::new_typed_literal(canonical_date_time(at(1_700_000_000_100)), xsd::DATE_TIME);
        let store = Store::new().expect("memory store");
        let g = NamedNode::new_unchecked("urn:g");
        store
            .insert(QuadRef::new(&g, &g, &literal, &g))
            .expect("insert");
        let back = store.iter().next().expect("one").expect("quad").object;
        assert_eq!(back, Term::from(literal));
    }

    /// The warmer describes every dataset once at start, then only those written since.
    #[test]
    fn warming_caches_every_dataset_then_only_the_written_ones() {
        let dir = tempfile::tempdir().unwrap();
        let options = CatalogOptions {
            public_url: "http://node-a.example".into(),
            limits: InputLimits {
                max_bytes: 1 << 20,
                max_json_depth: 32,
                max_triples: 10_000,
            },
            allow_roots: Vec::new(),
        };
        let catalog = Catalog::open(
            dir.path(),
            options,
            std::sync::Arc::new(crate::clock::SystemClock),
        )
        .unwrap();
        let fixture = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/dataset.ttl"
        ))
        .unwrap();
        let description = |i: usize| fixture.replace("grid-load-2024", &format!("grid-{i}"));
        for i in 0..3 {
            catalog
                .publish(
                    "holder",
                    description(i).as_bytes(),
                    RdfSyntax::Turtle,
                    Some(&format!("d{i}")),
                )
                .unwrap();
        }
        let held = |id: &str| {
            catalog
                .exports
                .lock()
                .unwrap()
                .holds(id, ExportFormat::JsonLd)
        };
        assert!(!held("d0"));
        let covered = catalog.warm_exports(None);
        assert_eq!(covered, Some(catalog.generation()));
        assert!(["d0", "d1", "d2"].iter().all(|id| held(id)));

        catalog
            .replace("holder", "d1", description(1).as_bytes(), RdfSyntax::Turtle)
            .unwrap();
        assert!(
            !held("d1") && held("d0"),
            "a write drops only its own dataset"
        );
        assert_eq!(catalog.warm_exports(covered), Some(catalog.generation()));
        assert!(held("d1"));
        let warm = catalog.cached_export("d1", ExportFormat::JsonLd).unwrap();
        let cold = serialize(
            &catalog.describe("d1").unwrap(),
            ExportFormat::JsonLd,
            &catalog.context,
        );
        assert_eq!(
            warm,
            Bytes::from(cold),
            "the warmed description is the current one"
        );
    }

    #[test]
    fn ids_are_safe_path_segments() {
        assert!(is_valid_id("health"));
        assert!(is_valid_id("3cb284f39fde"));
        for bad in ["", ".hidden", "a/b", "a b", "../x", &"x".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
