//! Conformance of the policy evaluator with the public ODRL evaluation suites, driven by their
//! own files (pure library tests: no server is started):
//!
//! - the SolidLab ODRL test suite (`solidlab-odrl-test-suite/data`): `index.ttl` lists 68 cases,
//!   each a policy, an ODRL request, a state of the world and an expected compliance report in
//!   the ODRL Compliance Report Model. Reports are compared as the suite's own comparators do
//!   (`src/TestCaseEvaluator.ts` upstream): "Rule-Activation-similarity" (the rule report's rule,
//!   requested rule, attempt and activation states) and "Rule-Activation-Constraint-satisfaction-
//!   similarity" (that, plus the satisfaction state of every target, party, action and constraint
//!   report reachable from the expected report, and the same number of them).
//! - the W3C ODRL Community Group formal-semantics examples (`w3c-odrl-cg/formal-semantics/
//!   examples`): every folder with an `evaluationrequest*.json` is a case, with the `policy*.json`
//!   of its parent folder, an optional `state*.json` and the expected `compliancereport*.json`.
//!   The activation and control state of each expected rule report and the satisfaction state of
//!   each expected constraint report are compared.
//!
//! The cases that do not pass are listed below with the reason, and the tests fail if that list
//! is not exactly the set of failures, so that it stays true.

use crate::common::{reference_dir, repo_root};
use agora::clock::{ManualClock, SharedClock};
use agora::policy::{
    ConstraintReport, Decision, DutyState, Evaluator, Facts, ParseOptions, Policy, ReportOptions,
    Request, Satisfaction, compliance_report, parse, parse_with, to_json_ld_string,
    validate_for_dataset,
};
use agora::rdf_input::RdfSyntax;
use chrono::{DateTime, Utc};
use oxigraph::io::{JsonLdProfileSet, LoadedDocument, RdfFormat, RdfParser};
use oxigraph::model::{Graph, NamedNode, NamedOrBlankNode, Term, Triple};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

// Results (see the report in the test output):
//   SolidLab ODRL test suite: 68/68 Rule-Activation-similarity,
//                             67/68 Rule-Activation-Constraint-satisfaction-similarity.
//   W3C ODRL CG formal-semantics examples: 3/9.
// Upstream's reference evaluator scores 67/68 and 66/68 on the same SolidLab comparisons (it
// fails testcase-061, a permission whose duty was violated, which this evaluator deactivates).

/// SolidLab cases that do not pass the Rule-Activation-similarity comparison, with the reason.
const SOLIDLAB_ACTIVATION_SKIPS: &[(&str, &str)] = &[];

/// SolidLab cases that pass the activation comparison but not the constraint-satisfaction one.
const SOLIDLAB_CONSTRAINT_SKIPS: &[(&str, &str)] = &[(
    "testcase-065-alice",
    // The expected report's rule report refers to premise reports (urn:uuid:0c017c57…,
    // 13a0c82c…, c2b3c9bb…, and for the `and` constraint a6440c0d…, b31d5908…) that the file
    // never describes; it describes the target, party, action and time-constraint reports under
    // other IRIs that nothing refers to. Read as the suite reads it (what is reachable from the
    // report), the expected report has 1 premise report (the `and`) where every evaluator has 6.
    // The upstream evaluator fails this comparison for the same reason.
    "the expected report's premise reports are unreachable (dangling IRIs in the test file)",
)];

