//! Federation: the peers this node harvests, the crawler that harvests them, and the change
//! feed this node serves to the peers that harvest it.
//!
//! Each period the crawler, on its own thread (all its work is blocking HTTP and Oxigraph),
//! visits every peer that is due, each on a thread of its own so a slow peer delays no other:
//! it reads the peer's participant id (`/.well-known/dspace-version`) and signing keys
//! (`/.well-known/jwks.json`, which makes the peer's tokens signed as itself valid here, see
//! [`PeerKeys`]), and signs a token as itself, so the peer answers the view it grants this
//! node. Then it syncs:
//!
//! - **Incrementally** when it holds a cursor of the peer's change feed
//!   (`GET {url}/api/federation/changes?since=CURSOR`, see [`feed`]): only the datasets that
//!   are new or changed in this node's view move, with a tombstone for each that left it
//!   (deleted, withdrawn, or hidden from this node by an access policy). They are applied to
//!   the peer's graph in one transaction ([`Catalog::apply_peer_changes`]), then the graph is
//!   checked against the size and digest of the peer's view that the answer carries. The
//!   cursor is kept in `data_dir/federation-cursors.json`, so a restart resumes incrementally.
//! - **In full** on the first sync, and whenever the incremental path cannot be trusted: no
//!   cursor, a peer without the feed (an older node), a cursor the peer no longer knows (`410`:
//!   expired, or more than [`feed::MAX_CHANGES`] changes), a copy that disagrees with the
//!   peer's digest after the changes, or a peer whose URL or participant changed. It takes a
//!   fresh cursor first, then reads the DSP catalogue (`POST {url}/dsp/catalog/request`,
//!   following `Link: rel="next"` pages) and replaces the peer's graph in one atomic write
//!   ([`Catalog::replace_peer`]). Changes made while it reads come again in the next diff.
//!
//! Either way a dataset deleted or hidden on the peer is gone here after the next successful
//! sync, within one crawl period. `GET /api/peers` says how each peer was last synced
//! (`last_sync`), why the last full harvest was not incremental (`full_reason`), and counts
//! the syncs of each kind and the changes applied.
//!
//! A peer that fails (down, slow, oversized or malformed answers, datasets whose access
//! service is not its own DSP endpoint) keeps its last good harvest and is retried with
//! exponential back-off (up to 16 periods). Every call passes the contracts' address policy,
//! follows no redirect, and is capped at [`MAX_RESPONSE_BYTES`] and [`CALL_TIMEOUT`] (connection
//! to last byte, so a peer that trickles bytes is cut).

pub mod feed;
pub mod outbound;

use crate::catalog::{
    self, AGORA_OFFER, AGORA_PARTICIPANT, Catalog, DCAT_CATALOG, PROV_GENERATED_AT_TIME,
    PROV_WAS_DERIVED_FROM, terms,
};
use crate::clock::SharedClock;
use crate::config::{ConfigError, PeerConfig};
use crate::contract::AddressPolicy;
use crate::identity::{DevIssuer, PeerKey, PeerKeys, TokenRequest};
pub use feed::{ChangeFeed, FeedError};
pub use outbound::PeerClient;
use oxigraph::model::vocab::{rdf, xsd};
use oxigraph::model::{Graph, Literal, NamedNode, Triple};
use serde::Serialize;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Largest answer read from a peer (one page, a JWKS, a version document).
pub const MAX_RESPONSE_BYTES: u64 = 16 << 20;
/// Longest a call to a peer may take, connection to last byte.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Most pages one harvest follows.
const MAX_PAGES: usize = 1000;
/// Most datasets one peer may bring.
const MAX_DATASETS: usize = 200_000;
/// Longest back-off, in crawl periods.
const MAX_BACKOFF_PERIODS: u32 = 16;
/// Page size asked of peers.
const PAGE_SIZE: usize = 500;
/// Where a node serves its change feed (an agora extension next to DSP).
pub const CHANGES_PATH: &str = "/api/federation/changes";

/// Why a harvest failed; each names whose fault it is (the peer's, or the network's).
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    /// The address policy refused the URL (configuration, or a peer's `next` link).
    #[error("{0}")]
    Refused(String),
    /// The peer could not be reached, or took longer than 10 s.
    #[error("the peer is unreachable at {url}: {message}")]
    Unreachable {
        /// What was called.
        url: String,
        /// What the network said.
        message: String,
    },
    /// The peer answered an error status.
    #[error("the peer answered {status} to {url}")]
    Status {
        /// What was called.
        url: String,
        /// Its status.
        status: u16,
    },
    /// The peer's answer was larger than 16 MiB.
    #[error("the peer's answer from {url} is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge {
        /// What was called.
        url: String,
    },
    /// The peer's answer is not what DSP or JWKS say it should be.
    #[error("the peer's answer is malformed: {0}")]
    Malformed(String),
    /// The peer lists a dataset that another node serves.
    #[error(
        "the peer lists dataset {iri} with an access service that is not its own ({base}/dsp): harvest refused"
    )]
    ForeignDataset {
        /// The dataset IRI.
        iri: String,
        /// The peer's base URL.
        base: String,
    },
    /// Storing the harvest failed: another node's dataset (a conflict) or the store (ours).
    #[error("the harvest was not stored: {0}")]
    Store(#[from] catalog::CatalogError),
}

/// A peer as `GET /api/peers` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PeerStatus {
    /// Its configuration.
    #[serde(flatten)]
    pub peer: PeerConfig,
    /// Its participant id, once read.
    pub participant: Option<String>,
    /// When its last good harvest was taken (RFC 3339).
    pub last_harvest: Option<String>,
    /// Datasets in its last good harvest.
    pub datasets: usize,
    /// The last failure, cleared by a good harvest.
    pub last_error: Option<String>,
    /// Harvests failed in a row.
    pub failures: u32,
    /// How the last good sync went: `full` (the whole catalogue read) or `incremental` (only
    /// the changes since the last sync).
    pub last_sync: Option<SyncMode>,
    /// Why the last full harvest was not incremental (no cursor yet, a peer without the
    /// change feed, an expired cursor, a copy that disagreed with the peer's digest).
    pub full_reason: Option<String>,
    /// Full harvests since this node started.
    pub full_syncs: u64,
    /// Incremental syncs since this node started.
    pub incremental_syncs: u64,
    /// Datasets added, changed or removed by incremental syncs since this node started.
    pub changes_applied: u64,
    /// Of those, the datasets removed (deleted, withdrawn or hidden on the peer).
    pub removals_applied: u64,
}

