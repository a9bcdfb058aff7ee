//! The public SPARQL 1.1 endpoint's evaluation: every query runs in a worker process with an
//! address-space limit and a wall-clock deadline, over a read-only checkpoint of the store.
//!
//! Oxigraph's cancellation token does not bound `ORDER BY` (`SECURITY.md` §3, oxigraph #1871),
//! so the only budget that really holds is killing the process that evaluates. Workers open a
//! RocksDB checkpoint (hard links, cheap) taken after the last catalogue write; the main
//! process never shares its RocksDB instance with them. A query over its time budget gets its
//! worker killed with `SIGKILL`; one over its memory budget dies from its own `RLIMIT_AS`; a
//! client that disconnects drops the request, which kills the worker too.
//!
//! `SERVICE` reaches the SPARQL endpoints of this node's configured peers (`{url}/sparql` of
//! each `dsp` peer) and nothing else. The main process refuses any other `SERVICE` IRI before
//! a worker starts ([`QueryError::ServiceRefused`]; `SERVICE SILENT` is left to the worker,
//! whose handler refuses it without a connection, so it yields no bindings). The worker's
//! handler ([`PeerServices`]) checks the name again, sends the sub-query with the federation's
//! client ([`PeerClient`]: address policy, no redirects, TLS roots) under the per-call caps
//! (16 MiB, 10 s) and what is left of the query's own time budget, so a slow peer ends the
//! query with [`QueryError::Peer`] before the deadline kills the worker.

use super::Catalog;
use crate::config::{PeerConfig, PeerKind, SparqlConfig};
use crate::contract::AddressPolicy;
use crate::federation::{CALL_TIMEOUT, MAX_RESPONSE_BYTES, PeerClient};
use oxigraph::io::{RdfFormat, RdfSerializer};
use oxigraph::model::{GraphName, NamedNode, NamedOrBlankNode, Term};
use oxigraph::sparql::results::{
    QueryResultsFormat, QueryResultsParser, QueryResultsSerializer, SliceQueryResultsParserOutput,
};
use oxigraph::sparql::{
    DefaultServiceHandler, QueryEvaluationError, QueryResults, QuerySolution, QuerySolutionIter,
    SparqlEvaluator, Variable,
};
use oxigraph::store::Store;
use serde::{Deserialize, Serialize};
use spargebra::algebra::{Expression, GraphPattern, OrderExpression};
use spargebra::term::NamedNodePattern;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The serialisations a query result can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultFormat {
    /// `application/sparql-results+json`
    Json,
    /// `application/sparql-results+xml`
    Xml,
    /// `text/csv`
    Csv,
    /// `text/tab-separated-values`
    Tsv,
    /// `text/turtle`
    Turtle,
    /// `application/n-triples`
    NTriples,
    /// `application/ld+json`
    JsonLd,
    /// `application/rdf+xml`
    RdfXml,
}

impl ResultFormat {
    /// Formats for SELECT and ASK, in order of preference.
    pub const SOLUTIONS: [ResultFormat; 4] = [Self::Json, Self::Xml, Self::Csv, Self::Tsv];
    /// Formats for CONSTRUCT and DESCRIBE, in order of preference.
    pub const GRAPHS: [ResultFormat; 4] =
        [Self::Turtle, Self::NTriples, Self::JsonLd, Self::RdfXml];

    /// The media type of the response.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Json => "application/sparql-results+json",
            Self::Xml => "application/sparql-results+xml",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Tsv => "text/tab-separated-values; charset=utf-8",
            Self::Turtle => "text/turtle",
            Self::NTriples => "application/n-triples",
            Self::JsonLd => "application/ld+json",
            Self::RdfXml => "application/rdf+xml",
        }
    }

    /// Short names accepted in `?format=`.
    pub fn from_short_name(name: &str) -> Option<Self> {
        Some(match name {
            "json" => Self::Json,
            "xml" => Self::Xml,
            "csv" => Self::Csv,
            "tsv" => Self::Tsv,
            "ttl" | "turtle" => Self::Turtle,
            "nt" | "ntriples" => Self::NTriples,
            "jsonld" => Self::JsonLd,
            "rdfxml" | "rdf" => Self::RdfXml,
            _ => return None,
        })
    }
}

/// Which formats the client accepts, resolved once the query form is known.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct FormatChoice {
    /// For SELECT/ASK.
    pub solutions: ResultFormat,
    /// For CONSTRUCT/DESCRIBE.
    pub graph: ResultFormat,
}

/// A query as the protocol delivers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryRequest {
    /// The SPARQL text.
    pub query: String,
    /// `default-graph-uri` parameters.
    pub default_graphs: Vec<String>,
    /// `named-graph-uri` parameters.
    pub named_graphs: Vec<String>,
    /// The negotiated formats.
    pub formats: FormatChoice,
    /// The base IRI for relative IRIs in the query.
    pub base_iri: String,
}

