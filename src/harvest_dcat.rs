//! Harvesting plain DCAT-AP endpoints: an open-data portal joins the federation as a read-only
//! peer (`kind = "dcat"`, `--peer ID=dcat+URL`). CKAN's ckanext-dcat serves its catalogue at
//! `/catalog.ttl?page=N` with `hydra:PagedCollection` / `hydra:nextPage` (newer versions add
//! `hydra:next`); piveau and others page with `hydra:PartialCollectionView` / `hydra:next`; some
//! servers send `Link: rel="next"`. All of them are followed.
//!
//! Each call goes through the same guards as the DSP crawler ([`crate::federation`]): the
//! contracts' address policy, no redirect, [`MAX_RESPONSE_BYTES`] and [`CALL_TIMEOUT`] per call;
//! a harvest reads at most [`MAX_PAGES`] pages, [`MAX_HARVEST_BYTES`] in all, within
//! [`MAX_HARVEST_TIME`], and a next page must be on the catalogue's own endpoint and must not
//! have been read already (a loop). Pages are read by the node's guarded RDF input (body cap,
//! JSON nesting cap, no remote `@context`, triple cap); RDF/XML is read only without a DTD (the
//! entity expansion of `SECURITY.md` §2 needs one).
//!
//! What is kept: every `dcat:Dataset` with its bounded description (the triples about it, then
//! about the blank nodes and described resources it points to — distributions, publisher,
//! contact point, periods, checksums — up to [`MAX_DEPTH`] hops), and the catalogue's own
//! title, description and publisher on the peer graph's node. A dataset whose IRI is not under
//! the peer's base URL refuses the whole harvest (as for DSP peers: a portal speaks only for
//! its own datasets, and the last good harvest stays). Offers are not harvested (a DCAT-AP
//! portal has none: negotiation is not possible) and nothing in the node's own namespace is
//! taken. The descriptions are then made DCAT-AP 3 conformant where the portal's usual output
//! is not: format names (`"CSV"`) become EU file-type IRIs, media types (`"text/csv"`) IANA
//! IRIs, language codes (`"en"`) EU language IRIs, and values get the class the DCAT-AP range
//! of their property states (`dct:license` → `dct:LicenseDocument`, …), as RDFS entails.
//!
//! The harvest replaces the peer's graph through [`Catalog::replace_peer`] with the same
//! provenance as a DSP harvest ([`crate::federation::peer_graph_of`]), minus the participant
//! id a portal does not have.

use crate::catalog::{self, AGORA_PARTICIPANT, Catalog, DCAT_CATALOG, terms};
use crate::clock::SharedClock;
use crate::config::PeerConfig;
use crate::federation::{
    CALL_TIMEOUT, CrawlError, MAX_RESPONSE_BYTES, PeerClient, next_link, peer_graph_of,
};
use crate::rdf_input::{self, InputLimits, RdfSyntax};
use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::vocab::rdf;
use oxigraph::model::{BlankNode, Graph, NamedNode, NamedNodeRef, NamedOrBlankNode, Term, Triple};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Most pages one harvest reads.
pub const MAX_PAGES: usize = 1000;
/// Most bytes one harvest reads, all pages together.
pub const MAX_HARVEST_BYTES: u64 = 512 << 20;
/// Longest one harvest may take, all pages together.
pub const MAX_HARVEST_TIME: Duration = Duration::from_secs(600);
/// Most datasets one portal may bring.
pub const MAX_DATASETS: usize = 200_000;
/// Most triples one portal's graph may hold.
pub const MAX_TRIPLES: usize = 4_000_000;
/// Most triples read from one page.
pub const MAX_PAGE_TRIPLES: usize = 1_000_000;
/// Hops followed from a dataset (or the catalogue) into the resources it points to.
pub const MAX_DEPTH: usize = 4;
/// Most triples kept for one dataset's description.
const MAX_DESCRIPTION_TRIPLES: usize = 20_000;

const AGORA_NS: &str = "https://w3id.org/agora/ns#";
const HYDRA: &str = "http://www.w3.org/ns/hydra/core#";
const DCAT: &str = "http://www.w3.org/ns/dcat#";
const DCT: &str = "http://purl.org/dc/terms/";
const FILE_TYPE: &str = "http://publications.europa.eu/resource/authority/file-type/";
const LANGUAGE: &str = "http://publications.europa.eu/resource/authority/language/";
const MEDIA_TYPES: &str = "http://www.iana.org/assignments/media-types/";

/// The syntaxes asked for, best first.
const ACCEPT: &str = "text/turtle, application/ld+json;q=0.9, application/rdf+xml;q=0.5";

/// The syntax of one catalogue page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSyntax {
    /// Turtle, JSON-LD or N-Triples, through [`rdf_input`].
    Guarded(RdfSyntax),
    /// RDF/XML without a DTD.
    RdfXml,
}

impl PageSyntax {
    /// The syntax of a page from its `Content-Type`, else from its URL's extension (CKAN's
    /// `/catalog.ttl`, `/catalog.rdf`, `/catalog.jsonld`).
    pub fn detect(content_type: Option<&str>, url: &str) -> Option<Self> {
        let essence = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("application/rdf+xml") => return Some(Self::RdfXml),
            Some(other) => {
                if let Some(syntax) = RdfSyntax::from_content_type(other) {
                    return Some(Self::Guarded(syntax));
                }
            }
            None => {}
        }
        let path = url.split(['?', '#']).next().unwrap_or_default();
        let extension = path.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
        match extension {
            "rdf" | "xml" => Some(Self::RdfXml),
            other => RdfSyntax::from_extension(other).map(Self::Guarded),
        }
    }
}

/// One catalogue page, read.
#[derive(Debug, Default)]
pub struct CatalogPage {
    /// The datasets it lists, all under the peer's base URL.
    pub datasets: Vec<NamedNode>,
    /// Their descriptions (bounded), blank nodes renamed apart from every other page.
    pub triples: Vec<Triple>,
    /// What the portal says of its catalogue: (predicate, value) pairs to put on the peer
    /// graph's node, with the descriptions of the values in `triples`.
    pub catalog: Vec<(NamedNode, Term)>,
    /// The portal's `dcat:Catalog` IRI, if it names one.
    pub catalog_iri: Option<String>,
    /// The next page, as the page's Hydra controls state it (absolute, not yet checked).
    pub next: Option<String>,
}

/// Reads one catalogue page fetched from `page_url` of the peer whose base URL is `base`.
pub fn parse_page(
    body: &[u8],
    syntax: PageSyntax,
    page_url: &str,
    base: &str,
) -> Result<CatalogPage, CrawlError> {
    let triples = read_page(body, syntax, page_url)?;
    select(triples, page_url, base)
}

