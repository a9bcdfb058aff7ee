//! Reading a policy: untrusted bytes → RDF (behind the guards of `SECURITY.md` §1) → the typed
//! model.
//!
//! The RDF step caps the size before anything else, checks UTF-8, and for JSON-LD refuses JSON
//! nested deeper than the cap before the JSON-LD parser (which recurses per level) sees it. Remote
//! `@context`s are never fetched: the document loader serves the node's own copy of the ODRL 2.2
//! context (`ontologies/odrl-context.jsonld`) for `http://www.w3.org/ns/odrl.jsonld` and refuses
//! every other URL.
//!
//! The model step walks the graph from the policy node and takes every statement it understands;
//! a statement left over (an ODRL term the model does not hold, a nested description it cannot
//! keep, a description of something the policy does not refer to) is refused with an error that
//! names it, so that nothing in a policy is silently dropped.

use super::model::{
    Action, AtomicConstraint, ConflictStrategy, Constraint, Entity, LogicalConstraint,
    LogicalOperator, Operator, Policy, PolicyKind, RightOperand, Rule, RuleKind, Value,
};
use super::vocab::{
    ODRL, ODRL_PARTY_FUNCTIONS, RDF_FIRST, RDF_LIST, RDF_NIL, RDF_REST, RDF_TYPE, RDF_VALUE,
    compact, local, odrl,
};
use super::{PolicyError, Result};
use crate::rdf_input::{self, InputLimits, RdfSyntax};
use oxigraph::model::{NamedNode, NamedOrBlankNode, Term};
use std::collections::{HashMap, HashSet};

/// Caps and settings for reading a policy.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Largest document, in bytes.
    pub max_bytes: usize,
    /// Deepest JSON nesting (SECURITY.md §1: at most 64).
    pub max_json_depth: usize,
    /// Most triples.
    pub max_triples: usize,
    /// The IRI relative references are resolved against, if any.
    pub base_iri: Option<String>,
}

impl Default for ParseOptions {
    /// 1 MiB, depth 64, 50 000 triples: room for a policy with hundreds of time windows, far
    /// below what would hurt the node.
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            max_json_depth: 64,
            max_triples: 50_000,
            base_iri: None,
        }
    }
}

/// Reads one policy from a document that holds it and nothing else.
pub fn parse(body: &[u8], syntax: RdfSyntax) -> Result<Policy> {
    parse_with(body, syntax, &ParseOptions::default())
}

/// [`parse`] with explicit caps and base IRI.
pub fn parse_with(body: &[u8], syntax: RdfSyntax, options: &ParseOptions) -> Result<Policy> {
    let triples = read_triples(body, syntax, options)?;
    policy_from_triples(triples)
}

/// The RDF statements of a document, behind the guards (size, UTF-8, JSON depth, no remote
/// context, triple cap). Named graphs are refused: a policy is one graph.
pub fn read_triples(
    body: &[u8],
    syntax: RdfSyntax,
    options: &ParseOptions,
) -> Result<Vec<oxigraph::model::Triple>> {
    let limits = InputLimits {
        max_bytes: options.max_bytes,
        max_json_depth: options.max_json_depth,
        max_triples: options.max_triples,
    };
    let triples = rdf_input::read_triples(body, syntax, options.base_iri.as_deref(), limits)?;
    refuse_undefined_prefixes(&triples)?;
    Ok(triples)
}

/// Prefixes of the ODRL context and of the node's own emitted context. In JSON-LD a compact
/// IRI whose prefix is not defined silently becomes an absolute IRI with that "scheme"
/// (`agora:country` → the IRI `agora:country`). Such a policy would not survive the node's own
/// JSON-LD (which defines the prefix, so re-reading it means something else: found by the
/// `odrl` fuzz target, docs/SECURITY.md), so it is refused, naming the term.
const RESERVED_SCHEMES: [&str; 14] = [
    "agora", "cc", "dcat", "dct", "dpv", "foaf", "odrl", "owl", "rdf", "rdfs", "schema", "skos",
    "vcard", "xsd",
];

