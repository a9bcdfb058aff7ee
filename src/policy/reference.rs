//! A deliberately naive ODRL evaluator: the test oracle the real [`Evaluator`](super::Evaluator)
//! is checked against, differentially (a generated-policy property test in the unit tests, and
//! the `odrl` fuzz target in `fuzz/`).
//!
//! It shares nothing of the real evaluator's logic — not its value readings (`values`), not its
//! purpose hierarchy or country table (`knowledge`), not its action hierarchy (`vocab`) — only
//! the parsed [`Policy`] model, the [`Request`] and the ontology *files*, which it reads itself.
//! It is written as directly from ODRL 2.2 and the agora profile as possible, without any of
//! the real evaluator's explanations, reports or plan: every premise is a `Option<bool>`
//! (`None` = not known for this request), combined with Kleene's three-valued logic. It is slow
//! (every value is re-read for every comparison) and that is fine for an oracle.
//!
//! The node never decides with it. It is public so that the fuzz crate, which links the library
//! as an ordinary dependency, can call it.

use super::evaluate::{Decision, DutyState, Outcome, Request};
use super::model::{
    AtomicConstraint, ConflictStrategy, Constraint, Entity, LogicalOperator, Operator, Policy,
    RightOperand, Rule, RuleKind, Value,
};
use chrono::{DateTime, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};

const ODRL_NS: &str = "http://www.w3.org/ns/odrl/2/";
const AGORA_NS: &str = "https://w3id.org/agora/ns#";
const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema#";
const EU: &str = "http://publications.europa.eu/resource/authority/country/";
const BROADER: &str = "http://www.w3.org/2004/02/skos/core#broader";
const NOTATION: &str = "http://www.w3.org/2004/02/skos/core#notation";
const IN_SCHEME: &str = "http://www.w3.org/2004/02/skos/core#inScheme";
const INCLUDED_IN: &str = "http://www.w3.org/ns/odrl/2/includedIn";

/// The reference's verdict on one top-level rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleVerdict {
    /// Permission, prohibition or obligation.
    pub kind: RuleKind,
    /// Its index among the rules of that kind.
    pub index: usize,
    /// Every premise combined (`None`: unknown for this request).
    pub state: Option<bool>,
    /// Whether it is in force for this request.
    pub active: bool,
}

/// The reference's decision: the outcome, which permissions granted it, and each rule's verdict.
#[derive(Debug, Clone)]
pub struct ReferenceDecision {
    /// Permit or deny.
    pub outcome: Outcome,
    /// The permissions that grant a permit (empty on a deny).
    pub granting: Vec<usize>,
    /// Every top-level rule, permissions, then prohibitions, then obligations.
    pub rules: Vec<RuleVerdict>,
}

/// A duty: whether its constraints put it in force, and what the request's facts say of it.
type DutyVerdict = (Option<bool>, Option<DutyState>);

