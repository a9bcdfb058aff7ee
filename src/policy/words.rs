//! A policy in plain words, for the dataset page: "Research purposes only · EU recipients ·
//! identifiers pseudonymised · birth dates reduced to year · groups under 11 suppressed · until
//! 2027-06-30". Read from the parsed model and the compiled enforcement plan, so what a person
//! reads is what the evaluator checks and the data plane does, for any policy, not per dataset.

use super::knowledge;
use super::model::{Constraint, Operator, Policy, Rule, Value};
use super::plan::{self, FilterOperator, Granularity};
use super::vocab::{AGORA, DPV, EU_COUNTRY, ODRL, local};
use chrono::Utc;

/// One permission (one way of getting access) in words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionWords {
    /// What the requester must be or state (purpose, country, organisation, dates, counts).
    pub conditions: Vec<String>,
    /// What the node does to every release (columns treated, rows filtered, budgets, approval).
    pub treatments: Vec<String>,
}

/// A whole policy in words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyWords {
    /// The policy's title, if it has one.
    pub title: Option<String>,
    /// Each permission; access needs any one of them.
    pub permissions: Vec<PermissionWords>,
    /// What is never allowed ("no distribute").
    pub prohibitions: Vec<String>,
}

impl PolicyWords {
    /// One line per permission, phrases joined by " · ".
    pub fn lines(&self) -> Vec<String> {
        self.permissions
            .iter()
            .map(|p| {
                p.conditions
                    .iter()
                    .chain(&p.treatments)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" · ")
            })
            .collect()
    }
}

/// A purpose IRI as a person reads it: `dpv:AcademicResearch` → "academic research".
pub fn purpose_label(iri: &str) -> String {
    let name = local(iri, DPV).or_else(|| local(iri, AGORA)).unwrap_or(iri);
    if name == "AITraining" {
        return "AI training".into();
    }
    if name.contains(':') || name.contains('/') {
        return name.to_owned();
    }
    split_camel(name)
}

/// The purposes the node knows (DPV and agora's own), as `(IRI, label)` sorted by label: what a
/// requester may state.
pub fn known_purposes() -> Vec<(String, String)> {
    let mut purposes: Vec<(String, String)> = knowledge()
        .purposes
        .iris()
        .map(|iri| (iri.to_owned(), purpose_label(iri)))
        .collect();
    purposes.sort_by_key(|p| p.1.to_lowercase());
    purposes
}