/// W3C formal-semantics examples that do not pass, with the reason. C11 passes on the outcome
/// (Inactive, Deny) but for another reason than the example's: its request names the party
/// `…/party/billie1`, not the assignee `…/party/billie`. With that corrected, C12 passes and
/// C11 does not: the example deactivates a permission whose duty is not yet fulfilled, while
/// this evaluator (like the SolidLab suite, cases 059 and 065) keeps it active until the duty
/// is violated, and denies for the unfulfilled duty through the plan instead (Deny either way).
const W3C_SKIPS: &[(&str, &str)] = &[
    (
        "B11",
        // The request writes the resolution as {"@id": "1000", "@type": "xsd:integer"}: a node
        // (an IRI relative to the file), not a literal; and it names it by the feature
        // dbpedia:Dots_per_inch (the refinement's unit), not by the left operand odrl:resolution.
        "the request gives no value of odrl:resolution: a node {\"@id\": \"1000\"} under the unit's IRI",
    ),
    (
        "B12",
        // As B11 ({"@id": "1300"}); the expected report also pairs an Active rule with Deny.
        "the request gives no value of odrl:resolution: a node {\"@id\": \"1300\"} under the unit's IRI",
    ),
    (
        "C12",
        // The agreement is with …/party/billie; the request is from …/party/billie1, and the
        // expected report grants it. With billie, the recorded payment (sotw:conditionId of
        // the duty) fulfils the duty and the case passes.
        "the evaluated party billie1 is not the agreement's assignee billie",
    ),
    (
        "C21",
        // The duty's constraint tests `ex:dayOfWeek`: not an ODRL or profile left operand, and
        // not even a prefixed name (the policy's context has no `ex`), so the IRI is literally
        // ex:dayOfWeek, and the request gives no value for it. Also billie1 as in C12.
        "the duty's constraint tests ex:dayOfWeek, which nothing defines or gives a value for; party billie1",
    ),
    (
        "C22",
        "the duty's constraint tests ex:dayOfWeek, which nothing defines or gives a value for",
    ),
    (
        "C23",
        "the duty's constraint tests ex:dayOfWeek, which nothing defines or gives a value for; party billie1",
    ),
];

const ODRL: &str = "http://www.w3.org/ns/odrl/2/";
const FORCE_REPORT: &str = "https://w3id.org/force/compliance-report#";
const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";

fn named(iri: &str) -> NamedNode {
    NamedNode::new_unchecked(iri)
}

/// The triples of a file, with the contexts the suites refer to served locally.
fn read_rdf(path: &Path, format: RdfFormat) -> Result<Vec<Triple>, String> {
    let body = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reference = reference_dir("policy contexts").unwrap_or_default();
    let ontology = reference.join("w3c-odrl-cg/formal-semantics/ontology");
    let base = format!("file://{}", path.display()).replace(' ', "%20");
    let parser = RdfParser::from_format(format)
        .with_base_iri(&base)
        .map_err(|e| e.to_string())?;
    let mut triples = Vec::new();
    let quads = parser.for_slice(&body).with_document_loader(move |url| {
        let file = match url {
            "http://www.w3.org/ns/odrl.jsonld" => {
                repo_root().join("ontologies/odrl-context.jsonld")
            }
            u if u.ends_with("/formal-semantics/ontology/evaluation_request.json") => {
                ontology.join("evaluation_request.json")
            }
            u if u.ends_with("/formal-semantics/ontology/stow.json") => ontology.join("stow.json"),
            other => return Err(format!("no local copy of {other}").into()),
        };
        Ok(LoadedDocument {
            url: url.to_owned(),
            content: std::fs::read(file)?,
            format: RdfFormat::JsonLd {
                profile: JsonLdProfileSet::empty(),
            },
        })
    });
    for quad in quads {
        triples.push(Triple::from(
            quad.map_err(|e| format!("{}: {e}", path.display()))?,
        ));
    }
    Ok(triples)
}

fn graph_of(triples: &[Triple]) -> Graph {
    triples.iter().collect()
}

fn objects(graph: &Graph, subject: &NamedOrBlankNode, predicate: &str) -> Vec<Term> {
    graph
        .objects_for_subject_predicate(subject, &named(predicate))
        .map(|t| t.into_owned())
        .collect()
}

fn object(graph: &Graph, subject: &NamedOrBlankNode, predicate: &str) -> Option<Term> {
    objects(graph, subject, predicate).into_iter().next()
}

fn subject_of(term: &Term) -> Option<NamedOrBlankNode> {
    match term {
        Term::NamedNode(n) => Some(NamedOrBlankNode::NamedNode(n.clone())),
        Term::BlankNode(b) => Some(NamedOrBlankNode::BlankNode(b.clone())),
        _ => None,
    }
}

