//! Serialised dataset descriptions kept in memory, compressed, so a read of a dataset that did
//! not change costs a hash lookup and a decompression instead of a store scan, vocabulary
//! enrichment and JSON-LD compaction.
//!
//! Validity is tracked per dataset, not per catalogue: publishing dataset A leaves the cached
//! description of B valid. Every entry remembers the catalogue generation it was made in, and
//! the cache remembers the generation after the last write to each dataset; an entry made
//! before that write is stale. A reader notes the generation *before* it reads the store, so a
//! write that races with the read makes its entry stale rather than wrong.

use super::export::ExportFormat;
use bytes::Bytes;
use std::collections::HashMap;

/// What a committed write changed, for [`ExportCache::invalidate`].
#[derive(Debug)]
pub(crate) enum Change<'a> {
    /// The named local datasets (publish, replace, delete).
    Datasets(&'a [&'a str]),
    /// Harvested peer graphs: every `{peer}:{id}` description may have changed.
    Peers,
    /// Something every description depends on (the vocabularies, an operator graph).
    Everything,
}

/// A description as the cache keeps it: an LZ4 block with the uncompressed size in front.
/// Compressing and decompressing happen outside the cache's lock.
#[derive(Debug, Clone)]
pub(crate) struct Compressed(std::sync::Arc<[u8]>);

impl Compressed {
    /// Compresses a serialised description.
    pub(crate) fn new(bytes: &[u8]) -> Self {
        Self(lz4_flex::block::compress_prepend_size(bytes).into())
    }