/// Decides `request` against `policy` at `now`, naively.
pub fn decide(policy: &Policy, request: &Request, now: DateTime<Utc>) -> ReferenceDecision {
    let oracle = Oracle::new(request, now);
    let mut rules = Vec::new();
    let mut duty_verdicts: HashMap<usize, Vec<DutyVerdict>> = HashMap::new();
    for (index, rule) in policy.permissions.iter().enumerate() {
        let state = oracle.premises(rule);
        let duties: Vec<DutyVerdict> = rule
            .duties
            .iter()
            .map(|duty| {
                let in_force = and(duty.constraints.iter().map(|c| oracle.constraint(c)));
                let known = duty
                    .uid
                    .as_ref()
                    .and_then(|uid| request.facts.duty_states.get(uid))
                    .copied();
                (in_force, known)
            })
            .collect();
        // A duty that is violated (and not known to be out of force) withdraws the permission.
        let violated = duties.iter().any(|(in_force, known)| {
            *known == Some(DutyState::Violated) && *in_force != Some(false)
        });
        duty_verdicts.insert(index, duties);
        rules.push(RuleVerdict {
            kind: RuleKind::Permission,
            index,
            state,
            active: state == Some(true) && !violated,
        });
    }
    for (index, rule) in policy.prohibitions.iter().enumerate() {
        let state = oracle.premises(rule);
        // A prohibition that cannot be ruled out stays in force: a missing claim never opens.
        rules.push(RuleVerdict {
            kind: RuleKind::Prohibition,
            index,
            state,
            active: state != Some(false),
        });
    }
    for (index, rule) in policy.obligations.iter().enumerate() {
        let state = oracle.premises(rule);
        rules.push(RuleVerdict {
            kind: RuleKind::Obligation,
            index,
            state,
            active: state == Some(true),
        });
    }
    let granting: Vec<usize> = rules
        .iter()
        .filter(|r| r.kind == RuleKind::Permission && r.active)
        .map(|r| r.index)
        .collect();
    let prohibited = rules
        .iter()
        .any(|r| r.kind == RuleKind::Prohibition && r.active);
    let permitted = !granting.is_empty()
        && (!prohibited
            || policy.conflict.unwrap_or(ConflictStrategy::Invalid) == ConflictStrategy::Perm);
    // A permit still needs a plan the data plane can carry out; duties fulfilled or out of
    // force need nothing from the node.
    let planned = permitted && {
        let settled = |permission: usize, duty: usize| {
            duty_verdicts
                .get(&permission)
                .and_then(|duties| duties.get(duty))
                .is_some_and(|(in_force, known)| {
                    *known == Some(DutyState::Fulfilled) || *in_force == Some(false)
                })
        };
        let agreed_at = request.usage.agreed_at.unwrap_or(now);
        super::plan::compile_settled(policy, &granting, agreed_at, &settled).is_ok()
    };
    ReferenceDecision {
        outcome: if planned {
            Outcome::Permit
        } else {
            Outcome::Deny
        },
        granting: if planned { granting } else { Vec::new() },
        rules,
    }
}

/// Compares the real evaluator's `decision` on `request` with the reference's: `None` when they
/// agree on the outcome and on every top-level rule's state and force, else what differs.
pub fn disagreement(policy: &Policy, request: &Request, decision: &Decision) -> Option<String> {
    let reference = decide(policy, request, decision.at);
    let mut differences = Vec::new();
    if reference.outcome != decision.outcome {
        differences.push(format!(
            "outcome: evaluator {:?}, reference {:?} ({})",
            decision.outcome,
            reference.outcome,
            decision.explanation()
        ));
    }
    if reference.rules.len() != decision.rules.len() {
        differences.push(format!(
            "rules: evaluator reports {}, reference {}",
            decision.rules.len(),
            reference.rules.len()
        ));
    }
    let oracle = Oracle::new(request, decision.at);
    let rules: Vec<&Rule> = policy.rules().map(|(_, _, rule)| rule).collect();
    for ((ours, theirs), rule) in reference.rules.iter().zip(&decision.rules).zip(rules) {
        let state = match theirs.state {
            super::Satisfaction::Satisfied => Some(true),
            super::Satisfaction::Unsatisfied => Some(false),
            super::Satisfaction::Unknown => None,
        };
        if ours.kind != theirs.kind
            || ours.index != theirs.index
            || ours.state != state
            || ours.active != theirs.active
        {
            differences.push(format!(
                "{} {}: evaluator state {state:?} active {}, reference state {:?} active {}",
                theirs.kind.word(),
                theirs.index,
                theirs.active,
                ours.state,
                ours.active
            ));
            // Where they part: each constraint as the evaluator and the reference see it.
            for (constraint, report) in rule.constraints.iter().zip(&theirs.constraints) {
                let state = oracle.constraint(constraint);
                differences.push(format!(
                    "  constraint {:?}: evaluator {:?} ({}), reference {state:?}",
                    constraint, report.state, report.finding
                ));
            }
        }
    }
    (!differences.is_empty()).then(|| differences.join("; "))
}

/// Kleene conjunction.
fn and(states: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut result = Some(true);
    for state in states {
        match state {
            Some(false) => return Some(false),
            None => result = None,
            Some(true) => {}
        }
    }
    result
}

/// Kleene disjunction.
fn or(states: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut result = Some(false);
    for state in states {
        match state {
            Some(true) => return Some(true),
            None => result = None,
            Some(false) => {}
        }
    }
    result
}

fn not(state: Option<bool>) -> Option<bool> {
    state.map(|b| !b)
}

