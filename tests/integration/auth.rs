//! Tokens: only trusted issuers, pinned algorithms, every registered claim required and typed,
//! the time window checked (`SECURITY.md` §5, matrix R1–R4, R6).

use crate::common::{Options, TestNode, fixture};
use agora::identity::Role;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

fn dev_key(node: &TestNode) -> EncodingKey {
    let pem = std::fs::read(node.data_dir.join("keys/dev-issuer.pem")).expect("key");
    EncodingKey::from_ed_pem(&pem).expect("pem")
}

fn claims(node: &TestNode) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": format!("{}/dev-issuer", node.node_id()),
        "sub": "mallory",
        "aud": node.node_id(),
        "exp": now + 600,
        "nbf": now - 10,
        "iat": now,
        "roles": ["holder"],
    })
}

fn sign(key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, key).expect("sign")
}

fn publish_with(node: &TestNode, token: &str) -> crate::common::Response {
    node.send(
        "POST",
        "/api/datasets",
        &[
            ("content-type", "text/turtle"),
            ("authorization", &format!("Bearer {token}")),
        ],
        &fixture("dataset.ttl"),
    )
}

fn unsigned(header: Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[test]
fn hostile_and_malformed_tokens_are_refused() {
    let mut node = TestNode::start(Options::default());
    let key = dev_key(&node);
    let base = claims(&node);
    let now = chrono::Utc::now().timestamp();

    // The base claims are accepted, so every refusal below is due to the one change.
    assert_eq!(publish_with(&node, &sign(&key, &base)).status, 201);

    let mut variants: Vec<(&str, String)> = Vec::new();
    let with = |key_name: &str, value: Value| {
        let mut c = base.clone();
        c[key_name] = value;
        c
    };
    let without = |key_name: &str| {
        let mut c = base.clone();
        c.as_object_mut().expect("object").remove(key_name);
        c
    };
    for missing in ["iss", "aud", "sub", "exp", "nbf"] {
        variants.push((missing, sign(&key, &without(missing))));
    }
    variants.push(("iss number", sign(&key, &with("iss", json!(123)))));
    variants.push(("aud number", sign(&key, &with("aud", json!(7)))));
    variants.push((
        "exp string",
        sign(&key, &with("exp", json!((now + 600).to_string()))),
    ));
    variants.push(("nbf string", sign(&key, &with("nbf", json!("0")))));
    variants.push(("sub number", sign(&key, &with("sub", json!(42)))));
    variants.push(("expired", sign(&key, &with("exp", json!(now - 120)))));
    variants.push(("not yet valid", sign(&key, &with("nbf", json!(now + 120)))));
    variants.push((
        "wrong audience",
        sign(&key, &with("aud", json!("urn:agora:node:other"))),
    ));
    variants.push((
        "untrusted issuer",
        sign(&key, &with("iss", json!("https://evil.example"))),
    ));

    let forger = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let forged_pem = forger.to_pkcs8_pem(LineEnding::LF).expect("pem");
    let forged = EncodingKey::from_ed_pem(forged_pem.as_bytes()).expect("key");
    variants.push(("forged signature", sign(&forged, &base)));

    variants.push((
        "alg none",
        unsigned(json!({"alg": "none", "typ": "JWT"}), &base, ""),
    ));
    let public_pem = std::fs::read(node.data_dir.join("keys/dev-issuer.pem")).expect("pem");
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &base,
        &EncodingKey::from_secret(&public_pem),
    )
    .expect("hs256");
    variants.push(("HS256 confusion", confused));
    let valid = sign(&key, &base);
    let signature = valid.rsplit('.').next().expect("signature").to_owned();
    for parameter in ["jku", "x5u", "jwk", "crit"] {
        let mut header = json!({"alg": "EdDSA", "typ": "JWT"});
        header[parameter] = json!("http://127.0.0.1:9/keys");
        variants.push((parameter, unsigned(header, &base, &signature)));
    }
    variants.push(("garbage", "not-a-jwt".into()));
    variants.push(("two segments", "abc.def".into()));

    for (name, token) in &variants {
        let response = publish_with(&node, token);
        let problem = response.assert_problem(401);
        assert!(
            !problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(token.as_str()),
            "{name}: the error echoes the token"
        );
        assert!(response.header("www-authenticate").is_some(), "{name}");
    }
    assert!(variants.len() >= 20);
    publish_with(&node, "").assert_problem(401);
    node.send(
        "POST",
        "/api/datasets",
        &[("content-type", "text/turtle")],
        &fixture("dataset.ttl"),
    )
    .assert_problem(401);
    node.assert_healthy();
}

#[test]
fn leeway_boundary_is_exact() {
    let node = TestNode::start(Options::default());
    let key = dev_key(&node);
    let now = chrono::Utc::now().timestamp();
    // The node's leeway is 30 s: expired 20 s ago passes, expired 60 s ago does not.
    let mut inside = claims(&node);
    inside["exp"] = json!(now - 20);
    let response = node.get("/api/datasets", &[]);
    assert_eq!(response.status, 200);
    let answer = node.send(
        "DELETE",
        "/api/datasets/none",
        &[("authorization", &format!("Bearer {}", sign(&key, &inside)))],
        b"",
    );
    assert_eq!(
        answer.status,
        404,
        "inside the leeway the token is valid: {}",
        answer.text()
    );
    let mut outside = claims(&node);
    outside["exp"] = json!(now - 60);
    node.send(
        "DELETE",
        "/api/datasets/none",
        &[("authorization", &format!("Bearer {}", sign(&key, &outside)))],
        b"",
    )
    .assert_problem(401);
}

#[test]
fn roles_come_from_claims() {
    let node = TestNode::start(Options::default());
    let researcher = node.token("uni-researcher", Role::Researcher, &[("country", "DE")]);
    publish_with(&node, &researcher).assert_problem(403);
    let holder = node.token("hospital", Role::Holder, &[]);
    assert_eq!(publish_with(&node, &holder).status, 201);
}

#[test]
fn a_token_for_another_node_is_refused() {
    let node_a = TestNode::start(Options::default());
    let node_b = TestNode::start(Options::default());
    let token_for_b = node_b.token("hospital", Role::Holder, &[]);
    publish_with(&node_a, &token_for_b).assert_problem(401);
    assert_eq!(publish_with(&node_b, &token_for_b).status, 201);
}

#[test]
fn jwks_publishes_the_signing_key() {
    let node = TestNode::start(Options::default());
    let jwks = node.get("/.well-known/jwks.json", &[]).json();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["alg"], "EdDSA");
    assert!(
        key.get("d").is_none(),
        "the private key must never be published"
    );
}