fn refuse_undefined_prefixes(triples: &[oxigraph::model::Triple]) -> Result<()> {
    use oxigraph::model::{NamedOrBlankNode, Term};
    let reserved = |iri: &str| {
        iri.split_once(':')
            .is_some_and(|(scheme, _)| RESERVED_SCHEMES.contains(&scheme))
            .then(|| iri.to_owned())
    };
    for triple in triples {
        let subject = match &triple.subject {
            NamedOrBlankNode::NamedNode(node) => reserved(node.as_str()),
            NamedOrBlankNode::BlankNode(_) => None,
        };
        let object = match &triple.object {
            Term::NamedNode(node) => reserved(node.as_str()),
            _ => None,
        };
        if let Some(iri) = subject
            .or_else(|| reserved(triple.predicate.as_str()))
            .or(object)
        {
            let prefix = iri.split(':').next().unwrap_or_default();
            return Err(PolicyError::Syntax {
                message: format!(
                    "`{iri}` uses the prefix `{prefix}` without defining it; define `{prefix}` in the @context or write the full IRI"
                ),
            });
        }
    }
    Ok(())
}

/// The one policy of a set of statements that describe it and nothing else.
pub fn policy_from_triples(
    triples: impl IntoIterator<Item = oxigraph::model::Triple>,
) -> Result<Policy> {
    let mut reader = Reader::new(triples);
    let mut nodes = reader.policy_nodes();
    let node = match nodes.len() {
        0 => return Err(PolicyError::NoPolicy),
        1 => nodes.remove(0),
        count => {
            return Err(PolicyError::SeveralPolicies {
                count,
                uids: nodes.iter().map(ToString::to_string).collect(),
            });
        }
    };
    let policy = reader.policy(&node)?;
    reader.check_everything_read()?;
    Ok(policy)
}

/// Every policy among a set of statements that may describe other things too (a dataset
/// description with `odrl:hasPolicy`, a DSP catalogue), in uid order.
pub fn policies_in_triples(
    triples: impl IntoIterator<Item = oxigraph::model::Triple>,
) -> Result<Vec<Policy>> {
    let mut reader = Reader::new(triples);
    let nodes = reader.policy_nodes();
    let mut policies = nodes
        .iter()
        .map(|node| reader.policy(node))
        .collect::<Result<Vec<_>>>()?;
    policies.sort_by(|a, b| a.uid.as_str().cmp(b.uid.as_str()));
    Ok(policies)
}

/// How deep rules, constraints and lists may nest: far more than any real policy, few enough
/// that a hostile graph cannot exhaust the stack.
const MAX_NESTING: usize = 48;

/// The statements about one node that a reader has not consumed yet.
struct Props {
    at: String,
    items: Vec<(NamedNode, Term)>,
}

impl Props {
    /// Takes every value of `predicate`.
    fn take(&mut self, predicate: &str) -> Vec<Term> {
        let mut taken = Vec::new();
        self.items.retain(|(p, o)| {
            if p.as_str() == predicate {
                taken.push(o.clone());
                false
            } else {
                true
            }
        });
        taken
    }

    /// Takes the value of `predicate`, refusing more than one.
    fn take_one(&mut self, predicate: &str, what: &str) -> Result<Option<Term>> {
        let mut values = self.take(predicate);
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            n => Err(self.error(format!(
                "{what} has {n} values of {}; ODRL allows one",
                compact(predicate)
            ))),
        }
    }

    fn error(&self, message: String) -> PolicyError {
        PolicyError::Unrepresentable {
            at: self.at.clone(),
            message,
        }
    }

    /// Refuses whatever is left.
    fn finish(self) -> Result<()> {
        match self.items.first() {
            None => Ok(()),
            Some((predicate, object)) => Err(self.error(format!(
                "the node cannot represent {} {} here{}",
                compact(predicate.as_str()),
                describe_term(object),
                if self.items.len() > 1 {
                    format!(" (and {} more statement(s))", self.items.len() - 1)
                } else {
                    String::new()
                }
            ))),
        }
    }
}

fn describe_term(term: &Term) -> String {
    match term {
        Term::NamedNode(node) => format!("<{}>", node.as_str()),
        Term::Literal(literal) => literal.to_string(),
        _ => "(a nested description)".into(),
    }
}

/// Walks the statements from a policy node, consuming what it understands.
struct Reader {
    nodes: HashMap<NamedOrBlankNode, Vec<(NamedNode, Term)>>,
    visited: HashSet<NamedOrBlankNode>,
    stack: Vec<NamedOrBlankNode>,
}

