//! The 67 scenarios of the Eclipse Dataspace TCK test plan for DSP 2025-1
//! (`../shared/reference/dsp-tck/test-plan.txt`), ported with the same ids: the node is the
//! connector under test and a [`Peer`] plays the counter-party. Each test's name is the TCK id
//! (`CN:01-03` → `cn_01_03`) and its doc comment the TCK display name.
//!
//! What makes the node take each turn is its own behaviour, not a script:
//! - as provider it agrees to its catalogue offer when the requester's claims satisfy the
//!   policy, terminates with the failed constraint when they do not, answers an offer it did not
//!   make with its own offer once and terminates a second change, waits in REQUESTED/ACCEPTED
//!   when the policy requires the holder's approval, and terminates at verification when the
//!   dataset was withdrawn; the holder ends negotiations and transfers through the API;
//! - as consumer (for a user of `POST /api/negotiations`) it accepts an offer with the terms it
//!   asked for, counters once otherwise, refuses an offer or agreement for other terms or
//!   another dataset, and verifies a matching agreement;
//! - a transfer is STARTED once the consumer acknowledged the start message.
//!
//! Illegal messages must get a DSP error (4xx) and leave the state unchanged.

use super::common::{Options, TestNode};
use super::dsp_peer::{CONTEXT, OPEN, Peer, Provider, RESEARCH, approval_policy, template_policy};
use agora::identity::Role;
use serde_json::{Value as Json, json};
use std::thread::JoinHandle;

fn msg(kind: &str, provider_pid: &str, consumer_pid: &str, extra: Json) -> Json {
    Provider::negotiation_message(kind, provider_pid, consumer_pid, extra)
}

fn open_provider() -> Provider {
    Provider::start(&template_policy(OPEN), &[])
}

fn assert_dsp_error(response: &super::common::Response, kind: &str) {
    assert!(
        (400..500).contains(&response.status),
        "expected a DSP error, got {}: {}",
        response.status,
        response.text()
    );
    let body = response.json();
    assert_eq!(body["@type"], kind, "{body}");
    assert!(
        body["reason"][0].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
}

// ------------------------------------------------------------------ metadata and catalogue

/// MET:01-01: Verify metadata request
#[test]
fn met_01_01() {
    let node = TestNode::start(Options::default());
    let answer = node.get("/.well-known/dspace-version", &[]);
    assert_eq!(answer.status, 200);
    let versions = answer.json();
    let v = &versions["protocolVersions"][0];
    assert_eq!(v["version"], "2025-1");
    assert_eq!(v["binding"], "HTTPS");
    assert_eq!(v["path"], "/dsp");
}

/// CAT:01-01: Verify catalog request
#[test]
fn cat_01_01() {
    let provider = open_provider();
    let answer = provider.post(
        "/dsp/catalog/request",
        &json!({"@context": [CONTEXT], "@type": "CatalogRequestMessage", "filter": []}),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let catalog = answer.json();
    assert_eq!(catalog["@type"], "Catalog");
    assert_eq!(catalog["participantId"], provider.node.node_id());
    let dataset = &catalog["dataset"][0];
    assert_eq!(dataset["@id"], provider.iri.as_str());
    assert_eq!(dataset["hasPolicy"][0]["@type"], "Offer");
    assert_eq!(dataset["distribution"][0]["format"], "HttpData-PULL");
}

/// CAT:01-02: Verify dataset request
#[test]
fn cat_01_02() {
    let provider = open_provider();
    let by_id = provider.get_dsp(&format!("/dsp/catalog/datasets/{}", provider.dataset));
    assert_eq!(by_id.status, 200);
    assert_eq!(by_id.json()["@id"], provider.iri.as_str());
    assert_eq!(by_id.json()["@context"][0], CONTEXT);
    let encoded: String =
        percent_encoding::utf8_percent_encode(&provider.iri, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let by_iri = provider.get_dsp(&format!("/dsp/catalog/datasets/{encoded}"));
    assert_eq!(by_iri.status, 200, "{}", by_iri.text());
}

/// CAT:01-03: Verify dataset request not found
#[test]
fn cat_01_03() {
    let provider = open_provider();
    let answer = provider.get_dsp("/dsp/catalog/datasets/no-such-dataset");
    assert_eq!(answer.status, 404);
    assert_dsp_error(&answer, "CatalogError");
}

// ------------------------------------------------------------------ negotiation, provider side

/// CN:01-01: Verify contract request, offer received, consumer terminated
#[test]
fn cn_01_01() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = provider.request(&peer, provider.changed_offer());
    let offer = peer.expect("ContractOfferMessage");
    assert_eq!(offer.body["offer"]["@id"], provider.offer["@id"]);
    assert_eq!(provider.negotiation_state(&provider_pid), "OFFERED");
    let terminated = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/termination"),
        &msg(
            "ContractNegotiationTerminationMessage",
            &provider_pid,
            &consumer_pid,
            json!({"code": "1", "reason": ["not interested"]}),
        ),
    );
    assert_eq!(terminated.status, 200, "{}", terminated.text());
    assert_eq!(provider.negotiation_state(&provider_pid), "TERMINATED");
}

/// CN:01-02: Verify contract request, offer received, consumer counter-offer, provider terminated
#[test]
fn cn_01_02() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = provider.request(&peer, provider.changed_offer());
    peer.expect("ContractOfferMessage");
    let counter = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/request"),
        &msg(
            "ContractRequestMessage",
            &provider_pid,
            &consumer_pid,
            json!({"offer": provider.changed_offer()}),
        ),
    );
    assert_eq!(counter.status, 200, "{}", counter.text());
    let termination = peer.expect("ContractNegotiationTerminationMessage");
    assert!(
        termination.body["reason"][0]
            .as_str()
            .unwrap()
            .contains("offers of its catalogue")
    );
    assert_eq!(provider.negotiation_state(&provider_pid), "TERMINATED");
}

