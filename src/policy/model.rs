//! The typed ODRL 2.2 model: policies, their rules (permissions, prohibitions, duties), actions
//! with refinements, assets and parties (single or collections), constraints and logical
//! constraints. IRIs are [`NamedNode`]s, values are IRIs or RDF literals, so nothing of a policy's
//! meaning is lost between the RDF it was read from and the JSON-LD it is written back as.
//!
//! RDF has no order between the values of a property, so the parser sorts rules, constraints and
//! values canonically: two documents with the same triples give equal models.

use oxigraph::model::{Literal, NamedNode};
use std::fmt;

/// The subclass of `odrl:Policy` a policy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// `odrl:Policy` itself (no subclass given).
    Policy,
    /// `odrl:Set`: rules with no particular parties.
    Set,
    /// `odrl:Offer`: what an assigner proposes; what the node publishes in its catalogue.
    Offer,
    /// `odrl:Agreement`: the rules agreed between an assigner and an assignee.
    Agreement,
    /// `odrl:Request`: what a party asks for.
    Request,
    /// `odrl:Ticket`.
    Ticket,
    /// `odrl:Assertion`.
    Assertion,
    /// `odrl:Privacy`.
    Privacy,
}

impl PolicyKind {
    /// Every kind, with its local name in the ODRL namespace.
    pub const ALL: [(Self, &'static str); 8] = [
        (Self::Policy, "Policy"),
        (Self::Set, "Set"),
        (Self::Offer, "Offer"),
        (Self::Agreement, "Agreement"),
        (Self::Request, "Request"),
        (Self::Ticket, "Ticket"),
        (Self::Assertion, "Assertion"),
        (Self::Privacy, "Privacy"),
    ];

    /// The class's local name (`Offer`), which is also its JSON-LD term.
    pub fn local_name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("Policy", |(_, name)| name)
    }
}

/// How a permission and a prohibition that both apply to a request are resolved (`odrl:conflict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConflictStrategy {
    /// `odrl:perm`: permissions override prohibitions.
    Perm,
    /// `odrl:prohibit`: prohibitions override permissions.
    Prohibit,
    /// `odrl:invalid`: the whole policy is void (ODRL's default).
    Invalid,
}

impl ConflictStrategy {
    /// The term's local name in the ODRL namespace.
    pub fn local_name(self) -> &'static str {
        match self {
            Self::Perm => "perm",
            Self::Prohibit => "prohibit",
            Self::Invalid => "invalid",
        }
    }
}

/// An ODRL policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The policy's `uid`.
    pub uid: NamedNode,
    /// Its class.
    pub kind: PolicyKind,
    /// The profiles it declares (`odrl:profile`).
    pub profiles: Vec<NamedNode>,
    /// Its conflict strategy, if it states one (ODRL's default is [`ConflictStrategy::Invalid`]).
    pub conflict: Option<ConflictStrategy>,
    /// `odrl:permission`.
    pub permissions: Vec<Rule>,
    /// `odrl:prohibition`.
    pub prohibitions: Vec<Rule>,
    /// `odrl:obligation`: duties of the policy itself.
    pub obligations: Vec<Rule>,
    /// Other statements about the policy (`dct:title`, `dct:description`, ...), kept as they are.
    pub annotations: Vec<(NamedNode, Value)>,
}

impl Policy {
    /// The conflict strategy in force: the stated one, or ODRL's default `invalid`.
    pub fn conflict_strategy(&self) -> ConflictStrategy {
        self.conflict.unwrap_or(ConflictStrategy::Invalid)
    }

    /// The policy's `dct:title`, English first, for people.
    pub fn title(&self) -> Option<&str> {
        let titles = self
            .annotations
            .iter()
            .filter(|(p, _)| p.as_str() == "http://purl.org/dc/terms/title");
        let mut first = None;
        for (_, value) in titles {
            if let Value::Literal(l) = value {
                if l.language().is_none_or(|lang| lang.starts_with("en")) {
                    return Some(l.value());
                }
                first.get_or_insert(l.value());
            }
        }
        first
    }

    /// Every top-level rule with its kind and index, permissions first.
    pub fn rules(&self) -> impl Iterator<Item = (RuleKind, usize, &Rule)> {
        let permissions = self
            .permissions
            .iter()
            .enumerate()
            .map(|(i, r)| (RuleKind::Permission, i, r));
        let prohibitions = self
            .prohibitions
            .iter()
            .enumerate()
            .map(|(i, r)| (RuleKind::Prohibition, i, r));
        let obligations = self
            .obligations
            .iter()
            .enumerate()
            .map(|(i, r)| (RuleKind::Obligation, i, r));
        permissions.chain(prohibitions).chain(obligations)
    }
}