/// What the reference knows of the world: read from the ontology files on every call.
struct World {
    /// Purpose → its direct broader purposes.
    broader: HashMap<String, Vec<String>>,
    /// Profile action → the action it is included in.
    profile_actions: HashMap<String, String>,
    /// Country concepts of the EU table.
    countries: HashSet<String>,
    /// Alpha-2 code (upper case) → country concept.
    alpha2: HashMap<String, String>,
    /// Organisation-type concept → its code.
    org_types: HashMap<String, String>,
}

impl World {
    fn read() -> Self {
        let mut world = Self {
            broader: HashMap::new(),
            profile_actions: HashMap::new(),
            countries: HashSet::new(),
            alpha2: HashMap::new(),
            org_types: HashMap::new(),
        };
        let purposes = statements(include_str!("../../ontologies/dpv-purposes.ttl"));
        let profile = statements(include_str!("../../ontologies/odrl-profile.ttl"));
        let vocabularies = statements(include_str!("../../ontologies/vocabularies.ttl"));
        for (s, p, o) in purposes.iter().chain(&profile) {
            if p == BROADER {
                world.broader.entry(s.clone()).or_default().push(o.clone());
            }
        }
        let mut org_concepts = HashSet::new();
        let mut notations: HashMap<String, String> = HashMap::new();
        for (s, p, o) in &profile {
            if p == INCLUDED_IN {
                world.profile_actions.insert(s.clone(), o.clone());
            }
            if p == IN_SCHEME && o == &format!("{AGORA_NS}OrganisationTypes") {
                org_concepts.insert(s.clone());
            }
            if p == NOTATION {
                notations.insert(s.clone(), o.clone());
            }
        }
        for concept in org_concepts {
            if let Some(code) = notations.get(&concept) {
                world.org_types.insert(concept, code.clone());
            }
        }
        let scheme = EU.trim_end_matches('/');
        for (s, p, o) in &vocabularies {
            if p == IN_SCHEME && o == scheme {
                world.countries.insert(s.clone());
            }
        }
        for (s, p, o) in &vocabularies {
            if p == NOTATION && world.countries.contains(s) {
                world.alpha2.insert(o.to_uppercase(), s.clone());
            }
        }
        world
    }

    /// Whether purpose `narrow` is `broad` or below it, by a walk over every `skos:broader`.
    fn kind_of(&self, narrow: &str, broad: &str) -> bool {
        let mut seen = HashSet::new();
        let mut stack = vec![narrow.to_owned()];
        while let Some(current) = stack.pop() {
            if current == broad {
                return true;
            }
            if seen.insert(current.clone()) {
                stack.extend(self.broader.get(&current).cloned().unwrap_or_default());
            }
        }
        false
    }

    /// The EU country concept a value names: the concept, its three-letter code, or the ISO
    /// alpha-2 code a token carries.
    fn country(&self, text: &str) -> Option<String> {
        if self.countries.contains(text) {
            return Some(text.to_owned());
        }
        let code = text.trim().to_uppercase();
        if let Some(concept) = self.alpha2.get(&code) {
            return Some(concept.clone());
        }
        let concept = format!("{EU}{code}");
        self.countries.contains(&concept).then_some(concept)
    }

    /// The organisation-type code a value names (the code itself or its concept).
    fn org_type(&self, text: &str) -> Option<String> {
        if let Some(code) = self.org_types.get(text) {
            return Some(code.clone());
        }
        self.org_types
            .values()
            .find(|code| code.as_str() == text)
            .cloned()
    }

    /// Whether the requested action `narrow` is `broad` or included in it. ODRL 2.2: every
    /// action is included in `use`, except `transfer` and what is included in it (`give`,
    /// `sell`); `display` is in `play`, `extract` in `reproduce`. Deprecated actions stand for
    /// their replacements; the profile's actions are read from the profile file.
    fn action_included(&self, narrow: &str, broad: &str) -> bool {
        let mut current = narrow.to_owned();
        let mut seen = HashSet::new();
        while seen.insert(current.clone()) {
            if current == broad {
                return true;
            }
            let parent = match current.strip_prefix(ODRL_NS) {
                Some(name) => odrl_parent(name).map(|p| format!("{ODRL_NS}{p}")),
                None => self.profile_actions.get(&current).cloned(),
            };
            match parent {
                Some(parent) => current = parent,
                None => return false,
            }
        }
        false
    }
}