fn limits() -> InputLimits {
    InputLimits {
        max_bytes: usize::try_from(MAX_RESPONSE_BYTES).unwrap_or(usize::MAX),
        max_json_depth: 64,
        max_triples: MAX_PAGE_TRIPLES,
    }
}

fn read_page(body: &[u8], syntax: PageSyntax, page_url: &str) -> Result<Vec<Triple>, CrawlError> {
    let malformed = |e: String| {
        CrawlError::Malformed(format!(
            "the catalogue page {} is not usable RDF: {e}",
            short(page_url)
        ))
    };
    match syntax {
        PageSyntax::Guarded(syntax) => {
            rdf_input::read_triples(body, syntax, Some(page_url), limits())
                .map_err(|e| malformed(e.to_string()))
        }
        PageSyntax::RdfXml => {
            let limits = limits();
            if body.len() > limits.max_bytes {
                return Err(malformed(format!("larger than {} bytes", limits.max_bytes)));
            }
            let text = std::str::from_utf8(body)
                .map_err(|e| malformed(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
            // Entities are declared only in a DTD; without one nothing can expand.
            if text.contains("<!DOCTYPE") || text.contains("<!ENTITY") {
                return Err(malformed(
                    "RDF/XML with a DTD is refused (entity expansion)".into(),
                ));
            }
            let parser = RdfParser::from_format(RdfFormat::RdfXml)
                .with_base_iri(page_url)
                .map_err(|e| malformed(e.to_string()))?;
            let mut triples = Vec::new();
            for quad in parser.for_slice(text) {
                let quad = quad.map_err(|e| malformed(e.to_string()))?;
                triples.push(Triple::from(quad));
                if triples.len() > limits.max_triples {
                    return Err(malformed(format!(
                        "more than {} triples",
                        limits.max_triples
                    )));
                }
            }
            Ok(triples)
        }
    }
}

fn iri(text: &str) -> NamedNode {
    NamedNode::new_unchecked(text)
}

fn ns(namespace: &str, local: &str) -> NamedNode {
    iri(&format!("{namespace}{local}"))
}

fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Renames the page's blank nodes apart from every other page's, so that two pages' `_:b0`
/// never merge.
fn rename_blank_nodes(triples: Vec<Triple>) -> Vec<Triple> {
    let mut fresh: HashMap<BlankNode, BlankNode> = HashMap::new();
    let mut rename = |b: &BlankNode| fresh.entry(b.clone()).or_default().clone();
    triples
        .into_iter()
        .map(|t| {
            let subject = match t.subject {
                NamedOrBlankNode::BlankNode(b) => NamedOrBlankNode::BlankNode(rename(&b)),
                other => other,
            };
            let object = match t.object {
                Term::BlankNode(b) => Term::BlankNode(rename(&b)),
                other => other,
            };
            Triple::new(subject, t.predicate, object)
        })
        .collect()
}

/// Picks the datasets, their descriptions, the catalogue's description and the next page
/// out of one page's triples.
fn select(triples: Vec<Triple>, page_url: &str, base: &str) -> Result<CatalogPage, CrawlError> {
    let triples = rename_blank_nodes(triples);
    let mut by_subject: HashMap<NamedOrBlankNode, Vec<usize>> = HashMap::new();
    for (i, t) in triples.iter().enumerate() {
        by_subject.entry(t.subject.clone()).or_default().push(i);
    }
    let typed = |class: &str| -> HashSet<NamedOrBlankNode> {
        triples
            .iter()
            .filter(|t| t.predicate == rdf::TYPE)
            .filter(|t| matches!(&t.object, Term::NamedNode(c) if c.as_str() == class))
            .map(|t| t.subject.clone())
            .collect()
    };
    let datasets = typed(terms::DCAT_DATASET.as_str());
    let catalogs = typed(DCAT_CATALOG.as_str());
    let records = typed(&format!("{DCAT}CatalogRecord"));
    let mut controls = typed(&format!("{HYDRA}PagedCollection"));
    controls.extend(typed(&format!("{HYDRA}PartialCollectionView")));
    // Nodes a description never walks into: other datasets, catalogues, records and the
    // paging controls are not part of one dataset's description.
    let stops: HashSet<&NamedOrBlankNode> = datasets
        .iter()
        .chain(&catalogs)
        .chain(&records)
        .chain(&controls)
        .collect();

    let prefix = format!("{}/", base.trim_end_matches('/'));
    let mut page = CatalogPage::default();
    let mut dataset_iris: Vec<NamedNode> = Vec::new();
    for dataset in &datasets {
        let NamedOrBlankNode::NamedNode(node) = dataset else {
            return Err(CrawlError::Malformed(
                "the catalogue lists a dataset without an IRI (a blank node)".into(),
            ));
        };
        if !node.as_str().starts_with(&prefix) || node.as_str().starts_with("urn:agora:") {
            return Err(CrawlError::Malformed(format!(
                "the portal lists dataset {}, which is not under its base URL {base}: a portal speaks only for its own datasets, harvest refused",
                short(node.as_str())
            )));
        }
        dataset_iris.push(node.clone());
    }
    dataset_iris.sort();
    let keep = |t: &Triple, from_dataset: bool| -> bool {
        if t.predicate.as_str().starts_with(AGORA_NS) {
            return false;
        }
        if t.predicate == rdf::TYPE
            && matches!(&t.object, Term::NamedNode(c) if c.as_ref() == DCAT_CATALOG)
        {
            return false;
        }
        // A portal has no offers; a dataset's `odrl:hasPolicy` is what negotiation reads.
        !(from_dataset && t.predicate == terms::ODRL_HAS_POLICY)
    };
    let mut seen_triples: HashSet<usize> = HashSet::new();
    for dataset in &dataset_iris {
        let start = NamedOrBlankNode::NamedNode(dataset.clone());
        let mut kept = 0usize;
        let mut visited: HashSet<NamedOrBlankNode> = HashSet::from([start.clone()]);
        let mut queue = VecDeque::from([(start, 0usize)]);
        while let Some((subject, depth)) = queue.pop_front() {
            let is_dataset = depth == 0;
            for &i in by_subject
                .get(&subject)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let t = &triples[i];
                if !keep(t, is_dataset) {
                    continue;
                }
                if seen_triples.insert(i) {
                    page.triples.push(t.clone());
                }
                kept += 1;
                if kept > MAX_DESCRIPTION_TRIPLES {
                    return Err(CrawlError::Malformed(format!(
                        "the description of dataset {} has more than {MAX_DESCRIPTION_TRIPLES} triples",
                        short(dataset.as_str())
                    )));
                }
                let next: Option<NamedOrBlankNode> = match &t.object {
                    Term::NamedNode(n) => Some(n.clone().into()),
                    Term::BlankNode(b) => Some(b.clone().into()),
                    _ => None,
                };
                if let Some(next) = next
                    && depth < MAX_DEPTH
                    && t.predicate != rdf::TYPE
                    && !stops.contains(&next)
                    && by_subject.contains_key(&next)
                    && visited.insert(next.clone())
                {
                    queue.push_back((next, depth + 1));
                }
            }
        }
    }
    // A catalogue record of a kept dataset (piveau writes them): its dates feed the index.
    let kept: HashSet<&NamedNode> = dataset_iris.iter().collect();
    let primary_topic = NamedNodeRef::new_unchecked("http://xmlns.com/foaf/0.1/primaryTopic");
    for record in &records {
        let ids = by_subject
            .get(record)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let of_kept = ids.iter().any(|&i| {
            triples[i].predicate == primary_topic
                && matches!(&triples[i].object, Term::NamedNode(n) if kept.contains(n))
        });
        let under_base =
            matches!(record, NamedOrBlankNode::NamedNode(n) if n.as_str().starts_with(&prefix));
        if of_kept && under_base {
            for &i in ids {
                if keep(&triples[i], false) && seen_triples.insert(i) {
                    page.triples.push(triples[i].clone());
                }
            }
        }
    }
    page.datasets = dataset_iris;

    // The catalogue itself: the one that lists datasets, else the one there is. Among
    // several, a named one by its IRI before a blank one by where the page first describes
    // it; a blank node's label is random per read, so ordering by it would make the same
    // page describe another catalogue the next time it is read.
    let first_described = |c: &NamedOrBlankNode| {
        by_subject
            .get(c)
            .and_then(|ids| ids.first().copied())
            .unwrap_or(usize::MAX)
    };
    let order = |c: &&NamedOrBlankNode| match c {
        NamedOrBlankNode::NamedNode(n) => (0, n.as_str().to_owned(), 0),
        NamedOrBlankNode::BlankNode(_) => (1, String::new(), first_described(c)),
    };
    let catalog = catalogs
        .iter()
        .filter(|c| {
            by_subject.get(*c).is_some_and(|ids| {
                ids.iter()
                    .any(|&i| triples[i].predicate == terms::DCAT_DATASET_LINK)
            })
        })
        .min_by_key(order)
        .or_else(|| catalogs.iter().min_by_key(order));
    if let Some(catalog) = catalog {
        if let NamedOrBlankNode::NamedNode(n) = catalog {
            page.catalog_iri = Some(n.as_str().to_owned());
        }
        let described: HashSet<&str> = CATALOG_PROPERTIES.iter().copied().collect();
        for &i in by_subject
            .get(catalog)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let t = &triples[i];
            if !described.contains(t.predicate.as_str()) {
                continue;
            }
            page.catalog.push((t.predicate.clone(), t.object.clone()));
            let value: Option<NamedOrBlankNode> = match &t.object {
                Term::NamedNode(n) => Some(n.clone().into()),
                Term::BlankNode(b) => Some(b.clone().into()),
                _ => None,
            };
            let Some(value) = value else { continue };
            let mut visited = HashSet::from([value.clone()]);
            let mut queue = VecDeque::from([(value, 1usize)]);
            while let Some((subject, depth)) = queue.pop_front() {
                if stops.contains(&subject) {
                    continue;
                }
                for &j in by_subject
                    .get(&subject)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    let t = &triples[j];
                    if !keep(t, false) {
                        continue;
                    }
                    if seen_triples.insert(j) {
                        page.triples.push(t.clone());
                    }
                    let next: Option<NamedOrBlankNode> = match &t.object {
                        Term::NamedNode(n) => Some(n.clone().into()),
                        Term::BlankNode(b) => Some(b.clone().into()),
                        _ => None,
                    };
                    if let Some(next) = next
                        && depth < MAX_DEPTH
                        && t.predicate != rdf::TYPE
                        && by_subject.contains_key(&next)
                        && visited.insert(next.clone())
                    {
                        queue.push_back((next, depth + 1));
                    }
                }
            }
        }
    }

    page.next = hydra_next(&triples, &controls, page_url)?;
    Ok(page)
}

