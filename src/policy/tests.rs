//! Tests of reading, writing and publishing policies: every template in `policies/` parses,
//! passes the publication check, compiles to a plan and survives a JSON-LD round trip; hostile
//! and unrepresentable documents are refused with errors that say why.

use super::*;
use std::path::PathBuf;

fn templates() -> Vec<(String, Vec<u8>)> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&folder)
        .expect("policies/ exists")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "jsonld"))
        .map(|path| {
            (
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                std::fs::read(&path).expect("readable"),
            )
        })
        .collect();
    files.sort();
    files
}

fn template(name: &str) -> Policy {
    let (_, body) = templates()
        .into_iter()
        .find(|(n, _)| n == name)
        .expect("template exists");
    parse(&body, RdfSyntax::JsonLd).expect("template parses")
}

#[test]
fn every_template_parses_validates_and_compiles_to_a_plan() {
    let files = templates();
    assert_eq!(files.len(), 8, "the templates of policies/README.md");
    for (name, body) in files {
        let policy = parse(&body, RdfSyntax::JsonLd)
            .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        assert_eq!(
            policy.uid.as_str(),
            format!("https://w3id.org/agora/policies/{name}"),
            "{name}"
        );
        assert_eq!(policy.kind, PolicyKind::Offer, "{name}");
        assert_eq!(
            policy.profiles.first().map(|p| p.as_str()),
            Some(vocab::AGORA_PROFILE)
        );
        assert!(policy.title().is_some(), "{name} has a title");
        validate(&policy).unwrap_or_else(|e| panic!("{name} is not enforceable: {e}"));
        let indices: Vec<usize> = (0..policy.permissions.len()).collect();
        let plan = plan::compile(&policy, &indices, chrono::DateTime::UNIX_EPOCH)
            .unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
        assert_eq!(plan.policy, policy.uid.as_str());
    }
}

#[test]
fn every_template_round_trips_through_json_ld() {
    for (name, body) in templates() {
        let policy = parse(&body, RdfSyntax::JsonLd).expect("parses");
        let written = to_json_ld_string(&policy);
        let again = parse(written.as_bytes(), RdfSyntax::JsonLd)
            .unwrap_or_else(|e| panic!("{name} written back does not parse: {e}\n{written}"));
        assert_eq!(
            policy, again,
            "{name} changed in the round trip:\n{written}"
        );
    }
}

#[test]
fn the_health_template_compiles_to_its_plan() {
    let policy = template("health-secondary-use");
    let plan = plan::compile(&policy, &[0], chrono::DateTime::UNIX_EPOCH).expect("compiles");
    assert_eq!(plan.dropped_columns, vec!["postcode"]);
    assert_eq!(
        plan.pseudonymised_columns,
        vec!["name", "national_id", "patient_id"]
    );
    assert_eq!(
        plan.generalisations,
        vec![Generalisation {
            column: "birth_date".into(),
            granularity: Granularity::Year
        }]
    );
    assert_eq!(
        plan.row_filters,
        vec![RowFilter {
            column: "consent_secondary_use".into(),
            operator: FilterOperator::Eq,
            values: vec![ColumnValue::Boolean(true)],
        }]
    );
    assert_eq!(plan.min_group_size, Some(11));
    let expiry = plan.expires.expect("expires");
    assert_eq!(expiry.at.to_rfc3339(), "2027-06-30T23:59:59+00:00");
    assert!(expiry.inclusive);
    assert!(!plan.attribution);
    let columns = [
        "patient_id",
        "national_id",
        "name",
        "birth_date",
        "sex",
        "postcode",
        "consent_secondary_use",
    ];
    let plan = plan.for_schema(&columns).expect("every column exists");
    assert_eq!(
        plan.allowed_columns.as_deref(),
        Some(
            &[
                "patient_id",
                "national_id",
                "name",
                "birth_date",
                "sex",
                "consent_secondary_use"
            ]
            .map(String::from)[..]
        )
    );
    let missing = plan::compile(&policy, &[0], chrono::DateTime::UNIX_EPOCH)
        .expect("compiles")
        .for_schema(&["patient_id"]);
    assert!(
        matches!(&missing, Err(PolicyError::Unenforceable { problems }) if problems.iter().any(|p| p.term.as_deref() == Some("agora:column \"postcode\""))),
        "{missing:?}"
    );
}

