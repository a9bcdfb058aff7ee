//! The fuzz targets' bodies, shared with the integration tests.
pub mod bodies;
