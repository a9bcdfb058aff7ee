//! Arrow Flight (`--flight-bind`): `GetFlightInfo` answers one endpoint per shard segment and
//! `DoGet` on every ticket gives back exactly the enforced view the HTTP Arrow stream releases,
//! to arrow-flight's Rust client and to pyarrow.flight alike; tokens open only their own
//! agreement, an expired or missing token is refused, and each segment is audited.

use super::common::{Options, TestNode, bearer, pull_rights};
use agora::identity::{DevIssuer, TokenRequest};
use arrow_flight::{FlightClient, FlightDescriptor, FlightInfo, Ticket};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures_util::TryStreamExt as _;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tonic::Code;

fn flight_node() -> TestNode {
    TestNode::start(Options {
        demo: true,
        args: vec!["--flight-bind".into(), "127.0.0.1:0".into()],
        ..Options::default()
    })
}

/// The enforced view as the HTTP data plane streams it.
fn http_view(node: &TestNode, agreement: &str, token: &str) -> Vec<RecordBatch> {
    let response = node.get(
        &format!("/data/{agreement}/arrow"),
        &[("Authorization", &bearer(token))],
    );
    assert_eq!(response.status, 200, "{}", response.text());
    StreamReader::try_new(std::io::Cursor::new(response.body), None)
        .expect("an Arrow IPC stream")
        .collect::<Result<Vec<_>, _>>()
        .expect("complete batches")
}

/// Every row as text, sorted: the multiset of rows, whatever the batch boundaries or order.
fn rows(batches: &[RecordBatch]) -> (Vec<String>, Vec<String>) {
    let names = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    let options = FormatOptions::default().with_null("∅");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formattable"))
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            out.push(cells.join("\u{1f}"));
        }
    }
    out.sort();
    (names, out)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

async fn client(node: &TestNode, token: Option<&str>) -> FlightClient {
    let url = node.flight_location().replace("grpc+tcp://", "http://");
    let channel = tonic::transport::Channel::from_shared(url)
        .expect("a URL")
        .connect()
        .await
        .expect("the Flight server accepts connections");
    let mut client = FlightClient::new(channel);
    if let Some(token) = token {
        client
            .add_header("authorization", &bearer(token))
            .expect("a header");
    }
    client
}

/// The gRPC code of a failed Flight call.
fn code(error: arrow_flight::error::FlightError) -> (Code, String) {
    match error {
        arrow_flight::error::FlightError::Tonic(status) => {
            (status.code(), status.message().to_owned())
        }
        other => panic!("not a gRPC status: {other}"),
    }
}

async fn fetch_all(client: &mut FlightClient, info: &FlightInfo) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in &info.endpoint {
        let ticket = endpoint.ticket.clone().expect("a ticket");
        let stream = client.do_get(ticket).await.expect("DoGet");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("batches"));
    }
    batches
}

#[test]
fn flight_endpoints_together_are_the_enforced_view() {
    let mut node = flight_node();
    let (agreement, _, token) = pull_rights(&node, "flight-alice", "health");
    let expected = rows(&http_view(&node, &agreement, &token));
    assert!(expected.1.len() > 20_000, "a view of several shards");
    let sent = runtime().block_on(async {
        let mut flight = client(&node, Some(&token)).await;
        let info = flight
            .get_flight_info(FlightDescriptor::new_path(vec![agreement.clone()]))
            .await
            .expect("GetFlightInfo");
        assert!(info.endpoint.len() > 1, "one endpoint per shard: {info:?}");
        for endpoint in &info.endpoint {
            assert_eq!(endpoint.location.len(), 1);
            assert_eq!(endpoint.location[0].uri, node.flight_location());
        }
        let schema = info.clone().try_decode_schema().expect("a schema");
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, expected.0, "the enforced columns");
        let got = rows(&fetch_all(&mut flight, &info).await);
        assert_eq!(info.total_records as usize, expected.1.len());
        assert_eq!(got.0, expected.0);
        assert!(got.1 == expected.1, "the Flight endpoints differ from the HTTP stream");

        // A JSON command: two ranks of one epoch get equal, disjoint parts of the same rows.
        let mut parts = Vec::new();
        for rank in 0..2 {
            let command = json!({"agreement": agreement, "world_size": 2, "rank": rank, "epoch": 3, "seed": 7});
            let info = flight
                .get_flight_info(FlightDescriptor::new_cmd(command.to_string()))
                .await
                .expect("GetFlightInfo with a command");
            parts.push(rows(&fetch_all(&mut flight, &info).await).1);
        }
        assert_eq!(parts[0].len(), parts[1].len(), "equal ranks");
        let mut union: Vec<String> = parts.concat();
        union.sort();
        assert!(union.len() + 2 > expected.1.len(), "complete but for the remainder");
        assert!(
            union.iter().all(|r| expected.1.binary_search(r).is_ok()),
            "nothing outside the enforced view"
        );
        got.1.len() + union.len()
    });
    // Each segment was audited as released, with its rows, under this agreement.
    let holder = node.token(agora::node::DEMO_HOLDER, agora::identity::Role::Holder, &[]);
    let audit = node.get(
        "/api/audit?dataset=health",
        &[("Authorization", &bearer(&holder))],
    );
    assert_eq!(audit.status, 200, "{}", audit.text());
    let audited: u64 = audit.json()["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| {
            e["agreement"] == agreement.as_str()
                && e["event"] == "release"
                && e["part"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("flight-shard-"))
        })
        .map(|e| e["rows"].as_u64().expect("rows"))
        .sum();
    assert_eq!(
        audited as usize, sent,
        "every row sent over Flight is audited"
    );
    // The Flight server stops with the node.
    assert!(
        node.terminate().success(),
        "a clean shutdown with Flight running"
    );
}

