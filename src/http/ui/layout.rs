//! The page frame every UI page shares (header, navigation, footer, the style sheet) and the
//! one escaping helper: every string that did not come from this file goes through [`escape`].

use super::session::Session;

/// Escapes text for HTML element content and attribute values (both quotes included, so the
/// result is safe inside `"…"` and `'…'` attributes).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query-string value.
pub fn url_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// What a page puts in the frame.
pub struct Page<'a> {
    /// The `<title>` and the main heading's text (escaped here).
    pub title: &'a str,
    /// Which navigation entry is current (`search`, `sparql`, `holder`, `sign-in`).
    pub section: &'a str,
    /// Who is signed in, for the header and the forms' CSRF token.
    pub session: &'a Session,
    /// Extra `<head>` markup (already safe): a meta refresh, a script tag.
    pub head: String,
    /// The page's body (already safe).
    pub body: String,
}

const STYLE: &str = r#"
:root{--ink:#1b1f24;--muted:#4a5563;--line:#d0d7de;--bg:#f6f8fa;--brand:#003399;--brand-ink:#fff;--accent:#0b57d0;--ok:#116329;--warn:#7a4d00;--bad:#a40e26;--focus:#ffcc00}
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#fff;line-height:1.5;font-size:16px}
a{color:var(--accent)}a:hover{text-decoration-thickness:2px}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem;z-index:10}
header.top{background:var(--brand);color:var(--brand-ink)}
header.top .bar{max-width:76rem;margin:0 auto;padding:.75rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center}
header.top a{color:var(--brand-ink);text-decoration:none}
.brand{font-weight:700;font-size:1.25rem;letter-spacing:.02em}.brand small{font-weight:400;opacity:.85;font-size:.8rem;margin-left:.5rem}
nav.main ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.25rem 1rem}
nav.main a{padding:.25rem 0;border-bottom:2px solid transparent}nav.main a[aria-current=page]{border-bottom-color:var(--brand-ink);font-weight:600}
.who{margin-left:auto;display:flex;gap:.75rem;align-items:center;font-size:.9rem}
.who form{margin:0}.who button{background:transparent;color:var(--brand-ink);border:1px solid var(--brand-ink);border-radius:4px;padding:.2rem .6rem;font:inherit;cursor:pointer}
main{max-width:76rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.75rem;margin:.25rem 0 1rem;line-height:1.25}h2{font-size:1.25rem;margin:2rem 0 .75rem}h3{font-size:1.05rem;margin:1rem 0 .5rem}
.muted{color:var(--muted)}.small{font-size:.875rem}
.layout{display:grid;grid-template-columns:16rem 1fr;gap:2rem}.layout>*{min-width:0}
.card{border:1px solid var(--line);border-radius:6px;padding:1rem;background:#fff}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(14rem,1fr));gap:1rem;margin:1rem 0 1.5rem}
.pool{border-top:4px solid var(--brand)}.pool h3{margin-top:0}.pool .count{font-size:1.5rem;font-weight:700}
.facets h2{font-size:1rem;margin:1.25rem 0 .5rem}.facets ul{list-style:none;padding:0;margin:0}.facets li{margin:.15rem 0;font-size:.925rem;overflow-wrap:anywhere}
.facets a[aria-current=true]{font-weight:700}
.results{list-style:none;padding:0;margin:0}.results li{padding:1rem 0;border-bottom:1px solid var(--line)}
.results h3{margin:0 0 .25rem}.results p{margin:.25rem 0}
.tag{display:inline-block;background:var(--bg);border:1px solid var(--line);border-radius:999px;padding:0 .6rem;font-size:.8rem;margin:.1rem .25rem .1rem 0}
form.search{display:flex;gap:.5rem;flex-wrap:wrap;margin-bottom:1rem}form.search input[type=search]{flex:1 1 16rem}
label{font-weight:600;display:block;margin:.75rem 0 .25rem}
input[type=text],input[type=search],input[type=url],input[type=password],select,textarea{width:100%;font:inherit;padding:.5rem .6rem;border:1px solid #8c959f;border-radius:4px;background:#fff;color:var(--ink)}
form.search input[type=search]{width:auto}
textarea{min-height:6rem}textarea.code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9rem;min-height:12rem}
button,.button{display:inline-block;font:inherit;font-weight:600;background:var(--brand);color:#fff;border:1px solid var(--brand);border-radius:4px;padding:.5rem 1rem;cursor:pointer;text-decoration:none}
button.secondary,.button.secondary{background:#fff;color:var(--brand)}button.danger{background:var(--bad);border-color:var(--bad)}
.hint{color:var(--muted);font-size:.875rem;margin:.2rem 0 0}
.field-error{color:var(--bad);font-weight:600;font-size:.9rem;margin:.25rem 0 0}
[aria-invalid=true]{border-color:var(--bad)!important;border-width:2px!important}
.notice{border-left:4px solid var(--accent);background:var(--bg);padding:.75rem 1rem;margin:1rem 0}
.notice.ok{border-color:var(--ok)}.notice.bad{border-color:var(--bad)}.notice.warn{border-color:var(--warn)}
dl.meta{display:grid;grid-template-columns:12rem 1fr;gap:.4rem 1rem;margin:0}dl.meta dt{font-weight:600;color:var(--muted)}dl.meta dd{margin:0;overflow-wrap:anywhere}
@media (max-width:600px){dl.meta{grid-template-columns:1fr}dl.meta dd{margin-bottom:.5rem}}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{border:1px solid var(--line);padding:.4rem .6rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}th{background:var(--bg)}
@media (max-width:600px){table.stack thead{position:absolute;left:-9999px}table.stack tr{display:block;border:1px solid var(--line);border-radius:6px;margin:0 0 .75rem}table.stack td{display:block;border:0;border-bottom:1px solid var(--line);overflow-wrap:anywhere}table.stack td:last-child{border-bottom:0}table.stack td::before{content:attr(data-label);display:block;font-weight:600;color:var(--muted);font-size:.8rem}}
.table-wrap{overflow-x:auto}
.policy{list-style:none;padding:0;margin:.5rem 0}.policy li{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:.75rem 1rem;margin:.5rem 0;font-weight:600}
pre.snippet{background:#0d1117;color:#e6edf3;padding:1rem;border-radius:6px;overflow-x:auto;font-size:.85rem}
.state{font-weight:700}.state.FINALIZED{color:var(--ok)}.state.TERMINATED{color:var(--bad)}.state.REQUESTED,.state.OFFERED,.state.ACCEPTED,.state.AGREED,.state.VERIFIED{color:var(--warn)}
.pager{display:flex;gap:1rem;align-items:center;margin-top:1rem}
.row{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center}
.cm-sparql{border:1px solid #8c959f;border-radius:4px;min-height:12rem;font-size:.9rem;max-width:100%;overflow:hidden}.cm-sparql .cm-scroller{overflow-x:auto}
footer{border-top:1px solid var(--line);color:var(--muted);font-size:.85rem}footer div{max-width:76rem;margin:0 auto;padding:1rem}
.narrow-only{display:none}
@media (max-width:800px){.layout{grid-template-columns:1fr}.who{margin-left:0}.layout>aside.facets{order:2}.cards{grid-template-columns:repeat(3,1fr);gap:.5rem}.pool{padding:.6rem}.pool .about{display:none}.pool .count{font-size:1.2rem;margin:.25rem 0 0}.narrow-only{display:inline}}
"#;

/// The whole document.
pub fn render(page: Page<'_>) -> String {
    let nav = [
        ("search", "/", "Search"),
        ("sparql", "/sparql-editor", "SPARQL"),
        ("holder", "/holder", "Data holder"),
    ]
    .iter()
    .map(|(key, href, label)| {
        let current = if *key == page.section {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<li><a href=\"{href}\"{current}>{label}</a></li>")
    })
    .collect::<String>();
    let who = match &page.session.principal {
        Some(principal) => {
            let roles: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
            format!(
                "<span>Signed in as <strong>{}</strong> ({})</span>\
                 <form method=\"post\" action=\"/sign-out\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Sign out</button></form>",
                escape(&principal.subject),
                escape(&roles.join(", ")),
                escape(&page.session.csrf)
            )
        }
        None => "<a href=\"/sign-in\">Sign in</a>".to_owned(),
    };
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · agora</title>
<style>{STYLE}</style>
{head}
</head>
<body>
<a class="skip" href="#content">Skip to content</a>
<header class="top"><div class="bar">
<a class="brand" href="/">agora<small>European data space node</small></a>
<nav class="main" aria-label="Main"><ul>{nav}</ul></nav>
<div class="who">{who}</div>
</div></header>
<main id="content">
{body}
</main>
<footer><div>agora · DCAT-AP 3 catalogue, ODRL contracts over the Dataspace Protocol, governed data plane · <a href="/openapi.json">API</a> · <a href="/catalog">DCAT catalogue</a></div></footer>
</body>
</html>
"##,
        title = escape(page.title),
        head = page.head,
        body = page.body,
    )
}
