//! Verification of bearer tokens against the trusted issuers.

use super::{AuthError, Role, Roles};
use crate::clock::SharedClock;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Header parameters that would let a token choose its own verification key or impose
/// extensions; the node never honours them, so a token carrying one is refused outright.
const FORBIDDEN_HEADER_PARAMETERS: [&str; 6] = ["jku", "x5u", "jwk", "x5c", "crit", "b64"];

/// Largest token accepted, so that a header bomb costs nothing.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// An identity provider and the one key and algorithm its tokens must use.
pub struct TrustedIssuer {
    /// The exact `iss` claim.
    pub issuer: String,
    /// Its verifying key.
    pub key: DecodingKey,
    /// Its pinned algorithm.
    pub algorithm: Algorithm,
}

impl std::fmt::Debug for TrustedIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedIssuer")
            .field("issuer", &self.issuer)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Keys of federation peers, learnt at run time from each peer's JWKS by the crawler: a token
/// whose `iss` is a peer's issuer is accepted only when the peer signs as itself (`sub` is its
/// participant id), and carries no roles here, so a peer can speak for its node and its users'
/// forwarded claims but can never act as a holder or an admin of this node.
#[derive(Clone, Default)]
pub struct PeerKeys(Arc<RwLock<HashMap<String, PeerKey>>>);

/// What one peer may sign: its participant id and its current keys (EdDSA).
#[derive(Clone)]
pub struct PeerKey {
    /// The peer's participant id: the only `sub` its tokens may carry.
    pub participant: String,
    /// Its verifying keys, as published in its JWKS.
    pub keys: Vec<DecodingKey>,
}

impl std::fmt::Debug for PeerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<String> = self
            .0
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_tuple("PeerKeys").field(&issuers).finish()
    }
}

impl PeerKeys {
    /// Trusts `issuer` with these keys for tokens whose `sub` is `participant`, replacing what
    /// was known of it (key rotation).
    pub fn set(&self, issuer: &str, key: PeerKey) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        // One issuer per participant: a peer re-registered under another issuer drops the old.
        map.retain(|_, k| k.participant != key.participant);
        map.insert(issuer.to_owned(), key);
    }

    /// Forgets the issuer of `participant`.
    pub fn remove_participant(&self, participant: &str) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, k| k.participant != participant);
    }

    fn get(&self, issuer: &str) -> Option<PeerKey> {
        self.0.read().ok()?.get(issuer).cloned()
    }
}

/// The verified caller.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Principal {
    /// The participant id (`sub`).
    pub subject: String,
    /// Who vouched for it (`iss`).
    pub issuer: String,
    /// Its roles on this node.
    pub roles: Roles,
    /// Every other claim: the attributes policies test (`country`, `org_type`, ...).
    pub attributes: Map<String, Value>,
    /// When the token stops being valid (`exp`, seconds since the epoch): a stream it opened
    /// ends then.
    pub expires: i64,
}

impl Principal {
    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The claims policies test: the attributes, with `sub`.
    pub fn claims(&self) -> serde_json::Map<String, Value> {
        let mut claims = self.attributes.clone();
        claims.insert("sub".into(), Value::String(self.subject.clone()));
        claims
    }
}

