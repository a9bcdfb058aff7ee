//! Training shards: the enforced view of an agreement cut once into Parquet files of a fixed
//! number of rows, each with its SHA-256, and a plan that hands every rank of a distributed job
//! its part of each epoch.
//!
//! The plan's guarantees come from one rule: for epoch `e` and seed `s`, the *global sample
//! order* is the shards in a permutation seeded by `(s, e)`, each shard's rows in file order,
//! cut to a multiple of the world size. Rank `r` of `w` gets the `r`-th of `w` equal contiguous
//! slices of that order. So the plan is deterministic, the ranks are disjoint and together
//! complete (up to fewer than `w` samples left out per epoch, a different few each epoch), every
//! rank gets exactly the same number of samples (unequal ranks deadlock collective operations),
//! and a job restarted with another world size continues the same global order. A rank resumes
//! from `(epoch, segment, offset)` without reading anything twice.

use super::EngineError;
use datafusion::arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::ArrowWriter;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per shard: small enough to fetch and verify in a second, large enough that per-shard
/// overhead does not matter.
pub const SHARD_ROWS: usize = 16_384;

/// One materialised shard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shard {
    /// Its number.
    pub n: usize,
    /// Its rows.
    pub rows: usize,
    /// SHA-256 (hex) of the Parquet file.
    pub sha256: String,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// Every shard of one agreement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Rows in all.
    pub rows: usize,
    /// The shards in global (unpermuted) order.
    pub shards: Vec<Shard>,
}

/// A rank's part of one shard in one epoch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Segment {
    /// The shard.
    pub n: usize,
    /// Where to fetch it (filled in by the HTTP layer).
    pub url: String,
    /// The shard's SHA-256 (hex), to check the download.
    pub sha256: String,
    /// Rows in the whole shard.
    pub shard_rows: usize,
    /// First row of the shard this rank takes.
    pub offset: usize,
    /// How many rows it takes from there.
    pub rows: usize,
}

/// Where an agreement's shards live.
pub fn directory(data_dir: &Path, agreement: &str) -> PathBuf {
    let digest = hex::encode(&Sha256::digest(agreement.as_bytes())[..16]);
    data_dir.join("shards").join(digest)
}

/// The path of shard `n`.
pub fn shard_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("{n:06}.parquet"))
}

