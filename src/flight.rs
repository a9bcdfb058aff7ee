//! Arrow Flight on `--flight-bind` (gRPC over tonic, plain HTTP/2 behind the node's TLS proxy):
//! the governed data plane for clients that speak Flight (pyarrow.flight, DuckDB, Spark
//! connectors), with the same checks and accounting as `GET /data/...` because both call
//! [`crate::engine::access`].
//!
//! - `GetFlightInfo` takes a descriptor naming the agreement: a path `[agreement]` (one rank of
//!   one, epoch 0, seed 0), or a command, the JSON object
//!   `{"agreement": "...", "world_size": 1, "rank": 0, "epoch": 0, "seed": 0}` (all but
//!   `agreement` optional). It answers the enforced schema and one endpoint per segment of that
//!   rank's shard plan, in plan order, each with a ticket and this server's location. The first
//!   call cuts the agreement's shards (the counted pull), like `GET /data/{agreement}/shards`.
//! - `DoGet` with such a ticket streams that segment's enforced record batches. The ticket is
//!   the JSON `{"agreement": "...", "shard": n, "offset": o, "rows": r}`; it is a pointer, not a
//!   credential: what opens it is the bearer token.
//! - Every call carries `authorization: Bearer <data-plane token>` in its headers: the token of
//!   `POST /api/transfers`, bound to the ticket's agreement, while its transfer is STARTED.
//!   The segment is audited (`release`, part `flight-shard-{n}@{offset}+{rows}`) and counted
//!   against the agreement's budgets before its first message, and the stream stops at the
//!   token's or the agreement's expiry.
//! - Refusals: no or bad token → `UNAUTHENTICATED`; a token for another agreement, an ended
//!   transfer or agreement → `PERMISSION_DENIED`; a malformed descriptor or ticket →
//!   `INVALID_ARGUMENT`. The other Flight RPCs answer `UNIMPLEMENTED`.

use crate::catalog::CatalogError;
use crate::contract::ContractError;
use crate::engine::EngineError;
use crate::engine::access::{self, AccessError, Grant};
use crate::engine::shards;
use crate::node::Node;
use arrow_flight::flight_descriptor::DescriptorType;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures_util::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status, Streaming};