/// The registered claims, typed: a claim of the wrong JSON type fails deserialisation.
#[derive(Deserialize)]
struct RegisteredClaims {
    iss: String,
    sub: String,
    #[serde(rename = "aud")]
    _aud: Audience,
    exp: i64,
    nbf: i64,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(#[allow(dead_code)] String),
    Many(#[allow(dead_code)] Vec<String>),
}

#[derive(Deserialize)]
struct IssuerOnly {
    iss: Option<Value>,
}

/// Checks tokens for one node (its id is the required audience).
#[derive(Debug)]
pub struct TokenValidator {
    audience: String,
    issuers: Vec<TrustedIssuer>,
    peers: PeerKeys,
    leeway_seconds: i64,
    clock: SharedClock,
}

impl TokenValidator {
    /// A validator for tokens addressed to `audience`.
    pub fn new(audience: impl Into<String>, leeway_seconds: u64, clock: SharedClock) -> Self {
        Self {
            audience: audience.into(),
            issuers: Vec::new(),
            peers: PeerKeys::default(),
            leeway_seconds: i64::try_from(leeway_seconds).unwrap_or(i64::MAX),
            clock,
        }
    }

    /// Adds an issuer to the trust list.
    pub fn with_issuer(mut self, issuer: TrustedIssuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Also trusts the federation peers' keys in `peers` (shared with the crawler, which keeps
    /// them current).
    pub fn with_peer_keys(mut self, peers: PeerKeys) -> Self {
        self.peers = peers;
        self
    }

    /// The audience tokens must name: the node's id.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Verifies `token` and returns the caller it names.
    pub fn validate(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed(
                "the token is larger than 16 KiB".into(),
            ));
        }
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(_), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(AuthError::Malformed(
                "a JWT has three dot-separated segments".into(),
            ));
        };
        let header: Map<String, Value> = decode_segment(header, "header")?;
        if let Some(name) = FORBIDDEN_HEADER_PARAMETERS
            .iter()
            .find(|name| header.contains_key(**name))
        {
            return Err(AuthError::ForbiddenHeader((*name).to_owned()));
        }
        let issuer_claim: IssuerOnly = decode_segment(payload, "payload")?;
        let Some(Value::String(iss)) = issuer_claim.iss else {
            return Err(AuthError::Invalid(
                "the `iss` claim is missing or is not a string".into(),
            ));
        };
        let peer = self.peers.get(&iss);
        let (keys, algorithm, issuer_name, participant): (Vec<&DecodingKey>, Algorithm, &str, _) =
            match self
                .issuers
                .iter()
                .find(|candidate| candidate.issuer == iss)
            {
                Some(trusted) => (
                    vec![&trusted.key],
                    trusted.algorithm,
                    trusted.issuer.as_str(),
                    None,
                ),
                None => match &peer {
                    Some(peer) => (
                        peer.keys.iter().collect(),
                        Algorithm::EdDSA,
                        iss.as_str(),
                        Some(peer.participant.as_str()),
                    ),
                    None => return Err(AuthError::UntrustedIssuer),
                },
            };
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let expected = format!("{algorithm:?}");
        if alg != expected {
            return Err(AuthError::WrongAlgorithm {
                expected,
                found: alg.chars().take(16).collect(),
            });
        }

        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer_name]);
        validation.set_audience(&[&self.audience]);
        // The time window is checked below against the injected clock, with our leeway.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let mut outcome = Err(AuthError::Invalid("the signature does not verify".into()));
        for key in keys {
            outcome = jsonwebtoken::decode::<RegisteredClaims>(token, key, &validation)
                .map_err(|e| AuthError::Invalid(describe(e.kind())));
            if outcome.is_ok() {
                break;
            }
        }
        let mut claims = outcome?.claims;
        if let Some(participant) = participant {
            if claims.sub != participant {
                return Err(AuthError::Invalid(
                    "a peer's key signs only for the peer itself (`sub` must be its participant id)"
                        .into(),
                ));
            }
            claims.roles = Vec::new();
        }

        let now = self.clock.now().timestamp();
        if now > claims.exp.saturating_add(self.leeway_seconds) {
            return Err(AuthError::Expired);
        }
        if now.saturating_add(self.leeway_seconds) < claims.nbf {
            return Err(AuthError::NotYetValid);
        }
        let roles = claims
            .roles
            .iter()
            .filter_map(|name| name.parse::<Role>().ok())
            .collect();
        let mut attributes = claims.rest;
        for registered in ["iat", "jti"] {
            attributes.remove(registered);
        }
        Ok(Principal {
            subject: claims.sub,
            issuer: claims.iss,
            roles,
            attributes,
            expires: claims.exp,
        })
    }
}

