//! Dataspace Protocol 2025-1 messages: reading the ones that arrive (behind the same guards as
//! every other JSON input: size, nesting depth, the fixed DSP `@context`) and writing the ones
//! the node sends, in the compact JSON-LD form the official JSON Schemas describe.
//!
//! DSP messages are JSON-LD with one fixed, protected context, so the node reads them by their
//! compact keys and refuses any other context rather than running a JSON-LD processor over an
//! untrusted document. ODRL inside them (offers, agreements) is written with full IRIs for the
//! terms of agora's profile and DPV, since the DSP context defines no prefix for them.

use super::state::{NegotiationState, TransferState};
use crate::policy::vocab::{AGORA, DPV};
use crate::policy::{self, Policy};
use crate::rdf_input::check_json_depth;
use serde_json::{Map, Value as Json, json};

/// The JSON-LD context every DSP 2025-1 message carries.
pub const DSP_CONTEXT: &str = "https://w3id.org/dspace/2025/1/context.jsonld";

/// The largest DSP message the node reads: an offer with hundreds of constraints fits easily.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The deepest JSON nesting the node reads (`SECURITY.md` §1).
const MAX_DEPTH: usize = 64;

/// Why a message was refused before it could change anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MessageError(pub String);

/// The `eventType` of a `ContractNegotiationEventMessage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The consumer accepts the provider's offer.
    Accepted,
    /// The provider finalises the agreement.
    Finalized,
}

/// `code` and `reason` of a termination or suspension.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reason {
    /// A code the sender chose.
    pub code: Option<String>,
    /// Why, as the sender wrote it.
    pub reason: Vec<Json>,
}

impl Reason {
    /// A reason in words, with the node's own code.
    pub fn said(code: &str, text: impl Into<String>) -> Self {
        Self {
            code: Some(code.to_owned()),
            reason: vec![Json::String(text.into())],
        }
    }

