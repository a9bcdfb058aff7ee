//! Where negotiations, agreements and transfer processes live: a private Oxigraph store of
//! their own (`data_dir/contracts`), never visible to SPARQL. Each record is one resource in the
//! graph `urn:agora:contracts` whose `agora:record` is the record as JSON, with its event log
//! as `agora:event` statements; every change of a record and the event that explains it are
//! written in one Oxigraph transaction, so a state and its log never disagree, and RocksDB's
//! write-ahead log makes an acknowledged change survive `kill -9`.

use super::{ContractError, Result};
use oxigraph::model::{GraphNameRef, Literal, NamedNode, NamedNodeRef, Quad, Term};
use oxigraph::store::Store;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

const GRAPH: &str = "urn:agora:contracts";
const RECORD: &str = "https://w3id.org/agora/ns#record";
const EVENT: &str = "https://w3id.org/agora/ns#event";
const KEY: &str = "https://w3id.org/agora/ns#lookupKey";
const COUNTERS: &str = "https://w3id.org/agora/ns#counters";

/// The kinds of record the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A contract negotiation, by this node's process id.
    Negotiation,
    /// An agreement, by its id.
    Agreement,
    /// A transfer process, by this node's process id.
    Transfer,
    /// A participant's usage of one dataset over all its agreements for it, by
    /// [`quota_id`]: counters only.
    Quota,
}

/// The id under which a participant's usage of a dataset is counted.
pub fn quota_id(participant: &str, dataset: &str) -> String {
    format!("{participant}\n{dataset}")
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Negotiation => "negotiation",
            Kind::Agreement => "agreement",
            Kind::Transfer => "transfer",
            Kind::Quota => "quota",
        }
    }
}

/// One line of a process's observable log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Event {
    /// Its position in the log, from 1.
    pub seq: u64,
    /// When (RFC 3339).
    pub at: String,
    /// The state after it.
    pub state: String,
    /// What happened, in words.
    pub detail: String,
    /// The DSP message received or sent, if one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `received`, `sent` or `node` (the node's own decision).
    pub by: String,
}

/// The contracts store. Writers serialise on one lock, so a read-check-write of a state
/// machine is atomic; readers do not wait.
pub struct ContractStore {
    store: Store,
    writer: Mutex<()>,
}

impl std::fmt::Debug for ContractStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContractStore").finish_non_exhaustive()
    }
}

fn subject(kind: Kind, id: &str) -> NamedNode {
    let digest = hex::encode(&Sha256::digest(id.as_bytes())[..16]);
    NamedNode::new_unchecked(format!("urn:agora:{}:{digest}", kind.as_str()))
}

fn graph() -> GraphNameRef<'static> {
    GraphNameRef::NamedNode(NamedNodeRef::new_unchecked(GRAPH))
}