/// CN:01-03: Verify contract request, offer received, consumer accepted, provider agreement, consumer verified, provider finalized
#[test]
fn cn_01_03() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = provider.request(&peer, provider.changed_offer());
    peer.expect("ContractOfferMessage");
    let accepted = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/events"),
        &msg(
            "ContractNegotiationEventMessage",
            &provider_pid,
            &consumer_pid,
            json!({"eventType": "ACCEPTED"}),
        ),
    );
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    let agreement = peer.expect("ContractAgreementMessage");
    assert_eq!(agreement.body["agreement"]["target"], provider.iri.as_str());
    assert_eq!(
        agreement.body["agreement"]["assignee"],
        "urn:participant:consumer"
    );
    let verified = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/agreement/verification"),
        &msg(
            "ContractAgreementVerificationMessage",
            &provider_pid,
            &consumer_pid,
            json!({}),
        ),
    );
    assert_eq!(verified.status, 200);
    let finalized = peer.expect("ContractNegotiationEventMessage");
    assert_eq!(finalized.body["eventType"], "FINALIZED");
    assert_eq!(provider.negotiation_state(&provider_pid), "FINALIZED");
}

/// CN:01-04: Verify contract request, provider agreement, consumer verified, provider finalized
#[test]
fn cn_01_04() {
    let provider = open_provider();
    let peer = Peer::start();
    let agreement = provider.agree(&peer);
    let read = provider.node.get(
        &format!("/api/agreements/{agreement}"),
        &[("Authorization", &format!("Bearer {}", provider.consumer))],
    );
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(read.json()["dataset"], provider.dataset.as_str());
}

/// CN:02-01: Verify contract request, provider terminated
#[test]
fn cn_02_01() {
    let provider = Provider::start(&template_policy(RESEARCH), &[("org_type", "company")]);
    let peer = Peer::start();
    let (_, provider_pid) = provider.request(&peer, provider.exact_offer());
    let termination = peer.expect("ContractNegotiationTerminationMessage");
    let reasons = termination.body["reason"].to_string();
    assert!(
        reasons.contains("purpose")
            || reasons.contains("orgType")
            || reasons.contains("organisation"),
        "{reasons}"
    );
    assert_eq!(provider.negotiation_state(&provider_pid), "TERMINATED");
}

/// CN:02-02: Verify contract request, consumer terminated
#[test]
fn cn_02_02() {
    let provider = Provider::start(&approval_policy(), &[]);
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = provider.request(&peer, provider.exact_offer());
    assert_eq!(provider.negotiation_state(&provider_pid), "REQUESTED");
    let terminated = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/termination"),
        &msg(
            "ContractNegotiationTerminationMessage",
            &provider_pid,
            &consumer_pid,
            json!({}),
        ),
    );
    assert_eq!(terminated.status, 200, "{}", terminated.text());
    assert_eq!(provider.negotiation_state(&provider_pid), "TERMINATED");
}

/// CN:02-03: Verify contract request, provider agreement, consumer terminated
#[test]
fn cn_02_03() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = provider.request(&peer, provider.exact_offer());
    peer.expect("ContractAgreementMessage");
    assert_eq!(provider.negotiation_state(&provider_pid), "AGREED");
    let terminated = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/termination"),
        &msg(
            "ContractNegotiationTerminationMessage",
            &provider_pid,
            &consumer_pid,
            json!({"reason": ["changed my mind"]}),
        ),
    );
    assert_eq!(terminated.status, 200);
    assert_eq!(provider.negotiation_state(&provider_pid), "TERMINATED");
}

/// CN:02-04: Verify contract request, offer received, consumer terminated
#[test]
fn cn_02_04() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = provider.request(&peer, provider.changed_offer());
    peer.expect("ContractOfferMessage");
    let terminated = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/termination"),
        &msg(
            "ContractNegotiationTerminationMessage",
            &provider_pid,
            &consumer_pid,
            json!({}),
        ),
    );
    assert_eq!(terminated.status, 200);
    let events = provider.node.get(
        &format!("/api/negotiations/{provider_pid}/events"),
        &[("Authorization", &format!("Bearer {}", provider.consumer))],
    );
    let events = events.json()["events"].as_array().unwrap().clone();
    let states: Vec<&str> = events
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["REQUESTED", "OFFERED", "TERMINATED"]);
}

/// CN:02-05: Verify contract request, offer received, provider terminated
#[test]
fn cn_02_05() {
    let provider = open_provider();
    let peer = Peer::start();
    let (_, provider_pid) = provider.request(&peer, provider.changed_offer());
    peer.expect("ContractOfferMessage");
    let ended = provider.node.send(
        "POST",
        &format!("/api/negotiations/{provider_pid}/terminate"),
        &[
            ("Authorization", &format!("Bearer {}", provider.holder)),
            ("Content-Type", "application/json"),
        ],
        br#"{"note": "the offer is withdrawn"}"#,
    );
    assert_eq!(ended.status, 200, "{}", ended.text());
    let termination = peer.expect("ContractNegotiationTerminationMessage");
    assert!(
        termination.body["reason"][0]
            .as_str()
            .unwrap()
            .contains("withdrawn")
    );
    assert_eq!(provider.negotiation_state(&provider_pid), "TERMINATED");
}

/// CN:02-06: Verify contract request, offer received, consumer accepted, provider terminated
#[test]
fn cn_02_06() {
    let provider = Provider::start(&template_policy(RESEARCH), &[("org_type", "company")]);
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = provider.request(&peer, provider.changed_offer());
    peer.expect("ContractOfferMessage");
    let accepted = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/events"),
        &msg(
            "ContractNegotiationEventMessage",
            &provider_pid,
            &consumer_pid,
            json!({"eventType": "ACCEPTED"}),
        ),
    );
    assert_eq!(accepted.status, 200);
    peer.expect("ContractNegotiationTerminationMessage");
    assert_eq!(provider.negotiation_state(&provider_pid), "TERMINATED");
}

/// CN:02-07: Verify contract request, provider agreement, consumer verified, provider terminated
#[test]
fn cn_02_07() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = provider.request(&peer, provider.exact_offer());
    peer.expect("ContractAgreementMessage");
    let withdrawn = provider.node.send(
        "DELETE",
        &format!("/api/datasets/{}", provider.dataset),
        &[("Authorization", &format!("Bearer {}", provider.holder))],
        b"",
    );
    assert_eq!(withdrawn.status, 204, "{}", withdrawn.text());
    let verified = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/agreement/verification"),
        &msg(
            "ContractAgreementVerificationMessage",
            &provider_pid,
            &consumer_pid,
            json!({}),
        ),
    );
    assert_eq!(verified.status, 200);
    let termination = peer.expect("ContractNegotiationTerminationMessage");
    assert!(
        termination.body["reason"][0]
            .as_str()
            .unwrap()
            .contains("withdrawn")
    );
    assert_eq!(provider.negotiation_state(&provider_pid), "TERMINATED");
}

