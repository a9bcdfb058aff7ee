//! Writing a policy as compact ODRL JSON-LD, with the ODRL 2.2 context and the `dpv` and `agora`
//! prefixes, in the shape of the templates in `policies/`. What it writes reads back (with
//! [`super::parse`]) into an equal model.

use super::model::{
    Action, AtomicConstraint, Constraint, Entity, Policy, RightOperand, Rule, Value,
};
use super::vocab::{AGORA, DPV, ODRL, ODRL_CONTEXT_URL, PREFIXES, XSD, local};
use crate::rdf_input::ODRL_CONTEXT;
use oxigraph::model::Literal;
use serde_json::{Map, Value as Json, json};
use std::collections::HashMap;
use std::sync::LazyLock;

/// The policy as a JSON-LD document.
pub fn to_json_ld(policy: &Policy) -> Json {
    let mut document = Map::new();
    document.insert(
        "@context".into(),
        json!([ODRL_CONTEXT_URL, {"dpv": DPV, "agora": AGORA}]),
    );
    document.insert("@type".into(), json!(policy.kind.local_name()));
    document.insert("uid".into(), json!(policy.uid.as_str()));
    if !policy.profiles.is_empty() {
        document.insert(
            "profile".into(),
            one_or_many(policy.profiles.iter().map(|p| json!(p.as_str())).collect()),
        );
    }
    let mut annotations: Map<String, Json> = Map::new();
    for (predicate, value) in &policy.annotations {
        let key = compact_iri(predicate.as_str());
        let written = value_json(value);
        match annotations.get_mut(&key) {
            Some(Json::Array(items)) => items.push(written),
            Some(existing) => *existing = json!([existing.clone(), written]),
            None => {
                annotations.insert(key, written);
            }
        }
    }
    document.extend(annotations);
    if let Some(conflict) = policy.conflict {
        document.insert("conflict".into(), json!(conflict.local_name()));
    }
    for (key, rules, class, duty_key) in [
        ("permission", &policy.permissions, "Permission", "duty"),
        ("prohibition", &policy.prohibitions, "Prohibition", "remedy"),
        ("obligation", &policy.obligations, "Duty", "consequence"),
    ] {
        if !rules.is_empty() {
            document.insert(
                key.into(),
                Json::Array(
                    rules
                        .iter()
                        .map(|r| rule_json(r, class, duty_key))
                        .collect(),
                ),
            );
        }
    }
    Json::Object(document)
}

/// The policy as JSON-LD text, pretty-printed.
pub fn to_json_ld_string(policy: &Policy) -> String {
    // Serialising a `serde_json::Value` cannot fail.
    serde_json::to_string_pretty(&to_json_ld(policy)).unwrap_or_default()
}

/// A rule of class `class`; `duty_key` is where its duties go (`duty` for a permission,
/// `remedy` for a prohibition, `consequence` for a duty).
fn rule_json(rule: &Rule, class: &str, duty_key: &str) -> Json {
    let mut object = Map::new();
    if let Some(uid) = &rule.uid {
        object.insert("@id".into(), json!(uid.as_str()));
    }
    if let Some(action) = &rule.action {
        object.insert("action".into(), action_json(action));
    }
    if let Some(target) = &rule.target {
        object.insert(
            "target".into(),
            entity_json(target, "Asset", "AssetCollection"),
        );
    }
    if let Some(assigner) = &rule.assigner {
        object.insert(
            "assigner".into(),
            entity_json(assigner, "Party", "PartyCollection"),
        );
    }
    if let Some(assignee) = &rule.assignee {
        object.insert(
            "assignee".into(),
            entity_json(assignee, "Party", "PartyCollection"),
        );
    }
    for (function, party) in &rule.other_parties {
        let key = local(function.as_str(), ODRL)
            .map_or_else(|| function.as_str().to_owned(), str::to_owned);
        let written = entity_json(party, "Party", "PartyCollection");
        match object.get_mut(&key) {
            Some(Json::Array(items)) => items.push(written),
            Some(existing) => *existing = json!([existing.clone(), written]),
            None => {
                object.insert(key, written);
            }
        }
    }
    if !rule.constraints.is_empty() {
        object.insert(
            "constraint".into(),
            Json::Array(rule.constraints.iter().map(constraint_json).collect()),
        );
    }
    if !rule.duties.is_empty() {
        object.insert(
            duty_key.into(),
            Json::Array(
                rule.duties
                    .iter()
                    .map(|d| rule_json(d, "Duty", "consequence"))
                    .collect(),
            ),
        );
    }
    // A rule with nothing to say (ODRL's "any action") still needs a statement to exist in RDF.
    if object.keys().all(|k| k == "@id") {
        object.insert("@type".into(), json!(class));
    }
    Json::Object(object)
}