impl Reader {
    fn new(triples: impl IntoIterator<Item = oxigraph::model::Triple>) -> Self {
        let mut nodes: HashMap<NamedOrBlankNode, Vec<(NamedNode, Term)>> = HashMap::new();
        // RDF is a set: a statement written twice is one statement.
        let mut seen = HashSet::new();
        for triple in triples {
            if seen.insert(triple.clone()) {
                nodes
                    .entry(triple.subject)
                    .or_default()
                    .push((triple.predicate, triple.object));
            }
        }
        Self {
            nodes,
            visited: HashSet::new(),
            stack: Vec::new(),
        }
    }

    /// The nodes typed with `odrl:Policy` or one of its subclasses, in IRI order.
    fn policy_nodes(&self) -> Vec<NamedOrBlankNode> {
        let classes: Vec<String> = PolicyKind::ALL.iter().map(|(_, name)| odrl(name)).collect();
        let mut found: Vec<NamedOrBlankNode> = self
            .nodes
            .iter()
            .filter(|(_, items)| {
                items.iter().any(|(p, o)| {
                    p.as_str() == RDF_TYPE
                        && matches!(o, Term::NamedNode(class) if classes.iter().any(|c| c == class.as_str()))
                })
            })
            .map(|(node, _)| node.clone())
            .collect();
        found.sort_by_key(ToString::to_string);
        found
    }

    /// Starts reading `node`: its statements, guarded against cycles and excessive nesting.
    fn enter(&mut self, node: &NamedOrBlankNode, at: &str) -> Result<Props> {
        if self.stack.contains(node) {
            return Err(PolicyError::Unrepresentable {
                at: at.to_owned(),
                message: "the description refers back to itself".into(),
            });
        }
        if self.stack.len() >= MAX_NESTING {
            return Err(PolicyError::Unrepresentable {
                at: at.to_owned(),
                message: format!("rules and constraints nest deeper than {MAX_NESTING} levels"),
            });
        }
        self.stack.push(node.clone());
        self.visited.insert(node.clone());
        Ok(Props {
            at: at.to_owned(),
            items: self.nodes.get(node).cloned().unwrap_or_default(),
        })
    }

    fn leave(&mut self) {
        self.stack.pop();
    }

    fn described(&self, node: &NamedOrBlankNode) -> bool {
        self.nodes.contains_key(node)
    }

    /// After a strict read: every statement of the document must belong to the policy.
    fn check_everything_read(&self) -> Result<()> {
        let mut unread: Vec<String> = self
            .nodes
            .keys()
            .filter(|node| !self.visited.contains(*node))
            .map(|node| match node {
                NamedOrBlankNode::NamedNode(n) => format!("<{}>", n.as_str()),
                NamedOrBlankNode::BlankNode(_) => "an unnamed node".to_owned(),
            })
            .collect();
        unread.sort();
        match unread.first() {
            None => Ok(()),
            Some(first) => Err(PolicyError::Unrepresentable {
                at: "the document".into(),
                message: format!(
                    "it describes {first}{}, which the policy does not refer to",
                    if unread.len() > 1 {
                        format!(" and {} other node(s)", unread.len() - 1)
                    } else {
                        String::new()
                    }
                ),
            }),
        }
    }

