//! The DCAT-AP terms the node reads, and the summary of a dataset that search and listings use.

use oxigraph::model::vocab::rdf;
use oxigraph::model::{Graph, NamedNodeRef, NamedOrBlankNodeRef, TermRef};

/// Namespace IRIs and the terms the code refers to.
pub mod terms {
    use oxigraph::model::NamedNodeRef;

    macro_rules! term {
        ($name:ident, $iri:literal) => {
            #[doc = concat!("`<", $iri, ">`")]
            pub const $name: NamedNodeRef<'static> = NamedNodeRef::new_unchecked($iri);
        };
    }
    term!(DCAT_DATASET, "http://www.w3.org/ns/dcat#Dataset");
    term!(DCAT_RESOURCE, "http://www.w3.org/ns/dcat#Resource");
    term!(
        DCAT_CATALOG_RECORD,
        "http://www.w3.org/ns/dcat#CatalogRecord"
    );
    term!(DCAT_DISTRIBUTION, "http://www.w3.org/ns/dcat#distribution");
    term!(DCAT_DATASET_LINK, "http://www.w3.org/ns/dcat#dataset");
    term!(DCAT_RECORD, "http://www.w3.org/ns/dcat#record");
    term!(DCAT_THEME, "http://www.w3.org/ns/dcat#theme");
    term!(DCAT_KEYWORD, "http://www.w3.org/ns/dcat#keyword");
    term!(DCAT_ACCESS_URL, "http://www.w3.org/ns/dcat#accessURL");
    term!(DCAT_DOWNLOAD_URL, "http://www.w3.org/ns/dcat#downloadURL");
    term!(DCT_TITLE, "http://purl.org/dc/terms/title");
    term!(DCT_DESCRIPTION, "http://purl.org/dc/terms/description");
    term!(DCT_PUBLISHER, "http://purl.org/dc/terms/publisher");
    term!(DCT_FORMAT, "http://purl.org/dc/terms/format");
    term!(DCT_LICENSE, "http://purl.org/dc/terms/license");
    term!(DCT_ISSUED, "http://purl.org/dc/terms/issued");
    term!(DCT_CREATED, "http://purl.org/dc/terms/created");
    term!(DCT_MODIFIED, "http://purl.org/dc/terms/modified");
    term!(DCT_IDENTIFIER, "http://purl.org/dc/terms/identifier");
    term!(FOAF_NAME, "http://xmlns.com/foaf/0.1/name");
    term!(FOAF_PRIMARY_TOPIC, "http://xmlns.com/foaf/0.1/primaryTopic");
    term!(ODRL_HAS_POLICY, "http://www.w3.org/ns/odrl/2/hasPolicy");
    term!(AGORA_HOLDER, "https://w3id.org/agora/ns#holder");
    term!(AGORA_ORIGIN, "https://w3id.org/agora/ns#origin");
    term!(AGORA_CONNECTOR, "https://w3id.org/agora/ns#connector");
    term!(AGORA_DATASET_IRI, "https://w3id.org/agora/ns#datasetIri");
    /// The theme that selects the HealthDCAT-AP shapes.
    pub const THEME_HEALTH: &str =
        "http://publications.europa.eu/resource/authority/data-theme/HEAL";
    /// The theme that selects the mobilityDCAT-AP shapes.
    pub const THEME_TRANSPORT: &str =
        "http://publications.europa.eu/resource/authority/data-theme/TRAN";
}

use terms::*;

/// What search and listings show of a dataset, extracted from its graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetSummary {
    /// The id on its origin node.
    pub id: String,
    /// The dataset IRI.
    pub iri: String,
    /// The English title, else any title.
    pub title: String,
    /// The English description, else any description.
    pub description: String,
    /// Keywords in every language.
    pub keywords: Vec<String>,
    /// Theme IRIs.
    pub themes: Vec<String>,
    /// Publisher IRI (or blank node label).
    pub publisher: String,
    /// Publisher name.
    pub publisher_name: String,
    /// Distribution formats.
    pub formats: Vec<String>,
    /// Distribution licences.
    pub licenses: Vec<String>,
    /// `local` or the peer id.
    pub origin: String,
    /// The record's `dct:modified`, as written.
    pub modified: String,
}

