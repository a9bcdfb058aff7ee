//! Usage policies: ODRL 2.2 read from JSON-LD or Turtle, checked for what the node can enforce,
//! evaluated against a request, explained in words, and compiled into the plan the data plane
//! applies.
//!
//! - [`parse`] turns an untrusted document into the typed [`Policy`] model behind the
//!   `SECURITY.md` §1 guards (size, JSON depth, no remote contexts), refusing anything the model
//!   cannot hold rather than dropping it; [`to_json_ld`] writes the model back.
//! - [`validate`] is the publication check: every action, duty and left operand must be one the
//!   node can evaluate or carry out, or the policy is refused with an error naming each term. A
//!   policy that passes is never partly ignored later.
//! - [`Evaluator`] decides permit or deny for a [`Request`] (the requester's verified claims, the
//!   stated purpose, the time from the injected clock, usage so far), names the rule and the
//!   constraint that failed in a sentence a person understands, resolves permission/prohibition
//!   conflicts with the policy's strategy, and for a permit compiles the [`EnforcementPlan`]
//!   (columns dropped, pseudonymised, generalised, rows filtered, budgets, expiry).
//! - [`compliance_report`] renders a decision in the ODRL Compliance Report Model, which the
//!   conformance suites check.
//!
//! Purposes are DPV concepts and their hierarchy counts ([`PurposeHierarchy`]); countries are the
//! EU authority table's concepts, matched with the ISO codes tokens carry.

mod emit;
mod evaluate;
mod knowledge;
mod model;
mod parse;
mod plan;
mod purposes;
/// The naive reference evaluator: the test oracle the real evaluator is checked against
/// (generated-policy property test, `odrl` fuzz target). The node never decides with it.
pub mod reference;
mod report;
mod templates;
mod validate;
mod values;
/// The namespaces and terms policies use, for callers that build requests and policies.
pub mod vocab;
mod words;

pub use emit::{to_json_ld, to_json_ld_string};
pub use evaluate::{
    ConstraintDetail, ConstraintReport, Decision, DeonticState, DutyReport, DutyState, Evaluator,
    Facts, Outcome, Request, RuleReport, Satisfaction, Usage,
};
pub use knowledge::Knowledge;
pub use model::{
    Action, AtomicConstraint, ConflictStrategy, Constraint, Entity, LogicalConstraint,
    LogicalOperator, Operator, Policy, PolicyKind, RightOperand, Rule, RuleKind, Value,
};
pub use parse::{
    ParseOptions, parse, parse_with, policies_in_triples, policy_from_triples, read_triples,
};
pub use plan::{
    Bound, ColumnValue, EnforcementPlan, FilterOperator, Generalisation, Granularity, RowFilter,
};
pub use purposes::PurposeHierarchy;
pub use report::{ReportOptions, compliance_report};
pub use templates::{TEMPLATES, template, template_uids};
pub use validate::{validate, validate_for_dataset};
pub use values::XsdDuration;
pub use words::{PermissionWords, PolicyWords, describe, known_purposes, purpose_label};

use crate::rdf_input::{InputError, RdfSyntax};
use std::fmt;
use std::sync::LazyLock;

/// What went wrong with a policy, and whose fault it is: every variant but
/// [`PolicyError::Internal`] describes the policy or the document it came in.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The document is larger than the node accepts.
    #[error("the policy is larger than {limit} bytes")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// JSON nested deeper than the node accepts (checked before any JSON-LD processing).
    #[error("the policy's JSON is nested deeper than {limit} levels")]
    TooDeep {
        /// The cap.
        limit: usize,
    },
    /// More statements than a policy may have.
    #[error("the policy has more than {limit} triples")]
    TooManyTriples {
        /// The cap.
        limit: usize,
    },
    /// The document does not parse as the syntax it claims (or refers to a remote context).
    #[error("the policy does not parse: {message}")]
    Syntax {
        /// The parser's message, with position.
        message: String,
    },
    /// The document holds no node typed as an ODRL policy.
    #[error(
        "the document holds no ODRL policy (no node typed odrl:Policy, Set, Offer, Agreement, Request, Ticket, Assertion or Privacy)"
    )]
    NoPolicy,
    /// The document holds several policies where one was expected.
    #[error("the document holds {count} policies ({}); send one at a time", uids.join(", "))]
    SeveralPolicies {
        /// How many.
        count: usize,
        /// Their uids.
        uids: Vec<String>,
    },
    /// The document says something the model cannot hold; refused rather than dropped.
    #[error("cannot read {at}: {message}")]
    Unrepresentable {
        /// Where in the policy.
        at: String,
        /// What cannot be represented.
        message: String,
    },
    /// The policy uses terms the node cannot evaluate or carry out (publication check).
    #[error(
        "the node cannot enforce this policy: {}",
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Unenforceable {
        /// Every problem found, each naming the rule and the term.
        problems: Vec<Problem>,
    },
    /// A fault of the node.
    #[error("internal policy error: {0}")]
    Internal(String),
}

/// One reason a policy cannot be enforced: where, which term, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The rule or part of the policy ("the permission to use").
    pub at: String,
    /// The offending term, compacted (`odrl:compensate`), when there is one.
    pub term: Option<String>,
    /// Why the node cannot enforce it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.term {
            Some(term) => write!(f, "{}: {term}: {}", self.at, self.message),
            None => write!(f, "{}: {}", self.at, self.message),
        }
    }
}

impl From<InputError> for PolicyError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::TooLarge { limit } => Self::TooLarge { limit },
            InputError::TooDeep { limit } => Self::TooDeep { limit },
            InputError::TooManyTriples { limit } => Self::TooManyTriples { limit },
            InputError::Syntax { message } => Self::Syntax { message },
        }
    }
}

/// The policy module's result type.
pub type Result<T, E = PolicyError> = std::result::Result<T, E>;

/// The node's knowledge (profile terms, purposes, countries), read once from the ontology files
/// compiled into the binary.
pub fn knowledge() -> &'static Knowledge {
    static KNOWLEDGE: LazyLock<Knowledge> = LazyLock::new(Knowledge::load);
    &KNOWLEDGE
}

/// Reads a policy and checks that the node can enforce it: what publication (attaching a policy
/// to a dataset) does.
pub fn parse_for_publication(body: &[u8], syntax: RdfSyntax) -> Result<Policy> {
    let policy = parse(body, syntax)?;
    validate(&policy)?;
    Ok(policy)
}

#[cfg(test)]
mod tests;
