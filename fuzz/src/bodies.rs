//! The fuzz targets' bodies, one function per target. Each takes the raw input and panics only
//! when a property the node promises is broken (docs/SECURITY.md, "Fuzzing"). The same file
//! is compiled twice: by the `agora-fuzz` crate for `cargo fuzz run`, and by the integration
//! tests (`fuzz_seeds::*`), which run every committed seed through it in the ordinary build.

use agora::audit::{AuditLog, Record};
use agora::clock::{ManualClock, SharedClock};
use agora::contract::AddressPolicy;
use agora::identity::{DevIssuer, TokenValidator, TrustedIssuer};
use agora::policy::{self, Evaluator, Request};
use agora::rdf_input::{self, InputLimits, RdfSyntax};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// A target's body.
pub type Body = fn(&[u8]);

/// The targets, by name (the names of `fuzz/fuzz_targets/*.rs` and `fuzz/seeds/*`).
pub const TARGETS: [(&str, Body); 9] = [
    ("jwt", jwt),
    ("rdf_ingest", rdf_ingest),
    ("odrl", odrl),
    ("sparql_request", sparql_request),
    ("parquet_validate", parquet_validate),
    ("url_policy", url_policy),
    ("audit_verify", audit_verify),
    ("dcat_page", dcat_page),
    ("sparql_params", sparql_params),
];

/// The fixed time every target evaluates at (2026-01-01T00:00:00Z), so that a finding replays.
pub const NOW: i64 = 1_767_225_600;
const ISSUER: &str = "https://fuzz.example/issuer";
const AUDIENCE: &str = "urn:agora:node:fuzz";
const LEEWAY: i64 = 30;

fn clock() -> SharedClock {
    Arc::new(ManualClock::new(
        chrono::DateTime::from_timestamp(NOW, 0).unwrap_or_default(),
    ))
}

struct Keys {
    validator: TokenValidator,
    encoding: EncodingKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
        // A fixed key, so that signed seeds stay valid from run to run.
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let private = signing.to_pkcs8_pem(LineEnding::LF).expect("pem");
        let public = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        let validator =
            TokenValidator::new(AUDIENCE, LEEWAY as u64, clock()).with_issuer(TrustedIssuer {
                issuer: ISSUER.into(),
                key: DecodingKey::from_ed_pem(public.as_bytes()).expect("key"),
                algorithm: Algorithm::EdDSA,
            });
        Keys {
            validator,
            encoding: EncodingKey::from_ed_pem(private.as_bytes()).expect("key"),
        }
    })
}

/// The naive reference for claims: what a token's payload must say to be accepted.
fn claims_acceptable(claims: &Value) -> bool {
    let integer = |name: &str| claims.get(name).and_then(Value::as_i64);
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == AUDIENCE,
        Some(Value::Array(auds)) => {
            auds.iter().all(Value::is_string) && auds.iter().any(|a| a == AUDIENCE)
        }
        _ => false,
    };
    let roles_ok = match claims.get("roles") {
        None => true,
        Some(Value::Array(roles)) => roles.iter().all(Value::is_string),
        Some(_) => false,
    };
    claims.get("iss").and_then(Value::as_str) == Some(ISSUER)
        && claims.get("sub").is_some_and(Value::is_string)
        && audience_ok
        && roles_ok
        && integer("exp").is_some_and(|exp| NOW <= exp.saturating_add(LEEWAY))
        && integer("nbf").is_some_and(|nbf| nbf <= NOW + LEEWAY)
}

/// JWT header and claims handling. Input byte 0 picks the mode: even, the rest is a token as
/// sent; odd, the rest is a claims document that is signed with the trusted key first (so the
/// claim checks are reached). Property: a token is accepted only if a naive reading of its
/// claims accepts it (never the other way round), and nothing panics.
pub fn jwt(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let keys = keys();
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let Ok(claims) = serde_json::from_slice::<Value>(rest) else {
            return;
        };
        let Ok(token) =
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &keys.encoding)
        else {
            return;
        };
        token
    };
    if keys.validator.validate(&token).is_ok() {
        let payload = token.split('.').nth(1).unwrap_or_default();
        let claims: Value = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        assert!(
            claims_acceptable(&claims),
            "the validator accepted claims the reference refuses: {claims}"
        );
    }
}