/// CN:03-01: Verify contract request, provider agreement, consumer verified, provider finalized, invalid consumer terminated
#[test]
fn cn_03_01() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = provider.request(&peer, provider.exact_offer());
    peer.expect("ContractAgreementMessage");
    provider.post(
        &format!("/dsp/negotiations/{provider_pid}/agreement/verification"),
        &msg(
            "ContractAgreementVerificationMessage",
            &provider_pid,
            &consumer_pid,
            json!({}),
        ),
    );
    peer.expect("ContractNegotiationEventMessage");
    let late = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/termination"),
        &msg(
            "ContractNegotiationTerminationMessage",
            &provider_pid,
            &consumer_pid,
            json!({}),
        ),
    );
    assert_dsp_error(&late, "ContractNegotiationError");
    assert_eq!(late.json()["providerPid"], provider_pid.as_str());
    assert_eq!(provider.negotiation_state(&provider_pid), "FINALIZED");
}

/// CN:03-02: Verify contract request, offer received, invalid consumer verified
#[test]
fn cn_03_02() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = provider.request(&peer, provider.changed_offer());
    peer.expect("ContractOfferMessage");
    let verified = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/agreement/verification"),
        &msg(
            "ContractAgreementVerificationMessage",
            &provider_pid,
            &consumer_pid,
            json!({}),
        ),
    );
    assert_dsp_error(&verified, "ContractNegotiationError");
    assert_eq!(provider.negotiation_state(&provider_pid), "OFFERED");
}

/// CN:03-03: Verify contract request, offer received, consumer accepted, illegal consumer verified
#[test]
fn cn_03_03() {
    let provider = Provider::start(&approval_policy(), &[]);
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = provider.request(&peer, json!({"@type": "Offer", "@id": provider.offer["@id"], "target": provider.iri, "permission": [{"action": "read"}]}));
    peer.expect("ContractOfferMessage");
    let accepted = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/events"),
        &msg(
            "ContractNegotiationEventMessage",
            &provider_pid,
            &consumer_pid,
            json!({"eventType": "ACCEPTED"}),
        ),
    );
    assert_eq!(accepted.status, 200);
    assert_eq!(provider.negotiation_state(&provider_pid), "ACCEPTED");
    let verified = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/agreement/verification"),
        &msg(
            "ContractAgreementVerificationMessage",
            &provider_pid,
            &consumer_pid,
            json!({}),
        ),
    );
    assert_dsp_error(&verified, "ContractNegotiationError");
    assert_eq!(provider.negotiation_state(&provider_pid), "ACCEPTED");
}

/// CN:03-04: Verify contract request, offer received, consumer counter-offer (x2), provider terminated
#[test]
fn cn_03_04() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = provider.request(&peer, provider.changed_offer());
    peer.expect("ContractOfferMessage");
    let counter = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/request"),
        &msg(
            "ContractRequestMessage",
            &provider_pid,
            &consumer_pid,
            json!({"offer": provider.changed_offer()}),
        ),
    );
    assert_eq!(counter.status, 200);
    peer.expect("ContractNegotiationTerminationMessage");
    let again = provider.post(
        &format!("/dsp/negotiations/{provider_pid}/request"),
        &msg(
            "ContractRequestMessage",
            &provider_pid,
            &consumer_pid,
            json!({"offer": provider.changed_offer()}),
        ),
    );
    assert_dsp_error(&again, "ContractNegotiationError");
    assert_eq!(provider.negotiation_state(&provider_pid), "TERMINATED");
}

// ------------------------------------------------------------------ negotiation, consumer side

/// The node as consumer for one of its users, the peer as provider.
struct Consumer {
    node: TestNode,
    user: String,
    provider_token: String,
    peer: Peer,
}

/// What the user asks for.
fn wanted_offer() -> Json {
    json!({"@type": "Offer", "@id": "urn:test:offer:1", "target": "urn:test:dataset:ACNC",
           "permission": [{"action": "use"}]})
}

impl Consumer {
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

    /// Starts `POST /api/negotiations` in the background: the consumerPid the peer received.
    fn negotiate(&self) -> (String, JoinHandle<super::common::Response>) {
        let url = self.node.url.clone();
        let user = self.user.clone();
        let body = json!({"dataset": "ACNC", "provider": self.peer.dsp(), "offer": wanted_offer(), "purpose": "dpv:AcademicResearch"});
        let call = std::thread::spawn(move || {
            let request = ureq::http::Request::builder()
                .method("POST")
                .uri(format!("{url}/api/negotiations"))
                .header("Authorization", format!("Bearer {user}"))
                .header("Content-Type", "application/json")
                .body(body.to_string().into_bytes())
                .expect("request");
            super::common::Response::from_result(super::common::agent().run(request))
        });
        let request = self.peer.expect("ContractRequestMessage");
        assert_eq!(request.body["offer"]["@id"], "urn:test:offer:1");
        assert!(
            request.body["callbackAddress"]
                .as_str()
                .unwrap()
                .ends_with("/dsp")
        );
        (
            request.body["consumerPid"]
                .as_str()
                .expect("consumerPid")
                .to_owned(),
            call,
        )
    }

