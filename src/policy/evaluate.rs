//! Deciding permit or deny for a request, and saying why.
//!
//! Each top-level rule is checked against the request: its target, its assignee, its action (the
//! requested action must be the rule's or included in it: `read` is a kind of `use`), the action's
//! refinements and the rule's constraints. Constraints are three-valued: a value the request does
//! not carry (no purpose stated, no country claim) is *unknown*, which keeps a permission from
//! applying and keeps a prohibition in force, so that a missing claim never opens access.
//!
//! A permission applies when every premise holds and none of its duties has been violated;
//! prohibitions override permissions, or the reverse, or the policy is void, as its conflict
//! strategy says (ODRL's default is void). A permit carries the [`EnforcementPlan`] of the
//! permissions that granted it; a deny carries sentences naming the rule and the constraint.

use super::knowledge;
use super::model::{
    AtomicConstraint, Constraint, Entity, LogicalOperator, Operator, Policy, RightOperand, Rule,
    RuleKind, Value,
};
use super::plan::{self, EnforcementPlan};
use super::values::{self, CompareOp, Typed, XsdDuration, align, compare_op, show_instant};
use super::vocab::{AGORA, EU_COUNTRY, ODRL, action_is_included_in, compact, label, local, odrl};
use crate::clock::SharedClock;
use chrono::{DateTime, Utc};
use oxigraph::model::{Literal, NamedNode};
use serde_json::{Map, Value as Json};
use std::collections::{HashMap, HashSet};

/// What is asked: who (claims, party), what (action, target), what for (purpose), and the
/// usage so far under the agreement, plus any facts about the world the caller knows.
#[derive(Debug, Clone)]
pub struct Request {
    /// The requested action (`odrl:use` for reading data).
    pub action: NamedNode,
    /// The asset asked for (the dataset's IRI), if known.
    pub target: Option<NamedNode>,
    /// The requester as an IRI (matched against assignees and `recipient`).
    pub party: Option<NamedNode>,
    /// The requester's verified token claims (`sub`, `country`, `org_type`, ...).
    pub claims: Map<String, Json>,
    /// The stated purpose (a DPV purpose or `agora:AITraining`).
    pub purpose: Option<NamedNode>,
    /// Usage under the agreement so far.
    pub usage: Usage,
    /// What else is known about the world.
    pub facts: Facts,
}

impl Request {
    /// A request to carry out `action`, with nothing else known yet.
    pub fn new(action: NamedNode) -> Self {
        Self {
            action,
            target: None,
            party: None,
            claims: Map::new(),
            purpose: None,
            usage: Usage::default(),
            facts: Facts::default(),
        }
    }

    /// A request to `use` data by the holder of `claims`, for `purpose`. The requester's IRI is
    /// the `sub` claim when that is an absolute IRI.
    pub fn from_claims(claims: Map<String, Json>, purpose: Option<NamedNode>) -> Self {
        let party = claims
            .get("sub")
            .and_then(Json::as_str)
            .filter(|sub| sub.contains(':'))
            .and_then(|sub| NamedNode::new(sub).ok());
        Self {
            party,
            claims,
            purpose,
            ..Self::new(NamedNode::new_unchecked(odrl("use")))
        }
    }

    /// The same request for `target`.
    pub fn with_target(mut self, target: NamedNode) -> Self {
        self.target = Some(target);
        self
    }
}

/// Usage under an agreement, for `count`, `elapsedTime` and the budgets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Usage {
    /// When the agreement was concluded (`elapsedTime` counts from it; at negotiation, now).
    pub agreed_at: Option<DateTime<Utc>>,
    /// Pulls already made (the one asked for is the next).
    pub pulls: u64,
    /// Rows already released.
    pub rows_released: u64,
    /// Bytes already released.
    pub bytes_released: u64,
}

/// Facts about the world a caller knows (membership, duty fulfilment, other operand values).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// `(member, collection)`: assets and parties that are part of collections.
    pub part_of: Vec<(NamedNode, NamedNode)>,
    /// The state of duties, by the duty's IRI.
    pub duty_states: HashMap<NamedNode, DutyState>,
    /// Values of left operands the node does not resolve itself, by operand IRI.
    pub operands: HashMap<NamedNode, Vec<Value>>,
}

/// What is known about a duty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DutyState {
    /// It has been fulfilled.
    Fulfilled,
    /// It has been violated.
    Violated,
    /// Nothing yet (it may still be fulfilled).
    NotSet,
}

/// Permit or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The request may go ahead, under the plan.
    Permit,
    /// It may not.
    Deny,
}

/// Three-valued satisfaction: unknown when the request lacks the value to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Satisfaction {
    /// It holds.
    Satisfied,
    /// It does not hold.
    Unsatisfied,
    /// The request does not say enough to decide.
    Unknown,
}

impl Satisfaction {
    fn from_bool(value: bool) -> Self {
        if value {
            Self::Satisfied
        } else {
            Self::Unsatisfied
        }
    }