/// What a portal's catalogue may say of itself on the peer graph's node (never its
/// provenance, which the harvester writes).
const CATALOG_PROPERTIES: &[&str] = &[
    "http://purl.org/dc/terms/title",
    "http://purl.org/dc/terms/description",
    "http://purl.org/dc/terms/publisher",
    "http://purl.org/dc/terms/language",
    "http://purl.org/dc/terms/license",
    "http://purl.org/dc/terms/rights",
    "http://purl.org/dc/terms/issued",
    "http://purl.org/dc/terms/modified",
    "http://purl.org/dc/terms/spatial",
    "http://purl.org/dc/terms/creator",
    "http://xmlns.com/foaf/0.1/homepage",
    "http://www.w3.org/ns/dcat#themeTaxonomy",
];

/// The next page named by the page's Hydra controls (`hydra:next`, or the deprecated
/// `hydra:nextPage` ckanext-dcat writes, as an IRI or a literal).
fn hydra_next(
    triples: &[Triple],
    controls: &HashSet<NamedOrBlankNode>,
    page_url: &str,
) -> Result<Option<String>, CrawlError> {
    let next = ns(HYDRA, "next");
    let next_page = ns(HYDRA, "nextPage");
    let mut found: Vec<String> = triples
        .iter()
        .filter(|t| controls.contains(&t.subject))
        .filter(|t| t.predicate == next || t.predicate == next_page)
        .filter_map(|t| match &t.object {
            Term::NamedNode(n) => Some(n.as_str().to_owned()),
            Term::Literal(l) => Some(l.value().trim().to_owned()),
            Term::BlankNode(_) => None,
            #[allow(unreachable_patterns)]
            _ => None,
        })
        .collect();
    found.sort();
    found.dedup();
    let resolved: Vec<String> = found
        .iter()
        .map(|target| resolve(page_url, target))
        .collect::<Result<_, _>>()?;
    let mut resolved = resolved;
    resolved.dedup();
    match resolved.len() {
        0 => Ok(None),
        1 => Ok(resolved.pop()),
        _ => Err(CrawlError::Malformed(format!(
            "the catalogue page {} names {} different next pages",
            short(page_url),
            resolved.len()
        ))),
    }
}

