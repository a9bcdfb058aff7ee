//! Matrix R19 (`SECURITY.md`, issue 9 "Hardening"), BOLA/BFLA: one participant cannot read
//! or alter another's negotiation, agreement, transfer, data-plane token (EDR) or audit
//! trail, nor change or delete another holder's catalogue entry; the refusal is the missing
//! resource's own answer, so it is no probe for ids; and no cross-tenant request is answered
//! with a 2xx.
//!
//! Two parts: handwritten cases for every operation of `GET /openapi.json` whose path has a
//! `{…}` parameter (the test reads the document, so a new route without a case fails it), each
//! attacked by an identity of the owner's role and one of another role; and a Schemathesis run
//! with two tenants (`tests/conformance/schemathesis/tenancy_hooks.py`) in which resources of
//! one tenant are requested with the other's token.

use crate::common::{Options, Response, TestNode, bearer, fixture, pull_rights, researcher};
use crate::openapi_fuzz::schemathesis;
use agora::identity::{DevIssuer, Role, TokenRequest};
use agora::node::DEMO_HOLDER;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The IRI of the fixture dataset (`tests/fixtures/dataset.ttl`).
const FIXTURE_IRI: &str = "https://energy.example/datasets/grid-load-2024";

/// What a cross-tenant request must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Exactly what the same request about a missing resource gets (status, headers that
    /// describe the body, body with the id swapped): nothing tells the resource exists.
    LikeMissing,
    /// A refusal (4xx). Only for changes to a dataset the catalogue shows the caller anyway.
    Refused,
}

/// One cross-tenant request and its twin about a resource that does not exist.
struct Attempt {
    who: &'static str,
    same_role: bool,
    token: String,
    method: &'static str,
    path: String,
    missing_path: String,
    /// The victim's id in `path` and the missing one in `missing_path`.
    ids: (String, String),
    body: Vec<u8>,
    content_type: Option<&'static str>,
    expect: Expect,
}

impl Attempt {
    fn send(&self, node: &TestNode, path: &str) -> Response {
        let auth = bearer(&self.token);
        let mut headers = vec![("Authorization", auth.as_str())];
        if let Some(content_type) = self.content_type {
            headers.push(("Content-Type", content_type));
        }
        node.send(self.method, path, &headers, &self.body)
    }

    /// Sends the attempt and its twin; answers what is wrong, if anything.
    fn check(&self, node: &TestNode) -> Option<String> {
        let what = format!("{} {} as {}", self.method, self.path, self.who);
        let answer = self.send(node, &self.path);
        if (200..300).contains(&answer.status) {
            return Some(format!(
                "{what}: cross-tenant {}: {}",
                answer.status,
                answer.text()
            ));
        }
        if !(400..500).contains(&answer.status) {
            return Some(format!(
                "{what}: {} is no refusal: {}",
                answer.status,
                answer.text()
            ));
        }
        if self.expect == Expect::Refused {
            return None;
        }
        let missing = self.send(node, &self.missing_path);
        let (victim, absent) = &self.ids;
        let swapped = answer.text().replace(victim.as_str(), absent);
        if answer.status != missing.status
            || answer.header("content-type") != missing.header("content-type")
            || swapped != missing.text()
        {
            return Some(format!(
                "{what}: distinguishable from a missing resource: {} {} vs {} {}",
                answer.status,
                answer.text(),
                missing.status,
                missing.text()
            ));
        }
        None
    }
}

/// A development token with several roles (the harness's `token` takes one).
fn token_with_roles(node: &TestNode, sub: &str, roles: &[Role], claims: &[&str]) -> String {
    let node_id = node.node_id();
    let issuer = DevIssuer::load_or_create(&node.data_dir, &node_id).expect("issuer");
    let request = TokenRequest {
        subject: sub.into(),
        roles: roles.to_vec(),
        claims: Default::default(),
        lifetime: Duration::from_secs(1800),
    }
    .with_claim_pairs(claims.iter().copied())
    .expect("claims");
    issuer
        .issue(&request, &node_id, chrono::Utc::now())
        .expect("token")
}

