//! Delta Sharing: the official `delta-sharing` Python client reads the enforced view of an
//! agreement on the demo node's health pool through `/delta-sharing/`, with the profile file
//! the node generates; file URLs are node-signed and expire, and a foreign token is refused.

use super::common::{Options, TestNode, bearer, pull_rights, repo_root};
use agora::engine::enforce::{agreement_key, hmac_sha256};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value as Json, json};
use std::path::PathBuf;
use std::process::Command;

/// The Python of the delta-sharing venv (`AGORA_DELTA_PYTHON`, or the one scripts/setup.sh
/// makes), or a skip line.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("AGORA_DELTA_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/agora-venv-delta/bin/python"))
        });
    match python {
        Some(p) if p.exists() => Some(p),
        _ => {
            eprintln!(
                "SKIP delta-sharing client: no venv with tests/conformance/delta_sharing/requirements.txt (scripts/setup.sh makes ~/.cache/agora-venv-delta; or set AGORA_DELTA_PYTHON)"
            );
            None
        }
    }
}

/// A path and query of a URL the node wrote with its own public address.
fn local(node: &TestNode, url: &str) -> String {
    url.strip_prefix(&node.url)
        .unwrap_or_else(|| panic!("{url} is not on {}", node.url))
        .to_owned()
}

/// The query lines of the table: (file URLs, every line).
fn query(node: &TestNode, token: &str, share: &str, table: &str) -> (Vec<String>, Vec<Json>) {
    let response = node.send(
        "POST",
        &format!("/delta-sharing/shares/{share}/schemas/default/tables/{table}/query"),
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("delta-table-version"), Some("0"));
    let lines: Vec<Json> = response
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines[0]["protocol"]["minReaderVersion"], 1);
    let urls = lines[2..]
        .iter()
        .map(|l| l["file"]["url"].as_str().expect("a file URL").to_owned())
        .collect();
    (urls, lines)
}

