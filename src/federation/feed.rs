//! The change feed this node serves to the peers that harvest it: after one full harvest a
//! peer asks only for what changed in the view it is granted.
//!
//! The feed is a diff of views, not a log of writes. For each requester (participant and
//! issuer) the node keeps, on disk, a few *snapshots* of the DSP catalogue it served that
//! requester: for every dataset its IRI and an entity tag (the SHA-256 of the dataset's DSP
//! JSON, see [`etag`]). A request `since=CURSOR` computes the requester's current view the
//! same way `POST /dsp/catalog/request` does, diffs it against the snapshot named by the
//! cursor, and answers the datasets that are new or changed (their DSP JSON, offers included,
//! exactly as the catalogue serves them) and a tombstone for every dataset that left the view,
//! whatever the reason: deleted, withdrawn from offer, or hidden from this requester by an
//! access policy (a changed policy, a claim the requester lost, a time window that closed).
//! Diffing views rather than logging writes is what makes "hidden for this requester" exact.
//!
//! Each answer carries a new cursor, the size of the view and its order-independent
//! [`digest`]; the harvester checks its own copy against both after applying the changes and
//! harvests in full when they disagree, so a lost answer or a race with a full harvest heals
//! on its own. A cursor that is unknown (expired, or never issued to this requester) or a diff
//! larger than [`MAX_CHANGES`] answers [`FeedError::Gone`]: the harvester falls back to a full
//! harvest. Snapshots survive restarts; each requester keeps its newest [`KEPT_PER_REQUESTER`]
//! and the node at most [`MAX_SNAPSHOTS`] in all, so the disk they take is bounded.

use crate::clock::SharedClock;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Most datasets (new, changed or removed) one answer carries; more answers `410 Gone`, and
/// the harvester re-reads the catalogue in full (cheaper than a diff that large).
pub const MAX_CHANGES: usize = 2000;
/// Snapshots kept per requester: the newest, and older ones for a harvester whose last
/// answer was lost before it stored the new cursor.
pub const KEPT_PER_REQUESTER: usize = 4;
/// Snapshots kept on the node in all (the oldest go first).
pub const MAX_SNAPSHOTS: usize = 512;

/// Why the feed cannot answer with changes.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The cursor is not one this node can diff from for this requester (expired, evicted,
    /// issued to someone else), or the diff is too large: harvest in full.
    #[error("{0}; harvest the catalogue in full (POST /dsp/catalog/request) and start again")]
    Gone(String),
    /// The cursor is not even shaped like one of this node's cursors.
    #[error("`since` is not a cursor of this node's change feed")]
    BadCursor,
    /// The snapshots could not be read or written (the node's fault).
    #[error("the change feed's snapshots: {0}")]
    Storage(String),
}

/// One requester's view at one moment: dataset IRI → entity tag.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    /// Who it was served to (`sub` and `iss`), so a cursor is worth nothing to anyone else.
    requester: String,
    entries: BTreeMap<String, String>,
}

/// The snapshots of the views served to harvesters, under `data_dir/federation-feed`.
#[derive(Debug)]
pub struct ChangeFeed {
    dir: PathBuf,
    clock: SharedClock,
    /// Serialises snapshot writes and evictions.
    lock: Mutex<()>,
}

/// The entity tag of one dataset's DSP JSON: what a harvester computes from what it read, so
/// both sides agree without the tag ever being sent. Hashes the JSON as `serde_json` writes
/// it, which is the same on both sides for the same value.
pub fn etag(dataset: &Json) -> String {
    let digest = Sha256::digest(dataset.to_string().as_bytes());
    hex(&digest[..16])
}

