//! S3-compatible object storage as a connector's source, through the `object_store` crate that
//! DataFusion itself reads with: a manifest's `[data.s3]` names an endpoint, a bucket, a prefix,
//! a region and credentials (or the environment variables holding them). Each such source is
//! registered once, under the node-private URL `s3://agora-<dataset>/`, in the object store
//! registry every data-plane query's `RuntimeEnv` uses ([`registry`]), so Parquet, CSV and NDJSON
//! in a bucket are read by the same enforced plan as local files, and shards cut from them are
//! the same as local ones.
//!
//! The registered store is the bucket seen through a `PrefixStore`: no path a query lists or
//! reads can leave the configured prefix, and a prefix with `..` or `.` segments is refused when
//! the manifest is loaded. Secrets never appear in errors or logs (`Debug` redacts them).

use super::EngineError;
use datafusion::execution::object_store::{
    DefaultObjectStoreRegistry, ObjectStoreRegistry, ObjectStoreUrl,
};
use object_store::aws::AmazonS3Builder;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, RetryConfig};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// An S3-compatible source, as written in a connector manifest's `[data.s3]` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Source {
    /// The service's base URL, e.g. `http://127.0.0.1:9000` (MinIO, Garage, s3s); none means
    /// Amazon S3 itself.
    pub endpoint: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The folder inside the bucket holding the dataset's files (`a/b`, no `..`).
    #[serde(default)]
    pub prefix: String,
    /// The region (`us-east-1` when none).
    pub region: Option<String>,
    /// The access key id, written in the manifest (prefer `access_key_id_env`).
    pub access_key_id: Option<String>,
    /// The secret access key, written in the manifest (prefer `secret_access_key_env`).
    pub secret_access_key: Option<String>,
    /// The environment variable holding the access key id.
    pub access_key_id_env: Option<String>,
    /// The environment variable holding the secret access key.
    pub secret_access_key_env: Option<String>,
    /// Allow plain `http://` to the endpoint: only for a loopback endpoint (tests, a sidecar).
    #[serde(default)]
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Source {
    /// Names where the credentials come from, never their values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Source")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("access_key_id_env", &self.access_key_id_env)
            .field("secret_access_key_env", &self.secret_access_key_env)
            .field(
                "inline_credentials",
                &(self.access_key_id.is_some() || self.secret_access_key.is_some()),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// The object stores a node's data-plane queries read through: the local file system and each
/// S3 source registered with [`register`]. The [`super::DataPlane`] owns one and hands it to
/// every query's runtime; sources are fixed when the connector manifests are loaded.
pub fn new_registry() -> Arc<DefaultObjectStoreRegistry> {
    Arc::new(DefaultObjectStoreRegistry::new())
}

/// The node-private URL under which the source of `dataset` is registered.
pub fn location(dataset: &str) -> String {
    format!("s3://agora-{dataset}/")
}

/// Whether `location` is an object-store location (rather than a local path).
pub fn is_remote(location: &str) -> bool {
    location.starts_with("s3://")
}

/// Whether an S3 source was registered under `location` in `registry`.
pub fn is_registered(registry: &DefaultObjectStoreRegistry, location: &str) -> bool {
    ObjectStoreUrl::parse(location)
        .ok()
        .is_some_and(|url| registry.get_store(url.as_ref()).is_ok())
}

/// Checks `source` and registers it for `dataset`; answers its location (see [`location`]).
/// Nothing is contacted yet: wrong credentials or a missing bucket show at the first read,
/// as a source error of that request.
pub fn register(
    registry: &DefaultObjectStoreRegistry,
    dataset: &str,
    source: &S3Source,
) -> Result<String, EngineError> {
    let bad = |message: String| {
        EngineError::Source(format!("the S3 source of dataset `{dataset}`: {message}"))
    };
    if dataset.is_empty()
        || !dataset
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(bad("the dataset id must be letters, digits and `-`".into()));
    }
    if source.bucket.is_empty() {
        return Err(bad("`bucket` is empty".into()));
    }
    let prefix = checked_prefix(&source.prefix).map_err(bad)?;
    let credential = |inline: &Option<String>, env: &Option<String>, what: &str| match (inline, env)
    {
        (Some(value), None) => Ok(value.clone()),
        (None, Some(variable)) => std::env::var(variable).map_err(|_| {
            bad(format!(
                "the environment variable `{variable}` (its {what}) is not set"
            ))
        }),
        (None, None) => Err(bad(format!("name its {what} (or the variable holding it)"))),
        (Some(_), Some(_)) => Err(bad(format!(
            "give its {what} inline or by variable, not both"
        ))),
    };
    let key_id = credential(
        &source.access_key_id,
        &source.access_key_id_env,
        "access key id",
    )?;
    let secret = credential(
        &source.secret_access_key,
        &source.secret_access_key_env,
        "secret access key",
    )?;
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&source.bucket)
        .with_region(source.region.as_deref().unwrap_or("us-east-1"))
        .with_access_key_id(key_id)
        .with_secret_access_key(secret)
        // A refused or unreachable store fails the request quickly instead of retrying for
        // minutes while the consumer waits.
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
            ..RetryConfig::default()
        });
    if let Some(endpoint) = &source.endpoint {
        let plain = endpoint.starts_with("http://");
        if plain && !source.allow_http {
            return Err(bad(format!(
                "`{endpoint}` is plain http; use https, or set allow_http for a loopback endpoint"
            )));
        }
        if plain && !is_loopback(endpoint) {
            return Err(bad(format!(
                "allow_http is only for loopback endpoints (127.0.0.1, ::1, localhost), not `{endpoint}`"
            )));
        }
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(plain)
            .with_virtual_hosted_style_request(false);
    }
    let bucket = builder
        .build()
        .map_err(|e| bad(format!("cannot be configured: {e}")))?;
    let store: Arc<dyn ObjectStore> = match prefix {
        Some(prefix) => Arc::new(PrefixStore::new(bucket, prefix)),
        None => Arc::new(bucket),
    };
    let location = location(dataset);
    let url = ObjectStoreUrl::parse(&location).map_err(|e| bad(e.to_string()))?;
    registry.register_store(url.as_ref(), store);
    tracing::info!(dataset, source = ?source, "S3 source registered");
    Ok(location)
}