    fn policy(&mut self, node: &NamedOrBlankNode) -> Result<Policy> {
        let uid = match node {
            NamedOrBlankNode::NamedNode(n) => n.clone(),
            NamedOrBlankNode::BlankNode(_) => {
                return Err(PolicyError::Unrepresentable {
                    at: "the policy".into(),
                    message: "a policy needs a uid (an IRI); this one has none".into(),
                });
            }
        };
        let at = format!("policy <{}>", uid.as_str());
        let mut props = self.enter(node, &at)?;
        let kind = policy_kind(&mut props)?;
        check_uid(&mut props, &uid)?;
        let profiles = props
            .take(&odrl("profile"))
            .into_iter()
            .map(|t| iri(&props, t, "a profile"))
            .collect::<Result<Vec<_>>>()?;
        let conflict = match props.take_one(&odrl("conflict"), "the policy")? {
            None => None,
            Some(term) => {
                let value = iri(&props, term, "the conflict strategy")?;
                Some(conflict_strategy(&props, &value)?)
            }
        };
        if !props.take(&odrl("inheritFrom")).is_empty() {
            return Err(props.error(
                "odrl:inheritFrom is not supported: the node never fetches other policies; write the parent's rules into this one".into(),
            ));
        }
        // Policy-level target, parties and action apply to every rule that has none (ODRL 2.2
        // §2.7.1, compact policies); they are pushed down so that each rule is complete.
        let shared_target = self.optional_entity(&mut props, "target", &at, false)?;
        let shared_assigner = self.optional_entity(&mut props, "assigner", &at, true)?;
        let shared_assignee = self.optional_entity(&mut props, "assignee", &at, true)?;
        let shared_action = match props.take_one(&odrl("action"), "the policy")? {
            Some(term) => Some(self.action(term, &format!("{at} › action"))?),
            None => None,
        };
        let mut rules = |this: &mut Self, predicate: &str, kind: RuleKind| -> Result<Vec<Rule>> {
            let mut rules = Vec::new();
            for term in props.take(&odrl(predicate)) {
                let mut rule = this.rule(term, kind, &format!("{at} › {}", kind.word()))?;
                if rule.target.is_none() {
                    rule.target.clone_from(&shared_target);
                }
                if rule.assigner.is_none() {
                    rule.assigner.clone_from(&shared_assigner);
                }
                if rule.assignee.is_none() {
                    rule.assignee.clone_from(&shared_assignee);
                }
                if rule.action.is_none() {
                    rule.action.clone_from(&shared_action);
                }
                rules.push(rule);
            }
            sort_canonically(&mut rules);
            Ok(rules)
        };
        let permissions = rules(self, "permission", RuleKind::Permission)?;
        let prohibitions = rules(self, "prohibition", RuleKind::Prohibition)?;
        let obligations = rules(self, "obligation", RuleKind::Obligation)?;
        let mut annotations = Vec::new();
        let mut rest = Vec::new();
        for (predicate, object) in std::mem::take(&mut props.items) {
            if local(predicate.as_str(), ODRL).is_some() {
                rest.push((predicate, object));
                continue;
            }
            let value = match object {
                Term::NamedNode(n) => {
                    if self.described(&NamedOrBlankNode::NamedNode(n.clone())) {
                        return Err(props.error(format!(
                            "the node keeps {} <{}> as a reference, but the document also describes <{}>",
                            compact(predicate.as_str()),
                            n.as_str(),
                            n.as_str()
                        )));
                    }
                    Value::Iri(n)
                }
                Term::Literal(l) => Value::Literal(l),
                other => {
                    rest.push((predicate, other));
                    continue;
                }
            };
            annotations.push((predicate, value));
        }
        props.items = rest;
        props.finish()?;
        self.leave();
        annotations.sort_by_key(|(p, v)| (p.as_str().to_owned(), v.sort_key()));
        Ok(Policy {
            uid,
            kind,
            profiles: sorted_iris(profiles),
            conflict,
            permissions,
            prohibitions,
            obligations,
            annotations,
        })
    }

    fn optional_entity(
        &mut self,
        props: &mut Props,
        predicate: &str,
        at: &str,
        party: bool,
    ) -> Result<Option<Entity>> {
        match props.take_one(&odrl(predicate), predicate)? {
            Some(term) => Ok(Some(self.entity(
                term,
                party,
                &format!("{at} › {predicate}"),
            )?)),
            None => Ok(None),
        }
    }