/// The order-independent digest of a view: the XOR of the first 16 bytes of
/// SHA-256(`iri` NUL `etag`) over its datasets, so a harvester can check its copy in one scan.
pub fn digest<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut folded = [0u8; 16];
    for (iri, tag) in entries {
        let mut hasher = Sha256::new();
        hasher.update(iri.as_bytes());
        hasher.update([0]);
        hasher.update(tag.as_bytes());
        let one = hasher.finalize();
        for (out, byte) in folded.iter_mut().zip(one.iter()) {
            *out ^= byte;
        }
    }
    hex(&folded)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ChangeFeed {
    /// The feed whose snapshots live in `dir` (created on the first write).
    pub fn new(dir: PathBuf, clock: SharedClock) -> Self {
        Self {
            dir,
            clock,
            lock: Mutex::new(()),
        }
    }

    /// The changes of `view` (a DSP `Catalog` as `Contracts::dsp_catalog` builds it for the
    /// requester, every page at once) since `since`, as the JSON answer of
    /// `GET /api/federation/changes`. Without `since`, only the cursor of the current view
    /// (a harvester takes it before it reads the catalogue in full).
    pub fn changes(
        &self,
        requester: &str,
        since: Option<&str>,
        view: &Json,
    ) -> Result<Json, FeedError> {
        let datasets: Vec<&Json> = match view.get("dataset") {
            Some(Json::Array(items)) => items.iter().collect(),
            Some(one @ Json::Object(_)) => vec![one],
            _ => Vec::new(),
        };
        let mut current: BTreeMap<String, (String, &Json)> = BTreeMap::new();
        for dataset in datasets {
            if let Some(iri) = dataset.get("@id").and_then(Json::as_str) {
                current.insert(iri.to_owned(), (etag(dataset), dataset));
            }
        }
        let now = self
            .clock
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let previous = match since {
            Some(cursor) => Some(self.read(requester, cursor)?),
            None => None,
        };
        let mut upserts = Vec::new();
        let mut removed = Vec::new();
        if let Some(previous) = &previous {
            for (iri, (tag, dataset)) in &current {
                if previous.entries.get(iri) != Some(tag) {
                    upserts.push((*dataset).clone());
                }
            }
            for iri in previous.entries.keys() {
                if !current.contains_key(iri) {
                    removed.push(json!({"@id": iri, "removedAt": now}));
                }
            }
            if upserts.len() + removed.len() > MAX_CHANGES {
                return Err(FeedError::Gone(format!(
                    "{} datasets changed, more than the {MAX_CHANGES} one answer carries",
                    upserts.len() + removed.len()
                )));
            }
        }
        let entries: BTreeMap<String, String> = current
            .iter()
            .map(|(iri, (tag, _))| (iri.clone(), tag.clone()))
            .collect();
        let unchanged = previous
            .as_ref()
            .is_some_and(|p| upserts.is_empty() && removed.is_empty() && p.entries == entries);
        // Nothing moved: the same cursor serves again, and nothing is written (also without
        // `since`, when the requester's newest snapshot is the current view).
        let reusable = match (since, unchanged) {
            (Some(cursor), true) => Some(cursor.to_owned()),
            (None, _) => self
                .newest(requester)
                .filter(|(_, s)| s.entries == entries)
                .map(|(c, _)| c),
            _ => None,
        };
        let cursor = match reusable {
            Some(cursor) => cursor,
            None => self.write(requester, entries)?,
        };
        let view_digest = digest(
            current
                .iter()
                .map(|(iri, (tag, _))| (iri.as_str(), tag.as_str())),
        );
        Ok(json!({
            "@context": [crate::contract::messages::DSP_CONTEXT,
                {"agora": "https://w3id.org/agora/ns#"}],
            "@type": "agora:CatalogChanges",
            "participantId": view.get("participantId").cloned().unwrap_or(Json::Null),
            "since": since,
            "cursor": cursor,
            "dataset": upserts,
            "removed": removed,
            "total": current.len(),
            "digest": view_digest,
        }))
    }

    /// The snapshot `cursor` names, if it was served to `requester` and is still kept.
    fn read(&self, requester: &str, cursor: &str) -> Result<Snapshot, FeedError> {
        let valid = cursor.len() <= 64
            && cursor.split('-').count() == 3
            && cursor.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !valid {
            return Err(FeedError::BadCursor);
        }
        let gone = || FeedError::Gone(format!("the cursor {cursor} is unknown or expired"));
        if !cursor.starts_with(&requester_key(requester)) {
            return Err(gone());
        }
        let text = match std::fs::read(self.dir.join(format!("{cursor}.json"))) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
            Err(e) => return Err(FeedError::Storage(e.to_string())),
        };
        let snapshot: Snapshot = serde_json::from_slice(&text)
            .map_err(|e| FeedError::Storage(format!("{cursor}: {e}")))?;
        if snapshot.requester != requester {
            return Err(gone());
        }
        Ok(snapshot)
    }

    /// The requester's newest snapshot and its cursor, if one is kept and readable.
    fn newest(&self, requester: &str) -> Option<(String, Snapshot)> {
        let prefix = format!("{}-", requester_key(requester));
        let newest = std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
            .filter(|stem| stem.starts_with(&prefix))
            .max()?;
        let snapshot = self.read(requester, &newest).ok()?;
        Some((newest, snapshot))
    }

    /// Stores a new snapshot for `requester` and returns its cursor; evicts the requester's
    /// older ones beyond [`KEPT_PER_REQUESTER`] and the node's beyond [`MAX_SNAPSHOTS`].
    fn write(
        &self,
        requester: &str,
        entries: BTreeMap<String, String>,
    ) -> Result<String, FeedError> {
        let io = |e: std::io::Error| FeedError::Storage(e.to_string());
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let millis = u64::try_from(self.clock.now().timestamp_millis()).unwrap_or_default();
        let random = uuid::Uuid::new_v4().simple().to_string();
        // Hex only: the millisecond clock (fixed width, so names sort by age) and 64 random bits.
        let cursor = format!(
            "{}-{millis:012x}-{}",
            requester_key(requester),
            &random[..16]
        );
        let snapshot = Snapshot {
            requester: requester.to_owned(),
            entries,
        };
        let text = serde_json::to_vec(&snapshot).map_err(|e| FeedError::Storage(e.to_string()))?;
        let staging = self.dir.join(format!("{cursor}.tmp"));
        std::fs::write(&staging, text).map_err(io)?;
        std::fs::rename(&staging, self.dir.join(format!("{cursor}.json"))).map_err(io)?;
        self.evict(&requester_key(requester));
        Ok(cursor)
    }

    fn evict(&self, key: &str) {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return;
        };
        // (age, name) of every snapshot; names are `{requester}-{millis}-{random}.json`.
        let mut all: Vec<(String, String)> = listing
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|name| {
                let stem = name.strip_suffix(".json")?;
                let mut parts = stem.split('-');
                let (owner, age) = (parts.next()?, parts.next()?);
                Some((age.to_owned(), owner.to_owned(), name.clone()))
            })
            .map(|(age, owner, name)| (format!("{age}/{owner}"), name))
            .collect();
        all.sort();
        let mut doomed: Vec<String> = Vec::new();
        let own: Vec<&(String, String)> = all
            .iter()
            .filter(|(age, _)| age.ends_with(&format!("/{key}")))
            .collect();
        if own.len() > KEPT_PER_REQUESTER {
            doomed.extend(
                own[..own.len() - KEPT_PER_REQUESTER]
                    .iter()
                    .map(|(_, n)| n.clone()),
            );
        }
        let left: Vec<&(String, String)> =
            all.iter().filter(|(_, n)| !doomed.contains(n)).collect();
        if left.len() > MAX_SNAPSHOTS {
            doomed.extend(
                left[..left.len() - MAX_SNAPSHOTS]
                    .iter()
                    .map(|(_, n)| n.clone()),
            );
        }
        for name in doomed {
            if let Err(error) = std::fs::remove_file(self.dir.join(&name)) {
                tracing::warn!(%name, %error, "cannot remove an old change-feed snapshot");
            }
        }
    }
}