/// How a peer was synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Its whole catalogue was read and replaced the last harvest.
    Full,
    /// Only the changes since the last sync were read and applied.
    Incremental,
}

/// What one good sync of a peer did.
#[derive(Debug)]
struct Synced {
    participant: String,
    datasets: usize,
    mode: SyncMode,
    full_reason: Option<String>,
    upserts: usize,
    removals: usize,
}

/// Where the change feed of a peer was left: its URL and participant when the cursor was
/// taken (a cursor is only good for the same peer), and the cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
struct SyncCursor {
    url: String,
    participant: String,
    cursor: String,
}

/// Why an incremental sync gave way to a full harvest.
enum Fallback {
    /// The full harvest is the remedy (the reason says why).
    Full(String),
    /// The peer failed; its last good harvest stays.
    Failed(CrawlError),
}

impl From<CrawlError> for Fallback {
    fn from(error: CrawlError) -> Self {
        Self::Failed(error)
    }
}

/// `agora:etag`: on a harvested dataset, the entity tag of the DSP JSON it was read from
/// ([`feed::etag`]), which the incremental sync checks its copy with.
pub const AGORA_ETAG: oxigraph::model::NamedNodeRef<'static> =
    oxigraph::model::NamedNodeRef::new_unchecked("https://w3id.org/agora/ns#etag");

#[derive(Debug)]
struct PeerState {
    status: PeerStatus,
    due: Instant,
    /// A harvest of this peer is under way (each peer has its own thread, so a slow peer
    /// never delays the others).
    running: bool,
}

/// The federation of one node: its peers and the crawler's state.
#[derive(Debug)]
pub struct Federation {
    node_id: String,
    issuer: Arc<DevIssuer>,
    catalog: Arc<Catalog>,
    keys: PeerKeys,
    /// Every call to a peer goes through it (address policy, TLS roots, no redirects).
    client: PeerClient,
    interval: Duration,
    store_path: PathBuf,
    peers: Mutex<BTreeMap<String, PeerState>>,
    wake: Condvar,
    clock: SharedClock,
    /// Where each peer's change feed was left, kept in `cursors_path`.
    cursors: Mutex<BTreeMap<String, SyncCursor>>,
    cursors_path: PathBuf,
    /// The change feed this node serves.
    feed: feed::ChangeFeed,
}

/// What the federation needs from the node.
#[derive(Debug)]
pub struct FederationOptions {
    /// The node's participant id (the `sub` of its own tokens).
    pub node_id: String,
    /// The peers from the configuration.
    pub peers: Vec<PeerConfig>,
    /// The crawl period.
    pub interval: Duration,
    /// Where peers added at run time are kept (`data_dir/federation-peers.json`).
    pub store_path: PathBuf,
    /// Where the crawler may call.
    pub addresses: AddressPolicy,
    /// A PEM file of extra CAs trusted for `https://` peers (`--peer-ca`), besides the
    /// system's roots.
    pub peer_ca: Option<PathBuf>,
}

