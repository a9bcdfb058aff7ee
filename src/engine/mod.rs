//! The data side of the node: the sector data pools of `connectors/` (manifests and their
//! deterministic demo data), and the governed data plane that releases a dataset's rows under
//! an agreement, with the agreed policy applied inside the DataFusion plan ([`enforce`]).

pub mod access;
pub mod aggregate;
pub mod enforce;
mod generalise;
pub mod pools;
pub mod remote;
pub mod shards;
pub mod validate;

use crate::catalog::ConnectorRef;
use datafusion::execution::object_store::DefaultObjectStoreRegistry;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why data could not be released; every variant but [`EngineError::Internal`] describes the
/// request, the policy or the dataset's files.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The consumer asked for something the agreement does not release.
    #[error("{0}")]
    BadRequest(String),
    /// The agreed policy cannot be applied to this dataset.
    #[error("the agreed policy cannot be applied: {0}")]
    Policy(String),
    /// The dataset's files are missing, outside the allowed roots, or unreadable.
    #[error("{0}")]
    Source(String),
    /// A fault of the node.
    #[error("internal data-plane error: {0}")]
    Internal(String),
}

/// The data plane's fixed parts: where data may be read from (local roots and registered
/// object stores), the secret that keys pseudonyms, and the lock that lets one request at a
/// time cut an agreement's shards.
#[derive(Debug)]
pub struct DataPlane {
    data_dir: PathBuf,
    allow_roots: Vec<PathBuf>,
    secret: [u8; 32],
    /// Held while shards are materialised.
    pub shard_lock: tokio::sync::Mutex<()>,
    /// Decodes each Parquet file in a confined child before the engine reads it.
    validator: validate::Validator,
    /// The S3 sources of the node's connectors, and the local file system.
    object_stores: Arc<DefaultObjectStoreRegistry>,
    /// Manifests already read: a manifest never changes once its shards are cut, and every
    /// shard request of a training job needs it.
    manifests: shards::ManifestCache,
}

impl DataPlane {
    /// Opens the data plane of `data_dir`, creating its pseudonymisation secret
    /// (`keys/pseudonym.key`, 32 random bytes, mode 0600) on first use.
    pub fn open(data_dir: &Path, allow_roots: &[PathBuf]) -> Result<Self, EngineError> {
        let path = data_dir.join("keys").join("pseudonym.key");
        let secret = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut secret = [0u8; 32];
                secret.copy_from_slice(&bytes);
                secret
            }
            Ok(_) => {
                return Err(EngineError::Internal(format!(
                    "{} is not a 32-byte key",
                    path.display()
                )));
            }
            Err(_) => {
                use rand::RngCore as _;
                let mut secret = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut secret);
                write_private(&path, &secret).map_err(|e| EngineError::Internal(e.to_string()))?;
                secret
            }
        };
        Ok(Self {
            data_dir: data_dir.to_owned(),
            allow_roots: allow_roots.to_owned(),
            secret,
            shard_lock: tokio::sync::Mutex::new(()),
            validator: validate::Validator::new(None),
            object_stores: remote::new_registry(),
            manifests: shards::ManifestCache::default(),
        })
    }

    /// Validates Parquet files by running `executable validate-parquet FILE` (the node's own
    /// binary) in a confined child process, instead of decoding them in-process.
    #[must_use]
    pub fn with_validator(mut self, executable: PathBuf) -> Self {
        self.validator = validate::Validator::new(Some(executable));
        self
    }

    /// Checks that every Parquet file of a resolved local source decodes without fault, before
    /// the engine reads it ([`validate`]); a location that is not a local path has no files
    /// here to check. Blocking.
    pub fn check_source(&self, path: &Path, format: &str) -> Result<(), EngineError> {
        self.validator.check_source(path, format)
    }

    /// Registers the S3 source of `dataset`'s connector; answers the location its connector
    /// names ([`remote::location`]).
    pub fn register_s3(
        &self,
        dataset: &str,
        source: &remote::S3Source,
    ) -> Result<String, EngineError> {
        remote::register(&self.object_stores, dataset, source)
    }

    /// A resolved source for the engine, reading through this node's object stores.
    pub fn source<'a>(&self, path: &'a Path, format: &'a str) -> enforce::Source<'a> {
        enforce::Source {
            path,
            format,
            stores: self.object_stores.clone(),
        }
    }

    /// Where the shards of `agreement` live.
    pub fn shard_dir(&self, agreement: &str) -> PathBuf {
        shards::directory(&self.data_dir, agreement)
    }

    /// The manifest of `agreement`'s shards, if they were cut.
    pub fn manifest(&self, agreement: &str) -> Option<Arc<shards::Manifest>> {
        self.manifests.get(&self.shard_dir(agreement))
    }

    /// The pseudonymisation key of `agreement`.
    pub fn agreement_key(&self, agreement: &str) -> [u8; 32] {
        enforce::agreement_key(&self.secret, agreement)
    }

    /// The folder or file a connector points at, resolved and checked again at read time
    /// (a symlink swapped in after publication must not lead outside the allowed roots).
    /// An object-store location (`s3://agora-<dataset>/`) is answered as it is, once its
    /// source is registered ([`remote`]); its store cannot reach outside the source's prefix.
    pub fn resolve(&self, connector: &ConnectorRef) -> Result<PathBuf, EngineError> {
        if remote::is_remote(&connector.location) {
            return if remote::is_registered(&self.object_stores, &connector.location) {
                Ok(PathBuf::from(&connector.location))
            } else {
                Err(EngineError::Source(
                    "the dataset's object storage is not configured on this node (its connector manifest was not loaded)".into(),
                ))
            };
        }
        let (candidate, roots): (PathBuf, Vec<PathBuf>) =
            match connector.location.strip_prefix("file://") {
                Some(path) => (PathBuf::from(path), self.allow_roots.clone()),
                None => (
                    self.data_dir.join(&connector.location),
                    vec![self.data_dir.clone()],
                ),
            };
        let missing =
            || EngineError::Source("the dataset's files are not available on this node".into());
        let resolved = candidate.canonicalize().map_err(|_| missing())?;
        let inside = roots
            .iter()
            .filter_map(|root| root.canonicalize().ok())
            .any(|root| resolved.starts_with(root));
        if inside {
            Ok(resolved)
        } else {
            Err(EngineError::Source(
                "the dataset's files lie outside the folders this node may read".into(),
            ))
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
