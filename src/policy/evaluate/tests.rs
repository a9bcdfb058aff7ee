//! The evaluator against the templates and small policies: purposes through the DPV hierarchy,
//! time windows on a manual clock, countries, organisation types, pull counts and budgets,
//! logical constraints, prohibitions and conflict strategies, duties, and the words of denials.

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::policy::{ConflictStrategy, RdfSyntax, parse};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid instant")
        .with_timezone(&Utc)
}

fn clock(at: &str) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(instant(at)))
}

fn evaluator(clock: &Arc<ManualClock>) -> Evaluator {
    let shared: SharedClock = clock.clone();
    Evaluator::new(shared)
}

fn template(name: &str) -> Policy {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("policies")
        .join(format!("{name}.jsonld"));
    parse(&std::fs::read(path).expect("template"), RdfSyntax::JsonLd).expect("parses")
}

fn policy(json: &str) -> Policy {
    let body = format!(
        r#"{{"@context": ["http://www.w3.org/ns/odrl.jsonld", {{"dpv": "https://w3id.org/dpv#", "agora": "https://w3id.org/agora/ns#"}}],
            "uid": "https://example.org/policy", {json}}}"#
    );
    parse(body.as_bytes(), RdfSyntax::JsonLd).expect("test policy parses")
}

fn dpv(local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("https://w3id.org/dpv#{local}"))
}

fn request(claims: serde_json::Value, purpose: Option<NamedNode>) -> Request {
    Request::from_claims(claims.as_object().cloned().unwrap_or_default(), purpose)
}

fn researcher(purpose: &str) -> Request {
    request(
        json!({"sub": "https://example.org/participants/uni-1", "country": "DE", "org_type": "university"}),
        Some(dpv(purpose)),
    )
}

#[test]
fn a_narrower_purpose_satisfies_a_broader_one_and_denials_name_the_constraint() {
    let policy = policy(
        r#""@type": "Offer", "permission": [{"action": "use", "constraint": [
            {"leftOperand": "purpose", "operator": "eq", "rightOperand": {"@id": "dpv:ResearchAndDevelopment"}}]}]"#,
    );
    let now = clock("2026-03-01T12:00:00Z");
    let evaluator = evaluator(&now);
    let permit = evaluator.evaluate(&policy, &researcher("AcademicResearch"));
    assert!(permit.is_permitted(), "{}", permit.explanation());
    assert!(permit.plan.is_some());
    assert!(permit.reasons.is_empty());

    let deny = evaluator.evaluate(&policy, &researcher("Marketing"));
    assert_eq!(deny.outcome, Outcome::Deny);
    assert_eq!(
        deny.reasons,
        vec![
            "the permission to use requires purpose to be a kind of dpv:ResearchAndDevelopment; dpv:Marketing is not"
        ]
    );
    assert!(deny.plan.is_none());

    let silent = evaluator.evaluate(&policy, &request(json!({"sub": "x"}), None));
    assert!(!silent.is_permitted());
    assert!(
        silent.reasons[0].ends_with("the request states no purpose"),
        "{:?}",
        silent.reasons
    );
}

#[test]
fn time_windows_follow_the_clock_and_the_agreement() {
    let policy = template("time-limited");
    let now = clock("2025-12-31T23:59:59Z");
    let evaluator = evaluator(&now);
    let mut request = researcher("AcademicResearch");
    let early = evaluator.evaluate(&policy, &request);
    assert!(!early.is_permitted());
    assert!(
        early.reasons[0].contains(
            "the current time to be at or after 2026-01-01T00:00:00Z; 2025-12-31T23:59:59Z is not"
        ),
        "{:?}",
        early.reasons
    );
    now.advance(chrono::Duration::seconds(1));
    let open = evaluator.evaluate(&policy, &request);
    assert!(open.is_permitted(), "{}", open.explanation());
    let plan = open.plan.expect("plan");
    assert_eq!(
        plan.expires.map(|b| b.at),
        Some(instant("2026-04-01T00:00:00Z")),
        "90 days from an agreement concluded now"
    );

    request.usage.agreed_at = Some(instant("2026-01-01T00:00:00Z"));
    now.advance(chrono::Duration::days(90));
    assert!(
        evaluator.evaluate(&policy, &request).is_permitted(),
        "day 90 is still inside P90D"
    );
    now.advance(chrono::Duration::seconds(1));
    let late = evaluator.evaluate(&policy, &request);
    assert!(!late.is_permitted());
    assert!(
        late.reasons[0].contains("the time since the agreement to be at most P90D"),
        "{:?}",
        late.reasons
    );

    request.usage.agreed_at = Some(instant("2026-12-01T00:00:00Z"));
    let year_end = clock("2027-01-01T00:00:00Z");
    let after = self::evaluator(&year_end).evaluate(&policy, &request);
    assert!(!after.is_permitted());
    assert!(
        after.reasons[0].contains("the current time to be before 2027-01-01T00:00:00Z"),
        "{:?}",
        after.reasons
    );
}