    /// The reason as one line, for the event log.
    pub fn summary(&self) -> String {
        let texts: Vec<String> = self
            .reason
            .iter()
            .map(|r| match r {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        match (&self.code, texts.is_empty()) {
            (Some(code), false) => format!("{} (code {code})", texts.join("; ")),
            (Some(code), true) => format!("code {code}"),
            (None, false) => texts.join("; "),
            (None, true) => "no reason given".to_owned(),
        }
    }
}

/// A DSP message, read.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `CatalogRequestMessage`.
    CatalogRequest {
        /// Filter expressions (the node answers its whole per-requester view).
        filter: Vec<Json>,
    },
    /// `DatasetRequestMessage`.
    DatasetRequest {
        /// The dataset's id.
        dataset: String,
    },
    /// `ContractRequestMessage`.
    ContractRequest {
        /// The consumer's process id.
        consumer_pid: String,
        /// The provider's, on a counter-request.
        provider_pid: Option<String>,
        /// The offer asked for.
        offer: Json,
        /// Where the provider answers (initial request).
        callback: Option<String>,
    },
    /// `ContractOfferMessage`.
    ContractOffer {
        /// The provider's process id.
        provider_pid: String,
        /// The consumer's, unless the provider starts the negotiation.
        consumer_pid: Option<String>,
        /// The offer.
        offer: Json,
        /// Where the consumer answers (initial offer).
        callback: Option<String>,
    },
    /// `ContractAgreementMessage`.
    ContractAgreement {
        /// The provider's process id.
        provider_pid: String,
        /// The consumer's process id.
        consumer_pid: String,
        /// The agreement.
        agreement: Json,
    },
    /// `ContractAgreementVerificationMessage`.
    AgreementVerification {
        /// The provider's process id.
        provider_pid: String,
        /// The consumer's process id.
        consumer_pid: String,
    },
    /// `ContractNegotiationEventMessage`.
    NegotiationEvent {
        /// The provider's process id.
        provider_pid: String,
        /// The consumer's process id.
        consumer_pid: String,
        /// What happened.
        event: EventType,
    },
    /// `ContractNegotiationTerminationMessage`.
    NegotiationTermination {
        /// The provider's process id.
        provider_pid: String,
        /// The consumer's process id.
        consumer_pid: String,
        /// Why.
        reason: Reason,
    },
    /// `TransferRequestMessage`.
    TransferRequest {
        /// The consumer's process id.
        consumer_pid: String,
        /// The agreement the transfer is under.
        agreement_id: String,
        /// The transfer type, e.g. `HttpData-PULL`.
        format: String,
        /// Where to push, for push transfers.
        data_address: Option<Json>,
        /// Where the provider answers.
        callback: String,
    },
    /// `TransferStartMessage`.
    TransferStart {
        /// The provider's process id.
        provider_pid: String,
        /// The consumer's process id.
        consumer_pid: String,
        /// Where and how to pull.
        data_address: Option<Json>,
    },
    /// `TransferCompletionMessage`.
    TransferCompletion {
        /// The provider's process id.
        provider_pid: String,
        /// The consumer's process id.
        consumer_pid: String,
    },
    /// `TransferSuspensionMessage`.
    TransferSuspension {
        /// The provider's process id.
        provider_pid: String,
        /// The consumer's process id.
        consumer_pid: String,
        /// Why.
        reason: Reason,
    },
    /// `TransferTerminationMessage`.
    TransferTermination {
        /// The provider's process id.
        provider_pid: String,
        /// The consumer's process id.
        consumer_pid: String,
        /// Why.
        reason: Reason,
    },
}

impl Message {
    /// The `@type` it is sent as.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::CatalogRequest { .. } => "CatalogRequestMessage",
            Self::DatasetRequest { .. } => "DatasetRequestMessage",
            Self::ContractRequest { .. } => "ContractRequestMessage",
            Self::ContractOffer { .. } => "ContractOfferMessage",
            Self::ContractAgreement { .. } => "ContractAgreementMessage",
            Self::AgreementVerification { .. } => "ContractAgreementVerificationMessage",
            Self::NegotiationEvent { .. } => "ContractNegotiationEventMessage",
            Self::NegotiationTermination { .. } => "ContractNegotiationTerminationMessage",
            Self::TransferRequest { .. } => "TransferRequestMessage",
            Self::TransferStart { .. } => "TransferStartMessage",
            Self::TransferCompletion { .. } => "TransferCompletionMessage",
            Self::TransferSuspension { .. } => "TransferSuspensionMessage",
            Self::TransferTermination { .. } => "TransferTerminationMessage",
        }
    }

    /// The message as the node sends it.
    pub fn to_json(&self) -> Json {
        let mut body = Map::new();
        body.insert("@context".into(), json!([DSP_CONTEXT]));
        body.insert("@type".into(), json!(self.type_name()));
        let mut put = |key: &str, value: Json| {
            body.insert(key.into(), value);
        };
        match self {
            Self::CatalogRequest { filter } => put("filter", Json::Array(filter.clone())),
            Self::DatasetRequest { dataset } => put("dataset", json!(dataset)),
            Self::ContractRequest {
                consumer_pid,
                provider_pid,
                offer,
                callback,
            } => {
                put("consumerPid", json!(consumer_pid));
                if let Some(pid) = provider_pid {
                    put("providerPid", json!(pid));
                }
                put("offer", offer.clone());
                if let Some(url) = callback {
                    put("callbackAddress", json!(url));
                }
            }
            Self::ContractOffer {
                provider_pid,
                consumer_pid,
                offer,
                callback,
            } => {
                put("providerPid", json!(provider_pid));
                if let Some(pid) = consumer_pid {
                    put("consumerPid", json!(pid));
                }
                put("offer", offer.clone());
                if let Some(url) = callback {
                    put("callbackAddress", json!(url));
                }
            }
            Self::ContractAgreement {
                provider_pid,
                consumer_pid,
                agreement,
            } => {
                put("providerPid", json!(provider_pid));
                put("consumerPid", json!(consumer_pid));
                put("agreement", agreement.clone());
            }
            Self::AgreementVerification {
                provider_pid,
                consumer_pid,
            }
            | Self::TransferCompletion {
                provider_pid,
                consumer_pid,
            } => {
                put("providerPid", json!(provider_pid));
                put("consumerPid", json!(consumer_pid));
            }
            Self::NegotiationEvent {
                provider_pid,
                consumer_pid,
                event,
            } => {
                put("providerPid", json!(provider_pid));
                put("consumerPid", json!(consumer_pid));
                put(
                    "eventType",
                    json!(match event {
                        EventType::Accepted => "ACCEPTED",
                        EventType::Finalized => "FINALIZED",
                    }),
                );
            }
            Self::NegotiationTermination {
                provider_pid,
                consumer_pid,
                reason,
            }
            | Self::TransferSuspension {
                provider_pid,
                consumer_pid,
                reason,
            }
            | Self::TransferTermination {
                provider_pid,
                consumer_pid,
                reason,
            } => {
                put("providerPid", json!(provider_pid));
                put("consumerPid", json!(consumer_pid));
                if let Some(code) = &reason.code {
                    put("code", json!(code));
                }
                if !reason.reason.is_empty() {
                    put("reason", Json::Array(reason.reason.clone()));
                }
            }
            Self::TransferRequest {
                consumer_pid,
                agreement_id,
                format,
                data_address,
                callback,
            } => {
                put("consumerPid", json!(consumer_pid));
                put("agreementId", json!(agreement_id));
                put("format", json!(format));
                if let Some(address) = data_address {
                    put("dataAddress", address.clone());
                }
                put("callbackAddress", json!(callback));
            }
            Self::TransferStart {
                provider_pid,
                consumer_pid,
                data_address,
            } => {
                put("providerPid", json!(provider_pid));
                put("consumerPid", json!(consumer_pid));
                if let Some(address) = data_address {
                    put("dataAddress", address.clone());
                }
            }
        }
        Json::Object(body)
    }
}