    fn all(states: impl IntoIterator<Item = Self>) -> Self {
        let mut result = Self::Satisfied;
        for state in states {
            match state {
                Self::Unsatisfied => return Self::Unsatisfied,
                Self::Unknown => result = Self::Unknown,
                Self::Satisfied => {}
            }
        }
        result
    }
}

/// The decision on a request, with the evidence.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The policy decided on.
    pub policy: NamedNode,
    /// The time of the decision (from the clock).
    pub at: DateTime<Utc>,
    /// Permit or deny.
    pub outcome: Outcome,
    /// How each top-level rule fared.
    pub rules: Vec<RuleReport>,
    /// Sentences for people: why it was denied (empty on a permit).
    pub reasons: Vec<String>,
    /// For a permit, what the data plane must do to every byte it releases.
    pub plan: Option<EnforcementPlan>,
}

impl Decision {
    /// Whether the request is permitted.
    pub fn is_permitted(&self) -> bool {
        self.outcome == Outcome::Permit
    }

    /// The reasons in one paragraph.
    pub fn explanation(&self) -> String {
        match self.outcome {
            Outcome::Permit => "permitted".into(),
            Outcome::Deny => format!("denied: {}", self.reasons.join("; ")),
        }
    }
}

/// How one rule fared.
#[derive(Debug, Clone)]
pub struct RuleReport {
    /// Permission, prohibition or obligation.
    pub kind: RuleKind,
    /// Its index among the policy's rules of that kind.
    pub index: usize,
    /// Its IRI, if it has one.
    pub uid: Option<NamedNode>,
    /// Its name for people ("the permission to use").
    pub name: String,
    /// Whether the request's target is the rule's target (`None`: the rule has none).
    pub target: Option<Satisfaction>,
    /// Whether the requester is the rule's assignee (`None`: the rule has none).
    pub party: Option<Satisfaction>,
    /// Whether the requested action is (included in) the rule's (`None`: the rule has none).
    pub action: Option<Satisfaction>,
    /// The action's refinements.
    pub refinements: Vec<ConstraintReport>,
    /// The rule's constraints.
    pub constraints: Vec<ConstraintReport>,
    /// A permission's duties.
    pub duties: Vec<DutyReport>,
    /// Every premise combined.
    pub state: Satisfaction,
    /// Whether the rule is in force for this request: a permission grants it, a prohibition
    /// forbids it.
    pub active: bool,
    /// Why it does not apply (a permission) or why it applies (a prohibition), for people.
    pub explanation: String,
}

/// How one constraint fared.
#[derive(Debug, Clone)]
pub struct ConstraintReport {
    /// The constraint's IRI, if it has one.
    pub uid: Option<NamedNode>,
    /// Whether it holds.
    pub state: Satisfaction,
    /// What was compared.
    pub detail: ConstraintDetail,
    /// What it requires, for people ("purpose to be a kind of dpv:ResearchAndDevelopment").
    pub requirement: String,
    /// What the request showed ("dpv:Marketing is not").
    pub finding: String,
}

impl ConstraintReport {
    /// "requirement; finding".
    pub fn sentence(&self) -> String {
        format!("{}; {}", self.requirement, self.finding)
    }
}

/// The comparison behind a [`ConstraintReport`].
#[derive(Debug, Clone)]
pub enum ConstraintDetail {
    /// A comparison.
    Atomic {
        /// The left operand.
        left_operand: NamedNode,
        /// The operator.
        operator: Operator,
        /// The right operand.
        right_operand: RightOperand,
        /// The value(s) the left operand had for this request.
        left_values: Vec<Value>,
        /// Whether the data plane checks it on each release rather than the decision.
        deferred: bool,
    },
    /// A logical combination.
    Logical {
        /// The operator.
        operator: LogicalOperator,
        /// Each operand's report.
        operands: Vec<ConstraintReport>,
    },
}

/// The state of one duty of a permission.
#[derive(Debug, Clone)]
pub struct DutyReport {
    /// The duty's IRI, if it has one.
    pub uid: Option<NamedNode>,
    /// Its action.
    pub action: Option<NamedNode>,
    /// Its own constraints (when they hold, the duty is in force).
    pub constraints: Vec<ConstraintReport>,
    /// Whether its own constraints put it in force.
    pub in_force: Satisfaction,
    /// Its deontic state.
    pub state: DeonticState,
}

/// Where a duty stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeonticState {
    /// Fulfilled.
    Fulfilled,
    /// Violated: the permission it conditions is not in force.
    Violated,
    /// Not yet fulfilled; it may still be.
    Pending,
    /// A duty the node itself carries out on every release (the agora data-plane actions,
    /// attribution): it is part of the enforcement plan.
    PerformedByNode,
}

/// Decides requests against policies, reading the time from the injected clock.
#[derive(Debug, Clone)]
pub struct Evaluator {
    clock: SharedClock,
}

/// What a left operand is for this request.
enum Resolved {
    /// Its values.
    Values(Vec<Value>),
    /// Not known for this request, and why.
    Missing(String),
    /// Checked by the data plane on every release.
    Deferred,
}

