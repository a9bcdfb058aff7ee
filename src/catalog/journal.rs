//! The recent writes to the catalogue, by generation, so that what other modules derive from
//! it (the DSP offers, the change feed) is brought up to date by the datasets that changed
//! instead of being rebuilt from every dataset after each write.

use super::export_cache::Change;
use std::collections::{HashSet, VecDeque};

/// One committed write as the journal keeps it.
#[derive(Debug)]
enum Written {
    Datasets(Vec<String>),
    Peers,
    Everything,
}

/// A bounded log of `(generation after the write, what it wrote)`.
#[derive(Debug)]
pub(crate) struct ChangeJournal {
    entries: VecDeque<(u64, Written)>,
    capacity: usize,
}

impl Default for ChangeJournal {
    /// 4,096 writes: a batch publish is one write, so this reaches back well past any cache
    /// that is refreshed on demand.
    fn default() -> Self {
        Self::with_capacity(4096)
    }
}

impl ChangeJournal {
    /// A journal that remembers the last `capacity` writes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
        }
    }

    /// Records the write that moved the catalogue to `generation`.
    pub(crate) fn record(&mut self, change: &Change<'_>, generation: u64) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        let written = match change {
            Change::Datasets(ids) => {
                Written::Datasets(ids.iter().map(|id| (*id).to_owned()).collect())
            }
            Change::Peers => Written::Peers,
            Change::Everything => Written::Everything,
        };
        self.entries.push_back((generation, written));
    }

    /// The local datasets written after `generation`, up to `now` (the current generation).
    /// `None` when the journal no longer reaches back that far or a write changed everything:
    /// the caller rebuilds in full.
    pub(crate) fn local_since(&self, generation: u64, now: u64) -> Option<HashSet<String>> {
        if generation == now {
            return Some(HashSet::new());
        }
        // Generations are consecutive: the journal must hold generation + 1 onwards.
        let oldest = self.entries.front()?.0;
        if oldest > generation + 1 || generation > now {
            return None;
        }
        let mut ids = HashSet::new();
        for (made, written) in &self.entries {
            if *made <= generation || *made > now {
                continue;
            }
            match written {
                Written::Datasets(written) => ids.extend(written.iter().cloned()),
                Written::Peers => {}
                Written::Everything => return None,
            }
        }
        Some(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_datasets_written_since_a_generation_are_named() {
        let mut journal = ChangeJournal::with_capacity(3);
        journal.record(&Change::Datasets(&["a", "b"]), 1);
        journal.record(&Change::Peers, 2);
        journal.record(&Change::Datasets(&["c"]), 3);
        let ids = |set: Option<HashSet<String>>| {
            let mut ids: Vec<String> = set.expect("within reach").into_iter().collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(journal.local_since(0, 3)), ["a", "b", "c"]);
        assert_eq!(ids(journal.local_since(1, 3)), ["c"]);
        assert_eq!(ids(journal.local_since(2, 2)), Vec::<String>::new());
        // Capacity 3: after a fourth write, generation 0 is out of reach.
        journal.record(&Change::Datasets(&["d"]), 4);
        assert!(journal.local_since(0, 4).is_none());
        assert_eq!(ids(journal.local_since(1, 4)), ["c", "d"]);
        journal.record(&Change::Everything, 5);
        assert!(journal.local_since(3, 5).is_none());
        assert!(journal.local_since(5, 5).is_some());
    }
}