/// Reads a message that must be one of `expected` (by `@type`).
pub fn parse(body: &[u8], expected: &[&str]) -> Result<Message, MessageError> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError(format!(
            "the message is larger than {MAX_MESSAGE_BYTES} bytes"
        )));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| MessageError("the message is not UTF-8 text".into()))?;
    check_json_depth(text, MAX_DEPTH)
        .map_err(|e| MessageError(format!("the message is refused: {e}")))?;
    let document: Json = serde_json::from_str(text)
        .map_err(|e| MessageError(format!("the message is not JSON: {e}")))?;
    let Json::Object(fields) = document else {
        return Err(MessageError("a DSP message is a JSON object".into()));
    };
    check_context(&fields)?;
    let kind = fields
        .get("@type")
        .and_then(Json::as_str)
        .map(|t| t.strip_prefix("dspace:").unwrap_or(t))
        .map(|t| {
            t.strip_prefix("https://w3id.org/dspace/2025/1/")
                .unwrap_or(t)
        })
        .ok_or_else(|| MessageError("the message has no `@type`".into()))?;
    if !expected.contains(&kind) {
        return Err(MessageError(format!(
            "this endpoint takes {}, not `{kind}`",
            expected.join(" or ")
        )));
    }
    let reader = Fields(&fields);
    let message = match kind {
        "CatalogRequestMessage" => Message::CatalogRequest {
            filter: match fields.get("filter") {
                None => Vec::new(),
                Some(Json::Array(items)) => items.clone(),
                Some(one) => vec![one.clone()],
            },
        },
        "DatasetRequestMessage" => Message::DatasetRequest {
            dataset: reader.string("dataset")?,
        },
        "ContractRequestMessage" => {
            let provider_pid = reader.optional("providerPid")?;
            let callback = reader.optional("callbackAddress")?;
            if provider_pid.is_none() && callback.is_none() {
                return Err(MessageError(
                    "a ContractRequestMessage needs `callbackAddress` (to start a negotiation) or `providerPid` (to continue one)".into(),
                ));
            }
            Message::ContractRequest {
                consumer_pid: reader.string("consumerPid")?,
                provider_pid,
                offer: reader.policy("offer", "Offer")?,
                callback,
            }
        }
        "ContractOfferMessage" => Message::ContractOffer {
            provider_pid: reader.string("providerPid")?,
            consumer_pid: reader.optional("consumerPid")?,
            offer: reader.policy("offer", "Offer")?,
            callback: reader.optional("callbackAddress")?,
        },
        "ContractAgreementMessage" => Message::ContractAgreement {
            provider_pid: reader.string("providerPid")?,
            consumer_pid: reader.string("consumerPid")?,
            agreement: reader.policy("agreement", "Agreement")?,
        },
        "ContractAgreementVerificationMessage" => Message::AgreementVerification {
            provider_pid: reader.string("providerPid")?,
            consumer_pid: reader.string("consumerPid")?,
        },
        "ContractNegotiationEventMessage" => Message::NegotiationEvent {
            provider_pid: reader.string("providerPid")?,
            consumer_pid: reader.string("consumerPid")?,
            event: match reader.string("eventType")?.trim_start_matches("dspace:") {
                "ACCEPTED" => EventType::Accepted,
                "FINALIZED" => EventType::Finalized,
                other => {
                    return Err(MessageError(format!(
                        "`eventType` is ACCEPTED or FINALIZED, not `{other}`"
                    )));
                }
            },
        },
        "ContractNegotiationTerminationMessage" => Message::NegotiationTermination {
            provider_pid: reader.string("providerPid")?,
            consumer_pid: reader.string("consumerPid")?,
            reason: reader.reason()?,
        },
        "TransferRequestMessage" => Message::TransferRequest {
            consumer_pid: reader.string("consumerPid")?,
            agreement_id: reader.string("agreementId")?,
            format: reader.string("format")?,
            data_address: reader.data_address()?,
            callback: reader.string("callbackAddress")?,
        },
        "TransferStartMessage" => Message::TransferStart {
            provider_pid: reader.string("providerPid")?,
            consumer_pid: reader.string("consumerPid")?,
            data_address: reader.data_address()?,
        },
        "TransferCompletionMessage" => Message::TransferCompletion {
            provider_pid: reader.string("providerPid")?,
            consumer_pid: reader.string("consumerPid")?,
        },
        "TransferSuspensionMessage" => Message::TransferSuspension {
            provider_pid: reader.string("providerPid")?,
            consumer_pid: reader.string("consumerPid")?,
            reason: reader.reason()?,
        },
        "TransferTerminationMessage" => Message::TransferTermination {
            provider_pid: reader.string("providerPid")?,
            consumer_pid: reader.string("consumerPid")?,
            reason: reader.reason()?,
        },
        other => {
            return Err(MessageError(format!(
                "`{other}` is not a DSP 2025-1 message"
            )));
        }
    };
    Ok(message)
}