/// A serialised result.
#[derive(Debug)]
pub struct QueryAnswer {
    /// The `Content-Type`.
    pub media_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a query got no result. Each variant says whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse, or uses something the endpoint refuses.
    #[error("{0}")]
    BadQuery(String),
    /// The text is a SPARQL Update: the public endpoint never changes data.
    #[error("this endpoint answers queries only; SPARQL Update is refused")]
    UpdateRefused,
    /// It ran past the time budget and was stopped.
    #[error(
        "the query ran longer than its {0} ms budget and was stopped; narrow it (LIMIT, more specific patterns) or ask the operator for a larger budget"
    )]
    Timeout(u64),
    /// It needed more memory than the budget and was stopped.
    #[error(
        "the query needed more than its {0} MiB memory budget and was stopped; avoid large ORDER BY, DISTINCT or cross products"
    )]
    OutOfMemory(u64),
    /// The serialised result is larger than allowed.
    #[error("the result is larger than {0} bytes; add LIMIT/OFFSET to page through it")]
    ResultTooLarge(u64),
    /// Every worker is busy and the queue is full.
    #[error("the SPARQL endpoint is at capacity; retry in a few seconds")]
    Busy,
    /// Evaluation failed for another reason (e.g. an unbound SERVICE variable).
    #[error("the query failed: {0}")]
    Evaluation(String),
    /// A `SERVICE` names an endpoint that is not a configured peer's: no connection was made.
    #[error("{0}")]
    ServiceRefused(String),
    /// A configured peer's endpoint failed the `SERVICE` call (unreachable, slow, oversized,
    /// an error status or a malformed answer): the peer's fault, not the query's.
    #[error("{0}")]
    Peer(String),
    /// A fault of the node.
    #[error("internal SPARQL error: {0}")]
    Internal(String),
}

/// The SPARQL endpoints `SERVICE` may call and how to call them: the federation's peers at
/// the time of the query, with the address policy and CA file of the crawler.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceAccess {
    /// The configured peers.
    pub peers: Vec<ServicePeer>,
    /// Whether loopback and private addresses may be called (`--allow-private-addresses`).
    pub allow_private: bool,
    /// Extra CAs trusted for `https://` peers (`--peer-ca`).
    pub peer_ca: Option<PathBuf>,
}

/// One configured peer as `SERVICE` sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServicePeer {
    /// The peer's id.
    pub id: String,
    /// Its SPARQL endpoint, `{url}/sparql`: the only `SERVICE` IRI that reaches it.
    pub endpoint: String,
    /// Whether it has one (`dsp` peers do; DCAT-AP portals do not).
    pub sparql: bool,
}

impl ServiceAccess {
    /// The access the federation's `peers` give, under the crawler's outbound settings.
    pub fn new(peers: &[PeerConfig], allow_private: bool, peer_ca: Option<PathBuf>) -> Self {
        Self {
            peers: peers
                .iter()
                .map(|peer| ServicePeer {
                    id: peer.id.clone(),
                    endpoint: format!("{}/sparql", peer.url.trim_end_matches('/')),
                    sparql: peer.kind == PeerKind::Dsp,
                })
                .collect(),
            allow_private,
            peer_ca,
        }
    }

    /// The peer whose endpoint `iri` is, or why `SERVICE <iri>` is refused.
    pub fn peer_for(&self, iri: &str) -> Result<&ServicePeer, String> {
        let shown: String = iri.chars().take(200).collect();
        match self.peers.iter().find(|p| p.endpoint == iri) {
            Some(peer) if peer.sparql => Ok(peer),
            Some(peer) => Err(format!(
                "SERVICE <{shown}> is refused: peer `{}` is a DCAT-AP portal (kind dcat), which has no SPARQL endpoint; only the SPARQL endpoints of this node's configured agora peers are reachable",
                peer.id
            )),
            None => Err(format!(
                "SERVICE <{shown}> is refused: only the SPARQL endpoints of this node's configured peers (each peer's URL + /sparql, see GET /api/peers) are reachable; no connection was made"
            )),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct WorkerRequest {
    snapshot: PathBuf,
    request: QueryRequest,
    max_bytes: u64,
    /// What `SERVICE` may reach.
    services: ServiceAccess,
    /// The query's time budget: `SERVICE` calls get what is left of it.
    budget_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum WorkerResponse {
    Ok { format: ResultFormat, length: u64 },
    BadQuery { message: String },
    TooLarge,
    Failed { message: String },
    ServiceRefused { message: String },
    PeerFailed { message: String },
}

/// A checkpoint directory, deleted when the last query using it is done.
#[derive(Debug)]
struct Snapshot {
    generation: u64,
    path: PathBuf,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// The worker pool and its admission control.
pub struct SparqlService {
    catalog: Arc<Catalog>,
    config: SparqlConfig,
    executable: PathBuf,
    snapshots_dir: PathBuf,
    current: Mutex<Option<Arc<Snapshot>>>,
    snapshot_lock: tokio::sync::Mutex<()>,
    idle: Mutex<Vec<Worker>>,
    running: tokio::sync::Semaphore,
    waiting: AtomicUsize,
}

impl std::fmt::Debug for SparqlService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparqlService").finish_non_exhaustive()
    }
}

impl SparqlService {
    /// A pool that runs `executable sparql-worker` processes over checkpoints in `data_dir`.
    pub fn new(
        catalog: Arc<Catalog>,
        config: SparqlConfig,
        executable: PathBuf,
        data_dir: &Path,
    ) -> std::io::Result<Self> {
        let snapshots_dir = data_dir.join("sparql-snapshots");
        let _ = std::fs::remove_dir_all(&snapshots_dir);
        std::fs::create_dir_all(&snapshots_dir)?;
        Ok(Self {
            catalog,
            running: tokio::sync::Semaphore::new(config.workers),
            config,
            executable,
            snapshots_dir,
            current: Mutex::new(None),
            snapshot_lock: tokio::sync::Mutex::new(()),
            idle: Mutex::new(Vec::new()),
            waiting: AtomicUsize::new(0),
        })
    }

    /// Evaluates `request` within the budgets, with `SERVICE` reaching the peers of `services`.
    pub async fn execute_federated(
        &self,
        request: QueryRequest,
        services: ServiceAccess,
    ) -> Result<QueryAnswer, QueryError> {
        // Parse here first: syntax errors, updates and SERVICEs towards anything but a
        // configured peer never cost a worker.
        check_query(&request, &services)?;
        let _permit = self.admit().await?;
        let snapshot = self.snapshot().await?;
        let mut worker = match self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            Some(worker) => worker,
            None => self.spawn()?,
        };
        let job = WorkerRequest {
            snapshot: snapshot.path.clone(),
            request,
            max_bytes: self.config.max_result_bytes,
            services,
            budget_ms: self.config.timeout_ms,
        };
        let deadline = Duration::from_millis(self.config.timeout_ms);
        match tokio::time::timeout(deadline, run_job(&mut worker, &job)).await {
            Ok(Ok(answer)) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push(worker);
                }
                answer
            }
            Ok(Err(io)) => {
                // The worker died. A failed allocation under RLIMIT_AS aborts the process.
                let _ = worker.child.start_kill();
                let status = worker.child.wait().await.ok();
                #[cfg(unix)]
                let aborted = status.is_some_and(|s| {
                    std::os::unix::process::ExitStatusExt::signal(&s) == Some(libc::SIGABRT)
                });
                #[cfg(not(unix))]
                let aborted = false;
                if aborted {
                    Err(QueryError::OutOfMemory(self.config.memory_mib))
                } else {
                    Err(QueryError::Internal(format!(
                        "the SPARQL worker failed ({io}); exit status {status:?}"
                    )))
                }
            }
            Err(_elapsed) => {
                let _ = worker.child.kill().await;
                Err(QueryError::Timeout(self.config.timeout_ms))
            }
        }
    }