/// How values of a left operand compare.
#[derive(Clone, Copy)]
enum Domain {
    Purpose,
    Country,
    OrgType,
    Instant,
    Elapsed(DateTime<Utc>),
    Generic,
}

impl Evaluator {
    /// An evaluator reading time from `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self { clock }
    }

    /// Decides `request` against `policy`.
    pub fn evaluate(&self, policy: &Policy, request: &Request) -> Decision {
        let now = self.clock.now();
        let context = Context { request, now };
        let mut rules: Vec<RuleReport> = Vec::new();
        for (kind, index, rule) in policy.rules() {
            rules.push(context.rule(kind, index, rule));
        }
        let action = label(request.action.as_str());
        let active_permissions: Vec<&RuleReport> = rules
            .iter()
            .filter(|r| r.kind == RuleKind::Permission && r.active)
            .collect();
        let applying_prohibitions: Vec<&RuleReport> = rules
            .iter()
            .filter(|r| r.kind == RuleKind::Prohibition && r.active)
            .collect();
        let mut reasons = Vec::new();
        let permit = if active_permissions.is_empty() {
            let covering: Vec<&RuleReport> = rules
                .iter()
                .filter(|r| {
                    r.kind == RuleKind::Permission && r.action != Some(Satisfaction::Unsatisfied)
                })
                .collect();
            if covering.is_empty() {
                reasons.push(format!("no permission of the policy covers {action}"));
            }
            reasons.extend(covering.iter().map(|r| r.explanation.clone()));
            reasons.extend(applying_prohibitions.iter().map(|r| r.explanation.clone()));
            false
        } else if applying_prohibitions.is_empty() {
            true
        } else {
            match policy.conflict_strategy() {
                super::ConflictStrategy::Perm => true,
                super::ConflictStrategy::Prohibit => {
                    reasons.extend(applying_prohibitions.iter().map(|r| r.explanation.clone()));
                    false
                }
                super::ConflictStrategy::Invalid => {
                    reasons.push(format!(
                        "the policy is void for this request: {} and {} both apply and the policy's conflict strategy is invalid (ODRL's default when none is stated)",
                        active_permissions[0].name, applying_prohibitions[0].name
                    ));
                    false
                }
            }
        };
        let mut plan = None;
        if permit {
            let granting: Vec<usize> = active_permissions.iter().map(|r| r.index).collect();
            let agreed_at = request.usage.agreed_at.unwrap_or(now);
            // Duties already fulfilled, or not in force, need nothing from the node.
            let settled = |permission: usize, duty: usize| {
                rules
                    .iter()
                    .find(|r| r.kind == RuleKind::Permission && r.index == permission)
                    .and_then(|r| r.duties.get(duty))
                    .is_some_and(|d| {
                        d.state == DeonticState::Fulfilled
                            || d.in_force == Satisfaction::Unsatisfied
                    })
            };
            match plan::compile_settled(policy, &granting, agreed_at, &settled) {
                Ok(compiled) => plan = Some(compiled),
                Err(error) => reasons.push(format!("the policy cannot be enforced: {error}")),
            }
        }
        let outcome = if plan.is_some() {
            Outcome::Permit
        } else {
            Outcome::Deny
        };
        Decision {
            policy: policy.uid.clone(),
            at: now,
            outcome,
            rules,
            reasons,
            plan,
        }
    }
}

struct Context<'a> {
    request: &'a Request,
    now: DateTime<Utc>,
}

