//! The `agora` command line: a thin front over the library.

use agora::catalog::sparql;
use agora::clock::{SharedClock, SystemClock};
use agora::config::Config;
use agora::identity::{self, DevIssuer, Role, TokenRequest};
use agora::node::Node;
use agora::rdf_input::RdfSyntax;
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One node of a European data space: a federated DCAT-AP catalogue and a governed data broker.
#[derive(Parser)]
#[command(name = "agora", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node.
    Serve(ServeArgs),
    /// Mint development tokens from the data directory's development issuer.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Publish a DCAT-AP dataset (Turtle, JSON-LD or N-Triples file) to a node.
    Publish(PublishArgs),
    /// Run a SPARQL query against a node and print the results.
    Query(QueryArgs),
    /// Check the audit log of a data directory.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Negotiate access to a dataset (prints the agreement, or the refusal and why).
    Negotiate(NegotiateArgs),
    /// Start a transfer under an agreement (prints the data-plane endpoint and token).
    Pull(PullArgs),
    /// Load an RDF file (reference data, vocabularies) into a public named graph of a stopped
    /// node's store.
    Load(LoadArgs),
    /// Internal: evaluate SPARQL queries for the node, one per line on stdin.
    #[command(hide = true)]
    SparqlWorker,
    /// Internal: decode every page of a Parquet file (the node runs this in a confined child
    /// before reading a data holder's file); exits 2 with `invalid: …` on stderr if it is bad.
    #[command(hide = true)]
    ValidateParquet {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// A TOML configuration file.
    #[arg(long, env = "AGORA_CONFIG")]
    config: Option<PathBuf>,
    /// The data directory (store, index, keys).
    #[arg(long, env = "AGORA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to bind, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long, env = "AGORA_BIND")]
    bind: Option<SocketAddr>,
    /// Serve the data plane over Arrow Flight (gRPC) on this address too, e.g. 127.0.0.1:8815
    /// (port 0 picks a free port).
    #[arg(long, env = "AGORA_FLIGHT_BIND")]
    flight_bind: Option<SocketAddr>,
    /// Public base URL of the node, if it differs from http://{bind}.
    #[arg(long, env = "AGORA_PUBLIC_URL")]
    public_url: Option<String>,
    /// Load the sector data pools described in the connectors folder.
    #[arg(long, env = "AGORA_DEMO")]
    demo: bool,
    /// The folder of connector manifests.
    #[arg(long, env = "AGORA_CONNECTORS_DIR")]
    connectors: Option<PathBuf>,
    /// A folder data holders' file:// distributions may point into (repeatable).
    #[arg(long = "allow-root", env = "AGORA_ALLOW_ROOTS", value_delimiter = ':')]
    allow_roots: Vec<PathBuf>,
    /// Wall-clock budget of one SPARQL query, in milliseconds.
    #[arg(long, env = "AGORA_SPARQL_TIMEOUT_MS")]
    sparql_timeout_ms: Option<u64>,
    /// Memory budget of one SPARQL query worker, in MiB.
    #[arg(long, env = "AGORA_SPARQL_MEMORY_MIB")]
    sparql_memory_mib: Option<u64>,
    /// Let DSP messages go to loopback and private addresses (tests, one-machine federations).
    #[arg(long, env = "AGORA_ALLOW_PRIVATE_ADDRESSES")]
    allow_private_addresses: bool,
    /// A peer whose catalogue this node harvests, as ID=URL (repeatable); ID=dcat+URL for a
    /// DCAT-AP portal (CKAN's URL/catalog.ttl), a read-only peer.
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// Seconds between two harvests of one peer.
    #[arg(long, env = "AGORA_CRAWL_INTERVAL")]
    crawl_interval: Option<u64>,
    /// A PEM file of CA certificates trusted for https:// peers (crawl and SPARQL SERVICE),
    /// besides the system's roots.
    #[arg(long, env = "AGORA_PEER_CA")]
    peer_ca: Option<PathBuf>,
    /// Log as JSON lines (default) or as text.
    #[arg(long, env = "AGORA_LOG_FORMAT", default_value = "json")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain and the signed head: exits non-zero naming the first entry that
    /// was edited, deleted, reordered or truncated.
    Verify {
        /// The data directory of the node.
        #[arg(long, env = "AGORA_DATA_DIR", default_value = "agora-data")]
        data_dir: PathBuf,
    },
}