    async fn admit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, QueryError> {
        if let Ok(permit) = self.running.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.config.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(QueryError::Busy);
        }
        let permit = self.running.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|_| QueryError::Internal("SPARQL pool closed".into()))
    }

    /// The checkpoint of the catalogue's latest state, taking a new one after writes.
    async fn snapshot(&self) -> Result<Arc<Snapshot>, QueryError> {
        let _guard = self.snapshot_lock.lock().await;
        let generation = self.catalog.generation();
        if let Some(current) = self.current.lock().ok().and_then(|c| c.clone())
            && current.generation == generation
        {
            return Ok(current);
        }
        let name = format!("{generation}-{}", uuid::Uuid::new_v4().simple());
        let catalog = self.catalog.clone();
        let in_data_dir = self.snapshots_dir.join(&name);
        // Where the data directory has turned read-only (matrix R40), queries must keep
        // working: a RocksDB checkpoint flushes the live store first, which a read-only disk
        // refuses, so the public quads are copied out of the open store into a new one in the
        // temporary directory instead. Nothing is written to the data directory.
        let fallback = std::env::temp_dir()
            .join(format!("agora-sparql-snapshots-{}", std::process::id()))
            .join(&name);
        let path = tokio::task::spawn_blocking(move || {
            match public_checkpoint(&catalog, &in_data_dir) {
                Err(QueryError::Internal(message)) if is_read_only(&message) => {
                    let _ = std::fs::remove_dir_all(&in_data_dir);
                    tracing::warn!(
                        error = %message,
                        fallback = %fallback.display(),
                        "data directory is read-only; SPARQL checkpoint taken in the temporary directory"
                    );
                    if let Some(parent) = fallback.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| QueryError::Internal(format!("checkpoint: {e}")))?;
                    }
                    public_copy(&catalog, &fallback).map(|()| fallback)
                }
                other => other.map(|()| in_data_dir),
            }
        })
        .await
        .map_err(|e| QueryError::Internal(e.to_string()))??;
        let snapshot = Arc::new(Snapshot { generation, path });
        if let Ok(mut current) = self.current.lock() {
            *current = Some(snapshot.clone());
        }
        Ok(snapshot)
    }

    fn spawn(&self) -> Result<Worker, QueryError> {
        let mut command = Command::new(&self.executable);
        command
            .arg("sparql-worker")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            // Each glibc malloc arena reserves 64 MiB of address space; with RLIMIT_AS that
            // reservation, not the query, would decide when a worker dies. One arena suffices
            // for a single-threaded evaluation.
            .env("MALLOC_ARENA_MAX", "1")
            .kill_on_drop(true);
        let limit = self.config.memory_mib.saturating_mul(1 << 20);
        #[cfg(unix)]
        // SAFETY: only async-signal-safe libc calls run between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let rlimit = libc::rlimit {
                    rlim_cur: limit as libc::rlim_t,
                    rlim_max: limit as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| QueryError::Internal(format!("cannot start a SPARQL worker: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(QueryError::Internal("worker pipes missing".into()));
        };
        Ok(Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }
}

async fn run_job(
    worker: &mut Worker,
    job: &WorkerRequest,
) -> std::io::Result<Result<QueryAnswer, QueryError>> {
    let mut line = serde_json::to_vec(job)?;
    line.push(b'\n');
    worker.stdin.write_all(&line).await?;
    worker.stdin.flush().await?;
    let mut header = String::new();
    if worker.stdout.read_line(&mut header).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let response: WorkerResponse = serde_json::from_str(&header)?;
    Ok(match response {
        WorkerResponse::Ok { format, length } => {
            let mut body = vec![0; usize::try_from(length).unwrap_or(0)];
            worker.stdout.read_exact(&mut body).await?;
            Ok(QueryAnswer {
                media_type: format.media_type(),
                body,
            })
        }
        WorkerResponse::BadQuery { message } => Err(QueryError::BadQuery(message)),
        WorkerResponse::TooLarge => Err(QueryError::ResultTooLarge(job.max_bytes)),
        WorkerResponse::Failed { message } => Err(QueryError::Evaluation(message)),
        WorkerResponse::ServiceRefused { message } => Err(QueryError::ServiceRefused(message)),
        WorkerResponse::PeerFailed { message } => Err(QueryError::Peer(message)),
    })
}

/// Refuses what never reaches a worker: syntax errors, graph IRIs that do not parse, and a
/// `SERVICE` (not `SILENT`) whose IRI is not a configured peer's SPARQL endpoint.
fn check_query(request: &QueryRequest, services: &ServiceAccess) -> Result<(), QueryError> {
    let _parsed = SparqlEvaluator::new()
        .with_base_iri(&request.base_iri)
        .map_err(|e| QueryError::Internal(e.to_string()))?
        .parse_query(&request.query)
        .map_err(|e| {
            if SparqlEvaluator::new().parse_update(&request.query).is_ok() {
                QueryError::UpdateRefused
            } else {
                QueryError::BadQuery(format!("the query does not parse: {e}"))
            }
        })?;
    for iri in request.default_graphs.iter().chain(&request.named_graphs) {
        NamedNode::new(iri)
            .map_err(|e| QueryError::BadQuery(format!("the graph IRI `{iri}` is invalid: {e}")))?;
    }
    check_services(request, services)
}

/// The `SERVICE` part of [`check_query`], on Oxigraph's own algebra of the query.
fn check_services(request: &QueryRequest, services: &ServiceAccess) -> Result<(), QueryError> {
    let parsed = spargebra::SparqlParser::new()
        .with_base_iri(&request.base_iri)
        .map_err(|e| QueryError::Internal(e.to_string()))?
        .parse_query(&request.query)
        .map_err(|e| QueryError::BadQuery(format!("the query does not parse: {e}")))?;
    let pattern = match &parsed {
        spargebra::Query::Select { pattern, .. }
        | spargebra::Query::Construct { pattern, .. }
        | spargebra::Query::Describe { pattern, .. }
        | spargebra::Query::Ask { pattern, .. } => pattern,
    };
    let mut found = Vec::new();
    service_names(pattern, &mut found);
    for (name, silent) in found {
        if silent {
            // Refused in the worker without a connection; SILENT makes that no bindings.
            continue;
        }
        match name {
            NamedNodePattern::NamedNode(iri) => {
                services
                    .peer_for(iri.as_str())
                    .map_err(QueryError::ServiceRefused)?;
            }
            NamedNodePattern::Variable(variable) => {
                return Err(QueryError::ServiceRefused(format!(
                    "SERVICE ?{} is refused: name a configured peer's SPARQL endpoint (its URL + /sparql) as an IRI",
                    variable.as_str()
                )));
            }
        }
    }
    Ok(())
}

/// Every `SERVICE` of `pattern` (its name and whether it is `SILENT`), those inside
/// `EXISTS`/`NOT EXISTS` included.
fn service_names(pattern: &GraphPattern, found: &mut Vec<(NamedNodePattern, bool)>) {
    match pattern {
        GraphPattern::Bgp { .. } | GraphPattern::Path { .. } | GraphPattern::Values { .. } => {}
        GraphPattern::Join { left, right }
        | GraphPattern::Lateral { left, right }
        | GraphPattern::Union { left, right }
        | GraphPattern::Minus { left, right } => {
            service_names(left, found);
            service_names(right, found);
        }
        GraphPattern::LeftJoin {
            left,
            right,
            expression,
        } => {
            service_names(left, found);
            service_names(right, found);
            if let Some(expression) = expression {
                expression_services(expression, found);
            }
        }
        GraphPattern::Filter { expr, inner } => {
            expression_services(expr, found);
            service_names(inner, found);
        }
        GraphPattern::Extend {
            inner, expression, ..
        } => {
            expression_services(expression, found);
            service_names(inner, found);
        }
        GraphPattern::OrderBy { inner, expression } => {
            for order in expression {
                let (OrderExpression::Asc(e) | OrderExpression::Desc(e)) = order;
                expression_services(e, found);
            }
            service_names(inner, found);
        }
        GraphPattern::Group {
            inner, aggregates, ..
        } => {
            for (_, aggregate) in aggregates {
                if let spargebra::algebra::AggregateExpression::FunctionCall { expr, .. } =
                    aggregate
                {
                    expression_services(expr, found);
                }
            }
            service_names(inner, found);
        }
        GraphPattern::Graph { inner, .. }
        | GraphPattern::Project { inner, .. }
        | GraphPattern::Distinct { inner }
        | GraphPattern::Reduced { inner }
        | GraphPattern::Slice { inner, .. } => service_names(inner, found),
        GraphPattern::Service {
            name,
            inner,
            silent,
        } => {
            found.push((name.clone(), *silent));
            service_names(inner, found);
        }
    }
}

fn expression_services(expression: &Expression, found: &mut Vec<(NamedNodePattern, bool)>) {
    match expression {
        Expression::NamedNode(_)
        | Expression::Literal(_)
        | Expression::Variable(_)
        | Expression::Bound(_) => {}
        Expression::Exists(pattern) => service_names(pattern, found),
        Expression::Or(a, b)
        | Expression::And(a, b)
        | Expression::Equal(a, b)
        | Expression::SameTerm(a, b)
        | Expression::Greater(a, b)
        | Expression::GreaterOrEqual(a, b)
        | Expression::Less(a, b)
        | Expression::LessOrEqual(a, b)
        | Expression::Add(a, b)
        | Expression::Subtract(a, b)
        | Expression::Multiply(a, b)
        | Expression::Divide(a, b) => {
            expression_services(a, found);
            expression_services(b, found);
        }
        Expression::UnaryPlus(a) | Expression::UnaryMinus(a) | Expression::Not(a) => {
            expression_services(a, found);
        }
        Expression::If(a, b, c) => {
            for e in [a, b, c] {
                expression_services(e, found);
            }
        }
        Expression::In(a, list) => {
            expression_services(a, found);
            for e in list {
                expression_services(e, found);
            }
        }
        Expression::Coalesce(list) | Expression::FunctionCall(_, list) => {
            for e in list {
                expression_services(e, found);
            }
        }
    }
}

/// Most distinct `SERVICE` calls one query may make: Oxigraph may evaluate a `SERVICE` once
/// per solution on its left, and each identical call is answered from the first one's copy,
/// so only different sub-queries count.
const MAX_SERVICE_CALLS: usize = 16;
/// Kept back from the query's budget so a `SERVICE` call that runs out of time is reported
/// as the peer's fault before the worker is killed for the whole query.
const SERVICE_MARGIN: Duration = Duration::from_millis(500);

/// Why a `SERVICE` call gave nothing; the worker tells the two apart for the status code.
#[derive(Debug, thiserror::Error)]
enum ServiceCallError {
    /// Not a configured peer's endpoint: no connection was made.
    #[error("{0}")]
    Refused(String),
    /// The peer failed.
    #[error("{0}")]
    Peer(String),
}

/// The answer of one sub-query (its variables, and each solution's values in their order),
/// kept for the calls that repeat it.
type ServiceAnswer = (Arc<[Variable]>, Arc<[Vec<Option<Term>>]>);

/// The worker's `SERVICE` handler: configured peers only, with the crawler's client and caps.
struct PeerServices {
    access: ServiceAccess,
    deadline: Instant,
    clients: Arc<Mutex<Option<ClientSlot>>>,
    answers: Mutex<std::collections::HashMap<(String, String), ServiceAnswer>>,
}

/// A [`PeerClient`] kept across the jobs of a worker (building one reads the system's roots).
struct ClientSlot {
    allow_private: bool,
    peer_ca: Option<PathBuf>,
    client: PeerClient,
}

impl PeerServices {
    fn client(&self) -> Result<PeerClient, ServiceCallError> {
        let mut slot = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kept) = slot.as_ref()
            && kept.allow_private == self.access.allow_private
            && kept.peer_ca == self.access.peer_ca
        {
            return Ok(kept.client.clone());
        }
        let client = PeerClient::new(
            AddressPolicy {
                allow_private: self.access.allow_private,
            },
            self.access.peer_ca.as_deref(),
        )
        .map_err(|e| ServiceCallError::Peer(format!("the peers' client cannot be built: {e}")))?;
        *slot = Some(ClientSlot {
            allow_private: self.access.allow_private,
            peer_ca: self.access.peer_ca.clone(),
            client: client.clone(),
        });
        Ok(client)
    }

    /// Sends `query` to `peer` and reads every solution of its answer.
    fn call(&self, peer: &ServicePeer, query: &str) -> Result<ServiceAnswer, ServiceCallError> {
        let failed = |why: String| {
            ServiceCallError::Peer(format!(
                "SERVICE <{}> (peer `{}`) failed: {why}",
                peer.endpoint, peer.id
            ))
        };
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(50) {
            return Err(failed(
                "the query's time budget was spent before the call".into(),
            ));
        }
        let timeout = left.min(CALL_TIMEOUT);
        let agent = self
            .client()?
            .agent(&peer.endpoint, timeout)
            .map_err(|e| failed(e.to_string()))?;
        let response = agent
            .post(&peer.endpoint)
            .header("Content-Type", "application/sparql-query")
            .header(
                "Accept",
                "application/sparql-results+json, application/sparql-results+xml;q=0.9",
            )
            .send(query);
        let mut response = response.map_err(|e| match e {
            ureq::Error::Timeout(_) => failed(format!(
                "no complete answer within {} ms (the query's time budget, at most {} s a call)",
                timeout.as_millis(),
                CALL_TIMEOUT.as_secs()
            )),
            other => failed(format!(
                "unreachable: {}",
                crate::federation::outbound::describe(&other)
            )),
        })?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(failed(format!(
                "it answered HTTP {status}; redirects are not followed"
            )));
        }
        if !(200..300).contains(&status) {
            return Err(failed(format!("it answered HTTP {status}")));
        }
        let media_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => failed(format!(
                    "its answer is larger than {MAX_RESPONSE_BYTES} bytes"
                )),
                ureq::Error::Timeout(_) => failed(format!(
                    "no complete answer within {} ms (the query's time budget, at most {} s a call)",
                    timeout.as_millis(),
                    CALL_TIMEOUT.as_secs()
                )),
                other => failed(format!("the answer was cut: {other}")),
            })?;
        let format = QueryResultsFormat::from_media_type(&media_type)
            .ok_or_else(|| failed(format!("its answer is not SPARQL results ({media_type})")))?;
        let parsed = QueryResultsParser::from_format(format)
            .for_slice(&body)
            .map_err(|e| failed(format!("its answer is malformed: {e}")))?;
        let SliceQueryResultsParserOutput::Solutions(solutions) = parsed else {
            return Err(failed("it answered a boolean, not solutions".into()));
        };
        let variables: Arc<[Variable]> = solutions.variables().into();
        let mut rows = Vec::new();
        for solution in solutions {
            let solution: QuerySolution =
                solution.map_err(|e| failed(format!("its answer is malformed: {e}")))?;
            rows.push(
                variables
                    .iter()
                    .map(|v| solution.get(v).cloned())
                    .collect::<Vec<_>>(),
            );
        }
        Ok((variables, rows.into()))
    }
}