impl DatasetSummary {
    /// Reads the summary of `dataset` out of its graph.
    pub fn from_graph(graph: &Graph, id: &str, dataset: NamedNodeRef<'_>, origin: &str) -> Self {
        let subject: NamedOrBlankNodeRef<'_> = dataset.into();
        let iris = |subject: NamedOrBlankNodeRef<'_>, predicate| -> Vec<String> {
            let mut values: Vec<String> = graph
                .objects_for_subject_predicate(subject, predicate)
                .filter_map(|o| match o {
                    TermRef::NamedNode(n) => Some(n.as_str().to_owned()),
                    _ => None,
                })
                .collect();
            values.sort();
            values.dedup();
            values
        };
        let mut formats = Vec::new();
        let mut licenses = Vec::new();
        for distribution in graph.objects_for_subject_predicate(subject, DCAT_DISTRIBUTION) {
            if let Some(node) = as_subject(distribution) {
                formats.extend(iris(node, DCT_FORMAT));
                licenses.extend(iris(node, DCT_LICENSE));
            }
        }
        formats.sort();
        formats.dedup();
        licenses.sort();
        licenses.dedup();
        let publisher_node = graph.object_for_subject_predicate(subject, DCT_PUBLISHER);
        let publisher_name = publisher_node
            .and_then(as_subject)
            .map(|p| preferred_literal(graph, p, FOAF_NAME))
            .unwrap_or_default();
        let modified = graph
            .subject_for_predicate_object(FOAF_PRIMARY_TOPIC, dataset)
            .and_then(|record| graph.object_for_subject_predicate(record, DCT_MODIFIED))
            .map(|m| match m {
                TermRef::Literal(l) => l.value().to_owned(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        let mut keywords: Vec<String> = graph
            .objects_for_subject_predicate(subject, DCAT_KEYWORD)
            .filter_map(|o| match o {
                TermRef::Literal(l) => Some(l.value().to_owned()),
                _ => None,
            })
            .collect();
        keywords.sort();
        Self {
            id: id.to_owned(),
            iri: dataset.as_str().to_owned(),
            title: preferred_literal(graph, subject, DCT_TITLE),
            description: preferred_literal(graph, subject, DCT_DESCRIPTION),
            keywords,
            themes: iris(subject, DCAT_THEME),
            publisher: match publisher_node {
                Some(TermRef::NamedNode(n)) => n.as_str().to_owned(),
                _ => publisher_name.clone(),
            },
            publisher_name,
            formats,
            licenses,
            origin: origin.to_owned(),
            modified,
        }
    }

    /// The publisher's name, or its IRI.
    pub fn publisher_label(&self) -> &str {
        if self.publisher_name.is_empty() {
            &self.publisher
        } else {
            &self.publisher_name
        }
    }

    /// Values per facet, in the order of [`super::search::FACETS`].
    pub fn facet_values(&self) -> [Vec<String>; 5] {
        let single = |v: &String| {
            if v.is_empty() {
                vec![]
            } else {
                vec![v.clone()]
            }
        };
        [
            self.themes.clone(),
            single(&self.publisher),
            self.formats.clone(),
            self.licenses.clone(),
            single(&self.origin),
        ]
    }
}

/// Finds the one `dcat:Dataset` a description must contain.
pub fn single_dataset(graph: &Graph) -> Result<NamedOrBlankNodeRef<'_>, usize> {
    let mut datasets = graph.subjects_for_predicate_object(rdf::TYPE, DCAT_DATASET);
    match (datasets.next(), datasets.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(0),
        (Some(_), Some(_)) => Err(2 + datasets.count()),
    }
}

/// A term usable as a subject.
pub fn as_subject(term: TermRef<'_>) -> Option<NamedOrBlankNodeRef<'_>> {
    match term {
        TermRef::NamedNode(n) => Some(n.into()),
        TermRef::BlankNode(b) => Some(b.into()),
        _ => None,
    }
}

/// The English literal value of `predicate`, else the first one in a stable order.
fn preferred_literal(
    graph: &Graph,
    subject: NamedOrBlankNodeRef<'_>,
    predicate: NamedNodeRef<'_>,
) -> String {
    let mut literals: Vec<(bool, String)> = graph
        .objects_for_subject_predicate(subject, predicate)
        .filter_map(|o| match o {
            TermRef::Literal(l) => Some((
                !l.language().is_some_and(|lang| lang.starts_with("en")),
                l.value().to_owned(),
            )),
            _ => None,
        })
        .collect();
    literals.sort();
    literals
        .into_iter()
        .next()
        .map(|(_, v)| v)
        .unwrap_or_default()
}