    fn send(&self, consumer_pid: &str, path: &str, message: Json) -> super::common::Response {
        self.node.send(
            "POST",
            &format!("/dsp/negotiations/{consumer_pid}/{path}"),
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &format!("Bearer {}", self.provider_token)),
            ],
            message.to_string().as_bytes(),
        )
    }

    fn state(&self, consumer_pid: &str) -> String {
        let answer = self.node.get(
            &format!("/api/negotiations/{consumer_pid}"),
            &[("Authorization", &format!("Bearer {}", self.user))],
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()["state"].as_str().unwrap().to_owned()
    }

    fn offer(&self, consumer_pid: &str, terms: Json, target: &str) -> super::common::Response {
        let mut offer = json!({"@type": "Offer", "@id": "urn:test:offer:1", "target": target});
        if let (Json::Object(o), Json::Object(t)) = (&mut offer, terms) {
            o.extend(t);
        }
        self.send(
            consumer_pid,
            "offers",
            msg(
                "ContractOfferMessage",
                &self.peer.pid,
                consumer_pid,
                json!({"offer": offer}),
            ),
        )
    }

    fn agreement(&self, consumer_pid: &str, terms: Json) -> super::common::Response {
        let mut agreement = json!({"@type": "Agreement", "@id": "urn:test:agreement:1", "target": "urn:test:dataset:ACNC",
            "assigner": "urn:participant:provider", "assignee": "consumer", "timestamp": "2026-11-25T10:00:00Z"});
        if let (Json::Object(a), Json::Object(t)) = (&mut agreement, terms) {
            a.extend(t);
        }
        self.send(
            consumer_pid,
            "agreement",
            msg(
                "ContractAgreementMessage",
                &self.peer.pid,
                consumer_pid,
                json!({"agreement": agreement}),
            ),
        )
    }

    fn finalize(&self, consumer_pid: &str) -> super::common::Response {
        self.send(
            consumer_pid,
            "events",
            msg(
                "ContractNegotiationEventMessage",
                &self.peer.pid,
                consumer_pid,
                json!({"eventType": "FINALIZED"}),
            ),
        )
    }

    fn terminate(&self, consumer_pid: &str) -> super::common::Response {
        self.send(
            consumer_pid,
            "termination",
            msg(
                "ContractNegotiationTerminationMessage",
                &self.peer.pid,
                consumer_pid,
                json!({"code": "P1", "reason": ["the provider ends it"]}),
            ),
        )
    }

    /// A finalized negotiation: the agreement id.
    fn agreed(&self) -> String {
        let (consumer_pid, call) = self.negotiate();
        assert_eq!(self.agreement(&consumer_pid, same_terms()).status, 200);
        self.peer.expect("ContractAgreementVerificationMessage");
        assert_eq!(self.finalize(&consumer_pid).status, 200);
        let answer = call.join().unwrap();
        assert_eq!(answer.status, 201, "{}", answer.text());
        answer.json()["agreement"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn same_terms() -> Json {
    json!({"permission": [{"action": "use"}]})
}

fn other_terms() -> Json {
    json!({"permission": [{"action": "use", "constraint": [{"leftOperand": "dateTime", "operator": "lteq", "rightOperand": "2020-01-01T00:00:00Z"}]}]})
}

/// CN_C:01-01: Verify contract request, offer received, consumer accepted, provider agreed, consumer verified, provider finalized
#[test]
fn cn_c_01_01() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(
        c.offer(&pid, same_terms(), "urn:test:dataset:ACNC").status,
        200
    );
    let accepted = c.peer.expect("ContractNegotiationEventMessage");
    assert_eq!(accepted.body["eventType"], "ACCEPTED");
    assert_eq!(c.agreement(&pid, same_terms()).status, 200);
    c.peer.expect("ContractAgreementVerificationMessage");
    assert_eq!(c.finalize(&pid).status, 200);
    let answer = call.join().unwrap();
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_eq!(answer.json()["agreement"]["id"], "urn:test:agreement:1");
}

/// CN_C:01-02: Verify contract request, offer received, consumer counter-offer, provider terminated
#[test]
fn cn_c_01_02() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(
        c.offer(&pid, other_terms(), "urn:test:dataset:ACNC").status,
        200
    );
    let counter = c.peer.expect("ContractRequestMessage");
    assert_eq!(counter.body["providerPid"], c.peer.pid.as_str());
    assert_eq!(
        counter.body["offer"]["permission"],
        same_terms()["permission"]
    );
    assert_eq!(c.terminate(&pid).status, 200);
    let answer = call.join().unwrap();
    let problem = answer.assert_problem(403);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("the provider ends it"),
        "{problem}"
    );
}

/// CN_C:01-03: Verify contract request, offer received, consumer terminated
#[test]
fn cn_c_01_03() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(
        c.offer(&pid, same_terms(), "urn:test:dataset:OTHER").status,
        200
    );
    let termination = c.peer.expect("ContractNegotiationTerminationMessage");
    assert!(
        termination.body["reason"][0]
            .as_str()
            .unwrap()
            .contains("another dataset")
    );
    call.join().unwrap().assert_problem(403);
    assert_eq!(c.state(&pid), "TERMINATED");
}

/// CN_C:01-04: Verify contract request, provider agreement, consumer verified, provider finalized
#[test]
fn cn_c_01_04() {
    let c = Consumer::start();
    let agreement = c.agreed();
    let read = c.node.get(
        &format!("/api/agreements/{agreement}"),
        &[("Authorization", &format!("Bearer {}", c.user))],
    );
    assert_eq!(read.status, 200, "{}", read.text());
}

/// CN_C:02-01: Verify contract request, provider terminated
#[test]
fn cn_c_02_01() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(c.terminate(&pid).status, 200);
    call.join().unwrap().assert_problem(403);
    assert_eq!(c.state(&pid), "TERMINATED");
}

/// CN_C:02-02: Verify contract request, consumer terminated
#[test]
fn cn_c_02_02() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    let ended = c.node.send(
        "POST",
        &format!("/api/negotiations/{pid}/terminate"),
        &[("Authorization", &format!("Bearer {}", c.user))],
        b"",
    );
    assert_eq!(ended.status, 200, "{}", ended.text());
    c.peer.expect("ContractNegotiationTerminationMessage");
    call.join().unwrap().assert_problem(403);
}

/// CN_C:02-03: Verify contract request, provider agreement, consumer terminated
#[test]
fn cn_c_02_03() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(c.agreement(&pid, other_terms()).status, 200);
    let termination = c.peer.expect("ContractNegotiationTerminationMessage");
    assert!(
        termination.body["reason"][0]
            .as_str()
            .unwrap()
            .contains("not the ones negotiated")
    );
    call.join().unwrap().assert_problem(403);
}

/// CN_C:02-04: Verify contract request, offer received, provider terminated
#[test]
fn cn_c_02_04() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(
        c.offer(&pid, other_terms(), "urn:test:dataset:ACNC").status,
        200
    );
    c.peer.expect("ContractRequestMessage");
    assert_eq!(c.terminate(&pid).status, 200);
    call.join().unwrap().assert_problem(403);
}