#[test]
fn the_other_templates_compile_to_their_plans() {
    let mobility = plan::compile(
        &template("mobility-generalised"),
        &[0],
        chrono::DateTime::UNIX_EPOCH,
    )
    .expect("compiles");
    assert_eq!(mobility.pseudonymised_columns, vec!["vehicle_id"]);
    let grid: Vec<_> = mobility
        .generalisations
        .iter()
        .filter(|g| g.granularity == Granularity::Grid { degrees: 0.01 })
        .map(|g| g.column.as_str())
        .collect();
    assert_eq!(grid, ["dest_lat", "dest_lon", "origin_lat", "origin_lon"]);
    let hourly: Vec<_> = mobility
        .generalisations
        .iter()
        .filter(|g| g.granularity == Granularity::Hour)
        .map(|g| g.column.as_str())
        .collect();
    assert_eq!(hourly, ["end_time", "start_time"]);

    let ai = plan::compile(
        &template("ai-training-count"),
        &[0],
        chrono::DateTime::UNIX_EPOCH,
    )
    .expect("compiles");
    assert_eq!(ai.max_pulls, Some(10));
    assert_eq!(ai.row_budget, Some(50_000_000));

    let agreed = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .expect("valid")
        .with_timezone(&chrono::Utc);
    let time = plan::compile(&template("time-limited"), &[0], agreed).expect("compiles");
    assert_eq!(
        time.not_before.map(|b| (b.at.to_rfc3339(), b.inclusive)),
        Some(("2026-01-01T00:00:00+00:00".into(), true))
    );
    assert_eq!(
        time.expires.map(|b| (b.at.to_rfc3339(), b.inclusive)),
        Some(("2026-05-30T00:00:00+00:00".into(), true)),
        "90 days after the agreement comes before the end of 2026"
    );
    assert_eq!(time.max_elapsed.map(|d| d.to_string()), Some("P90D".into()));

    let climate = template("climate-attribution");
    let plan = plan::compile(&climate, &[0, 1], chrono::DateTime::UNIX_EPOCH).expect("compiles");
    assert!(plan.attribution);
    assert_eq!(plan.permissions.len(), 2);
}

#[test]
fn turtle_policies_parse_too() {
    let turtle = br#"
        @prefix odrl: <http://www.w3.org/ns/odrl/2/> .
        @prefix dpv: <https://w3id.org/dpv#> .
        <https://example.org/p> a odrl:Set ;
            odrl:permission [ odrl:action odrl:use ;
                odrl:constraint [ odrl:leftOperand odrl:purpose ; odrl:operator odrl:eq ;
                                  odrl:rightOperand dpv:ResearchAndDevelopment ] ] .
    "#;
    let policy = parse(turtle, RdfSyntax::Turtle).expect("parses");
    assert_eq!(policy.kind, PolicyKind::Set);
    assert_eq!(policy.permissions.len(), 1);
    validate(&policy).expect("enforceable");
}

#[test]
fn logical_constraints_and_collections_round_trip() {
    let body = br#"{
      "@context": ["http://www.w3.org/ns/odrl.jsonld", {"dpv": "https://w3id.org/dpv#", "agora": "https://w3id.org/agora/ns#"}],
      "@type": "Agreement",
      "uid": "https://example.org/policy/1",
      "conflict": "perm",
      "permission": [{
        "@id": "https://example.org/rule/1",
        "target": {"@id": "https://example.org/datasets", "@type": "AssetCollection", "source": "https://example.org/catalogue"},
        "assignee": {"@type": "PartyCollection", "refinement": [{"leftOperand": "agora:orgType", "operator": "eq", "rightOperand": "university"}]},
        "assigner": "https://example.org/holder",
        "action": "use",
        "constraint": [
          {"xone": [
             {"leftOperand": "agora:country", "operator": "eq", "rightOperand": {"@id": "http://publications.europa.eu/resource/authority/country/DEU"}},
             {"leftOperand": "agora:country", "operator": "eq", "rightOperand": {"@id": "http://publications.europa.eu/resource/authority/country/FRA"}}
          ]},
          {"andSequence": {"@list": [
             {"@id": "https://example.org/c/2", "leftOperand": "dateTime", "operator": "gteq", "rightOperand": {"@value": "2026-01-01", "@type": "xsd:date"}},
             {"@id": "https://example.org/c/1", "leftOperand": "dateTime", "operator": "lt", "rightOperand": {"@value": "2027-01-01T00:00:00Z", "@type": "xsd:dateTime"}}
          ]}},
          {"leftOperand": "recipient", "operator": "odrl:neq", "rightOperand": {"@id": "https://example.org/competitor"}}
        ],
        "duty": [{"action": "attribute"}]
      }],
      "prohibition": [{"action": "sell", "remedy": [{"action": "delete"}]}]
    }"#;
    let policy = parse(body, RdfSyntax::JsonLd).expect("parses");
    let permission = &policy.permissions[0];
    assert_eq!(
        permission.uid.as_ref().map(|u| u.as_str()),
        Some("https://example.org/rule/1")
    );
    let target = permission.target.as_ref().expect("target");
    assert!(target.collection);
    assert!(
        permission
            .assignee
            .as_ref()
            .is_some_and(|p| p.collection && p.uid.is_none())
    );
    let sequence = permission
        .constraints
        .iter()
        .find_map(|c| match c {
            Constraint::Logical(l) if l.operator == LogicalOperator::AndSequence => Some(l),
            _ => None,
        })
        .expect("andSequence");
    let order: Vec<_> = sequence
        .operands
        .iter()
        .filter_map(|c| c.uid().map(|u| u.as_str().to_owned()))
        .collect();
    assert_eq!(
        order,
        ["https://example.org/c/2", "https://example.org/c/1"],
        "andSequence keeps the document's order"
    );
    assert_eq!(policy.prohibitions[0].duties.len(), 1, "the remedy");
    let written = to_json_ld_string(&policy);
    let again = parse(written.as_bytes(), RdfSyntax::JsonLd).expect("parses back");
    assert_eq!(policy, again, "{written}");
}

