//! The full-text index: a tantivy index derived from the store and rebuildable from it.
//! Every write to the store is followed by a committed index update; at start the index is
//! reconciled with the store, so a crash between the two heals on restart.

use super::{CatalogError, DatasetSummary};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use tantivy::collector::{Count, FacetCollector, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{
    FacetOptions, Field, IndexRecordOption, STORED, STRING, Schema, TEXT, Value as _,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

/// The facets a search can filter on and count.
pub const FACETS: [&str; 5] = ["theme", "publisher", "format", "license", "origin"];

/// One search request.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Free text; empty means every dataset.
    pub text: String,
    /// Facet filters: facet name → required value (all must hold).
    pub filters: Vec<(String, String)>,
    /// Page size.
    pub limit: usize,
    /// Items to skip.
    pub offset: usize,
}

/// One hit.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchItem {
    /// The dataset id on its node.
    pub id: String,
    /// The dataset IRI.
    pub iri: String,
    /// The title (English when there is one).
    pub title: String,
    /// The description (English when there is one).
    pub description: String,
    /// Theme IRIs.
    pub themes: Vec<String>,
    /// The publisher's name, or its IRI when it has no name.
    pub publisher: String,
    /// The node the dataset comes from (`local` for this node).
    pub origin: String,
    /// Relevance score (higher is better); absent for an empty query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

/// A page of hits with facet counts over all matches.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// Matches in total.
    pub total: usize,
    /// This page.
    pub items: Vec<SearchItem>,
    /// Facet name → value → count over all matches.
    pub facets: BTreeMap<String, BTreeMap<String, u64>>,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    iri: Field,
    title: Field,
    description: Field,
    keywords: Field,
    themes: Field,
    publisher_name: Field,
    origin: Field,
    modified: Field,
    facets: [Field; 5],
}

/// The search index.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let id = builder.add_text_field("id", STRING | STORED);
    let iri = builder.add_text_field("iri", STORED);
    let title = builder.add_text_field("title", TEXT | STORED);
    let description = builder.add_text_field("description", TEXT | STORED);
    let keywords = builder.add_text_field("keywords", TEXT);
    let themes = builder.add_text_field("themes", STORED);
    let publisher_name = builder.add_text_field("publisher_name", TEXT | STORED);
    let origin = builder.add_text_field("origin_id", STORED);
    let modified = builder.add_text_field("modified", STORED);
    let facets = FACETS.map(|name| builder.add_facet_field(name, FacetOptions::default()));
    let fields = Fields {
        id,
        iri,
        title,
        description,
        keywords,
        themes,
        publisher_name,
        origin,
        modified,
        facets,
    };
    (builder.build(), fields)
}