fn action_json(action: &Action) -> Json {
    if action.uid.is_none() && action.refinements.is_empty() {
        return json!(vocab_term(action.name.as_str()));
    }
    let mut object = Map::new();
    if let Some(uid) = &action.uid {
        object.insert("@id".into(), json!(uid.as_str()));
    }
    object.insert(
        "rdf:value".into(),
        json!({"@id": compact_iri(action.name.as_str())}),
    );
    if !action.refinements.is_empty() {
        object.insert(
            "refinement".into(),
            Json::Array(action.refinements.iter().map(constraint_json).collect()),
        );
    }
    json!([Json::Object(object)])
}

fn entity_json(entity: &Entity, single: &str, collection: &str) -> Json {
    let plain = !entity.collection
        && entity.source.is_none()
        && entity.part_of.is_empty()
        && entity.refinements.is_empty()
        && entity.types.is_empty();
    if plain && let Some(uid) = &entity.uid {
        return json!(uid.as_str());
    }
    let mut object = Map::new();
    if let Some(uid) = &entity.uid {
        object.insert("@id".into(), json!(uid.as_str()));
    }
    let mut types = Vec::new();
    if entity.collection {
        types.push(json!(collection));
    } else if entity.types.is_empty() {
        types.push(json!(single));
    }
    types.extend(entity.types.iter().map(|t| json!(compact_iri(t.as_str()))));
    object.insert("@type".into(), one_or_many(types));
    if let Some(source) = &entity.source {
        object.insert("source".into(), json!(source.as_str()));
    }
    if !entity.part_of.is_empty() {
        object.insert(
            "partOf".into(),
            one_or_many(entity.part_of.iter().map(|p| json!(p.as_str())).collect()),
        );
    }
    if !entity.refinements.is_empty() {
        object.insert(
            "refinement".into(),
            Json::Array(entity.refinements.iter().map(constraint_json).collect()),
        );
    }
    Json::Object(object)
}

fn constraint_json(constraint: &Constraint) -> Json {
    match constraint {
        Constraint::Atomic(atomic) => atomic_json(atomic),
        Constraint::Logical(logical) => {
            let mut object = Map::new();
            if let Some(uid) = &logical.uid {
                object.insert("@id".into(), json!(uid.as_str()));
            }
            let operands: Vec<Json> = logical.operands.iter().map(constraint_json).collect();
            // `andSequence` is a list container in the node's context; the explicit `@list`
            // keeps the order under any context.
            let value = if logical.operator == super::LogicalOperator::AndSequence {
                json!({"@list": operands})
            } else {
                Json::Array(operands)
            };
            object.insert(logical.operator.local_name().into(), value);
            Json::Object(object)
        }
    }
}

