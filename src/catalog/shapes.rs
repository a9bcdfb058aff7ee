//! A SHACL Core subset, enough for the DCAT-AP 3 shapes the project writes in `ontologies/`:
//! target classes; property shapes on a single predicate with `minCount`, `maxCount`,
//! `datatype`, `class`, `nodeKind`, `in`, `hasValue`, `pattern`, `node` and `or`; severities
//! and messages. Shapes using anything else fail to load, so a shape is never half-applied.

use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::vocab::rdf;
use oxigraph::model::{Graph, NamedNode, NamedOrBlankNodeRef, Term, TermRef, TripleRef};
use std::collections::HashMap;

const SH: &str = "http://www.w3.org/ns/shacl#";

fn sh(local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{SH}{local}"))
}

/// Why a shapes file cannot be used. This is a bug in `ontologies/`, never the caller's fault.
#[derive(Debug, thiserror::Error)]
#[error("shapes file {file}: {message}")]
pub struct ShapeError {
    file: String,
    message: String,
}

/// How serious a finding is: violations refuse a description, warnings are reported with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Mandatory: the description is refused.
    Violation,
    /// Recommended: the description is accepted and the holder told.
    Warning,
}

/// One finding: the node, the property, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The IRI (or blank node label) of the node at fault.
    pub focus_node: String,
    /// The property the constraint is about.
    pub path: String,
    /// What is wrong, in words a data holder can act on.
    pub message: String,
    /// The offending value, when one value is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Violation or warning.
    pub severity: Severity,
}

#[derive(Debug, Clone, Copy)]
enum NodeKind {
    Iri,
    BlankNode,
    Literal,
    BlankNodeOrIri,
    IriOrLiteral,
}

#[derive(Debug)]
enum ValueRule {
    Datatype(NamedNode),
    Class(NamedNode),
    Kind(NodeKind),
    In(Vec<Term>),
    Pattern(regex::Regex),
    Node(NamedNode),
    Or(Vec<ValueRule>),
}

#[derive(Debug)]
struct PropertyShape {
    path: NamedNode,
    min_count: Option<usize>,
    max_count: Option<usize>,
    has_value: Option<Term>,
    rules: Vec<ValueRule>,
    severity: Severity,
    message: String,
}

#[derive(Debug, Default)]
struct NodeShape {
    targets: Vec<NamedNode>,
    properties: Vec<PropertyShape>,
}

/// A compiled set of shapes.
#[derive(Debug, Default)]
pub struct ShapeSet {
    shapes: HashMap<NamedNode, NodeShape>,
}

/// How deep `sh:node` may recurse, so cyclic data cannot loop the validator.
const MAX_NODE_DEPTH: usize = 8;

impl ShapeSet {
    /// Compiles the Turtle `source` (named `file` in errors) into a shape set.
    pub fn from_turtle(file: &str, source: &str) -> Result<Self, ShapeError> {
        let fail = |message: String| ShapeError {
            file: file.to_owned(),
            message,
        };
        let mut graph = Graph::new();
        for triple in RdfParser::from_format(RdfFormat::Turtle).for_slice(source) {
            let quad = triple.map_err(|e| fail(e.to_string()))?;
            graph.insert(&oxigraph::model::Triple::from(quad));
        }
        let mut set = ShapeSet::default();
        for shape in graph.subjects_for_predicate_object(rdf::TYPE, &sh("NodeShape")) {
            let NamedOrBlankNodeRef::NamedNode(iri) = shape else {
                return Err(fail("node shapes must be named IRIs".into()));
            };
            let mut node = NodeShape::default();
            for target in graph.objects_for_subject_predicate(shape, &sh("targetClass")) {
                match target {
                    TermRef::NamedNode(class) => node.targets.push(class.into_owned()),
                    other => return Err(fail(format!("targetClass {other} is not an IRI"))),
                }
            }
            for property in graph.objects_for_subject_predicate(shape, &sh("property")) {
                let subject = as_subject(property).ok_or_else(|| fail("bad sh:property".into()))?;
                node.properties
                    .push(compile_property(&graph, subject).map_err(fail)?);
            }
            set.shapes.insert(iri.into_owned(), node);
        }
        Ok(set)
    }

    /// Adds the shapes of `other` to this set.
    pub fn merge(&mut self, other: ShapeSet) {
        self.shapes.extend(other.shapes);
    }

    /// The derived XSD integer datatype each property must have (`xsd:nonNegativeInteger`,
    /// ...). Oxigraph stores every integer as `xsd:integer`; exports put the declared type back.
    pub fn derived_integer_datatypes(&self) -> HashMap<NamedNode, NamedNode> {
        const DERIVED: [&str; 12] = [
            "byte",
            "short",
            "int",
            "long",
            "unsignedByte",
            "unsignedShort",
            "unsignedInt",
            "unsignedLong",
            "positiveInteger",
            "negativeInteger",
            "nonPositiveInteger",
            "nonNegativeInteger",
        ];
        let mut out = HashMap::new();
        for shape in self.shapes.values() {
            for property in &shape.properties {
                for rule in &property.rules {
                    if let ValueRule::Datatype(datatype) = rule
                        && datatype
                            .as_str()
                            .strip_prefix("http://www.w3.org/2001/XMLSchema#")
                            .is_some_and(|local| DERIVED.contains(&local))
                    {
                        out.insert(property.path.clone(), datatype.clone());
                    }
                }
            }
        }
        out
    }