/// CN_C:02-05: Verify contract request, offer received, consumer accepted, provider terminated
#[test]
fn cn_c_02_05() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(
        c.offer(&pid, same_terms(), "urn:test:dataset:ACNC").status,
        200
    );
    c.peer.expect("ContractNegotiationEventMessage");
    assert_eq!(c.terminate(&pid).status, 200);
    call.join().unwrap().assert_problem(403);
    assert_eq!(c.state(&pid), "TERMINATED");
}

/// CN_C:02-06: Verify contract request, provider agreement, consumer verified, provider terminated
#[test]
fn cn_c_02_06() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(c.agreement(&pid, same_terms()).status, 200);
    c.peer.expect("ContractAgreementVerificationMessage");
    assert_eq!(c.terminate(&pid).status, 200);
    call.join().unwrap().assert_problem(403);
}

/// CN_C:03-01: Verify contract request, invalid provider finalized
#[test]
fn cn_c_03_01() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    let finalized = c.finalize(&pid);
    assert_dsp_error(&finalized, "ContractNegotiationError");
    assert_eq!(c.state(&pid), "REQUESTED");
    assert_eq!(c.terminate(&pid).status, 200);
    let _ = call.join();
}

/// CN_C:03-02: Verify contract request, offer received, invalid provider agreed
#[test]
fn cn_c_03_02() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(
        c.offer(&pid, same_terms(), "urn:test:dataset:OTHER").status,
        200
    );
    c.peer.expect("ContractNegotiationTerminationMessage");
    let agreed = c.agreement(&pid, same_terms());
    assert_dsp_error(&agreed, "ContractNegotiationError");
    assert_eq!(c.state(&pid), "TERMINATED");
    let _ = call.join();
}

/// CN_C:03-03: Verify contract request, offer received, invalid provider finalized
#[test]
fn cn_c_03_03() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(
        c.offer(&pid, same_terms(), "urn:test:dataset:ACNC").status,
        200
    );
    let finalized = c.finalize(&pid);
    assert_dsp_error(&finalized, "ContractNegotiationError");
    assert_eq!(c.state(&pid), "ACCEPTED");
    assert_eq!(c.terminate(&pid).status, 200);
    let _ = call.join();
}

/// CN_C:03-04: Verify contract request, offer received, consumer accepted, invalid provider finalized
#[test]
fn cn_c_03_04() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(
        c.offer(&pid, same_terms(), "urn:test:dataset:ACNC").status,
        200
    );
    c.peer.expect("ContractNegotiationEventMessage");
    let finalized = c.finalize(&pid);
    assert_dsp_error(&finalized, "ContractNegotiationError");
    assert_eq!(c.state(&pid), "ACCEPTED");
    assert_eq!(c.terminate(&pid).status, 200);
    let _ = call.join();
}

/// CN_C:03-05: Verify contract request, offer received, consumer accepted, invalid provider offer
#[test]
fn cn_c_03_05() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(
        c.offer(&pid, same_terms(), "urn:test:dataset:ACNC").status,
        200
    );
    c.peer.expect("ContractNegotiationEventMessage");
    let offered = c.offer(&pid, other_terms(), "urn:test:dataset:ACNC");
    assert_dsp_error(&offered, "ContractNegotiationError");
    assert_eq!(c.state(&pid), "ACCEPTED");
    assert_eq!(c.terminate(&pid).status, 200);
    let _ = call.join();
}

/// CN_C:03-06: Verify contract request, offer received, consumer accepted, provider agreed, invalid provider finalized
#[test]
fn cn_c_03_06() {
    let c = Consumer::start();
    let (pid, call) = c.negotiate();
    assert_eq!(
        c.offer(&pid, same_terms(), "urn:test:dataset:ACNC").status,
        200
    );
    c.peer.expect("ContractNegotiationEventMessage");
    assert_eq!(c.agreement(&pid, other_terms()).status, 200);
    c.peer.expect("ContractNegotiationTerminationMessage");
    let finalized = c.finalize(&pid);
    assert_dsp_error(&finalized, "ContractNegotiationError");
    assert_eq!(c.state(&pid), "TERMINATED");
    let _ = call.join();
}

// ------------------------------------------------------------------ transfer, provider side

fn consumer_sends(
    provider: &Provider,
    provider_pid: &str,
    consumer_pid: &str,
    path: &str,
    kind: &str,
) -> super::common::Response {
    provider.post(
        &format!("/dsp/transfers/{provider_pid}/{path}"),
        &Provider::transfer_message(kind, provider_pid, consumer_pid),
    )
}

/// TP:01-01: Verify transfer request, provider started, provider terminated
#[test]
fn tp_01_01() {
    let provider = open_provider();
    let peer = Peer::start();
    let (_, provider_pid, start) = provider.started_transfer(&peer);
    let address = &start.body["dataAddress"];
    assert_eq!(address["@type"], "DataAddress");
    assert!(address["endpoint"].as_str().unwrap().contains("/data/"));
    assert_eq!(
        provider.holder_action(&provider_pid, "terminate").status,
        200
    );
    peer.expect("TransferTerminationMessage");
    assert_eq!(provider.transfer_state(&provider_pid), "TERMINATED");
}

/// TP:01-02: Verify transfer request, provider started, provider completed
#[test]
fn tp_01_02() {
    let provider = open_provider();
    let peer = Peer::start();
    let (_, provider_pid, _) = provider.started_transfer(&peer);
    assert_eq!(
        provider.holder_action(&provider_pid, "complete").status,
        200
    );
    peer.expect("TransferCompletionMessage");
    assert_eq!(provider.transfer_state(&provider_pid), "COMPLETED");
}

/// TP:01-03: Verify transfer request, provider started, provider suspended, provider terminated
#[test]
fn tp_01_03() {
    let provider = open_provider();
    let peer = Peer::start();
    let (_, provider_pid, _) = provider.started_transfer(&peer);
    assert_eq!(provider.holder_action(&provider_pid, "suspend").status, 200);
    peer.expect("TransferSuspensionMessage");
    assert_eq!(provider.transfer_state(&provider_pid), "SUSPENDED");
    assert_eq!(
        provider.holder_action(&provider_pid, "terminate").status,
        200
    );
    peer.expect("TransferTerminationMessage");
    assert_eq!(provider.transfer_state(&provider_pid), "TERMINATED");
}