impl DefaultServiceHandler for PeerServices {
    type Error = ServiceCallError;

    fn handle(
        &self,
        service_name: &NamedNode,
        pattern: &GraphPattern,
        base_iri: Option<&oxiri::Iri<String>>,
    ) -> Result<QuerySolutionIter<'static>, ServiceCallError> {
        let peer = self
            .access
            .peer_for(service_name.as_str())
            .map_err(ServiceCallError::Refused)?;
        let query = spargebra::Query::Select {
            dataset: None,
            pattern: pattern.clone(),
            base_iri: base_iri.cloned(),
        }
        .to_string();
        let key = (peer.endpoint.clone(), query);
        let kept = self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let (variables, solutions) = match kept {
            Some(answer) => answer,
            None => {
                let calls = self.answers.lock().map(|a| a.len()).unwrap_or(0);
                if calls >= MAX_SERVICE_CALLS {
                    return Err(ServiceCallError::Peer(format!(
                        "the query makes more than {MAX_SERVICE_CALLS} different SERVICE calls; bind the peer's part once (a subquery) instead"
                    )));
                }
                let answer = self.call(peer, &key.1)?;
                self.answers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, answer.clone());
                answer
            }
        };
        Ok(QuerySolutionIter::from_tuples(
            variables,
            (0..solutions.len()).map(move |i| Ok::<_, QueryEvaluationError>(solutions[i].clone())),
        ))
    }
}