/// Resolves a next-page reference (absolute, `/path` or `?query`) against the page's URL.
pub fn resolve(page_url: &str, target: &str) -> Result<String, CrawlError> {
    if target.starts_with("http://") || target.starts_with("https://") {
        return Ok(target.to_owned());
    }
    let scheme_end = page_url.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = page_url[scheme_end..]
        .find(['/', '?', '#'])
        .map(|i| scheme_end + i)
        .unwrap_or(page_url.len());
    let path_end = page_url.find(['?', '#']).unwrap_or(page_url.len());
    if target.starts_with('/') && !target.starts_with("//") {
        Ok(format!("{}{target}", &page_url[..authority_end]))
    } else if target.starts_with('?') {
        Ok(format!("{}{target}", &page_url[..path_end]))
    } else {
        Err(CrawlError::Malformed(format!(
            "the next page `{}` is not a URL",
            short(target)
        )))
    }
}

// ------------------------------------------------------------------------------ normalising

/// Format names portals write (CKAN's resource `format`), upper-cased without a leading dot,
/// and their EU file-type codes.
const FILE_TYPES: &[(&str, &str)] = &[
    ("CSV", "CSV"),
    ("TEXT/CSV", "CSV"),
    ("TSV", "TSV"),
    ("JSON", "JSON"),
    ("APPLICATION/JSON", "JSON"),
    ("GEOJSON", "GEOJSON"),
    ("APPLICATION/GEO+JSON", "GEOJSON"),
    ("JSON-LD", "JSON_LD"),
    ("JSONLD", "JSON_LD"),
    ("XML", "XML"),
    ("RDF", "RDF_XML"),
    ("RDF/XML", "RDF_XML"),
    ("RDF+XML", "RDF_XML"),
    ("TTL", "RDF_TURTLE"),
    ("TURTLE", "RDF_TURTLE"),
    ("NT", "RDF_N_TRIPLES"),
    ("N-TRIPLES", "RDF_N_TRIPLES"),
    ("ZIP", "ZIP"),
    ("PARQUET", "PARQUET"),
    ("PDF", "PDF"),
    ("XLS", "XLS"),
    ("XLSX", "XLSX"),
    ("ODS", "ODS"),
    ("HTML", "HTML"),
    ("TXT", "TXT"),
    ("SHP", "SHP"),
    ("SHAPEFILE", "SHP"),
    ("ESRI SHAPEFILE", "SHP"),
    ("KML", "KML"),
    ("GML", "GML"),
    ("GPKG", "GPKG"),
    ("GEOPACKAGE", "GPKG"),
    ("WMS", "WMS_SRVC"),
    ("WFS", "WFS_SRVC"),
];

/// ISO 639-1 codes of the EU's official languages and their EU language-table codes.
const LANGUAGES: &[(&str, &str)] = &[
    ("bg", "BUL"),
    ("cs", "CES"),
    ("da", "DAN"),
    ("de", "DEU"),
    ("el", "ELL"),
    ("en", "ENG"),
    ("es", "SPA"),
    ("et", "EST"),
    ("fi", "FIN"),
    ("fr", "FRA"),
    ("ga", "GLE"),
    ("hr", "HRV"),
    ("hu", "HUN"),
    ("it", "ITA"),
    ("lt", "LIT"),
    ("lv", "LAV"),
    ("mt", "MLT"),
    ("nl", "NLD"),
    ("pl", "POL"),
    ("pt", "POR"),
    ("ro", "RON"),
    ("sk", "SLK"),
    ("sl", "SLV"),
    ("sv", "SWE"),
];

/// The DCAT-AP 3 range of a property whose values are resources, for the classes that ask
/// nothing more of a value than its type (`foaf:Agent` needs a name and `skos:Concept` a
/// label, so they are never added).
const RANGES: &[(&str, &str)] = &[
    (
        "http://purl.org/dc/terms/license",
        "http://purl.org/dc/terms/LicenseDocument",
    ),
    (
        "http://purl.org/dc/terms/accessRights",
        "http://purl.org/dc/terms/RightsStatement",
    ),
    (
        "http://purl.org/dc/terms/rights",
        "http://purl.org/dc/terms/RightsStatement",
    ),
    (
        "http://purl.org/dc/terms/accrualPeriodicity",
        "http://purl.org/dc/terms/Frequency",
    ),
    (
        "http://purl.org/dc/terms/language",
        "http://purl.org/dc/terms/LinguisticSystem",
    ),
    (
        "http://purl.org/dc/terms/spatial",
        "http://purl.org/dc/terms/Location",
    ),
    (
        "http://purl.org/dc/terms/format",
        "http://purl.org/dc/terms/MediaTypeOrExtent",
    ),
    (
        "http://www.w3.org/ns/dcat#mediaType",
        "http://purl.org/dc/terms/MediaType",
    ),
    (
        "http://www.w3.org/ns/dcat#compressFormat",
        "http://purl.org/dc/terms/MediaType",
    ),
    (
        "http://www.w3.org/ns/dcat#packageFormat",
        "http://purl.org/dc/terms/MediaType",
    ),
    (
        "http://purl.org/dc/terms/conformsTo",
        "http://purl.org/dc/terms/Standard",
    ),
    (
        "http://xmlns.com/foaf/0.1/homepage",
        "http://xmlns.com/foaf/0.1/Document",
    ),
    (
        "http://xmlns.com/foaf/0.1/page",
        "http://xmlns.com/foaf/0.1/Document",
    ),
    (
        "http://www.w3.org/ns/dcat#landingPage",
        "http://xmlns.com/foaf/0.1/Document",
    ),
    (
        "http://purl.org/dc/terms/provenance",
        "http://purl.org/dc/terms/ProvenanceStatement",
    ),
    (
        "http://purl.org/dc/terms/temporal",
        "http://purl.org/dc/terms/PeriodOfTime",
    ),
    (
        "http://www.w3.org/ns/dcat#contactPoint",
        "http://www.w3.org/2006/vcard/ns#Kind",
    ),
];

/// The EU file-type IRI for a format name, if it is a known one.
pub fn file_type(name: &str) -> Option<NamedNode> {
    let key = name.trim().trim_start_matches('.').to_ascii_uppercase();
    FILE_TYPES
        .iter()
        .find(|(written, _)| *written == key)
        .map(|(_, code)| ns(FILE_TYPE, code))
}

/// The EU language IRI for an ISO 639-1 code (`en`, `en-GB`) or an EU code (`ENG`).
pub fn language(code: &str) -> Option<NamedNode> {
    let code = code.trim();
    let primary = code.split(['-', '_']).next().unwrap_or_default();
    if let Some((_, eu)) = LANGUAGES
        .iter()
        .find(|(iso, _)| iso.eq_ignore_ascii_case(primary))
    {
        return Some(ns(LANGUAGE, eu));
    }
    LANGUAGES
        .iter()
        .find(|(_, eu)| eu.eq_ignore_ascii_case(code))
        .map(|(_, eu)| ns(LANGUAGE, eu))
}