/// TP:01-04: Verify transfer request, provider started, provider suspended, provider started, provider completed
#[test]
fn tp_01_04() {
    let provider = open_provider();
    let peer = Peer::start();
    let (_, provider_pid, _) = provider.started_transfer(&peer);
    assert_eq!(provider.holder_action(&provider_pid, "suspend").status, 200);
    peer.expect("TransferSuspensionMessage");
    assert_eq!(provider.holder_action(&provider_pid, "resume").status, 200);
    let restart = peer.expect("TransferStartMessage");
    assert!(restart.body["dataAddress"]["endpointProperties"].is_array());
    assert_eq!(
        provider.holder_action(&provider_pid, "complete").status,
        200
    );
    peer.expect("TransferCompletionMessage");
    assert_eq!(provider.transfer_state(&provider_pid), "COMPLETED");
}

/// TP:01-05: Verify transfer request, provider terminated
#[test]
fn tp_01_05() {
    let provider = open_provider();
    let peer = Peer::start();
    let agreement = provider.agree(&peer);
    let withdrawn = provider.node.send(
        "DELETE",
        &format!("/api/datasets/{}", provider.dataset),
        &[("Authorization", &format!("Bearer {}", provider.holder))],
        b"",
    );
    assert_eq!(withdrawn.status, 204);
    let (_, provider_pid) = provider.request_transfer(&peer, &agreement);
    let termination = peer.expect("TransferTerminationMessage");
    assert!(
        termination.body["reason"][0]
            .as_str()
            .unwrap()
            .contains("withdrawn")
    );
    assert_eq!(provider.transfer_state(&provider_pid), "TERMINATED");
}

/// TP:02-01: Verify transfer request, provider started, consumer terminated
#[test]
fn tp_02_01() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid, _) = provider.started_transfer(&peer);
    assert_eq!(
        consumer_sends(
            &provider,
            &provider_pid,
            &consumer_pid,
            "termination",
            "TransferTerminationMessage"
        )
        .status,
        200
    );
    assert_eq!(provider.transfer_state(&provider_pid), "TERMINATED");
}

/// TP:02-02: Verify transfer request, provider started, consumer completed
#[test]
fn tp_02_02() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid, _) = provider.started_transfer(&peer);
    assert_eq!(
        consumer_sends(
            &provider,
            &provider_pid,
            &consumer_pid,
            "completion",
            "TransferCompletionMessage"
        )
        .status,
        200
    );
    assert_eq!(provider.transfer_state(&provider_pid), "COMPLETED");
}

/// TP:02-03: Verify transfer request, provider started, consumer suspended, consumer terminated
#[test]
fn tp_02_03() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid, _) = provider.started_transfer(&peer);
    assert_eq!(
        consumer_sends(
            &provider,
            &provider_pid,
            &consumer_pid,
            "suspension",
            "TransferSuspensionMessage"
        )
        .status,
        200
    );
    assert_eq!(provider.transfer_state(&provider_pid), "SUSPENDED");
    assert_eq!(
        consumer_sends(
            &provider,
            &provider_pid,
            &consumer_pid,
            "termination",
            "TransferTerminationMessage"
        )
        .status,
        200
    );
    assert_eq!(provider.transfer_state(&provider_pid), "TERMINATED");
}

/// TP:02-04: Verify transfer request, provider started, consumer suspended, consumer started, consumer completed
#[test]
fn tp_02_04() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid, _) = provider.started_transfer(&peer);
    assert_eq!(
        consumer_sends(
            &provider,
            &provider_pid,
            &consumer_pid,
            "suspension",
            "TransferSuspensionMessage"
        )
        .status,
        200
    );
    assert_eq!(
        consumer_sends(
            &provider,
            &provider_pid,
            &consumer_pid,
            "start",
            "TransferStartMessage"
        )
        .status,
        200
    );
    assert_eq!(provider.transfer_state(&provider_pid), "STARTED");
    assert_eq!(
        consumer_sends(
            &provider,
            &provider_pid,
            &consumer_pid,
            "completion",
            "TransferCompletionMessage"
        )
        .status,
        200
    );
    assert_eq!(provider.transfer_state(&provider_pid), "COMPLETED");
}

/// TP:02-05: Verify transfer request, consumer terminated
#[test]
fn tp_02_05() {
    let provider = open_provider();
    let peer = Peer::start();
    peer.refuse("/start", 400);
    let agreement = provider.agree(&peer);
    let (consumer_pid, provider_pid) = provider.request_transfer(&peer, &agreement);
    assert_eq!(
        consumer_sends(
            &provider,
            &provider_pid,
            &consumer_pid,
            "termination",
            "TransferTerminationMessage"
        )
        .status,
        200
    );
    assert_eq!(provider.transfer_state(&provider_pid), "TERMINATED");
}

/// A transfer the node could not start, because the peer refused its start message: REQUESTED.
fn requested_transfer(provider: &Provider, peer: &Peer) -> (String, String) {
    peer.refuse("/start", 400);
    let agreement = provider.agree(peer);
    let (consumer_pid, provider_pid) = provider.request_transfer(peer, &agreement);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !peer
        .all()
        .iter()
        .any(|m| m.body["@type"] == "TransferStartMessage")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no start message was tried"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(provider.transfer_state(&provider_pid), "REQUESTED");
    (consumer_pid, provider_pid)
}

/// TP:03-01: Verify transfer request, consumer completed
#[test]
fn tp_03_01() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = requested_transfer(&provider, &peer);
    let completed = consumer_sends(
        &provider,
        &provider_pid,
        &consumer_pid,
        "completion",
        "TransferCompletionMessage",
    );
    assert_dsp_error(&completed, "TransferError");
    assert_eq!(provider.transfer_state(&provider_pid), "REQUESTED");
}

/// TP:03-02: Verify transfer request, consumer suspended
#[test]
fn tp_03_02() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid) = requested_transfer(&provider, &peer);
    let suspended = consumer_sends(
        &provider,
        &provider_pid,
        &consumer_pid,
        "suspension",
        "TransferSuspensionMessage",
    );
    assert_dsp_error(&suspended, "TransferError");
    assert_eq!(provider.transfer_state(&provider_pid), "REQUESTED");
}