impl ContractStore {
    /// Opens (or creates) the store under `data_dir/contracts`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Ok(Self {
            store: Store::open(data_dir.join("contracts")).map_err(internal)?,
            writer: Mutex::new(()),
        })
    }

    /// Holds the write lock: what is read while holding it does not change until it is dropped.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The record of `kind` with `id`, if there is one.
    pub fn get<T: DeserializeOwned>(&self, kind: Kind, id: &str) -> Result<Option<T>> {
        self.read_json(kind, id, RECORD, "record")
    }

    /// The JSON object of `predicate` on the record of `kind` with `id`, if there is one.
    fn read_json<T: DeserializeOwned>(
        &self,
        kind: Kind,
        id: &str,
        predicate: &str,
        what: &str,
    ) -> Result<Option<T>> {
        let subject = subject(kind, id);
        let found = self
            .store
            .quads_for_pattern(
                Some(subject.as_ref().into()),
                Some(NamedNodeRef::new_unchecked(predicate)),
                None,
                Some(graph()),
            )
            .next()
            .transpose()
            .map_err(internal)?;
        match found.map(|q| q.object) {
            Some(Term::Literal(json)) => {
                serde_json::from_str(json.value()).map(Some).map_err(|e| {
                    ContractError::Internal(format!("unreadable {} {what}: {e}", kind.as_str()))
                })
            }
            _ => Ok(None),
        }
    }

    /// The id of the record of `kind` filed under the lookup `key`, if any.
    pub fn find(&self, kind: Kind, key: &str) -> Result<Option<String>> {
        let literal = Literal::new_simple_literal(format!("{}|{key}", kind.as_str()));
        let found = self
            .store
            .quads_for_pattern(
                None,
                Some(NamedNodeRef::new_unchecked(KEY)),
                Some(literal.as_ref().into()),
                Some(graph()),
            )
            .next()
            .transpose()
            .map_err(internal)?;
        let Some(quad) = found else { return Ok(None) };
        let id = self
            .store
            .quads_for_pattern(
                Some(quad.subject.as_ref()),
                Some(NamedNodeRef::new_unchecked(KEY)),
                None,
                Some(graph()),
            )
            .filter_map(std::result::Result::ok)
            .find_map(|q| match q.object {
                Term::Literal(l) => l.value().strip_prefix("id|").map(str::to_owned),
                _ => None,
            });
        Ok(id)
    }

    /// Writes a record (replacing the previous version), files it under `keys`, and appends
    /// `event` to its log, in one transaction. The caller holds [`ContractStore::lock`].
    pub fn put<T: Serialize>(
        &self,
        kind: Kind,
        id: &str,
        record: &T,
        keys: &[String],
        event: Option<&Event>,
    ) -> Result<()> {
        let subject = subject(kind, id);
        let mut transaction = self.store.start_transaction().map_err(internal)?;
        self.replace_json(&mut transaction, &subject, RECORD, record)?;
        let key_predicate = NamedNodeRef::new_unchecked(KEY);
        let id_key = Literal::new_simple_literal(format!("id|{id}"));
        transaction.insert(Quad::new(subject.clone(), key_predicate, id_key, graph()).as_ref());
        for key in keys {
            let literal = Literal::new_simple_literal(format!("{}|{key}", kind.as_str()));
            transaction
                .insert(Quad::new(subject.clone(), key_predicate, literal, graph()).as_ref());
        }
        if let Some(event) = event {
            let json =
                serde_json::to_string(event).map_err(|e| ContractError::Internal(e.to_string()))?;
            transaction.insert(
                Quad::new(
                    subject.clone(),
                    NamedNodeRef::new_unchecked(EVENT),
                    Literal::new_simple_literal(json),
                    graph(),
                )
                .as_ref(),
            );
        }
        transaction.commit().map_err(internal)
    }

    /// The counters kept apart from the record of `kind` with `id` (an agreement's usage), if
    /// any were written. Counters move on every shard a training job fetches, and rewriting the
    /// whole record (kilobytes of policy and claims) for each was most of a fetch's store work.
    pub fn counters<T: DeserializeOwned>(&self, kind: Kind, id: &str) -> Result<Option<T>> {
        self.read_json(kind, id, COUNTERS, "counters")
    }

    /// Replaces the counters of the record of `kind` with `id`, in one transaction. The caller
    /// holds [`ContractStore::lock`].
    pub fn put_counters<T: Serialize>(&self, kind: Kind, id: &str, counters: &T) -> Result<()> {
        let mut transaction = self.store.start_transaction().map_err(internal)?;
        self.replace_json(&mut transaction, &subject(kind, id), COUNTERS, counters)?;
        transaction.commit().map_err(internal)
    }

    /// In `transaction`, replaces the JSON object of `predicate` on `subject` by `value`.
    fn replace_json<T: Serialize>(
        &self,
        transaction: &mut oxigraph::store::Transaction<'_>,
        subject: &NamedNode,
        predicate: &str,
        value: &T,
    ) -> Result<()> {
        let predicate = NamedNodeRef::new_unchecked(predicate);
        let json =
            serde_json::to_string(value).map_err(|e| ContractError::Internal(e.to_string()))?;
        let old: Vec<Quad> = self
            .store
            .quads_for_pattern(
                Some(subject.as_ref().into()),
                Some(predicate),
                None,
                Some(graph()),
            )
            .collect::<std::result::Result<_, _>>()
            .map_err(internal)?;
        for quad in &old {
            transaction.remove(quad.as_ref());
        }
        transaction.insert(
            Quad::new(
                subject.clone(),
                predicate,
                Literal::new_simple_literal(json),
                graph(),
            )
            .as_ref(),
        );
        Ok(())
    }

    /// The event log of a record, in order.
    pub fn events(&self, kind: Kind, id: &str) -> Result<Vec<Event>> {
        let subject = subject(kind, id);
        let mut events: Vec<Event> = self
            .store
            .quads_for_pattern(
                Some(subject.as_ref().into()),
                Some(NamedNodeRef::new_unchecked(EVENT)),
                None,
                Some(graph()),
            )
            .filter_map(std::result::Result::ok)
            .filter_map(|q| match q.object {
                Term::Literal(l) => serde_json::from_str(l.value()).ok(),
                _ => None,
            })
            .collect();
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    /// How many events a record has logged (the next one's `seq` is this plus one).
    pub fn event_count(&self, kind: Kind, id: &str) -> Result<u64> {
        let subject = subject(kind, id);
        Ok(self
            .store
            .quads_for_pattern(
                Some(subject.as_ref().into()),
                Some(NamedNodeRef::new_unchecked(EVENT)),
                None,
                Some(graph()),
            )
            .count() as u64)
    }

    /// Every record of `kind` (for the expiry sweep).
    pub fn all<T: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>> {
        let prefix = format!("urn:agora:{}:", kind.as_str());
        Ok(self
            .store
            .quads_for_pattern(
                None,
                Some(NamedNodeRef::new_unchecked(RECORD)),
                None,
                Some(graph()),
            )
            .filter_map(std::result::Result::ok)
            .filter(|q| q.subject.to_string().starts_with(&format!("<{prefix}")))
            .filter_map(|q| match q.object {
                Term::Literal(l) => serde_json::from_str(l.value()).ok(),
                _ => None,
            })
            .collect())
    }

    /// Writes the memtables to disk, at shutdown.
    pub fn flush(&self) -> Result<()> {
        self.store.flush().map_err(internal)
    }
}

fn internal(error: impl std::fmt::Display) -> ContractError {
    ContractError::Internal(format!("contracts store: {error}"))
}