/// JSON-LD, Turtle and N-Triples ingest behind the guards. Byte 0 picks the syntax. Property:
/// no panic, no stack overflow (the process would abort), the triple cap holds.
pub fn rdf_ingest(data: &[u8]) {
    let Some((mode, body)) = data.split_first() else {
        return;
    };
    let syntax = match mode % 3 {
        0 => RdfSyntax::JsonLd,
        1 => RdfSyntax::Turtle,
        _ => RdfSyntax::NTriples,
    };
    let limits = InputLimits {
        max_bytes: 1 << 20,
        max_json_depth: 64,
        max_triples: 1_000,
    };
    if let Ok(triples) =
        rdf_input::read_triples(body, syntax, Some("https://fuzz.example/"), limits)
    {
        assert!(
            triples.len() <= 1_000,
            "{} triples passed the cap",
            triples.len()
        );
    }
    let _ = rdf_input::check_json_depth(&String::from_utf8_lossy(body), 64);
}

/// The ODRL parser and evaluator. Byte 0 picks the syntax (JSON-LD or Turtle); byte 1 the
/// purpose (its value mod 3) and, in its higher bits, the requester's claims, the requested
/// action and asset; byte 2 the pulls already made. Properties: no panic; a decision is the
/// same twice; it is the decision of the naive reference evaluator (`policy::reference`, which
/// shares none of the evaluator's logic: differential on the outcome and on every rule's
/// three-valued state); and the policy the node emits as JSON-LD (what it stores in an
/// agreement and sends to peers) decides the same as the policy it was read from.
pub fn odrl(data: &[u8]) {
    let [mode, variant, pulls, body @ ..] = data else {
        return;
    };
    let syntax = if mode % 2 == 0 {
        RdfSyntax::JsonLd
    } else {
        RdfSyntax::Turtle
    };
    let Ok(parsed) = policy::parse(body, syntax) else {
        return;
    };
    let purposes = [
        "https://w3id.org/dpv#AcademicResearch",
        "https://w3id.org/dpv#Marketing",
        "https://w3id.org/agora/ns#AITraining",
    ];
    let variant = usize::from(*variant);
    let claims = [
        json!({"sub": "alice", "country": "DE", "org_type": "university"}),
        json!({"sub": "https://fuzz.example/parties/acme", "country": "US", "org_type": "company"}),
        json!({"sub": "bob", "country": ["FR", "US"]}),
        json!({}),
    ];
    let actions = ["use", "read", "distribute", "transfer"];
    let mut request = Request::new(oxigraph::model::NamedNode::new_unchecked(format!(
        "http://www.w3.org/ns/odrl/2/{}",
        actions[(variant / 12) % actions.len()]
    )));
    request.claims = claims[(variant / 3) % claims.len()]
        .as_object()
        .cloned()
        .unwrap_or_default();
    request.party = request
        .claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|sub| sub.contains(':'))
        .and_then(|sub| oxigraph::model::NamedNode::new(sub).ok());
    if variant % 3 != 2 || variant < 128 {
        request.purpose = Some(oxigraph::model::NamedNode::new_unchecked(
            purposes[variant % purposes.len()],
        ));
    }
    if variant >= 48 {
        request.target = Some(oxigraph::model::NamedNode::new_unchecked(
            "https://fuzz.example/datasets/a",
        ));
    }
    request.usage.pulls = u64::from(*pulls);
    let evaluator = Evaluator::new(clock());
    let first = evaluator.evaluate(&parsed, &request);
    let again = evaluator.evaluate(&parsed, &request);
    assert_eq!(
        format!("{:?}", first.outcome),
        format!("{:?}", again.outcome),
        "the same request decided twice differently"
    );
    if let Some(difference) = policy::reference::disagreement(&parsed, &request, &first) {
        panic!("the evaluator and the naive reference disagree: {difference}\npolicy: {parsed:?}");
    }
    let emitted = policy::to_json_ld_string(&parsed);
    let Ok(reread) = policy::parse(emitted.as_bytes(), RdfSyntax::JsonLd) else {
        panic!("the node cannot re-read the JSON-LD it emits for a policy it accepted:\n{emitted}");
    };
    let after = evaluator.evaluate(&reread, &request);
    assert_eq!(
        format!("{:?}", first.outcome),
        format!("{:?}", after.outcome),
        "emitting and re-reading the policy changed the decision:\n{emitted}"
    );
}