fn index_error(e: tantivy::TantivyError) -> CatalogError {
    CatalogError::Internal(format!("search index: {e}"))
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it (or recreating it when its schema changed).
    pub fn open(dir: &Path) -> Result<Self, CatalogError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| CatalogError::Internal(format!("search index folder: {e}")))?;
        let (schema, fields) = schema();
        let index = match Index::open_in_dir(dir) {
            Ok(index) if index.schema() == schema => index,
            _ => {
                // Missing or outdated: the index is derived data, rebuilt from the store.
                let _ = std::fs::remove_dir_all(dir);
                std::fs::create_dir_all(dir)
                    .map_err(|e| CatalogError::Internal(format!("search index folder: {e}")))?;
                Index::create_in_dir(dir, schema).map_err(index_error)?
            }
        };
        let writer = index.writer(32 << 20).map_err(index_error)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_error)?;
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
        })
    }

    /// Replaces the documents of the given datasets and deletes `removed`, in one commit.
    pub fn apply(
        &self,
        upserts: &[DatasetSummary],
        removed: &[String],
    ) -> Result<(), CatalogError> {
        let f = self.fields;
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| CatalogError::Internal("search writer poisoned".into()))?;
        for id in removed.iter().chain(upserts.iter().map(|s| &s.id)) {
            writer.delete_term(Term::from_field_text(f.id, id));
        }
        for summary in upserts {
            let mut document = doc!(
                f.id => summary.id.as_str(),
                f.iri => summary.iri.as_str(),
                f.title => summary.title.as_str(),
                f.description => summary.description.as_str(),
                f.keywords => summary.keywords.join(" "),
                f.publisher_name => summary.publisher_label(),
                f.origin => summary.origin.as_str(),
                f.modified => summary.modified.as_str(),
            );
            for theme in &summary.themes {
                document.add_text(f.themes, theme);
            }
            for (field, values) in f.facets.iter().zip(summary.facet_values()) {
                for value in values {
                    document.add_facet(*field, tantivy::schema::Facet::from_path([value]));
                }
            }
            writer.add_document(document).map_err(index_error)?;
        }
        writer.commit().map_err(index_error)?;
        self.reader.reload().map_err(index_error)?;
        Ok(())
    }

    /// `(id, modified)` of every indexed dataset, to reconcile with the store.
    pub fn fingerprints(&self) -> Result<HashMap<String, String>, CatalogError> {
        let searcher = self.reader.searcher();
        let mut out = HashMap::new();
        for segment in searcher.segment_readers() {
            let store = segment
                .get_store_reader(64)
                .map_err(|e| CatalogError::Internal(format!("search index: {e}")))?;
            let alive = segment.alive_bitset();
            for doc_id in 0..segment.max_doc() {
                if alive.is_some_and(|a| !a.is_alive(doc_id)) {
                    continue;
                }
                let document: TantivyDocument = store.get(doc_id).map_err(index_error)?;
                let text = |field| {
                    document
                        .get_first(field)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned()
                };
                out.insert(text(self.fields.id), text(self.fields.modified));
            }
        }
        Ok(out)
    }

    /// Runs a search.
    /// Runs `query` over every dataset but the `hidden` ones (restricted datasets the requester
    /// may not see), so that totals and facet counts leave them out too.
    pub fn search(
        &self,
        query: &SearchQuery,
        hidden: &std::collections::HashSet<String>,
    ) -> Result<SearchResults, CatalogError> {
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let free_text = query.text.trim();
        if !free_text.is_empty() {
            let mut parser = QueryParser::for_index(
                &self.index,
                vec![f.title, f.description, f.keywords, f.publisher_name],
            );
            parser.set_field_boost(f.title, 3.0);
            parser.set_field_boost(f.keywords, 2.0);
            // Lenient: a stray quote or colon in a search box is not the user's error.
            let (parsed, _) = parser.parse_query_lenient(free_text);
            clauses.push((Occur::Must, parsed));
        }
        for (name, value) in &query.filters {
            let position = FACETS
                .iter()
                .position(|facet| facet == name)
                .ok_or_else(|| CatalogError::BadRequest {
                    message: format!("unknown facet `{name}`; use one of {}", FACETS.join(", ")),
                })?;
            let term = Term::from_facet(
                f.facets[position],
                &tantivy::schema::Facet::from_path([value.as_str()]),
            );
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            ));
        }
        if !hidden.is_empty() {
            if clauses.is_empty() {
                clauses.push((Occur::Must, Box::new(AllQuery)));
            }
            for id in hidden {
                clauses.push((
                    Occur::MustNot,
                    Box::new(TermQuery::new(
                        Term::from_field_text(f.id, id),
                        IndexRecordOption::Basic,
                    )),
                ));
            }
        }
        let query_obj: Box<dyn Query> = if clauses.is_empty() {
            Box::new(AllQuery)
        } else {
            Box::new(BooleanQuery::new(clauses))
        };
        let searcher = self.reader.searcher();
        let mut facet_collectors = Vec::new();
        for name in FACETS {
            let mut collector = FacetCollector::for_field(name);
            collector.add_facet("/");
            facet_collectors.push(collector);
        }
        let top = TopDocs::with_limit(query.limit.max(1))
            .and_offset(query.offset)
            .order_by_score();
        let mut multi = tantivy::collector::MultiCollector::new();
        let top_handle = multi.add_collector(top);
        let count_handle = multi.add_collector(Count);
        let facet_handles: Vec<_> = facet_collectors
            .into_iter()
            .map(|c| multi.add_collector(c))
            .collect();
        let mut fruits = searcher.search(&*query_obj, &multi).map_err(index_error)?;
        let hits = top_handle.extract(&mut fruits);
        let total = count_handle.extract(&mut fruits);
        let mut facets = BTreeMap::new();
        for (name, handle) in FACETS.iter().zip(facet_handles) {
            let counts = handle.extract(&mut fruits);
            let values = counts
                .get("/")
                .filter_map(|(facet, count)| {
                    facet.to_path().first().map(|v| ((*v).to_owned(), count))
                })
                .collect();
            facets.insert((*name).to_owned(), values);
        }
        let mut items = Vec::new();
        for (score, address) in hits.into_iter().take(query.limit) {
            let document: TantivyDocument = searcher.doc(address).map_err(index_error)?;
            let text = |field| {
                document
                    .get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            items.push(SearchItem {
                id: text(f.id),
                iri: text(f.iri),
                title: text(f.title),
                description: text(f.description),
                themes: document
                    .get_all(f.themes)
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                publisher: text(f.publisher_name),
                origin: text(f.origin),
                score: (!free_text.is_empty()).then_some(score),
            });
        }
        Ok(SearchResults {
            total,
            items,
            facets,
        })
    }
}
