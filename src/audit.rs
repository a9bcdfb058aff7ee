//! The audit log: who was given what, under which agreement, append-only and tamper-evident.
//!
//! Each entry is one JSON line of `data_dir/audit/log.jsonl` carrying the SHA-256 of the
//! previous line, and it is on disk (`fsync`) before the access it records is granted. Each
//! time entries are made durable the node writes a head — the last sequence number and hash,
//! signed with the node's Ed25519 key — so that deleting lines at the end (which the chain
//! alone cannot show) is caught too. [`verify`] reports the first entry that was edited,
//! deleted, reordered or truncated.
//!
//! The head lives in `head.slots`: two fixed 512-byte slots written in place in turn, each
//! within one disk sector, so that writing a head is one `pwrite` and one `fdatasync` while the
//! other slot keeps the previous head whatever a crash interrupts. (A new file renamed over the
//! old one cost a file creation, two more syncs and a directory sync: 2 ms of every charged
//! shard fetch here, against 0.13 ms in place.) Heads only grow, so the two slots never hold
//! the same sequence number, and once a second head was written neither slot is ever empty:
//! an erased or copied slot is tampering.
//!
//! Appends commit in groups: an entry is written under the tail lock, then one appender at a
//! time syncs the file and signs the head for every entry written so far, and the appenders
//! whose entries that covered return without a sync of their own. Concurrent shard fetches of a
//! training job thus share one `fsync` and one head instead of queueing for one each, and no
//! append returns before its entry and a head covering it are on disk. A failed sync removes
//! every entry it would have covered (their appends fail), so the file never keeps an entry
//! whose append reported an error.

use crate::clock::SharedClock;
use crate::identity::DevIssuer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The hash that stands before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why the log cannot be written or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file system.
    #[error("audit log: {0}")]
    Io(#[from] std::io::Error),
    /// The log was changed after it was written.
    #[error("the audit log was tampered with at entry {seq}: {what}")]
    Tampered {
        /// The entry (1-based) where the problem shows.
        seq: u64,
        /// What is wrong.
        what: String,
    },
}

/// One audited event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Entry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When (RFC 3339).
    pub at: String,
    /// SHA-256 (hex) of the previous line.
    pub prev: String,
    /// What happened: `transfer-started`, `token-refreshed`, `transfer-ended`, `release`.
    pub event: String,
    /// Who (the participant).
    pub who: String,
    /// Under which agreement.
    pub agreement: String,
    /// Which dataset.
    pub dataset: String,
    /// Which transfer or shard, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// Rows released.
    #[serde(default)]
    pub rows: u64,
    /// Bytes released.
    #[serde(default)]
    pub bytes: u64,
}

/// What to record; the log adds the sequence number, the time and the chain.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// See [`Entry::event`].
    pub event: String,
    /// See [`Entry::who`].
    pub who: String,
    /// See [`Entry::agreement`].
    pub agreement: String,
    /// See [`Entry::dataset`].
    pub dataset: String,
    /// See [`Entry::part`].
    pub part: Option<String>,
    /// See [`Entry::rows`].
    pub rows: u64,
    /// See [`Entry::bytes`].
    pub bytes: u64,
}

/// The file of the two head slots.
const HEAD_SLOTS: &str = "head.slots";
/// The head file of logs written before the slots (one JSON head, replaced by renaming).
const LEGACY_HEAD: &str = "head.json";
/// Bytes per slot: one 512-byte disk sector, so a slot is written whole or not at all.
const SLOT: usize = 512;

/// The signed statement of the log's last entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
    signature: String,
}

impl Head {
    fn message(seq: u64, hash: &str) -> Vec<u8> {
        format!("agora-audit-head:{seq}:{hash}").into_bytes()
    }
}

/// The end of the log as written (possibly not yet durable). Guarded by the tail lock.
struct Tail {
    file: File,
    seq: u64,
    hash: String,
    /// Bytes of whole entries in the file.
    len: u64,
    /// For each failed sync so far, the last durable entry it rolled the log back to: an
    /// appender that wrote its entry before the `n`-th rollback lost it if its sequence number
    /// is above `rollbacks[n]` (the numbers were then given again).
    rollbacks: Vec<u64>,
    /// Set when a rollback could not truncate the file: appends refuse until the node restarts
    /// (opening drops whatever follows the signed head).
    broken: bool,
}

