//! A decision as an RDF compliance report, in the ODRL Compliance Report Model
//! (`https://w3id.org/force/compliance-report#`) that the ODRL evaluation test suites use: one
//! rule report per rule with its activation state, premise reports for its target, party,
//! action and constraints, and condition reports for its duties. Auditors and the conformance
//! tests read it; people read [`super::Decision::reasons`].

use super::evaluate::{
    ConstraintDetail, ConstraintReport, Decision, DeonticState, RuleReport, Satisfaction,
};
use super::model::{RightOperand, RuleKind, Value};
use super::vocab::{RDF_TYPE, odrl};
use oxigraph::model::{BlankNode, Graph, Literal, NamedNode, NamedOrBlankNode, Term, Triple};

/// The Compliance Report Model namespace.
pub const REPORT: &str = "https://w3id.org/force/compliance-report#";

/// Identifiers the report refers to.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// The report's IRI (a fresh `urn:uuid:` when absent).
    pub report: Option<NamedNode>,
    /// The request evaluated (`report:policyRequest`), when it is an ODRL request with an IRI.
    pub request: Option<NamedNode>,
    /// The requested rule (`report:ruleRequest`), likewise.
    pub rule_request: Option<NamedNode>,
}

/// The decision as a compliance report graph.
pub fn compliance_report(decision: &Decision, options: &ReportOptions) -> Graph {
    let mut writer = Writer {
        graph: Graph::new(),
    };
    let report = options.report.clone().unwrap_or_else(fresh);
    let root = NamedOrBlankNode::NamedNode(report);
    writer.typed(&root, "PolicyReport");
    writer.add(
        &root,
        "http://purl.org/dc/terms/created",
        Term::Literal(Literal::new_typed_literal(
            decision
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            NamedNode::new_unchecked("http://www.w3.org/2001/XMLSchema#dateTime"),
        )),
    );
    writer.add(
        &root,
        &term("policy"),
        Term::NamedNode(decision.policy.clone()),
    );
    if let Some(request) = &options.request {
        writer.add(
            &root,
            &term("policyRequest"),
            Term::NamedNode(request.clone()),
        );
    }
    for rule in &decision.rules {
        let node = writer.rule(rule, options);
        writer.add(&root, &term("ruleReport"), node.into());
    }
    writer.graph
}

fn term(local: &str) -> String {
    format!("{REPORT}{local}")
}

fn fresh() -> NamedNode {
    NamedNode::new_unchecked(format!("urn:uuid:{}", uuid::Uuid::new_v4()))
}

fn state(satisfaction: Satisfaction) -> Term {
    let name = match satisfaction {
        Satisfaction::Satisfied => "Satisfied",
        Satisfaction::Unsatisfied => "Unsatisfied",
        Satisfaction::Unknown => "Unknown",
    };
    Term::NamedNode(NamedNode::new_unchecked(term(name)))
}

struct Writer {
    graph: Graph,
}

impl Writer {
    fn add(&mut self, subject: &NamedOrBlankNode, predicate: &str, object: Term) {
        self.graph.insert(&Triple::new(
            subject.clone(),
            NamedNode::new_unchecked(predicate),
            object,
        ));
    }

    fn typed(&mut self, subject: &NamedOrBlankNode, class: &str) {
        self.add(
            subject,
            RDF_TYPE,
            Term::NamedNode(NamedNode::new_unchecked(term(class))),
        );
    }

    fn node(&self) -> NamedOrBlankNode {
        NamedOrBlankNode::NamedNode(fresh())
    }