impl Context<'_> {
    fn rule(&self, kind: RuleKind, index: usize, rule: &Rule) -> RuleReport {
        let name = rule_name(kind, rule);
        let target = rule
            .target
            .as_ref()
            .map(|t| self.entity(t, self.request.target.as_ref()));
        let party = rule
            .assignee
            .as_ref()
            .map(|p| self.entity(p, self.request.party.as_ref()));
        let action = rule.action.as_ref().map(|a| {
            Satisfaction::from_bool(action_is_included_in(
                self.request.action.as_str(),
                a.name.as_str(),
            ))
        });
        let refinements: Vec<ConstraintReport> = rule
            .action
            .iter()
            .flat_map(|a| &a.refinements)
            .map(|c| self.constraint(c))
            .collect();
        let constraints: Vec<ConstraintReport> = rule
            .constraints
            .iter()
            .map(|c| self.constraint(c))
            .collect();
        let state = Satisfaction::all(
            [target, party, action]
                .into_iter()
                .flatten()
                .chain(refinements.iter().map(|r| r.state))
                .chain(constraints.iter().map(|c| c.state)),
        );
        let duties: Vec<DutyReport> = if kind == RuleKind::Permission {
            rule.duties.iter().map(|d| self.duty(d)).collect()
        } else {
            Vec::new()
        };
        let violated = duties
            .iter()
            .find(|d| d.state == DeonticState::Violated && d.in_force != Satisfaction::Unsatisfied);
        let active = match kind {
            RuleKind::Permission => state == Satisfaction::Satisfied && violated.is_none(),
            RuleKind::Prohibition => state != Satisfaction::Unsatisfied,
            _ => state == Satisfaction::Satisfied,
        };
        let mut findings = Vec::new();
        let request = self.request;
        if kind == RuleKind::Prohibition {
            // Why it applies: the constraints that hold (or cannot be ruled out).
            for report in refinements.iter().chain(&constraints) {
                if report.state != Satisfaction::Unsatisfied {
                    findings.push(format!("its constraint requires {}", report.sentence()));
                }
            }
        } else {
            // Why it does not apply: the premises that fail (or cannot be checked).
            if target.is_some_and(|s| s != Satisfaction::Satisfied)
                && let Some(t) = &rule.target
            {
                findings.push(format!(
                    "is about {}; the request is for {}",
                    describe_entity(t),
                    request
                        .target
                        .as_ref()
                        .map_or("no particular asset".into(), |n| format!(
                            "<{}>",
                            n.as_str()
                        ))
                ));
            }
            if party.is_some_and(|s| s != Satisfaction::Satisfied)
                && let Some(p) = &rule.assignee
            {
                findings.push(format!(
                    "is granted to {}; the requester is {}",
                    describe_entity(p),
                    request
                        .party
                        .as_ref()
                        .map_or("not identified by an IRI".into(), |n| format!(
                            "<{}>",
                            n.as_str()
                        ))
                ));
            }
            if action.is_some_and(|s| s != Satisfaction::Satisfied)
                && let Some(a) = &rule.action
            {
                findings.push(format!(
                    "covers {}, and {} is not a kind of it",
                    label(a.name.as_str()),
                    label(request.action.as_str())
                ));
            }
            for report in refinements.iter().chain(&constraints) {
                if report.state != Satisfaction::Satisfied {
                    findings.push(format!("requires {}", report.sentence()));
                }
            }
        }
        if let Some(duty) = violated {
            findings.push(format!(
                "has a duty to {} that has been violated",
                duty.action
                    .as_ref()
                    .map_or("act".into(), |a| label(a.as_str()))
            ));
        }
        let explanation = match kind {
            RuleKind::Prohibition if findings.is_empty() => {
                format!(
                    "{name} applies to every request for {}",
                    label(request.action.as_str())
                )
            }
            RuleKind::Prohibition => format!("{name} applies: {}", findings.join(", and ")),
            _ if findings.is_empty() => format!("{name} applies"),
            _ => format!("{name} {}", findings.join(", and ")),
        };
        RuleReport {
            kind,
            index,
            uid: rule.uid.clone(),
            name,
            target,
            party,
            action,
            refinements,
            constraints,
            duties,
            state,
            active,
            explanation,
        }
    }

    fn duty(&self, duty: &Rule) -> DutyReport {
        let constraints: Vec<ConstraintReport> = duty
            .constraints
            .iter()
            .map(|c| self.constraint(c))
            .collect();
        let in_force = Satisfaction::all(constraints.iter().map(|c| c.state));
        let action = duty.action.as_ref().map(|a| a.name.clone());
        let known = duty
            .uid
            .as_ref()
            .and_then(|uid| self.request.facts.duty_states.get(uid));
        let performed_by_node = action
            .as_ref()
            .is_some_and(|a| super::validate::is_node_duty(a.as_str()));
        let state = match known {
            Some(DutyState::Fulfilled) => DeonticState::Fulfilled,
            Some(DutyState::Violated) => DeonticState::Violated,
            Some(DutyState::NotSet) | None if performed_by_node => DeonticState::PerformedByNode,
            Some(DutyState::NotSet) | None => DeonticState::Pending,
        };
        DutyReport {
            uid: duty.uid.clone(),
            action,
            constraints,
            in_force,
            state,
        }
    }

    /// Whether `candidate` is covered by `entity`: it is the entity, or a member of the
    /// collection (through the facts' `partOf`), and satisfies the entity's refinements.
    fn entity(&self, entity: &Entity, candidate: Option<&NamedNode>) -> Satisfaction {
        let refinements =
            Satisfaction::all(entity.refinements.iter().map(|c| self.constraint(c).state));
        let anonymous = entity.uid.is_none() && entity.source.is_none();
        if anonymous {
            // A collection given only by refinements ("every university").
            return refinements;
        }
        // Membership and refinements are both premises: a refinement that fails rules the
        // entity out even when the request does not say which asset or party it is about
        // (Kleene conjunction; found by the reference evaluator, docs/SECURITY.md).
        let membership = match candidate {
            None => Satisfaction::Unknown,
            Some(candidate) => {
                let identified = entity.uid.as_ref() == Some(candidate);
                let member = [entity.uid.as_ref(), entity.source.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|collection| self.part_of(candidate.as_str(), collection.as_str()));
                Satisfaction::from_bool(identified || member)
            }
        };
        Satisfaction::all([membership, refinements])
    }

    /// Whether `member` is (transitively) part of `collection` according to the facts.
    fn part_of(&self, member: &str, collection: &str) -> bool {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut frontier = vec![member];
        while let Some(current) = frontier.pop() {
            if !seen.insert(current) {
                continue;
            }
            for (m, c) in &self.request.facts.part_of {
                if m.as_str() == current {
                    if c.as_str() == collection {
                        return true;
                    }
                    frontier.push(c.as_str());
                }
            }
        }
        false
    }

    fn constraint(&self, constraint: &Constraint) -> ConstraintReport {
        match constraint {
            Constraint::Atomic(atomic) => self.atomic(atomic),
            Constraint::Logical(logical) => {
                let operands: Vec<ConstraintReport> = logical
                    .operands
                    .iter()
                    .map(|c| self.constraint(c))
                    .collect();
                let states: Vec<Satisfaction> = operands.iter().map(|o| o.state).collect();
                let state = match logical.operator {
                    LogicalOperator::And | LogicalOperator::AndSequence => {
                        Satisfaction::all(states.iter().copied())
                    }
                    LogicalOperator::Or => {
                        if states.contains(&Satisfaction::Satisfied) {
                            Satisfaction::Satisfied
                        } else if states.contains(&Satisfaction::Unknown) {
                            Satisfaction::Unknown
                        } else {
                            Satisfaction::Unsatisfied
                        }
                    }
                    LogicalOperator::Xone => {
                        let yes = states
                            .iter()
                            .filter(|s| **s == Satisfaction::Satisfied)
                            .count();
                        let unknown = states
                            .iter()
                            .filter(|s| **s == Satisfaction::Unknown)
                            .count();
                        if yes > 1 {
                            Satisfaction::Unsatisfied
                        } else if unknown > 0 {
                            Satisfaction::Unknown
                        } else {
                            Satisfaction::from_bool(yes == 1)
                        }
                    }
                };
                let (requirement, finding) = describe_logical(logical.operator, &operands, state);
                ConstraintReport {
                    uid: logical.uid.clone(),
                    state,
                    detail: ConstraintDetail::Logical {
                        operator: logical.operator,
                        operands,
                    },
                    requirement,
                    finding,
                }
            }
        }
    }

    fn atomic(&self, constraint: &AtomicConstraint) -> ConstraintReport {
        let left = constraint.left_operand.as_str();
        let domain = self.domain(left);
        let requirement = describe_requirement(constraint, domain);
        let detail = |left_values: Vec<Value>, deferred: bool| ConstraintDetail::Atomic {
            left_operand: constraint.left_operand.clone(),
            operator: constraint.operator,
            right_operand: constraint.right_operand.clone(),
            left_values,
            deferred,
        };
        let (state, finding, left_values, deferred) = match self.resolve(left) {
            Resolved::Deferred => (
                Satisfaction::Satisfied,
                "the data plane enforces it on every release".to_owned(),
                Vec::new(),
                true,
            ),
            Resolved::Missing(why) => (Satisfaction::Unknown, why, Vec::new(), false),
            Resolved::Values(values) => {
                let state = match &constraint.right_operand {
                    RightOperand::Reference(_) => None,
                    RightOperand::Values(right) => {
                        self.compare(constraint.operator, domain, &values, right)
                    }
                };
                let shown = values
                    .iter()
                    .map(|v| show_value(v, domain))
                    .collect::<Vec<_>>()
                    .join(", ");
                match state {
                    Some(true) => (
                        Satisfaction::Satisfied,
                        format!("{shown} is"),
                        values,
                        false,
                    ),
                    Some(false) => (
                        Satisfaction::Unsatisfied,
                        format!("{shown} is not"),
                        values,
                        false,
                    ),
                    None => (
                        Satisfaction::Unknown,
                        match &constraint.right_operand {
                            RightOperand::Reference(r) => format!(
                                "the node does not dereference the right operand <{}>",
                                r.as_str()
                            ),
                            RightOperand::Values(_) => {
                                format!("{shown} cannot be compared with it")
                            }
                        },
                        values,
                        false,
                    ),
                }
            }
        };
        ConstraintReport {
            uid: constraint.uid.clone(),
            state,
            detail: detail(left_values, deferred),
            requirement,
            finding,
        }
    }

    fn domain(&self, left: &str) -> Domain {
        match left {
            l if l == odrl("purpose") => Domain::Purpose,
            l if l == odrl("spatial") || l == format!("{AGORA}country") => Domain::Country,
            l if l == format!("{AGORA}orgType") => Domain::OrgType,
            l if l == odrl("dateTime") => Domain::Instant,
            l if l == odrl("elapsedTime") => {
                Domain::Elapsed(self.request.usage.agreed_at.unwrap_or(self.now))
            }
            _ => Domain::Generic,
        }
    }

    /// The value(s) of a left operand for this request.
    fn resolve(&self, left: &str) -> Resolved {
        let request = self.request;
        let claim = |name: &str, why: &str| -> Resolved {
            let values: Vec<Value> = match request.claims.get(name) {
                Some(Json::String(s)) => vec![Value::string(s.clone())],
                Some(Json::Array(items)) => items
                    .iter()
                    .filter_map(|i| match i {
                        Json::String(s) => Some(Value::string(s.clone())),
                        Json::Number(n) => Some(Value::string(n.to_string())),
                        _ => None,
                    })
                    .collect(),
                Some(Json::Number(n)) => vec![Value::string(n.to_string())],
                Some(Json::Bool(b)) => vec![Value::string(b.to_string())],
                _ => Vec::new(),
            };
            if values.is_empty() {
                Resolved::Missing(why.to_owned())
            } else {
                Resolved::Values(values)
            }
        };
        let xsd = |lexical: String, datatype: &str| {
            Value::Literal(Literal::new_typed_literal(
                lexical,
                NamedNode::new_unchecked(format!("http://www.w3.org/2001/XMLSchema#{datatype}")),
            ))
        };
        let profile = |name: &str| format!("{AGORA}{name}");
        match left {
            l if l == odrl("dateTime") => {
                Resolved::Values(vec![xsd(show_instant(self.now), "dateTime")])
            }
            l if l == odrl("elapsedTime") => {
                let start = request.usage.agreed_at.unwrap_or(self.now);
                Resolved::Values(vec![xsd(
                    XsdDuration::between(start, self.now).to_string(),
                    "duration",
                )])
            }
            l if l == odrl("count") => Resolved::Values(vec![xsd(
                request.usage.pulls.saturating_add(1).to_string(),
                "integer",
            )]),
            l if l == odrl("purpose") => match &request.purpose {
                Some(purpose) => Resolved::Values(vec![Value::Iri(purpose.clone())]),
                None => Resolved::Missing("the request states no purpose".into()),
            },
            l if l == odrl("spatial") || l == profile("country") => {
                claim("country", "the requester's token carries no country claim")
            }
            l if l == profile("orgType") => claim(
                "org_type",
                "the requester's token carries no org_type claim",
            ),
            l if l == odrl("recipient") => {
                let mut values = Vec::new();
                if let Some(party) = &request.party {
                    values.push(Value::Iri(party.clone()));
                }
                if let Some(Json::String(sub)) = request.claims.get("sub") {
                    values.push(Value::string(sub.clone()));
                }
                if values.is_empty() {
                    Resolved::Missing("the requester is not identified".into())
                } else {
                    Resolved::Values(values)
                }
            }
            l if l == profile("minGroupSize") => Resolved::Deferred,
            l if l == profile("rowBudget") => Resolved::Values(vec![xsd(
                request.usage.rows_released.to_string(),
                "integer",
            )]),
            l if l == profile("byteBudget") => Resolved::Values(vec![xsd(
                request.usage.bytes_released.to_string(),
                "integer",
            )]),
            _ => match request
                .facts
                .operands
                .iter()
                .find(|(operand, _)| operand.as_str() == left)
            {
                Some((_, values)) if !values.is_empty() => Resolved::Values(values.clone()),
                _ => Resolved::Missing(format!(
                    "the node has no value for {} in this request",
                    compact(left)
                )),
            },
        }
    }

    /// Applies an operator: `None` when the values cannot be compared.
    fn compare(
        &self,
        operator: Operator,
        domain: Domain,
        left: &[Value],
        right: &[Value],
    ) -> Option<bool> {
        let single = || -> Option<&Value> {
            match right {
                [one] => Some(one),
                _ => None,
            }
        };
        // Existential over the left values: some value satisfies the comparison.
        let any = |test: &dyn Fn(&Value) -> Option<bool>| -> Option<bool> {
            let mut unknown = false;
            for value in left {
                match test(value) {
                    Some(true) => return Some(true),
                    Some(false) => {}
                    None => unknown = true,
                }
            }
            if unknown { None } else { Some(false) }
        };
        let matches = |l: &Value, r: &Value| self.matches(domain, l, r);
        match operator {
            Operator::Eq | Operator::IsA => {
                let r = single()?;
                any(&|l| matches(l, r))
            }
            Operator::Neq => {
                let r = single()?;
                any(&|l| matches(l, r)).map(|b| !b)
            }
            Operator::IsPartOf => {
                let r = single()?;
                any(&|l| self.is_part_of(domain, l, r))
            }
            Operator::HasPart => {
                let r = single()?;
                any(&|l| self.is_part_of(domain, r, l))
            }
            Operator::Lt | Operator::Lteq | Operator::Gt | Operator::Gteq => {
                let r = single()?;
                let op = match operator {
                    Operator::Lt => CompareOp::Lt,
                    Operator::Lteq => CompareOp::Lteq,
                    Operator::Gt => CompareOp::Gt,
                    _ => CompareOp::Gteq,
                };
                if let Domain::Elapsed(start) = domain {
                    return self.elapsed(op, start, r);
                }
                any(&|l| {
                    let (a, b) = align(l, r);
                    compare_op(op, &a, &b)
                })
            }
            Operator::IsAnyOf => {
                let mut unknown = false;
                for r in right {
                    match any(&|l| matches(l, r)) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => unknown = true,
                    }
                }
                if unknown { None } else { Some(false) }
            }
            Operator::IsNoneOf => {
                let mut unknown = false;
                for r in right {
                    match any(&|l| matches(l, r)) {
                        Some(true) => return Some(false),
                        Some(false) => {}
                        None => unknown = true,
                    }
                }
                if unknown { None } else { Some(true) }
            }
            Operator::IsAllOf => {
                let mut unknown = false;
                for r in right {
                    match any(&|l| matches(l, r)) {
                        Some(true) => {}
                        Some(false) => return Some(false),
                        None => unknown = true,
                    }
                }
                if unknown { None } else { Some(true) }
            }
        }
    }

    /// `elapsedTime op duration`: compares the clock with the agreement's start moved by the
    /// duration, so that calendar months count as calendar months.
    fn elapsed(&self, op: CompareOp, start: DateTime<Utc>, right: &Value) -> Option<bool> {
        let Typed::Duration(duration) = values::typed(right) else {
            return XsdDuration::parse(right.lexical())
                .and_then(|d| self.elapsed(op, start, &duration_value(d)));
        };
        let boundary = duration.after(start)?;
        Some(match op {
            CompareOp::Lt => self.now < boundary,
            CompareOp::Lteq => self.now <= boundary,
            CompareOp::Gt => self.now > boundary,
            CompareOp::Gteq => self.now >= boundary,
            CompareOp::Eq => self.now == boundary,
        })
    }

    /// Whether a left value matches a right value (equality, or the purpose hierarchy).
    fn matches(&self, domain: Domain, left: &Value, right: &Value) -> Option<bool> {
        let k = knowledge();
        match domain {
            Domain::Purpose => match (left.as_iri(), right.as_iri()) {
                (Some(l), Some(r)) => Some(k.purposes.is_kind_of(l, r)),
                _ => Some(left.lexical() == right.lexical()),
            },
            Domain::Country => {
                let l = k.country_iri(left.lexical()).unwrap_or(left.lexical());
                let r = k.country_iri(right.lexical()).unwrap_or(right.lexical());
                Some(l == r)
            }
            Domain::OrgType => {
                let l = k.org_type_code(left.lexical()).unwrap_or(left.lexical());
                let r = k.org_type_code(right.lexical()).unwrap_or(right.lexical());
                Some(l == r)
            }
            Domain::Instant | Domain::Elapsed(_) | Domain::Generic => {
                if let (Some(l), Some(r)) = (left.as_iri(), right.as_iri()) {
                    return Some(l == r);
                }
                let (a, b) = align(left, right);
                compare_op(CompareOp::Eq, &a, &b)
            }
        }
    }

    /// Whether `part` is part of `whole` (countries of the Union, narrower purposes, the facts'
    /// memberships).
    fn is_part_of(&self, domain: Domain, part: &Value, whole: &Value) -> Option<bool> {
        let k = knowledge();
        match domain {
            Domain::Country => {
                let p = k.country_iri(part.lexical())?;
                let w = k.country_iri(whole.lexical())?;
                Some(k.country_is_part_of(p, w))
            }
            Domain::Purpose => self.matches(domain, part, whole),
            _ => match (part.as_iri(), whole.as_iri()) {
                (Some(p), Some(w)) => Some(p == w || self.part_of(p, w)),
                _ => self.matches(domain, part, whole),
            },
        }
    }
}