/// The IANA IRI of a media type written as text (`text/csv`).
pub fn media_type(text: &str) -> Option<NamedNode> {
    let essence = text.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, subtype) = essence.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    (token(kind) && token(subtype)).then(|| ns(MEDIA_TYPES, &essence))
}

/// Makes a harvested description DCAT-AP 3 conformant where portals usually are not: literal
/// formats, media types and languages become the IRIs the shapes ask for (unknown ones stay
/// as the portal wrote them), and resource values get the class of their property's range.
pub fn normalise(graph: &mut Graph) {
    let format = ns(DCT, "format");
    let language_p = ns(DCT, "language");
    let media = [
        ns(DCAT, "mediaType"),
        ns(DCAT, "compressFormat"),
        ns(DCAT, "packageFormat"),
    ];
    let mut remove = Vec::new();
    let mut add = Vec::new();
    for t in graph.iter() {
        let oxigraph::model::TermRef::Literal(literal) = t.object else {
            continue;
        };
        let predicate = t.predicate.into_owned();
        let replacement = if predicate == format {
            file_type(literal.value())
        } else if predicate == language_p {
            language(literal.value())
        } else if media.contains(&predicate) {
            media_type(literal.value())
        } else {
            None
        };
        if let Some(value) = replacement {
            remove.push(t.into_owned());
            add.push(Triple::new(t.subject.into_owned(), predicate, value));
        }
    }
    for t in &remove {
        graph.remove(t);
    }
    for t in &add {
        graph.insert(t);
    }
    let mut typed = Vec::new();
    // A publisher or creator with a name is a `foaf:Agent` (DCAT-AP's range), whatever
    // subclass the portal wrote (`foaf:Organization`).
    let name = ns("http://xmlns.com/foaf/0.1/", "name");
    for property in [ns(DCT, "publisher"), ns(DCT, "creator")] {
        for t in graph.triples_for_predicate(&property) {
            let agent: NamedOrBlankNode = match t.object {
                oxigraph::model::TermRef::NamedNode(n) => n.into_owned().into(),
                oxigraph::model::TermRef::BlankNode(b) => b.into_owned().into(),
                _ => continue,
            };
            if graph.object_for_subject_predicate(&agent, &name).is_some() {
                typed.push(Triple::new(
                    agent,
                    rdf::TYPE,
                    ns("http://xmlns.com/foaf/0.1/", "Agent"),
                ));
            }
        }
    }
    for (property, class) in RANGES {
        let property = NamedNodeRef::new_unchecked(property);
        let class = iri(class);
        for t in graph.triples_for_predicate(property) {
            let value: NamedOrBlankNode = match t.object {
                oxigraph::model::TermRef::NamedNode(n) => n.into_owned().into(),
                oxigraph::model::TermRef::BlankNode(b) => b.into_owned().into(),
                _ => continue,
            };
            typed.push(Triple::new(value, rdf::TYPE, class.clone()));
        }
    }
    for t in &typed {
        graph.insert(t);
    }
}

// ------------------------------------------------------------------------------ the graph

/// What a whole harvest read, page by page.
#[derive(Debug, Default)]
pub struct Harvest {
    datasets: Vec<NamedNode>,
    seen: HashSet<NamedNode>,
    triples: Vec<Triple>,
    catalog: Vec<(NamedNode, Term)>,
    catalog_iri: Option<String>,
}

impl Harvest {
    /// Adds one page; fails past the caps on datasets and triples.
    pub fn add(&mut self, page: CatalogPage) -> Result<(), CrawlError> {
        for dataset in page.datasets {
            if self.seen.insert(dataset.clone()) {
                self.datasets.push(dataset);
            }
        }
        if self.datasets.len() > MAX_DATASETS {
            return Err(CrawlError::Malformed(format!(
                "more than {MAX_DATASETS} datasets"
            )));
        }
        self.triples.extend(page.triples);
        if self.triples.len() > MAX_TRIPLES {
            return Err(CrawlError::Malformed(format!(
                "the catalogue's descriptions have more than {MAX_TRIPLES} triples"
            )));
        }
        self.catalog.extend(page.catalog);
        if self.catalog_iri.is_none() {
            self.catalog_iri = page.catalog_iri;
        }
        Ok(())
    }

    /// How many datasets were read.
    pub fn len(&self) -> usize {
        self.datasets.len()
    }

    /// Whether no dataset was read.
    pub fn is_empty(&self) -> bool {
        self.datasets.is_empty()
    }

    /// The peer graph of this harvest: the provenance of a DSP harvest (without a participant
    /// id), the catalogue's own description on the graph's node, a `dcat:dataset` link to each
    /// dataset and the datasets' descriptions, normalised.
    pub fn into_graph(self, peer: &PeerConfig, harvested_at: &str) -> Graph {
        let mut graph = peer_graph_of(peer, "", harvested_at, &[]);
        let node = catalog::peer_graph(&peer.id);
        let participant: Vec<Triple> = graph
            .triples_for_predicate(AGORA_PARTICIPANT)
            .map(|t| t.into_owned())
            .collect();
        for t in &participant {
            graph.remove(t);
        }
        for (predicate, value) in self.catalog {
            graph.insert(&Triple::new(node.clone(), predicate, value));
        }
        for dataset in &self.datasets {
            graph.insert(&Triple::new(
                node.clone(),
                terms::DCAT_DATASET_LINK,
                dataset.clone(),
            ));
        }
        for t in &self.triples {
            graph.insert(t);
        }
        normalise(&mut graph);
        graph
    }
}

// ------------------------------------------------------------------------------ fetching

