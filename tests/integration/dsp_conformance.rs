//! Conformance of the node's Dataspace Protocol 2025-1 wire format with the official files in
//! `../shared/reference/dsp-2025-1`:
//!
//! 1. every DSP document the node emits validates against the official JSON Schemas: the
//!    messages it sends to a counter-party (as provider and as consumer, recorded by a
//!    [`Peer`]) and its HTTP answers on `/dsp` (catalogue, datasets, negotiations, transfers,
//!    protocol errors) and `/.well-known/dspace-version`, including the catalogue of a `--demo`
//!    node with the real pools and policy templates. The documents are written to a temporary
//!    folder and checked in one run of `tests/conformance/validate_dsp.py` (jsonschema, every
//!    `$ref` resolved offline from the reference folder);
//! 2. every official example of a message the node receives is accepted by
//!    [`agora::contract::messages::parse`] with its own `@type`, and the initial contract request
//!    and catalogue request examples are accepted over HTTP by a real node.
//!
//! The schema test skips with one line when `AGORA_PYTHON` is unset (`scripts/test.sh` sets it
//! to the venv that `scripts/setup.sh` builds from `tests/conformance/requirements.txt`); both
//! skip with one line when the reference folder is absent.

use super::common::{Options, Response, TestNode, agent, reference_dir, repo_root};
use super::dsp_peer::{CONTEXT, OPEN, Peer, Provider, template_policy};
use agora::identity::Role;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ collecting what the node emits

/// The DSP documents one flow saw the node emit, each with a label saying where it came from
/// (the label becomes the file name, so that a failure names the exchange).
#[derive(Default)]
struct Emitted(Vec<(String, Json)>);

impl Emitted {
    /// Keeps an answer of the node after checking its status: a document nobody looked at
    /// could be an error body where a success was meant.
    fn answer(&mut self, label: &str, response: Response, status: u16) -> Json {
        assert_eq!(
            response.status,
            status,
            "{label}: expected {status}, got {}: {}",
            response.status,
            response.text()
        );
        let body = response.json();
        self.0.push((label.to_owned(), body.clone()));
        body
    }

    /// Keeps a protocol error answer (any 4xx).
    fn error(&mut self, label: &str, response: Response) {
        assert!(
            (400..500).contains(&response.status),
            "{label}: expected a DSP error, got {}: {}",
            response.status,
            response.text()
        );
        self.0.push((label.to_owned(), response.json()));
    }

    /// Keeps every message `peer` received from the node under its `/dsp` base, including
    /// the ones refused. Every one must carry a JSON body: the peer records an unreadable body
    /// as null, and skipping it would hide exactly the kind of message this test is for. The
    /// only other requests are the bodiless discovery `GET`s of `/.well-known/dspace-version`.
    fn sent(&mut self, label: &str, peer: &Peer) {
        for (index, received) in peer.all().into_iter().enumerate() {
            if received.path == "/.well-known/dspace-version" {
                assert!(received.body.is_null(), "{received:?}");
                continue;
            }
            assert!(
                received.body.is_object(),
                "{label}: the node sent {} without a JSON object body",
                received.path
            );
            let kind = received.body["@type"]
                .as_str()
                .unwrap_or("untyped")
                .to_owned();
            self.0
                .push((format!("{label}-sent-{index:02}-{kind}"), received.body));
        }
    }
}

/// `POST` with `token` and a JSON body.
fn post(node: &TestNode, token: &str, path: &str, body: &Json) -> Response {
    node.send(
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {token}")),
        ],
        body.to_string().as_bytes(),
    )
}

/// `GET` with `token`.
fn get(node: &TestNode, token: &str, path: &str) -> Response {
    node.get(path, &[("Authorization", &format!("Bearer {token}"))])
}

/// A message about a process: `kind` with both pids and `extra` fields.
fn message(kind: &str, provider_pid: &str, consumer_pid: &str, extra: Json) -> Json {
    Provider::negotiation_message(kind, provider_pid, consumer_pid, extra)
}