/// The worker process's main loop: one request per line on stdin, a header line and the
/// result bytes on stdout. It exits when stdin closes.
pub fn worker_main() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut output = stdout.lock();
    let mut opened: Option<(PathBuf, Store)> = None;
    let clients = Arc::new(Mutex::new(None));
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let job: WorkerRequest = serde_json::from_str(&line)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if opened
            .as_ref()
            .is_none_or(|(path, _)| *path != job.snapshot)
        {
            // Release the previous checkpoint before opening the next one.
            drop(opened.take());
            let store = Store::open_read_only(&job.snapshot)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            opened = Some((job.snapshot.clone(), store));
        }
        let Some((_, store)) = &opened else {
            return Err(std::io::ErrorKind::NotFound.into());
        };
        let services = PeerServices {
            access: job.services,
            deadline: Instant::now()
                + Duration::from_millis(job.budget_ms).saturating_sub(SERVICE_MARGIN),
            clients: clients.clone(),
            answers: Mutex::new(std::collections::HashMap::new()),
        };
        let (response, body) = evaluate(store, &job.request, job.max_bytes, services);
        let mut header = serde_json::to_vec(&response)?;
        header.push(b'\n');
        output.write_all(&header)?;
        output.write_all(&body)?;
        output.flush()?;
    }
}

