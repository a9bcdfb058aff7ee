//! The development issuer: an Ed25519 key generated into the data directory, so that
//! `agora token issue` and the tests can mint tokens the local node accepts.

use super::{IdentityError, Role};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Claims a caller may not set through `--claim`, because the issuer owns them.
const REGISTERED_CLAIMS: [&str; 8] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "roles"];

/// The development issuer of one data directory.
pub struct DevIssuer {
    issuer: String,
    key_id: String,
    encoding: EncodingKey,
    signing: SigningKey,
    public_pem: Vec<u8>,
    public_raw: [u8; 32],
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer", &self.issuer)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// What a development token should say.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The participant (`sub`).
    pub subject: String,
    /// The roles granted.
    pub roles: Vec<Role>,
    /// Extra attributes policies test, such as `country` or `org_type`.
    pub claims: Map<String, Value>,
    /// How long the token stays valid.
    pub lifetime: Duration,
}

impl TokenRequest {
    /// Parses `key=value` pairs as extra claims; numbers and booleans keep their JSON type.
    pub fn with_claim_pairs<'a>(
        mut self,
        pairs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, IdentityError> {
        for pair in pairs {
            let (key, value) = pair
                .split_once('=')
                .filter(|(k, _)| !k.is_empty() && !REGISTERED_CLAIMS.contains(k))
                .ok_or_else(|| IdentityError::BadClaim(pair.to_owned()))?;
            let value = serde_json::from_str::<Value>(value)
                .ok()
                .filter(|v| v.is_number() || v.is_boolean())
                .unwrap_or_else(|| Value::String(value.to_owned()));
            self.claims.insert(key.to_owned(), value);
        }
        Ok(self)
    }
}

impl DevIssuer {
    /// Loads the issuer's key from `data_dir/keys/`, generating it on first use.
    pub fn load_or_create(data_dir: &Path, node_id: &str) -> Result<Self, IdentityError> {
        let path = data_dir.join("keys").join("dev-issuer.pem");
        let fresh = SigningKey::generate(&mut rand::rngs::OsRng)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| IdentityError::Signing(e.to_string()))?;
        let pem = read_or_create_private_file(&path, fresh.as_bytes())?;
        let bad = |message: String| IdentityError::BadKey {
            path: path.clone(),
            message,
        };
        let text = std::str::from_utf8(&pem).map_err(|e| bad(e.to_string()))?;
        let signing = <SigningKey as ed25519_dalek::pkcs8::DecodePrivateKey>::from_pkcs8_pem(text)
            .map_err(|e| bad(e.to_string()))?;
        let verifying = signing.verifying_key();
        let public_pem = verifying
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| bad(e.to_string()))?
            .into_bytes();
        let encoding = EncodingKey::from_ed_pem(&pem).map_err(|e| bad(e.to_string()))?;
        let public_raw = verifying.to_bytes();
        Ok(Self {
            issuer: format!("{node_id}/dev-issuer"),
            key_id: hex::encode(&sha2_digest(&public_raw)[..8]),
            encoding,
            signing,
            public_pem,
            public_raw,
        })
    }

    /// The `iss` of the tokens it mints.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The verifying key, for the node's own trust list.
    pub fn decoding_key(&self) -> Result<DecodingKey, IdentityError> {
        DecodingKey::from_ed_pem(&self.public_pem).map_err(|e| IdentityError::BadKey {
            path: PathBuf::from("keys/dev-issuer.pem"),
            message: e.to_string(),
        })
    }

    /// Signs `message` with the node's key (Ed25519): what the node states as itself outside a
    /// token, e.g. the audit log's checkpoints.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.signing.sign(message).to_bytes()
    }

    /// Checks a signature made by [`DevIssuer::sign`].
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.signing
            .verifying_key()
            .verify_strict(message, &signature)
            .is_ok()
    }

    /// The public key as PEM (SPKI), what a peer puts in its `trusted_issuers` to accept what
    /// this node signs.
    pub fn public_key_pem(&self) -> &str {
        std::str::from_utf8(&self.public_pem).unwrap_or_default()
    }

    /// The public key as a JWK, published in the node's JWKS.
    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "use": "sig",
            "alg": "EdDSA",
            "kid": self.key_id,
            "x": URL_SAFE_NO_PAD.encode(self.public_raw),
        })
    }

    /// Mints a signed token for `audience` (a node id) valid from `now`.
    pub fn issue(
        &self,
        request: &TokenRequest,
        audience: &str,
        now: DateTime<Utc>,
    ) -> Result<String, IdentityError> {
        let iat = now.timestamp();
        let lifetime = i64::try_from(request.lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let mut claims = request.claims.clone();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!(request.subject));
        claims.insert("aud".into(), json!(audience));
        claims.insert("iat".into(), json!(iat));
        claims.insert("nbf".into(), json!(iat));
        claims.insert("exp".into(), json!(iat.saturating_add(lifetime)));
        claims.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
        let roles: Vec<&str> = request.roles.iter().map(|r| r.as_str()).collect();
        claims.insert("roles".into(), json!(roles));
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| IdentityError::Signing(e.to_string()))
    }
}

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Returns the content of `path`, first writing `fresh` there (mode 0600, fsynced) if the file
/// does not exist. Concurrent creators agree: the file is published with a hard link, which
/// fails when another process got there first, and then its content is read.
pub(super) fn read_or_create_private_file(
    path: &Path,
    fresh: &[u8],
) -> Result<Vec<u8>, IdentityError> {
    let io = |source| IdentityError::KeyFile {
        path: path.to_owned(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => return Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let staging = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&staging)?;
        file.write_all(fresh)?;
        file.sync_all()?;
        match std::fs::hard_link(&staging, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        std::fs::File::open(dir)?.sync_all()?;
        std::fs::read(path)
    })();
    let _ = std::fs::remove_file(&staging);
    result.map_err(io)
}