fn iri_of(term: &Term) -> Option<String> {
    match term {
        Term::NamedNode(n) => Some(n.as_str().to_owned()),
        Term::Literal(l) => Some(l.value().to_owned()),
        _ => None,
    }
}

fn evaluator_at(at: DateTime<Utc>) -> Evaluator {
    let clock: SharedClock = Arc::new(ManualClock::new(at));
    Evaluator::new(clock)
}

fn parse_options() -> ParseOptions {
    ParseOptions::default()
}

/// The one permission of an ODRL request: what is asked, by whom, on what.
fn request_from(policy: &Policy) -> Result<(Request, Option<NamedNode>), String> {
    let rule = policy
        .permissions
        .first()
        .ok_or("the request has no permission")?;
    let action = rule
        .action
        .as_ref()
        .map(|a| a.name.clone())
        .ok_or("the request names no action")?;
    let mut request = Request::new(action);
    request.target = rule.target.as_ref().and_then(|t| t.uid.clone());
    request.party = rule.assignee.as_ref().and_then(|p| p.uid.clone());
    Ok((request, rule.uid.clone()))
}

// ---------------------------------------------------------------------------------------------
// SolidLab ODRL test suite
// ---------------------------------------------------------------------------------------------

struct SolidLabCase {
    id: String,
    name: String,
    policy: PathBuf,
    request: PathBuf,
    sotw: PathBuf,
    expected: PathBuf,
}