/// The hive partition columns of a source folder (`key=value` folder names between the folder
/// and its files), as text columns, for local and object-store sources alike: none for a single
/// file or a flat folder. Folders that disagree on their keys are the dataset's fault.
pub(crate) async fn hive_partitions(
    context: &datafusion::prelude::SessionContext,
    path: &str,
    extension: &str,
) -> Result<Vec<(String, datafusion::arrow::datatypes::DataType)>, EngineError> {
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{ListingOptions, ListingTableUrl};
    let unreadable = |e: datafusion::error::DataFusionError| {
        EngineError::Source(format!("the dataset's files cannot be read: {e}"))
    };
    let url = ListingTableUrl::parse(path).map_err(unreadable)?;
    // Only the extension matters for listing; the format is not used to read here.
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(extension);
    let keys = options
        .infer_partitions(&context.state(), &url)
        .await
        .map_err(unreadable)?;
    Ok(keys
        .into_iter()
        .map(|key| (key, datafusion::arrow::datatypes::DataType::Utf8))
        .collect())
}

/// The prefix as an object path, or why it is refused: no `..`, `.` or empty segments, so that
/// it names one folder of the bucket and nothing above it.
fn checked_prefix(prefix: &str) -> Result<Option<object_store::path::Path>, String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(format!(
            "the prefix `{prefix}` must name a folder of the bucket: no `..`, `.` or empty segments"
        ));
    }
    object_store::path::Path::parse(trimmed)
        .map(Some)
        .map_err(|e| format!("the prefix `{prefix}` is not a valid object path: {e}"))
}

fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    let host = rest.split('/').next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_cannot_climb_out_of_its_folder() {
        assert!(checked_prefix("pools/health").unwrap().is_some());
        assert!(checked_prefix("/pools/health/").unwrap().is_some());
        assert!(checked_prefix("").unwrap().is_none());
        for bad in ["../secret", "pools/../../etc", "pools/./x", "a//b"] {
            assert!(checked_prefix(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn plain_http_is_only_for_loopback() {
        assert!(is_loopback("http://127.0.0.1:9000"));
        assert!(is_loopback("http://localhost:9000/"));
        assert!(is_loopback("http://[::1]:9000"));
        assert!(!is_loopback("http://10.0.0.1:9000"));
        assert!(!is_loopback("http://s3.example.org"));
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let source = S3Source {
            endpoint: None,
            bucket: "b".into(),
            prefix: String::new(),
            region: None,
            access_key_id: Some("AKIDSECRETVALUE".into()),
            secret_access_key: Some("very-secret".into()),
            access_key_id_env: None,
            secret_access_key_env: None,
            allow_http: false,
        };
        let shown = format!("{source:?}");
        assert!(!shown.contains("very-secret") && !shown.contains("AKIDSECRETVALUE"));
    }
}
