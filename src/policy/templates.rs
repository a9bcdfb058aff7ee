//! The policy templates of `policies/`, compiled into the binary: a data holder may attach one
//! to a dataset by its `uid` alone, and the node fills in the policy.

/// Every template, as `(file name, JSON-LD document)`.
pub const TEMPLATES: [(&str, &str); 8] = [
    (
        "ai-training-count.jsonld",
        include_str!("../../policies/ai-training-count.jsonld"),
    ),
    (
        "climate-attribution.jsonld",
        include_str!("../../policies/climate-attribution.jsonld"),
    ),
    (
        "eu-only.jsonld",
        include_str!("../../policies/eu-only.jsonld"),
    ),
    (
        "health-secondary-use.jsonld",
        include_str!("../../policies/health-secondary-use.jsonld"),
    ),
    (
        "mobility-generalised.jsonld",
        include_str!("../../policies/mobility-generalised.jsonld"),
    ),
    (
        "open-data-attribution.jsonld",
        include_str!("../../policies/open-data-attribution.jsonld"),
    ),
    (
        "research-non-commercial.jsonld",
        include_str!("../../policies/research-non-commercial.jsonld"),
    ),
    (
        "time-limited.jsonld",
        include_str!("../../policies/time-limited.jsonld"),
    ),
];

/// The template whose `uid` is `uid`, as its JSON-LD document.
pub fn template(uid: &str) -> Option<&'static str> {
    TEMPLATES
        .iter()
        .map(|(_, document)| *document)
        .find(|document| {
            serde_json::from_str::<serde_json::Value>(document)
                .ok()
                .and_then(|value| value.get("uid").and_then(|u| u.as_str()).map(|u| u == uid))
                .unwrap_or(false)
        })
}

/// The uids of every template, for error messages.
pub fn template_uids() -> Vec<String> {
    TEMPLATES
        .iter()
        .filter_map(|(_, document)| {
            let value: serde_json::Value = serde_json::from_str(document).ok()?;
            value.get("uid")?.as_str().map(str::to_owned)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_policies_is_a_template() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let mut files: Vec<String> = std::fs::read_dir(folder)
            .expect("policies/")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".jsonld"))
            .collect();
        files.sort();
        let listed: Vec<&str> = TEMPLATES.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            files, listed,
            "list every template of policies/ in TEMPLATES"
        );
        assert_eq!(
            template_uids().len(),
            TEMPLATES.len(),
            "every template has a uid"
        );
        assert!(template("https://w3id.org/agora/policies/health-secondary-use").is_some());
        assert!(template("https://example.org/unknown").is_none());
    }
}