/// `method path` with a JSON body as `token`'s bearer.
fn call(node: &TestNode, token: &str, method: &str, path: &str, body: &Value) -> Response {
    node.send(
        method,
        path,
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

/// Publishes `turtle` as `token`'s holder; answers the dataset id.
fn publish(node: &TestNode, token: &str, turtle: &[u8]) -> String {
    let published = node.send(
        "POST",
        "/api/datasets",
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "text/turtle"),
        ],
        turtle,
    );
    assert_eq!(published.status, 201, "{}", published.text());
    published.json()["id"].as_str().expect("id").to_owned()
}

/// The `{…}` operations of the node's OpenAPI document, as `METHOD /template`.
fn templated_operations(node: &TestNode) -> BTreeSet<String> {
    let doc = node.get("/openapi.json", &[]).json();
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.contains('{') {
            continue;
        }
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch", "head"].contains(&method.as_str()) {
                operations.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    operations
}

/// A fresh id of the shape the contract store uses.
fn missing_urn() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// Matrix R19, handwritten: every `{…}` operation of the OpenAPI document is requested on
/// another participant's resource by an identity of the owner's role and by one of another
/// role, and the answer is a refusal identical (status, content type, body with the id
/// swapped) to the answer about a missing resource — except a change to a dataset the
/// catalogue shows the caller, which need only be refused. Beyond the path parameters: a
/// transfer under another's agreement, another holder's audit trail, the DSP views of another's
/// negotiation and transfer, another's Delta Sharing share, publishing over another's entry.
/// Afterwards every victim resource is as it was.
///
/// Failed before the fixes: PUT and DELETE of a dataset hidden from the caller by its access
/// policy answered 403 "only the holder who published dataset `…`" where a missing id gets
/// 404 — an existence probe for hidden datasets.
#[test]
fn r19_every_id_route_refuses_other_tenants_like_a_missing_resource() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    // Tenant A: the demo holder (holds `mobility`) and alice, a researcher.
    let holder_a = node.token(DEMO_HOLDER, Role::Holder, &[]);
    let alice = researcher(&node, "alice");
    // Tenant B: holder-b (holds a dataset only EU requesters see, whose use needs approval),
    // bob, a researcher, and carol, a researcher outside the EU.
    let holder_b = node.token("holder-b", Role::Holder, &[("country", "DE")]);
    let bob = researcher(&node, "bob");
    let carol = node.token("carol", Role::Researcher, &[("country", "US")]);
    let trent = node.token("trent", Role::Trainer, &[("country", "DE")]);

    let mut hidden_description = fixture("dataset.ttl");
    hidden_description.extend_from_slice(
        format!(
            "<{FIXTURE_IRI}> <https://w3id.org/agora/ns#accessPolicy> <https://w3id.org/agora/policies/eu-only> ;\n\
               <http://www.w3.org/ns/odrl/2/hasPolicy> <urn:test:approval> .\n\
             <urn:test:approval> a <http://www.w3.org/ns/odrl/2/Offer> ; <http://www.w3.org/ns/odrl/2/profile> <https://w3id.org/agora/profile> ;\n\
               <http://www.w3.org/ns/odrl/2/permission> [ <http://www.w3.org/ns/odrl/2/action> <http://www.w3.org/ns/odrl/2/use> ;\n\
                 <http://www.w3.org/ns/odrl/2/duty> [ <http://www.w3.org/ns/odrl/2/action> <https://w3id.org/agora/ns#obtainApproval> ] ] .\n"
        )
        .as_bytes(),
    );
    let hidden = publish(&node, &holder_b, &hidden_description);
    assert_eq!(
        node.get(
            &format!("/api/datasets/{hidden}"),
            &[("Authorization", &bearer(&holder_a))]
        )
        .status,
        404,
        "the access policy hides holder-b's dataset from the demo holder"
    );
    // Alice's pending request on it (holder-b's inbox), and alice's and bob's rights on
    // `mobility`.
    let pending = call(
        &node,
        &alice,
        "POST",
        "/api/negotiations",
        &json!({"dataset": hidden, "purpose": "dpv:AcademicResearch"}),
    );
    assert_eq!(pending.status, 202, "{}", pending.text());
    let pending = pending.json()["id"].as_str().expect("id").to_owned();
    let (agreement, transfer, data_token) = pull_rights(&node, "alice", "mobility");
    let (_, _, bob_data_token) = pull_rights(&node, "bob", "mobility");
    let negotiation = call(
        &node,
        &alice,
        "GET",
        &format!("/api/agreements/{agreement}"),
        &json!(null),
    )
    .json()["negotiation"]
        .as_str()
        .expect("negotiation")
        .to_owned();
    let before = victims(
        &node,
        &alice,
        &holder_b,
        &negotiation,
        &agreement,
        &transfer,
        &pending,
        &hidden,
    );

    let dataset_missing = "0123456789ab".to_owned();
    let urn_missing = missing_urn();
    let mut table: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
    let mut add = |operation: &str,
                   who: &'static str,
                   same_role: bool,
                   token: &str,
                   victim: &str,
                   missing: &str,
                   body: &[u8],
                   content_type: Option<&'static str>,
                   expect: Expect| {
        let (method, template) = operation.split_once(' ').expect("METHOD /path");
        let method: &'static str = match method {
            "GET" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "DELETE" => "DELETE",
            other => panic!("no method {other}"),
        };
        let fill = |id: &str| {
            template
                .replace("{id}", id)
                .replace("{agreement}", id)
                .replace("{n}", "0")
        };
        let paths: Vec<(String, String)> = if template.contains("{action}") {
            ["suspend", "resume", "complete", "terminate"]
                .iter()
                .map(|a| {
                    (
                        fill(victim).replace("{action}", a),
                        fill(missing).replace("{action}", a),
                    )
                })
                .collect()
        } else {
            vec![(fill(victim), fill(missing))]
        };
        for (path, missing_path) in paths {
            table
                .entry(operation.to_owned())
                .or_default()
                .push(Attempt {
                    who,
                    same_role,
                    token: token.to_owned(),
                    method,
                    path,
                    missing_path,
                    ids: (victim.to_owned(), missing.to_owned()),
                    body: body.to_vec(),
                    content_type,
                    expect,
                });
        }
    };
    use Expect::{LikeMissing, Refused};
    for operation in [
        "GET /api/negotiations/{id}",
        "GET /api/negotiations/{id}/events",
    ] {
        add(
            operation,
            "bob (researcher)",
            true,
            &bob,
            &negotiation,
            &urn_missing,
            b"",
            None,
            LikeMissing,
        );
        add(
            operation,
            "holder-b (holder)",
            false,
            &holder_b,
            &negotiation,
            &urn_missing,
            b"",
            None,
            LikeMissing,
        );
    }
    add(
        "POST /api/negotiations/{id}/terminate",
        "bob (researcher)",
        true,
        &bob,
        &pending,
        &urn_missing,
        b"",
        None,
        LikeMissing,
    );
    add(
        "POST /api/negotiations/{id}/terminate",
        "the demo holder (holder)",
        false,
        &holder_a,
        &pending,
        &urn_missing,
        b"",
        None,
        LikeMissing,
    );
    for operation in [
        "POST /api/negotiations/{id}/approve",
        "POST /api/negotiations/{id}/reject",
    ] {
        // The negotiation waits for holder-b: another holder, and a researcher.
        add(
            operation,
            "the demo holder (holder)",
            true,
            &holder_a,
            &pending,
            &urn_missing,
            b"",
            None,
            LikeMissing,
        );
        add(
            operation,
            "bob (researcher)",
            false,
            &bob,
            &pending,
            &urn_missing,
            b"",
            None,
            LikeMissing,
        );
    }
    add(
        "GET /api/agreements/{id}",
        "bob (researcher)",
        true,
        &bob,
        &agreement,
        &urn_missing,
        b"",
        None,
        LikeMissing,
    );
    add(
        "GET /api/agreements/{id}",
        "trent (trainer)",
        false,
        &trent,
        &agreement,
        &urn_missing,
        b"",
        None,
        LikeMissing,
    );
    add(
        "GET /api/agreements/{id}",
        "holder-b (holder)",
        false,
        &holder_b,
        &agreement,
        &urn_missing,
        b"",
        None,
        LikeMissing,
    );
    for operation in [
        "GET /api/transfers/{id}",
        "POST /api/transfers/{id}/token",
        "POST /api/transfers/{id}/{action}",
    ] {
        add(
            operation,
            "bob (researcher)",
            true,
            &bob,
            &transfer,
            &urn_missing,
            b"",
            None,
            LikeMissing,
        );
        add(
            operation,
            "holder-b (holder)",
            false,
            &holder_b,
            &transfer,
            &urn_missing,
            b"",
            None,
            LikeMissing,
        );
        add(
            operation,
            "trent (trainer)",
            false,
            &trent,
            &transfer,
            &urn_missing,
            b"",
            None,
            LikeMissing,
        );
    }
    // The EDR: not even the dataset's holder, who may follow the transfer, gets a token.
    add(
        "POST /api/transfers/{id}/token",
        "the demo holder (the dataset's holder)",
        false,
        &holder_a,
        &transfer,
        &urn_missing,
        b"",
        None,
        LikeMissing,
    );
    for operation in [
        "GET /data/{agreement}",
        "GET /data/{agreement}/arrow",
        "GET /data/{agreement}/aggregate",
        "GET /data/{agreement}/shards",
        "GET /data/{agreement}/shards/{n}",
    ] {
        add(
            operation,
            "bob's data-plane token",
            true,
            &bob_data_token,
            &agreement,
            &urn_missing,
            b"",
            None,
            LikeMissing,
        );
        add(
            operation,
            "bob's participant token (researcher)",
            false,
            &bob,
            &agreement,
            &urn_missing,
            b"",
            None,
            LikeMissing,
        );
        add(
            operation,
            "holder-b (holder)",
            false,
            &holder_b,
            &agreement,
            &urn_missing,
            b"",
            None,
            LikeMissing,
        );
    }
    add(
        "GET /api/datasets/{id}",
        "the demo holder (holder)",
        true,
        &holder_a,
        &hidden,
        &dataset_missing,
        b"",
        None,
        LikeMissing,
    );
    add(
        "GET /api/datasets/{id}",
        "carol (researcher outside the EU)",
        false,
        &carol,
        &hidden,
        &dataset_missing,
        b"",
        None,
        LikeMissing,
    );
    for operation in ["PUT /api/datasets/{id}", "DELETE /api/datasets/{id}"] {
        let (body, content_type): (&[u8], _) = if operation.starts_with("PUT") {
            (&hidden_description, Some("text/turtle"))
        } else {
            (b"", None)
        };
        add(
            operation,
            "the demo holder (holder)",
            true,
            &holder_a,
            &hidden,
            &dataset_missing,
            body,
            content_type,
            LikeMissing,
        );
        add(
            operation,
            "carol (researcher)",
            false,
            &carol,
            &hidden,
            &dataset_missing,
            body,
            content_type,
            LikeMissing,
        );
        // A dataset everyone sees: its existence is public, a 403 tells nothing new.
        add(
            operation,
            "holder-b on the demo's `mobility` (holder)",
            true,
            &holder_b,
            "mobility",
            &dataset_missing,
            body,
            content_type,
            Refused,
        );
    }

    // Every `{…}` route of the document has a case of each kind, and no case is stale.
    let documented = templated_operations(&node);
    assert!(documented.len() >= 15, "{documented:?}");
    for operation in &documented {
        let attempts = table
            .get(operation)
            .unwrap_or_else(|| panic!("{operation} has no cross-tenant case in tenancy.rs"));
        assert!(
            attempts.iter().any(|a| a.same_role) && attempts.iter().any(|a| !a.same_role),
            "{operation} needs a cross-tenant case by the owner's role and one by another role"
        );
    }
    for operation in table.keys() {
        assert!(
            documented.contains(operation),
            "{operation} is not in the OpenAPI document"
        );
    }

    // Beyond the path parameters.
    let extra = |operation: &'static str,
                 who: &'static str,
                 token: &str,
                 path: String,
                 missing_path: String,
                 ids: (&str, &str),
                 body: Value| Attempt {
        who,
        same_role: false,
        token: token.to_owned(),
        method: operation,
        path,
        missing_path,
        ids: (ids.0.to_owned(), ids.1.to_owned()),
        body: if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        },
        content_type: (!body.is_null()).then_some("application/json"),
        expect: LikeMissing,
    };
    let transfer_record = call(
        &node,
        &alice,
        "GET",
        &format!("/api/transfers/{transfer}"),
        &json!(null),
    )
    .json();
    let provider_pid = transfer_record["provider_pid"]
        .as_str()
        .expect("provider pid")
        .to_owned();
    let share = agreement.trim_start_matches("urn:uuid:").to_owned();
    let missing_share = urn_missing.trim_start_matches("urn:uuid:").to_owned();
    let mut extras = vec![
        extra(
            "POST",
            "bob",
            &bob,
            "/api/transfers".into(),
            "/api/transfers".into(),
            (&agreement, &urn_missing),
            json!({"agreement": agreement}),
        ),
        extra(
            "POST",
            "holder-b",
            &holder_b,
            "/api/transfers".into(),
            "/api/transfers".into(),
            (&agreement, &urn_missing),
            json!({"agreement": agreement}),
        ),
        extra(
            "GET",
            "holder-b",
            &holder_b,
            "/api/audit?dataset=mobility".into(),
            format!("/api/audit?dataset={dataset_missing}"),
            ("mobility", &dataset_missing),
            Value::Null,
        ),
        extra(
            "GET",
            "the demo holder",
            &holder_a,
            format!("/api/audit?dataset={hidden}"),
            format!("/api/audit?dataset={dataset_missing}"),
            (&hidden, &dataset_missing),
            Value::Null,
        ),
        extra(
            "GET",
            "bob",
            &bob,
            "/api/audit?dataset=mobility".into(),
            format!("/api/audit?dataset={dataset_missing}"),
            ("mobility", &dataset_missing),
            Value::Null,
        ),
        extra(
            "GET",
            "bob",
            &bob,
            format!("/dsp/transfers/{provider_pid}"),
            format!("/dsp/transfers/{urn_missing}"),
            (&provider_pid, &urn_missing),
            Value::Null,
        ),
        extra(
            "GET",
            "bob",
            &bob,
            format!("/dsp/negotiations/{negotiation}"),
            format!("/dsp/negotiations/{urn_missing}"),
            (&negotiation, &urn_missing),
            Value::Null,
        ),
        extra(
            "GET",
            "bob's data-plane token",
            &bob_data_token,
            format!("/delta-sharing/shares/{share}"),
            format!("/delta-sharing/shares/{missing_share}"),
            (&share, &missing_share),
            Value::Null,
        ),
    ];
    // Publishing over another holder's entry (same IRI) is refused; the 409 names the IRI the
    // caller sent, which they already know.
    extras.push(Attempt {
        who: "the demo holder, publishing holder-b's IRI",
        same_role: true,
        token: holder_a.clone(),
        method: "POST",
        path: "/api/datasets".into(),
        missing_path: "/api/datasets".into(),
        ids: (hidden.clone(), dataset_missing.clone()),
        body: hidden_description.clone(),
        content_type: Some("text/turtle"),
        expect: Refused,
    });

    let failures: Vec<String> = table
        .values()
        .flatten()
        .chain(&extras)
        .filter_map(|attempt| attempt.check(&node))
        .collect();
    let attempts = table.values().map(Vec::len).sum::<usize>() + extras.len();
    eprintln!(
        "R19: {attempts} cross-tenant requests over {} documented {{…}} operations",
        documented.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {attempts} cross-tenant requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Nothing changed, and the owners still reach their resources.
    let after = victims(
        &node,
        &alice,
        &holder_b,
        &negotiation,
        &agreement,
        &transfer,
        &pending,
        &hidden,
    );
    assert_eq!(before, after, "a victim resource changed");
    let pulled = node.get(
        &format!("/data/{agreement}"),
        &[("Authorization", &bearer(&data_token))],
    );
    assert_eq!(pulled.status, 200, "{}", pulled.text());
}