    /// Validates `data`, returning every finding (violations and warnings).
    pub fn validate(&self, data: &Graph) -> Vec<Finding> {
        let mut findings = Vec::new();
        let mut shapes: Vec<_> = self.shapes.iter().collect();
        shapes.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for (_, shape) in shapes {
            for class in &shape.targets {
                for focus in data.subjects_for_predicate_object(rdf::TYPE, class) {
                    self.check_node(shape, data, focus, 0, &mut findings);
                }
            }
        }
        findings
    }

    fn check_node(
        &self,
        shape: &NodeShape,
        data: &Graph,
        focus: NamedOrBlankNodeRef<'_>,
        depth: usize,
        findings: &mut Vec<Finding>,
    ) {
        for property in &shape.properties {
            let values: Vec<TermRef<'_>> = data
                .objects_for_subject_predicate(focus, &property.path)
                .collect();
            let mut report = |value: Option<TermRef<'_>>| {
                findings.push(Finding {
                    focus_node: focus.to_string(),
                    path: property.path.as_str().to_owned(),
                    message: property.message.clone(),
                    value: value.map(|v| v.to_string()),
                    severity: property.severity,
                })
            };
            if property.min_count.is_some_and(|min| values.len() < min)
                || property.max_count.is_some_and(|max| values.len() > max)
            {
                report(None);
            }
            if let Some(expected) = &property.has_value
                && !values.iter().any(|v| *v == expected.as_ref())
            {
                report(None);
            }
            for value in &values {
                if !property
                    .rules
                    .iter()
                    .all(|rule| self.satisfies(rule, data, *value, depth))
                {
                    report(Some(*value));
                }
            }
        }
    }

    fn satisfies(&self, rule: &ValueRule, data: &Graph, value: TermRef<'_>, depth: usize) -> bool {
        match rule {
            ValueRule::Datatype(datatype) => match value {
                TermRef::Literal(literal) => literal.datatype() == datatype.as_ref(),
                _ => false,
            },
            ValueRule::Class(class) => as_subject(value)
                .is_some_and(|node| data.contains(TripleRef::new(node, rdf::TYPE, class))),
            ValueRule::Kind(kind) => matches!(
                (kind, value),
                (NodeKind::Iri, TermRef::NamedNode(_))
                    | (NodeKind::BlankNode, TermRef::BlankNode(_))
                    | (NodeKind::Literal, TermRef::Literal(_))
                    | (
                        NodeKind::BlankNodeOrIri,
                        TermRef::NamedNode(_) | TermRef::BlankNode(_)
                    )
                    | (
                        NodeKind::IriOrLiteral,
                        TermRef::NamedNode(_) | TermRef::Literal(_)
                    )
            ),
            ValueRule::In(allowed) => allowed.iter().any(|a| a.as_ref() == value),
            ValueRule::Pattern(pattern) => match value {
                TermRef::NamedNode(n) => pattern.is_match(n.as_str()),
                TermRef::Literal(l) => pattern.is_match(l.value()),
                _ => false,
            },
            ValueRule::Node(shape_iri) => {
                let (Some(shape), Some(node)) = (self.shapes.get(shape_iri), as_subject(value))
                else {
                    return false;
                };
                if depth >= MAX_NODE_DEPTH {
                    return false;
                }
                let mut nested = Vec::new();
                self.check_node(shape, data, node, depth + 1, &mut nested);
                !nested.iter().any(|f| f.severity == Severity::Violation)
            }
            ValueRule::Or(alternatives) => alternatives
                .iter()
                .any(|rule| self.satisfies(rule, data, value, depth)),
        }
    }
}