fn duration_value(duration: XsdDuration) -> Value {
    Value::Literal(Literal::new_typed_literal(
        duration.to_string(),
        NamedNode::new_unchecked("http://www.w3.org/2001/XMLSchema#duration"),
    ))
}

/// "the permission to use".
pub(crate) fn rule_name(kind: RuleKind, rule: &Rule) -> String {
    match &rule.action {
        Some(action) => format!("the {} to {}", kind.word(), label(action.name.as_str())),
        None => format!("the {} for any action", kind.word()),
    }
}

fn describe_entity(entity: &Entity) -> String {
    match (&entity.uid, &entity.source) {
        (Some(uid), _) if entity.collection => format!("the members of <{}>", uid.as_str()),
        (Some(uid), _) => format!("<{}>", uid.as_str()),
        (None, Some(source)) => format!("the members of <{}>", source.as_str()),
        (None, None) => "the parties its refinements describe".into(),
    }
}

/// A value for people: compact IRIs, country codes, lexical forms.
fn show_value(value: &Value, domain: Domain) -> String {
    match value {
        Value::Iri(node) => {
            if let Some(code) = local(node.as_str(), EU_COUNTRY) {
                return code.to_owned();
            }
            compact(node.as_str())
        }
        Value::Literal(literal) => {
            let text = literal.value();
            match domain {
                Domain::Country | Domain::OrgType | Domain::Purpose => text.to_owned(),
                _ if text.contains(' ') => format!("\"{text}\""),
                _ => text.to_owned(),
            }
        }
    }
}

