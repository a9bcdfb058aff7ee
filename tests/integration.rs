//! The one integration-test binary (RocksDB, and later DataFusion, link once). The modules live
//! in `tests/integration/`: the node's tests start a real `agora serve` process on an ephemeral
//! port and talk HTTP to it; the policy and conformance suites call the library directly.

#[path = "integration/aggregates.rs"]
mod aggregates;
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
#[path = "integration/contracts.rs"]
mod contracts;
#[path = "integration/crash.rs"]
mod crash;
#[path = "integration/dataplane.rs"]
mod dataplane;
#[path = "integration/delta_sharing.rs"]
mod delta_sharing;
#[path = "integration/demo.rs"]
mod demo;
#[path = "integration/differential.rs"]
mod differential;
#[path = "integration/dsp_conformance.rs"]
mod dsp_conformance;
#[path = "integration/dsp_peer.rs"]
mod dsp_peer;
#[path = "integration/dsp_tck.rs"]
mod dsp_tck;
#[path = "integration/durability.rs"]
mod durability;
#[path = "integration/federation.rs"]
mod federation;
#[path = "integration/federation_dcat.rs"]
mod federation_dcat;
#[path = "integration/federation_sparql.rs"]
mod federation_sparql;
#[path = "integration/federation_tls.rs"]
mod federation_tls;
#[path = "integration/flight.rs"]
mod flight;
#[path = "integration/fuzz_seeds.rs"]
mod fuzz_seeds;
#[path = "integration/hardening.rs"]
mod hardening;
#[path = "integration/hostile.rs"]
mod hostile;
#[path = "integration/hostile_data.rs"]
mod hostile_data;
#[path = "integration/matrix.rs"]
mod matrix;
#[path = "integration/matrix_quota.rs"]
mod matrix_quota;
#[path = "integration/matrix_sparql.rs"]
mod matrix_sparql;
#[path = "integration/openapi_fuzz.rs"]
mod openapi_fuzz;
#[path = "integration/policy.rs"]
mod policy;
#[path = "integration/python_client.rs"]
mod python_client;
#[path = "integration/row_filter_differential.rs"]
mod row_filter_differential;
#[path = "integration/s3.rs"]
mod s3;
#[path = "integration/sparql.rs"]
mod sparql;
#[path = "integration/sparql_protocol.rs"]
mod sparql_protocol;
#[path = "integration/tenancy.rs"]
mod tenancy;
#[path = "integration/ui.rs"]
mod ui;