fn evaluate(
    store: &Store,
    request: &QueryRequest,
    max_bytes: u64,
    services: PeerServices,
) -> (WorkerResponse, Vec<u8>) {
    let failed = |message: String| (WorkerResponse::Failed { message }, Vec::new());
    let evaluator = match SparqlEvaluator::new().with_base_iri(&request.base_iri) {
        // The only SERVICE handler: Oxigraph is built without `http-client`, and this one
        // reaches configured peers only.
        Ok(e) => e.with_default_service_handler(services),
        Err(e) => return failed(e.to_string()),
    };
    let mut prepared = match evaluator.parse_query(&request.query) {
        Ok(p) => p,
        Err(e) => {
            return (
                WorkerResponse::BadQuery {
                    message: format!("the query does not parse: {e}"),
                },
                Vec::new(),
            );
        }
    };
    let dataset = prepared.dataset_mut();
    if !request.default_graphs.is_empty() || !request.named_graphs.is_empty() {
        let named = |iri: &String| NamedNode::new(iri).ok();
        dataset.set_default_graph(
            request
                .default_graphs
                .iter()
                .filter_map(named)
                .map(GraphName::from)
                .collect(),
        );
        dataset.set_available_named_graphs(
            request
                .named_graphs
                .iter()
                .filter_map(named)
                .map(NamedOrBlankNode::from)
                .collect(),
        );
    }
    // Without a dataset clause the default graph is the union of the catalogue's graphs.
    if dataset.is_default_dataset() {
        dataset.set_default_graph_as_union();
    }
    let results = match prepared.on_store(store).execute() {
        Ok(r) => r,
        Err(e) => return serialize_failure(classify(e)),
    };
    let mut sink = CappedWriter {
        buffer: Vec::new(),
        cap: max_bytes,
    };
    let outcome = serialize_results(results, request.formats, &mut sink);
    match outcome {
        Ok(format) => {
            let length = sink.buffer.len() as u64;
            (WorkerResponse::Ok { format, length }, sink.buffer)
        }
        Err(error) => serialize_failure(error),
    }
}