#[test]
fn the_health_template_permits_eu_researchers_until_its_end_date() {
    let policy = template("health-secondary-use");
    let now = clock("2027-06-30T23:59:59Z");
    let evaluator = evaluator(&now);
    let permit = evaluator.evaluate(&policy, &researcher("ScientificResearch"));
    assert!(permit.is_permitted(), "{}", permit.explanation());
    let plan = permit.plan.expect("plan");
    assert_eq!(
        plan.pseudonymised_columns,
        ["name", "national_id", "patient_id"]
    );
    assert_eq!(plan.dropped_columns, ["postcode"]);
    assert_eq!(plan.min_group_size, Some(11));
    assert!(plan.is_open_at(now.now()));
    now.advance(chrono::Duration::seconds(1));
    assert!(!plan.is_open_at(now.now()));
    let expired = evaluator.evaluate(&policy, &researcher("ScientificResearch"));
    assert!(!expired.is_permitted());

    let now = clock("2026-06-01T00:00:00Z");
    let evaluator = self::evaluator(&now);
    let marketing = evaluator.evaluate(&policy, &researcher("DirectMarketing"));
    assert!(!marketing.is_permitted());
    assert!(
        marketing
            .reasons
            .iter()
            .any(|r| r.contains("the prohibition to use applies")),
        "{:?}",
        marketing.reasons
    );
    let mut distribute = researcher("ScientificResearch");
    distribute.action = NamedNode::new_unchecked(odrl("distribute"));
    let denied = evaluator.evaluate(&policy, &distribute);
    assert!(
        !denied.is_permitted(),
        "distribute is included in use but prohibited"
    );
    assert!(
        denied.reasons[0].contains("the prohibition to distribute applies"),
        "{:?}",
        denied.reasons
    );
}

#[test]
fn countries_are_matched_through_the_eu_table() {
    let eu_only = template("eu-only");
    let now = clock("2026-03-01T00:00:00Z");
    let evaluator = evaluator(&now);
    for country in [
        "DE",
        "fr",
        "POL",
        "http://publications.europa.eu/resource/authority/country/SWE",
    ] {
        let request = request(json!({"sub": "s", "country": country}), None);
        assert!(
            evaluator.evaluate(&eu_only, &request).is_permitted(),
            "{country}"
        );
    }
    let us = evaluator.evaluate(
        &eu_only,
        &request(json!({"sub": "s", "country": "US"}), None),
    );
    assert!(!us.is_permitted());
    assert!(
        us.reasons[0].contains(
            "the requester's country to be one of AUT, BEL, BGR, HRV, CYP, CZE, … (27 values); US is not"
        ) || us.reasons[0].contains("(27 values); US is not"),
        "{:?}",
        us.reasons
    );
    let none = evaluator.evaluate(&eu_only, &request(json!({"sub": "s"}), None));
    assert!(!none.is_permitted());
    assert!(
        none.reasons[0].contains("the requester's token carries no country claim"),
        "{:?}",
        none.reasons
    );

    let mobility = template("mobility-generalised");
    let spatial = evaluator.evaluate(&mobility, &researcher("ImproveTransportMobility"));
    assert!(spatial.is_permitted(), "{}", spatial.explanation());
    let mut outside = researcher("ImproveTransportMobility");
    outside.claims.insert("country".into(), json!("CH"));
    assert!(!evaluator.evaluate(&mobility, &outside).is_permitted());

    let union = policy(
        r#""@type": "Set", "permission": [{"action": "use", "constraint": [
            {"leftOperand": "spatial", "operator": "isPartOf", "rightOperand": {"@id": "http://publications.europa.eu/resource/authority/country/EUR"}}]}]"#,
    );
    assert!(
        evaluator
            .evaluate(&union, &researcher("AcademicResearch"))
            .is_permitted()
    );
    assert!(!evaluator.evaluate(&union, &outside).is_permitted());
}