    fn rule(&mut self, term: Term, kind: RuleKind, at: &str) -> Result<Rule> {
        let node = node_of(term, at, kind.word())?;
        if !self.described(&node) {
            return Err(PolicyError::Unrepresentable {
                at: at.to_owned(),
                message: format!(
                    "the {} {} is referred to but not described in the document",
                    kind.word(),
                    node
                ),
            });
        }
        let mut props = self.enter(&node, at)?;
        let expected_class = match kind {
            RuleKind::Permission => "Permission",
            RuleKind::Prohibition => "Prohibition",
            _ => "Duty",
        };
        for class in props.take(RDF_TYPE) {
            let class = iri(&props, class, "a type")?;
            if class.as_str() != odrl(expected_class) && class.as_str() != odrl("Rule") {
                return Err(props.error(format!(
                    "a {} cannot be typed {}",
                    kind.word(),
                    compact(class.as_str())
                )));
            }
        }
        let uid = match &node {
            NamedOrBlankNode::NamedNode(n) => Some(n.clone()),
            NamedOrBlankNode::BlankNode(_) => None,
        };
        if let Some(uid) = &uid {
            check_uid(&mut props, uid)?;
        }
        let actions = props.take(&odrl("action"));
        if actions.len() > 1 {
            return Err(props.error(format!(
                "a rule has one action (ODRL 2.2); this {} has {}: write one rule per action",
                kind.word(),
                actions.len()
            )));
        }
        let action = match actions.into_iter().next() {
            Some(term) => Some(self.action(term, &format!("{at} › action"))?),
            None => None,
        };
        let target = self.optional_entity(&mut props, "target", at, false)?;
        let assigner = self.optional_entity(&mut props, "assigner", at, true)?;
        let assignee = self.optional_entity(&mut props, "assignee", at, true)?;
        let mut other_parties = Vec::new();
        for function in ODRL_PARTY_FUNCTIONS {
            let predicate = odrl(function);
            for term in props.take(&predicate) {
                let party = self.entity(term, true, &format!("{at} › {function}"))?;
                other_parties.push((NamedNode::new_unchecked(predicate.clone()), party));
            }
        }
        other_parties.sort_by_key(|(f, p)| format!("{} {p:?}", f.as_str()));
        let mut constraints = Vec::new();
        for term in props.take(&odrl("constraint")) {
            constraints.push(self.constraint(term, &format!("{at} › constraint"))?);
        }
        sort_canonically(&mut constraints);
        let (duty_predicate, duty_kind) = match kind {
            RuleKind::Permission => ("duty", RuleKind::Duty),
            RuleKind::Prohibition => ("remedy", RuleKind::Remedy),
            _ => ("consequence", RuleKind::Consequence),
        };
        let mut duties = Vec::new();
        for term in props.take(&odrl(duty_predicate)) {
            duties.push(self.rule(term, duty_kind, &format!("{at} › {duty_predicate}"))?);
        }
        sort_canonically(&mut duties);
        props.finish()?;
        self.leave();
        Ok(Rule {
            uid,
            action,
            target,
            assigner,
            assignee,
            other_parties,
            constraints,
            duties,
        })
    }

    fn action(&mut self, term: Term, at: &str) -> Result<Action> {
        let node = node_of(term, at, "an action")?;
        if !self.described(&node) {
            return match node {
                NamedOrBlankNode::NamedNode(name) => Ok(Action::new(name)),
                NamedOrBlankNode::BlankNode(_) => Err(PolicyError::Unrepresentable {
                    at: at.to_owned(),
                    message: "an action needs an IRI".into(),
                }),
            };
        }
        let mut props = self.enter(&node, at)?;
        for class in props.take(RDF_TYPE) {
            let class = iri(&props, class, "a type")?;
            if class.as_str() != odrl("Action") {
                return Err(props.error(format!(
                    "an action cannot be typed {}",
                    compact(class.as_str())
                )));
            }
        }
        let value = props.take_one(RDF_VALUE, "a refined action")?;
        let (uid, name) = match (value, &node) {
            (Some(value), _) => (
                match &node {
                    NamedOrBlankNode::NamedNode(n) => Some(n.clone()),
                    NamedOrBlankNode::BlankNode(_) => None,
                },
                iri(&props, value, "the refined action's rdf:value")?,
            ),
            (None, NamedOrBlankNode::NamedNode(n)) => (None, n.clone()),
            (None, NamedOrBlankNode::BlankNode(_)) => {
                return Err(props.error(
                    "a refined action names its action with rdf:value; this one has none".into(),
                ));
            }
        };
        let mut refinements = Vec::new();
        for term in props.take(&odrl("refinement")) {
            refinements.push(self.constraint(term, &format!("{at} › refinement"))?);
        }
        sort_canonically(&mut refinements);
        props.finish()?;
        self.leave();
        Ok(Action {
            uid,
            name,
            refinements,
        })
    }

