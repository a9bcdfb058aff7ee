//! The counter-party for Dataspace Protocol tests: a small HTTP server that plays the other
//! connector (a consumer whose callback the node calls, or a provider the node negotiates
//! with), records every message the node sends, and answers the way a conforming connector
//! would; plus the node set up as a provider with one offered dataset.

#![allow(dead_code)]

use super::common::{Options, Response, TestNode};
use agora::identity::Role;
use serde_json::{Value as Json, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The DSP context every message carries.
pub const CONTEXT: &str = "https://w3id.org/dspace/2025/1/context.jsonld";

/// A message the node sent to the peer.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request path.
    pub path: String,
    /// The bearer token it carried.
    pub authorization: Option<String>,
    /// The message.
    pub body: Json,
}

#[derive(Default)]
struct Inbox {
    messages: Vec<Received>,
    all: Vec<Received>,
    refusals: Vec<(String, u16)>,
}

/// The peer connector.
pub struct Peer {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Its process id in negotiations and transfers where it is the provider.
    pub pid: String,
    inbox: Arc<(Mutex<Inbox>, Condvar)>,
}

impl Peer {
    /// Starts the peer on an ephemeral port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let pid = format!("urn:uuid:{}", uuid::Uuid::new_v4());
        let inbox: Arc<(Mutex<Inbox>, Condvar)> = Arc::default();
        let shared = inbox.clone();
        let own_pid = pid.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                let own_pid = own_pid.clone();
                std::thread::spawn(move || serve(stream, &shared, &own_pid));
            }
        });
        Self { url, pid, inbox }
    }

    /// Its DSP base URL.
    pub fn dsp(&self) -> String {
        format!("{}/dsp", self.url)
    }

    /// Answers messages whose path ends with `suffix` with `status` from now on.
    pub fn refuse(&self, suffix: &str, status: u16) {
        self.inbox
            .0
            .lock()
            .unwrap()
            .refusals
            .push((suffix.into(), status));
    }

    /// Waits for the next message of `kind` (the `@type`) and takes it. The wait is a guard
    /// against a node that never sends, not a performance assertion.
    pub fn expect(&self, kind: &str) -> Received {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (lock, signal) = &*self.inbox;
        let mut inbox = lock.lock().unwrap();
        loop {
            if let Some(index) = inbox.messages.iter().position(|m| m.body["@type"] == kind) {
                return inbox.messages.remove(index);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the node sent no {kind}; it sent: {:?}",
                inbox.messages
            );
            inbox = signal.wait_timeout(inbox, left).unwrap().0;
        }
    }

    /// Every message received so far (also the ones taken by [`Peer::expect`]).
    pub fn all(&self) -> Vec<Received> {
        self.inbox.0.lock().unwrap().all.clone()
    }

    /// Checks that no message of `kind` is waiting.
    pub fn assert_none(&self, kind: &str) {
        let inbox = self.inbox.0.lock().unwrap();
        assert!(
            !inbox.messages.iter().any(|m| m.body["@type"] == kind),
            "unexpected {kind}: {:?}",
            inbox.messages
        );
    }
}