/// A data-plane token signed by the node for `agreement` and `transfer`, issued at `issued`.
fn data_token_at(
    node: &TestNode,
    sub: &str,
    agreement: &str,
    transfer: &str,
    issued: chrono::DateTime<chrono::Utc>,
) -> String {
    let node_id = node.node_id();
    let issuer = DevIssuer::load_or_create(&node.data_dir, &node_id).expect("issuer");
    let claims = [
        format!("agreement={agreement}"),
        format!("transfer={transfer}"),
        "token_use=data-plane".to_owned(),
    ];
    let request = TokenRequest {
        subject: sub.into(),
        roles: Vec::new(),
        claims: Default::default(),
        lifetime: Duration::from_secs(60),
    }
    .with_claim_pairs(claims.iter().map(String::as_str))
    .expect("claims");
    issuer.issue(&request, &node_id, issued).expect("token")
}

#[test]
fn flight_tokens_open_only_their_own_agreement() {
    let node = flight_node();
    let (a, transfer_a, token_a) = pull_rights(&node, "flight-a", "health");
    let (b, _, token_b) = pull_rights(&node, "flight-b", "mobility");
    let expired = data_token_at(
        &node,
        "flight-a",
        &a,
        &transfer_a,
        chrono::Utc::now() - chrono::Duration::hours(2),
    );
    runtime().block_on(async {
        let path = |id: &str| FlightDescriptor::new_path(vec![id.to_owned()]);
        // B's own token gets B's tickets.
        let mut owner = client(&node, Some(&token_b)).await;
        let info_b = owner.get_flight_info(path(&b)).await.expect("B's info");
        let ticket_b: Ticket = info_b.endpoint[0].ticket.clone().expect("a ticket");

        // A's token on B: refused for the descriptor and for B's ticket.
        let mut other = client(&node, Some(&token_a)).await;
        let (c, message) = code(other.get_flight_info(path(&b)).await.unwrap_err());
        assert_eq!(c, Code::PermissionDenied, "{message}");
        assert!(message.contains("another agreement"), "{message}");
        let (c, message) = code(other.do_get(ticket_b.clone()).await.unwrap_err());
        assert_eq!(c, Code::PermissionDenied, "{message}");

        // No token, a participant token, an expired data-plane token: unauthenticated.
        let mut anonymous = client(&node, None).await;
        let (c, message) = code(anonymous.get_flight_info(path(&a)).await.unwrap_err());
        assert_eq!(c, Code::Unauthenticated, "{message}");
        assert!(message.contains("Bearer"), "{message}");
        let (c, _) = code(anonymous.do_get(ticket_b.clone()).await.unwrap_err());
        assert_eq!(c, Code::Unauthenticated);
        let participant = node.token(
            "flight-a",
            agora::identity::Role::Researcher,
            &[("country", "DE"), ("org_type", "university")],
        );
        let mut wrong_kind = client(&node, Some(&participant)).await;
        let (c, message) = code(wrong_kind.get_flight_info(path(&a)).await.unwrap_err());
        assert_eq!(c, Code::Unauthenticated, "{message}");
        let mut late = client(&node, Some(&expired)).await;
        let (c, message) = code(late.get_flight_info(path(&a)).await.unwrap_err());
        assert_eq!(c, Code::Unauthenticated, "{message}");
        assert!(message.contains("expired"), "{message}");

        // Malformed tickets and descriptors, and the RPCs this node does not offer.
        let (c, _) = code(
            other
                .do_get(Ticket::new("not json at all"))
                .await
                .unwrap_err(),
        );
        assert_eq!(c, Code::InvalidArgument);
        let forged = json!({"agreement": a, "shard": 0, "offset": 0, "rows": 1_000_000_000u64});
        let (c, message) = code(
            other
                .do_get(Ticket::new(forged.to_string()))
                .await
                .unwrap_err(),
        );
        assert_eq!(c, Code::InvalidArgument, "{message}");
        let (c, _) = code(
            other
                .get_flight_info(FlightDescriptor::new_cmd("{\"agreement\": 5}"))
                .await
                .unwrap_err(),
        );
        assert_eq!(c, Code::InvalidArgument);
        let Err(refused) = other.list_actions().await else {
            panic!("ListActions is not offered");
        };
        assert_eq!(code(refused).0, Code::Unimplemented);

        // A's own token still works after all that.
        let info_a = other.get_flight_info(path(&a)).await.expect("A's info");
        assert!(!info_a.endpoint.is_empty());
    });
    // An ended transfer closes Flight as it closes HTTP.
    // (The transfer of B is still running; the node stayed up through the abuse.)
    let health = node.get("/health", &[]);
    assert_eq!(health.status, 200);
}