/// Why the Flight server could not start.
#[derive(Debug, thiserror::Error)]
pub enum FlightError {
    /// The runtime or the socket.
    #[error("cannot start Arrow Flight on {addr}: {source}")]
    Start {
        /// The address of `--flight-bind`.
        addr: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// The running Flight server: a thread with its own tokio runtime beside actix's.
pub struct FlightServer {
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl FlightServer {
    /// Serves Flight for `node` on `listener` (already bound, so that port 0 works and the
    /// address is known before the node announces itself).
    pub fn start(node: Arc<Node>, listener: std::net::TcpListener) -> Result<Self, FlightError> {
        let addr = listener.local_addr().map_err(|source| FlightError::Start {
            addr: "the --flight-bind socket".into(),
            source,
        })?;
        let fail = |source| FlightError::Start {
            addr: addr.to_string(),
            source,
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let service = Service {
            node,
            location: format!("grpc+tcp://{addr}"),
        };
        // The runtime is built, used and dropped on its own thread (a tokio runtime must not be
        // dropped inside another one's async context); the thread reports whether it started.
        let (started, ready) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("agora-flight".into())
            .spawn(move || {
                let runtime = listener.set_nonblocking(true).and_then(|()| {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .thread_name("agora-flight")
                        .enable_all()
                        .build()
                });
                let prepared = runtime.and_then(|runtime| {
                    let listener = {
                        let _entered = runtime.enter();
                        tokio::net::TcpListener::from_std(listener)
                    };
                    listener.map(|listener| (runtime, listener))
                });
                match prepared {
                    Ok((runtime, listener)) => {
                        let _ = started.send(Ok(()));
                        run(runtime, service, listener, stopped);
                    }
                    Err(error) => {
                        let _ = started.send(Err(error));
                    }
                }
            })
            .map_err(fail)?;
        match ready.recv() {
            Ok(Ok(())) => Ok(Self {
                stop,
                thread: Some(thread),
                addr,
            }),
            Ok(Err(error)) => Err(fail(error)),
            Err(_) => Err(fail(std::io::Error::other(
                "the Flight thread ended at start",
            ))),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting calls, lets running streams finish for up to 10 seconds (as the HTTP
    /// server does), then ends. Blocking.
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    runtime: tokio::runtime::Runtime,
    service: Service,
    listener: tokio::net::TcpListener,
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut signal = stopped.clone();
    let mut grace = stopped;
    runtime.block_on(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let served = tonic::transport::Server::builder()
            .add_service(FlightServiceServer::new(service))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = signal.wait_for(|stop| *stop).await;
            });
        tokio::select! {
            result = served => {
                if let Err(error) = result {
                    tracing::error!(%error, "Arrow Flight server failed");
                }
            }
            _ = async move {
                let _ = grace.wait_for(|stop| *stop).await;
                tokio::time::sleep(Duration::from_secs(10)).await;
            } => tracing::warn!("Arrow Flight: streams still running at shutdown were cut"),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// The descriptor command of `GetFlightInfo`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Command {
    agreement: String,
    world_size: Option<usize>,
    rank: Option<usize>,
    epoch: Option<u64>,
    seed: Option<u64>,
}

/// What a ticket points at: rows `offset..offset + rows` of one shard of one agreement.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketBody {
    agreement: String,
    shard: usize,
    offset: usize,
    rows: usize,
}

/// How a data-plane refusal reads in gRPC.
fn status(error: AccessError) -> Status {
    let message = error.to_string();
    match error {
        AccessError::Unauthenticated(_) => Status::unauthenticated(message),
        AccessError::Forbidden(_) => Status::permission_denied(message),
        AccessError::NotFound(_) => Status::not_found(message),
        AccessError::Internal(_) => {
            tracing::error!(error = %message, "Arrow Flight: internal error");
            Status::internal(message)
        }
        AccessError::Contract(error) => match error {
            ContractError::BadMessage(_) => Status::invalid_argument(message),
            ContractError::NotFound { .. } => Status::not_found(message),
            ContractError::Forbidden(_) => Status::permission_denied(message),
            ContractError::IllegalTransition(_) | ContractError::Conflict(_) => {
                Status::failed_precondition(message)
            }
            ContractError::Unreachable { .. } => Status::unavailable(message),
            ContractError::Internal(_) => Status::internal(message),
        },
        AccessError::Catalog(error) => match error {
            CatalogError::NotFound { .. } => Status::not_found(message),
            CatalogError::Internal(_) => Status::internal(message),
            _ => Status::failed_precondition(message),
        },
        AccessError::Engine(error) => match error {
            EngineError::BadRequest(_) => Status::invalid_argument(message),
            EngineError::Policy(_) | EngineError::Source(_) => Status::failed_precondition(message),
            EngineError::Internal(_) => Status::internal(message),
        },
    }
}

/// The grant of the call's bearer token for `agreement`.
fn grant<T>(node: &Node, request: &Request<T>, agreement: &str) -> Result<Grant, Status> {
    let value = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let token = access::bearer(value).map_err(|e| status(e.into()))?;
    access::grant(node, token, agreement).map_err(status)
}

/// Runs blocking work off the executor.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(format!("a worker thread failed: {e}")))?
}

fn short(text: &str) -> String {
    text.chars().take(80).collect()
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[derive(Clone)]
struct Service {
    node: Arc<Node>,
    location: String,
}

impl Service {
    /// The schema the segments are sent in: that of the shards, or of the enforced view when
    /// the agreement released no rows.
    async fn schema(
        &self,
        grant: &Grant,
        manifest: &shards::Manifest,
    ) -> Result<SchemaRef, Status> {
        if !manifest.shards.is_empty() {
            let file = shards::shard_path(&self.node.dataplane.shard_dir(&grant.agreement), 0);
            return blocking(move || {
                use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
                let opened = std::fs::File::open(&file)
                    .map_err(|e| Status::internal(format!("shard 0 is unreadable: {e}")))?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(opened)
                    .map_err(|e| Status::internal(format!("shard 0 is unreadable: {e}")))?;
                Ok(builder.schema().clone())
            })
            .await;
        }
        access::enforced_schema(&self.node, grant)
            .await
            .map_err(status)
    }
}

#[tonic::async_trait]
impl FlightService for Service {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;
    type DoExchangeStream = Boxed<FlightData>;

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let descriptor = request.get_ref().clone();
        let command = match descriptor.r#type() {
            DescriptorType::Cmd => serde_json::from_slice::<Command>(&descriptor.cmd)
                .map_err(|e| {
                    Status::invalid_argument(format!(
                        "the descriptor command is JSON {{\"agreement\", \"world_size\", \"rank\", \"epoch\", \"seed\"}}: {e}"
                    ))
                })?,
            DescriptorType::Path => match descriptor.path.as_slice() {
                [agreement] => Command {
                    agreement: agreement.clone(),
                    world_size: None,
                    rank: None,
                    epoch: None,
                    seed: None,
                },
                _ => {
                    return Err(Status::invalid_argument(
                        "a descriptor path is one element: the agreement id",
                    ));
                }
            },
            DescriptorType::Unknown => {
                return Err(Status::invalid_argument(
                    "name the agreement in the descriptor (a path [agreement] or a JSON command)",
                ));
            }
        };
        let grant = grant(&self.node, &request, &command.agreement)?;
        let (world_size, rank) = (command.world_size.unwrap_or(1), command.rank.unwrap_or(0));
        let (epoch, seed) = (command.epoch.unwrap_or(0), command.seed.unwrap_or(0));
        if world_size == 0 || rank >= world_size {
            return Err(Status::invalid_argument(format!(
                "rank must be below world_size (got rank {rank} of {world_size})"
            )));
        }
        let manifest = access::shard_manifest(&self.node, &grant)
            .await
            .map_err(status)?;
        let segments =
            shards::plan(&manifest, world_size, rank, epoch, seed).map_err(|e| status(e.into()))?;
        let schema = self.schema(&grant, &manifest).await?;
        let mut info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(format!("the schema cannot be encoded: {e}")))?
            .with_descriptor(descriptor)
            .with_ordered(true);
        let mut rows = 0;
        for segment in &segments {
            let ticket = serde_json::to_vec(&TicketBody {
                agreement: grant.agreement.clone(),
                shard: segment.n,
                offset: segment.offset,
                rows: segment.rows,
            })
            .map_err(|e| Status::internal(e.to_string()))?;
            info = info.with_endpoint(
                FlightEndpoint::new()
                    .with_ticket(Ticket::new(ticket))
                    .with_location(self.location.clone()),
            );
            rows += segment.rows;
        }
        Ok(Response::new(info.with_total_records(
            i64::try_from(rows).unwrap_or(i64::MAX),
        )))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket: TicketBody =
            serde_json::from_slice(&request.get_ref().ticket).map_err(|e| {
                Status::invalid_argument(format!(
                    "this is not a ticket of this node's GetFlightInfo: {}",
                    short(&e.to_string())
                ))
            })?;
        let grant = grant(&self.node, &request, &ticket.agreement)?;
        let manifest = access::manifest_for_release(&self.node, &grant)
            .await
            .map_err(status)?;
        let shard = access::shard(&manifest, ticket.shard).map_err(status)?;
        let end = ticket.offset.checked_add(ticket.rows);
        if ticket.rows == 0 || end.is_none_or(|end| end > shard.rows) {
            return Err(Status::invalid_argument(format!(
                "the ticket asks for rows {}+{} of shard {}, which has {} rows",
                ticket.offset, ticket.rows, ticket.shard, shard.rows
            )));
        }
        let file = shards::shard_path(&self.node.dataplane.shard_dir(&grant.agreement), shard.n);
        let node = self.node.clone();
        let charged = grant.clone();
        let (messages, deadline) = blocking(move || {
            let batches = read_slice(&file, ticket.offset, ticket.rows)?;
            let schema = batches
                .first()
                .map(|b| b.schema())
                .ok_or_else(|| Status::internal("the shard is empty"))?;
            let messages = arrow_flight::utils::batches_to_flight_data(&schema, batches)
                .map_err(|e| Status::internal(format!("encoding the shard: {e}")))?;
            let bytes: usize = messages
                .iter()
                .map(|m| m.data_header.len() + m.data_body.len())
                .sum();
            let part = format!(
                "flight-shard-{}@{}+{}",
                ticket.shard, ticket.offset, ticket.rows
            );
            let (record, _) =
                access::charge_shard(&node, &charged, part, ticket.rows as u64, bytes as u64)
                    .map_err(status)?;
            Ok((messages, access::deadline(&charged, &record)))
        })
        .await?;
        let node = self.node.clone();
        let stream = futures_util::stream::iter(messages).map(move |message| {
            if node.clock.now() > deadline {
                return Err(Status::permission_denied(access::EXPIRED_DURING_STREAM));
            }
            Ok(message)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(unimplemented("Handshake"))
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(unimplemented("ListFlights"))
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(unimplemented("PollFlightInfo"))
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(unimplemented("GetSchema"))
    }

    async fn do_put(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        Err(unimplemented("DoPut"))
    }

    async fn do_action(
        &self,
        _request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        Err(unimplemented("DoAction"))
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        Err(unimplemented("ListActions"))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(unimplemented("DoExchange"))
    }
}

fn unimplemented(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not offered: this node's Flight service answers GetFlightInfo and DoGet"
    ))
}

/// Rows `offset..offset + rows` of a shard file.
fn read_slice(
    file: &std::path::Path,
    offset: usize,
    rows: usize,
) -> Result<Vec<RecordBatch>, Status> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let unreadable =
        |e: &dyn std::fmt::Display| Status::internal(format!("the shard is unreadable: {e}"));
    let opened = std::fs::File::open(file).map_err(|e| unreadable(&e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(opened)
        .and_then(|b| b.with_offset(offset).with_limit(rows).build())
        .map_err(|e| unreadable(&e))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))
}