/// Reads the manifest of `dir`, if the shards were materialised.
fn read_manifest(dir: &Path) -> Option<Manifest> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Manifests kept after their first read; beyond this many an arbitrary one is dropped (and
/// read from disk again when asked for).
const CACHED_MANIFESTS: usize = 1024;

/// Manifests by shard directory. Shards are cut once into a staging folder renamed into place
/// and never rewritten, so a manifest read once stays true.
#[derive(Debug, Default)]
pub struct ManifestCache {
    read: std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<Manifest>>>,
}

impl ManifestCache {
    /// The manifest of `dir`, from memory or else from disk; `None` until the shards are cut.
    pub fn get(&self, dir: &Path) -> Option<Arc<Manifest>> {
        if let Some(manifest) = self.lock().get(dir) {
            return Some(manifest.clone());
        }
        let manifest = Arc::new(read_manifest(dir)?);
        let mut read = self.lock();
        if read.len() >= CACHED_MANIFESTS
            && let Some(evicted) = read.keys().next().cloned()
        {
            read.remove(&evicted);
        }
        read.insert(dir.to_owned(), manifest.clone());
        Some(manifest)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<PathBuf, Arc<Manifest>>> {
        self.read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Cuts a stream of enforced batches into shards under `dir` (through a staging folder renamed
/// into place, so a crash never leaves a partial set that looks complete).
pub async fn materialise(
    mut batches: SendableRecordBatchStream,
    dir: &Path,
) -> Result<Manifest, EngineError> {
    let fail = |e: &dyn std::fmt::Display| EngineError::Internal(format!("writing shards: {e}"));
    let staging = dir.with_extension(format!("staging-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&staging).map_err(|e| fail(&e))?;
    let schema = batches.schema();
    let mut shards = Vec::new();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0;
    let mut total = 0;
    loop {
        let next = batches.next().await;
        let finished = next.is_none();
        if let Some(batch) = next {
            let batch = batch.map_err(|e| {
                EngineError::Source(format!("the dataset's files could not be read: {e}"))
            })?;
            pending_rows += batch.num_rows();
            pending.push(batch);
        }
        while pending_rows >= SHARD_ROWS || (finished && pending_rows > 0) {
            let take = pending_rows.min(SHARD_ROWS);
            let rows = split_off(&mut pending, take);
            pending_rows -= take;
            let n = shards.len();
            shards.push(write_shard(&staging, n, &schema, &rows).map_err(|e| fail(&e))?);
            total += take;
        }
        if finished {
            break;
        }
    }
    let manifest = Manifest {
        rows: total,
        shards,
    };
    let text = serde_json::to_string(&manifest).map_err(|e| fail(&e))?;
    std::fs::write(staging.join("manifest.json"), text).map_err(|e| fail(&e))?;
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| fail(&e))?;
    }
    std::fs::rename(&staging, dir).map_err(|e| fail(&e))?;
    Ok(manifest)
}

/// Takes the first `rows` rows off the front of `pending`.
fn split_off(pending: &mut Vec<RecordBatch>, rows: usize) -> Vec<RecordBatch> {
    let mut taken = Vec::new();
    let mut left = rows;
    while left > 0 {
        let batch = pending.remove(0);
        if batch.num_rows() <= left {
            left -= batch.num_rows();
            taken.push(batch);
        } else {
            taken.push(batch.slice(0, left));
            pending.insert(0, batch.slice(left, batch.num_rows() - left));
            left = 0;
        }
    }
    taken
}

fn write_shard(
    dir: &Path,
    n: usize,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<Shard, Box<dyn std::error::Error>> {
    let path = shard_path(dir, n);
    let file = std::fs::File::create(&path)?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None)?;
    let mut rows = 0;
    for batch in batches {
        rows += batch.num_rows();
        writer.write(batch)?;
    }
    writer.close()?;
    let bytes = std::fs::read(&path)?;
    Ok(Shard {
        n,
        rows,
        sha256: hex::encode(Sha256::digest(&bytes)),
        bytes: bytes.len() as u64,
    })
}

/// SplitMix64: a tiny generator whose output is fixed forever (a library's "standard" RNG may
/// change between versions, and the shard order must not).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The shard order of one epoch: a seeded Fisher–Yates permutation.
pub fn permutation(shards: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..shards).collect();
    let mut state = seed ^ epoch.wrapping_mul(0xD134_2543_DE82_EF95);
    for i in (1..shards).rev() {
        let j = usize::try_from(splitmix(&mut state) % (i as u64 + 1)).unwrap_or(0);
        order.swap(i, j);
    }
    order
}

/// The segments of `rank` of `world_size` in `epoch`.
pub fn plan(
    manifest: &Manifest,
    world_size: usize,
    rank: usize,
    epoch: u64,
    seed: u64,
) -> Result<Vec<Segment>, EngineError> {
    if world_size == 0 || rank >= world_size {
        return Err(EngineError::BadRequest(format!(
            "rank must be below world_size (got rank {rank} of {world_size})"
        )));
    }
    let per_rank = manifest.rows / world_size;
    let (start, end) = (rank * per_rank, (rank + 1) * per_rank);
    let mut segments = Vec::new();
    let mut position = 0;
    for n in permutation(manifest.shards.len(), seed, epoch) {
        let shard = &manifest.shards[n];
        let (from, to) = (position, position + shard.rows);
        position = to;
        let (lo, hi) = (from.max(start), to.min(end));
        if lo < hi {
            segments.push(Segment {
                n,
                url: String::new(),
                sha256: shard.sha256.clone(),
                shard_rows: shard.rows,
                offset: lo - from,
                rows: hi - lo,
            });
        }
        if position >= end {
            break;
        }
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn manifest(sizes: &[usize]) -> Manifest {
        Manifest {
            rows: sizes.iter().sum(),
            shards: sizes
                .iter()
                .enumerate()
                .map(|(n, &rows)| Shard {
                    n,
                    rows,
                    sha256: format!("{n}"),
                    bytes: 0,
                })
                .collect(),
        }
    }

    fn samples(m: &Manifest, segments: &[Segment]) -> Vec<(usize, usize)> {
        let _ = m;
        segments
            .iter()
            .flat_map(|s| (s.offset..s.offset + s.rows).map(move |r| (s.n, r)))
            .collect()
    }

    #[test]
    fn ranks_are_equal_disjoint_and_nearly_complete_for_any_world_size() {
        let m = manifest(&[100, 100, 100, 37]);
        for world in 1..=9 {
            let mut seen = HashSet::new();
            let mut sizes = HashSet::new();
            for rank in 0..world {
                let got = samples(&m, &plan(&m, world, rank, 3, 42).unwrap());
                sizes.insert(got.len());
                for sample in got {
                    assert!(
                        seen.insert(sample),
                        "sample {sample:?} twice with world {world}"
                    );
                }
            }
            assert_eq!(
                sizes.len(),
                1,
                "unequal ranks with world {world}: {sizes:?}"
            );
            assert!(
                m.rows - seen.len() < world,
                "world {world} left out {}",
                m.rows - seen.len()
            );
        }
    }

    #[test]
    fn the_global_order_is_seeded_per_epoch_and_independent_of_world_size() {
        let m = manifest(&[10, 10, 10, 10, 10, 10]);
        let global = |world: usize| -> Vec<(usize, usize)> {
            (0..world)
                .flat_map(|r| samples(&m, &plan(&m, world, r, 1, 7).unwrap()))
                .collect()
        };
        assert_eq!(global(1), global(2));
        assert_eq!(global(2)[..30], global(3)[..30]);
        assert_ne!(permutation(6, 7, 1), permutation(6, 7, 2));
        assert_eq!(permutation(6, 7, 1), permutation(6, 7, 1));
        assert!(plan(&m, 2, 2, 0, 0).is_err());
        assert!(plan(&m, 0, 0, 0, 0).is_err());
    }
}