/// What the signed head covers. Guarded by the sync lock, which one syncing appender holds at
/// a time.
struct Durable {
    /// A second handle on the log, to sync it without holding the tail lock.
    file: File,
    seq: u64,
    hash: String,
    len: u64,
    /// The head slots, and the slot the next head goes to (not the one holding the current).
    heads: File,
    next_slot: u64,
}

/// The node's audit log.
pub struct AuditLog {
    dir: PathBuf,
    tail: Mutex<Tail>,
    durable: Mutex<Durable>,
    signer: Arc<DevIssuer>,
    clock: SharedClock,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn hash_line(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

impl AuditLog {
    /// Opens (or creates) the log under `data_dir/audit`. What a crash left unacknowledged is
    /// dropped: a last line cut short (the fsync did not complete), and the whole lines written
    /// after the signed head (the node died before a head covering them was in place, so their
    /// appends never returned and the accesses they record were never granted).
    pub fn open(
        data_dir: &Path,
        signer: Arc<DevIssuer>,
        clock: SharedClock,
    ) -> Result<Self, AuditError> {
        let dir = data_dir.join("audit");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("log.jsonl");
        let mut seq = 0;
        let mut hash = GENESIS.to_owned();
        let mut good_len = 0u64;
        if path.exists() {
            // A log edited, cut short or reordered while the node was down must not be signed
            // over: the node refuses to start until someone looks (`agora audit verify`).
            verify(data_dir, &signer)?;
            let bytes = std::fs::read(&path)?;
            // The head names the last acknowledged entry (`verify` checked everything up to it).
            let signed = read_head(&dir, &signer)?.map_or(0, |(head, _)| head.seq);
            for line in bytes.split_inclusive(|b| *b == b'\n') {
                if seq == signed && line.ends_with(b"\n") {
                    tracing::warn!(
                        "dropping the audit entries written after the signed head (the node \
                         stopped before acknowledging them)"
                    );
                    break;
                }
                if !line.ends_with(b"\n") {
                    tracing::warn!(
                        "dropping a torn last audit entry (the node stopped while writing it)"
                    );
                    break;
                }
                let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                seq += 1;
                hash = hash_line(&text);
                good_len += line.len() as u64;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if file.metadata()?.len() != good_len {
            file.set_len(good_len)?;
            file.sync_all()?;
        }
        let (heads, next_slot) = open_heads(&dir, &signer)?;
        let log = Self {
            dir,
            tail: Mutex::new(Tail {
                file: file.try_clone()?,
                seq,
                hash: hash.clone(),
                len: good_len,
                rollbacks: Vec::new(),
                broken: false,
            }),
            durable: Mutex::new(Durable {
                file,
                seq,
                hash,
                len: good_len,
                heads,
                next_slot,
            }),
            signer,
            clock,
        };
        // A new log starts with a signed head of no entries, so that a head missing later is
        // always tampering, whatever a crash during the first appends left.
        if seq == 0 && read_head(&log.dir, &log.signer)?.is_none() {
            let mut durable = log.durable.lock().unwrap_or_else(|p| p.into_inner());
            log.write_head(&mut durable, 0, GENESIS)?;
        }
        Ok(log)
    }
    /// Appends an entry and makes it durable (and a signed head covering it) before returning.
    pub fn append(&self, record: Record) -> Result<Entry, AuditError> {
        let (entry, epoch) = self.write_entry(record)?;
        self.make_durable(entry.seq, epoch)?;
        Ok(entry)
    }

    /// Writes the entry after the last one (not yet synced): the entry and the number of
    /// rollbacks before it.
    fn write_entry(&self, record: Record) -> Result<(Entry, usize), AuditError> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        if tail.broken {
            return Err(AuditError::Io(std::io::Error::other(
                "an earlier write failed and could not be undone; restart the node to recover the log",
            )));
        }
        let entry = Entry {
            seq: tail.seq + 1,
            at: self
                .clock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            prev: tail.hash.clone(),
            event: record.event,
            who: record.who,
            agreement: record.agreement,
            dataset: record.dataset,
            part: record.part,
            rows: record.rows,
            bytes: record.bytes,
        };
        let line =
            serde_json::to_string(&entry).map_err(|e| std::io::Error::other(e.to_string()))?;
        let bytes = format!("{line}\n");
        if let Err(error) = tail.file.write_all(bytes.as_bytes()) {
            // A part of the line may have reached the file (the disk filled up): cut it off.
            let len = tail.len;
            if tail.file.set_len(len).is_err() {
                tail.broken = true;
            }
            return Err(error.into());
        }
        tail.seq = entry.seq;
        tail.hash = hash_line(&line);
        tail.len += bytes.len() as u64;
        Ok((entry, tail.rollbacks.len()))
    }

    /// Returns once entry `seq` (written after `epoch` rollbacks) is synced and signed: by this
    /// caller, syncing every entry written so far, or by another appender that did so first.
    fn make_durable(&self, seq: u64, epoch: usize) -> Result<(), AuditError> {
        let mut durable = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        let (target_seq, target_hash, target_len) = {
            let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(&kept) = tail.rollbacks.get(epoch) {
                if seq <= kept {
                    return Ok(());
                }
                return Err(AuditError::Io(std::io::Error::other(
                    "the audit log could not be synced; the access was not granted",
                )));
            }
            if durable.seq >= seq {
                return Ok(());
            }
            (tail.seq, tail.hash.clone(), tail.len)
        };
        let synced = durable
            .file
            .sync_data()
            .map_err(AuditError::from)
            .and_then(|()| self.write_head(&mut durable, target_seq, &target_hash));
        if let Err(error) = synced {
            let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
            if tail.file.set_len(durable.len).is_err() {
                tail.broken = true;
            }
            tail.seq = durable.seq;
            tail.hash = durable.hash.clone();
            tail.len = durable.len;
            tail.rollbacks.push(durable.seq);
            return Err(error);
        }
        durable.seq = target_seq;
        durable.hash = target_hash;
        durable.len = target_len;
        Ok(())
    }

    /// Writes a signed head for entry `seq` into the slot that does not hold the current one,
    /// and syncs it; the caller holds the sync lock.
    fn write_head(&self, durable: &mut Durable, seq: u64, hash: &str) -> Result<(), AuditError> {
        let head = Head {
            seq,
            hash: hash.to_owned(),
            signature: hex::encode(self.signer.sign(&Head::message(seq, hash))),
        };
        write_slot(&durable.heads, durable.next_slot, &head)?;
        durable.heads.sync_data()?;
        durable.next_slot = 1 - durable.next_slot;
        Ok(())
    }

    /// The entries about `dataset`, oldest first.
    pub fn entries_for(&self, dataset: &str) -> Result<Vec<Entry>, AuditError> {
        let _tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let file = File::open(self.dir.join("log.jsonl"))?;
        Ok(BufReader::new(file)
            .lines()
            .map_while(std::result::Result::ok)
            .filter_map(|line| serde_json::from_str::<Entry>(&line).ok())
            .filter(|e| e.dataset == dataset)
            .collect())
    }
}

/// Writes `head` into `slot`, padded to the slot's size.
fn write_slot(heads: &File, slot: u64, head: &Head) -> Result<(), AuditError> {
    let mut bytes = serde_json::to_vec(head).map_err(|e| std::io::Error::other(e.to_string()))?;
    if bytes.len() >= SLOT {
        return Err(std::io::Error::other("a signed head does not fit its slot").into());
    }
    bytes.resize(SLOT - 1, b' ');
    bytes.push(b'\n');
    heads.write_all_at(&bytes, slot * SLOT as u64)?;
    Ok(())
}

/// Opens the head slots and answers the slot the next head goes to. A log that kept its head
/// in the legacy `head.json` moves it into the first slot (synced before the old file goes).
fn open_heads(dir: &Path, signer: &DevIssuer) -> Result<(File, u64), AuditError> {
    let current = read_head(dir, signer)?;
    let path = dir.join(HEAD_SLOTS);
    let created = !path.exists();
    let heads = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    if created {
        File::open(dir)?.sync_all()?;
    }
    let next_slot = match current {
        Some((_, Some(slot))) => 1 - slot,
        Some((legacy, None)) => {
            write_slot(&heads, 0, &legacy)?;
            heads.sync_data()?;
            std::fs::remove_file(dir.join(LEGACY_HEAD))?;
            File::open(dir)?.sync_all()?;
            1
        }
        None => 0,
    };
    Ok((heads, next_slot))
}

/// The current head (the signed one with the higher sequence number of the two slots) and its
/// slot, or the legacy `head.json` (no slot) where there are no slots yet; `None` when no head
/// was written. A slot that holds something other than a head signed by the node is tampering.
fn read_head(dir: &Path, signer: &DevIssuer) -> Result<Option<(Head, Option<u64>)>, AuditError> {
    let bytes = match std::fs::read(dir.join(HEAD_SLOTS)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(std::fs::read_to_string(dir.join(LEGACY_HEAD))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .map(|head| (head, None)));
        }
        Err(e) => return Err(e.into()),
    };
    let mut current: Option<(Head, u64)> = None;
    for slot in 0..2u64 {
        let start = (slot as usize * SLOT).min(bytes.len());
        let raw = &bytes[start..(start + SLOT).min(bytes.len())];
        let text = raw
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\n' | 0))
            .map_or(&raw[..0], |last| &raw[..=last]);
        if text.is_empty() {
            continue;
        }
        let head: Head = serde_json::from_slice(text).map_err(|_| AuditError::Tampered {
            seq: 0,
            what: format!("head slot {slot} of {HEAD_SLOTS} does not hold a signed head"),
        })?;
        let signature = hex::decode(&head.signature).unwrap_or_default();
        if !signer.verify(&Head::message(head.seq, &head.hash), &signature) {
            return Err(AuditError::Tampered {
                seq: head.seq,
                what: "the head's signature is not the node's".into(),
            });
        }
        if current.as_ref().is_none_or(|(kept, _)| head.seq > kept.seq) {
            current = Some((head, slot));
        }
    }
    Ok(current.map(|(head, slot)| (head, Some(slot))))
}

/// Checks the whole log under `data_dir/audit` against the chain and the signed head: the
/// number of acknowledged entries, or the first tampered one.
///
/// A crash can leave entries the node never acknowledged after the signed head: a line cut
/// short, or the whole lines of a group whose head was not yet renamed into place. That is not
/// tampering; they are not counted, and the node drops them when it next opens the log. A head
/// missing, not the node's, or covering entries the log no longer has (or has changed) is.
pub fn verify(data_dir: &Path, signer: &DevIssuer) -> Result<u64, AuditError> {
    let dir = data_dir.join("audit");
    let text = std::fs::read_to_string(dir.join("log.jsonl")).unwrap_or_default();
    let head = read_head(&dir, signer)?.map(|(head, _)| head);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let covered = match &head {
        // Lines after the head were never acknowledged (a crash during a group's sync).
        Some(head) => {
            &lines[..lines
                .len()
                .min(usize::try_from(head.seq).unwrap_or(usize::MAX))]
        }
        // Logs that began before the first empty head: only a first append can be pending.
        None if lines.len() <= 1 => &lines[..0],
        None => &lines[..],
    };
    let mut prev = GENESIS.to_owned();
    let mut count = 0u64;
    for (index, line) in covered.iter().enumerate() {
        let seq = index as u64 + 1;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let entry: Entry = serde_json::from_str(line).map_err(|e| AuditError::Tampered {
            seq,
            what: format!("the line is not an audit entry ({e})"),
        })?;
        if entry.prev != prev {
            return Err(AuditError::Tampered {
                seq,
                what: "its link to the previous entry is broken: an entry before it was edited, deleted or moved".into(),
            });
        }
        if entry.seq != seq {
            return Err(AuditError::Tampered {
                seq,
                what: format!(
                    "it says it is entry {}: entries were deleted or reordered",
                    entry.seq
                ),
            });
        }
        prev = hash_line(line);
        count = seq;
    }
    let Some(head) = head else {
        if count == 0 {
            // A node that never wrote an entry, or whose first append was interrupted.
            return Ok(0);
        }
        return Err(AuditError::Tampered {
            seq: count,
            what: format!("the signed head ({HEAD_SLOTS}) is missing or unreadable"),
        });
    };
    let signature = hex::decode(&head.signature).unwrap_or_default();
    if !signer.verify(&Head::message(head.seq, &head.hash), &signature) {
        return Err(AuditError::Tampered {
            seq: head.seq,
            what: "the head's signature is not the node's".into(),
        });
    }
    if head.seq > count {
        return Err(AuditError::Tampered {
            seq: count + 1,
            what: format!(
                "the signed head covers {} entries but the log has {count}: it was truncated",
                head.seq
            ),
        });
    }
    if head.hash != prev {
        return Err(AuditError::Tampered {
            seq: count,
            what: "the last entry differs from the one the head signed: it was edited".into(),
        });
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn log(dir: &Path) -> (AuditLog, Arc<DevIssuer>) {
        let issuer = Arc::new(DevIssuer::load_or_create(dir, "urn:agora:node:test").unwrap());
        (
            AuditLog::open(dir, issuer.clone(), Arc::new(SystemClock)).unwrap(),
            issuer,
        )
    }

    fn record(n: u64) -> Record {
        Record {
            event: "release".into(),
            who: "alice".into(),
            agreement: "urn:uuid:a".into(),
            dataset: if n.is_multiple_of(2) {
                "health".into()
            } else {
                "climate".into()
            },
            part: Some(format!("shard-{n}")),
            rows: n * 10,
            bytes: n * 100,
        }
    }

    fn lines(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("audit/log.jsonl"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write(dir: &Path, lines: &[String]) {
        std::fs::write(
            dir.join("audit/log.jsonl"),
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
    }

    #[test]
    fn an_intact_log_verifies_and_every_kind_of_tampering_is_caught() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let (audit, issuer) = log(dir);
        for n in 1..=5 {
            audit.append(record(n)).unwrap();
        }
        assert_eq!(verify(dir, &issuer).unwrap(), 5);
        assert_eq!(audit.entries_for("health").unwrap().len(), 2);
        let original = lines(dir);

        let mut edited = original.clone();
        edited[1] = edited[1].replace("\"rows\":20", "\"rows\":2");
        write(dir, &edited);
        assert!(matches!(
            verify(dir, &issuer),
            Err(AuditError::Tampered { seq: 3, .. })
        ));

        let mut deleted = original.clone();
        deleted.remove(2);
        write(dir, &deleted);
        assert!(verify(dir, &issuer).is_err());

        let mut reordered = original.clone();
        reordered.swap(1, 2);
        write(dir, &reordered);
        assert!(verify(dir, &issuer).is_err());

        write(dir, &original[..4]);
        let truncated = verify(dir, &issuer).unwrap_err().to_string();
        assert!(truncated.contains("truncated"), "{truncated}");

        let mut last_edited = original.clone();
        last_edited[4] = last_edited[4].replace("alice", "mallory");
        write(dir, &last_edited);
        assert!(
            verify(dir, &issuer)
                .unwrap_err()
                .to_string()
                .contains("edited")
        );

        write(dir, &original);
        assert_eq!(verify(dir, &issuer).unwrap(), 5);
    }

    /// The five tampering classes of matrix R33.
    #[derive(Debug, Clone, Copy)]
    enum Tampering {
        /// One character of one entry changed.
        Edit,
        /// One entry that is not the last removed.
        Delete,
        /// Two entries swapped.
        Reorder,
        /// The log cut after some entry (possibly to nothing).
        Truncate,
        /// One character of the last entry changed.
        EditLast,
    }

    /// `line` with one character replaced by another printable ASCII one (never a line break).
    fn edit(line: &mut String, rng: &mut impl rand::Rng) {
        let mut bytes = line.as_bytes().to_vec();
        let at = rng.gen_range(0..bytes.len());
        let new = loop {
            let c = rng.gen_range(0x20u8..0x7f);
            if c != bytes[at] {
                break c;
            }
        };
        bytes[at] = new;
        *line = String::from_utf8(bytes).expect("an ASCII edit of an ASCII line");
    }

    /// `lines` changed by one random instance of `class`; never equal to `lines`.
    fn tamper(lines: &[String], class: Tampering, rng: &mut impl rand::Rng) -> Vec<String> {
        let mut out = lines.to_vec();
        match class {
            Tampering::Edit => {
                let at = rng.gen_range(0..out.len());
                edit(&mut out[at], rng);
            }
            Tampering::EditLast => {
                let last = out.len() - 1;
                edit(&mut out[last], rng);
            }
            Tampering::Delete => {
                out.remove(rng.gen_range(0..out.len() - 1));
            }
            Tampering::Reorder => {
                let a = rng.gen_range(0..out.len());
                let b = loop {
                    let b = rng.gen_range(0..out.len());
                    if b != a {
                        break b;
                    }
                };
                out.swap(a, b);
            }
            Tampering::Truncate => out.truncate(rng.gen_range(0..out.len())),
        }
        assert_ne!(out, lines, "{class:?} changed nothing");
        out
    }

    /// Matrix R33: 100 seeded random trials per tampering class (edit, delete, reorder,
    /// truncate, edit the last entry), each on a log of 2 to 12 entries, and the verifier
    /// catches every one. The log is restored between trials and verifies again, so a trial
    /// never sees an earlier trial's damage.
    #[test]
    fn a_hundred_random_tamperings_per_class_are_all_detected() {
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(20_261_125);
        let logs: Vec<(tempfile::TempDir, Arc<DevIssuer>, Vec<String>)> = (2..=12)
            .map(|n| {
                let temp = tempfile::tempdir().unwrap();
                let (audit, issuer) = log(temp.path());
                for i in 1..=n {
                    audit.append(record(i)).unwrap();
                }
                let original = lines(temp.path());
                assert_eq!(original.len(), n as usize);
                (temp, issuer, original)
            })
            .collect();
        let classes = [
            Tampering::Edit,
            Tampering::Delete,
            Tampering::Reorder,
            Tampering::Truncate,
            Tampering::EditLast,
        ];
        for class in classes {
            for trial in 0..100 {
                let (temp, issuer, original) = &logs[rng.gen_range(0..logs.len())];
                let dir = temp.path();
                let tampered = tamper(original, class, &mut rng);
                write(dir, &tampered);
                let outcome = verify(dir, issuer);
                assert!(
                    matches!(outcome, Err(AuditError::Tampered { .. })),
                    "{class:?} trial {trial} on a log of {} entries went unnoticed: {outcome:?}\n{}",
                    original.len(),
                    tampered.join("\n")
                );
                write(dir, original);
                assert_eq!(verify(dir, issuer).unwrap(), original.len() as u64);
            }
        }
    }

    #[test]
    fn a_torn_last_line_is_dropped_on_open_and_the_chain_continues() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        {
            let (audit, _) = log(dir);
            audit.append(record(1)).unwrap();
        }
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.join("audit/log.jsonl"))
            .unwrap();
        file.write_all(b"{\"seq\":2,\"at\":").unwrap();
        let (audit, issuer) = log(dir);
        audit.append(record(2)).unwrap();
        assert_eq!(verify(dir, &issuer).unwrap(), 2);
    }

    /// Found by the crash harness (R39): a kill between an entry's fsync and the head's rename
    /// left a whole unsigned line, which `verify` called truncation. The lines after the head
    /// (a whole group of them since appends commit in groups) were never acknowledged:
    /// `verify` leaves them uncounted and `open` drops them.
    #[test]
    fn an_entry_written_after_the_signed_head_is_unacknowledged_not_tampering() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let head = dir.join("audit/head.slots");
        let signed_head = {
            let (audit, _) = log(dir);
            audit.append(record(1)).unwrap();
            let signed_head = std::fs::read(&head).unwrap();
            audit.append(record(2)).unwrap();
            signed_head
        };
        // The state a crash after the second line's fsync leaves: the head still covers one.
        std::fs::write(&head, &signed_head).unwrap();
        let (_, issuer) = log(dir);
        assert_eq!(verify(dir, &issuer).unwrap(), 1);
        let full = lines(dir);
        assert_eq!(full.len(), 1, "open dropped the unacknowledged entry");

        // An interrupted first append: no head yet.
        let fresh = tempfile::tempdir().unwrap();
        {
            let (audit, _) = log(fresh.path());
            audit.append(record(1)).unwrap();
        }
        std::fs::remove_file(fresh.path().join("audit/head.slots")).unwrap();
        assert_eq!(verify(fresh.path(), &issuer).unwrap_or(99), 0);

        // A group of two lines after the head.
        {
            let (audit, _) = log(dir);
            audit.append(record(2)).unwrap();
            audit.append(record(3)).unwrap();
        }
        std::fs::write(&head, &signed_head).unwrap();
        assert_eq!(verify(dir, &issuer).unwrap(), 1);
        let (audit, issuer) = log(dir);
        assert_eq!(lines(dir).len(), 1, "open dropped the whole group");
        audit.append(record(4)).unwrap();
        assert_eq!(verify(dir, &issuer).unwrap(), 2);

        // A new log is signed empty, so a head removed later is tampering even after a crash.
        let first = tempfile::tempdir().unwrap();
        {
            let (audit, _) = log(first.path());
            audit.append(record(1)).unwrap();
            audit.append(record(2)).unwrap();
        }
        std::fs::remove_file(first.path().join("audit/head.slots")).unwrap();
        let missing = verify(first.path(), &issuer).unwrap_err().to_string();
        assert!(missing.contains("missing"), "{missing}");
    }

    /// The head is written in place, in the two slots by turns: each append leaves the
    /// previous head in the other slot, a slot that holds anything but a head the node signed
    /// is tampering, and a log kept with the legacy `head.json` moves into the slots.
    #[test]
    fn heads_take_turns_in_two_slots_and_a_spoiled_slot_is_tampering() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let slots = dir.join("audit/head.slots");
        let (audit, issuer) = log(dir);
        let heads = |bytes: &[u8]| -> Vec<u64> {
            bytes
                .chunks(SLOT)
                .map(|slot| {
                    let text = String::from_utf8_lossy(slot);
                    serde_json::from_str::<Head>(text.trim()).map_or(u64::MAX, |h| h.seq)
                })
                .collect()
        };
        assert_eq!(heads(&std::fs::read(&slots).unwrap()), vec![0]);
        audit.append(record(1)).unwrap();
        assert_eq!(heads(&std::fs::read(&slots).unwrap()), vec![0, 1]);
        audit.append(record(2)).unwrap();
        audit.append(record(3)).unwrap();
        let bytes = std::fs::read(&slots).unwrap();
        assert_eq!(bytes.len(), 2 * SLOT, "written in place, never grown");
        assert_eq!(heads(&bytes), vec![2, 3]);
        drop(audit);
        assert_eq!(verify(dir, &issuer).unwrap(), 3);

        // Any byte changed in either slot.
        for at in [10, SLOT + 10] {
            let mut spoiled = bytes.clone();
            spoiled[at] ^= 0x01;
            std::fs::write(&slots, &spoiled).unwrap();
            let error = verify(dir, &issuer).unwrap_err().to_string();
            assert!(error.contains("tampered"), "byte {at}: {error}");
        }
        std::fs::write(&slots, &bytes).unwrap();
        assert_eq!(verify(dir, &issuer).unwrap(), 3);

        // A log kept with head.json (before the slots) is read, then moved into the slots.
        let legacy = tempfile::tempdir().unwrap();
        let issuer = {
            let (audit, issuer) = log(legacy.path());
            audit.append(record(1)).unwrap();
            audit.append(record(2)).unwrap();
            issuer
        };
        let audit_dir = legacy.path().join("audit");
        let (head, _) = read_head(&audit_dir, &issuer).unwrap().unwrap();
        std::fs::remove_file(audit_dir.join(HEAD_SLOTS)).unwrap();
        std::fs::write(
            audit_dir.join(LEGACY_HEAD),
            serde_json::to_string(&head).unwrap(),
        )
        .unwrap();
        assert_eq!(
            verify(legacy.path(), &issuer).unwrap(),
            2,
            "the legacy head"
        );
        let (audit, issuer) = log(legacy.path());
        assert!(
            !audit_dir.join(LEGACY_HEAD).exists(),
            "moved into the slots"
        );
        audit.append(record(3)).unwrap();
        assert_eq!(verify(legacy.path(), &issuer).unwrap(), 3);
        assert_eq!(
            heads(&std::fs::read(audit_dir.join(HEAD_SLOTS)).unwrap()),
            vec![2, 3]
        );
    }

    #[test]
    fn concurrent_appends_are_all_acknowledged_under_the_signed_head() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let (audit, issuer) = log(dir);
        let audit = Arc::new(audit);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let audit = audit.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|n| audit.append(record(t * 100 + n)).unwrap().seq)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seqs: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
        // Every acknowledged entry is under the signed head, with no pending tail.
        assert_eq!(verify(dir, &issuer).unwrap(), 200);
        assert_eq!(lines(dir).len(), 200);
    }
}