/// The parent of an ODRL 2.2 action, by its local name (deprecated ones: their replacement).
fn odrl_parent(name: &str) -> Option<&'static str> {
    const UNDER_USE: &[&str] = &[
        "acceptTracking",
        "aggregate",
        "annotate",
        "anonymize",
        "archive",
        "attribute",
        "compensate",
        "concurrentUse",
        "delete",
        "derive",
        "digitize",
        "distribute",
        "ensureExclusivity",
        "execute",
        "grantUse",
        "include",
        "index",
        "inform",
        "install",
        "modify",
        "move",
        "nextPolicy",
        "obtainConsent",
        "play",
        "present",
        "print",
        "read",
        "reproduce",
        "reviewPolicy",
        "stream",
        "synchronize",
        "textToSpeech",
        "transform",
        "translate",
        "uninstall",
        "watermark",
    ];
    match name {
        "display" => Some("play"),
        "extract" => Some("reproduce"),
        "give" | "sell" => Some("transfer"),
        "append" | "appendTo" | "write" | "writeTo" => Some("modify"),
        "copy" => Some("reproduce"),
        "export" => Some("transform"),
        "license" => Some("grantUse"),
        "pay" => Some("compensate"),
        n if UNDER_USE.contains(&n) => Some("use"),
        _ => None,
    }
}

/// `(subject, predicate, object)` of a Turtle file, IRIs and literals as plain text (blank-node
/// subjects are left out).
fn statements(turtle: &str) -> Vec<(String, String, String)> {
    use oxigraph::io::{RdfFormat, RdfParser};
    use oxigraph::model::{NamedOrBlankNode, Term};
    let mut out = Vec::new();
    for quad in RdfParser::from_format(RdfFormat::Turtle)
        .for_slice(turtle.as_bytes())
        .flatten()
    {
        let NamedOrBlankNode::NamedNode(subject) = &quad.subject else {
            continue;
        };
        let object = match &quad.object {
            Term::NamedNode(n) => n.as_str().to_owned(),
            Term::Literal(l) => l.value().to_owned(),
            _ => continue,
        };
        out.push((
            subject.as_str().to_owned(),
            quad.predicate.as_str().to_owned(),
            object,
        ));
    }
    out
}

/// A value as the reference reads it.
#[derive(Debug, Clone, PartialEq)]
enum Read {
    Integer(i128),
    Float(f64),
    Instant(DateTime<Utc>),
    Day(NaiveDate),
    /// Months and seconds.
    Duration(i64, f64),
    Boolean(bool),
    Text(String),
    Iri(String),
}

fn read(value: &Value) -> Read {
    let literal = match value {
        Value::Iri(iri) => return Read::Iri(iri.as_str().to_owned()),
        Value::Literal(l) => l,
    };
    let text = literal.value();
    let datatype = literal.datatype().as_str();
    let local = datatype.strip_prefix(XSD_NS).unwrap_or("");
    let numeric = [
        "integer",
        "int",
        "long",
        "short",
        "byte",
        "nonNegativeInteger",
        "positiveInteger",
        "nonPositiveInteger",
        "negativeInteger",
        "unsignedLong",
        "unsignedInt",
        "unsignedShort",
        "unsignedByte",
        "decimal",
        "double",
        "float",
    ];
    let parsed = if numeric.contains(&local) {
        read_number(text)
    } else {
        match local {
            "dateTime" | "dateTimeStamp" => read_instant(text).map(Read::Instant),
            "date" => read_day(text).map(Read::Day),
            "duration" | "dayTimeDuration" | "yearMonthDuration" => {
                read_duration(text).map(|(m, s)| Read::Duration(m, s))
            }
            "boolean" => match text.trim() {
                "true" | "1" => Some(Read::Boolean(true)),
                "false" | "0" => Some(Read::Boolean(false)),
                _ => None,
            },
            _ => None,
        }
    };
    parsed.unwrap_or_else(|| Read::Text(text.to_owned()))
}

fn read_number(text: &str) -> Option<Read> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i128>() {
        return Some(Read::Integer(i));
    }
    let f = match text {
        "INF" | "+INF" => f64::INFINITY,
        "-INF" => f64::NEG_INFINITY,
        _ => text.parse::<f64>().ok()?,
    };
    (!f.is_nan()).then_some(Read::Float(f))
}

fn read_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| Utc.from_utc_datetime(&n))
        })
}