impl Federation {
    /// The federation of a node, with the configured peers and those added by `POST /api/peers`
    /// before the last stop.
    pub fn new(
        options: FederationOptions,
        issuer: Arc<DevIssuer>,
        catalog: Arc<Catalog>,
        keys: PeerKeys,
        clock: SharedClock,
    ) -> Result<Self, ConfigError> {
        let mut configured = options.peers;
        if let Ok(text) = std::fs::read_to_string(&options.store_path) {
            let added: Vec<PeerConfig> =
                serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: options.store_path.clone(),
                    message: e.to_string(),
                })?;
            for peer in added {
                configured.retain(|p| p.id != peer.id);
                configured.push(peer);
            }
        }
        let now = Instant::now();
        let mut peers = BTreeMap::new();
        for peer in configured {
            peer.check()?;
            peers.insert(peer.id.clone(), PeerState::new(peer, now));
        }
        let data_dir = options
            .store_path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default();
        let cursors_path = data_dir.join("federation-cursors.json");
        // A cursor file that cannot be read costs one full harvest per peer, nothing more.
        let cursors = std::fs::read(&cursors_path)
            .ok()
            .and_then(|text| serde_json::from_slice(&text).ok())
            .unwrap_or_default();
        let feed = feed::ChangeFeed::new(data_dir.join("federation-feed"), clock.clone());
        let client = PeerClient::new(options.addresses, options.peer_ca.as_deref())?;
        Ok(Self {
            node_id: options.node_id,
            issuer,
            catalog,
            keys,
            client,
            interval: options.interval,
            store_path: options.store_path,
            peers: Mutex::new(peers),
            wake: Condvar::new(),
            clock,
            cursors: Mutex::new(cursors),
            cursors_path,
            feed,
        })
    }

    /// Every peer and how its harvests go.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.lock().values().map(|s| s.status.clone()).collect()
    }

    /// Adds a peer or changes its URL or issuer (an admin's `POST /api/peers`), keeps it for the
    /// next start, and harvests it at once. Its last harvest stays until the next good one.
    pub fn upsert(&self, peer: PeerConfig) -> Result<PeerStatus, ConfigError> {
        peer.check()?;
        let status = {
            let mut peers = self.lock();
            let mut state = PeerState::new(peer.clone(), Instant::now());
            // A harvest under the old settings finishes first; the new one follows at once.
            state.running = peers.get(&peer.id).is_some_and(|s| s.running);
            let status = state.status.clone();
            peers.insert(peer.id.clone(), state);
            status
        };
        self.persist_added(peer)?;
        self.wake.notify_all();
        Ok(status)
    }

    fn persist_added(&self, peer: PeerConfig) -> Result<(), ConfigError> {
        let io = |e: std::io::Error| ConfigError::Read {
            path: self.store_path.clone(),
            source: e,
        };
        let mut added: Vec<PeerConfig> = std::fs::read_to_string(&self.store_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        added.retain(|p| p.id != peer.id);
        added.push(peer);
        let staging = self.store_path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&added).map_err(|e| ConfigError::Invalid {
            setting: "federation.peers",
            message: e.to_string(),
        })?;
        std::fs::write(&staging, text).map_err(io)?;
        std::fs::rename(&staging, &self.store_path).map_err(io)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PeerState>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the crawler thread; it runs for the life of the process.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let federation = self.clone();
        std::thread::Builder::new()
            .name("federation-crawler".into())
            .spawn(move || federation.run())
            .map(|_| ())
    }

    fn run(self: Arc<Self>) {
        loop {
            let due: Vec<PeerConfig> = {
                let mut peers = self.lock();
                let now = Instant::now();
                let due: Vec<PeerConfig> = peers
                    .values()
                    .filter(|s| s.due <= now && !s.running)
                    .map(|s| s.status.peer.clone())
                    .collect();
                if due.is_empty() {
                    let next = peers
                        .values()
                        .filter(|s| !s.running)
                        .map(|s| s.due)
                        .min()
                        .map(|d| d.saturating_duration_since(now))
                        .unwrap_or(self.interval)
                        .min(self.interval);
                    let _unused = self
                        .wake
                        .wait_timeout(peers, next)
                        .unwrap_or_else(|p| p.into_inner());
                    continue;
                }
                for peer in &due {
                    if let Some(state) = peers.get_mut(&peer.id) {
                        state.running = true;
                    }
                }
                due
            };
            for peer in due {
                let federation = self.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("harvest-{}", peer.id))
                    .spawn({
                        let peer = peer.clone();
                        move || {
                            let outcome = federation.harvest(&peer);
                            federation.record(&peer, outcome);
                        }
                    });
                if let Err(error) = spawned {
                    self.record(
                        &peer,
                        Err(CrawlError::Malformed(format!(
                            "cannot start a harvest thread: {error}"
                        ))),
                    );
                }
            }
        }
    }

    fn record(&self, peer: &PeerConfig, outcome: Result<Synced, CrawlError>) {
        let mut peers = self.lock();
        let Some(state) = peers.get_mut(&peer.id) else {
            return;
        };
        state.running = false;
        self.wake.notify_all();
        if state.status.peer != *peer {
            // Changed while harvesting: the new settings are harvested at once.
            return;
        }
        match outcome {
            Ok(synced) => {
                state.status.participant = Some(synced.participant);
                state.status.datasets = synced.datasets;
                state.status.last_sync = Some(synced.mode);
                match synced.mode {
                    SyncMode::Full => {
                        state.status.full_syncs += 1;
                        state.status.full_reason = synced.full_reason;
                    }
                    SyncMode::Incremental => {
                        state.status.incremental_syncs += 1;
                        state.status.changes_applied += (synced.upserts + synced.removals) as u64;
                        state.status.removals_applied += synced.removals as u64;
                    }
                }
                state.status.last_harvest = Some(self.clock.now().to_rfc3339());
                state.status.last_error = None;
                state.status.failures = 0;
                state.due = Instant::now() + self.interval;
            }
            Err(error) => {
                tracing::warn!(peer = %peer.id, %error, "harvest failed; the last good harvest stays");
                state.status.last_error = Some(error.to_string());
                state.status.failures = state.status.failures.saturating_add(1);
                let periods = 2u32
                    .saturating_pow(state.status.failures.min(5))
                    .min(MAX_BACKOFF_PERIODS);
                state.due = Instant::now() + self.interval * periods;
            }
        }
    }

    /// One sync of `peer`: trust its keys, then apply the changes since the last sync, or
    /// harvest in full when there is no cursor or the changes cannot be trusted.
    fn harvest(&self, peer: &PeerConfig) -> Result<Synced, CrawlError> {
        if peer.kind == crate::config::PeerKind::Dcat {
            // A DCAT-AP portal: no keys, no token, no offers, no change feed.
            let (participant, datasets) =
                crate::harvest_dcat::harvest(peer, &self.client, &self.catalog, &self.clock)?;
            return Ok(Synced {
                participant,
                datasets,
                mode: SyncMode::Full,
                full_reason: Some("a DCAT-AP portal has no change feed".into()),
                upserts: 0,
                removals: 0,
            });
        }
        let base = peer.url.trim_end_matches('/');
        let (participant, token) = self.introduce(peer, base)?;
        let reason = match self.cursor(peer, &participant) {
            Err(reason) => reason,
            Ok(cursor) => match self.sync_changes(peer, base, &participant, &token, &cursor) {
                Ok(synced) => return Ok(synced),
                Err(Fallback::Failed(error)) => return Err(error),
                Err(Fallback::Full(reason)) => {
                    tracing::info!(peer = %peer.id, %reason, "harvesting in full");
                    reason
                }
            },
        };
        self.harvest_full(peer, base, &participant, &token, reason)
    }

    /// Reads the peer's participant id and keys (trusting them for the tokens it signs as
    /// itself) and signs the token this node calls it with.
    fn introduce(&self, peer: &PeerConfig, base: &str) -> Result<(String, String), CrawlError> {
        let version = self.get_json(&format!("{base}/.well-known/dspace-version"), None)?;
        let participant = version
            .get("participantId")
            .and_then(Json::as_str)
            .filter(|p| !p.is_empty() && p.len() <= 512)
            .ok_or_else(|| {
                CrawlError::Malformed("the version document has no participantId".into())
            })?
            .to_owned();
        if participant == self.node_id {
            return Err(CrawlError::Malformed(
                "the peer is this node itself (same participant id)".into(),
            ));
        }
        let jwks = self.get_json(&format!("{base}/.well-known/jwks.json"), None)?;
        let keys = parse_jwks(&jwks)?;
        let issuer = peer
            .issuer
            .clone()
            .unwrap_or_else(|| format!("{participant}/dev-issuer"));
        self.keys.set(
            &issuer,
            PeerKey {
                participant: participant.clone(),
                keys,
            },
        );
        let token = self
            .issuer
            .issue(
                &TokenRequest {
                    subject: self.node_id.clone(),
                    roles: Vec::new(),
                    claims: serde_json::Map::new(),
                    lifetime: Duration::from_secs(300),
                },
                &participant,
                self.clock.now(),
            )
            .map_err(|e| CrawlError::Malformed(format!("cannot sign the crawl token: {e}")))?;
        Ok((participant, token))
    }

    /// The full harvest: a fresh cursor of the peer's change feed (if it has one), then every
    /// page of its DSP catalogue, replacing its graph.
    fn harvest_full(
        &self,
        peer: &PeerConfig,
        base: &str,
        participant: &str,
        token: &str,
        reason: String,
    ) -> Result<Synced, CrawlError> {
        // The cursor is taken before the pages are read: whatever changes meanwhile comes
        // again in the next diff, and the digest check catches the rest.
        // The feed is an optimisation: whatever goes wrong with it (no feed, an error, a peer
        // too busy to build the cursor within the call cap) the full harvest goes on without
        // a cursor, and asks once more when the pages are read.
        let cursor = self.fresh_cursor(peer, base, token);
        let request = json!({
            "@context": [crate::contract::messages::DSP_CONTEXT],
            "@type": "CatalogRequestMessage",
        });
        let mut url = format!("{base}/dsp/catalog/request?offset=0&limit={PAGE_SIZE}");
        let mut datasets = Vec::new();
        for _ in 0..MAX_PAGES {
            let (body, next) = self.post_page(&url, token, &request)?;
            datasets.extend(parse_catalog_page(&body, base, participant)?);
            if datasets.len() > MAX_DATASETS {
                return Err(CrawlError::Malformed(format!(
                    "more than {MAX_DATASETS} datasets"
                )));
            }
            match next {
                Some(next) if next.starts_with(&format!("{base}/dsp/catalog/request")) => {
                    url = next;
                }
                Some(other) => {
                    return Err(CrawlError::Malformed(format!(
                        "the next page {} is not on the peer's catalogue endpoint",
                        other.chars().take(200).collect::<String>()
                    )));
                }
                None => {
                    // A peer that could not build its first cursor in time (20 peers doing so
                    // at once on a small machine, BENCHMARKS.md) has its view built by now.
                    // A cursor taken after the pages may miss a change made in between; the
                    // next sync's digest check turns that into a full harvest.
                    let cursor = cursor.or_else(|| self.fresh_cursor(peer, base, token));
                    let graph =
                        peer_graph_of(peer, participant, &canonical_now(&self.clock), &datasets);
                    let count = self.catalog.replace_peer(&peer.id, &graph)?;
                    self.set_cursor(
                        &peer.id,
                        cursor.map(|cursor| SyncCursor {
                            url: base.to_owned(),
                            participant: participant.to_owned(),
                            cursor,
                        }),
                    );
                    return Ok(Synced {
                        participant: participant.to_owned(),
                        datasets: count,
                        mode: SyncMode::Full,
                        full_reason: Some(reason),
                        upserts: 0,
                        removals: 0,
                    });
                }
            }
        }
        Err(CrawlError::Malformed(format!(
            "the catalogue has more than {MAX_PAGES} pages"
        )))
    }

    /// A new cursor of the peer's change feed, or `None` when the peer has no feed or did not
    /// answer with one within the call cap.
    fn fresh_cursor(&self, peer: &PeerConfig, base: &str, token: &str) -> Option<String> {
        match self.get_json(&format!("{base}{CHANGES_PATH}"), Some(token)) {
            Ok(answer) => answer
                .get("cursor")
                .and_then(Json::as_str)
                .filter(|c| c.len() <= 128)
                .map(str::to_owned),
            Err(error) => {
                tracing::debug!(peer = %peer.id, %error, "no cursor of the peer's change feed");
                None
            }
        }
    }

    /// The incremental sync: the changes since `cursor`, applied in one transaction, then the
    /// copy checked against the peer's view.
    fn sync_changes(
        &self,
        peer: &PeerConfig,
        base: &str,
        participant: &str,
        token: &str,
        cursor: &str,
    ) -> Result<Synced, Fallback> {
        let url = format!("{base}{CHANGES_PATH}?since={}", query_escape(cursor));
        let answer = match self.get_json(&url, Some(token)) {
            Ok(answer) => answer,
            Err(CrawlError::Status { status: 410, .. }) => {
                return Err(Fallback::Full(
                    "the peer no longer knows the cursor (expired, or too many changes)".into(),
                ));
            }
            Err(CrawlError::Status {
                status: 404 | 405 | 400,
                ..
            }) => {
                return Err(Fallback::Full(
                    "the peer does not serve this change feed".into(),
                ));
            }
            Err(error) => return Err(Fallback::Failed(error)),
        };
        let changes = parse_changes(&answer, base, participant)?;
        if changes.total > MAX_DATASETS {
            return Err(CrawlError::Malformed(format!("more than {MAX_DATASETS} datasets")).into());
        }
        let harvested_at = canonical_now(&self.clock);
        let upserts = changes.upserts.len();
        let removals = changes.removed.len();
        let count = if upserts + removals == 0 {
            self.catalog
                .peer_etags(&peer.id)
                .map_err(CrawlError::from)?
                .len()
        } else {
            let mut graph = Graph::new();
            for dataset in &changes.upserts {
                dataset_triples(&mut graph, dataset, &harvested_at);
            }
            self.catalog
                .apply_peer_changes(&peer.id, &graph, &changes.removed, &harvested_at)
                .map_err(CrawlError::from)?
        };
        // The copy must now be the peer's view; if not (a lost answer, a race with the full
        // harvest that took the cursor), only a full harvest restores it.
        let tags = self
            .catalog
            .peer_etags(&peer.id)
            .map_err(CrawlError::from)?;
        let ours = feed::digest(tags.iter().map(|(i, t)| (i.as_str(), t.as_str())));
        if tags.len() != changes.total || ours != changes.digest {
            self.set_cursor(&peer.id, None);
            return Err(Fallback::Full(format!(
                "after the changes this copy ({} datasets) disagreed with the peer's view ({} datasets, digest {})",
                tags.len(),
                changes.total,
                changes.digest
            )));
        }
        self.set_cursor(
            &peer.id,
            Some(SyncCursor {
                url: base.to_owned(),
                participant: participant.to_owned(),
                cursor: changes.cursor,
            }),
        );
        Ok(Synced {
            participant: participant.to_owned(),
            datasets: count,
            mode: SyncMode::Incremental,
            full_reason: None,
            upserts,
            removals,
        })
    }

    /// The cursor kept for `peer` if it was taken from the same URL and participant, else why
    /// the sync must be full.
    fn cursor(&self, peer: &PeerConfig, participant: &str) -> Result<String, String> {
        let cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        let Some(kept) = cursors.get(&peer.id) else {
            return Err("first sync: no cursor of the peer's change feed yet".into());
        };
        if kept.url != peer.url.trim_end_matches('/') || kept.participant != participant {
            return Err("the peer's URL or participant changed since the cursor was taken".into());
        }
        Ok(kept.cursor.clone())
    }

    /// Keeps (or forgets) the cursor of `peer`, in memory and in `federation-cursors.json`.
    /// A cursor that cannot be written costs a full harvest after a restart, nothing more.
    fn set_cursor(&self, peer: &str, cursor: Option<SyncCursor>) {
        let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        if cursors.get(peer) == cursor.as_ref() {
            return;
        }
        match cursor {
            Some(cursor) => cursors.insert(peer.to_owned(), cursor),
            None => cursors.remove(peer),
        };
        let staging = self.cursors_path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(&*cursors)
            .map_err(std::io::Error::other)
            .and_then(|text| std::fs::write(&staging, text))
            .and_then(|()| std::fs::rename(&staging, &self.cursors_path));
        if let Err(error) = written {
            tracing::warn!(%error, "cannot keep the federation cursors; the next start harvests in full");
        }
    }

    /// The answer of `GET /api/federation/changes` for `principal`: the changes of the DSP
    /// catalogue view it is granted since `since` (see [`feed`]).
    pub fn changes(
        &self,
        contracts: &crate::contract::Contracts,
        principal: &crate::identity::Principal,
        since: Option<&str>,
    ) -> Result<Json, FeedError> {
        let (view, _) = contracts
            .dsp_catalog(principal, 0, usize::MAX)
            .map_err(|e| FeedError::Storage(e.to_string()))?;
        let requester = format!("{}\n{}", principal.subject, principal.issuer);
        self.feed.changes(&requester, since, &view)
    }

    fn agent(&self, url: &str) -> Result<ureq::Agent, CrawlError> {
        self.client.agent(url, CALL_TIMEOUT)
    }

    fn get_json(&self, url: &str, token: Option<&str>) -> Result<Json, CrawlError> {
        let agent = self.agent(url)?;
        let mut request = agent.get(url).header("Accept", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let response = request.call();
        let (body, _) = read_capped(url, response)?;
        serde_json::from_slice(&body)
            .map_err(|e| CrawlError::Malformed(format!("{url} is not JSON: {e}")))
    }

    fn post_page(
        &self,
        url: &str,
        token: &str,
        request: &Json,
    ) -> Result<(Vec<u8>, Option<String>), CrawlError> {
        let response = self
            .agent(url)?
            .post(url)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(request.to_string());
        read_capped(url, response)
    }
}