/// One harvest of the DCAT-AP portal `peer`: read every page, replace its graph. Returns the
/// portal's catalogue IRI (what stands for a participant id on `GET /api/peers`; the first
/// page's URL when the portal names none) and its number of datasets.
pub fn harvest(
    peer: &PeerConfig,
    client: &PeerClient,
    catalog: &Catalog,
    clock: &SharedClock,
) -> Result<(String, usize), CrawlError> {
    let base = peer.url.trim_end_matches('/');
    let first = peer.catalog_url();
    let endpoint = first
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let started = Instant::now();
    let mut visited = HashSet::new();
    let mut read_bytes = 0u64;
    let mut harvest = Harvest::default();
    let mut url = first.clone();
    for _ in 0..MAX_PAGES {
        if started.elapsed() > MAX_HARVEST_TIME {
            return Err(CrawlError::Malformed(format!(
                "the catalogue took longer than {} s to read",
                MAX_HARVEST_TIME.as_secs()
            )));
        }
        if !visited.insert(url.clone()) {
            return Err(CrawlError::Malformed(format!(
                "the catalogue's pages loop back to {}",
                short(&url)
            )));
        }
        let fetched = fetch(client, &url)?;
        read_bytes += fetched.body.len() as u64;
        if read_bytes > MAX_HARVEST_BYTES {
            return Err(CrawlError::Malformed(format!(
                "the catalogue is larger than {MAX_HARVEST_BYTES} bytes"
            )));
        }
        let syntax =
            PageSyntax::detect(fetched.content_type.as_deref(), &url).ok_or_else(|| {
                CrawlError::Malformed(format!(
                    "the catalogue page {} is in a syntax the node does not read ({})",
                    short(&url),
                    fetched.content_type.as_deref().unwrap_or("no Content-Type")
                ))
            })?;
        let page = parse_page(&fetched.body, syntax, &url, base)?;
        let next = match (page.next.clone(), fetched.link_next) {
            (Some(next), _) => Some(next),
            (None, Some(link)) => Some(resolve(&url, &link)?),
            (None, None) => None,
        };
        harvest.add(page)?;
        match next {
            Some(next) if next.starts_with(&endpoint) => url = next,
            Some(other) => {
                return Err(CrawlError::Malformed(format!(
                    "the next page {} is not on the catalogue's endpoint {}",
                    short(&other),
                    short(&endpoint)
                )));
            }
            None => {
                let identity = harvest.catalog_iri.clone().unwrap_or(first);
                let now = clock
                    .now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let graph = harvest.into_graph(peer, &now);
                let count = catalog.replace_peer(&peer.id, &graph)?;
                return Ok((identity, count));
            }
        }
    }
    Err(CrawlError::Malformed(format!(
        "the catalogue has more than {MAX_PAGES} pages"
    )))
}

struct Fetched {
    body: Vec<u8>,
    content_type: Option<String>,
    link_next: Option<String>,
}