#[test]
fn hostile_documents_are_refused_before_json_ld_processing() {
    let deep = format!(
        "{{\"@context\": \"http://www.w3.org/ns/odrl.jsonld\", \"a\": {}1{}}}",
        "[".repeat(2000),
        "]".repeat(2000)
    );
    assert!(matches!(
        parse(deep.as_bytes(), RdfSyntax::JsonLd),
        Err(PolicyError::TooDeep { limit: 64 })
    ));
    let large = vec![b' '; (1 << 20) + 1];
    assert!(matches!(
        parse(&large, RdfSyntax::JsonLd),
        Err(PolicyError::TooLarge { .. })
    ));
    let remote = br#"{"@context": "https://evil.example/context.jsonld", "@type": "Set", "uid": "https://x.org/p"}"#;
    let error = parse(remote, RdfSyntax::JsonLd).expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("remote contexts are never fetched"),
        "{error}"
    );
    assert!(matches!(
        parse(b"\xff\xfe", RdfSyntax::JsonLd),
        Err(PolicyError::Syntax { .. })
    ));
    let options = ParseOptions {
        max_triples: 5,
        ..ParseOptions::default()
    };
    let body = &templates()[0].1;
    assert!(matches!(
        parse_with(body, RdfSyntax::JsonLd, &options),
        Err(PolicyError::TooManyTriples { limit: 5 })
    ));
}

#[test]
fn what_the_model_cannot_hold_is_refused_not_dropped() {
    let cases: [(&str, &str); 7] = [
        (
            r#"{"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "uid": "https://x.org/p",
                "permission": [{"action": ["use", "distribute"]}]}"#,
            "one action",
        ),
        (
            r#"{"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "uid": "https://x.org/p",
                "permission": [{"action": "use", "output": "https://x.org/o"}]}"#,
            "odrl:output",
        ),
        (
            r#"{"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "uid": "https://x.org/p",
                "inheritFrom": "https://x.org/parent", "permission": [{"action": "use"}]}"#,
            "inheritFrom",
        ),
        (
            r#"{"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "uid": "https://x.org/p",
                "permission": [{"action": "use", "constraint": [{"leftOperand": "count", "operator": "lteq"}]}]}"#,
            "rightOperand",
        ),
        (
            r#"{"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "uid": "https://x.org/p",
                "permission": [{"action": "use", "constraint": [{"leftOperand": "count", "operator": "odrl:about", "rightOperand": 1}]}]}"#,
            "not an ODRL operator",
        ),
        (
            r#"{"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set",
                "permission": [{"action": "use"}]}"#,
            "uid",
        ),
        (
            r#"{"@context": "http://www.w3.org/ns/odrl.jsonld", "@graph": [
                {"@type": "Set", "uid": "https://x.org/p", "permission": [{"action": "use"}]},
                {"@id": "https://x.org/unrelated", "dct:title": "hello"}]}"#,
            "does not refer to",
        ),
    ];
    for (body, expected) in cases {
        let error = parse(body.as_bytes(), RdfSyntax::JsonLd).expect_err(expected);
        assert!(
            error.to_string().contains(expected),
            "expected `{expected}` in: {error}"
        );
    }
    let two = br#"{"@context": "http://www.w3.org/ns/odrl.jsonld", "@graph": [
        {"@type": "Set", "uid": "https://x.org/a", "permission": [{"action": "use"}]},
        {"@type": "Offer", "uid": "https://x.org/b", "permission": [{"action": "use"}]}]}"#;
    assert!(matches!(
        parse(two, RdfSyntax::JsonLd),
        Err(PolicyError::SeveralPolicies { count: 2, .. })
    ));
    let triples = read_triples(two, RdfSyntax::JsonLd, &ParseOptions::default()).expect("rdf");
    assert_eq!(policies_in_triples(triples).expect("both").len(), 2);
}

