//! The web UI: its HTML routes (status codes, escaping of hostile input, who may open the
//! holder's pages, CSRF refusals, the session cookie never opening the JSON API), and the
//! journeys of the three users in headless Chromium (`tests/ui/journeys.mjs`, driven by
//! playwright-core), which also take the screenshots of `docs/screenshots/` (refreshed there
//! with `AGORA_SCREENSHOTS=$PWD/docs/screenshots`).

use super::common::{Options, TestNode, repo_root};
use agora::identity::Role;
use std::process::Command;
use std::time::Duration;

/// An agent that does not follow redirects, so the tests see the `303`s and `Set-Cookie`.
fn browser() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

struct Answer {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    content_type: String,
    body: String,
}

fn call(node: &TestNode, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let builder = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", node.url));
    let builder = headers.iter().fold(builder, |b, (k, v)| b.header(*k, *v));
    let request = builder.body(body.as_bytes().to_vec()).expect("request");
    let mut response = browser().run(request).expect("HTTP exchange");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let location = header("location");
    let set_cookie = header("set-cookie");
    let content_type = header("content-type").unwrap_or_default();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status,
        location,
        set_cookie,
        content_type,
        body,
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Signs in through the form; answers the `Cookie` header value and the CSRF token.
fn sign_in(node: &TestNode, token: &str) -> (String, String) {
    let answer = call(
        node,
        "POST",
        "/sign-in",
        &[("Content-Type", FORM)],
        &format!("token={}&next=%2F", encode(token)),
    );
    assert_eq!(answer.status, 303, "{}", answer.body);
    let cookie = answer.set_cookie.expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Expires"),
        "a session cookie: {cookie}"
    );
    let pair = cookie.split(';').next().expect("name=value").to_owned();
    let page = call(node, "GET", "/", &[("Cookie", &pair)], "");
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    (pair, csrf)
}

fn demo() -> TestNode {
    TestNode::start(Options {
        demo: true,
        ..Options::default()
    })
}

/// The pages answer HTML with the right status codes: search, dataset, editor (which runs a
/// query and links the downloads), unknown datasets, bad parameters as 4xx pages; `/sparql`
/// sends browsers without a query to the editor and still answers programs.
#[test]
fn ui_pages_answer_html_with_status_codes() {
    let node = demo();
    let home = call(&node, "GET", "/", &[], "");
    assert_eq!(home.status, 200);
    assert!(
        home.content_type.starts_with("text/html"),
        "{}",
        home.content_type
    );
    for needle in [
        "Sector pools",
        "Health",
        "Mobility",
        "Climate",
        "Origin node",
        "result-count\">3<",
    ] {
        assert!(
            home.body.contains(needle),
            "{needle} missing from the home page"
        );
    }
    let filtered = call(
        &node,
        "GET",
        "/?theme=http%3A%2F%2Fpublications.europa.eu%2Fresource%2Fauthority%2Fdata-theme%2FHEAL",
        &[],
        "",
    );
    assert!(
        filtered.body.contains("result-count\">1<"),
        "one health dataset"
    );

    let dataset = call(&node, "GET", "/datasets/health", &[], "");
    assert_eq!(dataset.status, 200);
    for needle in [
        "Usage policy",
        "EU recipients",
        "birth dates reduced to year",
        "groups under 11 suppressed",
        "until 2027-06-30",
        "/api/datasets/health?format=ttl",
        "/api/datasets/health?format=rdf",
        "Sign in to request access",
    ] {
        assert!(
            dataset.body.contains(needle),
            "{needle} missing from the dataset page"
        );
    }
    // The content-negotiated page is the same page.
    let negotiated = call(
        &node,
        "GET",
        "/api/datasets/health",
        &[("Accept", "text/html")],
        "",
    );
    assert_eq!(negotiated.status, 200);
    assert!(negotiated.body.contains("birth dates reduced to year"));

    let missing = call(&node, "GET", "/datasets/nope", &[], "");
    assert_eq!(missing.status, 404);
    assert!(missing.content_type.starts_with("text/html"));
    assert!(missing.body.contains("no dataset"), "{}", missing.body);

    let bad_offset = call(&node, "GET", "/?offset=many", &[], "");
    assert_eq!(bad_offset.status, 400);
    assert!(bad_offset.content_type.starts_with("text/html"));
    assert!(bad_offset.body.contains("whole number"));

    let editor = call(
        &node,
        "GET",
        &format!(
            "/sparql-editor?query={}",
            encode("SELECT ?d WHERE { ?d a <http://www.w3.org/ns/dcat#Dataset> }")
        ),
        &[],
        "",
    );
    assert_eq!(editor.status, 200);
    assert!(editor.body.contains("3 rows"), "{}", editor.body);
    assert!(editor.body.contains("format=csv"));
    let broken = call(&node, "GET", "/sparql-editor?query=SELEKT", &[], "");
    assert_eq!(broken.status, 400);
    assert!(broken.body.contains("query-error"));

    let redirected = call(&node, "GET", "/sparql", &[("Accept", "text/html")], "");
    assert_eq!(redirected.status, 303);
    assert_eq!(redirected.location.as_deref(), Some("/sparql-editor"));
    let csv = call(
        &node,
        "GET",
        &format!(
            "/sparql?query={}",
            encode("SELECT ?d WHERE { ?d a <http://www.w3.org/ns/dcat#Dataset> }")
        ),
        &[("Accept", "text/csv")],
        "",
    );
    assert_eq!(csv.status, 200);
    assert!(csv.body.starts_with("d\r\n"), "{}", csv.body);
}