/// `GET url` under the address policy, without redirects, capped in size and time.
fn fetch(client: &PeerClient, url: &str) -> Result<Fetched, CrawlError> {
    let agent = client.agent(url, CALL_TIMEOUT)?;
    let short_url = short(url);
    let mut response = agent
        .get(url)
        .header("Accept", ACCEPT)
        .call()
        .map_err(|e| CrawlError::Unreachable {
            url: short_url.clone(),
            message: crate::federation::outbound::describe(&e),
        })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(CrawlError::Status {
            url: short_url,
            status,
        });
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let link_next = response
        .headers()
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(next_link);
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => CrawlError::TooLarge {
                url: short_url.clone(),
            },
            other => CrawlError::Unreachable {
                url: short_url.clone(),
                message: other.to_string(),
            },
        })?;
    Ok(Fetched {
        body,
        content_type,
        link_next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://ckan.example";

    const PAGE_1: &str = r#"
@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
@prefix foaf: <http://xmlns.com/foaf/0.1/> .
@prefix hydra: <http://www.w3.org/ns/hydra/core#> .
@prefix vcard: <http://www.w3.org/2006/vcard/ns#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix odrl: <http://www.w3.org/ns/odrl/2/> .

<http://ckan.example/catalog.ttl?page=1> a hydra:PagedCollection ;
    hydra:firstPage "http://ckan.example/catalog.ttl?page=1" ;
    hydra:nextPage "http://ckan.example/catalog.ttl?page=2" ;
    hydra:totalItems 3 ;
    hydra:itemsPerPage 2 .

<http://ckan.example/catalog/> a dcat:Catalog ;
    dct:title "Open data portal" ;
    dct:description "Every dataset of the city" ;
    dct:language "en" ;
    foaf:homepage <http://ckan.example> ;
    dct:publisher <http://ckan.example/organization/city> ;
    <https://w3id.org/agora/ns#origin> "local" ;
    dcat:dataset <http://ckan.example/dataset/air>, <http://ckan.example/dataset/bikes> .

<http://ckan.example/organization/city> a foaf:Agent ; foaf:name "City of Example" .

<http://ckan.example/dataset/air> a dcat:Dataset ;
    dct:title "Air quality" ;
    dct:description "Hourly NO2" ;
    dcat:keyword "air", "no2" ;
    dct:publisher <http://ckan.example/organization/city> ;
    odrl:hasPolicy <http://evil.example/policy> ;
    <https://w3id.org/agora/ns#offer> "{}" ;
    dcat:contactPoint [ a vcard:Organization ; vcard:fn "Data team" ] ;
    dcat:distribution <http://ckan.example/dataset/air/resource/1> .

<http://ckan.example/dataset/air/resource/1> a dcat:Distribution ;
    dct:title "CSV export" ;
    dct:format "csv" ;
    dcat:mediaType "text/csv" ;
    dct:license <http://publications.europa.eu/resource/authority/licence/CC_BY_4_0> ;
    dcat:accessURL <http://ckan.example/dataset/air/resource/1/download/air.csv> .

<http://ckan.example/dataset/bikes> a dcat:Dataset ;
    dct:title "Bike counts" ;
    dct:description "Daily" ;
    dcat:distribution [ a dcat:Distribution ; dct:format "GeoJSON" ;
        dcat:accessURL <http://ckan.example/b.geojson> ] .
"#;

    fn page_1() -> CatalogPage {
        parse_page(
            PAGE_1.as_bytes(),
            PageSyntax::Guarded(RdfSyntax::Turtle),
            "http://ckan.example/catalog.ttl?page=1",
            BASE,
        )
        .unwrap()
    }

    fn peer() -> PeerConfig {
        PeerConfig::parse_flag("ckan=dcat+http://ckan.example").unwrap()
    }

    #[test]
    fn a_ckan_page_gives_its_datasets_descriptions_and_next_page() {
        let page = page_1();
        let names: Vec<&str> = page.datasets.iter().map(NamedNode::as_str).collect();
        assert_eq!(
            names,
            [
                "http://ckan.example/dataset/air",
                "http://ckan.example/dataset/bikes"
            ]
        );
        assert_eq!(
            page.next.as_deref(),
            Some("http://ckan.example/catalog.ttl?page=2")
        );
        assert_eq!(
            page.catalog_iri.as_deref(),
            Some("http://ckan.example/catalog/")
        );
        let has = |s: &str, p: &str| {
            page.triples
                .iter()
                .any(|t| t.subject.to_string() == format!("<{s}>") && t.predicate.as_str() == p)
        };
        assert!(has(
            "http://ckan.example/dataset/air/resource/1",
            "http://purl.org/dc/terms/format"
        ));
        assert!(has(
            "http://ckan.example/organization/city",
            "http://xmlns.com/foaf/0.1/name"
        ));
        // The contact point (a blank node) comes with the dataset.
        assert!(
            page.triples
                .iter()
                .any(|t| t.predicate.as_str() == "http://www.w3.org/2006/vcard/ns#fn")
        );
        // Neither offers nor anything in the node's namespace, nor the paging controls.
        assert!(
            !page
                .triples
                .iter()
                .any(|t| t.predicate.as_str().starts_with(AGORA_NS)
                    || t.predicate == terms::ODRL_HAS_POLICY
                    || t.predicate.as_str().starts_with(HYDRA))
        );
        let catalog_predicates: Vec<&str> = page.catalog.iter().map(|(p, _)| p.as_str()).collect();
        assert!(catalog_predicates.contains(&"http://purl.org/dc/terms/title"));
        assert!(!catalog_predicates.iter().any(|p| p.starts_with(AGORA_NS)));
    }

    #[test]
    fn the_graph_carries_provenance_and_normalised_dcat_ap() {
        let mut harvest = Harvest::default();
        harvest.add(page_1()).unwrap();
        let graph = harvest.into_graph(&peer(), "2026-01-01T00:00:00Z");
        let node = catalog::peer_graph("ckan");
        let contains = |s: &str, p: &str, o: &str| {
            graph.iter().any(|t| {
                t.subject.to_string() == s && t.predicate.as_str() == p && t.object.to_string() == o
            })
        };
        assert!(contains(
            &node.to_string(),
            terms::AGORA_ORIGIN.as_str(),
            "\"ckan\""
        ));
        assert!(contains(
            &node.to_string(),
            "http://www.w3.org/ns/dcat#dataset",
            "<http://ckan.example/dataset/air>"
        ));
        assert!(contains(
            &node.to_string(),
            "http://purl.org/dc/terms/title",
            "\"Open data portal\""
        ));
        assert!(contains(
            &node.to_string(),
            "http://purl.org/dc/terms/language",
            "<http://publications.europa.eu/resource/authority/language/ENG>"
        ));
        assert_eq!(graph.triples_for_predicate(AGORA_PARTICIPANT).count(), 0);
        assert!(contains(
            "<http://ckan.example/dataset/air/resource/1>",
            "http://purl.org/dc/terms/format",
            "<http://publications.europa.eu/resource/authority/file-type/CSV>"
        ));
        assert!(contains(
            "<http://ckan.example/dataset/air/resource/1>",
            "http://www.w3.org/ns/dcat#mediaType",
            "<http://www.iana.org/assignments/media-types/text/csv>"
        ));
        assert!(contains(
            "<http://publications.europa.eu/resource/authority/licence/CC_BY_4_0>",
            rdf::TYPE.as_str(),
            "<http://purl.org/dc/terms/LicenseDocument>"
        ));
        // One catalogue node only: the portal's own is not typed in the peer graph.
        assert_eq!(
            graph
                .subjects_for_predicate_object(rdf::TYPE, DCAT_CATALOG)
                .count(),
            1
        );
        let summary = crate::catalog::DatasetSummary::from_graph(
            &graph,
            "ckan:air",
            NamedNodeRef::new_unchecked("http://ckan.example/dataset/air"),
            "ckan",
        );
        assert_eq!(summary.publisher_name, "City of Example");
        assert_eq!(
            summary.formats,
            ["http://publications.europa.eu/resource/authority/file-type/CSV"]
        );
        assert_eq!(
            summary.licenses,
            ["http://publications.europa.eu/resource/authority/licence/CC_BY_4_0"]
        );
    }

    #[test]
    fn a_dataset_of_another_site_refuses_the_page() {
        for foreign in [
            "http://other.example/dataset/x",
            "http://ckan.example.evil.org/dataset/x",
            "http://ckan.example",
        ] {
            let body = format!(
                "<{foreign}> a <http://www.w3.org/ns/dcat#Dataset> ; <http://purl.org/dc/terms/title> \"x\" ."
            );
            let outcome = parse_page(
                body.as_bytes(),
                PageSyntax::Guarded(RdfSyntax::Turtle),
                "http://ckan.example/catalog.ttl",
                BASE,
            );
            assert!(
                matches!(&outcome, Err(CrawlError::Malformed(m)) if m.contains("not under its base URL")),
                "{foreign}: {outcome:?}"
            );
        }
        let blank = "[] a <http://www.w3.org/ns/dcat#Dataset> .";
        assert!(
            parse_page(
                blank.as_bytes(),
                PageSyntax::Guarded(RdfSyntax::Turtle),
                "http://ckan.example/catalog.ttl",
                BASE
            )
            .is_err()
        );
    }

    #[test]
    fn pages_in_json_ld_and_rdf_xml_are_read() {
        let json = r#"{
          "@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
                       "hydra": "http://www.w3.org/ns/hydra/core#"},
          "@graph": [
            {"@id": "http://ckan.example/catalogues/x?page=0", "@type": "hydra:PartialCollectionView",
             "hydra:next": {"@id": "http://ckan.example/catalogues/x?page=1"}},
            {"@id": "http://ckan.example/set/data/a", "@type": "dcat:Dataset", "dct:title": "A",
             "dct:description": "d"}
          ]}"#;
        let page = parse_page(
            json.as_bytes(),
            PageSyntax::Guarded(RdfSyntax::JsonLd),
            "http://ckan.example/catalogues/x?page=0",
            BASE,
        )
        .unwrap();
        assert_eq!(page.datasets.len(), 1);
        assert_eq!(
            page.next.as_deref(),
            Some("http://ckan.example/catalogues/x?page=1")
        );
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:dcat="http://www.w3.org/ns/dcat#" xmlns:dct="http://purl.org/dc/terms/">
  <dcat:Dataset rdf:about="http://ckan.example/dataset/z">
    <dct:title>Z</dct:title>
  </dcat:Dataset>
</rdf:RDF>"#;
        let page = parse_page(
            xml.as_bytes(),
            PageSyntax::RdfXml,
            "http://ckan.example/catalog.rdf",
            BASE,
        )
        .unwrap();
        assert_eq!(page.datasets.len(), 1);
        assert_eq!(page.next, None);
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>"#;
        assert!(
            parse_page(
                laughs.as_bytes(),
                PageSyntax::RdfXml,
                "http://ckan.example/c.rdf",
                BASE
            )
            .is_err()
        );
        let remote = r#"{"@context": "http://127.0.0.1:9/context.jsonld", "@id": "http://ckan.example/dataset/q"}"#;
        assert!(
            parse_page(
                remote.as_bytes(),
                PageSyntax::Guarded(RdfSyntax::JsonLd),
                "http://ckan.example/c.jsonld",
                BASE
            )
            .is_err()
        );
    }

    #[test]
    fn blank_nodes_of_two_pages_stay_apart() {
        let page = |title: &str| {
            format!(
                "<http://ckan.example/dataset/{title}> a <http://www.w3.org/ns/dcat#Dataset> ; \
                 <http://www.w3.org/ns/dcat#distribution> _:b0 . \
                 _:b0 <http://purl.org/dc/terms/title> \"{title}\" ."
            )
        };
        let mut harvest = Harvest::default();
        for title in ["one", "two"] {
            harvest
                .add(
                    parse_page(
                        page(title).as_bytes(),
                        PageSyntax::Guarded(RdfSyntax::Turtle),
                        "http://ckan.example/catalog.ttl",
                        BASE,
                    )
                    .unwrap(),
                )
                .unwrap();
        }
        let graph = harvest.into_graph(&peer(), "2026-01-01T00:00:00Z");
        let distributions: HashSet<String> = graph
            .triples_for_predicate(terms::DCAT_DISTRIBUTION)
            .map(|t| t.object.to_string())
            .collect();
        assert_eq!(distributions.len(), 2);
    }

    /// Found by the `dcat_page` fuzz target: with two blank-node catalogues the pick went by
    /// their random labels, so one page read twice kept different catalogue descriptions.
    #[test]
    fn the_same_page_with_blank_catalogues_reads_the_same_every_time() {
        let body = "_:c1 a <http://www.w3.org/ns/dcat#Catalog> ; \
             <http://purl.org/dc/terms/title> \"first\" ; \
             <http://purl.org/dc/terms/publisher> _:p1 . \
             _:p1 <http://xmlns.com/foaf/0.1/name> \"one\" ; <http://xmlns.com/foaf/0.1/mbox> \"a\" . \
             _:c2 a <http://www.w3.org/ns/dcat#Catalog> ; \
             <http://purl.org/dc/terms/title> \"second\" ; \
             <http://purl.org/dc/terms/publisher> _:p2 . \
             _:p2 <http://xmlns.com/foaf/0.1/name> \"two\" .";
        let read = || {
            parse_page(
                body.as_bytes(),
                PageSyntax::Guarded(RdfSyntax::Turtle),
                "http://ckan.example/catalog.ttl",
                BASE,
            )
            .unwrap()
        };
        let first = read();
        assert_eq!(first.triples.len(), 2, "the first catalogue's publisher");
        for _ in 0..32 {
            let again = read();
            assert_eq!(again.triples.len(), first.triples.len());
            assert_eq!(
                again.catalog.len(),
                first.catalog.len(),
                "the same catalogue description"
            );
        }
    }

    #[test]
    fn next_pages_resolve_and_two_different_ones_are_refused() {
        assert_eq!(
            resolve("http://ckan.example/catalog.ttl?page=1", "?page=2").unwrap(),
            "http://ckan.example/catalog.ttl?page=2"
        );
        assert_eq!(
            resolve(
                "http://ckan.example/catalog.ttl?page=1",
                "/catalog.ttl?page=2"
            )
            .unwrap(),
            "http://ckan.example/catalog.ttl?page=2"
        );
        assert!(resolve("http://ckan.example/catalog.ttl", "//evil.example/x").is_err());
        assert!(resolve("http://ckan.example/catalog.ttl", "page=2").is_err());
        let two = "<http://ckan.example/c?page=1> a <http://www.w3.org/ns/hydra/core#PagedCollection> ; \
            <http://www.w3.org/ns/hydra/core#nextPage> \"http://ckan.example/c?page=2\" ; \
            <http://www.w3.org/ns/hydra/core#next> <http://ckan.example/c?page=3> .";
        assert!(
            parse_page(
                two.as_bytes(),
                PageSyntax::Guarded(RdfSyntax::Turtle),
                "http://ckan.example/c?page=1",
                BASE
            )
            .is_err()
        );
    }

    #[test]
    fn portals_are_configured_by_flag_or_by_kind() {
        use crate::config::PeerKind;
        let flag = peer();
        assert_eq!(flag.kind, PeerKind::Dcat);
        assert_eq!(flag.url, "http://ckan.example");
        assert_eq!(flag.catalog_url(), "http://ckan.example/catalog.ttl");
        let dsp = PeerConfig::parse_flag("b=http://node-b.example").unwrap();
        assert_eq!(dsp.kind, PeerKind::Dsp);
        assert!(
            !serde_json::to_string(&dsp).unwrap().contains("kind"),
            "a DSP peer is written as before"
        );
        let piveau: PeerConfig = serde_json::from_str(
            r#"{"id": "hub", "url": "http://hub.example", "kind": "dcat",
                "catalog": "http://hub.example/api/hub/repo/catalogues/x?page=0"}"#,
        )
        .unwrap();
        assert!(piveau.check().is_ok());
        assert_eq!(
            piveau.catalog_url(),
            "http://hub.example/api/hub/repo/catalogues/x?page=0"
        );
        for bad in [
            r#"{"id": "hub", "url": "http://hub.example", "kind": "dcat", "catalog": "http://evil.example/c"}"#,
            r#"{"id": "hub", "url": "http://hub.example", "catalog": "http://hub.example/c"}"#,
        ] {
            let peer: PeerConfig = serde_json::from_str(bad).unwrap();
            assert!(peer.check().is_err(), "{bad}");
        }
        assert!(
            serde_json::from_str::<PeerConfig>(r#"{"id": "x", "url": "http://x", "kind": "ftp"}"#)
                .is_err()
        );
        assert!(PeerConfig::parse_flag("c=dcat+ftp://x").is_err());
    }

    #[test]
    fn vocabulary_mappings() {
        assert_eq!(
            file_type(".CSV").map(|n| n.into_string()),
            Some(format!("{FILE_TYPE}CSV"))
        );
        assert_eq!(file_type("whatever"), None);
        assert_eq!(
            language("de-AT").map(|n| n.into_string()),
            Some(format!("{LANGUAGE}DEU"))
        );
        assert_eq!(
            language("FRA").map(|n| n.into_string()),
            Some(format!("{LANGUAGE}FRA"))
        );
        assert_eq!(language("tlh"), None);
        assert_eq!(
            media_type("Text/CSV; charset=utf-8").map(|n| n.into_string()),
            Some(format!("{MEDIA_TYPES}text/csv"))
        );
        assert_eq!(media_type("csv"), None);
        assert_eq!(media_type("a b/c"), None);
        assert_eq!(
            PageSyntax::detect(Some("text/turtle; charset=utf-8"), "http://x/c"),
            Some(PageSyntax::Guarded(RdfSyntax::Turtle))
        );
        assert_eq!(
            PageSyntax::detect(
                Some("application/octet-stream"),
                "http://x/catalog.rdf?page=2"
            ),
            Some(PageSyntax::RdfXml)
        );
        assert_eq!(PageSyntax::detect(Some("text/html"), "http://x/c"), None);
    }
}
