//! The publication check: a policy is attached to a dataset only if the node can enforce all of
//! it. Every action must be known, every constraint must test something the node knows at
//! request time (the requester's claims, the purpose, the clock, usage) or limit what the data
//! plane releases, and every duty must be one the node carries out itself. Anything else is
//! refused with a problem naming the rule and the term, never silently ignored.

use super::knowledge;
use super::model::{
    Constraint, Entity, LogicalOperator, Operator, Policy, RightOperand, Rule, RuleKind, Value,
};
use super::plan;
use super::values::{self, Typed, XsdDuration};
use super::vocab::{
    AGORA, AGORA_PROFILE, ODRL, action_is_included_in, compact, is_known_action,
    is_known_left_operand, odrl,
};
use super::{ConflictStrategy, PolicyError, Problem, Result};
use chrono::DateTime;

/// Checks that the node can enforce every part of `policy`; the error lists every problem.
pub fn validate(policy: &Policy) -> Result<()> {
    let mut checker = Checker {
        problems: Vec::new(),
    };
    for profile in &policy.profiles {
        if profile.as_str() != AGORA_PROFILE {
            checker.problem(
                "the policy",
                Some(format!("<{}>", profile.as_str())),
                "the node knows no ODRL profile but agora's (https://w3id.org/agora/profile)",
            );
        }
    }
    for (kind, index, rule) in policy.rules() {
        let at = super::evaluate::rule_name(kind, rule);
        match kind {
            RuleKind::Permission => {
                checker.rule(&at, rule, true);
                for duty in &rule.duties {
                    match &duty.action {
                        Some(action) if is_node_duty(action.name.as_str()) => {}
                        Some(action) => checker.problem(
                            &at,
                            Some(compact(action.name.as_str())),
                            "the node cannot carry out this duty (it carries out agora:dropColumn, agora:pseudonymise, agora:generalise, agora:filterRows and odrl:attribute on every release, and waits for agora:obtainApproval)",
                        ),
                        None => checker.problem(&at, None, "one of its duties has no action"),
                    }
                }
                // The data-plane duties and release limits must compile (columns named,
                // granularities known, budgets integers).
                if let Err(PolicyError::Unenforceable { problems }) =
                    plan::compile(policy, &[index], DateTime::UNIX_EPOCH)
                {
                    for problem in problems {
                        if !checker.problems.contains(&problem) {
                            checker.problems.push(problem);
                        }
                    }
                }
            }
            RuleKind::Prohibition => {
                checker.rule(&at, rule, false);
                if !rule.duties.is_empty() {
                    checker.problem(
                        &at,
                        Some("odrl:remedy".into()),
                        "the node cannot make anyone carry out a remedy",
                    );
                }
            }
            _ => checker.problem(
                &at,
                rule.action.as_ref().map(|a| compact(a.name.as_str())),
                "the node cannot make the parties carry out obligations; express what the node must do as duties of a permission",
            ),
        }
    }
    if policy.conflict_strategy() == ConflictStrategy::Invalid {
        for permission in &policy.permissions {
            for prohibition in &policy.prohibitions {
                let overlap = match (&permission.action, &prohibition.action) {
                    (Some(a), Some(b)) => {
                        action_is_included_in(a.name.as_str(), b.name.as_str())
                            || action_is_included_in(b.name.as_str(), a.name.as_str())
                    }
                    _ => true,
                };
                if overlap {
                    checker.problem(
                        "the policy",
                        Some("odrl:conflict".into()),
                        format!(
                            "{} and {} can apply to the same request, and without a conflict strategy (ODRL's default is invalid) the whole policy would then be void; state \"conflict\": \"prohibit\" or \"perm\"",
                            super::evaluate::rule_name(RuleKind::Permission, permission),
                            super::evaluate::rule_name(RuleKind::Prohibition, prohibition)
                        ),
                    );
                }
            }
        }
    }
    if checker.problems.is_empty() {
        Ok(())
    } else {
        Err(PolicyError::Unenforceable {
            problems: checker.problems,
        })
    }
}