/// SPARQL request handling: the step the node runs before any query reaches a worker
/// (`catalog::sparql::check_query`: parse with the endpoint's base IRI; an Update is refused,
/// never run). Input: the query text. Property: no panic; a text that parses as a query never
/// also parses as an Update (the refusal cannot be sidestepped by a text that is both).
pub fn sparql_request(data: &[u8]) {
    use oxigraph::sparql::SparqlEvaluator;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(evaluator) = SparqlEvaluator::new().with_base_iri("https://fuzz.example/sparql") else {
        return;
    };
    let query = evaluator.parse_query(text);
    let update = SparqlEvaluator::new().parse_update(text);
    assert!(
        query.is_err() || update.is_err(),
        "one text is both a query and an update: {text}"
    );
}

/// The Parquet/IPC validator (`engine::validate::decode_fully`, what the confined child runs).
/// Property: every malformed file is an `Err`, never a panic that escapes (arrow-rs panics on
/// some inputs; `decode_fully` must catch them).
pub fn parquet_validate(data: &[u8]) {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    let path: PathBuf = dir
        .path()
        .join(format!("input-{:?}.parquet", std::thread::current().id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = agora::engine::validate::decode_fully(&path);
}

/// The URL allow-list for outbound calls. Only inputs whose host is an IP literal are checked
/// (anything else would need DNS). Property: when the policy accepts a URL, the host that an
/// HTTP client would connect to (`http::Uri`, which ureq uses) is not loopback, private,
/// link-local, CGNAT or unspecified — the checker and the client never read different hosts.
pub fn url_policy(data: &[u8]) {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = url.parse::<ureq::http::Uri>() else {
        return;
    };
    let Some(host) = uri.host() else {
        return;
    };
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = literal.parse::<IpAddr>() else {
        return;
    };
    let policy = AddressPolicy {
        allow_private: false,
    };
    if policy.check(url).is_ok() {
        assert!(
            !internal(ip),
            "{url} was allowed, but a client would connect to {ip}"
        );
    }
}

/// The reference for "internal": loopback, private, link-local, CGNAT, unspecified, broadcast,
/// IPv6 unique-local and link-local, and IPv4-mapped forms of those.
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 127
                || a == 10
                || a == 0
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168)
                || (a == 169 && b == 254)
                || (a == 100 && (64..128).contains(&b))
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| internal(IpAddr::V4(v4)))
        }
    }
}

struct AuditFixture {
    dir: tempfile::TempDir,
    issuer: DevIssuer,
    original: Vec<String>,
}

fn audit_fixture() -> &'static AuditFixture {
    static FIXTURE: OnceLock<AuditFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let issuer = Arc::new(DevIssuer::load_or_create(dir.path(), AUDIENCE).expect("issuer"));
        let log = AuditLog::open(dir.path(), issuer.clone(), clock()).expect("log");
        for n in 0..3u64 {
            log.append(Record {
                event: "release".into(),
                who: format!("participant-{n}"),
                agreement: "urn:uuid:fuzz".into(),
                dataset: "health".into(),
                part: None,
                rows: n * 10,
                bytes: n * 100,
            })
            .expect("append");
        }
        drop(log);
        let original = std::fs::read_to_string(dir.path().join("audit/log.jsonl"))
            .expect("log")
            .lines()
            .map(str::to_owned)
            .collect();
        let issuer = DevIssuer::load_or_create(dir.path(), AUDIENCE).expect("issuer");
        AuditFixture {
            dir,
            issuer,
            original,
        }
    })
}

