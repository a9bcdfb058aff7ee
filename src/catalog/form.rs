//! The publish form of the web UI as DCAT-AP 3: the code lists it offers (sectors, EU data
//! themes, licences, file types, countries), the Turtle a filled-in form stands for (every typed
//! string escaped as a Turtle literal, every URL checked before it becomes an IRI), and which
//! form field a SHACL finding belongs to. The Turtle then goes through [`super::Catalog::publish`]
//! like any upload, so the form can never publish what `POST /api/datasets` would refuse.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use std::collections::HashMap;

fn url_encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

const THEME: &str = "http://publications.europa.eu/resource/authority/data-theme/";
const LICENCE: &str = "http://publications.europa.eu/resource/authority/licence/";
const FILE_TYPE: &str = "http://publications.europa.eu/resource/authority/file-type/";
const COUNTRY: &str = "http://publications.europa.eu/resource/authority/country/";

/// The sector pools and the theme each one stands for.
pub const SECTORS: [(&str, &str, &str); 3] = [
    ("health", "Health", "HEAL"),
    ("mobility", "Mobility", "TRAN"),
    ("climate", "Climate", "ENVI"),
];

/// The 13 themes of the EU data-theme vocabulary.
pub const THEMES: [(&str, &str); 13] = [
    ("AGRI", "Agriculture, fisheries, forestry and food"),
    ("ECON", "Economy and finance"),
    ("EDUC", "Education, culture and sport"),
    ("ENER", "Energy"),
    ("ENVI", "Environment"),
    ("GOVE", "Government and public sector"),
    ("HEAL", "Health"),
    ("INTR", "International issues"),
    ("JUST", "Justice, legal system and public safety"),
    ("REGI", "Regions and cities"),
    ("SOCI", "Population and society"),
    ("TECH", "Science and technology"),
    ("TRAN", "Transport"),
];

pub const LICENCES: [(&str, &str); 4] = [
    ("CC_BY_4_0", "Creative Commons Attribution 4.0"),
    ("CC0", "Creative Commons Zero (public domain)"),
    ("CC_BYSA_4_0", "Creative Commons Attribution-ShareAlike 4.0"),
    ("ODBL", "Open Database License"),
];

pub const FORMATS: [(&str, &str); 5] = [
    ("PARQUET", "Parquet"),
    ("CSV", "CSV"),
    ("JSON", "JSON"),
    ("NETCDF", "NetCDF"),
    ("GEOJSON", "GeoJSON"),
];

pub const COUNTRIES: [(&str, &str); 10] = [
    ("", "Not stated"),
    ("AUT", "Austria"),
    ("BEL", "Belgium"),
    ("DEU", "Germany"),
    ("ESP", "Spain"),
    ("FRA", "France"),
    ("ITA", "Italy"),
    ("NLD", "Netherlands"),
    ("POL", "Poland"),
    ("SWE", "Sweden"),
];

/// The policy choice that makes each request wait for the holder's decision.
pub const APPROVAL: &str = "approval";

/// Which form field a SHACL finding's property belongs to.
pub fn field_of(path: &str) -> &'static str {
    match path.rsplit(['#', '/']).next().unwrap_or(path) {
        "title" => "title",
        "description" => "description",
        "theme" => "theme",
        "keyword" => "keywords",
        "publisher" | "name" => "publisher",
        "contactPoint" | "hasEmail" | "fn" => "contact",
        "spatial" => "spatial",
        "format" | "mediaType" => "format",
        "accessURL" | "downloadURL" | "distribution" => "url",
        "license" => "licence",
        "hasPolicy" => "policy",
        _ => "",
    }
}