/// [`validate`] for a dataset with these columns: also, every column the data-plane duties of
/// each permission name must be a column of the dataset (a policy naming another column is
/// invalid for it).
pub fn validate_for_dataset<S: AsRef<str>>(policy: &Policy, columns: &[S]) -> Result<()> {
    validate(policy)?;
    let mut problems = Vec::new();
    for index in 0..policy.permissions.len() {
        let checked = plan::compile(policy, &[index], DateTime::UNIX_EPOCH)
            .and_then(|plan| plan.for_schema(columns));
        match checked {
            Ok(_) => {}
            Err(PolicyError::Unenforceable { problems: found }) => {
                for problem in found {
                    if !problems.contains(&problem) {
                        problems.push(problem);
                    }
                }
            }
            Err(other) => return Err(other),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PolicyError::Unenforceable { problems })
    }
}

/// Whether the node carries out duties with this action itself on every release.
pub(crate) fn is_node_duty(action: &str) -> bool {
    action == odrl("attribute") || knowledge().is_profile_action(action)
}

/// A check of one right-operand value: the problem, if any.
type ValueCheck = fn(&Value) -> Option<String>;

/// The left operands the node resolves at request time.
const REQUEST_OPERANDS: [(&str, &str); 8] = [
    (ODRL, "purpose"),
    (ODRL, "dateTime"),
    (ODRL, "elapsedTime"),
    (ODRL, "count"),
    (ODRL, "spatial"),
    (ODRL, "recipient"),
    (AGORA, "country"),
    (AGORA, "orgType"),
];