/// "one of AUT, BEL, … (27 values)".
fn show_values(values: &[Value], domain: Domain) -> String {
    const SHOWN: usize = 6;
    let shown: Vec<String> = values
        .iter()
        .take(SHOWN)
        .map(|v| show_value(v, domain))
        .collect();
    if values.len() > SHOWN {
        format!("{}, … ({} values)", shown.join(", "), values.len())
    } else {
        shown.join(", ")
    }
}

/// The left operand for people.
fn operand_label(left: &str) -> String {
    let names: [(&str, &str); 10] = [
        ("purpose", "purpose"),
        ("dateTime", "the current time"),
        ("elapsedTime", "the time since the agreement"),
        ("count", "the number of pulls"),
        ("spatial", "the requester's country"),
        ("recipient", "the recipient"),
        ("country", "the requester's country"),
        ("orgType", "the requester's organisation type"),
        ("rowBudget", "the number of rows released"),
        ("byteBudget", "the number of bytes released"),
    ];
    for (name, label) in names {
        if left == format!("{ODRL}{name}") || left == format!("{AGORA}{name}") {
            return label.to_owned();
        }
    }
    if left == format!("{AGORA}minGroupSize") {
        return "the size of every group in aggregate results".to_owned();
    }
    compact(left)
}

/// "purpose to be a kind of dpv:ResearchAndDevelopment".
fn describe_requirement(constraint: &AtomicConstraint, domain: Domain) -> String {
    let operand = operand_label(constraint.left_operand.as_str());
    let values = match &constraint.right_operand {
        RightOperand::Values(values) => values.as_slice(),
        RightOperand::Reference(reference) => {
            return format!(
                "{operand} {} the value at <{}>",
                constraint.operator.local_name(),
                reference.as_str()
            );
        }
    };
    let list = show_values(values, domain);
    let phrase = match (domain, constraint.operator) {
        (Domain::Purpose, Operator::Eq | Operator::IsA | Operator::IsPartOf) => {
            format!("to be a kind of {list}")
        }
        (Domain::Purpose, Operator::IsAnyOf) => format!("to be a kind of one of {list}"),
        (Domain::Purpose, Operator::IsAllOf) => format!("to be a kind of each of {list}"),
        (Domain::Purpose, Operator::IsNoneOf) => format!("not to be a kind of any of {list}"),
        (Domain::Purpose, Operator::Neq) => format!("not to be a kind of {list}"),
        (Domain::Instant, Operator::Lt) => format!("to be before {list}"),
        (Domain::Instant, Operator::Lteq) => format!("to be at or before {list}"),
        (Domain::Instant, Operator::Gt) => format!("to be after {list}"),
        (Domain::Instant, Operator::Gteq) => format!("to be at or after {list}"),
        (_, Operator::Eq) => format!("to be {list}"),
        (_, Operator::Neq) => format!("not to be {list}"),
        (_, Operator::Lt) => format!("to be less than {list}"),
        (_, Operator::Lteq) => format!("to be at most {list}"),
        (_, Operator::Gt) => format!("to be more than {list}"),
        (_, Operator::Gteq) => format!("to be at least {list}"),
        (_, Operator::IsA) => format!("to be a {list}"),
        (_, Operator::IsPartOf) => format!("to be part of {list}"),
        (_, Operator::HasPart) => format!("to include {list}"),
        (_, Operator::IsAnyOf) => format!("to be one of {list}"),
        (_, Operator::IsAllOf) => format!("to be all of {list}"),
        (_, Operator::IsNoneOf) => format!("not to be any of {list}"),
    };
    format!("{operand} {phrase}")
}

