//! The contracts service: what the node does with each DSP message, as provider and as
//! consumer, and the convenience operations for people.
//!
//! As provider, the node answers an initial contract request at once (`201`, `REQUESTED`) and
//! then decides on the sender threads: an offer it did not make gets its own offer back once
//! (and a termination after that); its own offer is evaluated against the requester's verified
//! claims and stated purpose, giving an agreement, a termination naming the failed constraint,
//! or a wait for the holder's approval. Each state is stored before the message announcing it
//! is sent, so the counter-party's answer always finds it.
//!
//! As consumer, the node accepts an offer whose terms are the ones it asked for, counters once
//! with its own request otherwise, refuses an offer for another dataset, verifies an agreement
//! that matches its request, and records the finalisation.

use super::agreed_policies::AgreedPolicies;
use super::messages::{self, EventType, Message, Reason};
use super::outbound::{self, AddressPolicy, Outbox};
use super::state::{NegotiationState, NegotiationStep, Side, TransferState, TransferStep};
use super::store::{ContractStore, Event, Kind, quota_id};
use super::{ContractError, Result};
use crate::audit::{AuditLog, Record};
use crate::catalog::DatasetSummary;
use crate::catalog::{Catalog, Viewer};
use crate::clock::SharedClock;
use crate::identity::{DevIssuer, Principal, TokenRequest};
use crate::policy::{self, Evaluator, Policy, Request, Satisfaction, Usage};
use chrono::{DateTime, Utc};
use oxigraph::model::NamedNode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The extension member of `ContractNegotiation` that says why a negotiation waits.
const WAITING_IRI: &str = "https://w3id.org/agora/ns#waiting";

/// The transfer type the node offers: the consumer pulls over HTTP with a bearer token.
pub const PULL_FORMAT: &str = "HttpData-PULL";

/// The endpoint type of the data addresses the node hands out.
const HTTP_ENDPOINT_TYPE: &str = "https://w3id.org/idsa/v4.1/HTTP";

/// How the service is set up.
#[derive(Debug, Clone)]
pub struct ContractsOptions {
    /// The node's participant id.
    pub node_id: String,
    /// The node's public base URL (`http://host:port`).
    pub public_url: String,
    /// Which counter-party addresses may be called.
    pub addresses: AddressPolicy,
    /// Lifetime of a data-plane token.
    pub data_token_lifetime: Duration,
    /// How long convenience calls wait for the other party.
    pub wait: Duration,
}

/// A negotiation, on either side.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NegotiationRecord {
    /// This node's process id.
    pub id: String,
    /// The side this node plays.
    #[schema(value_type = String)]
    pub side: Side,
    /// The provider's process id.
    pub provider_pid: Option<String>,
    /// The consumer's process id.
    pub consumer_pid: Option<String>,
    /// Current state.
    #[schema(value_type = String)]
    pub state: NegotiationState,
    /// The counter-party participant (its token's `sub`), once known.
    pub participant: Option<String>,
    /// Where the counter-party takes messages: the consumer's callback address, or the
    /// provider's DSP base URL. `None` when both sides are this node.
    pub counterparty_url: Option<String>,
    /// The dataset: a local id (provider) or the provider's id for it (consumer).
    pub dataset: String,
    /// The dataset's IRI, when known.
    pub dataset_iri: Option<String>,
    /// The offer on the table (DSP form).
    #[schema(value_type = Object)]
    pub offer: Json,
    /// What the consumer asked for (DSP form).
    #[schema(value_type = Object)]
    pub requested: Json,
    /// The stated purpose.
    pub purpose: Option<String>,
    /// The requester's verified claims (provider side), for evaluation.
    #[schema(value_type = Object)]
    pub claims: Map<String, Json>,
    /// The local user this negotiation runs for, if any.
    pub requester: Option<String>,
    /// The agreement, once there is one.
    pub agreement: Option<String>,
    /// Why it waits, while it waits for a person.
    pub waiting: Option<String>,
    /// Why it ended, if it was terminated.
    pub refusal: Option<Refusal>,
    /// How many counter-offers were made.
    pub counter_offers: u32,
    /// When it began.
    pub created: String,
    /// When it last changed.
    pub updated: String,
}

/// Why a negotiation was terminated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Refusal {
    /// Who ended it: `provider` or `consumer`.
    pub by: String,
    /// The reason, in words.
    pub reason: String,
    /// The constraints that failed, each "requirement; finding".
    pub failed_constraints: Vec<String>,
}

/// An agreement, on either side.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgreementRecord {
    /// Its id.
    pub id: String,
    /// The negotiation that concluded it (this node's process id).
    pub negotiation: String,
    /// The side this node plays.
    #[schema(value_type = String)]
    pub side: Side,
    /// The dataset (local id on the provider side).
    pub dataset: String,
    /// The dataset's IRI.
    pub target: String,
    /// The provider.
    pub assigner: String,
    /// The consumer.
    pub assignee: String,
    /// When it was concluded.
    pub timestamp: String,
    /// The agreed policy, as DSP carries it.
    #[schema(value_type = Object)]
    pub policy: Json,
    /// The agreed policy as ODRL JSON-LD the node re-reads (provider side).
    pub odrl: Option<String>,
    /// The stated purpose.
    pub purpose: Option<String>,
    /// The requester's claims at negotiation, re-evaluated at transfer start.
    #[schema(value_type = Object)]
    pub claims: Map<String, Json>,
    /// The local user it was negotiated for, if any.
    pub requester: Option<String>,
    /// The provider's DSP base URL (consumer side).
    pub provider_url: Option<String>,
    /// When it stops allowing releases, if it does.
    pub expires: Option<String>,
    /// What has been released under it so far (provider side): pulls, rows and bytes, for
    /// the policy's `count` and its row and byte budgets.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub usage: Usage,
}

/// A transfer process, on either side.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TransferRecord {
    /// This node's process id.
    pub id: String,
    /// The side this node plays.
    #[schema(value_type = String)]
    pub side: Side,
    /// The provider's process id.
    pub provider_pid: Option<String>,
    /// The consumer's process id.
    pub consumer_pid: Option<String>,
    /// Current state.
    #[schema(value_type = String)]
    pub state: TransferState,
    /// The agreement it runs under.
    pub agreement: String,
    /// The counter-party participant, once known.
    pub participant: Option<String>,
    /// Where the counter-party takes messages.
    pub counterparty_url: Option<String>,
    /// The transfer type.
    pub format: String,
    /// The local user it runs for, if any.
    pub requester: Option<String>,
    /// Where the data is (consumer side: as the provider sent it).
    #[schema(value_type = Object)]
    pub data_address: Option<Json>,
    /// Why it ended or paused.
    pub reason: Option<String>,
    /// When it began.
    pub created: String,
    /// When it last changed.
    pub updated: String,
}

/// What a person asks for with `POST /api/negotiations`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NegotiationRequest {
    /// The dataset: its id on this node, its IRI, or its id at `provider`.
    pub dataset: String,
    /// The offer (its `@id`, or the offer object); default: the dataset's first offer.
    #[schema(value_type = Object)]
    pub offer: Option<Json>,
    /// The purpose, a DPV IRI (or `dpv:Name`).
    pub purpose: Option<String>,
    /// The DSP base URL of another node that holds the dataset; default: this node.
    pub provider: Option<String>,
}

/// A dataset as offered: its summary and its offers in DSP form.
#[derive(Debug, Clone)]
struct Offered {
    summary: DatasetSummary,
    offers: Vec<(Policy, Json)>,
}

/// Every offered dataset by id, sorted by id, as of one catalogue generation.
type OfferedCatalog = Arc<Vec<(String, Arc<Offered>)>>;

/// The contracts service.
pub struct Contracts {
    options: ContractsOptions,
    store: ContractStore,
    catalog: Arc<Catalog>,
    issuer: Arc<DevIssuer>,
    clock: SharedClock,
    evaluator: Evaluator,
    outbox: Outbox,
    offered: Mutex<Option<(u64, OfferedCatalog)>>,
    audit: Arc<AuditLog>,
    agreed_policies: AgreedPolicies,
}

impl std::fmt::Debug for Contracts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contracts")
            .field("node_id", &self.options.node_id)
            .finish_non_exhaustive()
    }
}

/// The counter-party fields of a negotiation or transfer record.
struct Counterparty<'a> {
    participant: &'a mut Option<String>,
    provider_pid: &'a mut Option<String>,
    consumer_pid: Option<&'a str>,
}

/// What the provider does after a request.
enum Verdict {
    Agree(Box<Policy>, Json),
    CounterOffer(Json),
    Terminate(Refusal),
    Wait(String),
}

fn new_pid() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

fn offer_id(dataset: &str, index: usize) -> String {
    format!("urn:agora:offer:{dataset}:{index}")
}

impl Contracts {
    /// Opens the contracts store under `data_dir` and starts the sender threads.
    pub fn open(
        data_dir: &std::path::Path,
        options: ContractsOptions,
        catalog: Arc<Catalog>,
        issuer: Arc<DevIssuer>,
        audit: Arc<AuditLog>,
        clock: SharedClock,
    ) -> Result<Self> {
        Ok(Self {
            store: ContractStore::open(data_dir)?,
            audit,
            evaluator: Evaluator::new(clock.clone()),
            outbox: Outbox::new(4),
            options,
            catalog,
            issuer,
            clock,
            offered: Mutex::new(None),
            agreed_policies: AgreedPolicies::default(),
        })
    }