fn split_camel(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let boundary = i > 0
            && c.is_uppercase()
            && (chars[i - 1].is_lowercase()
                || chars.get(i + 1).is_some_and(|n| n.is_lowercase())
                    && chars[i - 1].is_uppercase());
        if boundary {
            out.push(' ');
        }
        out.push(*c);
    }
    // Lower-case every word but acronyms (AI, EU).
    out.split(' ')
        .map(|w| {
            if w.len() > 1 && w.chars().all(|c| c.is_uppercase()) {
                w.to_owned()
            } else {
                w.to_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Describes `policy` in words.
pub fn describe(policy: &Policy) -> PolicyWords {
    let permissions = policy
        .permissions
        .iter()
        .enumerate()
        .map(|(index, rule)| permission_words(policy, index, rule))
        .collect();
    let prohibitions = policy
        .prohibitions
        .iter()
        .map(|rule| {
            let action = rule
                .action
                .as_ref()
                .map(|a| action_label(a.name.as_str()))
                .unwrap_or_else(|| "anything".into());
            let action = match action.as_str() {
                "distribute" => "onward distribution".to_owned(),
                "commercialize" => "commercial use".to_owned(),
                "sell" => "sale".to_owned(),
                _ => action,
            };
            let mut text = format!("no {action}");
            let conditions: Vec<String> = conditions(&rule.constraints)
                .into_iter()
                .map(|c| {
                    // "For marketing only" reads "for marketing" after "no use".
                    c.strip_prefix("For ")
                        .and_then(|c| c.strip_suffix(" only"))
                        .map(|c| format!("for {c}"))
                        .unwrap_or(c)
                })
                .collect();
            if !conditions.is_empty() {
                text.push_str(&format!(" {}", conditions.join(", ")));
            }
            text
        })
        .collect();
    PolicyWords {
        title: policy.title().map(str::to_owned),
        permissions,
        prohibitions,
    }
}

fn action_label(iri: &str) -> String {
    local(iri, ODRL)
        .or_else(|| local(iri, AGORA))
        .map(split_camel)
        .unwrap_or_else(|| iri.to_owned())
}

fn permission_words(policy: &Policy, index: usize, rule: &Rule) -> PermissionWords {
    let mut conditions = conditions(&rule.constraints);
    if let Some(action) = &rule.action {
        let name = action.name.as_str();
        if name != format!("{ODRL}use") {
            conditions.insert(0, format!("{} only", capitalise(&action_label(name))));
        }
    }
    let mut treatments = Vec::new();
    // The plan the node would apply if the permission granted a request now: the same compiler
    // the negotiation uses, so the words cannot drift from the enforcement.
    if let Ok(plan) = plan::compile(policy, &[index], Utc::now()) {
        if !plan.pseudonymised_columns.is_empty() {
            treatments.push(format!(
                "identifiers pseudonymised ({})",
                plan.pseudonymised_columns.join(", ")
            ));
        }
        for g in &plan.generalisations {
            let to = match g.granularity {
                Granularity::Year => "year".to_owned(),
                Granularity::Month => "month".to_owned(),
                Granularity::Day => "day".to_owned(),
                Granularity::Hour => "hour".to_owned(),
                Granularity::Grid { degrees } => format!("a {degrees}° grid"),
            };
            treatments.push(format!("{} reduced to {to}", column_words(&g.column)));
        }
        if !plan.dropped_columns.is_empty() {
            treatments.push(format!("withheld: {}", plan.dropped_columns.join(", ")));
        }
        for filter in &plan.row_filters {
            let values: Vec<String> = filter
                .values
                .iter()
                .map(|v| match serde_json::to_value(v) {
                    Ok(json) => json
                        .get("value")
                        .map(|v| v.to_string().trim_matches('"').to_owned())
                        .unwrap_or_default(),
                    Err(_) => String::new(),
                })
                .collect();
            let op = match filter.operator {
                FilterOperator::Eq => "=",
                FilterOperator::Neq => "≠",
                FilterOperator::Lt => "<",
                FilterOperator::Lteq => "≤",
                FilterOperator::Gt => ">",
                FilterOperator::Gteq => "≥",
                FilterOperator::IsAnyOf => "is one of",
                FilterOperator::IsNoneOf => "is none of",
            };
            treatments.push(format!(
                "only rows where {} {op} {}",
                filter.column,
                values.join(", ")
            ));
        }
        if let Some(n) = plan.min_group_size {
            treatments.push(format!("groups under {n} suppressed"));
        }
        if let Some(n) = plan.row_budget {
            treatments.push(format!("at most {n} rows in all"));
        }
        if let Some(n) = plan.byte_budget {
            treatments.push(format!("at most {n} bytes in all"));
        }
        if let Some(n) = plan.max_pulls {
            treatments.push(format!("at most {n} pulls"));
        }
        if let Some(d) = plan.max_elapsed {
            treatments.push(format!("for {} after the agreement", duration_words(&d)));
        }
        if plan.attribution {
            treatments.push("attribution required".into());
        }
        if plan.requires_approval {
            treatments.push("each request approved by the data holder".into());
        }
    }
    PermissionWords {
        conditions,
        treatments,
    }
}

fn duration_words(d: &super::values::XsdDuration) -> String {
    let days = (d.seconds / 86_400.0).round() as i64;
    match (d.months, days) {
        (0, 0) => format!("{} seconds", d.seconds),
        (0, n) => format!("{n} days"),
        (m, 0) => format!("{m} months"),
        (m, n) => format!("{m} months and {n} days"),
    }
}

/// `birth_date` → "birth dates".
fn column_words(column: &str) -> String {
    let words = column.replace('_', " ");
    if words.ends_with('s') {
        words
    } else {
        format!("{words}s")
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The conditions of a rule, purposes first and time windows last, as a policy is read aloud.
fn conditions(constraints: &[Constraint]) -> Vec<String> {
    let mut words: Vec<String> = constraints.iter().filter_map(constraint_words).collect();
    let rank = |text: &String| {
        if text.starts_with("For ") || text.starts_with("Research") || text.starts_with("not for") {
            0
        } else if text.starts_with("until ") || text.starts_with("from ") || text.starts_with("on ")
        {
            2
        } else {
            1
        }
    };
    words.sort_by_key(rank);
    words
}

fn constraint_words(constraint: &Constraint) -> Option<String> {
    let atomic = match constraint {
        Constraint::Atomic(atomic) => atomic,
        Constraint::Logical(logical) => {
            let parts: Vec<String> = logical
                .operands
                .iter()
                .filter_map(constraint_words)
                .collect();
            let joiner = match logical.operator {
                super::model::LogicalOperator::Or | super::model::LogicalOperator::Xone => " or ",
                _ => " and ",
            };
            return (!parts.is_empty()).then(|| parts.join(joiner));
        }
    };
    let operand = atomic.left_operand.as_str();
    let values = atomic.right_operand.values();
    let negated = matches!(atomic.operator, Operator::Neq | Operator::IsNoneOf);
    if operand == format!("{ODRL}purpose") {
        let labels: Vec<String> = values.iter().map(|v| purpose_label(v.lexical())).collect();
        return Some(if negated {
            format!("not for {}", labels.join(", "))
        } else {
            purposes_phrase(&labels)
        });
    }
    if operand == format!("{AGORA}country") || operand == format!("{ODRL}spatial") {
        let codes: Vec<&str> = values
            .iter()
            .map(|v| v.lexical().strip_prefix(EU_COUNTRY).unwrap_or(v.lexical()))
            .collect();
        let eu = codes.contains(&"EUR") || codes.len() >= 27;
        let place = if eu {
            "EU".to_owned()
        } else {
            codes.join(", ")
        };
        return Some(if negated {
            format!("no recipients in {place}")
        } else {
            format!("{place} recipients")
        });
    }
    if operand == format!("{AGORA}orgType") {
        let kinds: Vec<String> = values
            .iter()
            .map(|v| {
                let text = v.lexical();
                text.rsplit(['#', '/']).next().unwrap_or(text).to_owned()
            })
            .collect();
        return Some(format!(
            "{} organisations: {}",
            if negated { "not for" } else { "for" },
            kinds.join(", ")
        ));
    }
    if operand == format!("{ODRL}dateTime") {
        let date = values.first().map(date_only).unwrap_or_default();
        return Some(match atomic.operator {
            Operator::Lt | Operator::Lteq => format!("until {date}"),
            Operator::Gt | Operator::Gteq => format!("from {date}"),
            _ => format!("on {date}"),
        });
    }
    if operand == format!("{ODRL}count") {
        // Shown from the plan ("at most n pulls").
        return None;
    }
    if operand == format!("{ODRL}elapsedTime") || operand.starts_with(AGORA) {
        // Budgets, group sizes and windows come out of the plan.
        if [
            "minGroupSize",
            "rowBudget",
            "byteBudget",
            "rowCount",
            "byteCount",
        ]
        .iter()
        .any(|n| operand.ends_with(n))
            || operand == format!("{ODRL}elapsedTime")
        {
            return None;
        }
    }
    let name = local(operand, ODRL)
        .or_else(|| local(operand, AGORA))
        .unwrap_or(operand);
    let shown: Vec<&str> = values.iter().map(Value::lexical).collect();
    Some(format!(
        "{} {} {}",
        split_camel(name),
        atomic.operator.local_name(),
        shown.join(", ")
    ))
}

fn date_only(value: &Value) -> String {
    let text = value.lexical();
    text.split('T').next().unwrap_or(text).to_owned()
}

fn purposes_phrase(labels: &[String]) -> String {
    let research = labels.iter().all(|l| l.contains("research"));
    if research && labels.len() > 1 {
        return "Research purposes only".into();
    }
    format!("For {} only", labels.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::template;
    use crate::rdf_input::RdfSyntax;

    fn words(uid: &str) -> PolicyWords {
        let body = template(uid).expect("template");
        let policy = crate::policy::parse(body.as_bytes(), RdfSyntax::JsonLd).expect("parses");
        describe(&policy)
    }

    #[test]
    fn the_health_template_reads_as_a_person_expects() {
        let line = words("https://w3id.org/agora/policies/health-secondary-use")
            .lines()
            .join("\n");
        for expected in [
            "EU recipients",
            "identifiers pseudonymised (name, national_id, patient_id)",
            "birth dates reduced to year",
            "groups under 11 suppressed",
            "until 2027-06-30",
            "only rows where consent_secondary_use = true",
        ] {
            assert!(line.contains(expected), "{expected:?} missing from {line}");
        }
        let words = words("https://w3id.org/agora/policies/health-secondary-use");
        assert!(
            words
                .prohibitions
                .contains(&"no onward distribution".to_owned()),
            "{:?}",
            words.prohibitions
        );
        assert_eq!(
            words.title.as_deref(),
            Some("Secondary use of health data under the EHDS")
        );
    }

    #[test]
    fn every_template_reads_in_words() {
        let uids = crate::policy::template_uids();
        assert_eq!(uids.len(), crate::policy::TEMPLATES.len());
        for uid in &uids {
            let words = words(uid);
            assert!(words.title.is_some(), "{uid} has a title");
            let lines = words.lines();
            assert!(
                !lines.is_empty() && lines.iter().all(|l| !l.is_empty()),
                "{uid}: {lines:?}"
            );
        }
    }

    #[test]
    fn an_approval_duty_is_said() {
        let body = br#"{"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer",
            "uid": "urn:test:permit", "profile": "https://w3id.org/agora/profile",
            "permission": [{"action": "use",
              "duty": [{"action": {"@id": "https://w3id.org/agora/ns#obtainApproval"}}]}]}"#;
        let policy = crate::policy::parse(body, RdfSyntax::JsonLd).expect("parses");
        assert_eq!(
            describe(&policy).lines(),
            vec!["each request approved by the data holder".to_owned()]
        );
    }

    #[test]
    fn purposes_have_labels() {
        assert_eq!(
            purpose_label("https://w3id.org/dpv#AcademicResearch"),
            "academic research"
        );
        assert_eq!(
            purpose_label("https://w3id.org/agora/ns#AITraining"),
            "AI training"
        );
        assert!(known_purposes().len() > 50);
    }
}