/// The requirement and finding of a logical constraint.
fn describe_logical(
    operator: LogicalOperator,
    operands: &[ConstraintReport],
    state: Satisfaction,
) -> (String, String) {
    const SHOWN: usize = 3;
    let parts: Vec<String> = operands
        .iter()
        .take(SHOWN)
        .map(|o| format!("({})", o.requirement))
        .collect();
    let more = if operands.len() > SHOWN {
        format!(" … ({} alternatives)", operands.len())
    } else {
        String::new()
    };
    let requirement = match operator {
        LogicalOperator::And => format!("all of {}{more}", parts.join(" and ")),
        LogicalOperator::AndSequence => format!("in order, {}{more}", parts.join(" then ")),
        LogicalOperator::Or => format!("at least one of {}{more}", parts.join(" or ")),
        LogicalOperator::Xone => format!("exactly one of {}{more}", parts.join(" or ")),
    };
    let holding = operands
        .iter()
        .filter(|o| o.state == Satisfaction::Satisfied)
        .count();
    let finding = match (operator, state) {
        (_, Satisfaction::Satisfied) => "it holds".to_owned(),
        (LogicalOperator::Or, Satisfaction::Unsatisfied) => "none holds".to_owned(),
        (LogicalOperator::Xone, Satisfaction::Unsatisfied) => format!("{holding} hold"),
        (_, Satisfaction::Unsatisfied) => operands
            .iter()
            .filter(|o| o.state == Satisfaction::Unsatisfied)
            .take(SHOWN)
            .map(|o| o.finding.clone())
            .collect::<Vec<_>>()
            .join("; "),
        (_, Satisfaction::Unknown) => operands
            .iter()
            .filter(|o| o.state == Satisfaction::Unknown)
            .take(1)
            .map(|o| o.finding.clone())
            .collect::<Vec<_>>()
            .join("; "),
    };
    (requirement, finding)
}

#[cfg(test)]
mod tests;