#[test]
fn the_official_client_reads_the_enforced_view() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let (agreement, _, token) = pull_rights(&node, "delta-reader", "health");
    let auth = bearer(&token);

    // The profile the node writes for the token.
    let profile = node.get("/delta-sharing/profile", &[("Authorization", &auth)]);
    assert_eq!(profile.status, 200, "{}", profile.text());
    let profile = profile.json();
    assert_eq!(profile["shareCredentialsVersion"], 1);
    assert_eq!(profile["endpoint"], format!("{}/delta-sharing", node.url));
    assert_eq!(profile["bearerToken"], token.as_str());
    assert!(profile["expirationTime"].is_string());

    let shares = node.get("/delta-sharing/shares", &[("Authorization", &auth)]);
    assert_eq!(shares.status, 200, "{}", shares.text());
    let share = shares.json()["items"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(Some(share.as_str()), agreement.strip_prefix("urn:uuid:"));

    // A wrong token is unauthenticated, in the protocol's error format.
    let wrong = node.get(
        "/delta-sharing/shares",
        &[("Authorization", "Bearer not-a-token")],
    );
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    assert_eq!(wrong.json()["errorCode"], "UNAUTHENTICATED");
    let version = node.get(
        &format!("/delta-sharing/shares/{share}/schemas/default/tables/health/version"),
        &[("Authorization", &auth)],
    );
    assert_eq!(version.status, 200, "{}", version.text());
    assert_eq!(version.header("delta-table-version"), Some("0"));

    // The metadata carries the enforced schema.
    let metadata = node.get(
        &format!("/delta-sharing/shares/{share}/schemas/default/tables/health/metadata"),
        &[("Authorization", &auth)],
    );
    assert_eq!(metadata.status, 200, "{}", metadata.text());
    let line: Json = serde_json::from_str(metadata.text().lines().nth(1).unwrap()).unwrap();
    let schema: Json =
        serde_json::from_str(line["metaData"]["schemaString"].as_str().unwrap()).unwrap();
    let names: Vec<&str> = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"patient_id"), "{names:?}");
    assert!(!names.contains(&"postcode"), "{names:?}");

    // File URLs: signed, served without a bearer, refused when tampered with or expired.
    let (urls, lines) = query(&node, &token, &share, "health");
    assert!(!urls.is_empty());
    assert!(
        lines[2]["file"]["stats"]
            .as_str()
            .unwrap()
            .contains("numRecords")
    );
    let first = local(&node, &urls[0]);
    let fetched = node.get(&first, &[]);
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert_eq!(&fetched.body[..4], b"PAR1");
    assert_eq!(
        fetched.body.len() as u64,
        lines[2]["file"]["size"].as_u64().unwrap()
    );
    let ranged = node.get(&first, &[("Range", "bytes=0-3")]);
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, b"PAR1");
    let (path, query_string) = first.split_once('?').unwrap();
    let tampered_sig = first.replace("sig=", "sig=0");
    assert_eq!(node.get(&tampered_sig, &[]).status, 403);
    let other_shard = format!("{path}9?{query_string}");
    assert_eq!(node.get(&other_shard, &[]).status, 403);
    let params: std::collections::HashMap<String, String> = query_string
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let value = percent_decode_str(v).decode_utf8().unwrap();
            (k.to_owned(), value.into_owned())
        })
        .collect();
    let later = params["expires"].parse::<i64>().unwrap() + 3600;
    let extended = first.replace(
        &format!("expires={}", params["expires"]),
        &format!("expires={later}"),
    );
    assert_eq!(node.get(&extended, &[]).status, 403);
    // A URL the node itself signed, but with an expiry in the past.
    let secret = std::fs::read(node.data_dir.join("keys/pseudonym.key")).unwrap();
    let key = hmac_sha256(
        &agreement_key(&secret.try_into().unwrap(), &agreement),
        b"delta-sharing-url",
    );
    let past = chrono::Utc::now().timestamp() - 60;
    let message = format!(
        "delta-sharing-file\n{agreement}\n0\n{past}\n{}\n{}",
        params["transfer"], params["sub"]
    );
    let sig = hex::encode(hmac_sha256(&key, message.as_bytes()));
    let expired = format!(
        "{path}?expires={past}&transfer={}&sub={}&sig={sig}",
        utf8_percent_encode(&params["transfer"], NON_ALPHANUMERIC),
        utf8_percent_encode(&params["sub"], NON_ALPHANUMERIC),
    );
    let refused = node.get(&expired, &[]);
    assert_eq!(refused.status, 403, "{}", refused.text());

    // The enforced row count, as the shard plan states it.
    let plan = node.get(
        &format!("/data/{agreement}/shards?world_size=1"),
        &[("Authorization", &auth)],
    );
    assert_eq!(plan.status, 200, "{}", plan.text());
    let total_rows = plan.json()["total_rows"].as_u64().unwrap();

    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let profile_file = dir.path().join("agora.share");
    std::fs::write(&profile_file, profile.to_string()).unwrap();
    let output = Command::new(python)
        .arg(repo_root().join("tests/conformance/delta_sharing/read_share.py"))
        .arg(&profile_file)
        .arg(&share)
        .arg("health")
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the delta-sharing client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Json = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(seen["rows"].as_u64(), Some(total_rows), "{seen}");
    assert_eq!(
        seen["limited_rows"].as_u64(),
        Some(10.min(total_rows)),
        "{seen}"
    );
    assert_eq!(seen["version"], 0);
    assert_eq!(seen["shares"], json!([share]));
    assert_eq!(seen["tables"], json!([format!("{share}.default.health")]));
    let columns: Vec<&str> = seen["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(columns, names, "the client's columns are the metadata's");
    assert!(!columns.contains(&"postcode"), "{columns:?}");
    assert_eq!(seen["patient_ids_are_pseudonyms"], true, "{seen}");
    let release = node.get(&format!("/data/{agreement}"), &[("Authorization", &auth)]);
    assert_eq!(release.status, 200, "{}", release.text());
    for column in release.json()["pseudonymised_columns"].as_array().unwrap() {
        assert!(
            seen["hex32_columns"].as_array().unwrap().contains(column),
            "{column} is pseudonymised but the client read other values: {seen}"
        );
    }
    eprintln!(
        "delta-sharing client read {} rows, columns {columns:?}",
        seen["rows"]
    );
}