#[test]
fn organisation_types_and_commercial_prohibitions() {
    let policy = template("research-non-commercial");
    let now = clock("2026-03-01T00:00:00Z");
    let evaluator = evaluator(&now);
    assert!(
        evaluator
            .evaluate(&policy, &researcher("AcademicResearch"))
            .is_permitted()
    );
    let mut company = researcher("AcademicResearch");
    company.claims.insert("org_type".into(), json!("company"));
    let denied = evaluator.evaluate(&policy, &company);
    assert!(!denied.is_permitted());
    assert!(
        denied.reasons[0].contains(
            "the requester's organisation type to be one of hospital, non-profit, public-authority, research-organisation, university; company is not"
        ),
        "{:?}",
        denied.reasons
    );
    let commercial = evaluator.evaluate(&policy, &researcher("CommercialResearch"));
    assert!(!commercial.is_permitted());
    assert!(
        commercial.reasons.iter().any(|r| r
            .contains("purpose to be a kind of dpv:CommercialPurpose; dpv:CommercialResearch is")),
        "{:?}",
        commercial.reasons
    );
    let mut sell = researcher("AcademicResearch");
    sell.action = NamedNode::new_unchecked(odrl("sell"));
    let sold = evaluator.evaluate(&policy, &sell);
    assert!(!sold.is_permitted());
    assert!(
        sold.reasons
            .iter()
            .any(|r| r == "no permission of the policy covers sell"),
        "{:?}",
        sold.reasons
    );
}

#[test]
fn pulls_and_budgets_are_counted() {
    let policy = template("ai-training-count");
    let now = clock("2026-03-01T00:00:00Z");
    let evaluator = evaluator(&now);
    let mut request = request(
        json!({"sub": "trainer"}),
        Some(NamedNode::new_unchecked(format!("{AGORA}AITraining"))),
    );
    request.usage.pulls = 9;
    let tenth = evaluator.evaluate(&policy, &request);
    assert!(tenth.is_permitted(), "{}", tenth.explanation());
    assert_eq!(tenth.plan.as_ref().and_then(|p| p.max_pulls), Some(10));
    request.usage.pulls = 10;
    let eleventh = evaluator.evaluate(&policy, &request);
    assert!(!eleventh.is_permitted());
    assert!(
        eleventh.reasons[0].contains("the number of pulls to be at most 10; 11 is not"),
        "{:?}",
        eleventh.reasons
    );
    request.usage.pulls = 0;
    request.usage.rows_released = 50_000_001;
    assert!(!evaluator.evaluate(&policy, &request).is_permitted());
    // A broader purpose does not satisfy a narrower one.
    let broad = Request {
        purpose: Some(dpv("ResearchAndDevelopment")),
        ..request.clone()
    };
    assert!(!evaluator.evaluate(&policy, &broad).is_permitted());
}

#[test]
fn logical_constraints_combine_three_valued() {
    let now = clock("2026-03-01T00:00:00Z");
    let evaluator = evaluator(&now);
    let of = |operator: &str| {
        policy(&format!(
            r#""@type": "Set", "permission": [{{"action": "use", "constraint": [{{"{operator}": [
                {{"leftOperand": "agora:country", "operator": "eq", "rightOperand": "DE"}},
                {{"leftOperand": "agora:orgType", "operator": "eq", "rightOperand": "university"}}]}}]}}]"#
        ))
    };
    let german_university = researcher("AcademicResearch");
    let mut german_company = researcher("AcademicResearch");
    german_company
        .claims
        .insert("org_type".into(), json!("company"));
    let mut french_company = german_company.clone();
    french_company.claims.insert("country".into(), json!("FR"));
    let mut unknown_country = german_company.clone();
    unknown_country.claims.remove("country");
    let cases = [
        ("and", &german_university, true),
        ("and", &german_company, false),
        ("or", &german_company, true),
        ("or", &french_company, false),
        ("or", &unknown_country, false),
        ("xone", &german_university, false),
        ("xone", &german_company, true),
        ("xone", &french_company, false),
    ];
    for (operator, request, expected) in cases {
        let decision = evaluator.evaluate(&of(operator), request);
        assert_eq!(
            decision.is_permitted(),
            expected,
            "{operator}: {}",
            decision.explanation()
        );
    }
    let sequence = policy(
        r#""@type": "Set", "permission": [{"action": "use", "constraint": [{"andSequence": {"@list": [
            {"leftOperand": "dateTime", "operator": "gteq", "rightOperand": {"@value": "2026-01-01", "@type": "xsd:date"}},
            {"leftOperand": "dateTime", "operator": "lteq", "rightOperand": {"@value": "2026-12-31", "@type": "xsd:date"}}]}}]}]"#,
    );
    let decision = evaluator.evaluate(&sequence, &german_company);
    assert!(decision.is_permitted(), "{}", decision.explanation());
    assert_eq!(
        decision
            .plan
            .and_then(|p| p.expires)
            .map(|b| (b.at, b.inclusive)),
        Some((instant("2027-01-01T00:00:00Z"), false)),
        "lteq a day lasts until the end of that day"
    );
    let windows = policy(
        r#""@type": "Set", "permission": [{"action": "use", "constraint": [{"or": [
            {"and": [{"leftOperand": "dateTime", "operator": "gteq", "rightOperand": {"@value": "2026-02-01T00:00:00Z", "@type": "xsd:dateTime"}},
                     {"leftOperand": "dateTime", "operator": "lt", "rightOperand": {"@value": "2026-02-02T00:00:00Z", "@type": "xsd:dateTime"}}]},
            {"and": [{"leftOperand": "dateTime", "operator": "gteq", "rightOperand": {"@value": "2026-03-01T00:00:00Z", "@type": "xsd:dateTime"}},
                     {"leftOperand": "dateTime", "operator": "lt", "rightOperand": {"@value": "2026-03-02T00:00:00Z", "@type": "xsd:dateTime"}}]}]}]}]"#,
    );
    let decision = evaluator.evaluate(&windows, &german_company);
    assert!(decision.is_permitted(), "{}", decision.explanation());
    assert_eq!(
        decision.plan.and_then(|p| p.expires).map(|b| b.at),
        Some(instant("2026-03-02T00:00:00Z")),
        "an or of windows expires with its last window"
    );
}