impl PeerState {
    fn new(peer: PeerConfig, due: Instant) -> Self {
        Self {
            status: PeerStatus {
                peer,
                participant: None,
                last_harvest: None,
                datasets: 0,
                last_error: None,
                failures: 0,
                last_sync: None,
                full_reason: None,
                full_syncs: 0,
                incremental_syncs: 0,
                changes_applied: 0,
                removals_applied: 0,
            },
            due,
            running: false,
        }
    }
}

/// Reads a 2xx answer's body up to the cap, with its `Link: rel="next"` target.
fn read_capped(
    url: &str,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(Vec<u8>, Option<String>), CrawlError> {
    let short: String = url.chars().take(200).collect();
    let mut response = response.map_err(|e| CrawlError::Unreachable {
        url: short.clone(),
        message: outbound::describe(&e),
    })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(CrawlError::Status { url: short, status });
    }
    let next = response
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
            ureq::Error::BodyExceedsLimit(_) => CrawlError::TooLarge { url: short.clone() },
            other => CrawlError::Unreachable {
                url: short.clone(),
                message: other.to_string(),
            },
        })?;
    Ok((body, next))
}

/// The target of the `rel="next"` link in a `Link` header value, if any.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_owned())
    })
}

/// The Ed25519 keys of a JWKS document (the only kind an agora node publishes).
pub fn parse_jwks(jwks: &Json) -> Result<Vec<jsonwebtoken::DecodingKey>, CrawlError> {
    let keys: Vec<_> = jwks
        .get("keys")
        .and_then(Json::as_array)
        .ok_or_else(|| CrawlError::Malformed("the JWKS has no `keys` array".into()))?
        .iter()
        .filter(|k| k["kty"] == "OKP" && k["crv"] == "Ed25519")
        .filter_map(|k| k["x"].as_str())
        .filter_map(|x| jsonwebtoken::DecodingKey::from_ed_components(x).ok())
        .take(16)
        .collect();
    if keys.is_empty() {
        return Err(CrawlError::Malformed(
            "the JWKS has no Ed25519 signing key".into(),
        ));
    }
    Ok(keys)
}

