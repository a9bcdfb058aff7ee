//! The node's configuration: defaults, overridden by a TOML file, overridden by `AGORA_*`
//! environment variables, overridden by command-line flags (clap merges the last two).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why the configuration cannot be used; each variant names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file named by `--config` / `AGORA_CONFIG`.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for this node.
    #[error("the configuration file {path} is invalid: {message}")]
    Parse {
        /// The file named by `--config` / `AGORA_CONFIG`.
        path: PathBuf,
        /// What the TOML parser reported, with line and column.
        message: String,
    },
    /// A setting has a value the node cannot run with.
    #[error("invalid setting `{setting}`: {message}")]
    Invalid {
        /// The setting's name as written in the TOML file.
        setting: &'static str,
        /// What is wrong and what would be accepted.
        message: String,
    },
}

/// Everything `agora serve` needs to run a node.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the store, the search index and the development keys live.
    pub data_dir: PathBuf,
    /// The socket address the HTTP server binds.
    pub bind: SocketAddr,
    /// The base URL under which the node's IRIs and links are minted; defaults to `http://{bind}`.
    pub public_url: Option<String>,
    /// The socket address of the Arrow Flight (gRPC) data plane; none serves no Flight.
    pub flight_bind: Option<SocketAddr>,
    /// Load the sector pools described in `connectors_dir`.
    pub demo: bool,
    /// The folder holding the connector manifests of the sector pools.
    pub connectors_dir: PathBuf,
    /// Folders under which data holders' `file://` distributions may point.
    pub allow_roots: Vec<PathBuf>,
    /// Who may sign tokens this node accepts.
    pub identity: IdentityConfig,
    /// Budgets of the public SPARQL endpoint.
    pub sparql: SparqlConfig,
    /// Caps applied to every request body before it is parsed.
    pub limits: LimitsConfig,
    /// Contract negotiation and transfer settings.
    pub contracts: ContractsConfig,
    /// The peers whose catalogues this node harvests.
    pub federation: FederationConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("agora-data"),
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            flight_bind: None,
            demo: false,
            connectors_dir: PathBuf::from("connectors"),
            allow_roots: Vec::new(),
            identity: IdentityConfig::default(),
            sparql: SparqlConfig::default(),
            limits: LimitsConfig::default(),
            contracts: ContractsConfig::default(),
            federation: FederationConfig::default(),
        }
    }
}

/// The federation: which nodes' catalogues are harvested, and how often.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// The peers (also `agora serve --peer ID=URL`, and `POST /api/peers` at run time).
    pub peers: Vec<PeerConfig>,
    /// Seconds between two harvests of one peer (also `--crawl-interval`); a deleted or hidden
    /// dataset leaves the federation within one period.
    pub crawl_interval_seconds: u64,
    /// A PEM file of CA certificates trusted for `https://` peers besides the system's roots
    /// (also `--peer-ca`): a federation that runs its own CA. Read at start; a file without a
    /// certificate stops the node.
    pub peer_ca: Option<PathBuf>,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            crawl_interval_seconds: 300,
            peer_ca: None,
        }
    }
}

/// How a peer is harvested.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    /// Another data-space node: its DSP catalogue, per-requester view, offers and negotiation.
    #[default]
    Dsp,
    /// A plain DCAT-AP endpoint (an open-data portal: CKAN's `/catalog.ttl`, piveau): a
    /// read-only peer, harvested without a token, whose datasets have no offers.
    Dcat,
}

impl PeerKind {
    fn is_dsp(&self) -> bool {
        *self == Self::Dsp
    }
}

/// One peer node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// A short name for the peer (`a-z 0-9 -`, at most 32): its origin in search results and the
    /// name of its graph (`urn:agora:peer:{id}`).
    pub id: String,
    /// The peer's base URL (its DSP endpoint is `{url}/dsp`); every dataset it lists has an IRI
    /// under it.
    pub url: String,
    /// The `iss` of the tokens the peer signs as itself; default `{participantId}/dev-issuer`,
    /// the issuer an agora node signs with. Its keys are read from `{url}/.well-known/jwks.json`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `dsp` (default) or `dcat`; `--peer ID=dcat+URL` sets `dcat`.
    #[serde(default, skip_serializing_if = "PeerKind::is_dsp")]
    pub kind: PeerKind,
    /// For a `dcat` peer, the first page of its DCAT-AP catalogue, under `url` (default
    /// `{url}/catalog.ttl`, where CKAN's ckanext-dcat serves it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
}

impl PeerConfig {
    /// Reads `ID=URL` (the `--peer` flag): a DSP peer, or with `ID=dcat+URL` a DCAT-AP portal
    /// whose catalogue is `{URL}/catalog.ttl`.
    pub fn parse_flag(flag: &str) -> Result<Self, ConfigError> {
        let (id, url) = flag.split_once('=').ok_or_else(|| ConfigError::Invalid {
            setting: "--peer",
            message: format!(
                "`{flag}` must be ID=URL or ID=dcat+URL, e.g. b=https://node-b.example"
            ),
        })?;
        let url = url.trim();
        let (kind, url) = match url.strip_prefix("dcat+") {
            Some(rest) => (PeerKind::Dcat, rest),
            None => (PeerKind::Dsp, url),
        };
        let peer = Self {
            id: id.trim().to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            issuer: None,
            kind,
            catalog: None,
        };
        peer.check()?;
        Ok(peer)
    }