#[test]
fn publication_refuses_what_the_node_cannot_enforce() {
    let cases: [(&str, &str); 8] = [
        (
            r#"{"action": "use", "duty": [{"action": "compensate"}]}"#,
            "odrl:compensate",
        ),
        (
            r#"{"action": "use", "constraint": [{"leftOperand": "payAmount", "operator": "lteq", "rightOperand": 5}]}"#,
            "odrl:payAmount",
        ),
        (
            r#"{"action": "use", "constraint": [{"leftOperand": "https://x.org/dayOfWeek", "operator": "eq", "rightOperand": "Sunday"}]}"#,
            "not an ODRL 2.2 left operand",
        ),
        (
            r#"{"action": "use", "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": {"@id": "dpv:NoSuchPurpose"}}]}"#,
            "not a purpose the node knows",
        ),
        (
            r#"{"action": "use", "constraint": [{"leftOperand": "agora:orgType", "operator": "eq", "rightOperand": "pirate"}]}"#,
            "not an organisation type",
        ),
        (
            r#"{"action": "use", "duty": [{"action": [{"rdf:value": {"@id": "agora:generalise"}, "refinement": [{"leftOperand": "agora:column", "operator": "eq", "rightOperand": "birth_date"}, {"leftOperand": "agora:granularity", "operator": "eq", "rightOperand": "decade"}]}]}]}"#,
            "agora:granularity",
        ),
        (
            r#"{"action": "use", "constraint": [{"or": [{"leftOperand": "agora:rowBudget", "operator": "lteq", "rightOperand": 5}, {"leftOperand": "count", "operator": "lteq", "rightOperand": 1}]}]}"#,
            "agora:rowBudget",
        ),
        (r#"{"action": "odrl:fly"}"#, "odrl:fly"),
    ];
    for (permission, expected) in cases {
        let body = format!(
            r#"{{"@context": ["http://www.w3.org/ns/odrl.jsonld", {{"dpv": "https://w3id.org/dpv#", "agora": "https://w3id.org/agora/ns#"}}],
                "@type": "Offer", "uid": "https://x.org/p", "permission": [{permission}]}}"#
        );
        let policy = parse(body.as_bytes(), RdfSyntax::JsonLd).expect("parses");
        let error = validate(&policy).expect_err(expected);
        assert!(
            error.to_string().contains(expected),
            "expected `{expected}` in: {error}"
        );
        assert!(parse_for_publication(body.as_bytes(), RdfSyntax::JsonLd).is_err());
    }
    let conflict = br#"{"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": "https://x.org/p",
        "permission": [{"action": "use"}], "prohibition": [{"action": "distribute"}]}"#;
    let error = validate(&parse(conflict, RdfSyntax::JsonLd).expect("parses")).expect_err("void");
    assert!(error.to_string().contains("conflict"), "{error}");
}

#[test]
fn cyclic_and_deeply_nested_graphs_are_refused() {
    let cyclic = br#"@prefix odrl: <http://www.w3.org/ns/odrl/2/> .
        <https://x.org/p> a odrl:Set ;
            odrl:permission [ odrl:action odrl:use ; odrl:constraint <https://x.org/c> ] .
        <https://x.org/c> odrl:and <https://x.org/c> ."#;
    let error = parse(cyclic, RdfSyntax::Turtle).expect_err("cycle");
    assert!(
        error.to_string().contains("refers back to itself"),
        "{error}"
    );

    let depth = 10_000;
    let deep = format!(
        "@prefix odrl: <http://www.w3.org/ns/odrl/2/> .\n<https://x.org/p> a odrl:Set ; odrl:permission [ odrl:action odrl:use ; odrl:constraint {} [ odrl:leftOperand odrl:count ; odrl:operator odrl:lteq ; odrl:rightOperand 1 ] {} ] .",
        "[ odrl:and ".repeat(depth),
        "]".repeat(depth)
    );
    let error = parse(deep.as_bytes(), RdfSyntax::Turtle).expect_err("too deep");
    assert!(error.to_string().contains("nest deeper"), "{error}");

    let looping_list = br#"@prefix odrl: <http://www.w3.org/ns/odrl/2/> .
        @prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
        <https://x.org/p> a odrl:Set ;
            odrl:permission [ odrl:action odrl:use ; odrl:constraint [ odrl:andSequence <https://x.org/l> ] ] .
        <https://x.org/l> rdf:first [ odrl:leftOperand odrl:count ; odrl:operator odrl:lteq ; odrl:rightOperand 1 ] ;
            rdf:rest <https://x.org/l> ."#;
    let error = parse(looping_list, RdfSyntax::Turtle).expect_err("list loop");
    assert!(error.to_string().contains("loops back"), "{error}");
}