fn as_subject(term: TermRef<'_>) -> Option<NamedOrBlankNodeRef<'_>> {
    match term {
        TermRef::NamedNode(n) => Some(n.into()),
        TermRef::BlankNode(b) => Some(b.into()),
        _ => None,
    }
}

fn named(term: TermRef<'_>, what: &str) -> Result<NamedNode, String> {
    match term {
        TermRef::NamedNode(n) => Ok(n.into_owned()),
        other => Err(format!("{what} must be an IRI, found {other}")),
    }
}

fn compile_property(
    graph: &Graph,
    shape: NamedOrBlankNodeRef<'_>,
) -> Result<PropertyShape, String> {
    let one = |local: &str| graph.object_for_subject_predicate(shape, &sh(local));
    let count = |local: &str| -> Result<Option<usize>, String> {
        one(local)
            .map(|term| match term {
                TermRef::Literal(l) => l
                    .value()
                    .parse::<usize>()
                    .map_err(|_| format!("sh:{local} must be a non-negative integer")),
                _ => Err(format!("sh:{local} must be a literal")),
            })
            .transpose()
    };
    let path = named(
        one("path").ok_or("a property shape without sh:path")?,
        "sh:path",
    )?;
    let message = match one("message") {
        Some(TermRef::Literal(l)) => l.value().to_owned(),
        _ => return Err(format!("the property shape on {path} has no sh:message")),
    };
    let severity = match one("severity") {
        None => Severity::Violation,
        Some(TermRef::NamedNode(s)) if s.as_str() == format!("{SH}Violation") => {
            Severity::Violation
        }
        Some(TermRef::NamedNode(s))
            if s.as_str() == format!("{SH}Warning") || s.as_str() == format!("{SH}Info") =>
        {
            Severity::Warning
        }
        Some(other) => return Err(format!("unknown severity {other}")),
    };
    let mut rules = compile_value_rules(graph, shape)?;
    if let Some(list) = one("or") {
        let mut alternatives = Vec::new();
        for member in rdf_list(graph, list)? {
            let node = as_subject(member.as_ref()).ok_or("sh:or members must be nodes")?;
            let mut inner = compile_value_rules(graph, node)?;
            if inner.len() != 1 {
                return Err(format!(
                    "each sh:or alternative on {path} must have exactly one constraint"
                ));
            }
            alternatives.append(&mut inner);
        }
        rules.push(ValueRule::Or(alternatives));
    }
    for unsupported in [
        "qualifiedValueShape",
        "languageIn",
        "uniqueLang",
        "minLength",
        "maxLength",
        "and",
        "not",
        "xone",
        "equals",
        "disjoint",
        "lessThan",
    ] {
        if one(unsupported).is_some() {
            return Err(format!(
                "sh:{unsupported} on {path} is outside the supported subset"
            ));
        }
    }
    Ok(PropertyShape {
        min_count: count("minCount")?,
        max_count: count("maxCount")?,
        has_value: one("hasValue").map(TermRef::into_owned),
        path,
        rules,
        severity,
        message,
    })
}

fn compile_value_rules(
    graph: &Graph,
    shape: NamedOrBlankNodeRef<'_>,
) -> Result<Vec<ValueRule>, String> {
    let mut rules = Vec::new();
    for term in graph.objects_for_subject_predicate(shape, &sh("datatype")) {
        rules.push(ValueRule::Datatype(named(term, "sh:datatype")?));
    }
    for term in graph.objects_for_subject_predicate(shape, &sh("class")) {
        rules.push(ValueRule::Class(named(term, "sh:class")?));
    }
    for term in graph.objects_for_subject_predicate(shape, &sh("node")) {
        rules.push(ValueRule::Node(named(term, "sh:node")?));
    }
    for term in graph.objects_for_subject_predicate(shape, &sh("nodeKind")) {
        let kind = named(term, "sh:nodeKind")?;
        let kind = match kind.as_str().strip_prefix(SH) {
            Some("IRI") => NodeKind::Iri,
            Some("BlankNode") => NodeKind::BlankNode,
            Some("Literal") => NodeKind::Literal,
            Some("BlankNodeOrIRI") => NodeKind::BlankNodeOrIri,
            Some("IRIOrLiteral") => NodeKind::IriOrLiteral,
            _ => return Err(format!("unsupported sh:nodeKind {kind}")),
        };
        rules.push(ValueRule::Kind(kind));
    }
    for term in graph.objects_for_subject_predicate(shape, &sh("in")) {
        rules.push(ValueRule::In(rdf_list(graph, term)?));
    }
    for term in graph.objects_for_subject_predicate(shape, &sh("pattern")) {
        let TermRef::Literal(pattern) = term else {
            return Err("sh:pattern must be a literal".into());
        };
        let regex = regex::Regex::new(pattern.value())
            .map_err(|e| format!("sh:pattern {}: {e}", pattern.value()))?;
        rules.push(ValueRule::Pattern(regex));
    }
    Ok(rules)
}

fn rdf_list(graph: &Graph, head: TermRef<'_>) -> Result<Vec<Term>, String> {
    let mut items = Vec::new();
    let mut cursor = head.into_owned();
    while cursor != Term::from(rdf::NIL.into_owned()) {
        let node = as_subject(cursor.as_ref()).ok_or("malformed RDF list")?;
        let first = graph
            .object_for_subject_predicate(node, rdf::FIRST)
            .ok_or("RDF list without rdf:first")?;
        items.push(first.into_owned());
        cursor = graph
            .object_for_subject_predicate(node, rdf::REST)
            .ok_or("RDF list without rdf:rest")?
            .into_owned();
        if items.len() > 10_000 {
            return Err("RDF list too long".into());
        }
    }
    Ok(items)
}
