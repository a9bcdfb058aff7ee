//! agora: one node of a European data space.
//!
//! The library holds the domain; `main.rs` is a thin command-line front end. Each module owns
//! its types, its storage and its errors (see `docs/ARCHITECTURE.md`):
//!
//! - [`catalog`]: the DCAT-AP 3 model, its persistent store, validation, search and SPARQL;
//! - [`policy`]: ODRL 2.2 policies: parsing, the publication check, evaluation, enforcement plans;
//! - [`contract`]: the Dataspace Protocol negotiation and transfer state machines, agreements;
//! - [`audit`]: the hash-chained, signed, fsynced log of what was given to whom;
//! - [`identity`]: JWT validation against trusted issuers and the development issuer;
//! - [`engine`]: the sector data pools (connector manifests and their deterministic data);
//! - [`http`]: the actix-web front: routing, content negotiation, the problem+json contract;
//! - [`flight`]: the Arrow Flight (gRPC) front of the data plane, beside the HTTP one;
//! - [`config`]: the node's configuration (TOML file, `AGORA_*` variables, flags);
//! - [`clock`]: the injected clock every time-dependent decision reads.

pub mod audit;
pub mod catalog;
pub mod client;
pub mod clock;
pub mod config;
pub mod contract;
pub mod engine;
pub mod federation;
pub mod flight;
pub mod harvest_dcat;
pub mod http;
pub mod identity;
pub mod node;
pub mod policy;
pub mod rdf_input;

/// The version the node reports in `/health` and in its exports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