/// The audit-log verifier, against a real three-entry log and its signed head: the input
/// replaces the log file. Property: no panic, and whenever `verify` says the log is intact,
/// the three signed entries are exactly the ones written (no edit, deletion, reordering or
/// truncation goes unnoticed).
pub fn audit_verify(data: &[u8]) {
    let fixture = audit_fixture();
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let path = fixture.dir.path().join("audit/log.jsonl");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(count) = agora::audit::verify(fixture.dir.path(), &fixture.issuer) {
        let text = String::from_utf8_lossy(data);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            count, 3,
            "the verifier counted {count} entries of a 3-entry log"
        );
        assert!(
            lines.len() >= 3
                && lines[..3]
                    == fixture
                        .original
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()[..],
            "a changed log verified:\n{text}"
        );
    }
}

/// The DCAT harvester's page reader (`harvest_dcat::parse_page`, what every fetched
/// catalogue page of a peer portal goes through). Byte 0 picks the syntax (Turtle, JSON-LD,
/// RDF/XML, N-Triples). Properties: no panic; a page that is read lists only datasets under
/// the portal's base URL, and nothing it keeps states what only the node may state (no
/// `agora:` predicate, no `dcat:Catalog` typing, no dataset `odrl:hasPolicy`; the catalogue's
/// own statements only from the allowed properties); the same page read twice gives the same
/// datasets, the same number of triples and the same next page.
pub fn dcat_page(data: &[u8]) {
    use agora::harvest_dcat::{PageSyntax, parse_page};
    let Some((mode, body)) = data.split_first() else {
        return;
    };
    let syntax = match mode % 4 {
        0 => PageSyntax::Guarded(RdfSyntax::Turtle),
        1 => PageSyntax::Guarded(RdfSyntax::JsonLd),
        2 => PageSyntax::RdfXml,
        _ => PageSyntax::Guarded(RdfSyntax::NTriples),
    };
    const BASE: &str = "https://portal.fuzz.example/";
    const PAGE: &str = "https://portal.fuzz.example/catalog.ttl?page=2";
    let Ok(page) = parse_page(body, syntax, PAGE, BASE) else {
        return;
    };
    for dataset in &page.datasets {
        assert!(
            dataset.as_str().starts_with(BASE),
            "a dataset outside the portal's base URL was kept: {dataset}"
        );
    }
    let rdf_type = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";
    for triple in &page.triples {
        let predicate = triple.predicate.as_str();
        assert!(
            !predicate.starts_with("https://w3id.org/agora/ns#"),
            "a portal's page kept an agora statement: {triple}"
        );
        assert!(
            !(predicate == rdf_type
                && triple.object.to_string() == "<http://www.w3.org/ns/dcat#Catalog>"),
            "a portal's page kept a dcat:Catalog typing: {triple}"
        );
        let subject_is_dataset = page
            .datasets
            .iter()
            .any(|d| triple.subject.to_string() == d.to_string());
        assert!(
            !(subject_is_dataset && predicate == "http://www.w3.org/ns/odrl/2/hasPolicy"),
            "a portal's page kept a dataset's offer: {triple}"
        );
    }
    for (predicate, _) in &page.catalog {
        let allowed = [
            "http://purl.org/dc/terms/",
            "http://xmlns.com/foaf/0.1/homepage",
        ]
        .iter()
        .any(|p| predicate.as_str().starts_with(p))
            || predicate.as_str() == "http://www.w3.org/ns/dcat#themeTaxonomy";
        assert!(allowed, "the catalogue may not state {predicate} of itself");
    }
    let again = parse_page(body, syntax, PAGE, BASE).expect("a page read once reads twice");
    assert_eq!(
        page.datasets, again.datasets,
        "the same page listed other datasets"
    );
    assert_eq!(
        page.triples.len(),
        again.triples.len(),
        "the same page kept other triples"
    );
    assert_eq!(
        page.next, again.next,
        "the same page named another next page"
    );
    assert_eq!(page.catalog_iri, again.catalog_iri);
    assert_eq!(
        page.catalog.len(),
        again.catalog.len(),
        "the same page described its catalogue otherwise"
    );
}

/// A naive `application/x-www-form-urlencoded` decoder, the reference for `sparql_params`:
/// `+` is a space, `%` and two hex digits a byte, any other `%` itself; UTF-8 or `None`.
fn reference_decode(raw: &[u8]) -> Option<String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => bytes.push(b' '),
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(high), Some(low)) => {
                    bytes.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => bytes.push(b'%'),
            },
            other => bytes.push(other),
        }
        i += 1;
    }
    String::from_utf8(bytes).ok()
}