/// The cases of `index.ttl`, with their upstream URLs mapped to the local copy.
fn solidlab_cases(data: &Path) -> Vec<SolidLabCase> {
    const UPSTREAM: &str =
        "https://raw.githubusercontent.com/SolidLabResearch/ODRL-Test-Suite/refs/heads/main/data/";
    let triples = read_rdf(&data.join("index.ttl"), RdfFormat::Turtle).expect("index.ttl parses");
    let graph = graph_of(&triples);
    let local = |term: Option<Term>| -> PathBuf {
        let url = term.as_ref().and_then(iri_of).unwrap_or_default();
        data.join(url.strip_prefix(UPSTREAM).unwrap_or(&url))
    };
    let mut cases = Vec::new();
    let subjects: Vec<NamedOrBlankNode> = graph
        .triples_for_predicate(&named("http://example.org/policySource"))
        .map(|t| t.subject.into_owned())
        .collect();
    for subject in subjects {
        let expected = local(object(
            &graph,
            &subject,
            "http://example.org/expectedReportSource",
        ));
        let name = expected
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        cases.push(SolidLabCase {
            id: subject.to_string(),
            name,
            policy: local(object(&graph, &subject, "http://example.org/policySource")),
            request: local(object(&graph, &subject, "http://example.org/requestSource")),
            sotw: local(object(&graph, &subject, "http://example.org/sotwSource")),
            expected,
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// The state of the world: the current time, memberships and earlier duty reports.
fn solidlab_world(path: &Path) -> Result<(DateTime<Utc>, Facts), String> {
    let triples = read_rdf(path, RdfFormat::Turtle)?;
    let graph = graph_of(&triples);
    let now = object(
        &graph,
        &NamedOrBlankNode::NamedNode(named("http://example.com/request/currentTime")),
        "http://purl.org/dc/terms/issued",
    )
    .and_then(|t| iri_of(&t))
    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
    .map(|t| t.with_timezone(&Utc))
    .ok_or("the state of the world has no current time")?;
    let mut facts = Facts::default();
    for triple in graph.triples_for_predicate(&named(&format!("{ODRL}partOf"))) {
        if let (NamedOrBlankNode::NamedNode(member), oxigraph::model::TermRef::NamedNode(c)) =
            (triple.subject.into_owned(), triple.object)
        {
            facts.part_of.push((member, c.into_owned()));
        }
    }
    for triple in graph.triples_for_predicate(&named(&format!("{FORCE_REPORT}deonticState"))) {
        let report = triple.subject.into_owned();
        let state = match iri_of(&triple.object.into_owned()).as_deref() {
            Some(s) if s.ends_with("#Fulfilled") => DutyState::Fulfilled,
            Some(s) if s.ends_with("#Violated") => DutyState::Violated,
            _ => DutyState::NotSet,
        };
        if let Some(Term::NamedNode(rule)) = object(&graph, &report, &format!("{FORCE_REPORT}rule"))
        {
            facts.duty_states.insert(rule, state);
        }
    }
    Ok((now, facts))
}

/// The triples reachable from `root` through IRIs (the suite's `extractGraph`).
fn extract(graph: &Graph, root: &NamedNode) -> Graph {
    let mut out = Graph::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut stack = vec![root.clone()];
    while let Some(node) = stack.pop() {
        if !seen.insert(node.as_str().to_owned()) {
            continue;
        }
        for triple in graph.triples_for_subject(&node) {
            out.insert(triple);
            if let oxigraph::model::TermRef::NamedNode(next) = triple.object
                && !seen.contains(next.as_str())
            {
                stack.push(next.into_owned());
            }
        }
    }
    out
}

/// What the comparators read from one compliance report.
#[derive(Debug)]
struct RuleView {
    rule: Option<String>,
    rule_request: Option<String>,
    attempt: Option<String>,
    activation: Option<String>,
}

fn force(local: &str) -> String {
    format!("{FORCE_REPORT}{local}")
}

/// The single rule report of a policy report (the suite expects exactly one).
fn rule_view(graph: &Graph) -> Result<RuleView, String> {
    let reports: Vec<_> = graph
        .subjects_for_predicate_object(&named(RDF_TYPE), &named(&force("PolicyReport")))
        .collect();
    let [report] = reports.as_slice() else {
        return Err(format!("{} policy reports", reports.len()));
    };
    let report = report.into_owned();
    let rules = objects(graph, &report, &force("ruleReport"));
    let [rule] = rules.as_slice() else {
        return Err(format!("{} rule reports", rules.len()));
    };
    let rule = subject_of(rule).ok_or("a literal rule report")?;
    let one = |p: &str| -> Result<Option<String>, String> {
        let values = objects(graph, &rule, &force(p));
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.first().and_then(iri_of)),
            n => Err(format!("{n} values of {p}")),
        }
    };
    Ok(RuleView {
        rule: one("rule")?,
        rule_request: one("ruleRequest")?,
        attempt: one("attemptState")?,
        activation: one("activationState")?,
    })
}

/// Satisfaction states by (report class, referenced constraint).
type PremiseStates = BTreeMap<(String, Option<String>), Option<String>>;

/// The premise reports (target, action, party, constraint) of a report and their states.
fn premise_states(graph: &Graph) -> Result<(usize, PremiseStates), String> {
    let mut count = 0;
    let mut states = BTreeMap::new();
    for class in [
        "TargetReport",
        "ActionReport",
        "PartyReport",
        "ConstraintReport",
    ] {
        for subject in graph.subjects_for_predicate_object(&named(RDF_TYPE), &named(&force(class)))
        {
            let subject = subject.into_owned();
            count += 1;
            let constraint = if class == "ConstraintReport" {
                object(graph, &subject, &force("constraint")).and_then(|t| iri_of(&t))
            } else {
                None
            };
            let state =
                object(graph, &subject, &force("satisfactionState")).and_then(|t| iri_of(&t));
            if states
                .insert((class.to_owned(), constraint.clone()), state)
                .is_some()
            {
                return Err(format!("several {class} reports for {constraint:?}"));
            }
        }
    }
    Ok((count, states))
}

enum Verdict {
    Pass,
    ActivationOnly(String),
    Fail(String),
}

fn run_solidlab_case(case: &SolidLabCase) -> Verdict {
    let outcome = (|| -> Result<Verdict, String> {
        let policy = parse_with(
            &std::fs::read(&case.policy).map_err(|e| e.to_string())?,
            RdfSyntax::Turtle,
            &parse_options(),
        )
        .map_err(|e| format!("policy: {e}"))?;
        let request_policy = parse_with(
            &std::fs::read(&case.request).map_err(|e| e.to_string())?,
            RdfSyntax::Turtle,
            &parse_options(),
        )
        .map_err(|e| format!("request: {e}"))?;
        let (mut request, rule_request) = request_from(&request_policy)?;
        let (now, facts) = solidlab_world(&case.sotw)?;
        request.facts = facts;
        let decision = evaluator_at(now).evaluate(&policy, &request);
        let ours = compliance_report(
            &decision,
            &ReportOptions {
                report: None,
                request: Some(request_policy.uid.clone()),
                rule_request,
            },
        );
        let expected_file = graph_of(&read_rdf(&case.expected, RdfFormat::Turtle)?);
        let report_iri = expected_file
            .object_for_subject_predicate(
                &named(case.id.trim_matches(['<', '>'])),
                &named("http://example.org/expectedReport"),
            )
            .and_then(|t| match t {
                oxigraph::model::TermRef::NamedNode(n) => Some(n.into_owned()),
                _ => None,
            })
            .ok_or("the test case names no expected report")?;
        let expected = extract(&expected_file, &report_iri);
        let (a, b) = (rule_view(&expected)?, rule_view(&ours)?);
        let same_activation = a.activation == b.activation
            && a.attempt == b.attempt
            && a.rule == b.rule
            && a.rule_request == b.rule_request;
        if !same_activation {
            return Ok(Verdict::Fail(format!(
                "expected {:?}, evaluated {:?}; {}",
                a,
                b,
                decision
                    .rules
                    .first()
                    .map_or(String::new(), |r| r.explanation.clone())
            )));
        }
        let (expected_count, expected_states) = premise_states(&expected)?;
        let (our_count, our_states) = premise_states(&ours)?;
        if expected_count != our_count {
            return Ok(Verdict::ActivationOnly(format!(
                "the expected report has {expected_count} premise reports, ours {our_count}"
            )));
        }
        for (key, state) in &expected_states {
            if our_states.get(key) != Some(state) {
                return Ok(Verdict::ActivationOnly(format!(
                    "{key:?}: expected {state:?}, evaluated {:?}",
                    our_states.get(key)
                )));
            }
        }
        Ok(Verdict::Pass)
    })();
    outcome.unwrap_or_else(Verdict::Fail)
}

#[test]
fn solidlab_odrl_test_suite() {
    let Some(reference) = reference_dir("SolidLab ODRL test suite") else {
        return;
    };
    let data = reference.join("solidlab-odrl-test-suite/data");
    let cases = solidlab_cases(&data);
    assert_eq!(cases.len(), 68, "index.ttl lists 68 cases");
    let mut activation_failures = BTreeMap::new();
    let mut constraint_failures = BTreeMap::new();
    for case in &cases {
        match run_solidlab_case(case) {
            Verdict::Pass => {}
            Verdict::ActivationOnly(why) => {
                constraint_failures.insert(case.name.clone(), why);
            }
            Verdict::Fail(why) => {
                activation_failures.insert(case.name.clone(), why.clone());
                constraint_failures.insert(case.name.clone(), why);
            }
        }
    }
    let activation_pass = cases.len() - activation_failures.len();
    let constraint_pass = cases.len() - constraint_failures.len();
    eprintln!(
        "SolidLab ODRL test suite: {activation_pass}/{} (Rule-Activation-similarity), {constraint_pass}/{} (Rule-Activation-Constraint-satisfaction-similarity)",
        cases.len(),
        cases.len()
    );
    for (name, why) in &constraint_failures {
        eprintln!("  not passing: {name}: {why}");
    }
    let listed: BTreeSet<&str> = SOLIDLAB_ACTIVATION_SKIPS.iter().map(|(n, _)| *n).collect();
    let failing: BTreeSet<&str> = activation_failures.keys().map(String::as_str).collect();
    assert_eq!(
        failing, listed,
        "the activation skip list must be the failures"
    );
    let listed: BTreeSet<&str> = SOLIDLAB_ACTIVATION_SKIPS
        .iter()
        .chain(SOLIDLAB_CONSTRAINT_SKIPS)
        .map(|(n, _)| *n)
        .collect();
    let failing: BTreeSet<&str> = constraint_failures.keys().map(String::as_str).collect();
    assert_eq!(
        failing, listed,
        "the constraint skip lists must be the failures"
    );
}

// ---------------------------------------------------------------------------------------------
// W3C ODRL CG formal-semantics examples
// ---------------------------------------------------------------------------------------------

fn files_starting(folder: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| e == "json")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().to_lowercase().starts_with(prefix))
        })
        .collect();
    files.sort();
    files
}