    fn rule(&mut self, rule: &RuleReport, options: &ReportOptions) -> NamedOrBlankNode {
        let node = self.node();
        let class = match rule.kind {
            RuleKind::Permission => "PermissionReport",
            RuleKind::Prohibition => "ProhibitionReport",
            _ => "DutyReport",
        };
        self.typed(&node, class);
        self.add(
            &node,
            &term("attemptState"),
            Term::NamedNode(NamedNode::new_unchecked(term("Attempted"))),
        );
        let rule_term: Term = match &rule.uid {
            Some(uid) => uid.clone().into(),
            None => BlankNode::default().into(),
        };
        self.add(&node, &term("rule"), rule_term);
        if let Some(request) = &options.rule_request {
            self.add(&node, &term("ruleRequest"), request.clone().into());
        }
        self.add(
            &node,
            &term("activationState"),
            Term::NamedNode(NamedNode::new_unchecked(term(if rule.active {
                "Active"
            } else {
                "Inactive"
            }))),
        );
        for (premise, class) in [
            (rule.target, "TargetReport"),
            (rule.party, "PartyReport"),
            (rule.action, "ActionReport"),
        ] {
            if let Some(satisfaction) = premise {
                let premise_node = self.node();
                self.typed(&premise_node, class);
                self.add(
                    &premise_node,
                    &term("satisfactionState"),
                    state(satisfaction),
                );
                self.add(&node, &term("premiseReport"), premise_node.into());
            }
        }
        for constraint in rule.refinements.iter().chain(&rule.constraints) {
            let constraint_node = self.constraint(constraint);
            self.add(&node, &term("premiseReport"), constraint_node.into());
        }
        for duty in &rule.duties {
            let duty_node = self.node();
            self.typed(&duty_node, "DutyReport");
            if let Some(uid) = &duty.uid {
                self.add(&duty_node, &term("rule"), uid.clone().into());
            }
            let deontic = match duty.state {
                DeonticState::Fulfilled | DeonticState::PerformedByNode => "Fulfilled",
                DeonticState::Violated => "Violated",
                DeonticState::Pending => "NonSet",
            };
            self.add(
                &duty_node,
                &term("deonticState"),
                Term::NamedNode(NamedNode::new_unchecked(term(deontic))),
            );
            self.add(
                &duty_node,
                &term("activationState"),
                Term::NamedNode(NamedNode::new_unchecked(term(
                    if duty.in_force == Satisfaction::Unsatisfied {
                        "Inactive"
                    } else {
                        "Active"
                    },
                ))),
            );
            for constraint in &duty.constraints {
                let constraint_node = self.constraint(constraint);
                self.add(&duty_node, &term("premiseReport"), constraint_node.into());
            }
            self.add(&node, &term("conditionReport"), duty_node.into());
        }
        node
    }

    fn constraint(&mut self, report: &ConstraintReport) -> NamedOrBlankNode {
        let node = self.node();
        self.typed(&node, "ConstraintReport");
        if let Some(uid) = &report.uid {
            self.add(&node, &term("constraint"), uid.clone().into());
        }
        match &report.detail {
            ConstraintDetail::Atomic {
                operator,
                right_operand,
                left_values,
                ..
            } => {
                for value in left_values {
                    self.add(&node, &term("constraintLeftOperand"), value_term(value));
                }
                self.add(
                    &node,
                    &term("constraintOperator"),
                    NamedNode::new_unchecked(odrl(operator.local_name())).into(),
                );
                match right_operand {
                    RightOperand::Values(values) => {
                        for value in values {
                            self.add(&node, &term("constraintRightOperand"), value_term(value));
                        }
                    }
                    RightOperand::Reference(reference) => {
                        self.add(
                            &node,
                            &term("constraintRightOperand"),
                            reference.clone().into(),
                        );
                    }
                }
            }
            ConstraintDetail::Logical { operator, operands } => {
                self.add(
                    &node,
                    &term("constraintLogicalOperand"),
                    NamedNode::new_unchecked(odrl(operator.local_name())).into(),
                );
                for operand in operands {
                    let child = self.constraint(operand);
                    self.add(&node, &term("premiseReport"), child.into());
                }
            }
        }
        self.add(&node, &term("satisfactionState"), state(report.state));
        node
    }
}

fn value_term(value: &Value) -> Term {
    match value {
        Value::Iri(iri) => iri.clone().into(),
        Value::Literal(literal) => literal.clone().into(),
    }
}