fn serialize_failure(error: SerializeError) -> (WorkerResponse, Vec<u8>) {
    let response = match error {
        SerializeError::TooLarge => WorkerResponse::TooLarge,
        SerializeError::Failed(message) => WorkerResponse::Failed { message },
        SerializeError::ServiceRefused(message) => WorkerResponse::ServiceRefused { message },
        SerializeError::Peer(message) => WorkerResponse::PeerFailed { message },
    };
    (response, Vec::new())
}

enum SerializeError {
    TooLarge,
    Failed(String),
    ServiceRefused(String),
    Peer(String),
}

/// An evaluation error, with a `SERVICE` handler's own errors told apart.
fn classify(error: QueryEvaluationError) -> SerializeError {
    if let QueryEvaluationError::Service(inner) = &error
        && let Some(call) = inner.downcast_ref::<ServiceCallError>()
    {
        return match call {
            ServiceCallError::Refused(message) => SerializeError::ServiceRefused(message.clone()),
            ServiceCallError::Peer(message) => SerializeError::Peer(message.clone()),
        };
    }
    SerializeError::Failed(error.to_string())
}

fn serialize_results(
    results: QueryResults<'_>,
    formats: FormatChoice,
    sink: &mut CappedWriter,
) -> Result<ResultFormat, SerializeError> {
    let io = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            SerializeError::TooLarge
        } else {
            SerializeError::Failed(e.to_string())
        }
    };
    let eval = classify;
    match results {
        QueryResults::Boolean(value) => {
            let format = solutions_format(formats.solutions);
            QueryResultsSerializer::from_format(format)
                .serialize_boolean_to_writer(sink, value)
                .map_err(io)?;
            Ok(formats.solutions)
        }
        QueryResults::Solutions(solutions) => {
            let format = solutions_format(formats.solutions);
            let mut writer = QueryResultsSerializer::from_format(format)
                .serialize_solutions_to_writer(&mut *sink, solutions.variables().to_vec())
                .map_err(io)?;
            for solution in solutions {
                writer.serialize(&solution.map_err(eval)?).map_err(io)?;
            }
            writer.finish().map_err(io)?;
            Ok(formats.solutions)
        }
        QueryResults::Graph(triples) => {
            let format = match formats.graph {
                ResultFormat::NTriples => RdfFormat::NTriples,
                ResultFormat::JsonLd => RdfFormat::JsonLd {
                    profile: oxigraph::io::JsonLdProfileSet::empty(),
                },
                ResultFormat::RdfXml => RdfFormat::RdfXml,
                _ => RdfFormat::Turtle,
            };
            let mut writer = RdfSerializer::from_format(format).for_writer(&mut *sink);
            for triple in triples {
                writer
                    .serialize_triple(&triple.map_err(eval)?)
                    .map_err(io)?;
            }
            writer.finish().map_err(io)?;
            Ok(formats.graph)
        }
    }
}

fn solutions_format(format: ResultFormat) -> QueryResultsFormat {
    match format {
        ResultFormat::Xml => QueryResultsFormat::Xml,
        ResultFormat::Csv => QueryResultsFormat::Csv,
        ResultFormat::Tsv => QueryResultsFormat::Tsv,
        _ => QueryResultsFormat::Json,
    }
}

/// A buffer that refuses to grow past the result budget.
struct CappedWriter {
    buffer: Vec<u8>,
    cap: u64,
}

impl Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if (self.buffer.len() + data.len()) as u64 > self.cap {
            return Err(std::io::ErrorKind::FileTooLarge.into());
        }
        self.buffer.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What [`public_checkpoint`] makes, by reading the open store rather than checkpointing it
/// (which needs a flush the data directory may not take): every quad but those of restricted
/// datasets, copied into a new store at `target`.
fn public_copy(catalog: &Catalog, target: &std::path::Path) -> Result<(), QueryError> {
    let failed = |e: &dyn std::fmt::Display| QueryError::Internal(format!("checkpoint copy: {e}"));
    let restricted: std::collections::HashSet<String> = catalog
        .restricted_ids()
        .map_err(|e| failed(&e))?
        .into_iter()
        .map(|id| format!("urn:agora:local:{id}"))
        .collect();
    let copy = Store::open(target).map_err(|e| failed(&e))?;
    let mut quads = Vec::new();
    for quad in catalog.store().iter() {
        let quad = quad.map_err(|e| failed(&e))?;
        let hidden = matches!(&quad.graph_name,
            oxigraph::model::GraphName::NamedNode(g) if restricted.contains(g.as_str()));
        if !hidden {
            quads.push(quad);
        }
    }
    copy.extend(quads).map_err(|e| failed(&e))?;
    copy.flush().map_err(|e| failed(&e))
}

