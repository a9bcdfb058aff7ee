//! Contracts for people and between nodes: the convenience API (`/api/negotiations`,
//! `/api/agreements`, `/api/transfers`) on the demo pools and their templates, the holder's
//! approval, refusals that name the failed constraint, data-plane tokens and their refresh,
//! expiry ending transfers, state surviving `kill -9`, two real nodes negotiating over DSP, and
//! hostile input on every contract endpoint.

use super::common::{Options, Response, TestNode, bearer, fixture};
use super::dsp_peer::{CONTEXT, Peer, Provider, approval_policy};
use agora::identity::Role;
use serde_json::{Value as Json, json};
use std::time::{Duration, Instant};

fn negotiate(node: &TestNode, token: &str, body: Json) -> Response {
    node.send(
        "POST",
        "/api/negotiations",
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

fn post(node: &TestNode, token: &str, path: &str, body: &[u8]) -> Response {
    node.send(
        "POST",
        path,
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

fn get(node: &TestNode, token: &str, path: &str) -> Response {
    node.get(path, &[("Authorization", &bearer(token))])
}

fn researcher(node: &TestNode, sub: &str, country: &str) -> String {
    node.token(
        sub,
        Role::Researcher,
        &[("country", country), ("org_type", "university")],
    )
}

fn demo() -> TestNode {
    TestNode::start(Options {
        demo: true,
        ..Options::default()
    })
}

/// A researcher of a German university asking for academic research gets the health pool
/// under the EHDS-style template; the agreement carries the policy, the target and the parties,
/// and only its parties and the holder can read it.
#[test]
fn a_permitted_request_ends_in_an_agreement() {
    let node = demo();
    let alice = researcher(&node, "alice", "DE");
    let answer = negotiate(
        &node,
        &alice,
        json!({"dataset": "health", "purpose": "dpv:AcademicResearch"}),
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["state"], "FINALIZED");
    let id = body["id"].as_str().unwrap();
    let agreement = &body["agreement"];
    let agreement_id = agreement["id"].as_str().unwrap();
    assert_eq!(agreement["assignee"], "alice");
    assert_eq!(agreement["assigner"], node.node_id());
    assert_eq!(agreement["policy"]["@type"], "Agreement");
    assert!(
        agreement["expires"]
            .as_str()
            .unwrap()
            .starts_with("2027-06-30"),
        "{agreement}"
    );
    assert_eq!(
        answer.header("location"),
        Some(format!("/api/negotiations/{id}").as_str())
    );

    let again = get(&node, &alice, &format!("/api/negotiations/{id}"));
    assert_eq!(again.json()["agreement"]["id"], agreement_id);
    let events = get(&node, &alice, &format!("/api/negotiations/{id}/events")).json();
    let states: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["REQUESTED", "AGREED", "VERIFIED", "FINALIZED"]);

    assert_eq!(
        get(&node, &alice, &format!("/api/agreements/{agreement_id}")).status,
        200
    );
    let holder = node.token("demo-holder", Role::Holder, &[]);
    assert_eq!(
        get(&node, &holder, &format!("/api/agreements/{agreement_id}")).status,
        200
    );
    let mallory = researcher(&node, "mallory", "DE");
    get(&node, &mallory, &format!("/api/agreements/{agreement_id}")).assert_problem(404);
    get(&node, &mallory, &format!("/api/negotiations/{id}")).assert_problem(404);
    get(&node, &mallory, &format!("/api/negotiations/{id}/events")).assert_problem(404);
}

/// A refusal is a problem that names the negotiation and, in words, the constraint that failed.
#[test]
fn a_refusal_names_the_failed_constraint() {
    let node = demo();
    let alice = researcher(&node, "alice", "DE");
    let marketing = negotiate(
        &node,
        &alice,
        json!({"dataset": "health", "purpose": "dpv:Marketing"}),
    );
    let problem = marketing.assert_problem(403);
    assert_eq!(problem["state"], "TERMINATED");
    let id = problem["negotiation"].as_str().unwrap().to_owned();
    let failed = problem["failed_constraints"].to_string();
    assert!(
        failed.contains("purpose") && failed.contains("Marketing"),
        "{problem}"
    );
    let record = get(&node, &alice, &format!("/api/negotiations/{id}")).json();
    assert_eq!(record["state"], "TERMINATED");
    assert_eq!(record["refusal"]["by"], "provider");

    let bob = researcher(&node, "bob", "US");
    let abroad = negotiate(
        &node,
        &bob,
        json!({"dataset": "health", "purpose": "dpv:AcademicResearch"}),
    );
    let problem = abroad.assert_problem(403);
    assert!(
        problem["detail"].as_str().unwrap().contains("country"),
        "{problem}"
    );

    let nobody = negotiate(&node, &alice, json!({"dataset": "health"}));
    let problem = nobody.assert_problem(403);
    assert!(
        problem["detail"].as_str().unwrap().contains("purpose"),
        "{problem}"
    );
}

/// A policy with `agora:obtainApproval` makes the negotiation wait, visibly, until the
/// dataset's holder decides; nobody else can decide, and a decision is taken once.
#[test]
fn the_holder_approves_or_rejects() {
    let provider = Provider::start(&approval_policy(), &[]);
    let node = &provider.node;
    let alice = researcher(node, "alice", "DE");
    let pending = negotiate(
        node,
        &alice,
        json!({"dataset": provider.dataset, "purpose": "dpv:AcademicResearch"}),
    );
    assert_eq!(pending.status, 202, "{}", pending.text());
    let body = pending.json();
    assert_eq!(body["state"], "REQUESTED");
    assert!(body["waiting"].as_str().unwrap().contains("approval"));
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(get(node, &alice, &format!("/api/negotiations/{id}")).json()["waiting"].is_string());

    post(
        node,
        &alice,
        &format!("/api/negotiations/{id}/approve"),
        b"",
    )
    .assert_problem(403);
    let other_holder = node.token("someone-else", Role::Holder, &[]);
    post(
        node,
        &other_holder,
        &format!("/api/negotiations/{id}/approve"),
        b"",
    )
    .assert_problem(404);
    post(
        node,
        &provider.holder,
        &format!("/api/negotiations/{id}/approve"),
        b"{\"unexpected\": 1}",
    )
    .assert_problem(400);

    let approved = post(
        node,
        &provider.holder,
        &format!("/api/negotiations/{id}/approve"),
        br#"{"note": "permit 42"}"#,
    );
    assert_eq!(approved.status, 201, "{}", approved.text());
    assert_eq!(approved.json()["state"], "FINALIZED");
    post(
        node,
        &provider.holder,
        &format!("/api/negotiations/{id}/approve"),
        b"",
    )
    .assert_problem(409);
    let events = get(node, &alice, &format!("/api/negotiations/{id}/events"))
        .json()
        .to_string();
    assert!(events.contains("permit 42"), "{events}");

    let second = negotiate(
        node,
        &alice,
        json!({"dataset": provider.dataset, "purpose": "dpv:AcademicResearch"}),
    );
    let second_id = second.json()["id"].as_str().unwrap().to_owned();
    let rejected = post(
        node,
        &provider.holder,
        &format!("/api/negotiations/{second_id}/reject"),
        br#"{"note": "no ethics approval"}"#,
    );
    assert_eq!(rejected.status, 200, "{}", rejected.text());
    let record = get(node, &alice, &format!("/api/negotiations/{second_id}")).json();
    assert_eq!(record["state"], "TERMINATED");
    assert!(
        record["refusal"]["reason"]
            .as_str()
            .unwrap()
            .contains("no ethics approval")
    );
}

/// A transfer answers the data-plane endpoint and a token bound to the agreement; the token
/// opens nothing else, refreshes while the transfer runs, and other people cannot use the
/// agreement.
#[test]
fn transfers_hand_out_a_bound_token_and_refresh_it() {
    let node = demo();
    let alice = researcher(&node, "alice", "DE");
    let agreed = negotiate(
        &node,
        &alice,
        json!({"dataset": "climate", "purpose": "dpv:AcademicResearch"}),
    );
    assert_eq!(agreed.status, 201, "{}", agreed.text());
    let agreement = agreed.json()["agreement"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let started = post(
        &node,
        &alice,
        "/api/transfers",
        json!({"agreement": agreement}).to_string().as_bytes(),
    );
    assert_eq!(started.status, 201, "{}", started.text());
    let transfer = started.json();
    assert_eq!(transfer["state"], "STARTED");
    assert!(
        transfer["endpoint"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/data/{agreement}"))
    );
    let token = transfer["token"].as_str().unwrap().to_owned();
    let claims = decode_claims(&token);
    assert_eq!(claims["agreement"], agreement.as_str());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["token_use"], "data-plane");
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 600);

    // A data-plane token is not a participant token.
    get(&node, &token, &format!("/api/agreements/{agreement}")).assert_problem(401);
    negotiate(&node, &token, json!({"dataset": "climate"})).assert_problem(401);

    let id = transfer["id"].as_str().unwrap();
    let refresh_url = transfer["refresh"]["url"].as_str().unwrap();
    assert!(refresh_url.ends_with(&format!("/api/transfers/{id}/token")));
    let refreshed = post(&node, &alice, &format!("/api/transfers/{id}/token"), b"");
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    assert_eq!(
        decode_claims(refreshed.json()["token"].as_str().unwrap())["agreement"],
        agreement.as_str()
    );

    let mallory = researcher(&node, "mallory", "DE");
    post(
        &node,
        &mallory,
        "/api/transfers",
        json!({"agreement": agreement}).to_string().as_bytes(),
    )
    .assert_problem(404);
    post(&node, &mallory, &format!("/api/transfers/{id}/token"), b"").assert_problem(404);

    assert_eq!(
        post(&node, &alice, &format!("/api/transfers/{id}/complete"), b"").status,
        200
    );
    post(&node, &alice, &format!("/api/transfers/{id}/token"), b"").assert_problem(409);
    post(&node, &alice, &format!("/api/transfers/{id}/suspend"), b"").assert_problem(409);
    let view = get(&node, &alice, &format!("/api/transfers/{id}")).json();
    assert_eq!(view["state"], "COMPLETED");
    assert!(view["events"].as_array().unwrap().len() >= 3);
}

fn decode_claims(token: &str) -> Json {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// An agreement that expires ends its running transfers: the node's expiry check terminates
/// them and says why.
#[test]
fn an_expiring_agreement_ends_its_transfers() {
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let policy = format!(
        "@prefix odrl: <http://www.w3.org/ns/odrl/2/> .\n\
         <https://energy.example/datasets/grid-load-2024> odrl:hasPolicy <urn:test:short-lived> .\n\
         <urn:test:short-lived> a odrl:Offer ; odrl:profile <https://w3id.org/agora/profile> ;\n\
           odrl:permission [ odrl:action odrl:use ; odrl:constraint [ odrl:leftOperand odrl:dateTime ; odrl:operator odrl:lteq ;\n\
             odrl:rightOperand \"{soon}\"^^<http://www.w3.org/2001/XMLSchema#dateTime> ] ] .\n"
    );
    let provider = Provider::start(&policy, &[]);
    let node = &provider.node;
    let alice = researcher(node, "alice", "DE");
    let agreed = negotiate(node, &alice, json!({"dataset": provider.dataset}));
    assert_eq!(agreed.status, 201, "{}", agreed.text());
    assert_eq!(agreed.json()["agreement"]["expires"], soon.as_str());
    let agreement = agreed.json()["agreement"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = post(
        node,
        &alice,
        "/api/transfers",
        json!({"agreement": agreement}).to_string().as_bytes(),
    );
    assert_eq!(started.status, 201, "{}", started.text());
    let id = started.json()["id"].as_str().unwrap().to_owned();
    // Waiting for an event with a generous guard, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(60);
    let view = loop {
        let view = get(node, &alice, &format!("/api/transfers/{id}")).json();
        if view["state"] == "TERMINATED" || Instant::now() > deadline {
            break view;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(view["state"], "TERMINATED", "{view}");
    assert!(
        view["reason"].as_str().unwrap().contains("expired"),
        "{view}"
    );
    post(
        node,
        &alice,
        "/api/transfers",
        json!({"agreement": agreement}).to_string().as_bytes(),
    )
    .assert_problem(403);
}

/// Negotiations, agreements, transfers and their logs are acknowledged writes: they survive a
/// `kill -9`.
#[test]
fn contract_state_survives_kill_9() {
    let mut node = demo();
    let alice = researcher(&node, "alice", "DE");
    let agreed = negotiate(
        &node,
        &alice,
        json!({"dataset": "mobility", "purpose": "dpv:AcademicResearch"}),
    );
    assert_eq!(agreed.status, 201, "{}", agreed.text());
    let id = agreed.json()["id"].as_str().unwrap().to_owned();
    let agreement = agreed.json()["agreement"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = post(
        &node,
        &alice,
        "/api/transfers",
        json!({"agreement": agreement}).to_string().as_bytes(),
    );
    let transfer = started.json()["id"].as_str().unwrap().to_owned();
    node.kill9_and_restart();
    let alice = researcher(&node, "alice", "DE");
    let record = get(&node, &alice, &format!("/api/negotiations/{id}")).json();
    assert_eq!(record["state"], "FINALIZED");
    assert_eq!(record["agreement"]["id"], agreement.as_str());
    assert_eq!(
        get(&node, &alice, &format!("/api/negotiations/{id}/events")).json()["events"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        get(&node, &alice, &format!("/api/transfers/{transfer}")).json()["state"],
        "STARTED"
    );
    assert_eq!(
        post(
            &node,
            &alice,
            &format!("/api/transfers/{transfer}/token"),
            b""
        )
        .status,
        200
    );
}

/// Two real nodes, each trusting the other's signing key: a researcher on node A negotiates
/// for node B's health pool over DSP (A as consumer, B as provider), B evaluates the claims A
/// forwards, and the researcher starts a transfer whose endpoint is on B.
#[test]
fn two_nodes_negotiate_over_dsp() {
    let mut provider = demo();
    let mut consumer = TestNode::start(Options::default());
    trust_each_other(&mut provider, &mut consumer);
    let alice = researcher(&consumer, "alice", "DE");
    let answer = negotiate(
        &consumer,
        &alice,
        json!({"dataset": "health", "purpose": "dpv:AcademicResearch", "provider": format!("{}/dsp", provider.url)}),
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["side"], "consumer");
    let agreement = body["agreement"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["agreement"]["assigner"], provider.node_id());
    assert_eq!(body["agreement"]["assignee"], consumer.node_id());
    let events = get(
        &consumer,
        &alice,
        &format!("/api/negotiations/{}/events", body["id"].as_str().unwrap()),
    )
    .json()
    .to_string();
    assert!(
        events.contains("ContractAgreementVerificationMessage"),
        "{events}"
    );

    let started = post(
        &consumer,
        &alice,
        "/api/transfers",
        json!({"agreement": agreement}).to_string().as_bytes(),
    );
    assert_eq!(started.status, 201, "{}", started.text());
    let endpoint = started.json()["endpoint"].as_str().unwrap().to_owned();
    assert!(endpoint.starts_with(&provider.url), "{endpoint}");

    let marketing = negotiate(
        &consumer,
        &alice,
        json!({"dataset": "health", "purpose": "dpv:Marketing", "provider": format!("{}/dsp", provider.url)}),
    );
    let problem = marketing.assert_problem(403);
    assert!(
        problem["detail"].as_str().unwrap().contains("Marketing"),
        "{problem}"
    );
}

/// Restarts both nodes with a configuration that trusts the other node's development issuer
/// and lets DSP messages go to loopback.
fn trust_each_other(a: &mut TestNode, b: &mut TestNode) {
    let key = |node: &TestNode| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
            .args(["token", "public-key", "--data-dir"])
            .arg(&node.data_dir)
            .output()
            .expect("agora token public-key");
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let (key_a, key_b) = (key(a), key(b));
    for (node, other) in [(&mut *a, &key_b), (&mut *b, &key_a)] {
        let issuer = other
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("# issuer: ")
            .to_owned();
        let pem_path = node.data_dir.join("peer.pem");
        std::fs::write(
            &pem_path,
            other
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
        let config = node.data_dir.join("agora.toml");
        std::fs::write(&config, format!(
            "[contracts]\nallow_private_addresses = true\n\n[[identity.trusted_issuers]]\nissuer = \"{issuer}\"\npublic_key_pem = \"{}\"\nalgorithm = \"EdDSA\"\n",
            pem_path.display()
        )).unwrap();
        node.restart_with(&["--config".into(), config.display().to_string()]);
    }
}

/// Malformed, oversized, unauthorised and hostile input to the convenience API gets a 4xx
/// problem a person can act on, and creates nothing.
#[test]
fn hostile_input_to_the_contract_api() {
    let node = demo();
    let alice = researcher(&node, "alice", "DE");
    node.send(
        "POST",
        "/api/negotiations",
        &[("Content-Type", "application/json")],
        br#"{"dataset": "health"}"#,
    )
    .assert_problem(401);
    let garbled = post(&node, &alice, "/api/negotiations", b"{\"dataset\": ");
    assert!(
        garbled.assert_problem(400)["detail"]
            .as_str()
            .unwrap()
            .contains("dataset")
    );
    post(
        &node,
        &alice,
        "/api/negotiations",
        br#"{"dataset": "health", "assignee": "root"}"#,
    )
    .assert_problem(400);
    negotiate(&node, &alice, json!({"dataset": "no-such-pool"})).assert_problem(404);
    negotiate(
        &node,
        &alice,
        json!({"dataset": "health", "purpose": "not an iri"}),
    )
    .assert_problem(400);
    negotiate(
        &node,
        &alice,
        json!({"dataset": "health", "offer": "urn:nope"}),
    )
    .assert_problem(400);
    negotiate(
        &node,
        &alice,
        json!({"dataset": "health", "provider": "file:///etc/passwd"}),
    )
    .assert_problem(400);
    negotiate(
        &node,
        &alice,
        json!({"dataset": "health", "provider": "http://169.254.169.254/latest"}),
    )
    .assert_problem(400);
    let huge = format!("{{\"dataset\": \"{}\"}}", "a".repeat(5 << 20));
    post(&node, &alice, "/api/negotiations", huge.as_bytes()).assert_problem(413);
    post(&node, &alice, "/api/transfers", b"[]").assert_problem(400);
    post(
        &node,
        &alice,
        "/api/transfers",
        br#"{"agreement": "urn:uuid:00000000-0000-0000-0000-000000000000"}"#,
    )
    .assert_problem(404);
    get(&node, &alice, "/api/negotiations/urn:uuid:nope").assert_problem(404);
    post(&node, &alice, "/api/transfers/urn:uuid:nope/explode", b"").assert_problem(404);
}

/// Hostile DSP messages get the protocol's error with the right status and change nothing:
/// malformed JSON-LD, foreign contexts, unknown and foreign processes, a replayed request, the
/// wrong participant, an illegal transition, no token, and a callback address on the node's own
/// network.
#[test]
fn hostile_dsp_messages_change_nothing() {
    let provider = Provider::start(
        &super::dsp_peer::template_policy(super::dsp_peer::OPEN),
        &[],
    );
    let peer = Peer::start();
    let node = &provider.node;

    let malformed = provider.post("/dsp/negotiations/request", &json!("not an object"));
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["@type"], "ContractNegotiationError");
    let raw = node.send(
        "POST",
        "/dsp/negotiations/request",
        &[("Authorization", &bearer(&provider.consumer))],
        b"{\"@context\": [",
    );
    assert_eq!(raw.status, 400);
    let foreign = provider.post(
        "/dsp/catalog/request",
        &json!({"@context": ["http://127.0.0.1:1/evil.jsonld"], "@type": "CatalogRequestMessage"}),
    );
    assert_eq!(foreign.status, 400);
    assert_eq!(foreign.json()["@type"], "CatalogError");
    let no_token = node.send(
        "POST",
        "/dsp/catalog/request",
        &[],
        json!({"@context": [CONTEXT], "@type": "CatalogRequestMessage"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(no_token.status, 401);
    assert_eq!(no_token.json()["@type"], "CatalogError");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        node.send(
            "POST",
            "/dsp/negotiations/request",
            &[("Authorization", &bearer(&provider.consumer))],
            deep.as_bytes()
        )
        .status,
        400
    );

    let (consumer_pid, provider_pid) = provider.request(&peer, provider.exact_offer());
    peer.expect("ContractAgreementMessage");

    // Replay of the initial request: refused, no second negotiation.
    let replay = provider.post("/dsp/negotiations/request", &json!({"@context": [CONTEXT], "@type": "ContractRequestMessage",
        "consumerPid": consumer_pid, "offer": provider.exact_offer(), "callbackAddress": peer.dsp()}));
    assert_eq!(replay.status, 409, "{}", replay.text());
    peer.assert_none("ContractAgreementMessage");

    // Unknown process and another participant's process look the same: 404.
    let verification = |pid: &str| {
        Provider::negotiation_message(
            "ContractAgreementVerificationMessage",
            pid,
            &consumer_pid,
            json!({}),
        )
    };
    let unknown = provider.post(
        "/dsp/negotiations/urn:uuid:unknown/agreement/verification",
        &verification("urn:uuid:unknown"),
    );
    assert_eq!(unknown.status, 404);
    let eve = node.token("urn:participant:eve", Role::Researcher, &[]);
    let foreign = provider.post_as(
        &eve,
        &format!("/dsp/negotiations/{provider_pid}/agreement/verification"),
        &verification(&provider_pid),
    );
    assert_eq!(foreign.status, 404);
    assert_eq!(
        node.get(
            &format!("/dsp/negotiations/{provider_pid}"),
            &[("Authorization", &bearer(&eve))]
        )
        .status,
        404
    );
    // Mismatched pids are another process.
    let mismatched = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/agreement/verification"),
        &Provider::negotiation_message(
            "ContractAgreementVerificationMessage",
            &provider_pid,
            "urn:uuid:other",
            json!({}),
        ),
    );
    assert_eq!(mismatched.status, 404);
    // The wrong message at an endpoint, and an illegal transition.
    let wrong = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/events"),
        &verification(&provider_pid),
    );
    assert_eq!(wrong.status, 400);
    let illegal = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/events"),
        &Provider::negotiation_message(
            "ContractNegotiationEventMessage",
            &provider_pid,
            &consumer_pid,
            json!({"eventType": "FINALIZED"}),
        ),
    );
    assert_eq!(illegal.status, 400);
    assert!(
        illegal.json()["reason"][0]
            .as_str()
            .unwrap()
            .contains("only the provider"),
        "{}",
        illegal.text()
    );
    assert_eq!(provider.negotiation_state(&provider_pid), "AGREED");

    // A transfer under someone else's agreement does not exist for them.
    let transfer = provider.post_as(&eve, "/dsp/transfers/request", &json!({"@context": [CONTEXT], "@type": "TransferRequestMessage",
        "consumerPid": "urn:uuid:t", "agreementId": "urn:uuid:nope", "format": "HttpData-PULL", "callbackAddress": peer.dsp()}));
    assert_eq!(transfer.status, 404);
    assert_eq!(transfer.json()["@type"], "TransferError");

    // Without --allow-private-addresses the node calls nobody on its own network.
    let strict = TestNode::start(Options::default());
    let holder = strict.token("grid-operator", Role::Holder, &[]);
    let mut description = fixture("dataset.ttl");
    description
        .extend_from_slice(super::dsp_peer::template_policy(super::dsp_peer::OPEN).as_bytes());
    let published = strict.send(
        "POST",
        "/api/datasets",
        &[
            ("Content-Type", "text/turtle"),
            ("Authorization", &bearer(&holder)),
        ],
        &description,
    );
    assert_eq!(published.status, 201);
    let consumer = strict.token("urn:participant:consumer", Role::Researcher, &[]);
    let entry = strict
        .get(
            &format!(
                "/dsp/catalog/datasets/{}",
                published.json()["id"].as_str().unwrap()
            ),
            &[("Authorization", &bearer(&consumer))],
        )
        .json();
    let mut offer = entry["hasPolicy"][0].clone();
    offer["target"] = entry["@id"].clone();
    let ssrf = strict.send("POST", "/dsp/negotiations/request", &[("Authorization", &bearer(&consumer)), ("Content-Type", "application/json")],
        json!({"@context": [CONTEXT], "@type": "ContractRequestMessage", "consumerPid": "urn:uuid:x", "offer": offer, "callbackAddress": peer.dsp()}).to_string().as_bytes());
    assert_eq!(ssrf.status, 400, "{}", ssrf.text());
    assert!(
        ssrf.json()["reason"][0]
            .as_str()
            .unwrap()
            .contains("refused")
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        peer.all()
            .iter()
            .all(|m| m.body["consumerPid"] != "urn:uuid:x"),
        "the node called its own network"
    );
}

/// A dataset whose access policy a requester fails does not exist for them: not in DSP (catalog
/// and dataset request, negotiation), not in search (items, totals, facets), not in the DCAT
/// catalogue or the REST API, and never in public SPARQL; a requester who satisfies it sees it
/// everywhere but SPARQL.
#[test]
fn restricted_datasets_are_invisible_to_those_who_fail_their_access_policy() {
    let node = TestNode::start(Options::default());
    let holder = node.token("grid-operator", Role::Holder, &[]);
    let mut description = fixture("dataset.ttl");
    description.extend_from_slice(
        b"<https://energy.example/datasets/grid-load-2024> <https://w3id.org/agora/ns#accessPolicy> <https://w3id.org/agora/policies/eu-only> ;\n\
          <http://www.w3.org/ns/odrl/2/hasPolicy> <https://w3id.org/agora/policies/open-data-attribution> .\n",
    );
    let published = node.send(
        "POST",
        "/api/datasets",
        &[
            ("Content-Type", "text/turtle"),
            ("Authorization", &bearer(&holder)),
        ],
        &description,
    );
    assert_eq!(published.status, 201, "{}", published.text());
    let id = published.json()["id"].as_str().unwrap().to_owned();
    let open = String::from_utf8(fixture("dataset.ttl"))
        .unwrap()
        .replace("grid-load-2024", "grid-load-2025");
    let published = node.send(
        "POST",
        "/api/datasets",
        &[
            ("Content-Type", "text/turtle"),
            ("Authorization", &bearer(&holder)),
        ],
        open.as_bytes(),
    );
    assert_eq!(published.status, 201, "{}", published.text());

    let european = researcher(&node, "alice", "FR");
    let american = researcher(&node, "bob", "US");
    for (token, visible) in [
        (Some(&european), true),
        (Some(&american), false),
        (None, false),
    ] {
        let headers: Vec<(&str, String)> = token
            .map(|t| ("Authorization", bearer(t)))
            .into_iter()
            .collect();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let read = node.get(&format!("/api/datasets/{id}"), &headers);
        assert_eq!(read.status == 200, visible, "GET: {}", read.status);
        let search = node.get("/api/datasets?q=electricity", &headers).json();
        assert_eq!(search["total"], if visible { 2 } else { 1 }, "{search}");
        assert_eq!(
            search.to_string().contains("grid-load-2024"),
            visible,
            "{search}"
        );
        let catalog = node
            .get(
                "/catalog",
                &[headers.as_slice(), &[("Accept", "application/n-triples")]].concat(),
            )
            .text();
        assert_eq!(catalog.contains("grid-load-2024"), visible);
        if let Some(token) = token {
            let dsp = node.send(
                "POST",
                "/dsp/catalog/request",
                &[
                    ("Authorization", &bearer(token)),
                    ("Content-Type", "application/json"),
                ],
                json!({"@context": [CONTEXT], "@type": "CatalogRequestMessage"})
                    .to_string()
                    .as_bytes(),
            );
            assert_eq!(dsp.json().to_string().contains("grid-load-2024"), visible);
            let entry = node.get(
                &format!("/dsp/catalog/datasets/{id}"),
                &[("Authorization", &bearer(token))],
            );
            assert_eq!(entry.status == 200, visible);
            let negotiation = negotiate(&node, token, json!({"dataset": id}));
            assert_eq!(
                negotiation.status,
                if visible { 201 } else { 404 },
                "{}",
                negotiation.text()
            );
        }
        // Public SPARQL serves only unrestricted datasets, to everyone.
        let sparql = node.send(
            "POST",
            "/sparql",
            &[
                headers.as_slice(),
                &[
                    ("Content-Type", "application/sparql-query"),
                    ("Accept", "text/csv"),
                ],
            ]
            .concat(),
            b"SELECT ?d ?title WHERE { ?d <http://purl.org/dc/terms/title> ?title }",
        );
        assert_eq!(sparql.status, 200, "{}", sparql.text());
        assert!(
            sparql.text().contains("grid-load-2025"),
            "the open dataset is served: {}",
            sparql.text()
        );
        assert!(
            !sparql.text().contains("grid-load-2024"),
            "{}",
            sparql.text()
        );
    }
}

/// Every data-plane token is audited before it is handed out; the dataset's holder (only)
/// reads the trail, and `agora audit verify` catches an edited log.
#[test]
fn the_audit_trail_is_the_holders_and_tamper_evident() {
    let mut node = demo();
    let alice = researcher(&node, "alice", "DE");
    let agreed = negotiate(
        &node,
        &alice,
        json!({"dataset": "climate", "purpose": "dpv:AcademicResearch"}),
    );
    let agreement = agreed.json()["agreement"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = post(
        &node,
        &alice,
        "/api/transfers",
        json!({"agreement": agreement}).to_string().as_bytes(),
    );
    let id = started.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        post(&node, &alice, &format!("/api/transfers/{id}/token"), b"").status,
        200
    );

    let holder = node.token("demo-holder", Role::Holder, &[]);
    let trail = get(&node, &holder, "/api/audit?dataset=climate");
    assert_eq!(trail.status, 200, "{}", trail.text());
    let entries = trail.json()["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().all(|e| e["who"] == "alice"
        && e["agreement"] == agreement.as_str()
        && e["event"] == "token-issued"));
    assert!(
        get(&node, &holder, "/api/audit?dataset=health").json()["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    get(&node, &alice, "/api/audit?dataset=climate").assert_problem(403);
    let stranger = node.token("other-holder", Role::Holder, &[]);
    get(&node, &stranger, "/api/audit?dataset=climate").assert_problem(404);
    get(&node, &holder, "/api/audit").assert_problem(400);

    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
            .args(["audit", "verify", "--data-dir"])
            .arg(&node.data_dir)
            .output()
            .expect("agora audit verify")
    };
    let intact = verify();
    assert!(
        intact.status.success(),
        "{}",
        String::from_utf8_lossy(&intact.stderr)
    );
    assert!(String::from_utf8_lossy(&intact.stdout).contains("2 entries"));
    let log = node.data_dir.join("audit/log.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, text.replacen("alice", "mallory", 1)).unwrap();
    let tampered = verify();
    assert!(!tampered.status.success());
    assert!(
        String::from_utf8_lossy(&tampered.stderr).contains("tampered with at entry 2"),
        "{}",
        String::from_utf8_lossy(&tampered.stderr)
    );

    // A node whose log was cut short while it was down does not sign a new head over it.
    node.terminate();
    std::fs::write(&log, text.lines().next().unwrap().to_owned() + "\n").unwrap();
    let mut restarted = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&node.data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("agora serve");
    // Read until the node either says it listens (a failure: stop it) or exits.
    use std::io::BufRead as _;
    let stdout = std::io::BufReader::new(restarted.stdout.take().unwrap());
    for line in stdout.lines().map_while(Result::ok) {
        if line.contains("listening") {
            let _ = restarted.kill();
            panic!("the node started over a truncated audit log: {line}");
        }
    }
    let status = restarted.wait().unwrap();
    let stderr = std::io::read_to_string(restarted.stderr.take().unwrap()).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("tampered with"), "{stderr}");
}

/// The AI-training template admits the profile's own purpose, written `agora:AITraining`, and
/// nothing else.
#[test]
fn ai_training_is_a_purpose_of_its_own() {
    let provider = Provider::start(
        &super::dsp_peer::template_policy("https://w3id.org/agora/policies/ai-training-count"),
        &[],
    );
    let alice = researcher(&provider.node, "alice", "DE");
    let trained = negotiate(
        &provider.node,
        &alice,
        json!({"dataset": provider.dataset, "purpose": "agora:AITraining"}),
    );
    assert_eq!(trained.status, 201, "{}", trained.text());
    negotiate(
        &provider.node,
        &alice,
        json!({"dataset": provider.dataset, "purpose": "dpv:AcademicResearch"}),
    )
    .assert_problem(403);
}

/// Across two nodes, a negotiation that waits for the provider's holder says why on the
/// consumer's side too, and completes once the holder approves.
#[test]
fn a_remote_negotiation_shows_why_it_waits() {
    let mut provider = TestNode::start(Options::default());
    let mut consumer = TestNode::start(Options::default());
    trust_each_other(&mut provider, &mut consumer);
    let holder = provider.token("grid-operator", Role::Holder, &[]);
    let mut description = fixture("dataset.ttl");
    description.extend_from_slice(approval_policy().as_bytes());
    let published = provider.send(
        "POST",
        "/api/datasets",
        &[
            ("Content-Type", "text/turtle"),
            ("Authorization", &bearer(&holder)),
        ],
        &description,
    );
    assert_eq!(published.status, 201, "{}", published.text());
    let dataset = published.json()["id"].as_str().unwrap().to_owned();

    let alice = researcher(&consumer, "alice", "DE");
    let pending = negotiate(
        &consumer,
        &alice,
        json!({"dataset": dataset, "purpose": "dpv:AcademicResearch", "provider": format!("{}/dsp", provider.url)}),
    );
    assert_eq!(pending.status, 202, "{}", pending.text());
    let body = pending.json();
    assert!(
        body["waiting"].as_str().unwrap().contains("approval"),
        "{body}"
    );
    let id = body["id"].as_str().unwrap().to_owned();

    let provider_pid = body["provider_pid"].as_str().unwrap().to_owned();
    let approved = post(
        &provider,
        &holder,
        &format!("/api/negotiations/{provider_pid}/approve"),
        b"",
    );
    assert_eq!(
        approved.status,
        202,
        "the provider waits for the consumer's verification: {}",
        approved.text()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = get(&consumer, &alice, &format!("/api/negotiations/{id}")).json();
        if state["state"] == "FINALIZED" {
            assert!(state["agreement"]["id"].is_string(), "{state}");
            break;
        }
        assert!(Instant::now() < deadline, "stayed {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
