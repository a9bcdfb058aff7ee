//! The two state machines of the Dataspace Protocol 2025-1, as pure functions: which message
//! a party may send in which state, and where it leads. Everything that changes a negotiation
//! or a transfer goes through [`NegotiationState::after`] or [`TransferState::after`], so an
//! illegal transition is refused in one place, with words saying why.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which side of a process this node plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The node offers the data.
    Provider,
    /// The node asks for the data, on behalf of one of its users.
    Consumer,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Self {
        match self {
            Side::Provider => Side::Consumer,
            Side::Consumer => Side::Provider,
        }
    }

    /// "provider" or "consumer".
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Provider => "provider",
            Side::Consumer => "consumer",
        }
    }
}

/// The states of a contract negotiation (DSP 2025-1 §"Contract Negotiation Protocol").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NegotiationState {
    /// The consumer asked for an offer.
    Requested,
    /// The provider made an offer.
    Offered,
    /// The consumer accepted the provider's last offer.
    Accepted,
    /// The provider sent the agreement.
    Agreed,
    /// The consumer verified the agreement.
    Verified,
    /// The provider finalised: the agreement is in force.
    Finalized,
    /// Either party ended the negotiation.
    Terminated,
}

/// What a party says in a negotiation: the DSP message kinds that move its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NegotiationStep {
    /// `ContractRequestMessage` (consumer).
    Request,
    /// `ContractOfferMessage` (provider).
    Offer,
    /// `ContractNegotiationEventMessage` with `ACCEPTED` (consumer).
    Accept,
    /// `ContractAgreementMessage` (provider).
    Agree,
    /// `ContractAgreementVerificationMessage` (consumer).
    Verify,
    /// `ContractNegotiationEventMessage` with `FINALIZED` (provider).
    Finalize,
    /// `ContractNegotiationTerminationMessage` (either).
    Terminate,
}

impl NegotiationStep {
    /// The DSP message that carries this step.
    pub fn message(self) -> &'static str {
        match self {
            Self::Request => "ContractRequestMessage",
            Self::Offer => "ContractOfferMessage",
            Self::Accept => "ContractNegotiationEventMessage (ACCEPTED)",
            Self::Agree => "ContractAgreementMessage",
            Self::Verify => "ContractAgreementVerificationMessage",
            Self::Finalize => "ContractNegotiationEventMessage (FINALIZED)",
            Self::Terminate => "ContractNegotiationTerminationMessage",
        }
    }

    /// The side that may send it (`None`: either).
    fn sender(self) -> Option<Side> {
        match self {
            Self::Request | Self::Accept | Self::Verify => Some(Side::Consumer),
            Self::Offer | Self::Agree | Self::Finalize => Some(Side::Provider),
            Self::Terminate => None,
        }
    }
}

/// A message that the state machine does not allow: who sent what, in which state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct IllegalTransition {
    /// Why, in a sentence.
    pub detail: String,
}

impl NegotiationState {
    /// The state after `sender` sends `step` in this state, or why it may not.
    pub fn after(self, step: NegotiationStep, sender: Side) -> Result<Self, IllegalTransition> {
        if let Some(allowed) = step.sender()
            && allowed != sender
        {
            return Err(IllegalTransition {
                detail: format!(
                    "only the {} sends a {}; it came from the {}",
                    allowed.as_str(),
                    step.message(),
                    sender.as_str()
                ),
            });
        }
        self.next(step).ok_or_else(|| IllegalTransition {
            detail: if self.is_final() {
                format!(
                    "the negotiation is {self} and cannot change any more; a {} is not allowed",
                    step.message()
                )
            } else {
                format!(
                    "a {} is not allowed while the negotiation is {self}; allowed now: {}",
                    step.message(),
                    self.allowed_steps()
                )
            },
        })
    }

    /// The protocol's transition table.
    fn next(self, step: NegotiationStep) -> Option<Self> {
        use NegotiationState::*;
        use NegotiationStep as S;
        match (self, step) {
            (Finalized | Terminated, _) => None,
            (Offered, S::Request) => Some(Requested),
            (Requested, S::Offer) => Some(Offered),
            (Offered, S::Accept) => Some(Accepted),
            (Requested | Accepted, S::Agree) => Some(Agreed),
            (Agreed, S::Verify) => Some(Verified),
            (Verified, S::Finalize) => Some(Finalized),
            (_, S::Terminate) => Some(Terminated),
            _ => None,
        }
    }

    fn allowed_steps(self) -> String {
        use NegotiationStep as S;
        [
            S::Request,
            S::Offer,
            S::Accept,
            S::Agree,
            S::Verify,
            S::Finalize,
            S::Terminate,
        ]
        .into_iter()
        .filter(|step| self.next(*step).is_some())
        .map(|step| {
            format!(
                "{} (from the {})",
                step.message(),
                step.sender().map_or("either side", Side::as_str)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// Whether nothing can change it any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Finalized | Self::Terminated)
    }

    /// The name DSP gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "REQUESTED",
            Self::Offered => "OFFERED",
            Self::Accepted => "ACCEPTED",
            Self::Agreed => "AGREED",
            Self::Verified => "VERIFIED",
            Self::Finalized => "FINALIZED",
            Self::Terminated => "TERMINATED",
        }
    }
}

impl fmt::Display for NegotiationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The states of a transfer process (DSP 2025-1 §"Transfer Process Protocol").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransferState {
    /// The consumer asked for the transfer.
    Requested,
    /// Data may flow.
    Started,
    /// Paused by either party.
    Suspended,
    /// Done.
    Completed,
    /// Ended before completion.
    Terminated,
}

/// What a party says in a transfer process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferStep {
    /// `TransferRequestMessage` (consumer).
    Request,
    /// `TransferStartMessage` (the provider; either party to resume a suspended transfer).
    Start,
    /// `TransferSuspensionMessage` (either).
    Suspend,
    /// `TransferCompletionMessage` (either).
    Complete,
    /// `TransferTerminationMessage` (either).
    Terminate,
}

