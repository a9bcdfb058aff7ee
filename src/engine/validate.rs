//! Every Parquet file is hostile until a child process has decoded all of it.
//!
//! arrow-rs still panics, over-allocates or silently misreads on malformed Parquet (SECURITY.md
//! §9: about one byte-mutant in 4,650 panics, and a declared page size is allocated before it is
//! checked). So before the node's own DataFusion plan reads a file, `agora validate-parquet FILE`
//! decodes every page of it in a child process whose address space is capped (`RLIMIT_AS`) and
//! whose run time is bounded; a panic, an allocation failure (a decompression bomb) or a decode
//! error there ends only the child, and the request that needed the file gets a clear
//! `source-unreadable` problem. A verdict is kept per file for as long as its size and
//! modification time do not change.

use super::EngineError;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The subcommand of the node's executable that validates one file.
pub const SUBCOMMAND: &str = "validate-parquet";

/// The address space a validating child may use.
pub const MEMORY_LIMIT: u64 = 1 << 30;

/// How long a validating child may run on one file.
pub const TIME_LIMIT: Duration = Duration::from_secs(30);

/// What the child does: decodes every row group, column and page of `path` with the same
/// reader the engine uses, and counts the rows. Any error, or a panic caught here, is the
/// verdict.
pub fn decode_fully(path: &Path) -> Result<u64, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open the file: {e}"))?;
    let outcome = std::panic::catch_unwind(move || -> Result<u64, String> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| format!("not a readable Parquet file: {e}"))?
            .with_batch_size(8192)
            .build()
            .map_err(|e| format!("not a readable Parquet file: {e}"))?;
        let mut rows = 0u64;
        for batch in reader {
            let batch = batch.map_err(|e| format!("a page cannot be decoded: {e}"))?;
            rows += batch.num_rows() as u64;
        }
        Ok(rows)
    });
    match outcome {
        Ok(verdict) => verdict,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("the Parquet decoder failed on it ({message})"))
        }
    }
}

/// The verdict on one version of one file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Version {
    path: PathBuf,
    size: u64,
    modified: Option<SystemTime>,
}

/// Runs validating children and remembers their verdicts.
#[derive(Debug)]
pub struct Validator {
    executable: Option<PathBuf>,
    verdicts: Mutex<HashMap<Version, Result<(), String>>>,
}

impl Validator {
    /// A validator that starts `executable validate-parquet FILE` for each new file. Without an
    /// executable (library tests), files are decoded in-process under `catch_unwind`.
    pub fn new(executable: Option<PathBuf>) -> Self {
        Self {
            executable,
            verdicts: Mutex::new(HashMap::new()),
        }
    }

    /// Checks every Parquet file of a source (a file, or a folder searched recursively).
    /// Blocking: call it off the async executor.
    pub fn check_source(&self, path: &Path, format: &str) -> Result<(), EngineError> {
        if format != "parquet" {
            return Ok(());
        }
        let mut files = Vec::new();
        collect_parquet(path, &mut files);
        files.sort();
        for file in files {
            self.check_file(path, &file)?;
        }
        Ok(())
    }

    fn check_file(&self, root: &Path, file: &Path) -> Result<(), EngineError> {
        let metadata = std::fs::metadata(file)
            .map_err(|_| EngineError::Source("a file of the dataset disappeared".into()))?;
        let version = Version {
            path: file.to_owned(),
            size: metadata.len(),
            modified: metadata.modified().ok(),
        };
        let known = self
            .verdicts
            .lock()
            .ok()
            .and_then(|v| v.get(&version).cloned());
        let verdict = match known {
            Some(verdict) => verdict,
            None => {
                let verdict = self.run(file);
                if let Ok(mut verdicts) = self.verdicts.lock() {
                    verdicts.insert(version, verdict.clone());
                }
                verdict
            }
        };
        verdict.map_err(|reason| {
            // Name the file relative to the dataset, never by its place on the node's disk.
            let name = file
                .strip_prefix(root)
                .ok()
                .filter(|p| !p.as_os_str().is_empty())
                .or_else(|| file.file_name().map(Path::new))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            tracing::warn!(file = %file.display(), %reason, "a Parquet file failed validation");
            EngineError::Source(format!(
                "the dataset's file `{name}` is damaged and was not read: {reason}; the data holder must replace it"
            ))
        })
    }

    fn run(&self, file: &Path) -> Result<(), String> {
        let Some(executable) = &self.executable else {
            return decode_fully(file).map(drop);
        };
        let mut command = Command::new(executable);
        command
            .arg(SUBCOMMAND)
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("MALLOC_ARENA_MAX", "1");
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: only async-signal-safe libc calls run between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    let rlimit = libc::rlimit {
                        rlim_cur: MEMORY_LIMIT as libc::rlim_t,
                        rlim_max: MEMORY_LIMIT as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("the node could not start its file validator ({e})"))?;
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() > TIME_LIMIT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "decoding it took longer than {} s",
                        TIME_LIMIT.as_secs()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("the file validator was lost ({e})")),
            }
        };
        if status.success() {
            return Ok(());
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use std::io::Read as _;
            let _ = pipe.by_ref().take(4096).read_to_string(&mut stderr);
        }
        let reported = stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("invalid: "))
            .map(str::to_owned);
        Err(reported.unwrap_or_else(|| {
            format!(
                "decoding it needs more than {} MiB or crashes the decoder",
                MEMORY_LIMIT >> 20
            )
        }))
    }
}

fn collect_parquet(path: &Path, files: &mut Vec<PathBuf>) {
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    if metadata.is_file() {
        files.push(path.to_owned());
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let child = entry.path();
        let hidden = child
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.') || n.starts_with('_'));
        if hidden {
            continue;
        }
        if child.is_dir() {
            collect_parquet(&child, files);
        } else if child.extension().and_then(|e| e.to_str()) == Some("parquet") {
            files.push(child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_file_is_refused_in_process_and_named_relatively() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("part-0.parquet");
        std::fs::write(&file, b"PAR1 this is not parquet").unwrap();
        let error = Validator::new(None)
            .check_source(dir.path(), "parquet")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`part-0.parquet` is damaged"), "{error}");
        assert!(
            !error.contains(&dir.path().display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn text_formats_are_not_decoded_here() {
        Validator::new(None)
            .check_source(Path::new("/nonexistent"), "csv")
            .unwrap();
    }
}