/// Where a rule sits in a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// A permission of the policy.
    Permission,
    /// A prohibition of the policy.
    Prohibition,
    /// An obligation of the policy (a duty at the policy level).
    Obligation,
    /// A duty of a permission (a pre-condition of exercising it).
    Duty,
    /// A remedy of a prohibition (what to do if it is violated).
    Remedy,
    /// A consequence of a duty (what to do if it is not fulfilled).
    Consequence,
}

impl RuleKind {
    /// The word for people ("permission").
    pub fn word(self) -> &'static str {
        match self {
            Self::Permission => "permission",
            Self::Prohibition => "prohibition",
            Self::Obligation => "obligation",
            Self::Duty => "duty",
            Self::Remedy => "remedy",
            Self::Consequence => "consequence",
        }
    }
}

/// A permission, prohibition or duty. Which one it is follows from where it sits
/// ([`RuleKind`]); the structure is the same.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// The rule's IRI, if it has one (compliance reports refer to it).
    pub uid: Option<NamedNode>,
    /// What may, must not or must be done. ODRL requires one; the parser accepts a rule without
    /// one (it then applies to every action) and publication refuses it.
    pub action: Option<Action>,
    /// The asset the rule is about.
    pub target: Option<Entity>,
    /// The party granting or imposing the rule.
    pub assigner: Option<Entity>,
    /// The party the rule is granted to or imposed on.
    pub assignee: Option<Entity>,
    /// Parties in other functions (`odrl:attributedParty`, `odrl:informedParty`, ...).
    pub other_parties: Vec<(NamedNode, Entity)>,
    /// Conditions that must all hold for the rule to apply.
    pub constraints: Vec<Constraint>,
    /// A permission's duties, a prohibition's remedies or a duty's consequences.
    pub duties: Vec<Rule>,
}

/// An action, possibly refined (`{"rdf:value": {"@id": "agora:generalise"}, "refinement": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The IRI of the refined-action node, when it has one.
    pub uid: Option<NamedNode>,
    /// The action itself (`odrl:use`, `agora:pseudonymise`).
    pub name: NamedNode,
    /// Constraints narrowing the action (for the agora data-plane actions: the columns and the
    /// parameters).
    pub refinements: Vec<Constraint>,
}

impl Action {
    /// An unrefined action.
    pub fn new(name: NamedNode) -> Self {
        Self {
            uid: None,
            name,
            refinements: Vec::new(),
        }
    }
}

/// An asset (a rule's target) or a party (assigner, assignee): one identified thing, or a
/// collection of them (`odrl:AssetCollection`, `odrl:PartyCollection`), possibly given by a
/// `source` and narrowed by refinements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entity {
    /// Its IRI (`None` for an anonymous collection).
    pub uid: Option<NamedNode>,
    /// Whether it is a collection whose members the rule covers.
    pub collection: bool,
    /// Where the collection's members are listed (`odrl:source`).
    pub source: Option<NamedNode>,
    /// Collections it declares itself part of (`odrl:partOf`).
    pub part_of: Vec<NamedNode>,
    /// Constraints every covered member must satisfy.
    pub refinements: Vec<Constraint>,
    /// Other classes it is typed with (`foaf:Person`, `vcard:Organization`, ...).
    pub types: Vec<NamedNode>,
}

impl Entity {
    /// A single asset or party, by IRI.
    pub fn iri(uid: NamedNode) -> Self {
        Self {
            uid: Some(uid),
            ..Self::default()
        }
    }
}

/// A constraint: a comparison, or several combined with a logical operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// `leftOperand operator rightOperand`.
    Atomic(AtomicConstraint),
    /// `and`, `or`, `xone` or `andSequence` of constraints.
    Logical(LogicalConstraint),
}

impl Constraint {
    /// The constraint's IRI, if it has one.
    pub fn uid(&self) -> Option<&NamedNode> {
        match self {
            Self::Atomic(c) => c.uid.as_ref(),
            Self::Logical(c) => c.uid.as_ref(),
        }
    }
}