/// One dataset of a peer's DSP catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct HarvestedDataset {
    /// Its IRI (the DSP `@id`), under the peer's base URL.
    pub iri: String,
    /// Its title, if the peer gave one.
    pub title: Option<String>,
    /// Its description.
    pub description: Option<String>,
    /// Its keywords.
    pub keywords: Vec<String>,
    /// Its offers, exactly as the peer sent them.
    pub offers: Vec<Json>,
    /// The entity tag of its DSP JSON ([`feed::etag`]).
    pub etag: String,
}

/// The changes of a peer's view since a cursor, as its change feed answered them.
#[derive(Debug)]
pub struct PeerChanges {
    /// Datasets new or changed in the view.
    pub upserts: Vec<HarvestedDataset>,
    /// Datasets that left the view (deleted, withdrawn, hidden).
    pub removed: Vec<NamedNode>,
    /// The cursor to ask from next time.
    pub cursor: String,
    /// How many datasets the view now has.
    pub total: usize,
    /// The view's digest ([`feed::digest`]).
    pub digest: String,
}

/// Reads a change-feed answer of the peer at `base` (participant `participant`), with the
/// same checks as a catalogue page: each dataset is the peer's own.
pub fn parse_changes(
    answer: &Json,
    base: &str,
    participant: &str,
) -> Result<PeerChanges, CrawlError> {
    if answer.get("@type").and_then(Json::as_str) != Some("agora:CatalogChanges") {
        return Err(CrawlError::Malformed(
            "the change feed's answer is not agora:CatalogChanges".into(),
        ));
    }
    let text = |key: &str| {
        answer
            .get(key)
            .and_then(Json::as_str)
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned)
            .ok_or_else(|| {
                CrawlError::Malformed(format!("the change feed's answer has no `{key}`"))
            })
    };
    let cursor = text("cursor")?;
    let digest = text("digest")?;
    let total = answer
        .get("total")
        .and_then(Json::as_u64)
        .and_then(|t| usize::try_from(t).ok())
        .ok_or_else(|| CrawlError::Malformed("the change feed's answer has no `total`".into()))?;
    // The upserts are read as a catalogue page: same identity and foreign-dataset checks.
    let page = json!({
        "@type": "Catalog",
        "participantId": answer.get("participantId").cloned().unwrap_or(Json::Null),
        "dataset": answer.get("dataset").cloned().unwrap_or(Json::Null),
    });
    let upserts = parse_catalog_page(page.to_string().as_bytes(), base, participant)?;
    let removed = match answer.get("removed") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| {
                item.get("@id")
                    .and_then(Json::as_str)
                    .and_then(|iri| NamedNode::new(iri).ok())
                    .ok_or_else(|| CrawlError::Malformed("a tombstone has no valid `@id`".into()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(CrawlError::Malformed("`removed` is not an array".into()));
        }
    };
    Ok(PeerChanges {
        upserts,
        removed,
        cursor,
        total,
        digest,
    })
}

