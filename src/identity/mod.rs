//! Who is calling: JWT bearer tokens from trusted issuers, the node's own id and the
//! development issuer whose key lives in the data directory.
//!
//! `jsonwebtoken`'s defaults are unsafe (`SECURITY.md` §5): a token without `iss`/`aud` or
//! with claims of the wrong JSON type passes, `nbf` is not checked and the leeway is 60 s.
//! [`TokenValidator`] therefore requires every registered claim, deserialises them into typed
//! fields, pins the algorithm per issuer and checks the time window against the injected clock.

mod dev_issuer;
mod validator;

pub use dev_issuer::{DevIssuer, TokenRequest};
pub use validator::{PeerKey, PeerKeys, Principal, TokenValidator, TrustedIssuer};

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// What a caller may do; roles come from the token's `roles` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Publishes datasets and governs access to them.
    Holder,
    /// Discovers datasets and negotiates access.
    Researcher,
    /// Pulls data under an agreement.
    Trainer,
    /// Operates the node.
    Admin,
}

impl Role {
    /// Every role, in the order the demo prints development tokens.
    pub const ALL: [Role; 4] = [Role::Holder, Role::Researcher, Role::Trainer, Role::Admin];

    /// The role's name as written in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Holder => "holder",
            Role::Researcher => "researcher",
            Role::Trainer => "trainer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| IdentityError::UnknownRole(s.to_owned()))
    }
}

/// A set of roles, as carried by a principal.
pub type Roles = BTreeSet<Role>;

/// Why a token was refused. Every message tells the caller what to fix, and none repeats the
/// token or a key.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("this endpoint needs a bearer token: send `Authorization: Bearer <JWT>`")]
    Missing,
    /// Not three base64url segments with JSON inside.
    #[error("the bearer token is not a well-formed JWT: {0}")]
    Malformed(String),
    /// The header asks for something the node never honours (`jku`, `x5u`, `jwk`, `x5c`, `crit`).
    #[error(
        "the token header carries `{0}`, which this node never honours; sign with a key of a trusted issuer"
    )]
    ForbiddenHeader(String),
    /// `iss` names nobody the node trusts.
    #[error("the token's issuer is not trusted by this node")]
    UntrustedIssuer,
    /// The header's `alg` is not the one configured for the issuer.
    #[error("the token is signed with `{found}` but this issuer's tokens must use `{expected}`")]
    WrongAlgorithm {
        /// The algorithm configured for the issuer.
        expected: String,
        /// What the token header says.
        found: String,
    },
    /// The signature does not verify, or a claim is missing or of the wrong type.
    #[error("the token was rejected: {0}")]
    Invalid(String),
    /// `exp` is past, beyond the leeway.
    #[error("the token expired; ask its issuer for a new one")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("the token is not valid yet (its `nbf` is in the future)")]
    NotYetValid,
}

/// Failures of the node's own key material and of token minting.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing key files failed.
    #[error("cannot use the key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: std::path::PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A key file exists but does not hold a usable key.
    #[error("the key in {path} is unusable: {message}")]
    BadKey {
        /// The key file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A role name outside `holder`, `researcher`, `trainer`, `admin`.
    #[error("unknown role `{0}`: use holder, researcher, trainer or admin")]
    UnknownRole(String),
    /// A `--claim` that is not `key=value`, or that tries to override a registered claim.
    #[error(
        "invalid claim `{0}`: write key=value, and do not override iss, sub, aud, exp, nbf, iat, jti or roles"
    )]
    BadClaim(String),
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Signing(String),
}

/// Reads the node's persistent id from the data directory, creating it on first start, so
/// that tokens minted for this node (`aud`) stay valid across restarts.
pub fn node_id(data_dir: &Path) -> Result<String, IdentityError> {
    let path = data_dir.join("node-id");
    let fresh = format!("urn:agora:node:{}", uuid::Uuid::new_v4());
    let bytes = dev_issuer::read_or_create_private_file(&path, fresh.as_bytes())?;
    let id = String::from_utf8_lossy(&bytes).trim().to_owned();
    if id.is_empty() {
        return Err(IdentityError::BadKey {
            path,
            message: "the node id file is empty; delete it to mint a new id".into(),
        });
    }
    Ok(id)
}