#[test]
fn prohibitions_and_conflict_strategies() {
    let now = clock("2026-03-01T00:00:00Z");
    let evaluator = evaluator(&now);
    let with = |conflict: &str| {
        policy(&format!(
            r#""@type": "Offer", {conflict} "permission": [{{"action": "use"}}],
               "prohibition": [{{"action": "use", "constraint": [
                   {{"leftOperand": "purpose", "operator": "isA", "rightOperand": {{"@id": "dpv:Marketing"}}}}]}}]"#
        ))
    };
    let marketing = researcher("DirectMarketing");
    let research = researcher("AcademicResearch");
    let prohibit = with(r#""conflict": "prohibit","#);
    assert_eq!(prohibit.conflict_strategy(), ConflictStrategy::Prohibit);
    let denied = evaluator.evaluate(&prohibit, &marketing);
    assert!(!denied.is_permitted());
    assert_eq!(
        denied.reasons,
        vec![
            "the prohibition to use applies: its constraint requires purpose to be a kind of dpv:Marketing; dpv:DirectMarketing is"
        ]
    );
    assert!(evaluator.evaluate(&prohibit, &research).is_permitted());

    let perm = with(r#""conflict": "perm","#);
    assert!(evaluator.evaluate(&perm, &marketing).is_permitted());

    let void = with("");
    let decision = evaluator.evaluate(&void, &marketing);
    assert!(!decision.is_permitted());
    assert!(
        decision.reasons[0].contains("the policy is void for this request"),
        "{:?}",
        decision.reasons
    );
    assert!(evaluator.evaluate(&void, &research).is_permitted());

    // A missing purpose cannot rule the prohibition out: it stays in force.
    let silent = request(json!({"sub": "s"}), None);
    let decision = evaluator.evaluate(&prohibit, &silent);
    assert!(!decision.is_permitted());
    assert!(
        decision.reasons[0].contains("the request states no purpose"),
        "{:?}",
        decision.reasons
    );
}

#[test]
fn parties_targets_and_duties() {
    let now = clock("2026-03-01T00:00:00Z");
    let evaluator = evaluator(&now);
    let agreement = policy(
        r#""@type": "Agreement", "permission": [{"action": "use",
            "target": "https://example.org/datasets/health",
            "assigner": "https://example.org/hospital",
            "assignee": "https://example.org/participants/uni-1",
            "duty": [{"@id": "https://example.org/duty/credit", "action": "attribute"}]}]"#,
    );
    let mine = researcher("AcademicResearch").with_target(NamedNode::new_unchecked(
        "https://example.org/datasets/health",
    ));
    let decision = evaluator.evaluate(&agreement, &mine);
    assert!(decision.is_permitted(), "{}", decision.explanation());
    assert_eq!(
        decision.rules[0].duties[0].state,
        DeonticState::PerformedByNode
    );

    let mut stranger = mine.clone();
    stranger.party = Some(NamedNode::new_unchecked(
        "https://example.org/participants/other",
    ));
    let denied = evaluator.evaluate(&agreement, &stranger);
    assert!(!denied.is_permitted());
    assert!(
        denied.reasons[0].contains(
            "the permission to use is granted to <https://example.org/participants/uni-1>; the requester is <https://example.org/participants/other>"
        ),
        "{:?}",
        denied.reasons
    );
    let other_dataset = researcher("AcademicResearch")
        .with_target(NamedNode::new_unchecked("https://example.org/datasets/x"));
    assert!(
        !evaluator
            .evaluate(&agreement, &other_dataset)
            .is_permitted()
    );

    let mut violated = mine.clone();
    violated.facts.duty_states.insert(
        NamedNode::new_unchecked("https://example.org/duty/credit"),
        DutyState::Violated,
    );
    let decision = evaluator.evaluate(&agreement, &violated);
    assert!(!decision.is_permitted());
    assert!(
        decision.reasons[0].contains("has a duty to attribute that has been violated"),
        "{:?}",
        decision.reasons
    );

    // A duty only the consumer could carry out cannot be enforced: the node denies rather than
    // releasing data under a condition it cannot check.
    let paying = policy(
        r#""@type": "Agreement", "permission": [{"action": "use",
            "duty": [{"@id": "https://example.org/duty/pay", "action": "compensate"}]}]"#,
    );
    let decision = evaluator.evaluate(&paying, &mine);
    assert!(!decision.is_permitted());
    assert_eq!(decision.rules[0].duties[0].state, DeonticState::Pending);
    assert!(
        decision.rules[0].active,
        "the rule applies; its plan cannot be made"
    );
    assert!(
        decision.reasons[0].contains("odrl:compensate: the node cannot carry out this duty"),
        "{:?}",
        decision.reasons
    );
    // Once the payment is on record, nothing is left for the node to enforce.
    let mut paid = mine.clone();
    paid.facts.duty_states.insert(
        NamedNode::new_unchecked("https://example.org/duty/pay"),
        DutyState::Fulfilled,
    );
    let decision = evaluator.evaluate(&paying, &paid);
    assert!(decision.is_permitted(), "{}", decision.explanation());
    assert_eq!(decision.rules[0].duties[0].state, DeonticState::Fulfilled);

    let universities = policy(
        r#""@type": "Offer", "permission": [{"action": "use",
            "assignee": {"@type": "PartyCollection", "refinement": [
                {"leftOperand": "agora:orgType", "operator": "eq", "rightOperand": "university"}]}}]"#,
    );
    assert!(evaluator.evaluate(&universities, &mine).is_permitted());
    let mut company = mine.clone();
    company.claims.insert("org_type".into(), json!("company"));
    assert!(!evaluator.evaluate(&universities, &company).is_permitted());
    let mut member = stranger.clone();
    member.facts.part_of.push((
        NamedNode::new_unchecked("https://example.org/participants/other"),
        NamedNode::new_unchecked("https://example.org/participants/uni-1"),
    ));
    assert!(evaluator.evaluate(&agreement, &member).is_permitted());
}