/// TP:03-03: Verify transfer request, provider started, consumer suspended, consumer completed
#[test]
fn tp_03_03() {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid, _) = provider.started_transfer(&peer);
    assert_eq!(
        consumer_sends(
            &provider,
            &provider_pid,
            &consumer_pid,
            "suspension",
            "TransferSuspensionMessage"
        )
        .status,
        200
    );
    let completed = consumer_sends(
        &provider,
        &provider_pid,
        &consumer_pid,
        "completion",
        "TransferCompletionMessage",
    );
    assert_dsp_error(&completed, "TransferError");
    assert_eq!(provider.transfer_state(&provider_pid), "SUSPENDED");
}

fn terminated_then(path: &str, kind: &str) {
    let provider = open_provider();
    let peer = Peer::start();
    let (consumer_pid, provider_pid, _) = provider.started_transfer(&peer);
    assert_eq!(
        consumer_sends(
            &provider,
            &provider_pid,
            &consumer_pid,
            "termination",
            "TransferTerminationMessage"
        )
        .status,
        200
    );
    let late = consumer_sends(&provider, &provider_pid, &consumer_pid, path, kind);
    assert_dsp_error(&late, "TransferError");
    assert_eq!(provider.transfer_state(&provider_pid), "TERMINATED");
}

/// TP:03-04: Verify transfer request, provider started, consumer terminated, consumer started
#[test]
fn tp_03_04() {
    terminated_then("start", "TransferStartMessage");
}

/// TP:03-05: Verify transfer request, provider started, consumer terminated, consumer suspended
#[test]
fn tp_03_05() {
    terminated_then("suspension", "TransferSuspensionMessage");
}

/// TP:03-06: Verify transfer request, provider started, consumer terminated, consumer completed
#[test]
fn tp_03_06() {
    terminated_then("completion", "TransferCompletionMessage");
}

// ------------------------------------------------------------------ transfer, consumer side

/// A consumer node with a finalized agreement, asking for a transfer: the user's call, the
/// consumerPid the peer received.
fn consumer_transfer(c: &Consumer) -> (String, JoinHandle<super::common::Response>) {
    let agreement = c.agreed();
    let url = c.node.url.clone();
    let user = c.user.clone();
    let call = std::thread::spawn(move || {
        let request = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("{url}/api/transfers"))
            .header("Authorization", format!("Bearer {user}"))
            .header("Content-Type", "application/json")
            .body(json!({"agreement": agreement}).to_string().into_bytes())
            .expect("request");
        super::common::Response::from_result(super::common::agent().run(request))
    });
    let request = c.peer.expect("TransferRequestMessage");
    assert_eq!(request.body["agreementId"], "urn:test:agreement:1");
    assert_eq!(request.body["format"], "HttpData-PULL");
    (
        request.body["consumerPid"].as_str().unwrap().to_owned(),
        call,
    )
}

fn provider_sends(
    c: &Consumer,
    consumer_pid: &str,
    path: &str,
    kind: &str,
) -> super::common::Response {
    let mut message = Provider::transfer_message(kind, &c.peer.pid, consumer_pid);
    if kind == "TransferStartMessage" {
        message["dataAddress"] = json!({"@type": "DataAddress", "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
            "endpoint": "https://provider.example/data", "endpointProperties": [
                {"@type": "EndpointProperty", "name": "authorization", "value": "TOKEN-1"},
                {"@type": "EndpointProperty", "name": "authType", "value": "bearer"}]});
    }
    c.node.send(
        "POST",
        &format!("/dsp/transfers/{consumer_pid}/{path}"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {}", c.provider_token)),
        ],
        message.to_string().as_bytes(),
    )
}