    /// The first catalogue page of a `dcat` peer.
    pub fn catalog_url(&self) -> String {
        self.catalog
            .clone()
            .unwrap_or_else(|| format!("{}/catalog.ttl", self.url.trim_end_matches('/')))
    }

    /// Checks the id and the URL's shape (the address policy is checked when it is called).
    pub fn check(&self) -> Result<(), ConfigError> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 32
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok || self.id == "local" {
            return Err(ConfigError::Invalid {
                setting: "federation.peers.id",
                message: format!(
                    "`{}` must be 1 to 32 of a-z, 0-9 and -, and not `local`",
                    self.id.chars().take(40).collect::<String>()
                ),
            });
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://"))
            || self.url.len() > 2048
        {
            return Err(ConfigError::Invalid {
                setting: "federation.peers.url",
                message: format!("the URL of peer `{}` must be http:// or https://", self.id),
            });
        }
        if let Some(catalog) = &self.catalog {
            let under = catalog.starts_with(&format!("{}/", self.url.trim_end_matches('/')));
            if self.kind != PeerKind::Dcat || !under || catalog.len() > 2048 {
                return Err(ConfigError::Invalid {
                    setting: "federation.peers.catalog",
                    message: format!(
                        "the catalogue of peer `{}` is for `kind = \"dcat\"` only, and must be a URL under its `url`",
                        self.id
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Contract negotiation (DSP) and data-plane token settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContractsConfig {
    /// Send DSP messages to loopback and private addresses (callbacks, providers). Off by
    /// default: a counter-party's `callbackAddress` must not make the node call its own network.
    pub allow_private_addresses: bool,
    /// Lifetime of a data-plane token, in seconds; a transfer refreshes it for long pulls.
    pub data_token_seconds: u64,
    /// How long `POST /api/negotiations` and `POST /api/transfers` wait for the other party
    /// before answering the pending state, in seconds.
    pub wait_seconds: u64,
    /// How often agreements are checked for expiry, in seconds.
    pub expiry_check_seconds: u64,
}

impl Default for ContractsConfig {
    fn default() -> Self {
        Self {
            allow_private_addresses: false,
            data_token_seconds: 600,
            wait_seconds: 30,
            expiry_check_seconds: 5,
        }
    }
}

/// Trusted issuers and token checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Trust the development issuer whose key lives in the data directory (`agora token issue`).
    /// Turn it off in production, where only the federation's identity providers sign tokens.
    pub dev_issuer: bool,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway_seconds: u64,
    /// The federation's identity providers.
    pub trusted_issuers: Vec<TrustedIssuerConfig>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            dev_issuer: true,
            leeway_seconds: 30,
            trusted_issuers: Vec::new(),
        }
    }
}

/// One identity provider whose tokens the node accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerConfig {
    /// The exact `iss` claim of its tokens.
    pub issuer: String,
    /// A PEM file with its public key.
    pub public_key_pem: PathBuf,
    /// The one algorithm its tokens must use (`EdDSA`, `ES256`, `RS256`, ...): never taken from
    /// the token.
    pub algorithm: String,
}

/// The public SPARQL endpoint's budgets: every query runs in a worker process that is killed
/// when it overruns them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SparqlConfig {
    /// Wall-clock budget of one query, in milliseconds.
    pub timeout_ms: u64,
    /// Address-space limit of a query worker, in MiB.
    pub memory_mib: u64,
    /// Largest serialised result the endpoint sends, in bytes.
    pub max_result_bytes: u64,
    /// Queries evaluated at once (one worker process each).
    pub workers: usize,
    /// Queries allowed to wait for a worker; more are answered 503 with `Retry-After`.
    pub queue: usize,
}

impl Default for SparqlConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            memory_mib: 2048,
            max_result_bytes: 64 << 20,
            workers: 2,
            queue: 16,
        }
    }
}

/// Caps on request bodies, applied before any parser sees a byte (see `SECURITY.md` §1–2).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a JSON-LD body.
    pub max_json_depth: usize,
    /// Most triples one dataset description may hold.
    pub max_triples: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 << 20,
            max_json_depth: 64,
            max_triples: 50_000,
        }
    }
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// The base URL of the node's own IRIs and links, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.bind),
        }
    }

    /// Checks what serde cannot: relations between settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                setting: "public_url",
                message: format!("`{url}` must be an http:// or https:// URL"),
            });
        }
        if self.sparql.workers == 0 {
            return Err(ConfigError::Invalid {
                setting: "sparql.workers",
                message: "at least one SPARQL worker is needed".into(),
            });
        }
        if self.limits.max_json_depth == 0 || self.limits.max_json_depth > 256 {
            return Err(ConfigError::Invalid {
                setting: "limits.max_json_depth",
                message: "must be between 1 and 256 (deep JSON-LD overflows the parser's stack)"
                    .into(),
            });
        }
        if self.federation.crawl_interval_seconds == 0 {
            return Err(ConfigError::Invalid {
                setting: "federation.crawl_interval_seconds",
                message: "must be at least 1 second".into(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for peer in &self.federation.peers {
            peer.check()?;
            if !seen.insert(peer.id.as_str()) {
                return Err(ConfigError::Invalid {
                    setting: "federation.peers.id",
                    message: format!("peer `{}` is configured twice", peer.id),
                });
            }
        }
        Ok(())
    }
}