/// Whether a storage error says the file system is read-only (RocksDB hands errors up as text).
fn is_read_only(message: &str) -> bool {
    message.contains("Read-only file system") || message.contains("os error 30")
}

/// A checkpoint of the public catalogue for SPARQL: the store as it is, less the graphs of
/// restricted datasets (those with an access policy), which the public endpoint never serves.
fn public_checkpoint(catalog: &Catalog, target: &std::path::Path) -> Result<(), QueryError> {
    let failed = |e: &dyn std::fmt::Display| QueryError::Internal(format!("checkpoint: {e}"));
    let restricted = catalog.restricted_ids().map_err(|e| failed(&e))?;
    catalog.store().backup(target).map_err(|e| failed(&e))?;
    if restricted.is_empty() {
        return Ok(());
    }
    let checkpoint = Store::open(target).map_err(|e| failed(&e))?;
    for id in restricted {
        let graph = oxigraph::model::NamedNode::new_unchecked(format!("urn:agora:local:{id}"));
        checkpoint
            .remove_named_graph(graph.as_ref())
            .map_err(|e| failed(&e))?;
    }
    checkpoint.flush().map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> QueryRequest {
        QueryRequest {
            query: query.to_owned(),
            default_graphs: Vec::new(),
            named_graphs: Vec::new(),
            formats: FormatChoice {
                solutions: ResultFormat::Json,
                graph: ResultFormat::Turtle,
            },
            base_iri: "http://node-a.example/sparql".into(),
        }
    }

    fn access() -> ServiceAccess {
        let peer = |id: &str, url: &str, kind| PeerConfig {
            id: id.into(),
            url: url.into(),
            issuer: None,
            kind,
            catalog: None,
        };
        ServiceAccess::new(
            &[
                peer("b", "https://node-b.example/", PeerKind::Dsp),
                peer("city", "https://data.city.example", PeerKind::Dcat),
            ],
            false,
            None,
        )
    }

    #[test]
    fn only_configured_agora_peers_endpoints_pass() {
        let access = access();
        for query in [
            "SELECT * WHERE { SERVICE <https://node-b.example/sparql> { ?s ?p ?o } }",
            "SELECT * WHERE { ?s ?p ?o OPTIONAL { SERVICE <https://node-b.example/sparql> { ?s ?q ?v } } }",
            // SILENT is left to the worker, which refuses without a connection.
            "SELECT * WHERE { SERVICE SILENT <http://169.254.169.254/sparql> { ?s ?p ?o } }",
            "SELECT * WHERE { VALUES ?x { <http://10.0.0.1/> } SERVICE SILENT ?x { ?s ?p ?o } }",
        ] {
            assert!(check_query(&request(query), &access).is_ok(), "{query}");
        }
    }

    #[test]
    fn any_other_service_is_refused_wherever_it_hides() {
        let access = access();
        for (query, named) in [
            (
                "SELECT * WHERE { SERVICE <http://127.0.0.1:8080/sparql> { ?s ?p ?o } }",
                "http://127.0.0.1:8080/sparql",
            ),
            (
                "SELECT * WHERE { { ?s ?p ?o } UNION { SERVICE <http://169.254.169.254/latest> { ?s ?p ?o } } }",
                "http://169.254.169.254/latest",
            ),
            (
                "SELECT * WHERE { ?s ?p ?o FILTER NOT EXISTS { SERVICE <http://10.0.0.1/sparql> { ?s ?p ?o } } }",
                "http://10.0.0.1/sparql",
            ),
            (
                "SELECT * WHERE { ?s ?p ?o MINUS { SELECT ?s WHERE { SERVICE <http://evil.example/sparql> { ?s ?p ?o } } } }",
                "http://evil.example/sparql",
            ),
            (
                "ASK { ?s ?p ?o BIND(IF(EXISTS { SERVICE <http://evil.example/x> { ?s ?p ?o } }, 1, 0) AS ?b) }",
                "http://evil.example/x",
            ),
            (
                "CONSTRUCT { ?s ?p ?o } WHERE { GRAPH ?g { SERVICE <https://node-b.example/sparql/> { ?s ?p ?o } } }",
                "https://node-b.example/sparql/",
            ),
            (
                "SELECT * WHERE { SERVICE <https://data.city.example/sparql> { ?s ?p ?o } }",
                "DCAT-AP portal",
            ),
            (
                "SELECT * WHERE { VALUES ?x { <https://node-b.example/sparql> } SERVICE ?x { ?s ?p ?o } }",
                "SERVICE ?x",
            ),
        ] {
            match check_query(&request(query), &access) {
                Err(QueryError::ServiceRefused(message)) => {
                    assert!(message.contains(named), "{query}: {message}");
                }
                other => panic!("{query} was not refused: {other:?}"),
            }
        }
    }
}
