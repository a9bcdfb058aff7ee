//! Fetching an agreement's data from a node's data plane to local files, for `agora pull`:
//! the rank's shard plan, then every shard as Parquet, each checked against its SHA-256.
//!
//! A pull that breaks off resumes where it stopped: a shard already on disk with the right
//! digest is kept, a `.part` file is continued with an HTTP `Range` request (the node charges a
//! shard's rows once, on the request that starts at byte 0), and a file whose digest is wrong
//! is fetched again once before the pull fails. Nothing incomplete ever has the final name.

use sha2::{Digest, Sha256};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a pull failed; each variant says whose side the fault is on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached or the connection broke.
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The node refused (its problem+json detail when it gave one).
    #[error("the node refused {url} ({status}): {detail}")]
    Refused {
        /// What was asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The node's explanation.
        detail: String,
    },
    /// The node's answer is not what the protocol promises.
    #[error("the node's answer to {url} is not a shard plan: {reason}")]
    Protocol {
        /// What was asked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A shard arrived twice with a digest other than the plan's.
    #[error(
        "shard {n} does not match its SHA-256 after a second download; the node or the network corrupts it"
    )]
    Corrupt {
        /// The shard number.
        n: usize,
    },
    /// The local folder cannot be written.
    #[error("cannot write {path}: {reason}")]
    Local {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
}

/// A `Result` of this module.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// One shard of a rank's plan, as the node describes it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PlannedShard {
    /// The shard number.
    pub n: usize,
    /// Where to fetch it.
    pub url: String,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// Rows in the shard.
    pub shard_rows: usize,
}

/// How far a pull has come, reported after every chunk and every shard.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Shards complete on disk (kept or fetched).
    pub shards_done: usize,
    /// Shards in the plan.
    pub shards_total: usize,
    /// Bytes received in this run.
    pub bytes_received: u64,
    /// Shards found complete from an earlier run.
    pub shards_kept: usize,
}

/// What a finished pull wrote.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The shard files, in shard order.
    pub files: Vec<PathBuf>,
    /// Rows in all of them.
    pub rows: usize,
    /// The final progress.
    pub progress: Progress,
}

/// Downloads every shard of the agreement behind `endpoint` (the transfer's data-plane base,
/// `…/data/{agreement}`) into `dir`, resuming whatever an earlier run left there.
pub fn download_shards(
    endpoint: &str,
    token: &str,
    dir: &Path,
    mut report: impl FnMut(&Progress),
) -> Result<Pulled> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .tls_config(crate::federation::outbound::node_tls())
        .build()
        .into();
    let plan_url = format!("{endpoint}/shards?world_size=1&rank=0");
    let plan = fetch_plan(&agent, &plan_url, token)?;
    std::fs::create_dir_all(dir).map_err(|e| local(dir, &e))?;
    let mut progress = Progress {
        shards_total: plan.len(),
        ..Progress::default()
    };
    let mut files = Vec::with_capacity(plan.len());
    for shard in &plan {
        let target = dir.join(format!("shard-{:06}.parquet", shard.n));
        if digest_of(&target).is_some_and(|d| d.eq_ignore_ascii_case(&shard.sha256)) {
            progress.shards_kept += 1;
        } else {
            fetch_verified(&agent, shard, token, &target, &mut progress, &mut report)?;
        }
        progress.shards_done += 1;
        report(&progress);
        files.push(target);
    }
    Ok(Pulled {
        files,
        rows: plan.iter().map(|s| s.shard_rows).sum(),
        progress,
    })
}

fn local(path: &Path, error: &std::io::Error) -> ClientError {
    ClientError::Local {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

fn unreachable(url: &str, error: impl std::fmt::Display) -> ClientError {
    ClientError::Unreachable {
        url: url.to_owned(),
        reason: error.to_string(),
    }
}

fn refused(url: &str, status: u16, body: &str) -> ClientError {
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect());
    ClientError::Refused {
        url: url.to_owned(),
        status,
        detail,
    }
}

fn fetch_plan(agent: &ureq::Agent, url: &str, token: &str) -> Result<Vec<PlannedShard>> {
    let mut response = agent
        .get(url)
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .map_err(|e| unreachable(url, e))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .map_err(|e| unreachable(url, e))?;
    if status != 200 {
        return Err(refused(url, status, &body));
    }
    #[derive(serde::Deserialize)]
    struct Plan {
        shards: Vec<PlannedShard>,
    }
    serde_json::from_str::<Plan>(&body)
        .map(|p| p.shards)
        .map_err(|e| ClientError::Protocol {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}

/// The SHA-256 of a file, if it can be read.
fn digest_of(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).ok()?;
    Some(hex::encode(hasher.finalize()))
}

/// Fetches one shard into `target` through `target.part`, continuing a partial file, and
/// checks its digest; a mismatch is fetched once more from the start.
fn fetch_verified(
    agent: &ureq::Agent,
    shard: &PlannedShard,
    token: &str,
    target: &Path,
    progress: &mut Progress,
    report: &mut impl FnMut(&Progress),
) -> Result<()> {
    let partial = target.with_extension("parquet.part");
    for attempt in 0..2 {
        if attempt > 0 {
            let _ = std::fs::remove_file(&partial);
        }
        fetch_into(agent, shard, token, &partial, progress, report)?;
        if digest_of(&partial).is_some_and(|d| d.eq_ignore_ascii_case(&shard.sha256)) {
            std::fs::rename(&partial, target).map_err(|e| local(target, &e))?;
            return Ok(());
        }
    }
    let _ = std::fs::remove_file(&partial);
    Err(ClientError::Corrupt { n: shard.n })
}

fn fetch_into(
    agent: &ureq::Agent,
    shard: &PlannedShard,
    token: &str,
    partial: &Path,
    progress: &mut Progress,
    report: &mut impl FnMut(&Progress),
) -> Result<()> {
    let have = std::fs::metadata(partial).map_or(0, |m| m.len());
    let mut request = agent
        .get(&shard.url)
        .header("Authorization", format!("Bearer {token}"));
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = request.call().map_err(|e| unreachable(&shard.url, e))?;
    let status = response.status().as_u16();
    let append = match status {
        206 => true,
        200 => false,
        // The partial file is already whole (or longer than the shard): start again.
        416 => {
            std::fs::remove_file(partial).map_err(|e| local(partial, &e))?;
            return fetch_into(agent, shard, token, partial, progress, report);
        }
        _ => {
            let body = response.body_mut().read_to_string().unwrap_or_default();
            return Err(refused(&shard.url, status, &body));
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(partial)
        .map_err(|e| local(partial, &e))?;
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = reader
            .read(&mut buffer)
            .map_err(|e| unreachable(&shard.url, e))?;
        if read == 0 {
            break;
        }
        file.write_all(&buffer[..read])
            .map_err(|e| local(partial, &e))?;
        progress.bytes_received += read as u64;
        report(progress);
    }
    file.sync_all().map_err(|e| local(partial, &e))
}