/// What the victims' resources look like to their owners: negotiation, agreement, transfer
/// (without its token, which is renewed on each view), the pending negotiation, the hidden
/// dataset and the demo's `mobility`.
#[allow(clippy::too_many_arguments)]
fn victims(
    node: &TestNode,
    alice: &str,
    holder_b: &str,
    negotiation: &str,
    agreement: &str,
    transfer: &str,
    pending: &str,
    hidden: &str,
) -> Vec<String> {
    let get = |token: &str, path: String| {
        let answer = node.get(&path, &[("Authorization", &bearer(token))]);
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        answer
    };
    let state = |token: &str, path: String| {
        let body = get(token, path).json();
        format!("{} {} {}", body["id"], body["state"], body["updated"])
    };
    vec![
        state(alice, format!("/api/negotiations/{negotiation}")),
        state(alice, format!("/api/transfers/{transfer}")),
        state(alice, format!("/api/negotiations/{pending}")),
        get(alice, format!("/api/agreements/{agreement}")).text(),
        get(holder_b, format!("/api/datasets/{hidden}?format=nt")).text(),
        get(holder_b, "/api/datasets/mobility?format=nt".into()).text(),
    ]
}

/// Matrix R19, the EDR: the dataset's holder follows a consumer's transfer (state, events) and
/// may suspend and resume it, but never sees its data-plane token — not in the transfer's view,
/// not in the answer to an action, not as a refreshed token (404, as for a missing transfer);
/// the consumer does. Before the fix the holder's `POST /api/transfers/{id}/token` answered
/// 200 with a fresh token bound to the consumer's agreement, with which the holder could pull
/// as the consumer (counted against the consumer's agreement, audited under their name).
#[test]
fn r19_the_holder_follows_a_transfer_but_never_holds_its_token() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let holder = node.token(DEMO_HOLDER, Role::Holder, &[]);
    let alice = researcher(&node, "alice");
    let (agreement, transfer, token) = pull_rights(&node, "alice", "mobility");
    let no_token = |answer: &Response, what: &str| {
        assert_eq!(answer.status, 200, "{what}: {}", answer.text());
        let body = answer.json();
        assert!(
            body["token"].is_null() && body["data_address"].is_null(),
            "{what}: {body}"
        );
        assert!(
            !answer.text().contains(&token),
            "{what}: the consumer's token"
        );
        assert!(
            !answer.text().contains("eyJ"),
            "{what}: a token: {}",
            answer.text()
        );
    };
    let view = call(
        &node,
        &holder,
        "GET",
        &format!("/api/transfers/{transfer}"),
        &json!(null),
    );
    no_token(&view, "the holder's view");
    assert_eq!(view.json()["state"], "STARTED");
    let refreshed = call(
        &node,
        &holder,
        "POST",
        &format!("/api/transfers/{transfer}/token"),
        &json!(null),
    );
    let missing = call(
        &node,
        &holder,
        "POST",
        &format!("/api/transfers/{}/token", missing_urn()),
        &json!(null),
    );
    assert_eq!(refreshed.assert_problem(404), missing.assert_problem(404));
    let suspended = call(
        &node,
        &holder,
        "POST",
        &format!("/api/transfers/{transfer}/suspend"),
        &json!(null),
    );
    no_token(&suspended, "the holder's suspension");
    let resumed = call(
        &node,
        &holder,
        "POST",
        &format!("/api/transfers/{transfer}/resume"),
        &json!(null),
    );
    no_token(&resumed, "the holder's resumption");
    assert_eq!(resumed.json()["state"], "STARTED");
    // The consumer still holds the token: in their own view, and refreshed.
    let own = call(
        &node,
        &alice,
        "POST",
        &format!("/api/transfers/{transfer}/token"),
        &json!(null),
    );
    assert_eq!(own.status, 200, "{}", own.text());
    let fresh = own.json()["token"]
        .as_str()
        .expect("the consumer gets a token")
        .to_owned();
    let pulled = node.get(
        &format!("/data/{agreement}"),
        &[("Authorization", &bearer(&fresh))],
    );
    assert_eq!(pulled.status, 200, "{}", pulled.text());
}

