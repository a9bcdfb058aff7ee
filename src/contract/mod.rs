//! Contracts: the Dataspace Protocol 2025-1 contract negotiation and transfer process, on both
//! sides, with the agreements they produce.
//!
//! - [`state`] holds the two state machines as pure functions; nothing changes a process
//!   without passing through them.
//! - [`messages`] reads and writes the DSP JSON-LD messages.
//! - [`store`] persists every process, agreement and event log in a private Oxigraph store.
//! - [`Contracts`] is the domain service the HTTP layer calls: it decides as provider (the
//!   dataset's ODRL policy evaluated against the requester's verified claims and purpose, the
//!   holder's approval where the policy asks for it), acts as consumer for the node's users,
//!   issues the data-plane tokens bound to one agreement, and ends transfers whose agreement
//!   expired.

mod agreed_policies;
pub mod messages;
mod outbound;
mod service;
pub mod state;
mod store;

pub use outbound::AddressPolicy;
pub use service::{
    AgreementRecord, Contracts, ContractsOptions, NegotiationRecord, NegotiationRequest, Refusal,
    TransferRecord,
};
pub use state::{NegotiationState, Side, TransferState};
pub use store::Event;

/// What went wrong, and whose fault it is: every variant but [`ContractError::Internal`]
/// describes the request or the counter-party.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The message or request is malformed.
    #[error("{0}")]
    BadMessage(String),
    /// No such process, agreement or dataset for this caller (also what another participant's
    /// process looks like, so that ids cannot be probed).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The message is not allowed in the process's current state.
    #[error("{0}")]
    IllegalTransition(#[from] state::IllegalTransition),
    /// The same process id was used again.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The other connector could not be reached or refused.
    #[error("the counter-party at {url} could not be reached: {message}")]
    Unreachable {
        /// Where.
        url: String,
        /// What happened.
        message: String,
    },
    /// A fault of the node.
    #[error("internal contracts error: {0}")]
    Internal(String),
}

impl From<crate::catalog::CatalogError> for ContractError {
    fn from(error: crate::catalog::CatalogError) -> Self {
        match error {
            crate::catalog::CatalogError::NotFound { id } => Self::NotFound {
                what: format!("dataset {id}"),
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

/// The contract module's result type.
pub type Result<T, E = ContractError> = std::result::Result<T, E>;
