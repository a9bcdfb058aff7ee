//! The data side of the node. For now: the sector data pools of `connectors/`, their
//! manifests and the deterministic generator of their demo data.

pub mod pools;