/// The cursor prefix of one requester: 16 hex digits of the SHA-256 of who it is.
fn requester_key(requester: &str) -> String {
    hex(&Sha256::digest(requester.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    fn view(datasets: &[(&str, &str)]) -> Json {
        json!({"@type": "Catalog", "participantId": "urn:agora:node:b",
            "dataset": datasets.iter().map(|(iri, title)| json!({"@id": iri, "@type": "Dataset",
                "dct:title": title,
                "hasPolicy": [{"@id": format!("{iri}#offer-0"), "@type": "Offer"}]})).collect::<Vec<_>>()})
    }

    fn feed(dir: &std::path::Path) -> (ChangeFeed, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        (ChangeFeed::new(dir.join("feed"), clock.clone()), clock)
    }

    fn ids(items: &Json) -> Vec<String> {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["@id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn changes_since_a_cursor_are_upserts_and_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, clock) = feed(dir.path());
        let who = "urn:agora:node:a\nissuer";
        let v1 = view(&[
            ("http://b/datasets/1", "one"),
            ("http://b/datasets/2", "two"),
        ]);
        let first = feed.changes(who, None, &v1).unwrap();
        assert_eq!(first["total"], 2);
        assert!(first["dataset"].as_array().unwrap().is_empty());
        let c1 = first["cursor"].as_str().unwrap().to_owned();
        // Asked again without a cursor over the same view: the same cursor, nothing written.
        assert_eq!(feed.changes(who, None, &v1).unwrap()["cursor"], c1.as_str());
        assert_eq!(
            std::fs::read_dir(dir.path().join("feed")).unwrap().count(),
            1
        );

        // Nothing changed: no datasets, the same cursor.
        let same = feed.changes(who, Some(&c1), &v1).unwrap();
        assert_eq!(same["cursor"], c1.as_str());
        assert!(same["dataset"].as_array().unwrap().is_empty());
        assert!(same["removed"].as_array().unwrap().is_empty());
        assert_eq!(same["digest"], first["digest"]);

        // 2 changed, 1 gone (deleted or hidden: the feed cannot tell and need not), 3 new.
        clock.advance(chrono::Duration::seconds(5));
        let v2 = view(&[
            ("http://b/datasets/2", "two, edited"),
            ("http://b/datasets/3", "three"),
        ]);
        let next = feed.changes(who, Some(&c1), &v2).unwrap();
        assert_eq!(
            ids(&next["dataset"]),
            vec!["http://b/datasets/2", "http://b/datasets/3"]
        );
        assert_eq!(ids(&next["removed"]), vec!["http://b/datasets/1"]);
        assert!(next["removed"][0]["removedAt"].is_string());
        assert_eq!(next["total"], 2);
        let c2 = next["cursor"].as_str().unwrap().to_owned();
        assert_ne!(c1, c2);
        // The offers travel exactly as the view has them.
        assert_eq!(next["dataset"][0], v2["dataset"][0]);

        // The digest is what a harvester computes from its copy.
        let copy = v2["dataset"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["@id"].as_str().unwrap().to_owned(), etag(d)))
            .collect::<Vec<_>>();
        assert_eq!(
            next["digest"],
            digest(copy.iter().map(|(i, t)| (i.as_str(), t.as_str())))
        );
        // An older cursor still diffs (a lost answer), against its own snapshot.
        let again = feed.changes(who, Some(&c1), &v2).unwrap();
        assert_eq!(ids(&again["removed"]), vec!["http://b/datasets/1"]);
    }

    #[test]
    fn a_cursor_is_worth_nothing_to_another_requester_or_when_forged() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, _) = feed(dir.path());
        let v = view(&[("http://b/datasets/1", "one")]);
        let cursor = feed.changes("a", None, &v).unwrap()["cursor"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(matches!(
            feed.changes("mallory", Some(&cursor), &v),
            Err(FeedError::Gone(_))
        ));
        for bad in ["../../etc/passwd", "x", "0-0-0/../..", &"a".repeat(100)] {
            assert!(
                matches!(feed.changes("a", Some(bad), &v), Err(FeedError::BadCursor)),
                "{bad}"
            );
        }
        let unknown = format!("{}-0000000000ff-0123456789abcdef", requester_key("a"));
        assert!(matches!(
            feed.changes("a", Some(&unknown), &v),
            Err(FeedError::Gone(_))
        ));
    }

    #[test]
    fn too_many_changes_ask_for_a_full_harvest() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, _) = feed(dir.path());
        let cursor = feed.changes("a", None, &view(&[])).unwrap()["cursor"]
            .as_str()
            .unwrap()
            .to_owned();
        let many: Vec<(String, String)> = (0..=MAX_CHANGES)
            .map(|i| (format!("http://b/datasets/{i}"), "t".to_owned()))
            .collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert!(matches!(
            feed.changes("a", Some(&cursor), &view(&refs)),
            Err(FeedError::Gone(_))
        ));
    }

    #[test]
    fn old_snapshots_are_evicted_per_requester() {
        let dir = tempfile::tempdir().unwrap();
        let (feed, clock) = feed(dir.path());
        let mut cursors = Vec::new();
        for i in 0..(KEPT_PER_REQUESTER + 2) {
            clock.advance(chrono::Duration::seconds(1));
            let title = format!("v{i}");
            let v = view(&[("http://b/datasets/1", title.as_str())]);
            cursors.push(
                feed.changes("a", None, &v).unwrap()["cursor"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let v = view(&[]);
        assert!(matches!(
            feed.changes("a", Some(&cursors[0]), &v),
            Err(FeedError::Gone(_))
        ));
        assert!(
            feed.changes("a", Some(&cursors[cursors.len() - 1]), &v)
                .is_ok()
        );
        let files = std::fs::read_dir(dir.path().join("feed")).unwrap().count();
        // The newest kept, plus the one the last call wrote.
        assert!(files <= KEPT_PER_REQUESTER, "{files}");
    }
}
