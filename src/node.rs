//! Assembling a node from its configuration: the catalogue, the token validator, the
//! development issuer, the SPARQL workers and, with `--demo`, the sector pools.

use crate::audit::{AuditError, AuditLog};
use crate::catalog::sparql::SparqlService;
use crate::catalog::{Catalog, CatalogOptions, ConnectorRef, PoolSource};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::contract::{AddressPolicy, ContractError, Contracts, ContractsOptions};
use crate::engine::{DataPlane, pools};
use crate::federation::{Federation, FederationOptions};
use crate::identity::{
    self, DevIssuer, PeerKeys, Role, TokenRequest, TokenValidator, TrustedIssuer,
};
use crate::rdf_input::InputLimits;
use std::sync::Arc;
use std::time::Duration;

/// The participant that owns the demo pools; the demo's holder token is issued to it.
pub const DEMO_HOLDER: &str = "demo-holder";

/// Why the node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Key material.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// The catalogue would not open.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// A demo pool would not load.
    #[error(transparent)]
    Pool(#[from] pools::PoolError),
    /// A trusted issuer's key file.
    #[error("trusted issuer {issuer}: {message}")]
    Issuer {
        /// The issuer.
        issuer: String,
        /// What is wrong with its key or algorithm.
        message: String,
    },
    /// The data plane's keys.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// The audit log would not open.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The contracts store would not open.
    #[error(transparent)]
    Contracts(#[from] ContractError),
    /// The file system.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running node's parts.
#[derive(Debug)]
pub struct Node {
    /// The configuration it runs with.
    pub config: Config,
    /// Its id: the audience of the tokens it accepts.
    pub id: String,
    /// Its catalogue.
    pub catalog: Arc<Catalog>,
    /// Its token checks.
    pub tokens: TokenValidator,
    /// Its development issuer, which also signs what the node says as itself (DSP messages,
    /// data-plane tokens).
    pub dev_issuer: Arc<DevIssuer>,
    /// Its contract negotiations, agreements and transfers.
    pub contracts: Arc<Contracts>,
    /// Its audit log of what was given to whom.
    pub audit: Arc<AuditLog>,
    /// Checks data-plane tokens: only the node's own signature counts.
    pub data_tokens: TokenValidator,
    /// Its data plane (allowed roots, the pseudonymisation secret).
    pub dataplane: DataPlane,
    /// Its SPARQL worker pool.
    pub sparql: SparqlService,
    /// Its clock.
    pub clock: SharedClock,
    /// Its federation peers and their crawler (started by the HTTP server).
    pub federation: Arc<Federation>,
}

impl Node {
    /// Opens the node's data directory and builds every part.
    pub fn open(config: Config, clock: SharedClock) -> Result<Self, NodeError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)?;
        let id = identity::node_id(&config.data_dir)?;
        let dev_issuer = Arc::new(DevIssuer::load_or_create(&config.data_dir, &id)?);
        // Filled by the crawler from each peer's JWKS: tokens the peers sign as themselves.
        let peer_keys = PeerKeys::default();
        let mut tokens = TokenValidator::new(&id, config.identity.leeway_seconds, clock.clone())
            .with_peer_keys(peer_keys.clone());
        if config.identity.dev_issuer {
            tokens = tokens.with_issuer(TrustedIssuer {
                issuer: dev_issuer.issuer().to_owned(),
                key: dev_issuer.decoding_key()?,
                algorithm: jsonwebtoken::Algorithm::EdDSA,
            });
        }
        for trusted in &config.identity.trusted_issuers {
            tokens = tokens.with_issuer(load_trusted_issuer(trusted)?);
        }
        let options = CatalogOptions {
            public_url: config.public_url(),
            limits: InputLimits {
                max_bytes: config.limits.max_body_bytes,
                max_json_depth: config.limits.max_json_depth,
                max_triples: config.limits.max_triples,
            },
            allow_roots: config.allow_roots.clone(),
        };
        let catalog = Arc::new(Catalog::open(&config.data_dir, options, clock.clone())?);
        let sparql = SparqlService::new(
            catalog.clone(),
            config.sparql.clone(),
            std::env::current_exe()?,
            &config.data_dir,
        )?;
        let data_tokens = TokenValidator::new(&id, config.identity.leeway_seconds, clock.clone())
            .with_issuer(TrustedIssuer {
                issuer: dev_issuer.issuer().to_owned(),
                key: dev_issuer.decoding_key()?,
                algorithm: jsonwebtoken::Algorithm::EdDSA,
            });
        let dataplane = DataPlane::open(&config.data_dir, &config.allow_roots)?
            .with_validator(std::env::current_exe()?);
        let audit = Arc::new(AuditLog::open(
            &config.data_dir,
            dev_issuer.clone(),
            clock.clone(),
        )?);
        let contracts = Arc::new(Contracts::open(
            &config.data_dir,
            ContractsOptions {
                node_id: id.clone(),
                public_url: config.public_url(),
                addresses: AddressPolicy {
                    allow_private: config.contracts.allow_private_addresses,
                },
                data_token_lifetime: Duration::from_secs(config.contracts.data_token_seconds),
                wait: Duration::from_secs(config.contracts.wait_seconds),
            },
            catalog.clone(),
            dev_issuer.clone(),
            audit.clone(),
            clock.clone(),
        )?);
        let federation = Arc::new(Federation::new(
            FederationOptions {
                node_id: id.clone(),
                peers: config.federation.peers.clone(),
                interval: Duration::from_secs(config.federation.crawl_interval_seconds),
                store_path: config.data_dir.join("federation-peers.json"),
                addresses: AddressPolicy {
                    allow_private: config.contracts.allow_private_addresses,
                },
                peer_ca: config.federation.peer_ca.clone(),
            },
            dev_issuer.clone(),
            catalog.clone(),
            peer_keys,
            clock.clone(),
        )?);
        Ok(Self {
            config,
            id,
            catalog,
            tokens,
            dev_issuer,
            contracts,
            audit,
            data_tokens,
            dataplane,
            sparql,
            clock,
            federation,
        })
    }

    /// Generates the demo pools' data (once) and publishes their descriptions.
    pub fn load_demo(&self) -> Result<Vec<String>, NodeError> {
        let mut loaded = Vec::new();
        for pool in pools::load_pools(&self.config.connectors_dir)? {
            let location = match &pool.manifest.data.s3 {
                Some(s3) => self.dataplane.register_s3(&pool.manifest.id, s3)?,
                None => {
                    let path = pools::ensure_data(&pool, &self.config.data_dir)?;
                    path.strip_prefix(&self.config.data_dir)
                        .unwrap_or(&path)
                        .to_string_lossy()
                        .into_owned()
                }
            };
            let mut description = pool.description()?;
            let uid = pool.policy_uid()?;
            description.extend_from_slice(
                format!("\n<> <http://www.w3.org/ns/odrl/2/hasPolicy> <{uid}> .\n").as_bytes(),
            );
            let source = PoolSource {
                connector: ConnectorRef {
                    location,
                    format: pool.manifest.data.format.clone(),
                },
                columns: pool
                    .manifest
                    .data
                    .columns
                    .iter()
                    .map(|c| c.name.clone())
                    .collect(),
            };
            self.catalog
                .publish_pool(DEMO_HOLDER, &pool.manifest.id, &description, &source)?;
            loaded.push(pool.manifest.id.clone());
        }
        Ok(loaded)
    }

    /// A development token for `role`, as printed at demo start.
    pub fn demo_token(&self, role: Role) -> Result<String, NodeError> {
        let subject = match role {
            Role::Holder => DEMO_HOLDER.to_owned(),
            other => format!("demo-{other}"),
        };
        let mut claims = serde_json::Map::new();
        claims.insert("country".into(), "DE".into());
        claims.insert("org_type".into(), "university".into());
        let request = TokenRequest {
            subject,
            roles: vec![role],
            claims,
            lifetime: Duration::from_secs(24 * 3600),
        };
        Ok(self
            .dev_issuer
            .issue(&request, &self.id, self.clock.now())?)
    }
}

fn load_trusted_issuer(
    trusted: &crate::config::TrustedIssuerConfig,
) -> Result<TrustedIssuer, NodeError> {
    let fail = |message: String| NodeError::Issuer {
        issuer: trusted.issuer.clone(),
        message,
    };
    let algorithm: jsonwebtoken::Algorithm = trusted
        .algorithm
        .parse()
        .map_err(|_| fail(format!("unknown algorithm `{}`", trusted.algorithm)))?;
    let pem = std::fs::read(&trusted.public_key_pem).map_err(|e| fail(e.to_string()))?;
    use jsonwebtoken::{Algorithm::*, DecodingKey};
    let key = match algorithm {
        EdDSA => DecodingKey::from_ed_pem(&pem),
        ES256 | ES384 => DecodingKey::from_ec_pem(&pem),
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => DecodingKey::from_rsa_pem(&pem),
        _ => {
            return Err(fail(format!(
                "{algorithm:?} cannot be trusted across a federation; use EdDSA, ES256/384, RS* or PS*"
            )));
        }
    }
    .map_err(|e| fail(e.to_string()))?;
    Ok(TrustedIssuer {
        issuer: trusted.issuer.clone(),
        key,
        algorithm,
    })
}