fn check_context(fields: &Map<String, Json>) -> Result<(), MessageError> {
    let refuse = || {
        MessageError(format!(
            "`@context` must be [\"{DSP_CONTEXT}\"] (the node reads DSP 2025-1 messages in their compact form and fetches no other context)"
        ))
    };
    let entries: Vec<&Json> = match fields.get("@context") {
        Some(Json::Array(items)) => items.iter().collect(),
        Some(one @ Json::String(_)) => vec![one],
        _ => return Err(refuse()),
    };
    let mut has_dsp = false;
    for entry in entries {
        match entry.as_str() {
            Some(DSP_CONTEXT) => has_dsp = true,
            // The ODRL profile context is imported by the DSP context; naming it again is harmless.
            Some("https://w3id.org/dspace/2025/1/odrl-profile.jsonld") => {}
            _ => return Err(refuse()),
        }
    }
    if has_dsp { Ok(()) } else { Err(refuse()) }
}

/// Typed access to a message's fields, with errors naming the field.
struct Fields<'a>(&'a Map<String, Json>);

impl Fields<'_> {
    fn string(&self, key: &str) -> Result<String, MessageError> {
        self.optional(key)?
            .ok_or_else(|| MessageError(format!("the message has no `{key}`")))
    }

    fn optional(&self, key: &str) -> Result<Option<String>, MessageError> {
        match self.0.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) if s.trim().is_empty() => {
                Err(MessageError(format!("`{key}` is empty")))
            }
            Some(Json::String(s)) if s.len() > 2048 => Err(MessageError(format!(
                "`{key}` is longer than 2048 characters"
            ))),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(Json::Object(o)) => match o.get("@id").and_then(Json::as_str) {
                Some(id) => Ok(Some(id.to_owned())),
                None => Err(MessageError(format!("`{key}` must be a string"))),
            },
            Some(_) => Err(MessageError(format!("`{key}` must be a string"))),
        }
    }

    fn policy(&self, key: &str, kind: &str) -> Result<Json, MessageError> {
        let Some(Json::Object(policy)) = self.0.get(key) else {
            return Err(MessageError(format!(
                "the message needs `{key}`: an ODRL {kind} object"
            )));
        };
        if policy.get("@id").and_then(Json::as_str).is_none() {
            return Err(MessageError(format!(
                "the {kind} in `{key}` needs an `@id`"
            )));
        }
        match policy.get("@type").and_then(Json::as_str) {
            Some(t) if t == kind || t == format!("odrl:{kind}") => {}
            None if kind == "Offer" => {}
            _ => {
                return Err(MessageError(format!("`{key}` must be typed `{kind}`")));
            }
        }
        let has_rules = ["permission", "prohibition", "obligation"]
            .iter()
            .any(|rule| policy.get(*rule).is_some_and(|r| !r.is_null()));
        if !has_rules {
            return Err(MessageError(format!(
                "the {kind} in `{key}` has no permission or prohibition"
            )));
        }
        Ok(Json::Object(policy.clone()))
    }

    fn reason(&self) -> Result<Reason, MessageError> {
        let code = match self.0.get("code") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.chars().take(200).collect()),
            Some(other) => Some(other.to_string().chars().take(200).collect()),
        };
        let reason = match self.0.get("reason") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(items)) => items.iter().take(20).cloned().collect(),
            Some(one) => vec![one.clone()],
        };
        Ok(Reason { code, reason })
    }

    fn data_address(&self) -> Result<Option<Json>, MessageError> {
        match self.0.get("dataAddress") {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Object(address)) => Ok(Some(Json::Object(address.clone()))),
            Some(_) => Err(MessageError(
                "`dataAddress` must be a DataAddress object".into(),
            )),
        }
    }
}