/// `text` as a URL query value.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads one page of a peer's DSP catalogue: a `Catalog` of `participant` whose datasets all
/// have IRIs under `base` (a peer cannot speak for another node's datasets).
pub fn parse_catalog_page(
    body: &[u8],
    base: &str,
    participant: &str,
) -> Result<Vec<HarvestedDataset>, CrawlError> {
    let catalog: Json = serde_json::from_slice(body)
        .map_err(|e| CrawlError::Malformed(format!("the catalogue is not JSON: {e}")))?;
    let kind = catalog.get("@type").and_then(Json::as_str);
    if !matches!(kind, Some("Catalog" | "dcat:Catalog")) {
        return Err(CrawlError::Malformed(
            "the answer is not a DSP Catalog".into(),
        ));
    }
    if let Some(claimed) = catalog.get("participantId").and_then(Json::as_str)
        && claimed != participant
    {
        return Err(CrawlError::Malformed(format!(
            "the catalogue says it is {}, not {participant}",
            claimed.chars().take(200).collect::<String>()
        )));
    }
    let entries: Vec<&Json> = match catalog.get("dataset") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items.iter().collect(),
        Some(one @ Json::Object(_)) => vec![one],
        Some(_) => {
            return Err(CrawlError::Malformed(
                "`dataset` is neither an object nor an array".into(),
            ));
        }
    };
    let prefix = format!("{}/", base.trim_end_matches('/'));
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let iri = entry
            .get("@id")
            .and_then(Json::as_str)
            .ok_or_else(|| CrawlError::Malformed("a dataset has no `@id`".into()))?;
        if NamedNode::new(iri).is_err() || iri.starts_with("urn:agora:") {
            return Err(CrawlError::Malformed(format!(
                "the dataset id {} is not an IRI a peer may use",
                iri.chars().take(200).collect::<String>()
            )));
        }
        // A peer offers only what it serves itself: every access service is its own DSP.
        for endpoint in endpoints(entry) {
            if !endpoint.starts_with(&prefix) {
                return Err(CrawlError::ForeignDataset {
                    iri: iri.chars().take(200).collect(),
                    base: base.to_owned(),
                });
            }
        }
        let text = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| entry.get(*k))
                .and_then(literal_text)
        };
        let keywords = match entry.get("dcat:keyword").or_else(|| entry.get("keyword")) {
            Some(Json::Array(items)) => items.iter().filter_map(literal_text).collect(),
            Some(other) => literal_text(other).into_iter().collect(),
            None => Vec::new(),
        };
        let offers = match entry.get("hasPolicy") {
            Some(Json::Array(items)) => items.clone(),
            Some(one @ Json::Object(_)) => vec![one.clone()],
            _ => Vec::new(),
        };
        out.push(HarvestedDataset {
            etag: feed::etag(entry),
            iri: iri.to_owned(),
            title: text(&["dct:title", "title"]),
            description: text(&["dct:description", "description"]),
            keywords,
            offers,
        });
    }
    Ok(out)
}

/// The `endpointURL`s of a DSP dataset's distributions' access services.
fn endpoints(entry: &Json) -> Vec<String> {
    let as_list = |v: Option<&Json>| -> Vec<Json> {
        match v {
            Some(Json::Array(items)) => items.clone(),
            Some(one @ Json::Object(_)) => vec![one.clone()],
            _ => Vec::new(),
        }
    };
    let mut out = Vec::new();
    for distribution in as_list(entry.get("distribution")) {
        for service in as_list(distribution.get("accessService")) {
            match service.get("endpointURL") {
                Some(Json::String(url)) => out.push(url.clone()),
                Some(_) => out.push(String::new()),
                None => {}
            }
        }
    }
    out
}

fn literal_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("@value").and_then(Json::as_str).map(str::to_owned),
        Json::Array(items) => items.iter().find_map(literal_text),
        _ => None,
    }
}