    /// The serialised description again; `None` only if the block were corrupt.
    pub(crate) fn decompress(&self) -> Option<Bytes> {
        lz4_flex::block::decompress_size_prepended(&self.0)
            .ok()
            .map(Bytes::from)
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// One cached description.
#[derive(Debug)]
struct Entry {
    made_in: u64,
    compressed: Compressed,
}

/// The cache; the catalogue holds it behind a mutex.
#[derive(Debug)]
pub(crate) struct ExportCache {
    /// Most compressed bytes kept.
    budget: usize,
    entries: HashMap<(String, ExportFormat), Entry>,
    /// Compressed bytes held.
    bytes: usize,
    /// The generation after the last write to each local dataset written since start.
    written: HashMap<String, u64>,
    /// The generation after the last write to any peer graph.
    peers_written: u64,
    /// Entries made before this generation are stale (the last [`Change::Everything`]).
    floor: u64,
}

impl Default for ExportCache {
    /// 256 MiB: descriptions compress about fivefold, so this holds the JSON-LD of a
    /// 100,000-dataset catalogue.
    fn default() -> Self {
        Self::with_budget(256 << 20)
    }
}

impl ExportCache {
    /// A cache that keeps at most `budget` compressed bytes.
    pub(crate) fn with_budget(budget: usize) -> Self {
        Self {
            budget,
            entries: HashMap::new(),
            bytes: 0,
            written: HashMap::new(),
            peers_written: 0,
            floor: 0,
        }
    }

    /// The compressed description of `id` in `format`, if one made after the last write to it
    /// is cached; [`Compressed::decompress`] it after letting go of the cache's lock.
    pub(crate) fn get(&self, id: &str, format: ExportFormat) -> Option<Compressed> {
        let entry = self.entries.get(&(id.to_owned(), format))?;
        if entry.made_in < self.floor
            || entry.made_in < self.written.get(id).copied().unwrap_or(0)
            || (is_harvested(id) && entry.made_in < self.peers_written)
        {
            return None;
        }
        Some(entry.compressed.clone())
    }

    /// Whether a current description of `id` in `format` is cached (no copy made).
    pub(crate) fn holds(&self, id: &str, format: ExportFormat) -> bool {
        self.get(id, format).is_some()
    }

    /// Whether the cache is nearly full: warming more would only evict what was warmed.
    pub(crate) fn nearly_full(&self) -> bool {
        self.bytes > self.budget - self.budget / 8
    }

    /// Keeps `compressed`, the description of `id` read in generation `made_in`. Makes room by
    /// evicting arbitrary entries (the hash order), which for reads spread over a catalogue
    /// larger than the budget keeps the hit rate at budget / catalogue size.
    pub(crate) fn insert(
        &mut self,
        id: &str,
        format: ExportFormat,
        made_in: u64,
        compressed: Compressed,
    ) {
        if compressed.len() > self.budget / 16 {
            return;
        }
        if self.bytes + compressed.len() > self.budget {
            self.evict(self.budget - self.budget / 8);
        }
        self.bytes += compressed.len();
        let entry = Entry {
            made_in,
            compressed,
        };
        if let Some(old) = self.entries.insert((id.to_owned(), format), entry) {
            self.bytes -= old.compressed.len();
        }
    }

    /// Records a committed write: `generation` is the catalogue generation after it.
    pub(crate) fn invalidate(&mut self, change: Change<'_>, generation: u64) {
        match change {
            Change::Datasets(ids) => {
                for id in ids {
                    self.written.insert((*id).to_owned(), generation);
                    for format in ExportFormat::ALL {
                        if let Some(old) = self.entries.remove(&((*id).to_owned(), format)) {
                            self.bytes -= old.compressed.len();
                        }
                    }
                }
            }
            Change::Peers => self.peers_written = generation,
            Change::Everything => {
                self.floor = generation;
                self.entries.clear();
                self.bytes = 0;
            }
        }
    }

    fn evict(&mut self, target: usize) {
        let mut bytes = self.bytes;
        self.entries.retain(|_, entry| {
            if bytes <= target {
                return true;
            }
            bytes -= entry.compressed.len();
            false
        });
        self.bytes = bytes;
    }
}

/// Harvested datasets are named `{peer}:{id}`; local ids never contain a colon.
fn is_harvested(id: &str) -> bool {
    id.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: ExportFormat = ExportFormat::JsonLd;

    fn read(cache: &ExportCache, id: &str) -> Option<Bytes> {
        cache.get(id, JSON).and_then(|c| c.decompress())
    }

    #[test]
    fn an_entry_survives_writes_to_other_datasets_but_not_to_its_own() {
        let mut cache = ExportCache::default();
        cache.insert("a", JSON, 1, Compressed::new(b"{\"a\":1}"));
        cache.insert("b", JSON, 1, Compressed::new(b"{\"b\":1}"));
        cache.invalidate(Change::Datasets(&["b"]), 2);
        assert_eq!(read(&cache, "a").as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(read(&cache, "b"), None);
        // A reader that started before the write (generation 1) cannot put back stale bytes.
        cache.insert("b", JSON, 1, Compressed::new(b"{\"b\":1}"));
        assert_eq!(read(&cache, "b"), None);
        cache.insert("b", JSON, 2, Compressed::new(b"{\"b\":2}"));
        assert_eq!(read(&cache, "b").as_deref(), Some(&b"{\"b\":2}"[..]));
    }

    #[test]
    fn peer_changes_stale_only_harvested_entries_and_everything_stales_all() {
        let mut cache = ExportCache::default();
        cache.insert("a", JSON, 1, Compressed::new(b"local"));
        cache.insert("peer:x", JSON, 1, Compressed::new(b"harvested"));
        cache.invalidate(Change::Peers, 2);
        assert!(cache.get("a", JSON).is_some());
        assert!(cache.get("peer:x", JSON).is_none());
        cache.invalidate(Change::Everything, 3);
        assert!(cache.get("a", JSON).is_none());
        assert_eq!(cache.bytes, 0);
    }

    #[test]
    fn the_budget_holds_and_accounting_stays_exact() {
        let mut cache = ExportCache::with_budget(1 << 20);
        // Incompressible bodies of 16 KiB, 300 of them: more than the 1 MiB budget.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for n in 0..300 {
            let body: Vec<u8> = (0..16 << 10)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            cache.insert(&format!("d{n}"), JSON, 1, Compressed::new(&body));
            assert!(cache.bytes <= cache.budget);
        }
        let held: usize = cache.entries.values().map(|e| e.compressed.len()).sum();
        assert_eq!(held, cache.bytes);
        // 1 MiB holds about 64 of them; eviction frees an eighth at a time.
        assert!(
            (50..=64).contains(&cache.entries.len()),
            "{}",
            cache.entries.len()
        );
    }
}
