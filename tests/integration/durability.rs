//! An acknowledged write survives `kill -9` of the node.

use crate::common::{Options, TestNode, fixture};
use agora::identity::Role;

#[test]
fn acknowledged_publishes_survive_sigkill() {
    let mut node = TestNode::start(Options::default());
    let token = format!("Bearer {}", node.token("hospital-a", Role::Holder, &[]));
    let mut ids = Vec::new();
    for round in 0..5 {
        let body = String::from_utf8(fixture("dataset.ttl"))
            .expect("utf8")
            .replace("grid-load-2024", &format!("grid-load-2024-{round}"));
        let response = node.send(
            "POST",
            "/api/datasets",
            &[("content-type", "text/turtle"), ("authorization", &token)],
            body.as_bytes(),
        );
        assert_eq!(response.status, 201, "{}", response.text());
        ids.push(response.json()["id"].as_str().expect("id").to_owned());
        // No graceful shutdown: SIGKILL right after the 201.
        node.kill9_and_restart();
    }
    let token = format!("Bearer {}", node.token("hospital-a", Role::Holder, &[]));
    for id in &ids {
        let response = node.get(&format!("/api/datasets/{id}"), &[("accept", "text/turtle")]);
        assert_eq!(response.status, 200, "{id} lost: {}", response.text());
    }
    assert_eq!(
        node.get("/api/datasets?q=electricity", &[]).json()["total"],
        5
    );
    // A delete acknowledged before the kill stays deleted.
    let response = node.send(
        "DELETE",
        &format!("/api/datasets/{}", ids[0]),
        &[("authorization", &token)],
        b"",
    );
    assert_eq!(response.status, 204);
    node.kill9_and_restart();
    node.get(&format!("/api/datasets/{}", ids[0]), &[])
        .assert_problem(404);
    assert_eq!(
        node.get("/api/datasets?q=electricity", &[]).json()["total"],
        4
    );
}