    fn entity(&mut self, term: Term, party: bool, at: &str) -> Result<Entity> {
        let what = if party { "a party" } else { "an asset" };
        let node = node_of(term, at, what)?;
        if !self.described(&node) {
            return match node {
                NamedOrBlankNode::NamedNode(uid) => Ok(Entity::iri(uid)),
                NamedOrBlankNode::BlankNode(_) => Err(PolicyError::Unrepresentable {
                    at: at.to_owned(),
                    message: format!("{what} needs an IRI or a description"),
                }),
            };
        }
        let mut props = self.enter(&node, at)?;
        let (single, collection) = if party {
            ("Party", "PartyCollection")
        } else {
            ("Asset", "AssetCollection")
        };
        let mut entity = Entity {
            uid: match &node {
                NamedOrBlankNode::NamedNode(n) => Some(n.clone()),
                NamedOrBlankNode::BlankNode(_) => None,
            },
            ..Entity::default()
        };
        if let Some(uid) = entity.uid.clone() {
            check_uid(&mut props, &uid)?;
        }
        for class in props.take(RDF_TYPE) {
            let class = iri(&props, class, "a type")?;
            if class.as_str() == odrl(collection) {
                entity.collection = true;
            } else if class.as_str() == odrl(single) {
                // The default.
            } else if local(class.as_str(), ODRL).is_some() {
                return Err(props.error(format!(
                    "{what} cannot be typed {}",
                    compact(class.as_str())
                )));
            } else {
                entity.types.push(class);
            }
        }
        entity.types = sorted_iris(std::mem::take(&mut entity.types));
        if let Some(source) = props.take_one(&odrl("source"), what)? {
            entity.source = Some(iri(&props, source, "a collection's source")?);
        }
        entity.part_of = sorted_iris(
            props
                .take(&odrl("partOf"))
                .into_iter()
                .map(|t| iri(&props, t, "odrl:partOf"))
                .collect::<Result<Vec<_>>>()?,
        );
        for term in props.take(&odrl("refinement")) {
            entity
                .refinements
                .push(self.constraint(term, &format!("{at} › refinement"))?);
        }
        sort_canonically(&mut entity.refinements);
        if entity.source.is_some() || !entity.refinements.is_empty() {
            entity.collection = true;
        }
        props.finish()?;
        self.leave();
        Ok(entity)
    }

    fn constraint(&mut self, term: Term, at: &str) -> Result<Constraint> {
        let node = node_of(term, at, "a constraint")?;
        if !self.described(&node) {
            return Err(PolicyError::Unrepresentable {
                at: at.to_owned(),
                message: format!("the constraint {node} is referred to but not described"),
            });
        }
        let mut props = self.enter(&node, at)?;
        let uid = match &node {
            NamedOrBlankNode::NamedNode(n) => Some(n.clone()),
            NamedOrBlankNode::BlankNode(_) => None,
        };
        if let Some(uid) = &uid {
            check_uid(&mut props, uid)?;
        }
        let mut typed_logical = false;
        for class in props.take(RDF_TYPE) {
            let class = iri(&props, class, "a type")?;
            if class.as_str() == odrl("LogicalConstraint") {
                typed_logical = true;
            } else if class.as_str() != odrl("Constraint") {
                return Err(props.error(format!(
                    "a constraint cannot be typed {}",
                    compact(class.as_str())
                )));
            }
        }
        let mut logical: Vec<(LogicalOperator, Vec<Term>)> = Vec::new();
        for (operator, name) in LogicalOperator::ALL {
            let operands = props.take(&odrl(name));
            if !operands.is_empty() {
                logical.push((operator, operands));
            }
        }
        let constraint = if let Some((operator, terms)) = logical.pop() {
            if let Some((other, _)) = logical.first() {
                return Err(props.error(format!(
                    "a logical constraint has one operator; this one has {} and {}",
                    other.local_name(),
                    operator.local_name()
                )));
            }
            let terms =
                self.list_or_values(&props, terms, operator == LogicalOperator::AndSequence)?;
            let mut operands = Vec::new();
            for term in terms {
                operands.push(self.constraint(term, &format!("{at} › {}", operator.local_name()))?);
            }
            if operator != LogicalOperator::AndSequence {
                sort_canonically(&mut operands);
            }
            Constraint::Logical(LogicalConstraint {
                uid,
                operator,
                operands,
            })
        } else {
            if typed_logical {
                return Err(props
                    .error("a logical constraint needs one of and, or, xone, andSequence".into()));
            }
            let left = props
                .take_one(&odrl("leftOperand"), "a constraint")?
                .ok_or_else(|| props.error("a constraint needs a leftOperand".into()))?;
            let left_operand = iri(&props, left, "the leftOperand")?;
            let operator_term = props
                .take_one(&odrl("operator"), "a constraint")?
                .ok_or_else(|| props.error("a constraint needs an operator".into()))?;
            let operator_iri = iri(&props, operator_term, "the operator")?;
            let operator = operator_of(&operator_iri).ok_or_else(|| {
                props.error(format!(
                    "{} is not an ODRL operator",
                    compact(operator_iri.as_str())
                ))
            })?;
            let values = props.take(&odrl("rightOperand"));
            let reference = props.take_one(&odrl("rightOperandReference"), "a constraint")?;
            let right_operand = match (values.is_empty(), reference) {
                (false, None) => {
                    let terms = self.list_or_values(&props, values, false)?;
                    let mut values = terms
                        .into_iter()
                        .map(|t| value_of(&props, t))
                        .collect::<Result<Vec<_>>>()?;
                    values.sort_by_key(Value::sort_key);
                    values.dedup();
                    RightOperand::Values(values)
                }
                (true, Some(reference)) => RightOperand::Reference(match reference {
                    Term::Literal(l) => NamedNode::new(l.value()).map_err(|_| {
                        props.error(format!("the rightOperandReference {l} is not an IRI"))
                    })?,
                    other => iri(&props, other, "the rightOperandReference")?,
                }),
                (true, None) => {
                    return Err(props.error(
                        "a constraint needs a rightOperand or a rightOperandReference".into(),
                    ));
                }
                (false, Some(_)) => {
                    return Err(props.error(
                        "a constraint has a rightOperand or a rightOperandReference, not both"
                            .into(),
                    ));
                }
            };
            let unit = props
                .take_one(&odrl("unit"), "a constraint")?
                .map(|t| value_of(&props, t))
                .transpose()?;
            let mut data_types = props.take(&odrl("dataType"));
            data_types.extend(props.take(&odrl("datatype")));
            if data_types.len() > 1 {
                return Err(props.error("a constraint has one dataType".into()));
            }
            let data_type = data_types
                .pop()
                .map(|t| iri(&props, t, "the dataType"))
                .transpose()?;
            let status = props
                .take_one(&odrl("status"), "a constraint")?
                .map(|t| value_of(&props, t))
                .transpose()?;
            Constraint::Atomic(AtomicConstraint {
                uid,
                left_operand,
                operator,
                right_operand,
                unit,
                data_type,
                status,
            })
        };
        props.finish()?;
        self.leave();
        Ok(constraint)
    }