fn serve(stream: TcpStream, inbox: &Arc<(Mutex<Inbox>, Condvar)>, own_pid: &str) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or_default();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().unwrap_or(0);
        }
        if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value.trim().to_owned());
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let body: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let (status, answer) = {
        let (lock, signal) = &**inbox;
        let mut inbox = lock.lock().unwrap();
        let refused = inbox
            .refusals
            .iter()
            .find(|(suffix, _)| path.ends_with(suffix.as_str()))
            .map(|(_, status)| *status);
        let answer = match (method.as_str(), refused) {
            (_, Some(status)) => (
                status,
                json!({"@context": [CONTEXT], "@type": "TransferError", "code": status.to_string(), "reason": ["refused by the test peer"]}),
            ),
            ("GET", _) => (404, json!({})),
            ("POST", _) if path.ends_with("/negotiations/request") => (
                201,
                json!({
                "@context": [CONTEXT], "@type": "ContractNegotiation",
                "providerPid": own_pid, "consumerPid": body["consumerPid"], "state": "REQUESTED"}),
            ),
            ("POST", _) if path.ends_with("/transfers/request") => (
                201,
                json!({
                "@context": [CONTEXT], "@type": "TransferProcess",
                "providerPid": own_pid, "consumerPid": body["consumerPid"], "state": "REQUESTED"}),
            ),
            _ => (200, Json::Null),
        };
        let received = Received {
            path: path.clone(),
            authorization,
            body,
        };
        inbox.all.push(received.clone());
        if refused.is_none() {
            inbox.messages.push(received);
        }
        signal.notify_all();
        answer
    };
    let text = if answer.is_null() {
        String::new()
    } else {
        answer.to_string()
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// The node set up as a provider: one dataset offered under `policy_turtle`, a holder, and a
/// consumer participant with the given claims.
pub struct Provider {
    /// The node.
    pub node: TestNode,
    /// The dataset's id.
    pub dataset: String,
    /// Its IRI.
    pub iri: String,
    /// The offer of its catalogue entry (DSP form).
    pub offer: Json,
    /// The holder's token.
    pub holder: String,
    /// The consumer's token.
    pub consumer: String,
}

/// Turtle attaching a template to the fixture dataset.
pub fn template_policy(uid: &str) -> String {
    format!(
        "<https://energy.example/datasets/grid-load-2024> <http://www.w3.org/ns/odrl/2/hasPolicy> <{uid}> .\n"
    )
}

/// Turtle attaching an inline policy that waits for the holder's approval.
pub fn approval_policy() -> String {
    "@prefix odrl: <http://www.w3.org/ns/odrl/2/> .\n\
     <https://energy.example/datasets/grid-load-2024> odrl:hasPolicy <urn:test:permit-after-approval> .\n\
     <urn:test:permit-after-approval> a odrl:Offer ; odrl:profile <https://w3id.org/agora/profile> ;\n\
       odrl:permission [ odrl:action odrl:use ; odrl:duty [ odrl:action <https://w3id.org/agora/ns#obtainApproval> ] ] .\n"
        .to_owned()
}

/// The open-data template: anyone may use, with attribution.
pub const OPEN: &str = "https://w3id.org/agora/policies/open-data-attribution";
/// The research template: purposes and organisation types the test consumer may lack.
pub const RESEARCH: &str = "https://w3id.org/agora/policies/research-non-commercial";

impl Provider {
    /// A node (loopback callbacks allowed) offering the fixture dataset under `policy`.
    pub fn start(policy: &str, consumer_claims: &[(&str, &str)]) -> Self {
        let node = TestNode::start(Options {
            args: vec!["--allow-private-addresses".into()],
            ..Options::default()
        });
        let holder = node.token("grid-operator", Role::Holder, &[]);
        let consumer = node.token(
            "urn:participant:consumer",
            Role::Researcher,
            consumer_claims,
        );
        let mut description = super::common::fixture("dataset.ttl");
        description.extend_from_slice(policy.as_bytes());
        let published = node.send(
            "POST",
            "/api/datasets",
            &[
                ("Content-Type", "text/turtle"),
                ("Authorization", &format!("Bearer {holder}")),
            ],
            &description,
        );
        assert_eq!(published.status, 201, "{}", published.text());
        let dataset = published.json()["id"].as_str().expect("id").to_owned();
        let mut provider = Self {
            node,
            iri: String::new(),
            dataset,
            offer: Json::Null,
            holder,
            consumer,
        };
        let entry = provider.get_dsp(&format!("/dsp/catalog/datasets/{}", provider.dataset));
        assert_eq!(entry.status, 200, "{}", entry.text());
        let entry = entry.json();
        provider.iri = entry["@id"].as_str().expect("iri").to_owned();
        provider.offer = entry["hasPolicy"][0].clone();
        provider
    }

    /// `GET` with the consumer's token.
    pub fn get_dsp(&self, path: &str) -> Response {
        self.node.get(
            path,
            &[("Authorization", &format!("Bearer {}", self.consumer))],
        )
    }

    /// `POST` a message with the consumer's token.
    pub fn post(&self, path: &str, message: &Json) -> Response {
        self.post_as(&self.consumer, path, message)
    }

    /// `POST` a message with `token`.
    pub fn post_as(&self, token: &str, path: &str, message: &Json) -> Response {
        self.node.send(
            "POST",
            path,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &format!("Bearer {token}")),
            ],
            message.to_string().as_bytes(),
        )
    }

    /// The catalogue offer with its target, as a consumer asks for it unchanged.
    pub fn exact_offer(&self) -> Json {
        let mut offer = self.offer.clone();
        offer["target"] = json!(self.iri);
        offer
    }

    /// The catalogue offer's id with other terms.
    pub fn changed_offer(&self) -> Json {
        json!({"@type": "Offer", "@id": self.offer["@id"], "target": self.iri,
               "permission": [{"action": "use"}]})
    }

    /// Starts a negotiation as the consumer with callbacks to `peer`: the consumerPid and the
    /// node's providerPid.
    pub fn request(&self, peer: &Peer, offer: Json) -> (String, String) {
        let consumer_pid = format!("urn:uuid:{}", uuid::Uuid::new_v4());
        let answer = self.post(
            "/dsp/negotiations/request",
            &json!({
                "@context": [CONTEXT], "@type": "ContractRequestMessage",
                "consumerPid": consumer_pid, "offer": offer, "callbackAddress": peer.dsp(),
            }),
        );
        assert_eq!(answer.status, 201, "{}", answer.text());
        let body = answer.json();
        assert_eq!(body["state"], "REQUESTED");
        assert_eq!(body["consumerPid"], consumer_pid.as_str());
        (
            consumer_pid,
            body["providerPid"]
                .as_str()
                .expect("providerPid")
                .to_owned(),
        )
    }

    /// The node's state of a negotiation, read over DSP.
    pub fn negotiation_state(&self, provider_pid: &str) -> String {
        let answer = self.get_dsp(&format!("/dsp/negotiations/{provider_pid}"));
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()["state"].as_str().expect("state").to_owned()
    }

    /// The node's state of a transfer, read over DSP.
    pub fn transfer_state(&self, provider_pid: &str) -> String {
        let answer = self.get_dsp(&format!("/dsp/transfers/{provider_pid}"));
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()["state"].as_str().expect("state").to_owned()
    }

    /// Waits until the node's transfer is in `state` (the node moves once the peer acknowledged
    /// its message).
    pub fn await_transfer_state(&self, provider_pid: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.transfer_state(provider_pid);
            if now == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "transfer stayed {now}, expected {state}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A message about a negotiation: `kind` with the pids and `extra` fields.
    pub fn negotiation_message(
        kind: &str,
        provider_pid: &str,
        consumer_pid: &str,
        extra: Json,
    ) -> Json {
        let mut message = json!({"@context": [CONTEXT], "@type": kind,
            "providerPid": provider_pid, "consumerPid": consumer_pid});
        if let (Json::Object(fields), Json::Object(more)) = (&mut message, extra) {
            fields.extend(more);
        }
        message
    }

    /// Runs a negotiation to FINALIZED with the exact offer: the agreement id.
    pub fn agree(&self, peer: &Peer) -> String {
        let (consumer_pid, provider_pid) = self.request(peer, self.exact_offer());
        let agreement = peer.expect("ContractAgreementMessage");
        let id = agreement.body["agreement"]["@id"]
            .as_str()
            .expect("agreement id")
            .to_owned();
        let verified = self.post(
            &format!("/dsp/negotiations/{provider_pid}/agreement/verification"),
            &Self::negotiation_message(
                "ContractAgreementVerificationMessage",
                &provider_pid,
                &consumer_pid,
                json!({}),
            ),
        );
        assert_eq!(verified.status, 200, "{}", verified.text());
        peer.expect("ContractNegotiationEventMessage");
        assert_eq!(self.negotiation_state(&provider_pid), "FINALIZED");
        id
    }

    /// Requests a transfer under `agreement` with callbacks to `peer`: (consumerPid, providerPid).
    pub fn request_transfer(&self, peer: &Peer, agreement: &str) -> (String, String) {
        let consumer_pid = format!("urn:uuid:{}", uuid::Uuid::new_v4());
        let answer = self.post(
            "/dsp/transfers/request",
            &json!({
                "@context": [CONTEXT], "@type": "TransferRequestMessage",
                "consumerPid": consumer_pid, "agreementId": agreement, "format": "HttpData-PULL",
                "callbackAddress": peer.dsp(),
            }),
        );
        assert_eq!(answer.status, 201, "{}", answer.text());
        let body = answer.json();
        assert_eq!(body["state"], "REQUESTED");
        (
            consumer_pid,
            body["providerPid"]
                .as_str()
                .expect("providerPid")
                .to_owned(),
        )
    }

    /// A started transfer: (consumerPid, providerPid, the start message).
    pub fn started_transfer(&self, peer: &Peer) -> (String, String, Received) {
        let agreement = self.agree(peer);
        let (consumer_pid, provider_pid) = self.request_transfer(peer, &agreement);
        let start = peer.expect("TransferStartMessage");
        self.await_transfer_state(&provider_pid, "STARTED");
        (consumer_pid, provider_pid, start)
    }

    /// A transfer message.
    pub fn transfer_message(kind: &str, provider_pid: &str, consumer_pid: &str) -> Json {
        Self::negotiation_message(kind, provider_pid, consumer_pid, json!({}))
    }

    /// The node's transfer id for a providerPid (they are the same on the provider side).
    pub fn holder_action(&self, transfer: &str, action: &str) -> Response {
        self.node.send(
            "POST",
            &format!("/api/transfers/{transfer}/{action}"),
            &[("Authorization", &format!("Bearer {}", self.holder))],
            b"",
        )
    }
}