fn canonical_now(clock: &SharedClock) -> String {
    clock
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The graph of one harvest: provenance on the graph's own node, then each dataset with what
/// the peer said of it and its offers as JSON literals.
pub fn peer_graph_of(
    peer: &PeerConfig,
    participant: &str,
    harvested_at: &str,
    datasets: &[HarvestedDataset],
) -> Graph {
    let mut graph = Graph::new();
    let node = catalog::peer_graph(&peer.id);
    let mut add = |s: &NamedNode, p, o: oxigraph::model::Term| {
        graph.insert(&Triple::new(s.clone(), p, o));
    };
    add(&node, rdf::TYPE, DCAT_CATALOG.into_owned().into());
    add(
        &node,
        terms::AGORA_ORIGIN,
        Literal::new_simple_literal(&peer.id).into(),
    );
    if let Ok(url) = NamedNode::new(peer.url.trim_end_matches('/')) {
        add(&node, PROV_WAS_DERIVED_FROM, url.into());
    }
    add(
        &node,
        AGORA_PARTICIPANT,
        Literal::new_simple_literal(participant).into(),
    );
    add(
        &node,
        PROV_GENERATED_AT_TIME,
        Literal::new_typed_literal(harvested_at, xsd::DATE_TIME).into(),
    );
    for dataset in datasets {
        if let Ok(iri) = NamedNode::new(&dataset.iri) {
            add(&node, terms::DCAT_DATASET_LINK, iri.into());
        }
    }
    for dataset in datasets {
        dataset_triples(&mut graph, dataset, harvested_at);
    }
    graph
}

/// What a peer graph says of one harvested dataset (every statement has the dataset as its
/// subject): what the peer said of it, its offers as JSON literals exactly as sent, when it
/// was harvested and the entity tag of what was read.
fn dataset_triples(graph: &mut Graph, dataset: &HarvestedDataset, harvested_at: &str) {
    let Ok(iri) = NamedNode::new(&dataset.iri) else {
        return;
    };
    let mut add = |p, o: oxigraph::model::Term| {
        graph.insert(&Triple::new(iri.clone(), p, o));
    };
    add(rdf::TYPE, terms::DCAT_DATASET.into_owned().into());
    if let Some(title) = &dataset.title {
        add(terms::DCT_TITLE, Literal::new_simple_literal(title).into());
    }
    if let Some(description) = &dataset.description {
        add(
            terms::DCT_DESCRIPTION,
            Literal::new_simple_literal(description).into(),
        );
    }
    for keyword in &dataset.keywords {
        add(
            terms::DCAT_KEYWORD,
            Literal::new_simple_literal(keyword).into(),
        );
    }
    let json_type = NamedNode::new_unchecked("http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON");
    for offer in &dataset.offers {
        add(
            AGORA_OFFER,
            Literal::new_typed_literal(offer.to_string(), json_type.clone()).into(),
        );
        if let Some(uid) = offer.get("@id").and_then(Json::as_str)
            && let Ok(uid) = NamedNode::new(uid)
        {
            add(terms::ODRL_HAS_POLICY, uid.into());
        }
    }
    add(
        PROV_GENERATED_AT_TIME,
        Literal::new_typed_literal(harvested_at, xsd::DATE_TIME).into(),
    );
    add(
        AGORA_ETAG,
        Literal::new_simple_literal(&dataset.etag).into(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://node-b.example";
    const PARTICIPANT: &str = "urn:agora:node:b";

    fn page(datasets: Json) -> Vec<u8> {
        json!({
            "@context": [crate::contract::messages::DSP_CONTEXT],
            "@type": "Catalog",
            "participantId": PARTICIPANT,
            "dataset": datasets,
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_catalog_page_is_read_with_its_offers_unchanged() {
        let offer = json!({"@id": "http://node-b.example/datasets/x#offer-0", "@type": "Offer",
            "permission": [{"action": "use", "constraint": [{"leftOperand": "purpose",
            "operator": "isA", "rightOperand": "https://w3id.org/dpv#AcademicResearch"}]}]});
        let body = page(json!([{
            "@id": "http://node-b.example/datasets/x",
            "@type": "Dataset",
            "dct:title": "Air quality",
            "dct:description": {"@value": "Hourly", "@language": "en"},
            "dcat:keyword": ["air", "no2"],
            "hasPolicy": [offer.clone()],
        }]));
        let read = parse_catalog_page(&body, BASE, PARTICIPANT).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].title.as_deref(), Some("Air quality"));
        assert_eq!(read[0].description.as_deref(), Some("Hourly"));
        assert_eq!(read[0].keywords, vec!["air", "no2"]);
        assert_eq!(read[0].offers, vec![offer.clone()]);
        let peer = PeerConfig::parse_flag(&format!("b={BASE}")).unwrap();
        let graph = peer_graph_of(&peer, PARTICIPANT, "2026-01-01T00:00:00Z", &read);
        let stored = graph
            .triples_for_predicate(AGORA_OFFER)
            .next()
            .map(|t| match t.object {
                oxigraph::model::TermRef::Literal(l) => l.value().to_owned(),
                _ => String::new(),
            })
            .unwrap();
        let back: Json = serde_json::from_str(&stored).unwrap();
        assert_eq!(
            back, offer,
            "offers are kept exactly as the origin sent them"
        );
    }

    #[test]
    fn an_empty_catalog_has_no_datasets() {
        let body = json!({"@type": "Catalog", "participantId": PARTICIPANT}).to_string();
        assert!(
            parse_catalog_page(body.as_bytes(), BASE, PARTICIPANT)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_peer_claiming_another_nodes_dataset_is_refused() {
        for endpoint in [
            "http://node-c.example/dsp",
            "http://node-b.example.evil.org/dsp",
            "",
        ] {
            let body = page(
                json!([{"@id": "https://energy.example/datasets/x", "@type": "Dataset",
                "distribution": [{"@type": "Distribution",
                    "accessService": {"@type": "DataService", "endpointURL": endpoint}}]}]),
            );
            assert!(
                matches!(
                    parse_catalog_page(&body, BASE, PARTICIPANT),
                    Err(CrawlError::ForeignDataset { .. })
                ),
                "{endpoint}"
            );
        }
        let own = page(
            json!([{"@id": "https://energy.example/datasets/x", "@type": "Dataset",
            "distribution": [{"@type": "Distribution",
                "accessService": {"@type": "DataService", "endpointURL": "http://node-b.example/dsp"}}]}]),
        );
        assert_eq!(
            parse_catalog_page(&own, BASE, PARTICIPANT).unwrap().len(),
            1
        );
    }

    #[test]
    fn malformed_catalogs_are_refused() {
        for body in [
            &b"not json"[..],
            br#"{"@type": "Dataset"}"#,
            br#"{"@type": "Catalog", "participantId": "urn:agora:node:c"}"#,
            br#"{"@type": "Catalog", "dataset": 7}"#,
            br#"{"@type": "Catalog", "dataset": [{"title": "no id"}]}"#,
            br#"{"@type": "Catalog", "dataset": [{"@id": "urn:agora:local:x"}]}"#,
            br#"{"@type": "Catalog", "dataset": [{"@id": "not an iri"}]}"#,
        ] {
            assert!(
                parse_catalog_page(body, BASE, PARTICIPANT).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn next_links_are_found() {
        assert_eq!(
            next_link(
                r#"<http://b/dsp/catalog/request?offset=2&limit=2>; rel="next", <http://b/x>; rel="prev""#
            ),
            Some("http://b/dsp/catalog/request?offset=2&limit=2".into())
        );
        assert_eq!(next_link(r#"<http://b/x>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn jwks_without_ed25519_keys_is_refused() {
        assert!(parse_jwks(&json!({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]})).is_err());
        assert!(parse_jwks(&json!({})).is_err());
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        assert_eq!(
            parse_jwks(&json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x}]}))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn peer_flags_are_checked() {
        let peer = PeerConfig::parse_flag("b=http://127.0.0.1:9000/").unwrap();
        assert_eq!(peer.id, "b");
        assert_eq!(peer.url, "http://127.0.0.1:9000");
        for bad in [
            "b",
            "B=http://x",
            "local=http://x",
            "b=ftp://x",
            "=http://x",
        ] {
            assert!(PeerConfig::parse_flag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_answer_over_16_mib_is_refused() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let size = MAX_RESPONSE_BYTES + (1 << 16);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
                );
                let chunk = vec![b' '; 1 << 16];
                let mut sent = 0u64;
                while sent < size && stream.write_all(&chunk).is_ok() {
                    sent += chunk.len() as u64;
                }
            }
        });
        let url = format!("http://{address}/dsp/catalog/request");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let outcome = read_capped(&url, agent.get(&url).call());
        assert!(
            matches!(outcome, Err(CrawlError::TooLarge { .. })),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_peers_key_signs_only_for_the_peer_and_grants_no_role() {
        use crate::identity::{Role, TokenValidator};
        let dir = tempfile::tempdir().unwrap();
        let peer_id = "urn:agora:node:b";
        let issuer = DevIssuer::load_or_create(dir.path(), peer_id).unwrap();
        let keys = PeerKeys::default();
        keys.set(
            issuer.issuer(),
            PeerKey {
                participant: peer_id.into(),
                keys: parse_jwks(&json!({"keys": [issuer.public_jwk()]})).unwrap(),
            },
        );
        let clock: SharedClock = Arc::new(crate::clock::SystemClock);
        let validator =
            TokenValidator::new("urn:agora:node:a", 30, clock.clone()).with_peer_keys(keys);
        let token = |subject: &str| {
            let request = TokenRequest {
                subject: subject.into(),
                roles: vec![Role::Admin],
                claims: serde_json::Map::new(),
                lifetime: Duration::from_secs(60),
            };
            issuer
                .issue(&request, "urn:agora:node:a", clock.now())
                .unwrap()
        };
        let principal = validator.validate(&token(peer_id)).unwrap();
        assert_eq!(principal.subject, peer_id);
        assert!(
            !principal.has_role(Role::Admin),
            "a peer grants itself no role here"
        );
        assert!(validator.validate(&token("mallory")).is_err());
        // Another node's issuer is not trusted at all.
        let other_dir = tempfile::tempdir().unwrap();
        let other = DevIssuer::load_or_create(other_dir.path(), "urn:agora:node:c").unwrap();
        let request = TokenRequest {
            subject: "urn:agora:node:c".into(),
            roles: Vec::new(),
            claims: serde_json::Map::new(),
            lifetime: Duration::from_secs(60),
        };
        let foreign = other
            .issue(&request, "urn:agora:node:a", clock.now())
            .unwrap();
        assert!(validator.validate(&foreign).is_err());
    }

    /// A full harvest then an incremental sync on a real store: the changed dataset is
    /// replaced, the new one added, the removed one gone (graph and search), others untouched,
    /// and the copy's digest is the digest of the peer's view.
    #[test]
    fn changes_apply_in_place_and_the_copy_matches_the_view() {
        let dir = tempfile::tempdir().unwrap();
        let clock: SharedClock = Arc::new(crate::clock::SystemClock);
        let options = crate::catalog::CatalogOptions {
            public_url: "http://node-a.example".into(),
            limits: crate::rdf_input::InputLimits {
                max_bytes: 1 << 20,
                max_json_depth: 32,
                max_triples: 10_000,
            },
            allow_roots: Vec::new(),
        };
        let catalog = Catalog::open(dir.path(), options, clock).unwrap();
        let entry = |name: &str, title: &str| {
            json!({"@id": format!("{BASE}/datasets/{name}"), "@type": "Dataset",
                "dct:title": title, "hasPolicy": [{"@id": format!("{BASE}/datasets/{name}#offer-0"),
                "@type": "Offer", "permission": [{"action": "use"}]}]})
        };
        let peer = PeerConfig::parse_flag(&format!("b={BASE}")).unwrap();
        let first = [
            entry("x", "Rivers"),
            entry("y", "Lakes"),
            entry("z", "Glaciers"),
        ];
        let read = parse_catalog_page(&page(json!(first)), BASE, PARTICIPANT).unwrap();
        let graph = peer_graph_of(&peer, PARTICIPANT, "2026-01-01T00:00:00Z", &read);
        assert_eq!(catalog.replace_peer("b", &graph).unwrap(), 3);

        let changed = [entry("y", "Lakes and ponds"), entry("w", "Wetlands")];
        let upserts = parse_catalog_page(&page(json!(changed)), BASE, PARTICIPANT).unwrap();
        let mut graph = Graph::new();
        for dataset in &upserts {
            dataset_triples(&mut graph, dataset, "2026-01-02T00:00:00Z");
        }
        let removed = vec![NamedNode::new(format!("{BASE}/datasets/z")).unwrap()];
        let count = catalog
            .apply_peer_changes("b", &graph, &removed, "2026-01-02T00:00:00Z")
            .unwrap();
        assert_eq!(count, 3);

        let view = [
            entry("x", "Rivers"),
            entry("y", "Lakes and ponds"),
            entry("w", "Wetlands"),
        ];
        let tags: Vec<(String, String)> = view
            .iter()
            .map(|d| (d["@id"].as_str().unwrap().to_owned(), feed::etag(d)))
            .collect();
        let ours = catalog.peer_etags("b").unwrap();
        assert_eq!(
            feed::digest(ours.iter().map(|(i, t)| (i.as_str(), t.as_str()))),
            feed::digest(tags.iter().map(|(i, t)| (i.as_str(), t.as_str())))
        );
        assert!(catalog.peer_dataset("b:z").unwrap().is_none());
        assert!(catalog.peer_dataset("b:w").unwrap().is_some());
        let described = catalog.describe("b:y").unwrap();
        let titles: Vec<String> = described
            .objects_for_subject_predicate(
                NamedNode::new(format!("{BASE}/datasets/y"))
                    .unwrap()
                    .as_ref(),
                terms::DCT_TITLE,
            )
            .map(|t| t.to_string())
            .collect();
        assert_eq!(titles, vec!["\"Lakes and ponds\"".to_owned()]);
        let search = |text: &str| {
            catalog
                .search(
                    &crate::catalog::SearchQuery {
                        text: text.into(),
                        filters: Vec::new(),
                        limit: 10,
                        offset: 0,
                    },
                    &crate::catalog::Viewer::anonymous(),
                )
                .unwrap()
                .items
                .into_iter()
                .map(|i| i.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(search("glaciers"), Vec::<String>::new());
        assert_eq!(search("ponds"), vec!["b:y".to_owned()]);
        assert_eq!(search("wetlands"), vec!["b:w".to_owned()]);
        assert_eq!(search("rivers"), vec!["b:x".to_owned()]);
        // A tombstone for what is not there changes nothing.
        assert_eq!(
            catalog
                .apply_peer_changes("b", &Graph::new(), &removed, "2026-01-03T00:00:00Z")
                .unwrap(),
            3
        );
    }

    #[test]
    fn harvested_ids_are_qualified_by_the_peer() {
        assert_eq!(catalog::harvested_id("b", "http://b/datasets/abc"), "b:abc");
        let odd = catalog::harvested_id("b", "http://b/datasets/a%20b");
        assert!(odd.starts_with("b:") && odd.len() == 18, "{odd}");
    }
}