impl TransferStep {
    /// The DSP message that carries this step.
    pub fn message(self) -> &'static str {
        match self {
            Self::Request => "TransferRequestMessage",
            Self::Start => "TransferStartMessage",
            Self::Suspend => "TransferSuspensionMessage",
            Self::Complete => "TransferCompletionMessage",
            Self::Terminate => "TransferTerminationMessage",
        }
    }
}

impl TransferState {
    /// The state after `sender` sends `step` in this state, or why it may not.
    pub fn after(self, step: TransferStep, sender: Side) -> Result<Self, IllegalTransition> {
        use TransferState::*;
        use TransferStep as S;
        let next = match (self, step) {
            (Completed | Terminated, _) => None,
            (_, S::Request) => None,
            (Requested, S::Start) if sender == Side::Provider => Some(Started),
            (Suspended, S::Start) => Some(Started),
            (Started, S::Suspend) => Some(Suspended),
            (Started, S::Complete) => Some(Completed),
            (Requested | Started | Suspended, S::Terminate) => Some(Terminated),
            _ => None,
        };
        next.ok_or_else(|| IllegalTransition {
            detail: match (self, step) {
                (Completed | Terminated, _) => format!(
                    "the transfer process is {self} and cannot change any more; a {} is not allowed",
                    step.message()
                ),
                (Requested, S::Start) => format!(
                    "only the provider starts a requested transfer; a {} from the {} is not allowed",
                    step.message(),
                    sender.as_str()
                ),
                _ => format!(
                    "a {} is not allowed while the transfer process is {self}",
                    step.message()
                ),
            },
        })
    }

    /// Whether nothing can change it any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Terminated)
    }

    /// The name DSP gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "REQUESTED",
            Self::Started => "STARTED",
            Self::Suspended => "SUSPENDED",
            Self::Completed => "COMPLETED",
            Self::Terminated => "TERMINATED",
        }
    }
}

impl fmt::Display for TransferState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::NegotiationState::*;
    use super::NegotiationStep as N;
    use super::Side::*;
    use super::TransferStep as T;
    use super::*;

    #[test]
    fn the_negotiation_happy_paths_are_allowed() {
        let via_offer = Requested
            .after(N::Offer, Provider)
            .and_then(|s| s.after(N::Accept, Consumer))
            .and_then(|s| s.after(N::Agree, Provider))
            .and_then(|s| s.after(N::Verify, Consumer))
            .and_then(|s| s.after(N::Finalize, Provider));
        assert_eq!(via_offer, Ok(Finalized));
        let direct = Requested
            .after(N::Agree, Provider)
            .and_then(|s| s.after(N::Verify, Consumer));
        assert_eq!(direct, Ok(Verified));
        assert_eq!(Offered.after(N::Request, Consumer), Ok(Requested));
    }

    #[test]
    fn illegal_negotiation_steps_say_why() {
        let error = Requested.after(N::Finalize, Provider).unwrap_err();
        assert!(
            error
                .detail
                .contains("not allowed while the negotiation is REQUESTED")
        );
        assert!(
            error.detail.contains("ContractAgreementMessage"),
            "{}",
            error.detail
        );
        assert!(Offered.after(N::Verify, Consumer).is_err());
        assert!(Accepted.after(N::Verify, Consumer).is_err());
        assert!(Finalized.after(N::Terminate, Consumer).is_err());
        assert!(
            Requested
                .after(N::Agree, Consumer)
                .unwrap_err()
                .detail
                .contains("only the provider")
        );
        assert!(Accepted.after(N::Offer, Provider).is_err());
    }

    #[test]
    fn transfer_steps_follow_the_protocol() {
        use TransferState as S;
        assert_eq!(S::Requested.after(T::Start, Provider), Ok(S::Started));
        assert!(S::Requested.after(T::Start, Consumer).is_err());
        assert!(S::Requested.after(T::Complete, Consumer).is_err());
        assert!(S::Requested.after(T::Suspend, Provider).is_err());
        assert_eq!(S::Suspended.after(T::Start, Consumer), Ok(S::Started));
        assert!(S::Suspended.after(T::Complete, Provider).is_err());
        assert!(S::Terminated.after(T::Start, Provider).is_err());
        assert!(S::Terminated.after(T::Suspend, Provider).is_err());
        assert!(S::Terminated.after(T::Complete, Provider).is_err());
        assert_eq!(S::Started.after(T::Terminate, Consumer), Ok(S::Terminated));
    }
}