/// A negotiation as the protocol shows it (`ContractNegotiation`).
pub fn negotiation_json(provider_pid: &str, consumer_pid: &str, state: NegotiationState) -> Json {
    json!({
        "@context": [DSP_CONTEXT],
        "@type": "ContractNegotiation",
        "providerPid": provider_pid,
        "consumerPid": consumer_pid,
        "state": state.as_str(),
    })
}

/// A transfer process as the protocol shows it (`TransferProcess`).
pub fn transfer_json(provider_pid: &str, consumer_pid: &str, state: TransferState) -> Json {
    json!({
        "@context": [DSP_CONTEXT],
        "@type": "TransferProcess",
        "providerPid": provider_pid,
        "consumerPid": consumer_pid,
        "state": state.as_str(),
    })
}

/// A protocol error body (`CatalogError`, `ContractNegotiationError`, `TransferError`).
pub fn error_json(kind: &str, pids: Option<(&str, &str)>, code: &str, reason: &str) -> Json {
    let mut body = json!({
        "@context": [DSP_CONTEXT],
        "@type": kind,
        "code": code,
        "reason": [reason],
    });
    if let (Some((provider, consumer)), Json::Object(fields)) = (pids, &mut body) {
        fields.insert("providerPid".into(), json!(provider));
        fields.insert("consumerPid".into(), json!(consumer));
    }
    body
}

/// A policy in the form DSP carries it: `@id` instead of `uid`, full IRIs for terms outside
/// ODRL, typed literals instead of bare numbers and booleans, and `@type` set to `kind`
/// (`Offer` in catalogues and offers, `Agreement` in agreements).
pub fn policy_json(policy: &Policy, id: &str, kind: &str) -> Json {
    let Json::Object(mut document) = policy::to_json_ld(policy) else {
        return Json::Null;
    };
    document.remove("@context");
    document.remove("uid");
    document.remove("target");
    let mut out = Map::new();
    out.insert("@id".into(), json!(id));
    out.insert("@type".into(), json!(kind));
    for (key, value) in document {
        if key == "@type" {
            continue;
        }
        out.insert(expand_key(&key), dsp_value(value, &key));
    }
    Json::Object(out)
}

fn expand_key(key: &str) -> String {
    if let Some(rest) = key.strip_prefix("agora:") {
        format!("{AGORA}{rest}")
    } else if let Some(rest) = key.strip_prefix("dpv:") {
        format!("{DPV}{rest}")
    } else {
        key.to_owned()
    }
}

fn expand_iri(value: &str) -> String {
    if let Some(rest) = value.strip_prefix("agora:") {
        format!("{AGORA}{rest}")
    } else if let Some(rest) = value.strip_prefix("dpv:") {
        format!("{DPV}{rest}")
    } else if let Some(rest) = value.strip_prefix("xsd:") {
        format!("http://www.w3.org/2001/XMLSchema#{rest}")
    } else {
        value.to_owned()
    }
}