fn case_folders(root: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for dir in entries {
        if !files_starting(&dir, "evaluationrequest").is_empty() {
            found.push(dir.clone());
        }
        case_folders(&dir, found);
    }
}

const SOTW: &str = "https://w3id.org/force/sotw#";

/// The local name of a state written as a string (`"report:Not-Satisfied"`) or an IRI.
fn state_name(value: &str) -> String {
    let name = value.rsplit([':', '/', '#']).next().unwrap_or(value);
    match name {
        "Not-Satisfied" | "NotSatisfied" => "Unsatisfied".into(),
        other => other.to_owned(),
    }
}

fn find_constraint<'a>(reports: &'a [ConstraintReport], uid: &str) -> Option<&'a ConstraintReport> {
    for report in reports {
        if report.uid.as_ref().is_some_and(|u| u.as_str() == uid) {
            return Some(report);
        }
        if let agora::policy::ConstraintDetail::Logical { operands, .. } = &report.detail
            && let Some(found) = find_constraint(operands, uid)
        {
            return Some(found);
        }
    }
    None
}

fn all_constraint_reports(decision: &Decision) -> Vec<ConstraintReport> {
    let mut all = Vec::new();
    for rule in &decision.rules {
        all.extend(rule.refinements.iter().cloned());
        all.extend(rule.constraints.iter().cloned());
        for duty in &rule.duties {
            all.extend(duty.constraints.iter().cloned());
        }
    }
    all
}