/// Turtle string literal content.
fn turtle_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `text` can stand in a Turtle IRI (`<…>`) as an absolute http(s) URL.
fn is_web_url(text: &str) -> bool {
    (text.starts_with("http://") || text.starts_with("https://"))
        && text.len() > 10
        && !text.chars().any(|c| {
            c.is_whitespace() || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`')
        })
}

/// What the form describes, as DCAT-AP 3 Turtle; or the errors found before any RDF is written.
pub fn to_turtle(
    form: &HashMap<String, String>,
    public_url: &str,
    holder: &str,
) -> Result<String, HashMap<&'static str, String>> {
    let get = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or("");
    let mut errors: HashMap<&'static str, String> = HashMap::new();
    let mut ttl = String::from(
        "@prefix dcat: <http://www.w3.org/ns/dcat#> .\n@prefix dct: <http://purl.org/dc/terms/> .\n@prefix foaf: <http://xmlns.com/foaf/0.1/> .\n@prefix vcard: <http://www.w3.org/2006/vcard/ns#> .\n@prefix odrl: <http://www.w3.org/ns/odrl/2/> .\n\n_:dataset a dcat:Dataset",
    );
    // Empty title or description are left out, so the DCAT-AP shapes name them.
    if !get("title").is_empty() {
        ttl.push_str(&format!(
            " ;\n  dct:title \"{}\"@en",
            turtle_string(get("title"))
        ));
    }
    if !get("description").is_empty() {
        ttl.push_str(&format!(
            " ;\n  dct:description \"{}\"@en",
            turtle_string(get("description"))
        ));
    }
    let mut themes: Vec<&str> = Vec::new();
    match get("sector") {
        "" => {}
        sector => match SECTORS.iter().find(|(key, _, _)| *key == sector) {
            Some((_, _, code)) => themes.push(code),
            None => {
                errors.insert("sector", "Choose health, mobility, climate or none.".into());
            }
        },
    }
    match get("theme") {
        "" => {}
        theme => match THEMES.iter().find(|(code, _)| *code == theme) {
            Some((code, _)) => themes.push(code),
            None => {
                errors.insert("theme", "Choose one of the 13 EU data themes.".into());
            }
        },
    }
    themes.dedup();
    for code in themes {
        ttl.push_str(&format!(" ;\n  dcat:theme <{THEME}{code}>"));
    }
    for keyword in get("keywords")
        .split([',', '\n'])
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        ttl.push_str(&format!(
            " ;\n  dcat:keyword \"{}\"@en",
            turtle_string(keyword)
        ));
    }
    let publisher_iri = format!("{public_url}/participants/{}", url_encode(holder));
    if !get("publisher").is_empty() {
        ttl.push_str(&format!(" ;\n  dct:publisher <{publisher_iri}>"));
    }
    let contact = get("contact");
    if !contact.is_empty() {
        let valid = contact.contains('@')
            && !contact.starts_with('@')
            && !contact.ends_with('@')
            && !contact.chars().any(|c| {
                c.is_whitespace()
                    || matches!(c, '<' | '>' | '"' | '\\' | '{' | '}' | '|' | '^' | '`')
            });
        if valid {
            ttl.push_str(&format!(
                " ;\n  dcat:contactPoint [ a vcard:Kind ; vcard:fn \"{}\"@en ; vcard:hasEmail <mailto:{}> ]",
                turtle_string(get("publisher")),
                contact
            ));
        } else {
            errors.insert(
                "contact",
                "Give an e-mail address such as data@example.org.".into(),
            );
        }
    }
    match get("spatial") {
        "" => {}
        code if COUNTRIES.iter().any(|(c, _)| *c == code) => {
            ttl.push_str(&format!(" ;\n  dct:spatial <{COUNTRY}{code}>"));
        }
        _ => {
            errors.insert("spatial", "Choose a country from the list.".into());
        }
    }
    ttl.push_str(" ;\n  dct:accessRights <http://publications.europa.eu/resource/authority/access-right/RESTRICTED>");
    let url = get("url");
    let format = get("format");
    let licence = get("licence");
    let mut distribution = String::new();
    if !url.is_empty() {
        if is_web_url(url) {
            distribution.push_str(&format!(
                "_:distribution a dcat:Distribution ;\n  dcat:accessURL <{url}>"
            ));
            if !format.is_empty() {
                if FORMATS.iter().any(|(c, _)| *c == format) {
                    distribution.push_str(&format!(" ;\n  dct:format <{FILE_TYPE}{format}>"));
                } else {
                    errors.insert("format", "Choose a format from the list.".into());
                }
            }
            if !licence.is_empty() {
                if LICENCES.iter().any(|(c, _)| *c == licence) {
                    distribution.push_str(&format!(" ;\n  dct:license <{LICENCE}{licence}>"));
                } else {
                    errors.insert("licence", "Choose a licence from the list.".into());
                }
            }
            distribution.push_str(" .\n");
            ttl.push_str(" ;\n  dcat:distribution _:distribution");
        } else {
            errors.insert(
                "url",
                "Give the address where the data can be obtained, starting with https:// (no spaces), e.g. https://data.example.org/files/.".into(),
            );
        }
    }
    let policy = get("policy");
    let mut policy_ttl = String::new();
    if policy == APPROVAL {
        let uid = format!("urn:uuid:{}", uuid::Uuid::new_v4());
        ttl.push_str(&format!(" ;\n  odrl:hasPolicy <{uid}>"));
        policy_ttl = format!(
            "<{uid}> a odrl:Offer ; odrl:profile <https://w3id.org/agora/profile> ;\n  dct:title \"Use after the data holder's approval (data permit)\"@en ;\n  odrl:permission [ odrl:action odrl:use ; odrl:duty [ odrl:action <https://w3id.org/agora/ns#obtainApproval> ] ] .\n"
        );
    } else if !policy.is_empty() {
        if crate::policy::template(policy).is_some() {
            ttl.push_str(&format!(" ;\n  odrl:hasPolicy <{policy}>"));
        } else {
            errors.insert("policy", "Choose one of the policy templates.".into());
        }
    }
    ttl.push_str(" .\n\n");
    ttl.push_str(&distribution);
    if !get("publisher").is_empty() {
        ttl.push_str(&format!(
            "<{publisher_iri}> a foaf:Agent ; foaf:name \"{}\"@en .\n",
            turtle_string(get("publisher"))
        ));
    }
    ttl.push_str(&policy_ttl);
    if errors.is_empty() {
        Ok(ttl)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxigraph::io::{RdfFormat, RdfParser};

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn hostile_text_stays_a_literal() {
        let title = "<script>\"\\n\"@en ; a <urn:x> . \n\r\t\u{1F600}";
        let turtle = to_turtle(
            &form(&[
                ("title", title),
                ("description", "d"),
                ("publisher", "A \"quoted\" agency"),
                ("url", "https://x.example/files/"),
            ]),
            "http://node.example",
            "holder one",
        )
        .expect("valid form");
        let triples: Vec<_> = RdfParser::from_format(RdfFormat::Turtle)
            .for_slice(turtle.as_bytes())
            .collect::<Result<_, _>>()
            .expect("the Turtle parses");
        let titles: Vec<String> = triples
            .iter()
            .filter(|t| t.predicate.as_str() == "http://purl.org/dc/terms/title")
            .map(|t| match &t.object {
                oxigraph::model::Term::Literal(l) => l.value().to_owned(),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(titles, vec![title.to_owned()]);
        assert!(turtle.contains("dct:publisher <http://node.example/participants/holder%20one>"));
    }

    #[test]
    fn bad_fields_are_named_before_any_rdf() {
        let errors = to_turtle(
            &form(&[
                ("url", "javascript:alert(1)"),
                ("contact", "not an address"),
                ("theme", "NOPE"),
                ("policy", "https://example.org/unknown"),
            ]),
            "http://node.example",
            "h",
        )
        .expect_err("refused");
        let mut fields: Vec<&str> = errors.keys().copied().collect();
        fields.sort();
        assert_eq!(fields, ["contact", "policy", "theme", "url"]);
    }

    #[test]
    fn findings_map_to_fields() {
        assert_eq!(field_of("http://purl.org/dc/terms/title"), "title");
        assert_eq!(field_of("http://www.w3.org/ns/dcat#accessURL"), "url");
        assert_eq!(field_of("http://example.org/other"), "");
    }
}