/// Waits until the peer received a message of one of `kinds` and takes it: a node may answer a
/// request with an agreement or a termination, and both must be collected.
fn first_of(peer: &Peer, kinds: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(kind) = kinds.iter().find(|kind| {
            peer.all()
                .iter()
                .any(|received| received.body["@type"] == **kind)
        }) {
            return peer.expect(kind).body["@type"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
        // A guard against a node that never answers, not a performance assertion.
        assert!(
            Instant::now() < deadline,
            "the node sent none of {kinds:?}: {:?}",
            peer.all()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------------------ the node as provider

/// Starts a negotiation with `offer` as the provider's consumer, keeping the node's
/// `ContractNegotiation` answer: (consumerPid, providerPid).
fn request(out: &mut Emitted, provider: &Provider, peer: &Peer, offer: Json) -> (String, String) {
    let consumer_pid = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let answer = out.answer(
        "negotiation-requested",
        provider.post(
            "/dsp/negotiations/request",
            &json!({"@context": [CONTEXT], "@type": "ContractRequestMessage",
                    "consumerPid": consumer_pid, "offer": offer, "callbackAddress": peer.dsp()}),
        ),
        201,
    );
    let provider_pid = answer["providerPid"].as_str().expect("providerPid");
    (consumer_pid, provider_pid.to_owned())
}

/// Requests a transfer under `agreement`, keeping the node's `TransferProcess` answer:
/// (consumerPid, providerPid).
fn request_transfer(
    out: &mut Emitted,
    provider: &Provider,
    peer: &Peer,
    agreement: &str,
) -> (String, String) {
    let consumer_pid = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let answer = out.answer(
        "transfer-requested",
        provider.post(
            "/dsp/transfers/request",
            &json!({"@context": [CONTEXT], "@type": "TransferRequestMessage",
                    "consumerPid": consumer_pid, "agreementId": agreement,
                    "format": "HttpData-PULL", "callbackAddress": peer.dsp()}),
        ),
        201,
    );
    let provider_pid = answer["providerPid"].as_str().expect("providerPid");
    (consumer_pid, provider_pid.to_owned())
}

/// The node as provider of the fixture dataset under the open-data template: the version
/// document, catalogue, dataset and error answers, and every negotiation and transfer turn the
/// provider takes (counter-offer, agreement, FINALIZED, termination, start, suspension,
/// restart, completion, termination) with the answers to the consumer's requests and reads.
fn as_provider() -> Vec<(String, Json)> {
    let mut out = Emitted::default();
    let provider = Provider::start(&template_policy(OPEN), &[]);
    let peer = Peer::start();
    let node = &provider.node;

    out.answer("version", node.get("/.well-known/dspace-version", &[]), 200);
    out.answer(
        "catalog",
        provider.post(
            "/dsp/catalog/request",
            &json!({"@context": [CONTEXT], "@type": "CatalogRequestMessage", "filter": []}),
        ),
        200,
    );
    out.answer(
        "dataset",
        provider.get_dsp(&format!("/dsp/catalog/datasets/{}", provider.dataset)),
        200,
    );
    out.error(
        "catalog-error-not-found",
        provider.get_dsp("/dsp/catalog/datasets/no-such-dataset"),
    );
    out.error(
        "catalog-error-wrong-message",
        provider.post(
            "/dsp/catalog/request",
            &json!({"@context": [CONTEXT], "@type": "DatasetRequestMessage", "dataset": "x"}),
        ),
    );
    out.error(
        "catalog-error-no-token",
        node.send(
            "POST",
            "/dsp/catalog/request",
            &[("Content-Type", "application/json")],
            br#"{"@context":["https://w3id.org/dspace/2025/1/context.jsonld"],"@type":"CatalogRequestMessage"}"#,
        ),
    );

    // Other terms than the catalogue's: the provider counter-offers its own offer; the
    // consumer accepts; agreement; verification; FINALIZED.
    let (consumer_pid, provider_pid) =
        request(&mut out, &provider, &peer, provider.changed_offer());
    peer.expect("ContractOfferMessage");
    let read = format!("/dsp/negotiations/{provider_pid}");
    out.answer("negotiation-offered", provider.get_dsp(&read), 200);
    let accepted = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/events"),
        &message(
            "ContractNegotiationEventMessage",
            &provider_pid,
            &consumer_pid,
            json!({"eventType": "ACCEPTED"}),
        ),
    );
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    peer.expect("ContractAgreementMessage");
    out.answer("negotiation-agreed", provider.get_dsp(&read), 200);
    let verification = message(
        "ContractAgreementVerificationMessage",
        &provider_pid,
        &consumer_pid,
        json!({}),
    );
    let verified = provider.post(&format!("{read}/agreement/verification"), &verification);
    assert_eq!(verified.status, 200, "{}", verified.text());
    peer.expect("ContractNegotiationEventMessage");
    out.answer("negotiation-finalized", provider.get_dsp(&read), 200);
    out.error(
        "negotiation-error-illegal-termination",
        provider.post(
            &format!("{read}/termination"),
            &message(
                "ContractNegotiationTerminationMessage",
                &provider_pid,
                &consumer_pid,
                json!({}),
            ),
        ),
    );
    out.error(
        "negotiation-error-not-found",
        provider.get_dsp("/dsp/negotiations/urn:uuid:00000000-0000-0000-0000-000000000000"),
    );
    out.error(
        "negotiation-error-no-offer",
        provider.post(
            "/dsp/negotiations/request",
            &json!({"@context": [CONTEXT], "@type": "ContractRequestMessage",
                    "consumerPid": "urn:uuid:c", "callbackAddress": peer.dsp()}),
        ),
    );

    // A counter-offer the data holder withdraws: the provider's termination.
    let (_, ended) = request(&mut out, &provider, &peer, provider.changed_offer());
    peer.expect("ContractOfferMessage");
    let terminated = node.send(
        "POST",
        &format!("/api/negotiations/{ended}/terminate"),
        &[
            ("Authorization", &format!("Bearer {}", provider.holder)),
            ("Content-Type", "application/json"),
        ],
        br#"{"note": "the offer is withdrawn"}"#,
    );
    assert_eq!(terminated.status, 200, "{}", terminated.text());
    peer.expect("ContractNegotiationTerminationMessage");
    out.answer(
        "negotiation-terminated",
        provider.get_dsp(&format!("/dsp/negotiations/{ended}")),
        200,
    );

    // The catalogue's offer unchanged: agreement at once. Then a transfer started, suspended,
    // started again and completed by the holder, and one the holder terminates.
    let agreement = provider.agree(&peer);
    let (consumer_pid, provider_pid) = request_transfer(&mut out, &provider, &peer, &agreement);
    peer.expect("TransferStartMessage");
    provider.await_transfer_state(&provider_pid, "STARTED");
    let read = format!("/dsp/transfers/{provider_pid}");
    out.answer("transfer-started", provider.get_dsp(&read), 200);
    for (action, kind) in [
        ("suspend", "TransferSuspensionMessage"),
        ("resume", "TransferStartMessage"),
        ("complete", "TransferCompletionMessage"),
    ] {
        let done = provider.holder_action(&provider_pid, action);
        assert_eq!(done.status, 200, "{action}: {}", done.text());
        peer.expect(kind);
    }
    out.answer("transfer-completed", provider.get_dsp(&read), 200);
    out.error(
        "transfer-error-illegal-completion",
        provider.post(
            &format!("{read}/completion"),
            &Provider::transfer_message("TransferCompletionMessage", &provider_pid, &consumer_pid),
        ),
    );
    out.error(
        "transfer-error-not-found",
        provider.get_dsp("/dsp/transfers/urn:uuid:00000000-0000-0000-0000-000000000000"),
    );
    out.error(
        "transfer-error-no-agreement",
        provider.post(
            "/dsp/transfers/request",
            &json!({"@context": [CONTEXT], "@type": "TransferRequestMessage",
                    "consumerPid": "urn:uuid:c", "agreementId": "urn:uuid:no-such-agreement",
                    "format": "HttpData-PULL", "callbackAddress": peer.dsp()}),
        ),
    );
    let (_, second) = request_transfer(&mut out, &provider, &peer, &agreement);
    peer.expect("TransferStartMessage");
    provider.await_transfer_state(&second, "STARTED");
    let terminated = provider.holder_action(&second, "terminate");
    assert_eq!(terminated.status, 200, "{}", terminated.text());
    peer.expect("TransferTerminationMessage");
    out.answer(
        "transfer-terminated",
        provider.get_dsp(&format!("/dsp/transfers/{second}")),
        200,
    );

    out.sent("provider", &peer);
    out.0
}

/// The fixture dataset offered under one policy, and a consumer whose claims may or may not
/// satisfy it: the dataset answer with that offer, and whatever the provider answers to a
/// request for the offer unchanged (an agreement, verified and FINALIZED, or a termination
/// with the failed constraints as reasons).
fn offered_under(label: &str, policy_turtle: &str, claims: &[(&str, &str)]) -> Vec<(String, Json)> {
    let mut out = Emitted::default();
    let provider = Provider::start(policy_turtle, claims);
    let peer = Peer::start();
    out.answer(
        &format!("{label}-dataset"),
        provider.get_dsp(&format!("/dsp/catalog/datasets/{}", provider.dataset)),
        200,
    );
    let (consumer_pid, provider_pid) = request(&mut out, &provider, &peer, provider.exact_offer());
    let read = format!("/dsp/negotiations/{provider_pid}");
    let answered = first_of(
        &peer,
        &[
            "ContractAgreementMessage",
            "ContractNegotiationTerminationMessage",
        ],
    );
    if answered == "ContractAgreementMessage" {
        let verified = provider.post(
            &format!("{read}/agreement/verification"),
            &message(
                "ContractAgreementVerificationMessage",
                &provider_pid,
                &consumer_pid,
                json!({}),
            ),
        );
        assert_eq!(verified.status, 200, "{}", verified.text());
        peer.expect("ContractNegotiationEventMessage");
    }
    out.answer(
        &format!("{label}-negotiation"),
        provider.get_dsp(&read),
        200,
    );
    out.sent(label, &peer);
    out.0
}

/// Claims that satisfy most templates: a university in Germany doing academic research (the
/// AI-training template asks for its own purpose).
fn claims_for(uid: &str) -> Vec<(&'static str, &'static str)> {
    let purpose = if uid.ends_with("ai-training-count") {
        "agora:AITraining"
    } else {
        "dpv:AcademicResearch"
    };
    vec![
        ("org_type", "university"),
        ("country", "DE"),
        ("purpose", purpose),
    ]
}

/// An inline policy with every ODRL logical operator and typed literals, which no template has.
const LOGICAL_POLICY: &str = "@prefix odrl: <http://www.w3.org/ns/odrl/2/> .\n\
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n\
@prefix dpv: <https://w3id.org/dpv#> .\n\
<https://energy.example/datasets/grid-load-2024> odrl:hasPolicy <urn:test:logical> .\n\
<urn:test:logical> a odrl:Offer ; odrl:profile <https://w3id.org/agora/profile> ; odrl:conflict odrl:prohibit ;\n\
  odrl:permission [ odrl:action odrl:use ;\n\
    odrl:constraint\n\
      [ odrl:or (\n\
          [ odrl:leftOperand odrl:dateTime ; odrl:operator odrl:lt ; odrl:rightOperand \"2100-01-01T00:00:00Z\"^^xsd:dateTime ]\n\
          [ odrl:leftOperand odrl:purpose ; odrl:operator odrl:isA ; odrl:rightOperand dpv:AcademicResearch ] ) ] ,\n\
      [ odrl:xone (\n\
          [ odrl:leftOperand odrl:dateTime ; odrl:operator odrl:gteq ; odrl:rightOperand \"2000-01-01T00:00:00Z\"^^xsd:dateTime ]\n\
          [ odrl:leftOperand odrl:dateTime ; odrl:operator odrl:lt ; odrl:rightOperand \"2000-01-01T00:00:00Z\"^^xsd:dateTime ] ) ] ,\n\
      [ odrl:and (\n\
          [ odrl:leftOperand odrl:dateTime ; odrl:operator odrl:gteq ; odrl:rightOperand \"2001-01-01T00:00:00Z\"^^xsd:dateTime ]\n\
          [ odrl:leftOperand odrl:count ; odrl:operator odrl:lteq ; odrl:rightOperand \"7\"^^xsd:integer ] ) ] ,\n\
      [ odrl:andSequence (\n\
          [ odrl:leftOperand odrl:dateTime ; odrl:operator odrl:gteq ; odrl:rightOperand \"2002-01-01T00:00:00Z\"^^xsd:dateTime ]\n\
          [ odrl:leftOperand odrl:dateTime ; odrl:operator odrl:lt ; odrl:rightOperand \"2101-01-01T00:00:00Z\"^^xsd:dateTime ] ) ] ;\n\
    odrl:duty [ odrl:action odrl:attribute ] ] ;\n\
  odrl:prohibition [ odrl:action odrl:distribute ] .\n";

// ------------------------------------------------------------------ the node as consumer

/// The node as consumer for one of its users, a [`Peer`] as the provider (the pattern of
/// `dsp_tck.rs`).
struct Consumer {
    node: TestNode,
    user: String,
    provider_token: String,
    peer: Peer,
}

impl Consumer {
    /// A node that may call back to loopback addresses, a user and the provider's token.
    fn start() -> Self {
        let node = TestNode::start(Options {
            args: vec!["--allow-private-addresses".into()],
            ..Options::default()
        });
        let user = node.token("researcher-1", Role::Researcher, &[("country", "DE")]);
        let provider_token = node.token("urn:participant:provider", Role::Researcher, &[]);
        Self {
            node,
            user,
            provider_token,
            peer: Peer::start(),
        }
    }

    /// Calls the user API in the background (the node answers once the protocol has run).
    fn call(&self, path: &str, body: Json) -> JoinHandle<Response> {
        let url = format!("{}{path}", self.node.url);
        let user = self.user.clone();
        std::thread::spawn(move || {
            let request = ureq::http::Request::builder()
                .method("POST")
                .uri(url)
                .header("Authorization", format!("Bearer {user}"))
                .header("Content-Type", "application/json")
                .body(body.to_string().into_bytes())
                .expect("request");
            Response::from_result(agent().run(request))
        })
    }

    /// The user asks the peer for its dataset: the consumerPid of the request the peer got.
    fn negotiate(&self) -> (String, JoinHandle<Response>) {
        let call = self.call(
            "/api/negotiations",
            json!({"dataset": "ACNC", "provider": self.peer.dsp(), "offer": wanted_offer(),
                   "purpose": "dpv:AcademicResearch"}),
        );
        let request = self.peer.expect("ContractRequestMessage");
        let pid = request.body["consumerPid"].as_str().expect("consumerPid");
        (pid.to_owned(), call)
    }

    /// The provider posts `kind` to the node's negotiation `pid`.
    fn to_negotiation(&self, pid: &str, path: &str, kind: &str, extra: Json) -> Response {
        post(
            &self.node,
            &self.provider_token,
            &format!("/dsp/negotiations/{pid}/{path}"),
            &message(kind, &self.peer.pid, pid, extra),
        )
    }

    /// The provider posts `kind` to the node's transfer `pid`.
    fn to_transfer(&self, pid: &str, path: &str, kind: &str) -> Response {
        let mut body = Provider::transfer_message(kind, &self.peer.pid, pid);
        if kind == "TransferStartMessage" {
            body["dataAddress"] = json!({"@type": "DataAddress",
                "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
                "endpoint": "https://provider.example/data", "endpointProperties": [
                    {"@type": "EndpointProperty", "name": "authorization", "value": "TOKEN-1"},
                    {"@type": "EndpointProperty", "name": "authType", "value": "bearer"}]});
        }
        post(
            &self.node,
            &self.provider_token,
            &format!("/dsp/transfers/{pid}/{path}"),
            &body,
        )
    }

    /// The user acts on a transfer or negotiation through the API.
    fn user(&self, path: &str) {
        let done = self.node.send(
            "POST",
            path,
            &[("Authorization", &format!("Bearer {}", self.user))],
            b"",
        );
        assert_eq!(done.status, 200, "{path}: {}", done.text());
    }

    /// What the provider reads of the node's process `path` over DSP.
    fn read(&self, path: &str) -> Response {
        get(&self.node, &self.provider_token, path)
    }
}

/// What the consumer's user asks for.
fn wanted_offer() -> Json {
    json!({"@type": "Offer", "@id": "urn:test:offer:1", "target": "urn:test:dataset:ACNC",
           "permission": [{"action": "use"}]})
}

/// The node as consumer: its initial request, ACCEPTED, counter-request, verification and
/// termination in negotiations; transfer request, suspension, restart, completion and
/// termination; its answers to an initial offer and to the provider's reads; its errors.
fn as_consumer() -> Vec<(String, Json)> {
    let mut out = Emitted::default();
    let c = Consumer::start();
    let same = json!({"permission": [{"action": "use"}]});
    let offer = |pid: &str, terms: &Json| {
        let mut offer = wanted_offer();
        offer["permission"] = terms["permission"].clone();
        c.to_negotiation(
            pid,
            "offers",
            "ContractOfferMessage",
            json!({"offer": offer}),
        )
    };

    // Offer with the terms asked for: ACCEPTED; agreement: verification; FINALIZED.
    let (pid, call) = c.negotiate();
    out.error(
        "consumer-negotiation-error-early-finalized",
        c.to_negotiation(
            &pid,
            "events",
            "ContractNegotiationEventMessage",
            json!({"eventType": "FINALIZED"}),
        ),
    );
    assert_eq!(offer(&pid, &same).status, 200);
    c.peer.expect("ContractNegotiationEventMessage");
    out.answer(
        "consumer-negotiation-accepted",
        c.read(&format!("/dsp/negotiations/{pid}")),
        200,
    );
    let agreement = json!({"@type": "Agreement", "@id": "urn:test:agreement:1",
        "target": "urn:test:dataset:ACNC", "assigner": "urn:participant:provider",
        "assignee": "researcher-1", "timestamp": "2026-11-25T10:00:00Z",
        "permission": [{"action": "use"}]});
    let agreed = c.to_negotiation(
        &pid,
        "agreement",
        "ContractAgreementMessage",
        json!({"agreement": agreement}),
    );
    assert_eq!(agreed.status, 200, "{}", agreed.text());
    c.peer.expect("ContractAgreementVerificationMessage");
    let finalized = c.to_negotiation(
        &pid,
        "events",
        "ContractNegotiationEventMessage",
        json!({"eventType": "FINALIZED"}),
    );
    assert_eq!(finalized.status, 200, "{}", finalized.text());
    let answer = call.join().expect("negotiation call");
    assert_eq!(answer.status, 201, "{}", answer.text());
    out.answer(
        "consumer-negotiation-finalized",
        c.read(&format!("/dsp/negotiations/{pid}")),
        200,
    );

    // Offer with other terms: counter-request; the user ends it: termination.
    let (other, call) = c.negotiate();
    let other_terms = json!({"permission": [{"action": "use", "constraint": [{"leftOperand": "dateTime", "operator": "lteq", "rightOperand": "2020-01-01T00:00:00Z"}]}]});
    assert_eq!(offer(&other, &other_terms).status, 200);
    let counter = c.peer.expect("ContractRequestMessage");
    assert_eq!(counter.body["providerPid"], c.peer.pid.as_str());
    c.user(&format!("/api/negotiations/{other}/terminate"));
    c.peer.expect("ContractNegotiationTerminationMessage");
    let _ = call.join();

    // A provider starts a negotiation with an offer: the node's ContractNegotiation answer.
    out.answer(
        "consumer-initial-offer",
        post(
            &c.node,
            &c.provider_token,
            "/dsp/negotiations/offers",
            &json!({"@context": [CONTEXT], "@type": "ContractOfferMessage",
                "providerPid": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                "offer": wanted_offer(), "callbackAddress": c.peer.dsp()}),
        ),
        201,
    );

    // Transfers under the agreement: request, start by the provider, suspension, restart and
    // completion by the user; a second one the user terminates.
    let transfer = |out: &mut Emitted| {
        let call = c.call(
            "/api/transfers",
            json!({"agreement": "urn:test:agreement:1"}),
        );
        let request = c.peer.expect("TransferRequestMessage");
        let pid = request.body["consumerPid"].as_str().expect("consumerPid");
        let started = c.to_transfer(pid, "start", "TransferStartMessage");
        assert_eq!(started.status, 200, "{}", started.text());
        let answer = call.join().expect("transfer call");
        assert_eq!(answer.status, 201, "{}", answer.text());
        out.answer(
            "consumer-transfer-started",
            c.read(&format!("/dsp/transfers/{pid}")),
            200,
        );
        pid.to_owned()
    };
    let pid = transfer(&mut out);
    for (action, kind) in [
        ("suspend", "TransferSuspensionMessage"),
        ("resume", "TransferStartMessage"),
        ("complete", "TransferCompletionMessage"),
    ] {
        c.user(&format!("/api/transfers/{pid}/{action}"));
        c.peer.expect(kind);
    }
    out.answer(
        "consumer-transfer-completed",
        c.read(&format!("/dsp/transfers/{pid}")),
        200,
    );
    out.error(
        "consumer-transfer-error-late-start",
        c.to_transfer(&pid, "start", "TransferStartMessage"),
    );
    let second = transfer(&mut out);
    c.user(&format!("/api/transfers/{second}/terminate"));
    c.peer.expect("TransferTerminationMessage");

    out.sent("consumer", &c.peer);
    out.0
}

// ------------------------------------------------------------------ the demo pools

/// A `--demo` node: the catalogue with the real pools under their real templates, and each
/// dataset answer.
fn demo() -> Vec<(String, Json)> {
    let mut out = Emitted::default();
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let token = node.token("urn:participant:reader", Role::Researcher, &[]);
    let catalog = out.answer(
        "demo-catalog",
        post(
            &node,
            &token,
            "/dsp/catalog/request",
            &json!({"@context": [CONTEXT], "@type": "CatalogRequestMessage"}),
        ),
        200,
    );
    let datasets = catalog["dataset"]
        .as_array()
        .expect("demo datasets")
        .clone();
    assert!(datasets.len() >= 3, "the demo pools are offered: {catalog}");
    for dataset in datasets {
        let iri = dataset["@id"].as_str().expect("@id");
        let encoded =
            percent_encoding::utf8_percent_encode(iri, percent_encoding::NON_ALPHANUMERIC);
        let label = format!("demo-dataset-{}", iri.rsplit('/').next().unwrap_or("x"));
        out.answer(
            &label,
            get(&node, &token, &format!("/dsp/catalog/datasets/{encoded}")),
            200,
        );
    }
    out.0
}

// ------------------------------------------------------------------ requirement 1

/// The Python with jsonschema (`AGORA_PYTHON`), or `None` and one skip line.
fn python(what: &str) -> Option<PathBuf> {
    match std::env::var_os("AGORA_PYTHON").map(PathBuf::from) {
        Some(python) if python.exists() => Some(python),
        _ => {
            eprintln!(
                "SKIP {what}: AGORA_PYTHON is not set to a venv with tests/conformance/requirements.txt (scripts/setup.sh makes one; scripts/test.sh sets it)"
            );
            None
        }
    }
}

/// Runs `validate_dsp.py` on `folder`: (exit code, stdout and stderr).
fn validate(python: &Path, reference: &Path, folder: &Path) -> (Option<i32>, String) {
    let output = Command::new(python)
        .arg(repo_root().join("tests/conformance/validate_dsp.py"))
        .arg("--reference")
        .arg(reference.join("dsp-2025-1"))
        .arg(folder)
        .output()
        .expect("python runs");
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// One flow against its own node and peer, run on its own thread: what the node emitted.
type Flow = Box<dyn FnOnce() -> Vec<(String, Json)> + Send>;

/// What a document is, for the tally: its `@type`, or the version document.
fn kind_of(document: &Json) -> String {
    match document["@type"].as_str() {
        Some(kind) => kind.to_owned(),
        None if document.get("protocolVersions").is_some() => "protocol-version".to_owned(),
        None => "untyped".to_owned(),
    }
}

/// Every DSP document the node emits — sent as provider and as consumer, answered on `/dsp`
/// and `/.well-known/dspace-version`, the demo catalogue included — validates against the
/// official DSP 2025-1 JSON Schemas. Requirement: "every DSP message the node sends validates
/// against the official DSP 2025-1 JSON schemas"; a counter-party that validates its input
/// would otherwise refuse the node.
#[test]
fn every_document_the_node_emits_validates_against_the_official_schemas() {
    let (Some(reference), Some(python)) = (
        reference_dir("DSP JSON Schema conformance"),
        python("DSP JSON Schema conformance"),
    ) else {
        return;
    };
    let mut flows: Vec<Flow> = vec![
        Box::new(as_provider),
        Box::new(as_consumer),
        Box::new(demo),
        Box::new(|| offered_under("logical", LOGICAL_POLICY, &claims_for(""))),
    ];
    for uid in agora::policy::template_uids() {
        let label = uid.rsplit('/').next().unwrap_or("template").to_owned();
        flows.push(Box::new(move || {
            offered_under(&label, &template_policy(&uid), &claims_for(&uid))
        }));
    }
    let documents: Vec<(String, Json)> = std::thread::scope(|scope| {
        let running: Vec<_> = flows.into_iter().map(|flow| scope.spawn(flow)).collect();
        running
            .into_iter()
            .flat_map(|flow| flow.join().expect("a flow failed"))
            .collect()
    });

    let folder = tempfile::tempdir().expect("temp dir");
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for (index, (label, document)) in documents.iter().enumerate() {
        let name: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = folder.path().join(format!("{index:03}-{name}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(document).expect("JSON")).expect("write");
        *tally.entry(kind_of(document)).or_default() += 1;
    }
    let (code, report) = validate(&python, &reference, folder.path());
    assert_eq!(
        code,
        Some(0),
        "documents the node emitted violate the DSP 2025-1 schemas:\n{report}"
    );
    // No silent zero: the validator saw every file, and each passed.
    let passed = report.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(passed, documents.len(), "{report}");
    assert!(
        report.contains(&format!(
            "dsp schemas: {} documents, 0 failures, 0 unreadable",
            documents.len()
        )),
        "{report}"
    );

    // Every kind of document the node can emit was among them (the node sends no catalogue
    // or dataset requests: a consumer fetches a dataset with GET, which has no body).
    let expected = [
        "protocol-version",
        "Catalog",
        "Dataset",
        "CatalogError",
        "ContractRequestMessage",
        "ContractOfferMessage",
        "ContractAgreementMessage",
        "ContractAgreementVerificationMessage",
        "ContractNegotiationEventMessage",
        "ContractNegotiationTerminationMessage",
        "ContractNegotiation",
        "ContractNegotiationError",
        "TransferRequestMessage",
        "TransferStartMessage",
        "TransferSuspensionMessage",
        "TransferCompletionMessage",
        "TransferTerminationMessage",
        "TransferProcess",
        "TransferError",
    ];
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|kind| !tally.contains_key(*kind))
        .collect();
    assert!(missing.is_empty(), "never emitted: {missing:?}; {tally:?}");
    assert_eq!(tally.len(), expected.len(), "unexpected kinds: {tally:?}");

    // The policies in them were the interesting ones: agreements with constraints and typed
    // literals, logical constraints, and duties in the catalogue offers.
    let agreements: Vec<String> = documents
        .iter()
        .filter(|(_, d)| d["@type"] == "ContractAgreementMessage")
        .map(|(_, d)| d["agreement"].to_string())
        .collect();
    assert!(
        agreements
            .iter()
            .any(|a| a.contains("\"constraint\"") && a.contains("\"@value\"")),
        "no agreement with typed constraints: {agreements:?}"
    );
    let offers: String = documents
        .iter()
        .filter(|(_, d)| d["@type"] == "Dataset" || d["@type"] == "Catalog")
        .map(|(_, d)| d.to_string())
        .collect();
    for term in [
        "\"or\"",
        "\"xone\"",
        "\"and\"",
        "\"andSequence\"",
        "\"duty\"",
        "\"@value\"",
    ] {
        assert!(offers.contains(term), "no offer used {term}");
    }
    let refused: Vec<&str> = documents
        .iter()
        .filter(|(_, d)| d["@type"] == "ContractNegotiationTerminationMessage")
        .map(|(label, _)| label.as_str())
        .collect();
    eprintln!(
        "DSP 2025-1 schemas: {} documents validated: {tally:?}; terminations: {refused:?}",
        documents.len()
    );
}

/// The validator fails what the schemas forbid, including through the repaired
/// `#definitions/` references of the transfer schemas; otherwise requirement 1's pass would
/// prove nothing.
#[test]
fn the_schema_validator_fails_invalid_documents() {
    let (Some(reference), Some(python)) = (
        reference_dir("DSP JSON Schema validator check"),
        python("DSP JSON Schema validator check"),
    ) else {
        return;
    };
    let folder = tempfile::tempdir().expect("temp dir");
    let invalid = [
        // A state the protocol does not have.
        json!({"@context": [CONTEXT], "@type": "ContractNegotiation",
               "providerPid": "urn:p", "consumerPid": "urn:c", "state": "PENDING"}),
        // No providerPid: required only through transfer-schema.json#definitions/...
        json!({"@context": [CONTEXT], "@type": "TransferTerminationMessage",
               "consumerPid": "urn:c"}),
        // A catalogue offer must not name its target.
        json!({"@context": [CONTEXT], "@type": "Dataset", "@id": "urn:d",
               "hasPolicy": [{"@id": "urn:o", "@type": "Offer", "target": "urn:d",
                              "permission": [{"action": "use"}]}],
               "distribution": [{"format": "HttpData-PULL", "accessService": "urn:s"}]}),
    ];
    for (index, document) in invalid.iter().enumerate() {
        std::fs::write(
            folder.path().join(format!("{index}.json")),
            document.to_string(),
        )
        .expect("write");
    }
    let (code, report) = validate(&python, &reference, folder.path());
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("FAIL ")).count(),
        invalid.len(),
        "{report}"
    );
}

// ------------------------------------------------------------------ requirement 2

/// The official examples of messages the node receives, with the `@type` they are read as.
const RECEIVED_EXAMPLES: [(&str, &str); 16] = [
    (
        "catalog/example/catalog-request-message.json",
        "CatalogRequestMessage",
    ),
    (
        "catalog/example/dataset-request-message.json",
        "DatasetRequestMessage",
    ),
    (
        "negotiation/example/contract-request-message_initial.json",
        "ContractRequestMessage",
    ),
    (
        "negotiation/example/contract-request-message.json",
        "ContractRequestMessage",
    ),
    (
        "negotiation/example/contract-offer-message_initial.json",
        "ContractOfferMessage",
    ),
    (
        "negotiation/example/contract-offer-message.json",
        "ContractOfferMessage",
    ),
    (
        "negotiation/example/contract-agreement-message.json",
        "ContractAgreementMessage",
    ),
    (
        "negotiation/example/contract-agreement-message-full.json",
        "ContractAgreementMessage",
    ),
    (
        "negotiation/example/contract-agreement-verification-message.json",
        "ContractAgreementVerificationMessage",
    ),
    (
        "negotiation/example/contract-negotiation-event-message.json",
        "ContractNegotiationEventMessage",
    ),
    (
        "negotiation/example/contract-negotiation-termination-message.json",
        "ContractNegotiationTerminationMessage",
    ),
    (
        "transfer/example/transfer-request-message.json",
        "TransferRequestMessage",
    ),
    (
        "transfer/example/transfer-start-message.json",
        "TransferStartMessage",
    ),
    (
        "transfer/example/transfer-suspension-message.json",
        "TransferSuspensionMessage",
    ),
    (
        "transfer/example/transfer-completion-message.json",
        "TransferCompletionMessage",
    ),
    (
        "transfer/example/transfer-termination-message.json",
        "TransferTerminationMessage",
    ),
];

/// The official examples that are not messages the node receives, and why.
const NOT_APPLICABLE_EXAMPLES: [(&str, &str); 11] = [
    // Answers and objects the node writes (requirement 1 validates its own), never parses.
    (
        "catalog/example/catalog.json",
        "a Catalog: the node's answer to a catalogue request",
    ),
    (
        "catalog/example/nested-catalog.json",
        "a Catalog with sub-catalogues: an answer",
    ),
    (
        "catalog/example/dataset.json",
        "a Dataset: the node's answer to a dataset request",
    ),
    (
        "catalog/example/catalog-error.json",
        "a CatalogError: an error answer",
    ),
    (
        "negotiation/example/contract-negotiation.json",
        "a ContractNegotiation: an answer",
    ),
    (
        "negotiation/example/contract-negotiation-error.json",
        "a ContractNegotiationError: an error answer",
    ),
    (
        "transfer/example/transfer-process.json",
        "a TransferProcess: an answer",
    ),
    (
        "transfer/example/transfer-error.json",
        "a TransferError: an error answer",
    ),
    // Discovery documents: served or published, not DSP messages.
    (
        "common/example/protocol-version.json",
        "the version document the node serves",
    ),
    (
        "common/example/catalogservice-did-service.json",
        "a DID document service entry; the node resolves no DIDs",
    ),
    (
        "common/example/dataservice-did-service.json",
        "a DID document service entry; the node resolves no DIDs (and the example fails its own schema's serviceEndpoint pattern)",
    ),
];

/// Every official example of a message the node receives is accepted by the node's reader as
/// that message, and the others are listed, with a reason, as not applicable (a new example
/// in neither list fails the test). Requirement: "the node accepts every official example
/// message that is valid"; a strict reader that refused the spec's own examples would refuse
/// conforming connectors.
#[test]
fn every_official_example_message_is_accepted() {
    let Some(reference) = reference_dir("DSP example messages") else {
        return;
    };
    let root = reference.join("dsp-2025-1");
    let mut examples = Vec::new();
    for area in std::fs::read_dir(&root).expect("dsp-2025-1") {
        let folder = area.expect("entry").path().join("example");
        if let Ok(files) = std::fs::read_dir(&folder) {
            for file in files {
                let path = file.expect("entry").path();
                if path.extension().is_some_and(|e| e == "json") {
                    let relative = path.strip_prefix(&root).expect("under root");
                    examples.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    examples.sort();
    let mut accepted = Vec::new();
    for example in &examples {
        if NOT_APPLICABLE_EXAMPLES.iter().any(|(n, _)| n == example) {
            continue;
        }
        let (_, kind) = RECEIVED_EXAMPLES
            .iter()
            .find(|(n, _)| n == example)
            .unwrap_or_else(|| panic!("{example} is in neither list of this test"));
        let bytes = std::fs::read(root.join(example)).expect("example");
        let message = agora::contract::messages::parse(&bytes, &[kind])
            .unwrap_or_else(|e| panic!("{example} is refused: {e}"));
        assert_eq!(message.type_name(), *kind, "{example}");
        accepted.push(example.as_str());
    }
    assert_eq!(accepted.len(), RECEIVED_EXAMPLES.len(), "{examples:?}");
    assert_eq!(
        examples.len(),
        RECEIVED_EXAMPLES.len() + NOT_APPLICABLE_EXAMPLES.len(),
        "{examples:?}"
    );
    eprintln!(
        "DSP 2025-1 examples: {} accepted, {} not applicable",
        accepted.len(),
        NOT_APPLICABLE_EXAMPLES.len()
    );
}

/// The initial contract request example, pointed at a real offer and a real callback, starts
/// a negotiation at a real node (201), and the catalogue request example is answered as it is
/// (200): the examples pass the HTTP layer too, not only the reader.
#[test]
fn official_examples_are_accepted_over_http() {
    let Some(reference) = reference_dir("DSP example messages over HTTP") else {
        return;
    };
    let root = reference.join("dsp-2025-1");
    let read = |example: &str| -> Json {
        serde_json::from_slice(&std::fs::read(root.join(example)).expect("example")).expect("JSON")
    };
    let provider = Provider::start(&template_policy(OPEN), &[]);
    let peer = Peer::start();

    let catalog_request =
        std::fs::read(root.join("catalog/example/catalog-request-message.json")).expect("example");
    let catalog = provider.node.send(
        "POST",
        "/dsp/catalog/request",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {}", provider.consumer)),
        ],
        &catalog_request,
    );
    assert_eq!(catalog.status, 200, "{}", catalog.text());
    assert_eq!(catalog.json()["dataset"][0]["@id"], provider.iri.as_str());

    let mut request = read("negotiation/example/contract-request-message_initial.json");
    request["offer"]["@id"] = provider.offer["@id"].clone();
    request["offer"]["target"] = json!(provider.iri);
    request["callbackAddress"] = json!(peer.dsp());
    let answer = provider.post("/dsp/negotiations/request", &request);
    assert_eq!(answer.status, 201, "{}", answer.text());
    let negotiation = answer.json();
    assert_eq!(negotiation["@type"], "ContractNegotiation");
    assert_eq!(negotiation["consumerPid"], request["consumerPid"]);
    // The node answered the request by its policy: an agreement or its own offer.
    first_of(&peer, &["ContractAgreementMessage", "ContractOfferMessage"]);
}