/// Rewrites one value of the ODRL JSON-LD form into the DSP form.
fn dsp_value(value: Json, key: &str) -> Json {
    match value {
        // The ODRL form keeps `andSequence` in order with `@list`; DSP's schema has a plain
        // array (contract-schema.json, LogicalConstraint), whose order is the sequence.
        Json::Object(mut fields) if key == "andSequence" && fields.contains_key("@list") => {
            dsp_value(fields.remove("@list").unwrap_or_default(), key)
        }
        Json::Object(fields) => Json::Object(
            fields
                .into_iter()
                .map(|(k, v)| {
                    let v = if k == "@id" || k == "@type" {
                        match v {
                            Json::String(s) => Json::String(expand_iri(&s)),
                            other => other,
                        }
                    } else {
                        dsp_value(v, &k)
                    };
                    (expand_key(&k), v)
                })
                .collect(),
        ),
        Json::Array(items) => {
            Json::Array(items.into_iter().map(|item| dsp_value(item, key)).collect())
        }
        Json::Number(n) if key == "rightOperand" => {
            let datatype = if n.is_f64() { "decimal" } else { "integer" };
            json!({"@value": n.to_string(), "@type": format!("http://www.w3.org/2001/XMLSchema#{datatype}")})
        }
        Json::Bool(b) if key == "rightOperand" => {
            json!({"@value": b.to_string(), "@type": "http://www.w3.org/2001/XMLSchema#boolean"})
        }
        Json::String(s) if matches!(key, "leftOperand" | "action" | "operator" | "rdf:value") => {
            Json::String(expand_iri(&s))
        }
        other => other,
    }
}

/// The rules of a policy in DSP form, without its identity: what two offers must share to be
/// the same offer.
pub fn terms(policy: &Json) -> Json {
    let mut terms = Map::new();
    for key in ["permission", "prohibition", "obligation"] {
        if let Some(rules) = policy.get(key) {
            let rules = match rules {
                Json::Array(items) => Json::Array(items.clone()),
                one => Json::Array(vec![one.clone()]),
            };
            terms.insert(key.into(), rules);
        }
    }
    Json::Object(terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_shapes_are_read() {
        let request = br#"{"@context":["https://w3id.org/dspace/2025/1/context.jsonld"],
            "@type":"ContractRequestMessage","consumerPid":"urn:uuid:c",
            "offer":{"@type":"Offer","@id":"urn:o","target":"urn:d","permission":[{"action":"use"}]},
            "callbackAddress":"https://example.com/callback"}"#;
        let message = parse(request, &["ContractRequestMessage"]).unwrap();
        assert!(
            matches!(message, Message::ContractRequest { ref consumer_pid, .. } if consumer_pid == "urn:uuid:c")
        );
        assert_eq!(message.to_json()["offer"]["@id"], "urn:o");
    }

    #[test]
    fn foreign_contexts_and_wrong_types_are_refused() {
        let remote =
            br#"{"@context":["http://127.0.0.1:9/evil.jsonld"],"@type":"CatalogRequestMessage"}"#;
        assert!(
            parse(remote, &["CatalogRequestMessage"])
                .unwrap_err()
                .0
                .contains("@context")
        );
        let wrong = br#"{"@context":["https://w3id.org/dspace/2025/1/context.jsonld"],"@type":"TransferRequestMessage"}"#;
        assert!(
            parse(wrong, &["CatalogRequestMessage"])
                .unwrap_err()
                .0
                .contains("takes CatalogRequestMessage")
        );
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(deep.as_bytes(), &["CatalogRequestMessage"]).is_err());
        let no_callback = br#"{"@context":["https://w3id.org/dspace/2025/1/context.jsonld"],"@type":"ContractRequestMessage","consumerPid":"c","offer":{"@id":"o","permission":[{"action":"use"}]}}"#;
        assert!(
            parse(no_callback, &["ContractRequestMessage"])
                .unwrap_err()
                .0
                .contains("callbackAddress")
        );
    }

    #[test]
    fn templates_become_dsp_offers() {
        for uid in policy::template_uids() {
            let text = policy::template(&uid).unwrap();
            let template =
                policy::parse(text.as_bytes(), crate::rdf_input::RdfSyntax::JsonLd).unwrap();
            let offer = policy_json(&template, "urn:agora:offer:x:0", "Offer");
            assert_eq!(offer["@type"], "Offer");
            assert!(offer.get("uid").is_none() && offer.get("target").is_none());
            let text = offer.to_string();
            assert!(
                !text.contains("\"agora:") && !text.contains("\"dpv:"),
                "{text}"
            );
        }
    }
}