/// What the reference expects of a request's parameters: `Err(kind)` with the kind the node
/// must refuse with, in the node's order (an undecodable pair, then an Update, then the
/// number of queries, then the size), or the request.
fn reference_request(
    query_string: &[u8],
    form: Option<&[u8]>,
) -> Result<agora::http::SparqlProtocolRequest, agora::http::SparqlParameterError> {
    use agora::http::SparqlParameterError as E;
    let mut pairs = Vec::new();
    for part in std::iter::once(query_string).chain(form) {
        for pair in part.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            let key = reference_decode(key).ok_or(E::NotUtf8)?;
            let value = reference_decode(value).ok_or(E::NotUtf8)?;
            pairs.push((key, value));
        }
    }
    let values = |name: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    if ["update", "using-graph-uri", "using-named-graph-uri"]
        .iter()
        .any(|k| !values(k).is_empty())
    {
        return Err(E::Update);
    }
    let queries = values("query");
    let query = match queries.as_slice() {
        [one] => one.clone(),
        [] => return Err(E::NoQuery),
        _ => return Err(E::SeveralQueries),
    };
    if query.len() > 64 * 1024 {
        return Err(E::TooLarge);
    }
    // The form's `format` wins over the query string's; within one part, the last.
    let last_format = |part: &[u8]| {
        part.split(|b| *b == b'&')
            .filter_map(|pair| {
                let at = pair.iter().position(|b| *b == b'=');
                let key = reference_decode(&pair[..at.unwrap_or(pair.len())])?;
                let value =
                    at.map_or(Some(String::new()), |at| reference_decode(&pair[at + 1..]))?;
                (!pair.is_empty() && (key == "format" || key == "output")).then_some(value)
            })
            .next_back()
    };
    let format = form
        .and_then(last_format)
        .or_else(|| last_format(query_string));
    Ok(agora::http::SparqlProtocolRequest {
        query,
        default_graphs: values("default-graph-uri"),
        named_graphs: values("named-graph-uri"),
        format,
    })
}

/// The SPARQL protocol's parameter decoding (`http::decode_sparql_parameters`, what both the
/// GET and the form-POST handler run before a query is parsed). Byte 0 even: the rest is a
/// query string (GET); odd: the rest is a query string, a newline, and a form body (POST).
/// Properties: no panic; the node's decoding is the naive reference's, refusal kind and
/// order included (an Update is always refused, exactly one query is run, the dataset and
/// format are the ones sent), so that a proxy reading the same parameters with an ordinary
/// decoder sees the same request.
pub fn sparql_params(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let (query_string, form) = if mode % 2 == 0 {
        (rest, None)
    } else {
        match rest.iter().position(|b| *b == b'\n') {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, Some(&[][..])),
        }
    };
    let node = agora::http::decode_sparql_parameters(query_string, form);
    let reference = reference_request(query_string, form);
    assert_eq!(
        node,
        reference,
        "the node and the reference decode differently: {:?} / {:?}",
        String::from_utf8_lossy(query_string),
        form.map(String::from_utf8_lossy)
    );
}

/// `(target, file name, bytes)`.
pub type GeneratedSeed = (&'static str, &'static str, Vec<u8>);

/// Seeds that must be computed (signed with the fixed key, or written by the node itself):
/// `(target, file name, bytes)`. The regression test runs them too and can write them out.
pub fn generated_seeds() -> Vec<GeneratedSeed> {
    let claims = json!({
        "iss": ISSUER, "sub": "alice", "aud": AUDIENCE,
        "exp": NOW + 600, "nbf": NOW - 10, "iat": NOW - 10, "roles": ["researcher"],
    });
    let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &keys().encoding)
        .expect("sign");
    let mut valid = vec![0u8];
    valid.extend_from_slice(token.as_bytes());
    let mut signed_claims = vec![1u8];
    signed_claims.extend_from_slice(claims.to_string().as_bytes());
    let log = audit_fixture().original.join("\n") + "\n";
    vec![
        ("jwt", "generated-valid-token", valid),
        ("jwt", "generated-claims", signed_claims),
        ("audit_verify", "generated-intact-log", log.into_bytes()),
    ]
}