/// The venv's Python (`AGORA_PYTHON`), or a skip line.
fn python() -> Option<PathBuf> {
    match std::env::var_os("AGORA_PYTHON").map(PathBuf::from) {
        Some(p) if p.exists() => Some(p),
        _ => {
            eprintln!("SKIP pyarrow.flight: AGORA_PYTHON is not set to a venv with pyarrow");
            None
        }
    }
}

/// pyarrow.flight's `GetFlightInfo` and `DoGet` on every endpoint, with the bearer in the call
/// headers, read back exactly the HTTP stream's rows; without the token it is refused.
const PYARROW_FLIGHT: &str = r#"
import json, sys
import pyarrow as pa
import pyarrow.flight as fl

location, agreement, token, other, out = sys.argv[1:]
options = fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
client = fl.FlightClient(location)
info = client.get_flight_info(fl.FlightDescriptor.for_path(agreement), options)
tables = []
for endpoint in info.endpoints:
    assert [str(l.uri, "utf-8") if isinstance(l.uri, bytes) else str(l.uri) for l in endpoint.locations] == [location], endpoint.locations
    reader = fl.FlightClient(endpoint.locations[0]).do_get(endpoint.ticket, options)
    tables.append(reader.read_all())
table = pa.concat_tables(tables)
assert table.schema.names == info.schema.names, (table.schema, info.schema)
with pa.OSFile(out, "wb") as sink:
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
refusals = {}
try:
    client.get_flight_info(fl.FlightDescriptor.for_path(agreement))
except fl.FlightUnauthenticatedError as e:
    refusals["none"] = "unauthenticated"
try:
    client.get_flight_info(fl.FlightDescriptor.for_path(other), options)
except fl.FlightUnauthorizedError as e:
    refusals["other"] = "permission-denied"
print(json.dumps({"endpoints": len(info.endpoints), "rows": table.num_rows, "total": info.total_records, "refusals": refusals}))
"#;

#[test]
fn pyarrow_flight_reads_every_endpoint_with_the_bearer_in_headers() {
    let Some(python) = python() else {
        return;
    };
    let node = flight_node();
    let (agreement, _, token) = pull_rights(&node, "flight-py", "health");
    let (other, _, _) = pull_rights(&node, "flight-py-other", "climate");
    let expected = rows(&http_view(&node, &agreement, &token));
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("union.arrows");
    let run = Command::new(python)
        .args(["-c", PYARROW_FLIGHT])
        .arg(node.flight_location())
        .arg(&agreement)
        .arg(&token)
        .arg(&other)
        .arg(&out)
        .output()
        .expect("python runs");
    assert!(
        run.status.success(),
        "pyarrow.flight failed: {}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&run.stdout).expect("a JSON report from the script");
    assert!(report["endpoints"].as_u64().unwrap() > 1, "{report}");
    assert_eq!(report["rows"].as_u64().unwrap() as usize, expected.1.len());
    assert_eq!(report["refusals"]["none"], "unauthenticated", "{report}");
    assert_eq!(report["refusals"]["other"], "permission-denied", "{report}");
    let file = std::fs::File::open(&out).expect("the union");
    let union: Vec<RecordBatch> = StreamReader::try_new(file, None)
        .expect("an Arrow IPC stream")
        .collect::<Result<_, _>>()
        .expect("batches");
    let got = rows(&union);
    assert_eq!(got.0, expected.0);
    assert!(
        got.1 == expected.1,
        "pyarrow.flight's union differs from the HTTP stream"
    );
}