    /// The values of a property that may be written as one RDF list (`@list`) or as several
    /// values; `ordered` refuses several plain values, whose order RDF does not keep.
    fn list_or_values(
        &mut self,
        props: &Props,
        terms: Vec<Term>,
        ordered: bool,
    ) -> Result<Vec<Term>> {
        if terms.len() == 1 && self.is_list(&terms[0]) {
            return match terms.into_iter().next() {
                Some(head) => self.list(head, &props.at),
                None => Ok(Vec::new()),
            };
        }
        if terms.iter().any(|t| self.is_list(t)) {
            return Err(props.error("a list cannot be mixed with other values".into()));
        }
        if ordered && terms.len() > 1 {
            return Err(props.error(
                "andSequence needs its operands in order: write them as a list ({\"@list\": [...]})"
                    .into(),
            ));
        }
        Ok(terms)
    }

    fn is_list(&self, term: &Term) -> bool {
        match term {
            Term::NamedNode(n) if n.as_str() == RDF_NIL => true,
            Term::NamedNode(_) | Term::BlankNode(_) => node_of(term.clone(), "", "")
                .ok()
                .and_then(|node| self.nodes.get(&node))
                .is_some_and(|items| items.iter().any(|(p, _)| p.as_str() == RDF_FIRST)),
            _ => false,
        }
    }

    /// The members of an RDF list.
    fn list(&mut self, head: Term, at: &str) -> Result<Vec<Term>> {
        let mut members = Vec::new();
        let mut current = head;
        let mut seen = HashSet::new();
        loop {
            if matches!(&current, Term::NamedNode(n) if n.as_str() == RDF_NIL) {
                return Ok(members);
            }
            let node = node_of(current, at, "a list")?;
            if !seen.insert(node.clone()) {
                return Err(PolicyError::Unrepresentable {
                    at: at.to_owned(),
                    message: "a list loops back on itself".into(),
                });
            }
            self.visited.insert(node.clone());
            let mut props = Props {
                at: at.to_owned(),
                items: self.nodes.get(&node).cloned().unwrap_or_default(),
            };
            for class in props.take(RDF_TYPE) {
                if !matches!(&class, Term::NamedNode(n) if n.as_str() == RDF_LIST) {
                    return Err(props.error("a list node cannot have a type".into()));
                }
            }
            let first = props
                .take_one(RDF_FIRST, "a list node")?
                .ok_or_else(|| props.error("a list node has no rdf:first".into()))?;
            let rest = props
                .take_one(RDF_REST, "a list node")?
                .ok_or_else(|| props.error("a list node has no rdf:rest".into()))?;
            props.finish()?;
            members.push(first);
            current = rest;
        }
    }
}