fn run_w3c_case(folder: &Path) -> Result<(), String> {
    let parent = folder.parent().ok_or("no parent folder")?;
    let policy_file = files_starting(parent, "policy")
        .into_iter()
        .next()
        .ok_or("no policy in the parent folder")?;
    let policy = parse_with(
        &std::fs::read(&policy_file).map_err(|e| e.to_string())?,
        RdfSyntax::JsonLd,
        &parse_options(),
    )
    .map_err(|e| format!("policy: {e}"))?;
    let json_ld = RdfFormat::JsonLd {
        profile: JsonLdProfileSet::empty(),
    };
    // The evaluation request.
    let request_file = files_starting(folder, "evaluationrequest")
        .into_iter()
        .next()
        .ok_or("no evaluation request")?;
    let graph = graph_of(&read_rdf(&request_file, json_ld)?);
    let root = graph
        .subjects_for_predicate_object(
            &named(RDF_TYPE),
            &named(&format!("{SOTW}EvaluationRequest")),
        )
        .next()
        .map(|s| s.into_owned())
        .ok_or("no sotw:EvaluationRequest")?;
    let iri = |p: &str| -> Option<NamedNode> {
        match object(&graph, &root, &format!("{SOTW}{p}")) {
            Some(Term::NamedNode(n)) => Some(n),
            _ => None,
        }
    };
    let mut request = Request::new(iri("evaluatedAction").ok_or("no evaluated action")?);
    request.party = iri("evaluatedParty");
    request.target = iri("evaluatedTarget");
    // Without a time parameter the evaluation runs at the Unix epoch; no such example has a
    // time constraint.
    let mut now = DateTime::<Utc>::UNIX_EPOCH;
    for parameter in objects(&graph, &root, &format!("{SOTW}requestParameter")) {
        let parameter = subject_of(&parameter).ok_or("a literal request parameter")?;
        let feature = object(&graph, &parameter, &format!("{SOTW}describesFeature"));
        let value = object(&graph, &parameter, &format!("{SOTW}value"));
        match (feature, value) {
            (Some(Term::NamedNode(f)), Some(Term::Literal(v)))
                if f.as_str() == format!("{SOTW}CurrentXSDDateTime") =>
            {
                let text = v.value();
                now = DateTime::parse_from_rfc3339(text)
                    .map(|t| t.with_timezone(&Utc))
                    .or_else(|_| {
                        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
                            .map(|n| n.and_utc())
                    })
                    .map_err(|e| format!("time {text}: {e}"))?;
            }
            (Some(Term::NamedNode(f)), Some(Term::Literal(v))) => {
                request
                    .facts
                    .operands
                    .insert(f, vec![agora::policy::Value::Literal(v)]);
            }
            (feature, value) => {
                return Err(format!(
                    "request parameter {feature:?} has no literal value ({value:?})"
                ));
            }
        }
    }
    // The state of the world: recorded performances of conditions (duties).
    for state_file in files_starting(folder, "state") {
        let state = graph_of(&read_rdf(&state_file, json_ld)?);
        for predicate in ["conditionId", "conditionID"] {
            for triple in state.triples_for_predicate(&named(&format!("{SOTW}{predicate}"))) {
                if let oxigraph::model::TermRef::NamedNode(duty) = triple.object {
                    request
                        .facts
                        .duty_states
                        .insert(duty.into_owned(), DutyState::Fulfilled);
                }
            }
        }
    }
    let decision = evaluator_at(now).evaluate(&policy, &request);
    // The expected report.
    let expected_file = files_starting(folder, "compliancereport")
        .into_iter()
        .next()
        .ok_or("no compliance report")?;
    let expected = graph_of(&read_rdf(&expected_file, json_ld)?);
    let report_ns = "http://example.com/report/temp/";
    let mut problems = Vec::new();
    for triple in expected.triples_for_predicate(&named(&format!("{report_ns}controlState"))) {
        let subject = triple.subject.into_owned();
        let rule = object(&expected, &subject, &format!("{report_ns}rule"))
            .and_then(|t| iri_of(&t))
            .ok_or("a rule report names no rule")?;
        let activation = object(&expected, &subject, &format!("{report_ns}activationState"))
            .and_then(|t| iri_of(&t))
            .map(|s| state_name(&s));
        let control = iri_of(&triple.object.into_owned()).map(|s| state_name(&s));
        let ours = decision
            .rules
            .iter()
            .find(|r| r.uid.as_ref().is_some_and(|u| u.as_str() == rule))
            .ok_or_else(|| format!("no report for rule {rule}"))?;
        let our_activation = if ours.active { "Active" } else { "Inactive" };
        let our_control = if decision.is_permitted() {
            "Permit"
        } else {
            "Deny"
        };
        if activation.as_deref() != Some(our_activation) || control.as_deref() != Some(our_control)
        {
            problems.push(format!(
                "rule {rule}: expected {activation:?}/{control:?}, evaluated {our_activation}/{our_control} ({})",
                ours.explanation
            ));
        }
    }
    let constraint_class = format!("{report_ns}ConstraintReport");
    let ours = all_constraint_reports(&decision);
    for subject in
        expected.subjects_for_predicate_object(&named(RDF_TYPE), &named(&constraint_class))
    {
        let subject = subject.into_owned();
        let constraint = object(&expected, &subject, &format!("{report_ns}constraint"))
            .and_then(|t| iri_of(&t))
            .ok_or("a constraint report names no constraint")?;
        let state = object(
            &expected,
            &subject,
            &format!("{report_ns}satisfactionState"),
        )
        .and_then(|t| iri_of(&t))
        .map(|s| state_name(&s));
        let our_state = find_constraint(&ours, &constraint).map(|r| match r.state {
            Satisfaction::Satisfied => "Satisfied".to_owned(),
            Satisfaction::Unsatisfied => "Unsatisfied".to_owned(),
            Satisfaction::Unknown => format!("Unknown ({})", r.finding),
        });
        if state != our_state {
            problems.push(format!(
                "constraint {constraint}: expected {state:?}, evaluated {our_state:?}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn w3c_odrl_formal_semantics_examples() {
    let Some(reference) = reference_dir("W3C ODRL formal-semantics examples") else {
        return;
    };
    let root = reference.join("w3c-odrl-cg/formal-semantics/examples");
    let mut folders = Vec::new();
    case_folders(&root, &mut folders);
    assert!(!folders.is_empty(), "no examples under {}", root.display());
    let mut failures = BTreeMap::new();
    for folder in &folders {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Err(why) = run_w3c_case(folder) {
            failures.insert(name, why);
        }
    }
    eprintln!(
        "W3C ODRL formal-semantics examples: {}/{}",
        folders.len() - failures.len(),
        folders.len()
    );
    for (name, why) in &failures {
        eprintln!("  not passing: {name}: {why}");
    }
    let listed: BTreeSet<&str> = W3C_SKIPS.iter().map(|(n, _)| *n).collect();
    let failing: BTreeSet<&str> = failures.keys().map(String::as_str).collect();
    assert_eq!(failing, listed, "the skip list must be the failures");
}

// ---------------------------------------------------------------------------------------------
// The node's own policies, and reading and writing the suites' policies
// ---------------------------------------------------------------------------------------------

#[test]
fn policy_of_every_pool_is_enforceable_on_its_columns() {
    let pools = agora::engine::pools::load_pools(&repo_root().join("connectors"))
        .expect("the demo manifests load");
    assert!(!pools.is_empty());
    for pool in pools {
        let uid = pool.policy_uid().expect("the pool's policy names its uid");
        let body = agora::policy::template(&uid).expect("the pool's policy is a template");
        let policy = parse(body.as_bytes(), RdfSyntax::JsonLd)
            .unwrap_or_else(|e| panic!("{}: {e}", pool.manifest.id));
        let columns: Vec<&str> = pool
            .manifest
            .data
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        validate_for_dataset(&policy, &columns)
            .unwrap_or_else(|e| panic!("{}: {e}", pool.manifest.id));
        let missing = validate_for_dataset(&policy, &["nothing"]);
        let names_columns = policy.permissions.iter().any(|p| {
            p.duties
                .iter()
                .any(|d| d.action.as_ref().is_some_and(|a| !a.refinements.is_empty()))
        });
        assert_eq!(missing.is_err(), names_columns, "{}", pool.manifest.id);
    }
}

/// Every policy of both suites reads, is written as JSON-LD, and reads back the same: party and
/// asset collections, refinements with units, logical constraints, hundreds of time windows.
#[test]
fn policy_files_of_the_suites_round_trip_through_json_ld() {
    let Some(reference) = reference_dir("policy round trip") else {
        return;
    };
    let mut files: Vec<(PathBuf, RdfSyntax)> = Vec::new();
    let solidlab = reference.join("solidlab-odrl-test-suite/data/policies");
    for entry in std::fs::read_dir(&solidlab)
        .expect("SolidLab policies")
        .flatten()
    {
        files.push((entry.path(), RdfSyntax::Turtle));
    }
    let mut folders = Vec::new();
    case_folders(
        &reference.join("w3c-odrl-cg/formal-semantics/examples"),
        &mut folders,
    );
    let mut parents: Vec<PathBuf> = folders
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    parents.dedup();
    let a2 = reference.join(
        "w3c-odrl-cg/formal-semantics/examples/A Evaluation of Constraints/A2 Example of a constrained prohibition",
    );
    parents.push(a2);
    for parent in parents {
        for file in files_starting(&parent, "policy") {
            files.push((file, RdfSyntax::JsonLd));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(files.len(), 21 + 5, "21 SolidLab policies and 5 W3C ones");
    for (file, syntax) in files {
        let body = std::fs::read(&file).expect("readable");
        let policy = parse_with(&body, syntax, &parse_options())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let written = to_json_ld_string(&policy);
        let again = parse_with(written.as_bytes(), RdfSyntax::JsonLd, &parse_options())
            .unwrap_or_else(|e| panic!("{} written back: {e}\n{written}", file.display()));
        assert_eq!(policy, again, "{}", file.display());
    }
}