#[derive(Args)]
struct NegotiateArgs {
    /// The dataset: its id or IRI on the node, or its id at `--provider`.
    dataset: String,
    /// What the data will be used for: a DPV purpose, e.g. dpv:AcademicResearch.
    #[arg(long)]
    purpose: Option<String>,
    /// The offer id (default: the dataset's first offer).
    #[arg(long)]
    offer: Option<String>,
    /// The DSP base URL of another node that holds the dataset.
    #[arg(long)]
    provider: Option<String>,
    /// The node's base URL.
    #[arg(long, env = "AGORA_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Your bearer token.
    #[arg(long, env = "AGORA_TOKEN")]
    token: String,
}

#[derive(Args)]
struct PullArgs {
    /// The agreement id.
    #[arg(long)]
    agreement: String,
    /// Where to write the enforced data: a folder gets the Parquet shards, verified by their
    /// SHA-256 and resumed where an interrupted pull stopped; a file ending in `.arrow` or
    /// `.arrows` gets one Arrow IPC stream. Without it, only print the endpoint and the token.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The node's base URL.
    #[arg(long, env = "AGORA_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Your bearer token.
    #[arg(long, env = "AGORA_TOKEN")]
    token: String,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a signed development token.
    Issue {
        /// The data directory of the node the token is for.
        #[arg(long, env = "AGORA_DATA_DIR", default_value = "agora-data")]
        data_dir: PathBuf,
        /// The participant id.
        #[arg(long)]
        sub: String,
        /// A role: holder, researcher, trainer or admin (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// An attribute policies test, key=value (repeatable), e.g. country=DE.
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Print the development issuer's name and public key (PEM), for a peer's
    /// `trusted_issuers`.
    PublicKey {
        /// The data directory of the node.
        #[arg(long, env = "AGORA_DATA_DIR", default_value = "agora-data")]
        data_dir: PathBuf,
    },
}

#[derive(Args)]
struct PublishArgs {
    /// The description file (.ttl, .jsonld/.json or .nt).
    file: PathBuf,
    /// The node's base URL.
    #[arg(long, env = "AGORA_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A bearer token with the holder role.
    #[arg(long, env = "AGORA_TOKEN")]
    token: String,
}

#[derive(Args)]
struct LoadArgs {
    /// The RDF file (.ttl, .nt or .jsonld).
    file: PathBuf,
    /// The data directory of the (stopped) node.
    #[arg(long, env = "AGORA_DATA_DIR", default_value = "agora-data")]
    data_dir: PathBuf,
    /// The named graph to load into (replaced).
    #[arg(long)]
    graph: String,
}

#[derive(Args)]
struct QueryArgs {
    /// The SPARQL query text, or @FILE to read it from a file.
    query: String,
    /// The node's base URL.
    #[arg(long, env = "AGORA_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Result format: json, xml, csv, tsv, ttl, nt, jsonld.
    #[arg(long, default_value = "csv")]
    format: String,
}

/// Prints a line for the operator; a closed stdout (a detached terminal, a reader gone) must not
/// take the node down, so write errors are ignored instead of panicking like `println!`.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token { command } => token(command),
        Command::Publish(args) => publish(args),
        Command::Query(args) => query(args),
        Command::Audit { command } => audit(command),
        Command::Negotiate(args) => negotiate(args),
        Command::Pull(args) => pull(args),
        Command::Load(args) => load(args),
        Command::SparqlWorker => Ok(sparql::worker_main()?),
        Command::ValidateParquet { file } => match agora::engine::validate::decode_fully(&file) {
            Ok(_) => Ok(()),
            Err(reason) => {
                eprintln!("invalid: {reason}");
                std::process::exit(2);
            }
        },
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    limit_malloc_arenas();
    init_logging(args.log_format);
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(v) = args.data_dir {
        config.data_dir = v;
    }
    if let Some(v) = args.bind {
        config.bind = v;
    }
    if let Some(v) = args.public_url {
        config.public_url = Some(v);
    }
    if let Some(v) = args.flight_bind {
        config.flight_bind = Some(v);
    }
    if args.demo {
        config.demo = true;
    }
    if let Some(v) = args.connectors {
        config.connectors_dir = v;
    }
    config.allow_roots.extend(args.allow_roots);
    if args.allow_private_addresses {
        config.contracts.allow_private_addresses = true;
    }
    if let Some(v) = args.sparql_timeout_ms {
        config.sparql.timeout_ms = v;
    }
    if let Some(v) = args.sparql_memory_mib {
        config.sparql.memory_mib = v;
    }
    for flag in &args.peers {
        let peer = agora::config::PeerConfig::parse_flag(flag)?;
        config.federation.peers.retain(|p| p.id != peer.id);
        config.federation.peers.push(peer);
    }
    if let Some(v) = args.crawl_interval {
        config.federation.crawl_interval_seconds = v;
    }
    if let Some(path) = args.peer_ca {
        config.federation.peer_ca = Some(path);
    }
    let listener =
        TcpListener::bind(config.bind).with_context(|| format!("cannot bind {}", config.bind))?;
    config.bind = listener.local_addr()?;
    let flight = match config.flight_bind {
        Some(addr) => {
            let flight = TcpListener::bind(addr)
                .with_context(|| format!("cannot bind {addr} for Arrow Flight"))?;
            config.flight_bind = Some(flight.local_addr()?);
            Some(flight)
        }
        None => None,
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let node = Node::open(config, clock).context("cannot start the node")?;
    if node.config.demo {
        let pools = node.load_demo().context("cannot load the demo pools")?;
        say!("demo pools loaded: {}", pools.join(", "));
    }
    let url = node.config.public_url();
    // Before the HTTP line, which tools (and the test harness) wait for.
    if let Some(addr) = node.config.flight_bind {
        say!("arrow flight on grpc+tcp://{addr}");
    }
    say!(
        "agora {} listening on http://{}",
        agora::VERSION,
        node.config.bind
    );
    if node.config.public_url.is_some() {
        say!("public URL: {url}");
    }
    say!("node id: {}", node.id);
    if node.config.demo && node.config.identity.dev_issuer {
        say!("development tokens (valid 24 h):");
        for role in Role::ALL {
            say!("  {role}: {}", node.demo_token(role)?);
        }
    }
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    actix_web::rt::System::new().block_on(agora::http::serve(node, listener, flight, metrics))?;
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGORA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn token(command: TokenCommand) -> anyhow::Result<()> {
    let (data_dir, sub, roles, claims, ttl) = match command {
        TokenCommand::Issue {
            data_dir,
            sub,
            roles,
            claims,
            ttl,
        } => (data_dir, sub, roles, claims, ttl),
        TokenCommand::PublicKey { data_dir } => {
            let id = identity::node_id(&data_dir)?;
            let issuer = DevIssuer::load_or_create(&data_dir, &id)?;
            say!("# issuer: {}", issuer.issuer());
            say!("# node: {id}");
            say!("{}", issuer.public_key_pem().trim_end());
            return Ok(());
        }
    };
    let roles = roles
        .iter()
        .map(|r| r.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()?;
    let id = identity::node_id(&data_dir)?;
    let issuer = DevIssuer::load_or_create(&data_dir, &id)?;
    let request = TokenRequest {
        subject: sub,
        roles,
        claims: Default::default(),
        lifetime: Duration::from_secs(ttl),
    }
    .with_claim_pairs(claims.iter().map(String::as_str))?;
    say!("{}", issuer.issue(&request, &id, chrono::Utc::now())?);
    Ok(())
}

fn load(args: LoadArgs) -> anyhow::Result<()> {
    let syntax = syntax_of(&args.file)?;
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let config = Config {
        data_dir: args.data_dir,
        ..Config::default()
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let node = Node::open(config, clock)
        .context("cannot open the data directory (is the node running?)")?;
    let triples = node.catalog.load_graph(&args.graph, &body, syntax)?;
    say!("loaded {triples} triples into <{}>", args.graph);
    Ok(())
}

/// Sends a JSON body to the node and reads the JSON answer: `(status, body)`.
fn post_json(
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut response = http_agent()
        .post(url)
        .header("Authorization", format!("Bearer {token}"))
        .content_type("application/json")
        .send(body.to_string().as_bytes())
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok((status, json))
}

fn audit(command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify { data_dir } = command;
    let id = identity::node_id(&data_dir)?;
    let issuer = DevIssuer::load_or_create(&data_dir, &id)?;
    let count = agora::audit::verify(&data_dir, &issuer)?;
    say!("the audit log is intact: {count} entries, chained and signed");
    Ok(())
}

fn negotiate(args: NegotiateArgs) -> anyhow::Result<()> {
    let mut body = serde_json::json!({"dataset": args.dataset});
    for (key, value) in [
        ("purpose", args.purpose),
        ("offer", args.offer),
        ("provider", args.provider),
    ] {
        if let Some(value) = value {
            body[key] = value.into();
        }
    }
    let url = format!("{}/api/negotiations", args.url.trim_end_matches('/'));
    let (status, answer) = post_json(&url, &args.token, &body)?;
    let pretty = serde_json::to_string_pretty(&answer).unwrap_or_default();
    match status {
        201 => {
            say!(
                "agreed: agreement {}",
                answer["agreement"]["id"].as_str().unwrap_or("?")
            );
            say!("{pretty}");
            Ok(())
        }
        202 => {
            say!(
                "pending: negotiation {} is {}{}",
                answer["id"].as_str().unwrap_or("?"),
                answer["state"].as_str().unwrap_or("?"),
                answer["waiting"]
                    .as_str()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            );
            say!("{pretty}");
            Ok(())
        }
        _ => bail!(
            "refused ({status}): {}",
            answer["detail"]
                .as_str()
                .map_or(pretty.clone(), str::to_owned)
        ),
    }
}

fn pull(args: PullArgs) -> anyhow::Result<()> {
    let url = format!("{}/api/transfers", args.url.trim_end_matches('/'));
    let (status, answer) = post_json(
        &url,
        &args.token,
        &serde_json::json!({"agreement": args.agreement}),
    )?;
    let pretty = serde_json::to_string_pretty(&answer).unwrap_or_default();
    match status {
        201 => {
            let endpoint = answer["endpoint"].as_str().unwrap_or("?");
            let token = answer["token"].as_str().unwrap_or("?");
            say!("transfer {} started", answer["id"].as_str().unwrap_or("?"));
            match &args.out {
                Some(out) if is_stream_file(out) => {
                    download(&format!("{endpoint}/arrow"), token, out)
                }
                Some(out) => download_shards(endpoint, token, out),
                None => {
                    say!("endpoint: {endpoint}/arrow");
                    say!("token: {token}");
                    say!(
                        "refresh: POST {}",
                        answer["refresh"]["url"].as_str().unwrap_or("?")
                    );
                    Ok(())
                }
            }
        }
        202 => {
            say!("transfer requested, not started yet:\n{pretty}");
            Ok(())
        }
        _ => bail!(
            "the transfer was refused ({status}): {}",
            answer["detail"]
                .as_str()
                .map_or(pretty.clone(), str::to_owned)
        ),
    }
}

/// Caps glibc's malloc arenas before any thread starts. Each thread that allocates otherwise
/// gets an arena of its own, and memory freed while a stream runs stays pooled in them: one
/// 5 GB enforced stream peaked at 1,112 MiB resident with the default and at 277 MiB with one
/// arena (BENCHMARKS.md, data plane). The price is one lock for every allocation: concurrent
/// catalogue reads wait on it (BENCHMARKS.md, "Allocator", where mimalloc doubled them but
/// peaked at 549 MiB on the same stream). `MALLOC_ARENA_MAX` in the environment still decides
/// when it is set.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Whether `--out` names one Arrow stream file rather than a folder of shards.
fn is_stream_file(out: &std::path::Path) -> bool {
    out.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e == "arrow" || e == "arrows")
}

/// Downloads the agreement's Parquet shards into `dir` with a progress bar, resuming an
/// earlier, interrupted pull.
fn download_shards(endpoint: &str, token: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut shown = std::time::Instant::now();
    let pulled = agora::client::download_shards(endpoint, token, dir, |p| {
        let done = p.shards_done == p.shards_total;
        if !done && shown.elapsed() < Duration::from_millis(200) {
            return;
        }
        shown = std::time::Instant::now();
        let width = 30;
        let filled = (p.shards_done * width)
            .checked_div(p.shards_total)
            .unwrap_or(width);
        eprint!(
            "\r[{}{}] {}/{} shards · {:.1} MiB",
            "#".repeat(filled),
            " ".repeat(width - filled),
            p.shards_done,
            p.shards_total,
            p.bytes_received as f64 / f64::from(1 << 20)
        );
    })?;
    eprintln!();
    say!(
        "wrote {} shards ({} rows) to {}: {} fetched, {} kept from an earlier pull, every SHA-256 checked",
        pulled.files.len(),
        pulled.rows,
        dir.display(),
        pulled.files.len() - pulled.progress.shards_kept,
        pulled.progress.shards_kept
    );
    Ok(())
}

/// Streams the enforced Arrow IPC data to `out` (through a `.part` file renamed at the end, so
/// a broken pull never looks complete), printing progress on stderr.
fn download(url: &str, token: &str, out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut response = http_agent()
        .get(url)
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.body_mut().read_to_string().unwrap_or_default();
        bail!("the node refused the pull ({status}): {text}");
    }
    let partial = out.with_extension("part");
    let mut file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut buffer = vec![0u8; 1 << 20];
    let (mut total, mut shown) = (0u64, 0u64);
    loop {
        let read = reader.read(&mut buffer).context("the stream broke off")?;
        if read == 0 {
            break;
        }
        file.write_all(&buffer[..read])?;
        total += read as u64;
        if total - shown >= 8 << 20 {
            shown = total;
            eprint!("\r{:>8.1} MiB", total as f64 / f64::from(1 << 20));
        }
    }
    file.sync_all()?;
    std::fs::rename(&partial, out)?;
    eprintln!("\r{:>8.1} MiB", total as f64 / f64::from(1 << 20));
    say!("wrote {} ({total} bytes, Arrow IPC stream)", out.display());
    Ok(())
}

/// The RDF syntax of a file, from its extension.
fn syntax_of(file: &std::path::Path) -> anyhow::Result<RdfSyntax> {
    file.extension()
        .and_then(|e| e.to_str())
        .and_then(RdfSyntax::from_extension)
        .with_context(|| {
            format!(
                "cannot tell the syntax of {}: name it .ttl, .jsonld or .nt",
                file.display()
            )
        })
}

fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(agora::federation::outbound::node_tls())
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let content_type = syntax_of(&args.file)?.media_type();
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let mut response = http_agent()
        .post(format!("{}/api/datasets", args.url.trim_end_matches('/')))
        .header("Authorization", format!("Bearer {}", args.token))
        .content_type(content_type)
        .send(&body[..])
        .with_context(|| format!("cannot reach {}", args.url))?;
    let status = response.status();
    let text = response.body_mut().read_to_string()?;
    if status.is_success() {
        say!("{text}");
        Ok(())
    } else {
        bail!("the node refused the dataset ({status}): {text}")
    }
}

fn query(args: QueryArgs) -> anyhow::Result<()> {
    let text = match args.query.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => args.query,
    };
    let mut response = http_agent()
        .post(format!(
            "{}/sparql?format={}",
            args.url.trim_end_matches('/'),
            args.format
        ))
        .content_type("application/sparql-query")
        .send(text.as_bytes())
        .with_context(|| format!("cannot reach {}", args.url))?;
    let status = response.status();
    let body = response.body_mut().read_to_string()?;
    if status.is_success() {
        print!("{body}");
        Ok(())
    } else {
        bail!("the query failed ({status}): {body}")
    }
}