    /// Writes the store's memtables to disk (graceful shutdown).
    pub fn flush(&self) -> Result<()> {
        self.store.flush()
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn now_text(&self) -> String {
        self.now()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// The node's DSP base URL.
    pub fn dsp_url(&self) -> String {
        format!("{}/dsp", self.options.public_url)
    }

    // ---------------------------------------------------------------- catalogue

    /// Every local dataset with at least one offer. Built once, then brought up to date with
    /// the datasets written since (the catalogue's journal), so a write to one dataset costs
    /// reading that one again, not all of them.
    fn offered_datasets(&self) -> Result<OfferedCatalog> {
        let cached = self
            .offered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (generation, changed) = match &cached {
            Some((made_in, _)) => self.catalog.local_changes_since(*made_in),
            None => (self.catalog.generation(), None),
        };
        let datasets = match (cached, changed) {
            (Some((_, datasets)), Some(changed)) if changed.is_empty() => return Ok(datasets),
            (Some((_, datasets)), Some(changed)) => self.update_offered(&datasets, &changed)?,
            _ => {
                let mut datasets = Vec::new();
                for id in self.catalog.ids()? {
                    if let Some(offered) = self.offered_if_any(&id)? {
                        datasets.push((id, offered));
                    }
                }
                Arc::new(datasets)
            }
        };
        let mut slot = self.offered.lock().unwrap_or_else(|p| p.into_inner());
        // A concurrent caller may have stored a newer build meanwhile: keep the newest.
        if slot
            .as_ref()
            .is_none_or(|(made_in, _)| *made_in <= generation)
        {
            *slot = Some((generation, datasets.clone()));
        }
        Ok(datasets)
    }

    /// `datasets` with the entries of `changed` read again (added, replaced or dropped).
    fn update_offered(
        &self,
        datasets: &[(String, Arc<Offered>)],
        changed: &HashSet<String>,
    ) -> Result<OfferedCatalog> {
        let mut updated: Vec<(String, Arc<Offered>)> = datasets
            .iter()
            .filter(|(id, _)| !changed.contains(id))
            .cloned()
            .collect();
        for id in changed {
            if let Some(offered) = self.offered_if_any(id)? {
                updated.push((id.clone(), offered));
            }
        }
        updated.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Arc::new(updated))
    }

    /// Dataset `id` as offered, or `None` when it has no offers or no longer exists.
    fn offered_if_any(&self, id: &str) -> Result<Option<Arc<Offered>>> {
        match self.offered_dataset(id) {
            Ok(offered) => Ok(offered.map(Arc::new)),
            Err(ContractError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn offered_dataset(&self, id: &str) -> Result<Option<Offered>> {
        let (summary, policies) = self.catalog.offered(id)?;
        if policies.is_empty() {
            return Ok(None);
        }
        let offers = policies
            .into_iter()
            .enumerate()
            .map(|(index, policy)| {
                let json = messages::policy_json(&policy, &offer_id(id, index), "Offer");
                (policy, json)
            })
            .collect();
        Ok(Some(Offered { summary, offers }))
    }

    /// Resolves a dataset named by id or IRI to its local id, if `principal` may see it (a
    /// dataset whose access policy they fail does not exist for them).
    fn visible_dataset_id(&self, principal: &Principal, name: &str) -> Result<String> {
        let id = self.local_dataset_id(name)?;
        if self
            .catalog
            .is_visible(&id, &Viewer::with_claims(principal.claims()))?
        {
            Ok(id)
        } else {
            Err(ContractError::NotFound {
                what: format!("dataset {}", name.chars().take(200).collect::<String>()),
            })
        }
    }

    /// Resolves a dataset named by id or IRI to its local id.
    fn local_dataset_id(&self, name: &str) -> Result<String> {
        if crate::catalog::is_valid_id(name) && self.catalog.record(name)?.is_some() {
            return Ok(name.to_owned());
        }
        if let Some(id) = self.catalog.id_for_iri(name)? {
            return Ok(id);
        }
        Err(ContractError::NotFound {
            what: format!("dataset {}", name.chars().take(200).collect::<String>()),
        })
    }

    fn dataset_json(&self, offered: &Offered) -> Json {
        let mut dataset = json!({
            "@id": offered.summary.iri,
            "@type": "Dataset",
            "hasPolicy": offered.offers.iter().map(|(_, json)| json.clone()).collect::<Vec<_>>(),
            "distribution": [{
                "@type": "Distribution",
                "format": PULL_FORMAT,
                "accessService": {
                    "@id": format!("{}#service", self.dsp_url()),
                    "@type": "DataService",
                    "endpointURL": self.dsp_url(),
                }
            }],
        });
        if let Json::Object(fields) = &mut dataset {
            if !offered.summary.title.is_empty() {
                fields.insert("dct:title".into(), json!(offered.summary.title));
            }
            if !offered.summary.description.is_empty() {
                fields.insert("dct:description".into(), json!(offered.summary.description));
            }
            if !offered.summary.keywords.is_empty() {
                fields.insert("dcat:keyword".into(), json!(offered.summary.keywords));
            }
        }
        dataset
    }

    /// The DSP catalogue page for `principal`: `(catalog, total)`.
    pub fn dsp_catalog(
        &self,
        principal: &Principal,
        offset: usize,
        limit: usize,
    ) -> Result<(Json, usize)> {
        let all = self.offered_datasets()?;
        let hidden = self
            .catalog
            .hidden_from(&Viewer::with_claims(principal.claims()))?;
        let datasets: Vec<&(String, Arc<Offered>)> =
            all.iter().filter(|(id, _)| !hidden.contains(id)).collect();
        let total = datasets.len();
        let page: Vec<Json> = datasets
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(_, offered)| self.dataset_json(offered))
            .collect();
        let mut catalog = json!({
            "@context": [messages::DSP_CONTEXT],
            "@id": format!("{}/catalog", self.options.public_url),
            "@type": "Catalog",
            "participantId": self.options.node_id,
            "service": [{
                "@id": format!("{}#service", self.dsp_url()),
                "@type": "DataService",
                "endpointURL": self.dsp_url(),
            }],
        });
        if !page.is_empty()
            && let Json::Object(fields) = &mut catalog
        {
            fields.insert("dataset".into(), Json::Array(page));
        }
        Ok((catalog, total))
    }

    /// One dataset as DSP shows it.
    pub fn dsp_dataset(&self, principal: &Principal, name: &str) -> Result<Json> {
        let id = self.visible_dataset_id(principal, name)?;
        let offered = self
            .offered_dataset(&id)?
            .ok_or_else(|| ContractError::NotFound {
                what: format!("dataset {id} (it is offered under no policy)"),
            })?;
        let mut dataset = self.dataset_json(&offered);
        if let Json::Object(fields) = &mut dataset {
            fields.insert("@context".into(), json!([messages::DSP_CONTEXT]));
        }
        Ok(dataset)
    }

    // ---------------------------------------------------------------- records

    fn negotiation(&self, id: &str) -> Result<NegotiationRecord> {
        self.store
            .get(Kind::Negotiation, id)?
            .ok_or_else(|| ContractError::NotFound {
                what: "contract negotiation".into(),
            })
    }

    fn transfer(&self, id: &str) -> Result<TransferRecord> {
        self.store
            .get(Kind::Transfer, id)?
            .ok_or_else(|| ContractError::NotFound {
                what: "transfer process".into(),
            })
    }

    /// The agreement with its current usage: the counters a data-plane release moves are
    /// written apart from the record ([`Contracts::add_usage`]) and win over the record's own.
    fn agreement(&self, id: &str) -> Result<AgreementRecord> {
        let mut record: AgreementRecord =
            self.store
                .get(Kind::Agreement, id)?
                .ok_or_else(|| ContractError::NotFound {
                    what: "agreement".into(),
                })?;
        if let Some(usage) = self.store.counters(Kind::Agreement, id)? {
            record.usage = usage;
        }
        Ok(record)
    }

    /// What the agreement's participant has used of its dataset over all its agreements for
    /// it. Budgets and counts are checked against this, not the agreement's own usage:
    /// negotiating the same offer a thousand times (matrix R32) buys no more rows, bytes or
    /// pulls than negotiating it once. `agreed_at` stays the agreement's own.
    fn participant_usage(&self, record: &AgreementRecord) -> Result<Usage> {
        let shared: Usage = self
            .store
            .counters(Kind::Quota, &quota_id(&record.assignee, &record.dataset))?
            .unwrap_or_default();
        Ok(Usage {
            agreed_at: record.usage.agreed_at,
            ..shared
        })
    }

    /// Adds `change` to the agreement's usage and to its participant's usage of the dataset
    /// (the caller holds the store's lock).
    fn add_usage(&self, record: &mut AgreementRecord, change: UsageChange) -> Result<()> {
        record.usage = change.applied_to(record.usage);
        self.store
            .put_counters(Kind::Agreement, &record.id, &record.usage)?;
        let quota = quota_id(&record.assignee, &record.dataset);
        let shared: Usage = self
            .store
            .counters(Kind::Quota, &quota)?
            .unwrap_or_default();
        self.store
            .put_counters(Kind::Quota, &quota, &change.applied_to(shared))
    }

    fn event(
        &self,
        kind: Kind,
        id: &str,
        state: &str,
        by: &str,
        message: Option<&str>,
        detail: impl Into<String>,
    ) -> Result<Event> {
        Ok(Event {
            seq: self.store.event_count(kind, id)? + 1,
            at: self.now_text(),
            state: state.to_owned(),
            detail: detail.into(),
            message: message.map(str::to_owned),
            by: by.to_owned(),
        })
    }

    fn save_negotiation(
        &self,
        record: &mut NegotiationRecord,
        by: &str,
        message: Option<&str>,
        detail: impl Into<String>,
    ) -> Result<()> {
        record.updated = self.now_text();
        // Nobody waits for a person once there is an agreement or an end.
        if matches!(
            record.state,
            NegotiationState::Agreed
                | NegotiationState::Verified
                | NegotiationState::Finalized
                | NegotiationState::Terminated
        ) {
            record.waiting = None;
        }
        let event = self.event(
            Kind::Negotiation,
            &record.id,
            record.state.as_str(),
            by,
            message,
            detail,
        )?;
        let mut keys = Vec::new();
        if let (Some(participant), Some(consumer_pid), Side::Provider) =
            (&record.participant, &record.consumer_pid, record.side)
        {
            keys.push(format!("{participant}|{consumer_pid}"));
        }
        self.store
            .put(Kind::Negotiation, &record.id, record, &keys, Some(&event))
    }

    fn save_transfer(
        &self,
        record: &mut TransferRecord,
        by: &str,
        message: Option<&str>,
        detail: impl Into<String>,
    ) -> Result<()> {
        record.updated = self.now_text();
        let event = self.event(
            Kind::Transfer,
            &record.id,
            record.state.as_str(),
            by,
            message,
            detail,
        )?;
        let mut keys = Vec::new();
        if let (Some(participant), Some(consumer_pid), Side::Provider) =
            (&record.participant, &record.consumer_pid, record.side)
        {
            keys.push(format!("{participant}|{consumer_pid}"));
        }
        self.store
            .put(Kind::Transfer, &record.id, record, &keys, Some(&event))
    }

    /// A negotiation `principal` takes part in (as the counter-party, the local requester, or
    /// the holder of the dataset on the provider side); anything else is "not found".
    fn negotiation_for(&self, principal: &Principal, id: &str) -> Result<NegotiationRecord> {
        let record = self.negotiation(id)?;
        if self.may_see_negotiation(principal, &record) {
            Ok(record)
        } else {
            Err(ContractError::NotFound {
                what: "contract negotiation".into(),
            })
        }
    }

    fn may_see_negotiation(&self, principal: &Principal, record: &NegotiationRecord) -> bool {
        let subject = Some(principal.subject.as_str());
        record.participant.as_deref() == subject
            || record.requester.as_deref() == subject
            || (record.side == Side::Provider && self.is_holder(principal, &record.dataset))
    }

    fn is_holder(&self, principal: &Principal, dataset: &str) -> bool {
        principal.has_role(crate::identity::Role::Holder)
            && self
                .catalog
                .record(dataset)
                .ok()
                .flatten()
                .is_some_and(|r| r.holder == principal.subject)
    }

    // ---------------------------------------------------------------- provider decisions

    /// What the provider does with the offer on the table.
    fn verdict(&self, record: &NegotiationRecord, approved: bool) -> Result<Verdict> {
        let offered =
            self.offered_dataset(&record.dataset)?
                .ok_or_else(|| ContractError::NotFound {
                    what: format!("dataset {} (offered under no policy)", record.dataset),
                })?;
        let asked_id = record
            .requested
            .get("@id")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let asked_terms = messages::terms(&record.requested);
        let matching = offered
            .offers
            .iter()
            .find(|(_, json)| json["@id"] == asked_id && messages::terms(json) == asked_terms);
        let Some((policy, offer)) = matching else {
            if record.counter_offers == 0 && record.state == NegotiationState::Requested {
                let (_, own) = offered
                    .offers
                    .iter()
                    .find(|(_, json)| json["@id"] == asked_id)
                    .unwrap_or(&offered.offers[0]);
                return Ok(Verdict::CounterOffer(own.clone()));
            }
            return Ok(Verdict::Terminate(Refusal {
                by: "provider".into(),
                reason: format!(
                    "the provider accepts only the offers of its catalogue, unchanged; {asked_id} with these terms is not one of them"
                ),
                failed_constraints: Vec::new(),
            }));
        };
        let purpose = record.purpose.as_deref().map(expand_purpose).transpose()?;
        let target = NamedNode::new(&offered.summary.iri)
            .map_err(|e| ContractError::Internal(e.to_string()))?;
        let mut request = Request::from_claims(record.claims.clone(), purpose).with_target(target);
        request.usage = Usage {
            agreed_at: Some(self.now()),
            ..Usage::default()
        };
        let decision = self.evaluator.evaluate(policy, &request);
        if !decision.is_permitted() {
            return Ok(Verdict::Terminate(refusal_of(&decision)));
        }
        let needs_approval = decision.plan.as_ref().is_some_and(|p| p.requires_approval);
        if needs_approval && !approved {
            return Ok(Verdict::Wait(
                "waiting for the data holder's approval: the policy requires it (agora:obtainApproval), like an EHDS data permit".into(),
            ));
        }
        Ok(Verdict::Agree(Box::new(policy.clone()), offer.clone()))
    }

    fn conclude(
        &self,
        record: &NegotiationRecord,
        policy: &Policy,
        offer: &Json,
    ) -> Result<AgreementRecord> {
        let id = new_pid();
        let assignee = record.participant.clone().unwrap_or_default();
        let timestamp = self.now_text();
        let mut agreement = messages::policy_json(policy, &id, "Agreement");
        if let Json::Object(fields) = &mut agreement {
            fields.insert(
                "target".into(),
                json!(record.dataset_iri.clone().unwrap_or_default()),
            );
            fields.insert("assigner".into(), json!(self.options.node_id));
            fields.insert("assignee".into(), json!(assignee));
            fields.insert("timestamp".into(), json!(timestamp));
            if let Some(profile) = offer.get("profile") {
                fields.insert("profile".into(), profile.clone());
            }
        }
        let expires = self
            .plan_for(
                policy,
                record.purpose.as_deref(),
                &record.claims,
                self.now(),
            )
            .and_then(|plan| plan.expires)
            .map(|bound| bound.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        Ok(AgreementRecord {
            id,
            negotiation: record.id.clone(),
            side: Side::Provider,
            dataset: record.dataset.clone(),
            target: record.dataset_iri.clone().unwrap_or_default(),
            assigner: self.options.node_id.clone(),
            assignee,
            timestamp,
            policy: agreement,
            odrl: Some(policy::to_json_ld_string(policy)),
            purpose: record.purpose.clone(),
            claims: record.claims.clone(),
            requester: record.requester.clone(),
            provider_url: None,
            expires,
            usage: Usage::default(),
        })
    }

    fn plan_for(
        &self,
        policy: &Policy,
        purpose: Option<&str>,
        claims: &Map<String, Json>,
        agreed_at: DateTime<Utc>,
    ) -> Option<policy::EnforcementPlan> {
        let purpose = purpose.and_then(|p| expand_purpose(p).ok());
        let mut request = Request::from_claims(claims.clone(), purpose);
        request.usage.agreed_at = Some(agreed_at);
        self.evaluator.evaluate(policy, &request).plan
    }

    /// Applies the provider's verdict: stores the new state, then sends the message that
    /// announces it (unless both sides are this node).
    fn act_as_provider(self: &Arc<Self>, id: &str, approved: bool) -> Result<()> {
        let _guard = self.store.lock();
        let mut record = self.negotiation(id)?;
        if record.state.is_final()
            || !matches!(
                record.state,
                NegotiationState::Requested | NegotiationState::Accepted
            )
        {
            return Ok(());
        }
        let local = record.counterparty_url.is_none();
        let verdict = match self.verdict(&record, approved) {
            Ok(verdict) => verdict,
            Err(ContractError::NotFound { what }) => Verdict::Terminate(Refusal {
                by: "provider".into(),
                reason: format!("{what} is no longer offered"),
                failed_constraints: Vec::new(),
            }),
            Err(error) => return Err(error),
        };
        match verdict {
            Verdict::Wait(why) => {
                if record.waiting.is_none() {
                    record.waiting = Some(why.clone());
                    self.save_negotiation(&mut record, "node", None, why)?;
                }
            }
            Verdict::CounterOffer(mut offer) => {
                // A catalogue offer has no `target`; the offer of a ContractOfferMessage names
                // it (DSP 2025-1 contract-offer-message-schema.json).
                if let (Json::Object(fields), Some(iri)) = (&mut offer, &record.dataset_iri) {
                    fields.insert("target".into(), json!(iri));
                }
                record.state = record.state.after(NegotiationStep::Offer, Side::Provider)?;
                record.offer = offer.clone();
                record.counter_offers += 1;
                self.save_negotiation(
                    &mut record,
                    "sent",
                    Some("ContractOfferMessage"),
                    "the requested offer is not one the provider makes; it offers its own",
                )?;
                self.send_to_consumer(
                    &record,
                    "offers",
                    &Message::ContractOffer {
                        provider_pid: record.id.clone(),
                        consumer_pid: record.consumer_pid.clone(),
                        offer,
                        callback: None,
                    },
                );
            }
            Verdict::Terminate(refusal) => {
                record.state = record
                    .state
                    .after(NegotiationStep::Terminate, Side::Provider)?;
                record.waiting = None;
                let reason = refusal.reason.clone();
                let mut reasons = vec![Json::String(reason.clone())];
                reasons.extend(
                    refusal
                        .failed_constraints
                        .iter()
                        .map(|c| Json::String(c.clone())),
                );
                record.refusal = Some(refusal);
                self.save_negotiation(
                    &mut record,
                    if local { "node" } else { "sent" },
                    (!local).then_some("ContractNegotiationTerminationMessage"),
                    format!("refused: {reason}"),
                )?;
                self.send_to_consumer(
                    &record,
                    "termination",
                    &Message::NegotiationTermination {
                        provider_pid: record.id.clone(),
                        consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
                        reason: Reason {
                            code: Some("policy".into()),
                            reason: reasons,
                        },
                    },
                );
            }
            Verdict::Agree(policy, offer) => {
                let agreement = self.conclude(&record, &policy, &offer)?;
                self.store
                    .put(Kind::Agreement, &agreement.id, &agreement, &[], None)?;
                record.state = record.state.after(NegotiationStep::Agree, Side::Provider)?;
                record.agreement = Some(agreement.id.clone());
                record.waiting = None;
                if local {
                    self.save_negotiation(
                        &mut record,
                        "node",
                        None,
                        format!("agreement {} concluded", agreement.id),
                    )?;
                    record.state = record
                        .state
                        .after(NegotiationStep::Verify, Side::Consumer)?;
                    self.save_negotiation(
                        &mut record,
                        "node",
                        None,
                        "verified on behalf of the requester",
                    )?;
                    record.state = record
                        .state
                        .after(NegotiationStep::Finalize, Side::Provider)?;
                    self.save_negotiation(
                        &mut record,
                        "node",
                        None,
                        "finalized: the agreement is in force",
                    )?;
                } else {
                    self.save_negotiation(
                        &mut record,
                        "sent",
                        Some("ContractAgreementMessage"),
                        format!("agreement {} sent", agreement.id),
                    )?;
                    self.send_to_consumer(
                        &record,
                        "agreement",
                        &Message::ContractAgreement {
                            provider_pid: record.id.clone(),
                            consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
                            agreement: agreement.policy.clone(),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    fn send_to_consumer(
        self: &Arc<Self>,
        record: &NegotiationRecord,
        path: &str,
        message: &Message,
    ) {
        let (Some(base), Some(consumer_pid)) = (&record.counterparty_url, &record.consumer_pid)
        else {
            return;
        };
        let url = format!(
            "{}/negotiations/{}/{path}",
            base.trim_end_matches('/'),
            encode(consumer_pid)
        );
        self.deliver(
            Kind::Negotiation,
            record.id.clone(),
            record.participant.clone(),
            url,
            message.to_json(),
        );
    }

    fn send_to_provider(
        self: &Arc<Self>,
        record: &NegotiationRecord,
        path: &str,
        message: &Message,
    ) {
        let (Some(base), Some(provider_pid)) = (&record.counterparty_url, &record.provider_pid)
        else {
            return;
        };
        let url = format!(
            "{}/negotiations/{}/{path}",
            base.trim_end_matches('/'),
            encode(provider_pid)
        );
        self.deliver(
            Kind::Negotiation,
            record.id.clone(),
            record.participant.clone(),
            url,
            message.to_json(),
        );
    }

    /// Sends a message on the sender threads, three tries with back-off; a message that cannot
    /// be delivered is written to the process's log.
    fn deliver(
        self: &Arc<Self>,
        kind: Kind,
        id: String,
        audience: Option<String>,
        url: String,
        body: Json,
    ) {
        let contracts = self.clone();
        self.outbox.submit(Box::new(move || {
            let mut last = String::new();
            for attempt in 0..3u32 {
                if attempt > 0 {
                    std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                }
                let outcome = contracts
                    .node_token(audience.as_deref().unwrap_or(&url), &Map::new())
                    .and_then(|token| outbound::call(&url, &token, Some(&body)));
                match outcome {
                    Ok(answer) if (200..300).contains(&answer.status) => return,
                    Ok(answer) => {
                        last = format!(
                            "answered {}{}",
                            answer.status,
                            answer.body.map(|b| format!(": {b}")).unwrap_or_default()
                        );
                        if answer.status < 500 {
                            break;
                        }
                    }
                    Err(error) => last = error.to_string(),
                }
            }
            let detail = format!(
                "{} to {url} was not delivered: {last}",
                body["@type"].as_str().unwrap_or("message")
            );
            tracing::warn!(%detail, "DSP delivery failed");
            let _guard = contracts.store.lock();
            let state = match kind {
                Kind::Negotiation => contracts.negotiation(&id).map(|r| r.state.to_string()),
                _ => contracts.transfer(&id).map(|r| r.state.to_string()),
            };
            if let Ok(state) = state
                && let Ok(event) = contracts.event(kind, &id, &state, "node", None, detail)
                && let Ok(Some(record)) = contracts.store.get::<Json>(kind, &id)
            {
                let _ = contracts.store.put(kind, &id, &record, &[], Some(&event));
            }
        }));
    }

    /// A token this node signs as itself, for a message to `audience`.
    fn node_token(&self, audience: &str, claims: &Map<String, Json>) -> Result<String> {
        let request = TokenRequest {
            subject: self.options.node_id.clone(),
            roles: Vec::new(),
            claims: claims.clone(),
            lifetime: Duration::from_secs(300),
        };
        self.issuer
            .issue(&request, audience, self.now())
            .map_err(|e| ContractError::Internal(e.to_string()))
    }

    // ---------------------------------------------------------------- DSP, provider side

    /// `POST /dsp/negotiations/request`: a consumer starts a negotiation.
    pub fn dsp_initial_request(
        self: &Arc<Self>,
        principal: &Principal,
        message: Message,
    ) -> Result<Json> {
        let Message::ContractRequest {
            consumer_pid,
            provider_pid: None,
            offer,
            callback: Some(callback),
        } = message
        else {
            return Err(ContractError::BadMessage(
                "a negotiation starts with a ContractRequestMessage that has `callbackAddress` and no `providerPid`".into(),
            ));
        };
        self.options.addresses.check(&callback)?;
        let target = offer
            .get("target")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .or_else(|| {
                dataset_of_offer_id(offer.get("@id").and_then(Json::as_str).unwrap_or_default())
            })
            .ok_or_else(|| {
                ContractError::BadMessage("the offer names no `target` dataset".into())
            })?;
        let dataset = self.visible_dataset_id(principal, &target)?;
        let offered = self
            .offered_dataset(&dataset)?
            .ok_or_else(|| ContractError::NotFound {
                what: format!("dataset {dataset} (offered under no policy)"),
            })?;
        let _guard = self.store.lock();
        let key = format!("{}|{consumer_pid}", principal.subject);
        if self.store.find(Kind::Negotiation, &key)?.is_some() {
            return Err(ContractError::Conflict(format!(
                "a negotiation with consumerPid {consumer_pid} already exists for this participant; use a new consumerPid"
            )));
        }
        let now = self.now_text();
        let mut record = NegotiationRecord {
            id: new_pid(),
            side: Side::Provider,
            provider_pid: None,
            consumer_pid: Some(consumer_pid),
            state: NegotiationState::Requested,
            participant: Some(principal.subject.clone()),
            counterparty_url: Some(callback),
            dataset,
            dataset_iri: Some(offered.summary.iri.clone()),
            offer: offer.clone(),
            requested: offer,
            purpose: principal
                .attributes
                .get("purpose")
                .and_then(Json::as_str)
                .map(str::to_owned),
            claims: principal.claims(),
            requester: None,
            agreement: None,
            waiting: None,
            refusal: None,
            counter_offers: 0,
            created: now.clone(),
            updated: now,
        };
        record.provider_pid = Some(record.id.clone());
        self.save_negotiation(
            &mut record,
            "received",
            Some("ContractRequestMessage"),
            "the consumer asked for an offer",
        )?;
        drop(_guard);
        self.decide_now(&record.id)?;
        Ok(messages::negotiation_json(
            &record.id,
            record.consumer_pid.as_deref().unwrap_or_default(),
            record.state,
        ))
    }

    /// Decides as provider before the message that prompted it is acknowledged, so that the
    /// acknowledgement means the node's answer is settled (only the sending is queued).
    fn decide_now(self: &Arc<Self>, id: &str) -> Result<()> {
        self.act_as_provider(id, false)
    }

    /// Admits a message about one of this node's processes: on the provider side the sender
    /// must be the recorded participant and name the recorded consumerPid; on the consumer side
    /// the provider is learnt from its first message and held to afterwards.
    fn admit(
        principal: &Principal,
        side: Side,
        own: &str,
        counterparty: Counterparty<'_>,
        given_provider: &str,
        given_consumer: &str,
    ) -> Result<()> {
        match side {
            Side::Provider => Self::check_counterparty(
                principal,
                counterparty.participant,
                own,
                counterparty.consumer_pid,
                given_provider,
                given_consumer,
            ),
            Side::Consumer => {
                Self::check_counterparty(
                    principal,
                    counterparty.participant,
                    own,
                    counterparty.provider_pid.as_deref(),
                    given_consumer,
                    given_provider,
                )?;
                counterparty
                    .participant
                    .get_or_insert_with(|| principal.subject.clone());
                counterparty
                    .provider_pid
                    .get_or_insert_with(|| given_provider.to_owned());
                Ok(())
            }
        }
    }

    /// Checks that `principal` is the counter-party of a process and the pids match.
    fn check_counterparty(
        principal: &Principal,
        participant: &Option<String>,
        own: &str,
        theirs: Option<&str>,
        given_own: &str,
        given_theirs: &str,
    ) -> Result<()> {
        let matches = participant
            .as_deref()
            .is_none_or(|p| p == principal.subject)
            && own == given_own
            && theirs.is_none_or(|t| t == given_theirs);
        if matches {
            Ok(())
        } else {
            Err(ContractError::NotFound {
                what: "process for these ids and this participant".into(),
            })
        }
    }

    /// A message about an existing negotiation, on either side.
    pub fn dsp_negotiation_message(
        self: &Arc<Self>,
        principal: &Principal,
        pid: &str,
        message: Message,
    ) -> Result<()> {
        let guard = self.store.lock();
        let mut record = self.negotiation(pid)?;
        let (given_provider, given_consumer) = match &message {
            Message::ContractRequest {
                provider_pid,
                consumer_pid,
                ..
            } => (
                provider_pid.clone().unwrap_or_default(),
                consumer_pid.clone(),
            ),
            Message::ContractOffer {
                provider_pid,
                consumer_pid,
                ..
            } => (
                provider_pid.clone(),
                consumer_pid.clone().unwrap_or_default(),
            ),
            Message::ContractAgreement {
                provider_pid,
                consumer_pid,
                ..
            }
            | Message::AgreementVerification {
                provider_pid,
                consumer_pid,
            }
            | Message::NegotiationEvent {
                provider_pid,
                consumer_pid,
                ..
            }
            | Message::NegotiationTermination {
                provider_pid,
                consumer_pid,
                ..
            } => (provider_pid.clone(), consumer_pid.clone()),
            _ => {
                return Err(ContractError::BadMessage(format!(
                    "a {} does not belong to a negotiation",
                    message.type_name()
                )));
            }
        };
        Self::admit(
            principal,
            record.side,
            &record.id,
            Counterparty {
                participant: &mut record.participant,
                provider_pid: &mut record.provider_pid,
                consumer_pid: record.consumer_pid.as_deref(),
            },
            &given_provider,
            &given_consumer,
        )?;
        let sender = record.side.other();
        let type_name = message.type_name();
        match message {
            Message::ContractRequest { offer, .. } => {
                record.state = record.state.after(NegotiationStep::Request, sender)?;
                record.requested = offer;
                self.save_negotiation(
                    &mut record,
                    "received",
                    Some(type_name),
                    "the consumer made a counter-offer",
                )?;
                drop(guard);
                self.decide_now(&record.id)?;
            }
            Message::NegotiationEvent {
                event: EventType::Accepted,
                ..
            } => {
                record.state = record.state.after(NegotiationStep::Accept, sender)?;
                record.requested = record.offer.clone();
                self.save_negotiation(
                    &mut record,
                    "received",
                    Some(type_name),
                    "the consumer accepted the offer",
                )?;
                drop(guard);
                self.decide_now(&record.id)?;
            }
            Message::AgreementVerification { .. } => {
                record.state = record.state.after(NegotiationStep::Verify, sender)?;
                self.save_negotiation(
                    &mut record,
                    "received",
                    Some(type_name),
                    "the consumer verified the agreement",
                )?;
                if self.catalog.record(&record.dataset)?.is_none() {
                    let why = format!(
                        "dataset {} was withdrawn before the agreement was finalized",
                        record.dataset
                    );
                    record.state = record
                        .state
                        .after(NegotiationStep::Terminate, Side::Provider)?;
                    record.refusal = Some(Refusal {
                        by: "provider".into(),
                        reason: why.clone(),
                        failed_constraints: Vec::new(),
                    });
                    self.save_negotiation(
                        &mut record,
                        "sent",
                        Some("ContractNegotiationTerminationMessage"),
                        format!("terminated: {why}"),
                    )?;
                    drop(guard);
                    self.send_to_consumer(
                        &record,
                        "termination",
                        &Message::NegotiationTermination {
                            provider_pid: record.id.clone(),
                            consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
                            reason: Reason::said("withdrawn", why),
                        },
                    );
                    return Ok(());
                }
                record.state = record
                    .state
                    .after(NegotiationStep::Finalize, Side::Provider)?;
                self.save_negotiation(
                    &mut record,
                    "sent",
                    Some("ContractNegotiationEventMessage"),
                    "finalized: the agreement is in force",
                )?;
                drop(guard);
                self.send_to_consumer(
                    &record,
                    "events",
                    &Message::NegotiationEvent {
                        provider_pid: record.id.clone(),
                        consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
                        event: EventType::Finalized,
                    },
                );
            }
            Message::NegotiationTermination { reason, .. } => {
                record.state = record.state.after(NegotiationStep::Terminate, sender)?;
                record.waiting = None;
                record.refusal = Some(Refusal {
                    by: sender.as_str().into(),
                    reason: reason.summary(),
                    failed_constraints: Vec::new(),
                });
                self.save_negotiation(
                    &mut record,
                    "received",
                    Some(type_name),
                    format!("the {} terminated: {}", sender.as_str(), reason.summary()),
                )?;
            }
            Message::ContractOffer { offer, .. } => {
                record.state = record.state.after(NegotiationStep::Offer, sender)?;
                record.offer = offer;
                self.save_negotiation(
                    &mut record,
                    "received",
                    Some(type_name),
                    "the provider made an offer",
                )?;
                drop(guard);
                self.consumer_answer_now(&record.id)?;
            }
            Message::ContractAgreement { agreement, .. } => {
                record.state = record.state.after(NegotiationStep::Agree, sender)?;
                let agreement_id = agreement
                    .get("@id")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let stored = AgreementRecord {
                    id: agreement_id.clone(),
                    negotiation: record.id.clone(),
                    side: Side::Consumer,
                    dataset: record.dataset.clone(),
                    target: agreement
                        .get("target")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    assigner: agreement
                        .get("assigner")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    assignee: agreement
                        .get("assignee")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    timestamp: agreement
                        .get("timestamp")
                        .and_then(Json::as_str)
                        .map_or_else(|| self.now_text(), str::to_owned),
                    policy: agreement.clone(),
                    odrl: None,
                    purpose: record.purpose.clone(),
                    claims: Map::new(),
                    requester: record.requester.clone(),
                    provider_url: record.counterparty_url.clone(),
                    expires: None,
                    usage: Usage::default(),
                };
                self.store
                    .put(Kind::Agreement, &agreement_id, &stored, &[], None)?;
                record.agreement = Some(agreement_id.clone());
                self.save_negotiation(
                    &mut record,
                    "received",
                    Some(type_name),
                    format!("the provider sent agreement {agreement_id}"),
                )?;
                drop(guard);
                self.consumer_answer_now(&record.id)?;
            }
            Message::NegotiationEvent {
                event: EventType::Finalized,
                ..
            } => {
                record.state = record.state.after(NegotiationStep::Finalize, sender)?;
                self.save_negotiation(
                    &mut record,
                    "received",
                    Some(type_name),
                    "the provider finalized: the agreement is in force",
                )?;
            }
            _ => {}
        }
        Ok(())
    }

    /// `GET /dsp/negotiations/{pid}`.
    pub fn dsp_negotiation(&self, principal: &Principal, pid: &str) -> Result<Json> {
        let record = self.negotiation(pid)?;
        if record.participant.as_deref() != Some(principal.subject.as_str())
            && !self.may_see_negotiation(principal, &record)
        {
            return Err(ContractError::NotFound {
                what: "contract negotiation".into(),
            });
        }
        let mut answer = messages::negotiation_json(
            record.provider_pid.as_deref().unwrap_or_default(),
            record.consumer_pid.as_deref().unwrap_or_default(),
            record.state,
        );
        // DSP has no message for "waiting for a person"; the reason travels as an extension
        // member (a full IRI, which other connectors ignore), so the consumer's user sees it.
        if let (Some(waiting), Json::Object(fields)) = (&record.waiting, &mut answer) {
            fields.insert(WAITING_IRI.into(), json!(waiting));
        }
        Ok(answer)
    }

    /// `POST /dsp/negotiations/offers`: a provider starts a negotiation with an offer. The
    /// node records it for its users to see; it does not accept offers nobody asked for.
    pub fn dsp_initial_offer(&self, principal: &Principal, message: Message) -> Result<Json> {
        let Message::ContractOffer {
            provider_pid,
            consumer_pid: None,
            offer,
            callback: Some(callback),
        } = message
        else {
            return Err(ContractError::BadMessage(
                "a provider starts a negotiation with a ContractOfferMessage that has `callbackAddress` and no `consumerPid`".into(),
            ));
        };
        self.options.addresses.check(&callback)?;
        let _guard = self.store.lock();
        let now = self.now_text();
        let id = new_pid();
        let mut record = NegotiationRecord {
            id: id.clone(),
            side: Side::Consumer,
            provider_pid: Some(provider_pid),
            consumer_pid: Some(id),
            state: NegotiationState::Offered,
            participant: Some(principal.subject.clone()),
            counterparty_url: Some(callback),
            dataset: offer
                .get("target")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned(),
            dataset_iri: offer
                .get("target")
                .and_then(Json::as_str)
                .map(str::to_owned),
            offer: offer.clone(),
            requested: Json::Null,
            purpose: None,
            claims: Map::new(),
            requester: None,
            agreement: None,
            waiting: Some("an unsolicited offer: nobody on this node asked for it".into()),
            refusal: None,
            counter_offers: 0,
            created: now.clone(),
            updated: now,
        };
        self.save_negotiation(
            &mut record,
            "received",
            Some("ContractOfferMessage"),
            "a provider offered a contract",
        )?;
        Ok(messages::negotiation_json(
            record.provider_pid.as_deref().unwrap_or_default(),
            &record.id,
            record.state,
        ))
    }

    // ---------------------------------------------------------------- consumer decisions

    /// Decides as consumer before the provider's message is acknowledged.
    fn consumer_answer_now(self: &Arc<Self>, id: &str) -> Result<()> {
        self.act_as_consumer(id)
    }

    fn act_as_consumer(self: &Arc<Self>, id: &str) -> Result<()> {
        let _guard = self.store.lock();
        let mut record = self.negotiation(id)?;
        if record.requested.is_null() {
            return Ok(());
        }
        let wanted_target = record
            .requested
            .get("target")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .or_else(|| record.dataset_iri.clone());
        match record.state {
            NegotiationState::Offered => {
                let target = record.offer.get("target").and_then(Json::as_str);
                if target.is_some()
                    && wanted_target.is_some()
                    && target.map(str::to_owned) != wanted_target
                {
                    return self.consumer_terminate(
                        &mut record,
                        "the offer is for another dataset than the one asked for",
                    );
                }
                if messages::terms(&record.offer) == messages::terms(&record.requested) {
                    record.state = record
                        .state
                        .after(NegotiationStep::Accept, Side::Consumer)?;
                    self.save_negotiation(
                        &mut record,
                        "sent",
                        Some("ContractNegotiationEventMessage"),
                        "the offer has the terms asked for: accepted",
                    )?;
                    self.send_to_provider(
                        &record,
                        "events",
                        &Message::NegotiationEvent {
                            provider_pid: record.provider_pid.clone().unwrap_or_default(),
                            consumer_pid: record.id.clone(),
                            event: EventType::Accepted,
                        },
                    );
                } else if record.counter_offers == 0 {
                    record.state = record
                        .state
                        .after(NegotiationStep::Request, Side::Consumer)?;
                    record.counter_offers += 1;
                    let mut counter = record.requested.clone();
                    if let (Json::Object(fields), Some(offer_id)) =
                        (&mut counter, record.offer.get("@id"))
                    {
                        fields.insert("@id".into(), offer_id.clone());
                    }
                    self.save_negotiation(
                        &mut record,
                        "sent",
                        Some("ContractRequestMessage"),
                        "the offer differs from the terms asked for: counter-offer with them",
                    )?;
                    self.send_to_provider(
                        &record,
                        "request",
                        &Message::ContractRequest {
                            consumer_pid: record.id.clone(),
                            provider_pid: record.provider_pid.clone(),
                            offer: counter,
                            callback: None,
                        },
                    );
                } else {
                    return self.consumer_terminate(
                        &mut record,
                        "the provider's offer still differs from the terms asked for",
                    );
                }
            }
            NegotiationState::Agreed => {
                let agreement_id = record.agreement.clone().unwrap_or_default();
                let agreement = self.agreement(&agreement_id)?;
                let expected = messages::terms(&record.requested);
                let fits = messages::terms(&agreement.policy) == expected
                    || messages::terms(&agreement.policy) == messages::terms(&record.offer);
                if !fits {
                    return self.consumer_terminate(
                        &mut record,
                        "the agreement's terms are not the ones negotiated",
                    );
                }
                record.state = record
                    .state
                    .after(NegotiationStep::Verify, Side::Consumer)?;
                self.save_negotiation(
                    &mut record,
                    "sent",
                    Some("ContractAgreementVerificationMessage"),
                    "the agreement matches: verified",
                )?;
                self.send_to_provider(
                    &record,
                    "agreement/verification",
                    &Message::AgreementVerification {
                        provider_pid: record.provider_pid.clone().unwrap_or_default(),
                        consumer_pid: record.id.clone(),
                    },
                );
            }
            _ => {}
        }
        Ok(())
    }

    fn consumer_terminate(
        self: &Arc<Self>,
        record: &mut NegotiationRecord,
        why: &str,
    ) -> Result<()> {
        record.state = record
            .state
            .after(NegotiationStep::Terminate, Side::Consumer)?;
        record.refusal = Some(Refusal {
            by: "consumer".into(),
            reason: why.into(),
            failed_constraints: Vec::new(),
        });
        self.save_negotiation(
            record,
            "sent",
            Some("ContractNegotiationTerminationMessage"),
            format!("terminated: {why}"),
        )?;
        self.send_to_provider(
            record,
            "termination",
            &Message::NegotiationTermination {
                provider_pid: record.provider_pid.clone().unwrap_or_default(),
                consumer_pid: record.id.clone(),
                reason: Reason::said("consumer", why),
            },
        );
        Ok(())
    }

    // ---------------------------------------------------------------- convenience API

    /// Runs a negotiation for a person to its end (or until it waits): on this node for a
    /// local dataset, over DSP with `provider` otherwise.
    pub fn negotiate(
        self: &Arc<Self>,
        principal: &Principal,
        request: NegotiationRequest,
    ) -> Result<NegotiationRecord> {
        if let Some(purpose) = &request.purpose {
            expand_purpose(purpose)?;
        }
        match request.provider.clone() {
            None => match self.catalog.peer_dataset(&request.dataset)? {
                // A harvested dataset without offers (a read-only DCAT-AP portal's) has
                // nothing to negotiate, and its origin may have no DSP endpoint at all.
                Some(_)
                    if self
                        .catalog
                        .describe(&request.dataset)?
                        .triples_for_predicate(crate::catalog::AGORA_OFFER)
                        .next()
                        .is_none() =>
                {
                    Err(ContractError::NotFound {
                        what: format!(
                            "an offer for {} (its origin publishes none: the datasets of a DCAT-AP portal are read-only)",
                            request.dataset
                        ),
                    })
                }
                // A harvested dataset (`{peer}:{id}`) is negotiated with its origin node.
                Some(origin) => {
                    let provider = format!("{}/dsp", origin.url);
                    let request = NegotiationRequest {
                        dataset: origin.iri,
                        ..request
                    };
                    self.negotiate_remotely(principal, request, &provider)
                }
                None => self.negotiate_locally(principal, request),
            },
            Some(provider) => self.negotiate_remotely(principal, request, &provider),
        }
    }

    fn negotiate_locally(
        self: &Arc<Self>,
        principal: &Principal,
        request: NegotiationRequest,
    ) -> Result<NegotiationRecord> {
        let dataset = self.visible_dataset_id(principal, &request.dataset)?;
        let offered = self.offered_dataset(&dataset)?.ok_or_else(|| ContractError::NotFound {
            what: format!("dataset {dataset} (it is offered under no policy, so there is nothing to negotiate)"),
        })?;
        let offer = match &request.offer {
            None => offered.offers[0].1.clone(),
            Some(Json::String(id)) => offered
                .offers
                .iter()
                .find(|(_, json)| json["@id"] == *id)
                .map(|(_, json)| json.clone())
                .ok_or_else(|| {
                    ContractError::BadMessage(format!(
                        "dataset {dataset} has no offer {id}; its offers: {}",
                        offered
                            .offers
                            .iter()
                            .map(|(_, j)| j["@id"].as_str().unwrap_or_default().to_owned())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
            Some(object @ Json::Object(_)) => object.clone(),
            Some(_) => {
                return Err(ContractError::BadMessage(
                    "`offer` is an offer id or an ODRL Offer object".into(),
                ));
            }
        };
        let now = self.now_text();
        let id = new_pid();
        let mut record = NegotiationRecord {
            id: id.clone(),
            side: Side::Provider,
            provider_pid: Some(id.clone()),
            consumer_pid: Some(new_pid()),
            state: NegotiationState::Requested,
            participant: Some(principal.subject.clone()),
            counterparty_url: None,
            dataset,
            dataset_iri: Some(offered.summary.iri.clone()),
            offer: offer.clone(),
            requested: offer,
            purpose: request.purpose.clone(),
            claims: principal.claims(),
            requester: Some(principal.subject.clone()),
            agreement: None,
            waiting: None,
            refusal: None,
            counter_offers: 1,
            created: now.clone(),
            updated: now,
        };
        {
            let _guard = self.store.lock();
            self.save_negotiation(
                &mut record,
                "received",
                None,
                format!(
                    "{} asked for access{}",
                    principal.subject,
                    request
                        .purpose
                        .as_deref()
                        .map(|p| format!(" for {p}"))
                        .unwrap_or_default()
                ),
            )?;
        }
        self.act_as_provider(&id, false)?;
        self.negotiation(&id)
    }

    fn negotiate_remotely(
        self: &Arc<Self>,
        principal: &Principal,
        request: NegotiationRequest,
        provider: &str,
    ) -> Result<NegotiationRecord> {
        let provider = provider.trim_end_matches('/').to_owned();
        self.options.addresses.check(&provider)?;
        let claims = self.forwarded_claims(principal, request.purpose.as_deref());
        let audience = self.provider_id(&provider);
        let offer = match request.offer.clone() {
            Some(object @ Json::Object(_)) => object,
            other => {
                let token = self.node_token(&audience, &claims)?;
                let url = format!("{provider}/catalog/datasets/{}", encode(&request.dataset));
                let answer = outbound::call(&url, &token, None)?;
                let dataset = match answer.body {
                    Some(body) if answer.status == 200 => body,
                    body => {
                        return Err(ContractError::Unreachable {
                            url,
                            message: format!(
                                "answered {}{}",
                                answer.status,
                                body.map(|b| format!(": {b}")).unwrap_or_default()
                            ),
                        });
                    }
                };
                let offers: Vec<Json> = match dataset.get("hasPolicy") {
                    Some(Json::Array(items)) => items.clone(),
                    Some(one) => vec![one.clone()],
                    None => Vec::new(),
                };
                let wanted = other.as_ref().and_then(Json::as_str);
                let mut chosen = offers
                    .into_iter()
                    .find(|o| wanted.is_none_or(|w| o.get("@id").and_then(Json::as_str) == Some(w)))
                    .ok_or_else(|| ContractError::NotFound {
                        what: "offer at the provider".into(),
                    })?;
                if let (Json::Object(fields), Some(target)) = (&mut chosen, dataset.get("@id")) {
                    fields.insert("target".into(), target.clone());
                }
                chosen
            }
        };
        let now = self.now_text();
        let id = new_pid();
        let mut record = NegotiationRecord {
            id: id.clone(),
            side: Side::Consumer,
            provider_pid: None,
            consumer_pid: Some(id.clone()),
            state: NegotiationState::Requested,
            participant: None,
            counterparty_url: Some(provider.clone()),
            dataset: request.dataset.clone(),
            dataset_iri: offer
                .get("target")
                .and_then(Json::as_str)
                .map(str::to_owned),
            offer: offer.clone(),
            requested: offer.clone(),
            purpose: request.purpose.clone(),
            claims: Map::new(),
            requester: Some(principal.subject.clone()),
            agreement: None,
            waiting: None,
            refusal: None,
            counter_offers: 0,
            created: now.clone(),
            updated: now,
        };
        let message = Message::ContractRequest {
            consumer_pid: id.clone(),
            provider_pid: None,
            offer,
            callback: Some(self.dsp_url()),
        };
        {
            let _guard = self.store.lock();
            self.save_negotiation(
                &mut record,
                "sent",
                Some("ContractRequestMessage"),
                format!("asked {provider} for dataset {}", request.dataset),
            )?;
            let token = self.node_token(&audience, &claims)?;
            let url = format!("{provider}/negotiations/request");
            let answer = outbound::call(&url, &token, Some(&message.to_json()))?;
            let provider_pid = answer
                .body
                .as_ref()
                .and_then(|b| b.get("providerPid"))
                .and_then(Json::as_str)
                .map(str::to_owned);
            match (answer.status, provider_pid) {
                (200 | 201, Some(pid)) => {
                    record.provider_pid = Some(pid);
                    self.store.put(Kind::Negotiation, &id, &record, &[], None)?;
                }
                (status, _) => {
                    record.state = NegotiationState::Terminated;
                    let said = answer.body.map(|b| b.to_string()).unwrap_or_default();
                    record.refusal = Some(Refusal {
                        by: "provider".into(),
                        reason: format!("the provider answered {status}: {said}"),
                        failed_constraints: Vec::new(),
                    });
                    self.save_negotiation(
                        &mut record,
                        "received",
                        None,
                        format!("the provider refused the request ({status})"),
                    )?;
                    return Ok(record);
                }
            }
        }
        let done = |r: &NegotiationRecord| r.state.is_final() || r.waiting.is_some();
        // A provider that decides on its own answers within a moment; one that waits for a
        // person says why when asked.
        let first = self.wait_for(&id, done, Duration::from_secs(2).min(self.options.wait))?;
        if done(&first) || first.provider_pid.is_none() {
            return Ok(first);
        }
        let url = format!(
            "{provider}/negotiations/{}",
            encode(first.provider_pid.as_deref().unwrap_or_default())
        );
        let said = self
            .node_token(&audience, &claims)
            .and_then(|token| outbound::call(&url, &token, None))
            .ok()
            .and_then(|answer| answer.body)
            .and_then(|body| {
                body.get(WAITING_IRI)
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            });
        if let Some(said) = said {
            let _guard = self.store.lock();
            let mut record = self.negotiation(&id)?;
            if !record.state.is_final() && record.waiting.is_none() {
                record.waiting = Some(format!("the provider says: {said}"));
                self.save_negotiation(
                    &mut record,
                    "received",
                    None,
                    format!("the provider waits: {said}"),
                )?;
            }
            return Ok(record);
        }
        self.wait_for(&id, done, self.options.wait)
    }

    /// Polls a negotiation until `done` or `wait` runs out.
    fn wait_for(
        &self,
        id: &str,
        done: impl Fn(&NegotiationRecord) -> bool,
        wait: Duration,
    ) -> Result<NegotiationRecord> {
        let deadline = Instant::now() + wait;
        loop {
            let record = self.negotiation(id)?;
            if done(&record) || Instant::now() >= deadline {
                return Ok(record);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn forwarded_claims(&self, principal: &Principal, purpose: Option<&str>) -> Map<String, Json> {
        let mut claims = Map::new();
        for key in ["country", "org_type"] {
            if let Some(value) = principal.attributes.get(key) {
                claims.insert(key.into(), value.clone());
            }
        }
        if let Some(purpose) = purpose.and_then(|p| expand_purpose(p).ok()) {
            claims.insert("purpose".into(), json!(purpose.as_str()));
        }
        claims.insert("on_behalf_of".into(), json!(principal.subject));
        claims
    }

    /// The participant id of the node at a DSP base URL: what its version document says,
    /// else the URL itself.
    fn provider_id(&self, provider: &str) -> String {
        let origin = provider.strip_suffix("/dsp").unwrap_or(provider);
        let url = format!("{origin}/.well-known/dspace-version");
        outbound::call(&url, "none", None)
            .ok()
            .and_then(|a| a.body)
            .and_then(|b| {
                b.get("participantId")
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| provider.to_owned())
    }

    /// A negotiation as its participants and the dataset's holder see it.
    pub fn negotiation_view(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<(NegotiationRecord, Option<AgreementRecord>)> {
        let record = self.negotiation_for(principal, id)?;
        let agreement = match (&record.agreement, record.state) {
            (Some(agreement), NegotiationState::Finalized) => Some(self.agreement(agreement)?),
            _ => None,
        };
        Ok((record, agreement))
    }

    /// The event log of a negotiation.
    pub fn negotiation_events(&self, principal: &Principal, id: &str) -> Result<Vec<Event>> {
        self.negotiation_for(principal, id)?;
        self.store.events(Kind::Negotiation, id)
    }

    /// The negotiations waiting for `principal`'s decision as holder of their dataset, oldest
    /// first: the holder's inbox of permits in the web UI.
    pub fn pending_approvals(&self, principal: &Principal) -> Result<Vec<NegotiationRecord>> {
        let mut records: Vec<NegotiationRecord> = self
            .store
            .all::<NegotiationRecord>(Kind::Negotiation)?
            .into_iter()
            .filter(|r| {
                r.side == Side::Provider
                    && r.waiting.is_some()
                    && !r.state.is_final()
                    && self.is_holder(principal, &r.dataset)
            })
            .collect();
        records.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(records)
    }

    /// The holder approves (`true`) or rejects a negotiation that waits for them.
    pub fn decide_approval(
        self: &Arc<Self>,
        principal: &Principal,
        id: &str,
        approve: bool,
        note: Option<String>,
    ) -> Result<NegotiationRecord> {
        {
            let _guard = self.store.lock();
            let mut record = self.negotiation_for(principal, id)?;
            if record.side != Side::Provider || !self.is_holder(principal, &record.dataset) {
                return Err(ContractError::Forbidden(
                    "only the holder of the dataset approves or rejects its negotiations".into(),
                ));
            }
            if record.waiting.is_none() || record.state.is_final() {
                return Err(ContractError::Conflict(format!(
                    "the negotiation is {} and waits for no approval",
                    record.state
                )));
            }
            if approve {
                self.save_negotiation(
                    &mut record,
                    "node",
                    None,
                    format!(
                        "approved by the data holder {}{}",
                        principal.subject,
                        note.as_deref()
                            .map(|n| format!(": {n}"))
                            .unwrap_or_default()
                    ),
                )?;
            } else {
                record.state = record
                    .state
                    .after(NegotiationStep::Terminate, Side::Provider)?;
                record.waiting = None;
                let reason = format!(
                    "the data holder rejected the request{}",
                    note.as_deref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default()
                );
                record.refusal = Some(Refusal {
                    by: "provider".into(),
                    reason: reason.clone(),
                    failed_constraints: Vec::new(),
                });
                let remote = record.counterparty_url.is_some();
                self.save_negotiation(
                    &mut record,
                    if remote { "sent" } else { "node" },
                    remote.then_some("ContractNegotiationTerminationMessage"),
                    reason.clone(),
                )?;
                self.send_to_consumer(
                    &record,
                    "termination",
                    &Message::NegotiationTermination {
                        provider_pid: record.id.clone(),
                        consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
                        reason: Reason::said("rejected", reason),
                    },
                );
                return Ok(record);
            }
        }
        self.act_as_provider(id, true)?;
        self.negotiation(id)
    }

    /// A person ends their own negotiation.
    pub fn terminate_negotiation(
        self: &Arc<Self>,
        principal: &Principal,
        id: &str,
        note: Option<String>,
    ) -> Result<NegotiationRecord> {
        let _guard = self.store.lock();
        let mut record = self.negotiation_for(principal, id)?;
        let is_requester = record.requester.as_deref() == Some(principal.subject.as_str());
        let is_holder = record.side == Side::Provider && self.is_holder(principal, &record.dataset);
        if !is_requester && !is_holder {
            return Err(ContractError::Forbidden(
                "a negotiation is ended here by the person who asked or by the dataset's holder"
                    .into(),
            ));
        }
        match record.side {
            Side::Consumer => {
                let why = note.unwrap_or_else(|| "the requester withdrew".into());
                self.consumer_terminate(&mut record, &why)?;
            }
            Side::Provider if is_holder && !is_requester => {
                let why = note.unwrap_or_else(|| "the data holder ended the negotiation".into());
                record.state = record
                    .state
                    .after(NegotiationStep::Terminate, Side::Provider)?;
                record.waiting = None;
                record.refusal = Some(Refusal {
                    by: "provider".into(),
                    reason: why.clone(),
                    failed_constraints: Vec::new(),
                });
                let remote = record.counterparty_url.is_some();
                self.save_negotiation(
                    &mut record,
                    if remote { "sent" } else { "node" },
                    remote.then_some("ContractNegotiationTerminationMessage"),
                    format!("terminated by the data holder: {why}"),
                )?;
                self.send_to_consumer(
                    &record,
                    "termination",
                    &Message::NegotiationTermination {
                        provider_pid: record.id.clone(),
                        consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
                        reason: Reason::said("holder", why),
                    },
                );
            }
            Side::Provider => {
                let why = note.unwrap_or_else(|| "the requester withdrew".into());
                record.state = record
                    .state
                    .after(NegotiationStep::Terminate, Side::Consumer)?;
                record.waiting = None;
                record.refusal = Some(Refusal {
                    by: "consumer".into(),
                    reason: why.clone(),
                    failed_constraints: Vec::new(),
                });
                self.save_negotiation(&mut record, "node", None, format!("terminated: {why}"))?;
            }
        }
        Ok(record)
    }

    /// An agreement, for its parties and the dataset's holder.
    pub fn agreement_view(&self, principal: &Principal, id: &str) -> Result<AgreementRecord> {
        let agreement = self.agreement(id)?;
        let subject = principal.subject.as_str();
        let allowed = agreement.assignee == subject
            || agreement.requester.as_deref() == Some(subject)
            || (agreement.side == Side::Provider && self.is_holder(principal, &agreement.dataset));
        if allowed {
            Ok(agreement)
        } else {
            Err(ContractError::NotFound {
                what: "agreement".into(),
            })
        }
    }

    // ---------------------------------------------------------------- transfers, provider side

    /// Re-evaluates an agreement now: `Err` with the reason when it no longer permits use.
    fn still_permitted(&self, agreement: &AgreementRecord) -> std::result::Result<(), String> {
        let usage = self
            .participant_usage(agreement)
            .map_err(|e| e.to_string())?;
        self.agreed_plan(agreement, usage).map(|_| ())
    }

    /// Evaluates an agreement now, with `usage` counted so far: the enforcement plan it
    /// grants, or why it no longer permits use. An agreement this node did not conclude
    /// (consumer side) has no plan here.
    fn agreed_plan(
        &self,
        agreement: &AgreementRecord,
        usage: Usage,
    ) -> std::result::Result<Option<policy::EnforcementPlan>, String> {
        let Some(odrl) = &agreement.odrl else {
            return Ok(None);
        };
        let policy = self.agreed_policies.get(&agreement.id, odrl)?;
        let purpose = agreement
            .purpose
            .as_deref()
            .and_then(|p| expand_purpose(p).ok());
        let mut request = Request::from_claims(agreement.claims.clone(), purpose);
        if let Ok(target) = NamedNode::new(&agreement.target) {
            request = request.with_target(target);
        }
        request.usage = usage;
        request.usage.agreed_at = DateTime::parse_from_rfc3339(&agreement.timestamp)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        let decision = self.evaluator.evaluate(&policy, &request);
        if decision.is_permitted() {
            Ok(decision.plan)
        } else {
            Err(refusal_of(&decision).reason)
        }
    }

    fn data_address(&self, transfer: &TransferRecord) -> Result<Json> {
        let token = self.data_token(transfer)?;
        Ok(json!({
            "@type": "DataAddress",
            "endpointType": HTTP_ENDPOINT_TYPE,
            "endpoint": format!("{}/data/{}", self.options.public_url, encode(&transfer.agreement)),
            "endpointProperties": [
                {"@type": "EndpointProperty", "name": "authorization", "value": token},
                {"@type": "EndpointProperty", "name": "authType", "value": "bearer"},
                {"@type": "EndpointProperty", "name": "expiresIn", "value": self.options.data_token_lifetime.as_secs().to_string()},
                {"@type": "EndpointProperty", "name": "refreshEndpoint", "value": format!("{}/api/transfers/{}/token", self.options.public_url, encode(&transfer.id))},
            ]
        }))
    }

    /// A data-plane token bound to the transfer's agreement: `sub` the consumer, `aud` this
    /// node, `agreement` and `transfer` claims, `token_use` `data-plane` so that it opens
    /// nothing but the data plane.
    fn data_token(&self, transfer: &TransferRecord) -> Result<String> {
        let agreement = self.agreement(&transfer.agreement)?;
        self.audit
            .append(Record {
                event: "token-issued".into(),
                who: transfer.participant.clone().unwrap_or_default(),
                agreement: transfer.agreement.clone(),
                dataset: agreement.dataset,
                part: Some(transfer.id.clone()),
                ..Record::default()
            })
            .map_err(|e| ContractError::Internal(e.to_string()))?;
        let mut claims = Map::new();
        claims.insert("agreement".into(), json!(transfer.agreement));
        claims.insert("transfer".into(), json!(transfer.id));
        claims.insert("token_use".into(), json!("data-plane"));
        let request = TokenRequest {
            subject: transfer.participant.clone().unwrap_or_default(),
            roles: Vec::new(),
            claims,
            lifetime: self.options.data_token_lifetime,
        };
        self.issuer
            .issue(&request, &self.options.node_id, self.now())
            .map_err(|e| ContractError::Internal(e.to_string()))
    }

    /// `POST /dsp/transfers/request`.
    pub fn dsp_transfer_request(
        self: &Arc<Self>,
        principal: &Principal,
        message: Message,
    ) -> Result<Json> {
        let Message::TransferRequest {
            consumer_pid,
            agreement_id,
            format,
            callback,
            ..
        } = message
        else {
            return Err(ContractError::BadMessage(
                "a transfer starts with a TransferRequestMessage".into(),
            ));
        };
        self.options.addresses.check(&callback)?;
        let agreement = self.agreement(&agreement_id)?;
        if agreement.side != Side::Provider || agreement.assignee != principal.subject {
            return Err(ContractError::NotFound {
                what: "agreement".into(),
            });
        }
        if format != PULL_FORMAT {
            return Err(ContractError::BadMessage(format!(
                "the node offers the transfer type {PULL_FORMAT}, not `{format}`"
            )));
        }
        let _guard = self.store.lock();
        if self
            .store
            .find(
                Kind::Transfer,
                &format!("{}|{consumer_pid}", principal.subject),
            )?
            .is_some()
        {
            return Err(ContractError::Conflict(format!(
                "a transfer with consumerPid {consumer_pid} already exists; use a new consumerPid"
            )));
        }
        let now = self.now_text();
        let id = new_pid();
        let mut record = TransferRecord {
            id: id.clone(),
            side: Side::Provider,
            provider_pid: Some(id.clone()),
            consumer_pid: Some(consumer_pid),
            state: TransferState::Requested,
            agreement: agreement.id.clone(),
            participant: Some(principal.subject.clone()),
            counterparty_url: Some(callback),
            format,
            requester: None,
            data_address: None,
            reason: None,
            created: now.clone(),
            updated: now,
        };
        self.save_transfer(
            &mut record,
            "received",
            Some("TransferRequestMessage"),
            format!(
                "the consumer asked for a transfer under agreement {}",
                agreement.id
            ),
        )?;
        let contracts = self.clone();
        let transfer = id.clone();
        self.outbox.submit(Box::new(move || {
            if let Err(error) = contracts.start_as_provider(&transfer) {
                tracing::error!(%error, %transfer, "transfer start failed");
            }
        }));
        Ok(messages::transfer_json(
            &id,
            record.consumer_pid.as_deref().unwrap_or_default(),
            record.state,
        ))
    }

    /// Re-evaluates the agreement and starts the transfer (or terminates it, saying why). A
    /// transfer with a remote consumer is STARTED once the consumer acknowledged the
    /// `TransferStartMessage` (the consumer never reacts to it on its own, so nothing races).
    fn start_as_provider(self: &Arc<Self>, id: &str) -> Result<()> {
        let guard = self.store.lock();
        let mut record = self.transfer(id)?;
        if record.state != TransferState::Requested {
            return Ok(());
        }
        let agreement = self.agreement(&record.agreement)?;
        let verdict = if self.catalog.record(&agreement.dataset)?.is_none() {
            Err(format!("dataset {} was withdrawn", agreement.dataset))
        } else {
            self.still_permitted(&agreement)
        };
        if let Err(why) = verdict {
            record.state = record
                .state
                .after(TransferStep::Terminate, Side::Provider)?;
            record.reason = Some(why.clone());
            let local = record.counterparty_url.is_none();
            self.save_transfer(
                &mut record,
                if local { "node" } else { "sent" },
                (!local).then_some("TransferTerminationMessage"),
                format!("refused at transfer start: {why}"),
            )?;
            self.send_transfer(
                &record,
                "termination",
                &Message::TransferTermination {
                    provider_pid: record.id.clone(),
                    consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
                    reason: Reason::said("policy", why),
                },
            );
            return Ok(());
        }
        let next = record.state.after(TransferStep::Start, Side::Provider)?;
        let Some(base) = record.counterparty_url.clone() else {
            record.state = next;
            return self.save_transfer(
                &mut record,
                "node",
                None,
                "started: the data-plane endpoint and a token bound to the agreement were issued",
            );
        };
        let address = self.data_address(&record)?;
        drop(guard);
        let message = Message::TransferStart {
            provider_pid: record.id.clone(),
            consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
            data_address: Some(address),
        };
        let url = format!(
            "{}/transfers/{}/start",
            base.trim_end_matches('/'),
            encode(record.consumer_pid.as_deref().unwrap_or_default())
        );
        let outcome = self
            .node_token(record.participant.as_deref().unwrap_or(&url), &Map::new())
            .and_then(|token| outbound::call(&url, &token, Some(&message.to_json())));
        let _guard = self.store.lock();
        let mut record = self.transfer(id)?;
        match outcome {
            Ok(answer) if (200..300).contains(&answer.status) => {
                if record.state == TransferState::Requested {
                    record.state = next;
                    self.save_transfer(
                        &mut record,
                        "sent",
                        Some("TransferStartMessage"),
                        "started: the consumer acknowledged the data-plane endpoint and its token",
                    )?;
                }
            }
            Ok(answer) => {
                let state = record.state.to_string();
                let event = self.event(
                    Kind::Transfer,
                    id,
                    &state,
                    "node",
                    Some("TransferStartMessage"),
                    format!(
                        "the consumer refused the start message ({}); the transfer stays {state}",
                        answer.status
                    ),
                )?;
                self.store
                    .put(Kind::Transfer, id, &record, &[], Some(&event))?;
            }
            Err(error) => {
                let state = record.state.to_string();
                let event = self.event(
                    Kind::Transfer,
                    id,
                    &state,
                    "node",
                    Some("TransferStartMessage"),
                    format!("the start message was not delivered: {error}"),
                )?;
                self.store
                    .put(Kind::Transfer, id, &record, &[], Some(&event))?;
            }
        }
        Ok(())
    }

    fn send_transfer(self: &Arc<Self>, record: &TransferRecord, path: &str, message: &Message) {
        let Some(base) = &record.counterparty_url else {
            return;
        };
        let other_pid = match record.side {
            Side::Provider => record.consumer_pid.clone(),
            Side::Consumer => record.provider_pid.clone(),
        };
        let Some(other_pid) = other_pid else { return };
        let url = format!(
            "{}/transfers/{}/{path}",
            base.trim_end_matches('/'),
            encode(&other_pid)
        );
        self.deliver(
            Kind::Transfer,
            record.id.clone(),
            record.participant.clone(),
            url,
            message.to_json(),
        );
    }

    /// A message about an existing transfer process, on either side.
    pub fn dsp_transfer_message(
        self: &Arc<Self>,
        principal: &Principal,
        pid: &str,
        message: Message,
    ) -> Result<()> {
        let _guard = self.store.lock();
        let mut record = self.transfer(pid)?;
        let (given_provider, given_consumer) = match &message {
            Message::TransferStart {
                provider_pid,
                consumer_pid,
                ..
            }
            | Message::TransferCompletion {
                provider_pid,
                consumer_pid,
            }
            | Message::TransferSuspension {
                provider_pid,
                consumer_pid,
                ..
            }
            | Message::TransferTermination {
                provider_pid,
                consumer_pid,
                ..
            } => (provider_pid.clone(), consumer_pid.clone()),
            _ => {
                return Err(ContractError::BadMessage(format!(
                    "a {} does not belong to a transfer process",
                    message.type_name()
                )));
            }
        };
        Self::admit(
            principal,
            record.side,
            &record.id,
            Counterparty {
                participant: &mut record.participant,
                provider_pid: &mut record.provider_pid,
                consumer_pid: record.consumer_pid.as_deref(),
            },
            &given_provider,
            &given_consumer,
        )?;
        let sender = record.side.other();
        let type_name = message.type_name();
        let (step, detail, data_address) = match message {
            Message::TransferStart { data_address, .. } => (
                TransferStep::Start,
                format!("the {} started the transfer", sender.as_str()),
                data_address,
            ),
            Message::TransferCompletion { .. } => (
                TransferStep::Complete,
                format!("the {} completed the transfer", sender.as_str()),
                None,
            ),
            Message::TransferSuspension { reason, .. } => (
                TransferStep::Suspend,
                format!(
                    "the {} suspended the transfer: {}",
                    sender.as_str(),
                    reason.summary()
                ),
                None,
            ),
            Message::TransferTermination { reason, .. } => (
                TransferStep::Terminate,
                format!(
                    "the {} terminated the transfer: {}",
                    sender.as_str(),
                    reason.summary()
                ),
                None,
            ),
            _ => return Ok(()),
        };
        let next = record.state.after(step, sender)?;
        if step == TransferStep::Start && record.side == Side::Provider {
            // A consumer resumes: the agreement must still permit it.
            let agreement = self.agreement(&record.agreement)?;
            if let Err(why) = self.still_permitted(&agreement) {
                return Err(ContractError::Forbidden(format!(
                    "the transfer cannot resume: {why}"
                )));
            }
        }
        record.state = next;
        if let Some(address) = data_address {
            record.data_address = Some(address);
        }
        if matches!(step, TransferStep::Suspend | TransferStep::Terminate) {
            record.reason = Some(detail.clone());
        }
        self.save_transfer(&mut record, "received", Some(type_name), detail)?;
        Ok(())
    }

    /// `GET /dsp/transfers/{pid}`.
    pub fn dsp_transfer(&self, principal: &Principal, pid: &str) -> Result<Json> {
        let record = self.transfer(pid)?;
        if !self.may_see_transfer(principal, &record) {
            return Err(ContractError::NotFound {
                what: "transfer process".into(),
            });
        }
        Ok(messages::transfer_json(
            record.provider_pid.as_deref().unwrap_or_default(),
            record.consumer_pid.as_deref().unwrap_or_default(),
            record.state,
        ))
    }

    /// Whether `principal` is the party the transfer runs for: its local requester or the
    /// remote participant. Only they hold its data-plane token (the EDR).
    fn runs_transfer_for(principal: &Principal, record: &TransferRecord) -> bool {
        let subject = Some(principal.subject.as_str());
        record.participant.as_deref() == subject || record.requester.as_deref() == subject
    }

    fn may_see_transfer(&self, principal: &Principal, record: &TransferRecord) -> bool {
        Self::runs_transfer_for(principal, record) || {
            record.side == Side::Provider
                && self
                    .agreement(&record.agreement)
                    .is_ok_and(|a| self.is_holder(principal, &a.dataset))
        }
    }

    // ---------------------------------------------------------------- transfers, convenience

    /// Starts a transfer under an agreement for a person: on this node for a local agreement,
    /// over DSP with the provider otherwise. Answers the record, with the data address once
    /// started.
    pub fn start_transfer(
        self: &Arc<Self>,
        principal: &Principal,
        agreement_id: &str,
    ) -> Result<TransferRecord> {
        let agreement = self.agreement_view(principal, agreement_id)?;
        if agreement.assignee != principal.subject
            && agreement.requester.as_deref() != Some(principal.subject.as_str())
        {
            return Err(ContractError::NotFound {
                what: "agreement".into(),
            });
        }
        let now = self.now_text();
        let id = new_pid();
        match agreement.side {
            Side::Provider => {
                let mut record = TransferRecord {
                    id: id.clone(),
                    side: Side::Provider,
                    provider_pid: Some(id.clone()),
                    consumer_pid: Some(new_pid()),
                    state: TransferState::Requested,
                    agreement: agreement.id.clone(),
                    participant: Some(principal.subject.clone()),
                    counterparty_url: None,
                    format: PULL_FORMAT.into(),
                    requester: Some(principal.subject.clone()),
                    data_address: None,
                    reason: None,
                    created: now.clone(),
                    updated: now,
                };
                {
                    let _guard = self.store.lock();
                    self.save_transfer(
                        &mut record,
                        "received",
                        None,
                        format!("{} asked for a transfer", principal.subject),
                    )?;
                }
                self.start_as_provider(&id)?;
                let mut record = self.transfer(&id)?;
                if record.state == TransferState::Started {
                    record.data_address = Some(self.data_address(&record)?);
                }
                Ok(record)
            }
            Side::Consumer => {
                let provider = agreement.provider_url.clone().ok_or_else(|| {
                    ContractError::Internal("agreement without provider address".into())
                })?;
                let mut record = TransferRecord {
                    id: id.clone(),
                    side: Side::Consumer,
                    provider_pid: None,
                    consumer_pid: Some(id.clone()),
                    state: TransferState::Requested,
                    agreement: agreement.id.clone(),
                    participant: None,
                    counterparty_url: Some(provider.clone()),
                    format: PULL_FORMAT.into(),
                    requester: Some(principal.subject.clone()),
                    data_address: None,
                    reason: None,
                    created: now.clone(),
                    updated: now,
                };
                let message = Message::TransferRequest {
                    consumer_pid: id.clone(),
                    agreement_id: agreement.id.clone(),
                    format: PULL_FORMAT.into(),
                    data_address: None,
                    callback: self.dsp_url(),
                };
                {
                    let _guard = self.store.lock();
                    self.save_transfer(
                        &mut record,
                        "sent",
                        Some("TransferRequestMessage"),
                        format!("asked {provider} for a transfer"),
                    )?;
                    let token = self.node_token(&self.provider_id(&provider), &Map::new())?;
                    let answer = outbound::call(
                        &format!("{provider}/transfers/request"),
                        &token,
                        Some(&message.to_json()),
                    )?;
                    match answer
                        .body
                        .as_ref()
                        .and_then(|b| b.get("providerPid"))
                        .and_then(Json::as_str)
                    {
                        Some(pid) if answer.status < 300 => {
                            record.provider_pid = Some(pid.to_owned());
                            self.store.put(Kind::Transfer, &id, &record, &[], None)?;
                        }
                        _ => {
                            record.state = TransferState::Terminated;
                            record.reason = Some(format!(
                                "the provider answered {}: {}",
                                answer.status,
                                answer.body.map(|b| b.to_string()).unwrap_or_default()
                            ));
                            self.save_transfer(
                                &mut record,
                                "received",
                                None,
                                "the provider refused the transfer",
                            )?;
                            return Ok(record);
                        }
                    }
                }
                let deadline = Instant::now() + self.options.wait;
                loop {
                    let record = self.transfer(&id)?;
                    if record.state != TransferState::Requested || Instant::now() >= deadline {
                        return Ok(record);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// A transfer as its participants and the dataset's holder see it, with its events. The
    /// holder sees its state and history but not its data address: the data-plane token in it
    /// is the consumer's credential (matrix R19), and with it the holder could pull as them.
    pub fn transfer_view(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<(TransferRecord, Vec<Event>)> {
        let mut record = self.transfer(id)?;
        if !self.may_see_transfer(principal, &record) {
            return Err(ContractError::NotFound {
                what: "transfer process".into(),
            });
        }
        if !Self::runs_transfer_for(principal, &record) {
            record.data_address = None;
        }
        Ok((record, self.store.events(Kind::Transfer, id)?))
    }

    /// A party (a local requester, or the holder on the provider side) suspends, resumes,
    /// completes or terminates a transfer; the counter-party is told.
    pub fn transfer_action(
        self: &Arc<Self>,
        principal: &Principal,
        id: &str,
        step: TransferStep,
        note: Option<String>,
    ) -> Result<TransferRecord> {
        let _guard = self.store.lock();
        let mut record = self.transfer(id)?;
        if !self.may_see_transfer(principal, &record) {
            return Err(ContractError::NotFound {
                what: "transfer process".into(),
            });
        }
        let side = record.side;
        record.state = record.state.after(step, side)?;
        let note = note.unwrap_or_else(|| format!("by {}", principal.subject));
        let (path, message) = match step {
            TransferStep::Start => {
                if side == Side::Provider {
                    let agreement = self.agreement(&record.agreement)?;
                    if let Err(why) = self.still_permitted(&agreement) {
                        return Err(ContractError::Forbidden(format!(
                            "the transfer cannot resume: {why}"
                        )));
                    }
                }
                (
                    "start",
                    Message::TransferStart {
                        provider_pid: record.provider_pid.clone().unwrap_or_default(),
                        consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
                        data_address: match side {
                            Side::Provider => Some(self.data_address(&record)?),
                            Side::Consumer => None,
                        },
                    },
                )
            }
            TransferStep::Complete => (
                "completion",
                Message::TransferCompletion {
                    provider_pid: record.provider_pid.clone().unwrap_or_default(),
                    consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
                },
            ),
            TransferStep::Suspend => (
                "suspension",
                Message::TransferSuspension {
                    provider_pid: record.provider_pid.clone().unwrap_or_default(),
                    consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
                    reason: Reason::said(side.as_str(), note.clone()),
                },
            ),
            TransferStep::Terminate => (
                "termination",
                Message::TransferTermination {
                    provider_pid: record.provider_pid.clone().unwrap_or_default(),
                    consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
                    reason: Reason::said(side.as_str(), note.clone()),
                },
            ),
            TransferStep::Request => {
                return Err(ContractError::BadMessage(
                    "a transfer is requested with POST /api/transfers".into(),
                ));
            }
        };
        if matches!(step, TransferStep::Suspend | TransferStep::Terminate) {
            record.reason = Some(note.clone());
        }
        let local = record.counterparty_url.is_none();
        self.save_transfer(
            &mut record,
            if local { "node" } else { "sent" },
            (!local).then_some(message.type_name()),
            format!("{}: {note}", step.message()),
        )?;
        self.send_transfer(&record, path, &message);
        if !Self::runs_transfer_for(principal, &record) {
            // The holder acted on it; the data address stays the consumer's (see transfer_view).
            record.data_address = None;
        }
        Ok(record)
    }

    /// A fresh data-plane token for a started transfer, after re-evaluating its agreement: for
    /// the party it runs for only. The dataset's holder, who may see the transfer, gets the
    /// missing transfer's answer (matrix R19): a token would let them pull as the consumer.
    pub fn refresh_token(&self, principal: &Principal, id: &str) -> Result<Json> {
        let record = self.transfer(id)?;
        if !Self::runs_transfer_for(principal, &record) || record.side != Side::Provider {
            return Err(ContractError::NotFound {
                what: "transfer process".into(),
            });
        }
        if record.state != TransferState::Started {
            return Err(ContractError::Conflict(format!(
                "the transfer is {}; tokens are issued only while it is STARTED",
                record.state
            )));
        }
        let agreement = self.agreement(&record.agreement)?;
        self.still_permitted(&agreement)
            .map_err(|why| ContractError::Forbidden(format!("no new token: {why}")))?;
        Ok(json!({
            "token": self.data_token(&record)?,
            "expires_in": self.options.data_token_lifetime.as_secs(),
        }))
    }

    /// Ends every running transfer whose agreement no longer permits use (expiry), telling
    /// the consumer. Called periodically.
    pub fn end_expired_transfers(self: &Arc<Self>) -> Result<usize> {
        let now = self.now();
        let running: Vec<TransferRecord> = self
            .store
            .all::<TransferRecord>(Kind::Transfer)?
            .into_iter()
            .filter(|t| {
                t.side == Side::Provider
                    && matches!(t.state, TransferState::Started | TransferState::Suspended)
            })
            .collect();
        let mut ended = 0;
        for transfer in running {
            let Ok(agreement) = self.agreement(&transfer.agreement) else {
                continue;
            };
            let expired = agreement
                .expires
                .as_deref()
                .and_then(|e| DateTime::parse_from_rfc3339(e).ok())
                .is_some_and(|e| e.with_timezone(&Utc) < now);
            if !expired {
                continue;
            }
            let _guard = self.store.lock();
            let mut record = self.transfer(&transfer.id)?;
            if !matches!(
                record.state,
                TransferState::Started | TransferState::Suspended
            ) {
                continue;
            }
            let why = format!(
                "the agreement {} expired at {}",
                agreement.id,
                agreement.expires.as_deref().unwrap_or_default()
            );
            record.state = record
                .state
                .after(TransferStep::Terminate, Side::Provider)?;
            record.reason = Some(why.clone());
            let local = record.counterparty_url.is_none();
            self.save_transfer(
                &mut record,
                if local { "node" } else { "sent" },
                (!local).then_some("TransferTerminationMessage"),
                why.clone(),
            )?;
            self.send_transfer(
                &record,
                "termination",
                &Message::TransferTermination {
                    provider_pid: record.id.clone(),
                    consumer_pid: record.consumer_pid.clone().unwrap_or_default(),
                    reason: Reason::said("expired", why),
                },
            );
            ended += 1;
        }
        Ok(ended)
    }

    /// What a stream may receive now: the transfer named by the token must be STARTED, under
    /// `agreement`, for `subject`, and the agreement must still permit use with this pull
    /// counted (the policy's `count`). The pull is recorded, and what is left of the row budget
    /// reserved for it, before any data leaves, so that parallel streams cannot together
    /// exceed the budget; [`Contracts::settle`] gives back what the stream did not use. The
    /// answer is the agreement and the enforcement plan, its row budget the reservation.
    pub fn release(
        &self,
        subject: &str,
        agreement: &str,
        transfer: &str,
    ) -> Result<(AgreementRecord, policy::EnforcementPlan)> {
        self.authorise(subject, agreement, transfer, Access::Stream)
    }

    /// Like [`Contracts::release`] for cutting an agreement's shards: the pull is counted, and
    /// rows are charged when each shard is fetched.
    pub fn release_for_shards(
        &self,
        subject: &str,
        agreement: &str,
        transfer: &str,
    ) -> Result<(AgreementRecord, policy::EnforcementPlan)> {
        self.authorise(subject, agreement, transfer, Access::Cut)
    }

    /// Like [`Contracts::release`] for an aggregate: the pull is counted, no rows are charged
    /// (an aggregate releases cells, not rows).
    pub fn release_aggregate(
        &self,
        subject: &str,
        agreement: &str,
        transfer: &str,
    ) -> Result<(AgreementRecord, policy::EnforcementPlan)> {
        self.authorise(subject, agreement, transfer, Access::Cut)
    }

    /// The same checks without counting or reserving anything: for reading a shard plan or one
    /// shard of a set whose cutting was the counted pull.
    pub fn permit(
        &self,
        subject: &str,
        agreement: &str,
        transfer: &str,
    ) -> Result<(AgreementRecord, policy::EnforcementPlan)> {
        self.authorise(subject, agreement, transfer, Access::Read)
    }

    fn authorise(
        &self,
        subject: &str,
        agreement: &str,
        transfer: &str,
        access: Access,
    ) -> Result<(AgreementRecord, policy::EnforcementPlan)> {
        let not_found = || ContractError::NotFound {
            what: "agreement".into(),
        };
        let _guard = self.store.lock();
        let mut record = self.agreement(agreement)?;
        if record.side != Side::Provider
            || (record.assignee != subject && record.requester.as_deref() != Some(subject))
        {
            return Err(not_found());
        }
        let running = self.transfer(transfer)?;
        if running.agreement != agreement {
            return Err(not_found());
        }
        if running.state != TransferState::Started {
            return Err(ContractError::Forbidden(format!(
                "the transfer is {}; data flows only while it is STARTED",
                running.state
            )));
        }
        let used = self.participant_usage(&record)?;
        let mut plan = self
            .agreed_plan(&record, used)
            .map_err(ContractError::Forbidden)?
            .ok_or_else(|| {
                ContractError::Internal("an agreement of this node has no policy".into())
            })?;
        let mut change = UsageChange::default();
        if let Some(budget) = plan.row_budget {
            let left = budget.saturating_sub(used.rows_released);
            if left == 0 {
                return Err(ContractError::Forbidden(format!(
                    "the row budget of {budget} rows is used up (counted over all of \
                     {}'s agreements for this dataset)",
                    record.assignee
                )));
            }
            plan.row_budget = Some(left);
            if access == Access::Stream {
                change.rows = left;
            }
        }
        if let Some(budget) = plan.byte_budget
            && used.bytes_released >= budget
        {
            return Err(ContractError::Forbidden(format!(
                "the byte budget of {budget} bytes is used up (counted over all of {}'s \
                 agreements for this dataset)",
                record.assignee
            )));
        }
        if access != Access::Read {
            change.pulls = 1;
            self.add_usage(&mut record, change)?;
        }
        Ok((record, plan))
    }

    /// Adds what a shard fetch released to the agreement's usage.
    pub fn record_released(&self, agreement: &str, rows: u64, bytes: u64) -> Result<()> {
        self.settle(agreement, 0, rows, bytes)
    }

    /// Settles a stream: of the `reserved` rows it held, `rows` were sent (with `bytes`).
    pub fn settle(&self, agreement: &str, reserved: u64, rows: u64, bytes: u64) -> Result<()> {
        let _guard = self.store.lock();
        let mut record = self.agreement(agreement)?;
        self.add_usage(
            &mut record,
            UsageChange {
                given_back: reserved,
                rows,
                bytes,
                ..UsageChange::default()
            },
        )
    }
}

/// A change to usage counters, applied alike to an agreement's and to its participant's.
#[derive(Debug, Clone, Copy, Default)]
struct UsageChange {
    /// Pulls made.
    pulls: u64,
    /// Rows of an earlier reservation given back.
    given_back: u64,
    /// Rows released (or reserved).
    rows: u64,
    /// Bytes released.
    bytes: u64,
}

impl UsageChange {
    fn applied_to(self, usage: Usage) -> Usage {
        Usage {
            pulls: usage.pulls.saturating_add(self.pulls),
            rows_released: usage
                .rows_released
                .saturating_sub(self.given_back)
                .saturating_add(self.rows),
            bytes_released: usage.bytes_released.saturating_add(self.bytes),
            ..usage
        }
    }
}

/// What a data-plane request does to an agreement's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// A stream: counts a pull and reserves the rest of the row budget.
    Stream,
    /// Cutting shards or computing an aggregate: counts a pull.
    Cut,
    /// Reading a plan or a shard: neither.
    Read,
}

/// The IRI a purpose names: an IRI, `dpv:Name` (DPV) or `agora:AITraining` (the profile's).
fn expand_purpose(purpose: &str) -> Result<NamedNode> {
    let iri = if let Some(local) = purpose.strip_prefix("dpv:") {
        format!("{}{local}", policy::vocab::DPV)
    } else if let Some(local) = purpose.strip_prefix("agora:") {
        format!("{}{local}", policy::vocab::AGORA)
    } else {
        purpose.to_owned()
    };
    NamedNode::new(&iri).map_err(|_| {
        ContractError::BadMessage(format!(
            "the purpose `{}` is not an IRI; name a DPV purpose such as dpv:AcademicResearch",
            purpose.chars().take(100).collect::<String>()
        ))
    })
}

/// The dataset id inside one of this node's offer ids.
fn dataset_of_offer_id(offer: &str) -> Option<String> {
    let rest = offer.strip_prefix("urn:agora:offer:")?;
    let (dataset, _) = rest.rsplit_once(':')?;
    Some(dataset.to_owned())
}

/// The refusal a denial stands for: its reasons and the constraints that failed.
fn refusal_of(decision: &policy::Decision) -> Refusal {
    // A permission fails by the constraints that do not hold; a prohibition by the ones that
    // hold and so make it apply.
    let failed_constraints = decision
        .rules
        .iter()
        .flat_map(|r| {
            let prohibition = r.kind == policy::RuleKind::Prohibition;
            let counts = if prohibition { r.active } else { !r.active };
            r.constraints.iter().chain(&r.refinements).filter(move |c| {
                counts
                    && if prohibition {
                        c.state == Satisfaction::Satisfied
                    } else {
                        c.state != Satisfaction::Satisfied
                    }
            })
        })
        .map(policy::ConstraintReport::sentence)
        .collect();
    Refusal {
        by: "provider".into(),
        reason: if decision.reasons.is_empty() {
            "the policy does not permit this use".into()
        } else {
            decision.reasons.join("; ")
        },
        failed_constraints,
    }
}

/// Characters that cannot stand in a URL path segment as they are.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}