fn atomic_json(constraint: &AtomicConstraint) -> Json {
    let mut object = Map::new();
    if let Some(uid) = &constraint.uid {
        object.insert("@id".into(), json!(uid.as_str()));
    }
    object.insert(
        "leftOperand".into(),
        json!(vocab_term(constraint.left_operand.as_str())),
    );
    let operator = format!("{ODRL}{}", constraint.operator.local_name());
    object.insert("operator".into(), json!(vocab_term(&operator)));
    match &constraint.right_operand {
        RightOperand::Values(values) => {
            let written: Vec<Json> = values.iter().map(value_json).collect();
            let value = if written.len() == 1 && !constraint.operator.is_set_based() {
                written.into_iter().next().unwrap_or(Json::Null)
            } else {
                Json::Array(written)
            };
            object.insert("rightOperand".into(), value);
        }
        RightOperand::Reference(reference) => {
            object.insert("rightOperandReference".into(), json!(reference.as_str()));
        }
    }
    match &constraint.unit {
        Some(Value::Iri(iri)) => {
            object.insert("unit".into(), json!(iri.as_str()));
        }
        // A literal unit (as the published ODRL context reads `"unit": "..."`) is written under
        // the compact IRI, which the context does not coerce to an IRI.
        Some(Value::Literal(literal)) => {
            object.insert("odrl:unit".into(), literal_json(literal));
        }
        None => {}
    }
    if let Some(data_type) = &constraint.data_type {
        object.insert("dataType".into(), json!(data_type.as_str()));
    }
    if let Some(status) = &constraint.status {
        object.insert("status".into(), value_json(status));
    }
    Json::Object(object)
}

/// A value of a property without a type coercion in the context.
fn value_json(value: &Value) -> Json {
    match value {
        Value::Iri(iri) => json!({"@id": compact_iri(iri.as_str())}),
        Value::Literal(literal) => literal_json(literal),
    }
}

fn literal_json(literal: &Literal) -> Json {
    let datatype = literal.datatype().as_str();
    if let Some(language) = literal.language() {
        return json!({"@value": literal.value(), "@language": language});
    }
    match local(datatype, XSD) {
        Some("string") => json!(literal.value()),
        Some("boolean") if matches!(literal.value(), "true" | "false") => {
            json!(literal.value() == "true")
        }
        // JSON-LD reads a JSON integer as xsd:integer in canonical form; anything else keeps
        // its lexical form explicitly.
        Some("integer") => match literal.value().parse::<i64>() {
            Ok(n) if n.to_string() == literal.value() => json!(n),
            _ => json!({"@value": literal.value(), "@type": "xsd:integer"}),
        },
        Some(name) => json!({"@value": literal.value(), "@type": format!("xsd:{name}")}),
        None => json!({"@value": literal.value(), "@type": compact_iri(datatype)}),
    }
}

/// An IRI for an `@vocab`-coerced property: the term the ODRL context defines for it (`use`,
/// `purpose`, `isAnyOf`), else a compact IRI (deprecated terms such as `odrl:write` have none).
fn vocab_term(iri: &str) -> String {
    static TERMS: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
        let context: Json = serde_json::from_str(ODRL_CONTEXT).unwrap_or_default();
        let mut terms = HashMap::new();
        if let Some(definitions) = context.get("@context").and_then(Json::as_object) {
            for (term, definition) in definitions {
                if let Some(name) = definition.as_str().and_then(|d| d.strip_prefix("odrl:")) {
                    terms.insert(format!("{ODRL}{name}"), term.clone());
                }
            }
        }
        // Written as a compact IRI: the published ODRL context maps the term `neq` to the
        // misspelt `odrl:neg`.
        terms.remove(&format!("{ODRL}neq"));
        terms
    });
    TERMS.get(iri).cloned().unwrap_or_else(|| compact_iri(iri))
}

/// `prefix:local` when the prefix is declared in the written context and the local part is
/// safe, else the IRI.
fn compact_iri(iri: &str) -> String {
    for (prefix, namespace) in PREFIXES {
        if let Some(rest) = local(iri, namespace)
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && !rest.starts_with("//")
        {
            return format!("{prefix}:{rest}");
        }
    }
    iri.to_owned()
}

fn one_or_many(mut items: Vec<Json>) -> Json {
    if items.len() == 1 {
        items.pop().unwrap_or(Json::Null)
    } else {
        Json::Array(items)
    }
}
