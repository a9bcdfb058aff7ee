//! The one integration-test binary (DataFusion and RocksDB link once): every test starts a
//! real `agora serve` process on an ephemeral port and talks HTTP to it. The modules live in
//! `tests/integration/`.

#[path = "integration/auth.rs"]
mod auth;
#[path = "integration/catalog.rs"]
mod catalog;
#[path = "integration/cli.rs"]
mod cli;
#[path = "integration/common.rs"]
mod common;
#[path = "integration/conformance.rs"]
mod conformance;
#[path = "integration/demo.rs"]
mod demo;
#[path = "integration/durability.rs"]
mod durability;
#[path = "integration/hostile.rs"]
mod hostile;
#[path = "integration/policy.rs"]
mod policy;
#[path = "integration/sparql.rs"]
mod sparql;
#[path = "integration/sparql_protocol.rs"]
mod sparql_protocol;