/// Matrix R19, Schemathesis with two tenants: each tenant (one token with the holder and
/// researcher roles) publishes an open dataset, and negotiates and starts a transfer on the
/// demo's `mobility` and on the other tenant's dataset; then Schemathesis generates requests
/// over the contract, catalogue and data-plane API (all phases, stateful included), and the
/// hooks send about half of those naming a known resource with the token of a tenant who is
/// no party to it (data-plane routes with that tenant's own data-plane token; for the
/// operations handing out or using data-plane tokens, the dataset's holder is no party
/// either). Every operation naming a resource must have been attacked, and none answered
/// 2xx. With the holder's token refresh of before the R19 fix, this run fails.
#[test]
fn r19_schemathesis_two_tenants_get_no_cross_tenant_2xx() {
    let Some(tool) = schemathesis() else {
        return;
    };
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    // Each tenant publishes an open dataset, and takes an agreement and a transfer on the
    // demo's `mobility` and on the other tenant's dataset (of whose contracts that tenant, as
    // holder, is a party, but not the consumer).
    let names = ["a", "b"];
    let mut tokens = BTreeMap::new();
    let mut datasets = BTreeMap::new();
    let mut resources = Vec::new();
    for name in names {
        let token = token_with_roles(
            &node,
            &format!("tenant-{name}"),
            &[Role::Holder, Role::Researcher],
            &["country=DE", "org_type=university"],
        );
        let iri = format!("https://energy.example/datasets/grid-load-tenant-{name}");
        let turtle = String::from_utf8(fixture("dataset.ttl"))
            .expect("UTF-8")
            .replace(FIXTURE_IRI, &iri)
            + &format!(
                "<{iri}> <http://www.w3.org/ns/odrl/2/hasPolicy> <https://w3id.org/agora/policies/open-data-attribution> .\n"
            );
        let dataset = publish(&node, &token, turtle.as_bytes());
        resources.push(json!({"id": dataset, "kind": "dataset", "owners": [name]}));
        tokens.insert(name, token);
        datasets.insert(name, dataset);
    }
    let mut tenants = serde_json::Map::new();
    for name in names {
        let token = &tokens[name];
        let other = names.into_iter().find(|n| *n != name).expect("two tenants");
        let mut data_tokens = serde_json::Map::new();
        for (dataset, owners) in [
            ("mobility", json!([name])),
            (datasets[other].as_str(), json!([name, other])),
        ] {
            let agreed = call(
                &node,
                token,
                "POST",
                "/api/negotiations",
                &json!({"dataset": dataset, "purpose": "dpv:AcademicResearch"}),
            );
            assert_eq!(agreed.status, 201, "{dataset}: {}", agreed.text());
            let agreed = agreed.json();
            let agreement = agreed["agreement"]["id"]
                .as_str()
                .expect("agreement")
                .to_owned();
            let started = call(
                &node,
                token,
                "POST",
                "/api/transfers",
                &json!({"agreement": agreement}),
            );
            assert_eq!(started.status, 201, "{dataset}: {}", started.text());
            let started = started.json();
            for (id, kind) in [
                (&agreed["id"], "negotiation"),
                (&json!(agreement), "agreement"),
                (&started["id"], "transfer"),
            ] {
                resources
                    .push(json!({"id": id, "kind": kind, "owners": owners, "consumers": [name]}));
            }
            data_tokens.insert(agreement, started["token"].clone());
        }
        tenants.insert(
            name.into(),
            json!({"token": token, "data_tokens": data_tokens}),
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let seed = dir.path().join("seed.json");
    let report = dir.path().join("report.json");
    std::fs::write(
        &seed,
        json!({"tenants": tenants, "resources": resources}).to_string(),
    )
    .expect("seed");
    let output = std::process::Command::new(&tool)
        .arg("run")
        .arg(format!("{}/openapi.json", node.url))
        .args(["--checks", "cross_tenant", "--no-color", "--workers", "1"])
        .args(["--generation-database", "none", "--seed", "19", "-n", "20"])
        .args(["--include-path-regex", "^/api/|^/data/"])
        .current_dir(dir.path())
        .env(
            "PYTHONPATH",
            crate::common::repo_root().join("tests/conformance/schemathesis"),
        )
        .env("SCHEMATHESIS_HOOKS", "tenancy_hooks")
        .env("AGORA_TENANCY_SEED", &seed)
        .env("AGORA_TENANCY_REPORT", &report)
        .output()
        .expect("schemathesis runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap_or_default())
        .unwrap_or_else(|e| panic!("no tenancy report ({e}):\n{text}"));
    assert!(
        output.status.success(),
        "schemathesis found cross-tenant answers ({}): {}\n{text}",
        output.status,
        report["cross_tenant_2xx"]
    );
    assert_eq!(report["cross_tenant_2xx"], json!([]), "{text}");
    let attacks = report["attacks"].as_object().expect("attacks");
    let total: u64 = attacks.values().filter_map(Value::as_u64).sum();
    eprintln!("R19 schemathesis: {total} cross-tenant requests, 0 answered 2xx: {attacks:?}");
    let unattacked: Vec<_> = templated_operations(&node)
        .into_iter()
        .filter(|op| op != "GET /api/datasets/{id}")
        .filter(|op| !attacks.contains_key(op))
        .collect();
    assert!(
        unattacked.is_empty(),
        "never attacked: {unattacked:?}\n{text}"
    );
    assert!(total >= 100, "only {total} cross-tenant requests:\n{text}");
}