fn policy_kind(props: &mut Props) -> Result<PolicyKind> {
    let mut kind = None;
    for class in props.take(RDF_TYPE) {
        let class = iri(props, class, "a type")?;
        let found = PolicyKind::ALL
            .iter()
            .find(|(_, name)| class.as_str() == odrl(name))
            .map(|(kind, _)| *kind)
            .ok_or_else(|| {
                props.error(format!(
                    "a policy cannot also be typed {}",
                    compact(class.as_str())
                ))
            })?;
        kind = match (kind, found) {
            (None, found) | (Some(PolicyKind::Policy), found) => Some(found),
            (Some(known), PolicyKind::Policy) => Some(known),
            (Some(known), found) if known == found => Some(known),
            (Some(known), found) => {
                return Err(props.error(format!(
                    "a policy has one class; this one is both {} and {}",
                    known.local_name(),
                    found.local_name()
                )));
            }
        };
    }
    kind.ok_or_else(|| props.error("a policy needs a type".into()))
}

fn check_uid(props: &mut Props, uid: &NamedNode) -> Result<()> {
    for value in props.take(&odrl("uid")) {
        let same = match &value {
            Term::NamedNode(n) => n == uid,
            Term::Literal(l) => l.value() == uid.as_str(),
            _ => false,
        };
        if !same {
            return Err(props.error(format!(
                "its odrl:uid {} differs from its IRI <{}>",
                describe_term(&value),
                uid.as_str()
            )));
        }
    }
    Ok(())
}

fn conflict_strategy(props: &Props, value: &NamedNode) -> Result<ConflictStrategy> {
    [
        ConflictStrategy::Perm,
        ConflictStrategy::Prohibit,
        ConflictStrategy::Invalid,
    ]
    .into_iter()
    .find(|s| value.as_str() == odrl(s.local_name()))
    .ok_or_else(|| {
        props.error(format!(
            "{} is not a conflict strategy (perm, prohibit or invalid)",
            compact(value.as_str())
        ))
    })
}

fn operator_of(iri: &NamedNode) -> Option<Operator> {
    if iri.as_str() == odrl("neg") {
        return Some(Operator::Neq);
    }
    Operator::ALL
        .iter()
        .find(|(_, name)| iri.as_str() == odrl(name))
        .map(|(op, _)| *op)
}

fn node_of(term: Term, at: &str, what: &str) -> Result<NamedOrBlankNode> {
    match term {
        Term::NamedNode(n) => Ok(NamedOrBlankNode::NamedNode(n)),
        Term::BlankNode(b) => Ok(NamedOrBlankNode::BlankNode(b)),
        Term::Literal(l) => Err(PolicyError::Unrepresentable {
            at: at.to_owned(),
            message: format!("{what} must be a node, not the literal {l}"),
        }),
        #[allow(unreachable_patterns)]
        _ => Err(PolicyError::Unrepresentable {
            at: at.to_owned(),
            message: format!("{what} must be a node"),
        }),
    }
}

fn iri(props: &Props, term: Term, what: &str) -> Result<NamedNode> {
    match term {
        Term::NamedNode(n) => Ok(n),
        other => Err(props.error(format!(
            "{what} must be an IRI, not {}",
            describe_term(&other)
        ))),
    }
}

fn value_of(props: &Props, term: Term) -> Result<Value> {
    match term {
        Term::NamedNode(n) => Ok(Value::Iri(n)),
        Term::Literal(l) => Ok(Value::Literal(l)),
        _ => {
            Err(props.error("a value must be an IRI or a literal, not a nested description".into()))
        }
    }
}

fn sorted_iris(mut iris: Vec<NamedNode>) -> Vec<NamedNode> {
    iris.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    iris.dedup();
    iris
}

/// Orders items by their full description, so that equal documents give equal models whatever
/// order the parser produced the statements in.
fn sort_canonically<T: std::fmt::Debug>(items: &mut [T]) {
    items.sort_by_cached_key(|item| format!("{item:?}"));
}