fn read_day(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    if !text.is_char_boundary(10.min(text.len())) {
        return None;
    }
    let (date, zone) = text.split_at(10.min(text.len()));
    let zone_ok = zone.is_empty()
        || zone == "Z"
        || (zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')));
    if !zone_ok {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

/// `-?PnYnMnWnDTnHnMnS` → (months, seconds), by hand.
fn read_duration(text: &str) -> Option<(i64, f64)> {
    let text = text.trim();
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let rest = rest.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    if date.is_empty() && time.is_none_or(str::is_empty) {
        return None;
    }
    let mut months: i64 = 0;
    let mut seconds = 0.0;
    // Designators must come in this order, each at most once.
    let mut parse_part = |part: &str, order: &[char], time: bool| -> Option<()> {
        let mut number = String::new();
        let mut next = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || (c == '.' && time) {
                number.push(c);
                continue;
            }
            let position = order.iter().position(|d| *d == c)?;
            if position < next || number.is_empty() {
                return None;
            }
            next = position + 1;
            if c != 'S' && number.contains('.') {
                return None;
            }
            let n: f64 = number.parse().ok()?;
            match (time, c) {
                (false, 'Y') => {
                    months = months.checked_add(number.parse::<i64>().ok()?.checked_mul(12)?)?
                }
                (false, 'M') => months = months.checked_add(number.parse::<i64>().ok()?)?,
                (false, 'W') => seconds += n * 604_800.0,
                (false, 'D') => seconds += n * 86_400.0,
                (true, 'H') => seconds += n * 3_600.0,
                (true, 'M') => seconds += n * 60.0,
                (true, 'S') => seconds += n,
                _ => return None,
            }
            number.clear();
        }
        number.is_empty().then_some(())
    };
    parse_part(date, &['Y', 'M', 'W', 'D'], false)?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        parse_part(time, &['H', 'M', 'S'], true)?;
    }
    Some(if negative {
        (-months, -seconds)
    } else {
        (months, seconds)
    })
}

/// Reads untyped text as the kind of value it is compared with.
fn coerce(text: &str, like: &Read) -> Option<Read> {
    match like {
        Read::Integer(_) | Read::Float(_) => read_number(text),
        Read::Instant(_) | Read::Day(_) => read_instant(text)
            .map(Read::Instant)
            .or_else(|| read_day(text).map(Read::Day)),
        Read::Duration(..) => read_duration(text).map(|(m, s)| Read::Duration(m, s)),
        Read::Boolean(_) => match text.trim() {
            "true" => Some(Read::Boolean(true)),
            "false" => Some(Read::Boolean(false)),
            _ => None,
        },
        Read::Iri(_) => Some(Read::Iri(text.to_owned())),
        Read::Text(_) => None,
    }
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// `left op right` for two values, `None` when they cannot be compared. A day on the right of
/// an instant is the interval it covers.
fn compare(op: Operator, left: &Value, right: &Value) -> Option<bool> {
    let (mut a, mut b) = (read(left), read(right));
    if let Read::Text(t) = &a
        && !matches!(b, Read::Text(_))
        && let Some(c) = coerce(t, &b)
    {
        a = c;
    } else if let Read::Text(t) = &b
        && !matches!(a, Read::Text(_))
        && let Some(c) = coerce(t, &a)
    {
        b = c;
    }
    use std::cmp::Ordering::{Equal, Greater, Less};
    if let (Read::Instant(x), Read::Day(d)) = (&a, &b) {
        let start = midnight(*d);
        let end = d.succ_opt().map_or(start, midnight);
        return Some(match op {
            Operator::Eq => *x >= start && *x < end,
            Operator::Lt => *x < start,
            Operator::Lteq => *x < end,
            Operator::Gt => *x >= end,
            Operator::Gteq => *x >= start,
            _ => return None,
        });
    }
    let order = match (&a, &b) {
        (Read::Integer(x), Read::Integer(y)) => x.cmp(y),
        (Read::Integer(_) | Read::Float(_), Read::Integer(_) | Read::Float(_)) => {
            let f = |r: &Read| match r {
                Read::Integer(i) => *i as f64,
                Read::Float(f) => *f,
                _ => f64::NAN,
            };
            f(&a).partial_cmp(&f(&b))?
        }
        (Read::Instant(x), Read::Instant(y)) => x.cmp(y),
        (Read::Day(x), Read::Day(y)) => x.cmp(y),
        (Read::Day(x), Read::Instant(y)) => midnight(*x).cmp(y),
        (Read::Duration(m1, s1), Read::Duration(m2, s2)) => {
            let month = 365.2425 * 86_400.0 / 12.0;
            (*m1 as f64 * month + s1).partial_cmp(&(*m2 as f64 * month + s2))?
        }
        (Read::Boolean(x), Read::Boolean(y)) => x.cmp(y),
        (Read::Text(x), Read::Text(y)) | (Read::Iri(x), Read::Iri(y)) => x.cmp(y),
        _ => return None,
    };
    Some(match op {
        Operator::Eq => order == Equal,
        Operator::Lt => order == Less,
        Operator::Lteq => order != Greater,
        Operator::Gt => order == Greater,
        Operator::Gteq => order != Less,
        _ => return None,
    })
}

/// What the request says about a left operand.
enum Operand {
    Values(Vec<Value>),
    Unknown,
    /// Enforced on every release by the data plane (`agora:minGroupSize`): holds for the decision.
    DataPlane,
}

struct Oracle<'a> {
    request: &'a Request,
    now: DateTime<Utc>,
    world: &'static World,
}

/// The ontologies, read once by the reference itself.
static WORLD: std::sync::LazyLock<World> = std::sync::LazyLock::new(World::read);

impl<'a> Oracle<'a> {
    fn new(request: &'a Request, now: DateTime<Utc>) -> Self {
        Self {
            request,
            now,
            world: &WORLD,
        }
    }

    /// Target, assignee, action, refinements, constraints: all must hold.
    fn premises(&self, rule: &Rule) -> Option<bool> {
        let mut states = Vec::new();
        if let Some(target) = &rule.target {
            states.push(self.covers(target, self.request.target.as_ref().map(|n| n.as_str())));
        }
        if let Some(assignee) = &rule.assignee {
            states.push(self.covers(assignee, self.request.party.as_ref().map(|n| n.as_str())));
        }
        if let Some(action) = &rule.action {
            states.push(Some(self.world.action_included(
                self.request.action.as_str(),
                action.name.as_str(),
            )));
            states.extend(action.refinements.iter().map(|c| self.constraint(c)));
        }
        states.extend(rule.constraints.iter().map(|c| self.constraint(c)));
        and(states)
    }

    /// Whether `candidate` is the entity or one of its members, and meets its refinements.
    fn covers(&self, entity: &Entity, candidate: Option<&str>) -> Option<bool> {
        let refinements = and(entity.refinements.iter().map(|c| self.constraint(c)));
        let named: Vec<&str> = entity
            .uid
            .iter()
            .chain(&entity.source)
            .map(|n| n.as_str())
            .collect();
        if named.is_empty() {
            return refinements;
        }
        let member = candidate.map(|c| named.iter().any(|n| *n == c || self.member_of(c, n)));
        and([member, refinements])
    }

    /// Transitive membership according to the request's facts.
    fn member_of(&self, member: &str, collection: &str) -> bool {
        let mut reached: HashSet<&str> = HashSet::from([member]);
        loop {
            let before = reached.len();
            for (m, c) in &self.request.facts.part_of {
                if reached.contains(m.as_str()) {
                    reached.insert(c.as_str());
                }
            }
            if reached.contains(collection) && collection != member {
                return true;
            }
            if reached.len() == before {
                return false;
            }
        }
    }

    fn constraint(&self, constraint: &Constraint) -> Option<bool> {
        match constraint {
            Constraint::Atomic(atomic) => self.atomic(atomic),
            Constraint::Logical(logical) => {
                let states: Vec<Option<bool>> = logical
                    .operands
                    .iter()
                    .map(|c| self.constraint(c))
                    .collect();
                match logical.operator {
                    LogicalOperator::And | LogicalOperator::AndSequence => and(states),
                    LogicalOperator::Or => or(states),
                    LogicalOperator::Xone => {
                        let yes = states.iter().filter(|s| **s == Some(true)).count();
                        let unknown = states.iter().filter(|s| s.is_none()).count();
                        if yes > 1 {
                            Some(false)
                        } else if unknown > 0 {
                            None
                        } else {
                            Some(yes == 1)
                        }
                    }
                }
            }
        }
    }

    fn operand(&self, left: &str) -> Operand {
        let request = self.request;
        let claim = |name: &str| -> Operand {
            let values: Vec<Value> = match request.claims.get(name) {
                Some(Json::String(s)) => vec![Value::string(s.as_str())],
                Some(Json::Number(n)) => vec![Value::string(n.to_string())],
                Some(Json::Bool(b)) => vec![Value::string(b.to_string())],
                Some(Json::Array(items)) => items
                    .iter()
                    .filter_map(|item| match item {
                        Json::String(s) => Some(Value::string(s.as_str())),
                        Json::Number(n) => Some(Value::string(n.to_string())),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if values.is_empty() {
                Operand::Unknown
            } else {
                Operand::Values(values)
            }
        };
        let integer = |n: u64| {
            Value::Literal(oxigraph::model::Literal::new_typed_literal(
                n.to_string(),
                oxigraph::model::NamedNode::new_unchecked(format!("{XSD_NS}integer")),
            ))
        };
        if let Some(name) = left.strip_prefix(ODRL_NS) {
            match name {
                "dateTime" | "elapsedTime" => return Operand::Values(Vec::new()),
                "count" => {
                    return Operand::Values(vec![integer(request.usage.pulls.saturating_add(1))]);
                }
                "purpose" => {
                    return request.purpose.as_ref().map_or(Operand::Unknown, |p| {
                        Operand::Values(vec![Value::Iri(p.clone())])
                    });
                }
                "spatial" => return claim("country"),
                "recipient" => {
                    let mut values = Vec::new();
                    if let Some(party) = &request.party {
                        values.push(Value::Iri(party.clone()));
                    }
                    if let Some(Json::String(sub)) = request.claims.get("sub") {
                        values.push(Value::string(sub.as_str()));
                    }
                    return if values.is_empty() {
                        Operand::Unknown
                    } else {
                        Operand::Values(values)
                    };
                }
                _ => {}
            }
        }
        if let Some(name) = left.strip_prefix(AGORA_NS) {
            match name {
                "country" => return claim("country"),
                "orgType" => return claim("org_type"),
                "minGroupSize" => return Operand::DataPlane,
                "rowBudget" => return Operand::Values(vec![integer(request.usage.rows_released)]),
                "byteBudget" => {
                    return Operand::Values(vec![integer(request.usage.bytes_released)]);
                }
                _ => {}
            }
        }
        match request
            .facts
            .operands
            .iter()
            .find(|(operand, _)| operand.as_str() == left)
        {
            Some((_, values)) if !values.is_empty() => Operand::Values(values.clone()),
            _ => Operand::Unknown,
        }
    }

    fn atomic(&self, c: &AtomicConstraint) -> Option<bool> {
        let left = c.left_operand.as_str();
        let RightOperand::Values(right) = &c.right_operand else {
            // The reference does not dereference right operands; neither may the node decide on one.
            return match self.operand(left) {
                Operand::DataPlane => Some(true),
                _ => None,
            };
        };
        let lefts = match self.operand(left) {
            Operand::DataPlane => return Some(true),
            Operand::Unknown => return None,
            Operand::Values(values) => values,
        };
        if left == format!("{ODRL_NS}elapsedTime") {
            return self.elapsed(c.operator, right);
        }
        if left == format!("{ODRL_NS}dateTime") {
            let now = Value::Literal(oxigraph::model::Literal::new_typed_literal(
                self.now.to_rfc3339(),
                oxigraph::model::NamedNode::new_unchecked(format!("{XSD_NS}dateTime")),
            ));
            return self.apply(c.operator, left, &[now], right);
        }
        self.apply(c.operator, left, &lefts, right)
    }

    /// `elapsedTime op duration`: the clock against the agreement's start plus the duration.
    fn elapsed(&self, op: Operator, right: &[Value]) -> Option<bool> {
        let start = self.request.usage.agreed_at.unwrap_or(self.now);
        let ([r], Operator::Lt | Operator::Lteq | Operator::Gt | Operator::Gteq) = (right, op)
        else {
            // Equality and sets: the time elapsed, as a duration, against the durations.
            let elapsed = Value::Literal(oxigraph::model::Literal::new_typed_literal(
                format!(
                    "PT{}S",
                    (self.now - start).num_milliseconds() as f64 / 1000.0
                ),
                oxigraph::model::NamedNode::new_unchecked(format!("{XSD_NS}duration")),
            ));
            return self.apply(op, "", &[elapsed], right);
        };
        let (months, seconds) = match read(r) {
            Read::Duration(m, s) => (m, s),
            Read::Text(t) => read_duration(&t)?,
            _ => return None,
        };
        let moved = if months >= 0 {
            start.checked_add_months(Months::new(u32::try_from(months).ok()?))?
        } else {
            start.checked_sub_months(Months::new(u32::try_from(-months).ok()?))?
        };
        let millis = (seconds * 1000.0).round();
        if !millis.is_finite() || millis.abs() > 1e15 {
            return None;
        }
        let end = moved.checked_add_signed(chrono::Duration::milliseconds(millis as i64))?;
        match op {
            Operator::Lt => Some(self.now < end),
            Operator::Lteq => Some(self.now <= end),
            Operator::Gt => Some(self.now > end),
            _ => Some(self.now >= end),
        }
    }

    /// Whether left value `l` is (a kind of) right value `r` for this operand.
    fn same(&self, left_operand: &str, l: &Value, r: &Value) -> Option<bool> {
        if left_operand == format!("{ODRL_NS}purpose") {
            return Some(match (l, r) {
                (Value::Iri(a), Value::Iri(b)) => self.world.kind_of(a.as_str(), b.as_str()),
                _ => l.lexical() == r.lexical(),
            });
        }
        if is_country(left_operand) {
            let a = self
                .world
                .country(l.lexical())
                .unwrap_or_else(|| l.lexical().to_owned());
            let b = self
                .world
                .country(r.lexical())
                .unwrap_or_else(|| r.lexical().to_owned());
            return Some(a == b);
        }
        if left_operand == format!("{AGORA_NS}orgType") {
            let a = self
                .world
                .org_type(l.lexical())
                .unwrap_or_else(|| l.lexical().to_owned());
            let b = self
                .world
                .org_type(r.lexical())
                .unwrap_or_else(|| r.lexical().to_owned());
            return Some(a == b);
        }
        if let (Value::Iri(a), Value::Iri(b)) = (l, r) {
            return Some(a == b);
        }
        compare(Operator::Eq, l, r)
    }

    /// Whether `part` is part of `whole` for this operand.
    fn part(&self, left_operand: &str, part: &Value, whole: &Value) -> Option<bool> {
        if is_country(left_operand) {
            let p = self.world.country(part.lexical())?;
            let w = self.world.country(whole.lexical())?;
            return Some(p == w || (w == format!("{EU}EUR") && self.world.countries.contains(&p)));
        }
        if left_operand == format!("{ODRL_NS}purpose") {
            return self.same(left_operand, part, whole);
        }
        match (part, whole) {
            (Value::Iri(p), Value::Iri(w)) => {
                Some(p == w || self.member_of(p.as_str(), w.as_str()))
            }
            _ => self.same(left_operand, part, whole),
        }
    }

    /// An operator over the operand's values (some value must satisfy it) and the right values.
    fn apply(&self, op: Operator, operand: &str, lefts: &[Value], right: &[Value]) -> Option<bool> {
        let some_left = |test: &dyn Fn(&Value) -> Option<bool>| or(lefts.iter().map(test));
        match op {
            Operator::IsAnyOf => or(right
                .iter()
                .map(|r| some_left(&|l| self.same(operand, l, r)))),
            Operator::IsNoneOf => not(or(right
                .iter()
                .map(|r| some_left(&|l| self.same(operand, l, r))))),
            Operator::IsAllOf => and(right
                .iter()
                .map(|r| some_left(&|l| self.same(operand, l, r)))),
            _ => {
                let [r] = right else { return None };
                match op {
                    Operator::Eq | Operator::IsA => some_left(&|l| self.same(operand, l, r)),
                    Operator::Neq => not(some_left(&|l| self.same(operand, l, r))),
                    Operator::IsPartOf => some_left(&|l| self.part(operand, l, r)),
                    Operator::HasPart => some_left(&|l| self.part(operand, r, l)),
                    _ => some_left(&|l| compare(op, l, r)),
                }
            }
        }
    }
}

fn is_country(left_operand: &str) -> bool {
    left_operand == format!("{ODRL_NS}spatial") || left_operand == format!("{AGORA_NS}country")
}

#[cfg(test)]
mod tests;