/// The left operands the data plane enforces on every release (permissions only).
const RELEASE_OPERANDS: [&str; 3] = ["minGroupSize", "rowBudget", "byteBudget"];

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, at: &str, term: Option<String>, message: impl Into<String>) {
        let problem = Problem {
            at: at.to_owned(),
            term,
            message: message.into(),
        };
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    fn rule(&mut self, at: &str, rule: &Rule, permission: bool) {
        match &rule.action {
            None => self.problem(at, None, "a rule needs an action (ODRL 2.2)"),
            Some(action) => {
                if !is_known_action(action.name.as_str()) {
                    self.problem(
                        at,
                        Some(compact(action.name.as_str())),
                        "not an ODRL 2.2 action nor one of the agora profile's",
                    );
                }
                for refinement in &action.refinements {
                    self.constraint(at, refinement, false);
                }
            }
        }
        if let Some(target) = &rule.target {
            self.entity(at, target, "target");
        }
        if let Some(assignee) = &rule.assignee {
            self.entity(at, assignee, "assignee");
        }
        for constraint in &rule.constraints {
            self.constraint(at, constraint, permission);
        }
    }

    fn entity(&mut self, at: &str, entity: &Entity, role: &str) {
        if let Some(source) = &entity.source {
            self.problem(
                at,
                Some(format!("<{}>", source.as_str())),
                format!("the node has no membership list for the {role} collection's source; describe the members with refinements instead"),
            );
        }
        if entity.collection && entity.uid.is_some() && entity.refinements.is_empty() {
            self.problem(
                at,
                entity.uid.as_ref().map(|u| format!("<{}>", u.as_str())),
                format!("the node has no membership list for the {role} collection; describe the members with refinements instead"),
            );
        }
        for refinement in &entity.refinements {
            self.constraint(at, refinement, false);
        }
    }

    /// `release_allowed`: a top-level constraint of a permission (or inside its top-level `and`).
    fn constraint(&mut self, at: &str, constraint: &Constraint, release_allowed: bool) {
        let atomic = match constraint {
            Constraint::Logical(logical) => {
                let keep = release_allowed
                    && matches!(
                        logical.operator,
                        LogicalOperator::And | LogicalOperator::AndSequence
                    );
                for operand in &logical.operands {
                    self.constraint(at, operand, keep);
                }
                return;
            }
            Constraint::Atomic(atomic) => atomic,
        };
        let left = atomic.left_operand.as_str();
        let term = Some(compact(left));
        let is = |ns: &str, name: &str| left == format!("{ns}{name}");
        let request = REQUEST_OPERANDS.iter().any(|(ns, name)| is(ns, name));
        let release = RELEASE_OPERANDS.iter().any(|name| is(AGORA, name));
        if !is_known_left_operand(left) {
            self.problem(
                at,
                term,
                "not an ODRL 2.2 left operand nor one of the agora profile's",
            );
            return;
        }
        if !request && !release {
            self.problem(
                at,
                term,
                "the node cannot evaluate this left operand (it evaluates purpose, dateTime, elapsedTime, count, spatial, recipient, agora:country, agora:orgType, and enforces agora:minGroupSize, agora:rowBudget, agora:byteBudget)",
            );
            return;
        }
        if release && !release_allowed {
            self.problem(
                at,
                term,
                "a release limit is a top-level constraint of a permission (the data plane enforces one limit, not alternatives)",
            );
            return;
        }
        if atomic.unit.is_some() || atomic.data_type.is_some() {
            self.problem(
                at,
                term.clone(),
                "units and dataTypes are not interpreted; write the right operand as a typed literal",
            );
        }
        let values = match &atomic.right_operand {
            RightOperand::Reference(reference) => {
                self.problem(
                    at,
                    Some(format!("<{}>", reference.as_str())),
                    "the node does not dereference rightOperandReference; give the value",
                );
                return;
            }
            RightOperand::Values(values) => values,
        };
        let op = atomic.operator;
        if !op.is_set_based() && values.len() != 1 {
            self.problem(
                at,
                term.clone(),
                format!(
                    "{} compares with one value; use isAnyOf for several",
                    op.local_name()
                ),
            );
            return;
        }
        use Operator::*;
        let (operators, check): (&[Operator], ValueCheck) = if is(ODRL, "purpose") {
            (
                &[Eq, Neq, IsA, IsPartOf, IsAnyOf, IsAllOf, IsNoneOf],
                check_purpose,
            )
        } else if is(ODRL, "dateTime") {
            (&[Eq, Neq, Lt, Lteq, Gt, Gteq], check_time)
        } else if is(ODRL, "elapsedTime") {
            (&[Lt, Lteq, Gt, Gteq], check_duration)
        } else if is(ODRL, "count") {
            (&[Lt, Lteq], check_count)
        } else if is(ODRL, "spatial") || is(AGORA, "country") {
            (&[Eq, Neq, IsAnyOf, IsNoneOf, IsPartOf], check_country)
        } else if is(AGORA, "orgType") {
            (&[Eq, Neq, IsAnyOf, IsNoneOf], check_org_type)
        } else if is(ODRL, "recipient") {
            (&[Eq, Neq, IsAnyOf, IsNoneOf], |_| None)
        } else if is(AGORA, "minGroupSize") {
            (&[Gt, Gteq], check_count)
        } else {
            (&[Lt, Lteq], check_count)
        };
        if !operators.contains(&op) {
            self.problem(
                at,
                term.clone(),
                format!(
                    "cannot be compared with {} (allowed: {})",
                    op.local_name(),
                    operators
                        .iter()
                        .map(|o| o.local_name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        for value in values {
            if let Some(message) = check(value) {
                self.problem(at, term.clone(), message);
            }
        }
    }
}

fn check_purpose(value: &Value) -> Option<String> {
    match value.as_iri() {
        Some(iri) if knowledge().purposes.contains(iri) => None,
        Some(iri) => Some(format!(
            "{} is not a purpose the node knows (DPV 2.1 purposes and agora:AITraining)",
            compact(iri)
        )),
        None => Some(format!("{value} is not a purpose IRI")),
    }
}

fn check_time(value: &Value) -> Option<String> {
    match values::typed(value) {
        Typed::Instant(_) | Typed::Day(_) => None,
        Typed::Text(text) if values::instant(&text).is_some() || values::day(&text).is_some() => {
            None
        }
        _ => Some(format!("{value} is not an xsd:dateTime or xsd:date")),
    }
}

fn check_duration(value: &Value) -> Option<String> {
    match values::typed(value) {
        Typed::Duration(_) => None,
        Typed::Text(text) if XsdDuration::parse(&text).is_some() => None,
        _ => Some(format!("{value} is not an xsd:duration")),
    }
}

fn check_count(value: &Value) -> Option<String> {
    match values::typed(value) {
        Typed::Number { exact: Some(n), .. } if n >= 0 => None,
        _ => Some(format!("{value} is not a non-negative integer")),
    }
}

fn check_country(value: &Value) -> Option<String> {
    match knowledge().country_iri(value.lexical()) {
        Some(_) => None,
        None => Some(format!(
            "{value} is not a country the node knows (the EU authority table's member states and EUR)"
        )),
    }
}

fn check_org_type(value: &Value) -> Option<String> {
    match knowledge().org_type_code(value.lexical()) {
        Some(_) => None,
        None => Some(format!(
            "{value} is not an organisation type of the agora profile ({})",
            knowledge().org_type_codes().collect::<Vec<_>>().join(", ")
        )),
    }
}