#[test]
fn node_performed_duties_are_part_of_the_plan() {
    let now = clock("2026-03-01T00:00:00Z");
    let evaluator = evaluator(&now);
    let decision = evaluator.evaluate(
        &template("climate-attribution"),
        &researcher("AcademicResearch"),
    );
    assert!(decision.is_permitted());
    assert!(
        decision.rules[0]
            .duties
            .iter()
            .all(|d| d.state == DeonticState::PerformedByNode)
    );
    let plan = decision.plan.expect("plan");
    assert!(plan.attribution);
    assert_eq!(
        plan.permissions,
        ["the permission to use"],
        "only use was asked for"
    );
    let mut read = researcher("AcademicResearch");
    read.action = NamedNode::new_unchecked(odrl("read"));
    assert!(
        evaluator
            .evaluate(&template("open-data-attribution"), &read)
            .is_permitted(),
        "read is a kind of use"
    );
}

#[test]
fn an_unenforceable_plan_denies_rather_than_releasing() {
    let now = clock("2026-03-01T00:00:00Z");
    let evaluator = evaluator(&now);
    let broken = policy(
        r#""@type": "Offer", "permission": [{"action": "use", "duty": [{"action": [{"rdf:value": {"@id": "agora:dropColumn"}}]}]}]"#,
    );
    let decision = evaluator.evaluate(&broken, &researcher("AcademicResearch"));
    assert!(!decision.is_permitted());
    assert!(
        decision.reasons[0].contains("needs an agora:column refinement"),
        "{:?}",
        decision.reasons
    );
}