fn consumer_transfer_state(c: &Consumer, consumer_pid: &str) -> String {
    let answer = c.node.get(
        &format!("/api/transfers/{consumer_pid}"),
        &[("Authorization", &format!("Bearer {}", c.user))],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["state"].as_str().unwrap().to_owned()
}

fn user_action(c: &Consumer, consumer_pid: &str, action: &str) -> super::common::Response {
    c.node.send(
        "POST",
        &format!("/api/transfers/{consumer_pid}/{action}"),
        &[("Authorization", &format!("Bearer {}", c.user))],
        b"",
    )
}

/// A started consumer-side transfer; the user's call answered the endpoint and token.
fn consumer_started(c: &Consumer) -> String {
    let (pid, call) = consumer_transfer(c);
    assert_eq!(
        provider_sends(c, &pid, "start", "TransferStartMessage").status,
        200
    );
    let answer = call.join().unwrap();
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_eq!(answer.json()["endpoint"], "https://provider.example/data");
    assert_eq!(answer.json()["token"], "TOKEN-1");
    pid
}

/// TP_C:01-01: Verify transfer request, provider started, provider terminated
#[test]
fn tp_c_01_01() {
    let c = Consumer::start();
    let pid = consumer_started(&c);
    assert_eq!(
        provider_sends(&c, &pid, "termination", "TransferTerminationMessage").status,
        200
    );
    assert_eq!(consumer_transfer_state(&c, &pid), "TERMINATED");
}

/// TP_C:01-02: Verify transfer request, provider started, provider completed
#[test]
fn tp_c_01_02() {
    let c = Consumer::start();
    let pid = consumer_started(&c);
    assert_eq!(
        provider_sends(&c, &pid, "completion", "TransferCompletionMessage").status,
        200
    );
    assert_eq!(consumer_transfer_state(&c, &pid), "COMPLETED");
}

/// TP_C:01-03: Verify transfer request, provider started, provider suspended, provider terminated
#[test]
fn tp_c_01_03() {
    let c = Consumer::start();
    let pid = consumer_started(&c);
    assert_eq!(
        provider_sends(&c, &pid, "suspension", "TransferSuspensionMessage").status,
        200
    );
    assert_eq!(consumer_transfer_state(&c, &pid), "SUSPENDED");
    assert_eq!(
        provider_sends(&c, &pid, "termination", "TransferTerminationMessage").status,
        200
    );
    assert_eq!(consumer_transfer_state(&c, &pid), "TERMINATED");
}

/// TP_C:01-04: Verify transfer request, provider started, provider suspended, provider started, provider completed
#[test]
fn tp_c_01_04() {
    let c = Consumer::start();
    let pid = consumer_started(&c);
    assert_eq!(
        provider_sends(&c, &pid, "suspension", "TransferSuspensionMessage").status,
        200
    );
    assert_eq!(
        provider_sends(&c, &pid, "start", "TransferStartMessage").status,
        200
    );
    assert_eq!(
        provider_sends(&c, &pid, "completion", "TransferCompletionMessage").status,
        200
    );
    assert_eq!(consumer_transfer_state(&c, &pid), "COMPLETED");
}

/// TP_C:01-05: Verify transfer request, provider terminated
#[test]
fn tp_c_01_05() {
    let c = Consumer::start();
    let (pid, call) = consumer_transfer(&c);
    assert_eq!(
        provider_sends(&c, &pid, "termination", "TransferTerminationMessage").status,
        200
    );
    call.join().unwrap().assert_problem(403);
    assert_eq!(consumer_transfer_state(&c, &pid), "TERMINATED");
}

/// TP_C:02-01: Verify transfer request, provider started, consumer terminated
#[test]
fn tp_c_02_01() {
    let c = Consumer::start();
    let pid = consumer_started(&c);
    assert_eq!(user_action(&c, &pid, "terminate").status, 200);
    c.peer.expect("TransferTerminationMessage");
    assert_eq!(consumer_transfer_state(&c, &pid), "TERMINATED");
}

/// TP_C:02-02: Verify transfer request, provider started, consumer completed
#[test]
fn tp_c_02_02() {
    let c = Consumer::start();
    let pid = consumer_started(&c);
    assert_eq!(user_action(&c, &pid, "complete").status, 200);
    c.peer.expect("TransferCompletionMessage");
    assert_eq!(consumer_transfer_state(&c, &pid), "COMPLETED");
}

/// TP_C:02-03: Verify transfer request, provider started, consumer suspended, consumer terminated
#[test]
fn tp_c_02_03() {
    let c = Consumer::start();
    let pid = consumer_started(&c);
    assert_eq!(user_action(&c, &pid, "suspend").status, 200);
    c.peer.expect("TransferSuspensionMessage");
    assert_eq!(user_action(&c, &pid, "terminate").status, 200);
    c.peer.expect("TransferTerminationMessage");
    assert_eq!(consumer_transfer_state(&c, &pid), "TERMINATED");
}

/// TP_C:02-04: Verify transfer request, provider started, consumer suspended, consumer started, consumer completed
#[test]
fn tp_c_02_04() {
    let c = Consumer::start();
    let pid = consumer_started(&c);
    assert_eq!(user_action(&c, &pid, "suspend").status, 200);
    c.peer.expect("TransferSuspensionMessage");
    assert_eq!(user_action(&c, &pid, "resume").status, 200);
    c.peer.expect("TransferStartMessage");
    assert_eq!(user_action(&c, &pid, "complete").status, 200);
    c.peer.expect("TransferCompletionMessage");
    assert_eq!(consumer_transfer_state(&c, &pid), "COMPLETED");
}

/// TP_C:02-05: Verify transfer request, consumer terminated
#[test]
fn tp_c_02_05() {
    let c = Consumer::start();
    let (pid, call) = consumer_transfer(&c);
    assert_eq!(user_action(&c, &pid, "terminate").status, 200);
    c.peer.expect("TransferTerminationMessage");
    call.join().unwrap().assert_problem(403);
    assert_eq!(consumer_transfer_state(&c, &pid), "TERMINATED");
}

/// TP_C:03-01: Verify transfer request, provider completed
#[test]
fn tp_c_03_01() {
    let c = Consumer::start();
    let (pid, call) = consumer_transfer(&c);
    let completed = provider_sends(&c, &pid, "completion", "TransferCompletionMessage");
    assert_dsp_error(&completed, "TransferError");
    assert_eq!(consumer_transfer_state(&c, &pid), "REQUESTED");
    assert_eq!(user_action(&c, &pid, "terminate").status, 200);
    let _ = call.join();
}

/// TP_C:03-02: Verify transfer request, provider suspended
#[test]
fn tp_c_03_02() {
    let c = Consumer::start();
    let (pid, call) = consumer_transfer(&c);
    let suspended = provider_sends(&c, &pid, "suspension", "TransferSuspensionMessage");
    assert_dsp_error(&suspended, "TransferError");
    assert_eq!(consumer_transfer_state(&c, &pid), "REQUESTED");
    assert_eq!(user_action(&c, &pid, "terminate").status, 200);
    let _ = call.join();
}

/// TP_C:03-03: Verify transfer request, provider started, provider suspended, provider completed
#[test]
fn tp_c_03_03() {
    let c = Consumer::start();
    let pid = consumer_started(&c);
    assert_eq!(
        provider_sends(&c, &pid, "suspension", "TransferSuspensionMessage").status,
        200
    );
    let completed = provider_sends(&c, &pid, "completion", "TransferCompletionMessage");
    assert_dsp_error(&completed, "TransferError");
    assert_eq!(consumer_transfer_state(&c, &pid), "SUSPENDED");
}

fn consumer_terminated_then(path: &str, kind: &str) {
    let c = Consumer::start();
    let pid = consumer_started(&c);
    assert_eq!(
        provider_sends(&c, &pid, "termination", "TransferTerminationMessage").status,
        200
    );
    let late = provider_sends(&c, &pid, path, kind);
    assert_dsp_error(&late, "TransferError");
    assert_eq!(consumer_transfer_state(&c, &pid), "TERMINATED");
}

/// TP_C:03-04: Verify transfer request, provider started, provider terminated, provider started
#[test]
fn tp_c_03_04() {
    consumer_terminated_then("start", "TransferStartMessage");
}

/// TP_C:03-05: Verify transfer request, provider started, provider terminated, provider suspended
#[test]
fn tp_c_03_05() {
    consumer_terminated_then("suspension", "TransferSuspensionMessage");
}

/// TP_C:03-06: Verify transfer request, provider started, provider terminated, provider completed
#[test]
fn tp_c_03_06() {
    consumer_terminated_then("completion", "TransferCompletionMessage");
}