/// Holder pages: 401 pages without a session, 403 for a researcher; POST forms without the
/// session's CSRF token are refused; the cookie never opens the JSON API; sign-out clears it;
/// a bad token gets the sign-in form again with a 401.
#[test]
fn ui_sessions_roles_and_csrf() {
    let node = demo();
    for path in ["/holder", "/publish", "/holder/audit/health"] {
        let answer = call(&node, "GET", path, &[], "");
        assert_eq!(answer.status, 401, "{path}");
        assert!(answer.content_type.starts_with("text/html"), "{path}");
        assert!(answer.body.contains("href=\"/sign-in\""), "{path}");
    }
    let refused = call(
        &node,
        "POST",
        "/sign-in",
        &[("Content-Type", FORM)],
        "token=not-a-jwt",
    );
    assert_eq!(refused.status, 401);
    assert!(
        refused.body.contains("was not accepted"),
        "{}",
        refused.body
    );
    assert!(refused.set_cookie.is_none());

    let researcher = node.token(
        "alice",
        Role::Researcher,
        &[("country", "DE"), ("org_type", "university")],
    );
    let cross_site = call(
        &node,
        "POST",
        "/sign-in",
        &[("Content-Type", FORM), ("Origin", "https://evil.example")],
        &format!("token={}", encode(&researcher)),
    );
    assert_eq!(cross_site.status, 403, "no login CSRF");
    assert!(cross_site.set_cookie.is_none());
    let (alice, alice_csrf) = sign_in(&node, &researcher);
    let forbidden = call(&node, "GET", "/holder", &[("Cookie", &alice)], "");
    assert_eq!(forbidden.status, 403);
    assert!(forbidden.body.contains("holder"));

    // No CSRF token, or another one: refused before anything happens.
    for body in [
        "purpose=https%3A%2F%2Fw3id.org%2Fdpv%23AcademicResearch".to_owned(),
        "purpose=https%3A%2F%2Fw3id.org%2Fdpv%23AcademicResearch&csrf=0000".to_owned(),
    ] {
        let answer = call(
            &node,
            "POST",
            "/datasets/health/request",
            &[("Cookie", &alice), ("Content-Type", FORM)],
            &body,
        );
        assert_eq!(answer.status, 403, "{}", answer.body);
        assert!(answer.body.contains("CSRF"));
    }
    // No purpose: a 400 page that says what to do.
    let no_purpose = call(
        &node,
        "POST",
        "/datasets/health/request",
        &[("Cookie", &alice), ("Content-Type", FORM)],
        &format!("purpose=&csrf={alice_csrf}"),
    );
    assert_eq!(no_purpose.status, 400);
    assert!(no_purpose.body.contains("State a purpose"));
    // With it: a negotiation page.
    let asked = call(
        &node,
        "POST",
        "/datasets/health/request",
        &[("Cookie", &alice), ("Content-Type", FORM)],
        &format!("purpose=https%3A%2F%2Fw3id.org%2Fdpv%23AcademicResearch&csrf={alice_csrf}"),
    );
    assert_eq!(asked.status, 303, "{}", asked.body);
    let negotiation = asked.location.expect("the negotiation page");
    let shown = call(&node, "GET", &negotiation, &[("Cookie", &alice)], "");
    assert_eq!(shown.status, 200);
    assert!(shown.body.contains("FINALIZED"), "{}", shown.body);
    assert!(
        shown
            .body
            .contains("agora_client.torch.AgoraIterableDataset(node, agreement)")
    );
    // Nobody else sees it.
    assert_eq!(call(&node, "GET", &negotiation, &[], "").status, 401);
    // The page's poll reads the same session.
    let status = format!("{negotiation}/status");
    let polled = call(&node, "GET", &status, &[("Cookie", &alice)], "");
    assert_eq!(polled.status, 200);
    assert!(
        polled.body.contains("\"state\":\"FINALIZED\""),
        "{}",
        polled.body
    );
    assert_eq!(call(&node, "GET", &status, &[], "").status, 401);

    // The JSON API does not take the cookie.
    let api = call(
        &node,
        "POST",
        "/api/negotiations",
        &[("Cookie", &alice), ("Content-Type", "application/json")],
        r#"{"dataset": "health", "purpose": "dpv:AcademicResearch"}"#,
    );
    assert_eq!(api.status, 401, "{}", api.body);
    assert!(api.content_type.starts_with("application/problem+json"));

    let holder = node.token("demo-holder", Role::Holder, &[]);
    let (cookie, csrf) = sign_in(&node, &holder);
    assert_ne!(csrf, alice_csrf, "a CSRF token per session");
    let space = call(&node, "GET", "/holder", &[("Cookie", &cookie)], "");
    assert_eq!(space.status, 200);
    assert!(
        space.body.contains("/holder/audit/health"),
        "the demo pools are the demo holder's"
    );
    let audit = call(
        &node,
        "GET",
        "/holder/audit/health",
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(audit.status, 200);
    let someone_elses = call(
        &node,
        "GET",
        "/holder/audit/health",
        &[(
            "Cookie",
            &sign_in(&node, &node.token("other", Role::Holder, &[])).0,
        )],
        "",
    );
    assert_eq!(someone_elses.status, 404);
    let decided = call(
        &node,
        "POST",
        "/holder/negotiations/nope/approve",
        &[("Cookie", &cookie), ("Content-Type", FORM)],
        "",
    );
    assert_eq!(decided.status, 403, "CSRF first");
    let unknown = call(
        &node,
        "POST",
        "/holder/negotiations/nope/approve",
        &[("Cookie", &cookie), ("Content-Type", FORM)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(unknown.content_type.starts_with("text/html"));

    let out = call(
        &node,
        "POST",
        "/sign-out",
        &[("Cookie", &cookie), ("Content-Type", FORM)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(out.status, 303);
    let cleared = out.set_cookie.expect("cleared cookie");
    assert!(
        cleared.starts_with("agora_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

/// Publishing through the form: a missing title is a 422 page with the DCAT-AP message beside
/// the title field; a hostile title is published and shown escaped everywhere.
#[test]
fn ui_publish_form_validates_and_escapes() {
    let node = TestNode::start(Options::default());
    let holder = node.token("river-agency", Role::Holder, &[]);
    let (cookie, csrf) = sign_in(&node, &holder);
    let fields = |title: &str, url: &str| {
        format!(
            "csrf={csrf}&title={}&description={}&sector=climate&keywords=water&publisher={}&url={}&format=CSV&licence=CC_BY_4_0&policy=approval",
            encode(title),
            encode("Water levels <b>every</b> 15 minutes."),
            encode("River \"Agency\" <i>"),
            encode(url)
        )
    };
    let missing = call(
        &node,
        "POST",
        "/publish",
        &[("Cookie", &cookie), ("Content-Type", FORM)],
        &fields("", "https://rivers.example.org/"),
    );
    assert_eq!(missing.status, 422, "{}", missing.body);
    assert!(
        missing.body.contains("id=\"title-error\""),
        "{}",
        missing.body
    );
    assert!(missing.body.contains("dct:title"));
    assert!(
        missing
            .body
            .contains("Water levels &lt;b&gt;every&lt;/b&gt;"),
        "the form keeps what was typed, escaped"
    );

    let bad_url = call(
        &node,
        "POST",
        "/publish",
        &[("Cookie", &cookie), ("Content-Type", FORM)],
        &fields("Gauges", "not a url"),
    );
    assert_eq!(bad_url.status, 422);
    assert!(bad_url.body.contains("id=\"url-error\""));

    let hostile = "<script>alert('pwned')</script> & \"quotes\"";
    let published = call(
        &node,
        "POST",
        "/publish",
        &[("Cookie", &cookie), ("Content-Type", FORM)],
        &fields(hostile, "https://rivers.example.org/"),
    );
    assert_eq!(published.status, 303, "{}", published.body);
    let location = published.location.expect("the dataset page");
    for path in [location.as_str(), "/?q=water", "/holder"] {
        let page = call(&node, "GET", path, &[("Cookie", &cookie)], "");
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains("<script>alert"), "unescaped on {path}");
        assert!(
            page.body.contains(
                "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;"
            ),
            "escaped title on {path}"
        );
    }
    // Every template of policies/ is offered, by uid, and publishes.
    let form = call(&node, "GET", "/publish", &[("Cookie", &cookie)], "");
    for uid in agora::policy::template_uids() {
        assert!(
            form.body.contains(&format!("value=\"{uid}\"")),
            "{uid} offered"
        );
    }
    let templated = call(
        &node,
        "POST",
        "/publish",
        &[("Cookie", &cookie), ("Content-Type", FORM)],
        &fields("Gauges, open", "https://rivers.example.org/").replace(
            "policy=approval",
            "policy=https%3A%2F%2Fw3id.org%2Fagora%2Fpolicies%2Fopen-data-attribution",
        ),
    );
    assert_eq!(templated.status, 303, "{}", templated.body);
    let opened = call(&node, "GET", &templated.location.expect("page"), &[], "");
    assert!(
        opened.body.contains("attribution required"),
        "{}",
        opened.body
    );

    let page = call(&node, "GET", &location, &[], "");
    assert!(
        page.body
            .contains("each request approved by the data holder"),
        "{}",
        page.body
    );
}

/// Without the npm bundle the editor is the plain textarea, and it still runs queries.
#[test]
fn ui_editor_without_bundle_is_a_textarea() {
    let empty = tempfile::tempdir().expect("empty bundle dir");
    let node = TestNode::start(Options {
        env: vec![("AGORA_UI_DIR".into(), empty.path().display().to_string())],
        ..Options::default()
    });
    let editor = call(
        &node,
        "GET",
        &format!("/sparql-editor?query={}", encode("ASK { ?s ?p ?o }")),
        &[],
        "",
    );
    assert_eq!(editor.status, 200);
    assert!(editor.body.contains("<textarea id=\"query\""));
    assert!(
        !editor.body.contains("/ui/assets/editor.js"),
        "no script without a bundle"
    );
    assert!(editor.body.contains("id=\"ask-answer\""), "{}", editor.body);
    let missing = call(&node, "GET", "/ui/assets/editor.js", &[], "");
    assert_eq!(missing.status, 404);
    assert!(missing.content_type.starts_with("text/html"));
    let escape_attempt = call(&node, "GET", "/ui/assets/..%2F..%2FCargo.toml", &[], "");
    assert_eq!(escape_attempt.status, 404);
    let script = call(&node, "GET", "/ui/assets/ui.js", &[], "");
    assert_eq!(script.status, 200);
    assert!(script.content_type.starts_with("text/javascript"));
}

/// The three users' journeys in a real browser (see `tests/ui/journeys.mjs`).
#[test]
fn ui_journeys_in_headless_chromium() {
    let root = repo_root();
    let chromium = std::env::var("AGORA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver = root.join("ui/node_modules/playwright-core");
    if !std::path::Path::new(&chromium).exists() || !driver.is_dir() {
        eprintln!("SKIP ui journeys: needs {chromium} and ui/node_modules (run scripts/setup.sh)");
        return;
    }
    let node = demo();
    let holder = node.token("demo-holder", Role::Holder, &[]);
    let researcher = node.token(
        "dr-researcher",
        Role::Researcher,
        &[("country", "DE"), ("org_type", "university")],
    );
    // Screenshots go to a scratch folder, so that test runs leave the tree clean; set
    // AGORA_SCREENSHOTS=$PWD/docs/screenshots to refresh the committed ones.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let output = Command::new("node")
        .arg(root.join("tests/ui/journeys.mjs"))
        .env("AGORA_URL", &node.url)
        .env("AGORA_HOLDER_TOKEN", &holder)
        .env("AGORA_RESEARCHER_TOKEN", &researcher)
        .env("AGORA_CHROMIUM", &chromium)
        .env(
            "AGORA_SCREENSHOTS",
            std::env::var_os("AGORA_SCREENSHOTS").unwrap_or_else(|| scratch.path().into()),
        )
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "journeys failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all journeys passed"), "{stdout}");
}

/// A harvested dataset of a DCAT-AP portal (read-only: no offers, negotiation answers 404)
/// offers no access request on its page, signed in or not, in the UI or by content
/// negotiation; a local dataset still does. The portal is one Turtle page (ckanext-dcat's last
/// page, without a next link) served from a thread of the test.
#[test]
fn ui_read_only_datasets_offer_no_access_request() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let portal = format!("http://{}/city", listener.local_addr().expect("address"));
    let page = String::from_utf8(super::common::fixture("ckan/catalog-page-3.ttl"))
        .expect("utf-8")
        .replace("{BASE}", &portal);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65_536 {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let target = String::from_utf8_lossy(&request)
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let (status, body) = if target == "/city/catalog.ttl" {
                ("200 OK", page.as_bytes())
            } else {
                ("404 Not Found", &b"not found"[..])
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/turtle\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    let node = TestNode::start(Options {
        demo: true,
        args: vec![
            "--allow-private-addresses".into(),
            "--peer".into(),
            format!("city=dcat+{portal}"),
        ],
        ..Options::default()
    });
    let until = std::time::Instant::now() + Duration::from_secs(120);
    let id = loop {
        let hits = node.get("/api/datasets?origin=city&limit=10", &[]);
        let found = hits.json()["items"]
            .as_array()
            .and_then(|items| items.first())
            .and_then(|item| item["id"].as_str())
            .map(str::to_owned);
        if let Some(id) = found {
            break id;
        }
        assert!(
            std::time::Instant::now() < until,
            "the portal was not harvested: {}",
            hits.text()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(id.starts_with("city:"), "{id}");

    let researcher = node.token("ada", Role::Researcher, &[]);
    let (cookie, _) = sign_in(&node, &researcher);
    let path = format!("/datasets/{}", encode(&id));
    for headers in [vec![], vec![("Cookie", cookie.as_str())]] {
        let page = call(&node, "GET", &path, &headers, "");
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("Public parking spaces"), "{}", page.body);
        assert!(!page.body.contains("Request access"), "{}", page.body);
        assert!(!page.body.contains("/request\""), "{}", page.body);
        assert!(page.body.contains("id=\"read-only\""), "{}", page.body);
    }
    let negotiated = call(
        &node,
        "GET",
        &format!("/api/datasets/{}", encode(&id)),
        &[("Accept", "text/html")],
        "",
    );
    assert_eq!(negotiated.status, 200, "{}", negotiated.body);
    assert!(negotiated.content_type.starts_with("text/html"));
    assert!(
        !negotiated.body.contains("Request access"),
        "{}",
        negotiated.body
    );

    // A local dataset of the demo still offers the request.
    let local = node.get("/api/datasets?origin=local&limit=1", &[]).json();
    let local_id = local["items"][0]["id"]
        .as_str()
        .expect("a demo dataset")
        .to_owned();
    let page = call(
        &node,
        "GET",
        &format!("/datasets/{}", encode(&local_id)),
        &[("Cookie", cookie.as_str())],
        "",
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Request access"), "{}", page.body);
}