/// A comparison of a left operand (what the request or the world says) with a right operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtomicConstraint {
    /// The constraint's IRI, if it has one.
    pub uid: Option<NamedNode>,
    /// What is compared (`odrl:purpose`, `agora:country`, ...).
    pub left_operand: NamedNode,
    /// How.
    pub operator: Operator,
    /// With what.
    pub right_operand: RightOperand,
    /// The unit of the right operand (`odrl:unit`), an IRI or a literal as written.
    pub unit: Option<Value>,
    /// The datatype the right operand is to be read as (`odrl:dataType`).
    pub data_type: Option<NamedNode>,
    /// The current value of the left operand as recorded in the policy (`odrl:status`).
    pub status: Option<Value>,
}

/// The right-hand side of a constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RightOperand {
    /// One or more values (several only with the set-based operators).
    Values(Vec<Value>),
    /// A reference to where the value is to be found (`odrl:rightOperandReference`).
    Reference(NamedNode),
}

impl RightOperand {
    /// The values, or none for a reference.
    pub fn values(&self) -> &[Value] {
        match self {
            Self::Values(values) => values,
            Self::Reference(_) => &[],
        }
    }
}

/// An IRI or a literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// An IRI.
    Iri(NamedNode),
    /// A literal (its datatype says how to compare it).
    Literal(Literal),
}

impl Value {
    /// The IRI, if it is one.
    pub fn as_iri(&self) -> Option<&str> {
        match self {
            Self::Iri(node) => Some(node.as_str()),
            Self::Literal(_) => None,
        }
    }

    /// The IRI or the literal's lexical form.
    pub fn lexical(&self) -> &str {
        match self {
            Self::Iri(node) => node.as_str(),
            Self::Literal(literal) => literal.value(),
        }
    }

    /// A string literal.
    pub fn string(value: impl Into<String>) -> Self {
        Self::Literal(Literal::new_simple_literal(value))
    }

    /// A key that orders values canonically.
    pub(crate) fn sort_key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Iri(node) => write!(f, "{node}"),
            Self::Literal(literal) => write!(f, "{literal}"),
        }
    }
}

/// The ODRL 2.2 operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `eq`.
    Eq,
    /// `neq` (read from `odrl:neq`, and from `odrl:neg`, the IRI the published ODRL 2.2 context
    /// gives the term `neq` by mistake).
    Neq,
    /// `lt`.
    Lt,
    /// `lteq`.
    Lteq,
    /// `gt`.
    Gt,
    /// `gteq`.
    Gteq,
    /// `isA`.
    IsA,
    /// `hasPart`.
    HasPart,
    /// `isPartOf`.
    IsPartOf,
    /// `isAllOf`.
    IsAllOf,
    /// `isAnyOf`.
    IsAnyOf,
    /// `isNoneOf`.
    IsNoneOf,
}

impl Operator {
    /// Every operator with its local name in the ODRL namespace.
    pub const ALL: [(Self, &'static str); 12] = [
        (Self::Eq, "eq"),
        (Self::Neq, "neq"),
        (Self::Lt, "lt"),
        (Self::Lteq, "lteq"),
        (Self::Gt, "gt"),
        (Self::Gteq, "gteq"),
        (Self::IsA, "isA"),
        (Self::HasPart, "hasPart"),
        (Self::IsPartOf, "isPartOf"),
        (Self::IsAllOf, "isAllOf"),
        (Self::IsAnyOf, "isAnyOf"),
        (Self::IsNoneOf, "isNoneOf"),
    ];

    /// The local name (`isAnyOf`).
    pub fn local_name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("eq", |(_, name)| name)
    }

    /// Whether the operator compares with a set of values.
    pub fn is_set_based(self) -> bool {
        matches!(self, Self::IsAllOf | Self::IsAnyOf | Self::IsNoneOf)
    }
}

/// The ODRL 2.2 logical operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogicalOperator {
    /// All operands hold.
    And,
    /// At least one operand holds.
    Or,
    /// Exactly one operand holds.
    Xone,
    /// All operands hold, satisfied in order.
    AndSequence,
}

impl LogicalOperator {
    /// Every logical operator with its local name in the ODRL namespace.
    pub const ALL: [(Self, &'static str); 4] = [
        (Self::And, "and"),
        (Self::Or, "or"),
        (Self::Xone, "xone"),
        (Self::AndSequence, "andSequence"),
    ];

    /// The local name (`andSequence`).
    pub fn local_name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("and", |(_, name)| name)
    }
}

/// Logical operands combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalConstraint {
    /// The constraint's IRI, if it has one.
    pub uid: Option<NamedNode>,
    /// How the operands combine.
    pub operator: LogicalOperator,
    /// The operands, in order for `andSequence`.
    pub operands: Vec<Constraint>,
}