fn decode_segment<T: serde::de::DeserializeOwned>(
    segment: &str,
    what: &str,
) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::Malformed(format!("the {what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed(format!("the {what} is not a JSON object")))
}

/// Words for a verification failure, without echoing any part of the token.
fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::InvalidSignature => "the signature does not verify".into(),
        ErrorKind::InvalidAudience => "the token is addressed to another node (`aud`)".into(),
        ErrorKind::InvalidIssuer => "the `iss` claim does not match".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the `{claim}` claim is required"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the signing algorithm is not accepted".into()
        }
        ErrorKind::Json(_) => {
            "a claim is missing or has the wrong JSON type (iss, sub, aud must be strings; exp, nbf numbers)".into()
        }
        _ => "the token cannot be verified".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock as _, ManualClock};
    use crate::identity::{DevIssuer, TokenRequest};
    use chrono::{DateTime, Duration as Span, TimeZone as _, Utc};
    use std::time::Duration;

    const AUDIENCE: &str = "urn:agora:node:leeway";
    const LEEWAY: i64 = 30;

    /// A validator with the node's 30 s leeway on a clock the test moves, and a token the
    /// development issuer minted at `issued` for 60 s (`nbf` = `issued`, `exp` = `issued` + 60).
    fn setup(issued: DateTime<Utc>) -> (TokenValidator, Arc<ManualClock>, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let issuer = DevIssuer::load_or_create(dir.path(), AUDIENCE).expect("issuer");
        let clock = Arc::new(ManualClock::new(issued));
        let validator = TokenValidator::new(AUDIENCE, LEEWAY as u64, clock.clone()).with_issuer(
            TrustedIssuer {
                issuer: issuer.issuer().to_owned(),
                key: issuer.decoding_key().expect("key"),
                algorithm: Algorithm::EdDSA,
            },
        );
        let request = TokenRequest {
            subject: "alice".into(),
            roles: vec![Role::Researcher],
            claims: Map::new(),
            lifetime: Duration::from_secs(60),
        };
        let token = issuer.issue(&request, AUDIENCE, issued).expect("token");
        (validator, clock, token)
    }

    /// Sets the clock to `at` exactly.
    fn set(clock: &ManualClock, at: DateTime<Utc>) {
        clock.advance(at.signed_duration_since(clock.now()));
    }

    /// Matrix R4: the leeway boundary is exact to the second on both ends of the window. With
    /// a 30 s leeway a token is accepted 29 s and 30 s after its `exp` and refused 31 s after
    /// it, and accepted 29 s and 30 s before its `nbf` and refused 31 s before it.
    #[test]
    fn the_leeway_boundary_is_exact_to_the_second_for_exp_and_nbf() {
        let issued = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let (validator, clock, token) = setup(issued);
        let exp = issued + Span::seconds(60);
        let nbf = issued;
        assert!(validator.validate(&token).is_ok(), "valid at issue time");

        for (offset, accepted) in [(LEEWAY - 1, true), (LEEWAY, true), (LEEWAY + 1, false)] {
            set(&clock, exp + Span::seconds(offset));
            let outcome = validator.validate(&token);
            assert_eq!(
                outcome.is_ok(),
                accepted,
                "exp + {offset} s: {:?}",
                outcome.err()
            );
            if !accepted {
                assert!(
                    matches!(outcome, Err(AuthError::Expired)),
                    "exp + {offset} s"
                );
            }
        }
        for (offset, accepted) in [(LEEWAY - 1, true), (LEEWAY, true), (LEEWAY + 1, false)] {
            set(&clock, nbf - Span::seconds(offset));
            let outcome = validator.validate(&token);
            assert_eq!(
                outcome.is_ok(),
                accepted,
                "nbf - {offset} s: {:?}",
                outcome.err()
            );
            if !accepted {
                assert!(
                    matches!(outcome, Err(AuthError::NotYetValid)),
                    "nbf - {offset} s"
                );
            }
        }
        // Token times are whole seconds: 30.999 s after `exp` is still inside the leeway.
        set(&clock, exp + Span::milliseconds(LEEWAY * 1000 + 999));
        assert!(validator.validate(&token).is_ok(), "exp + 30.999 s");
    }
}
