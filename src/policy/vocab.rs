//! The terms the policy module reads and writes, and the facts of the ODRL 2.2 vocabulary it needs
//! at run time (which action includes which), transcribed from the vocabulary (`ODRL22.ttl`) so that
//! the node does not load the whole ontology to answer "is `read` a kind of `use`?".

/// The ODRL 2.2 namespace.
pub const ODRL: &str = "http://www.w3.org/ns/odrl/2/";
/// The agora namespace (profile terms, organisation types, `agora:AITraining`).
pub const AGORA: &str = "https://w3id.org/agora/ns#";
/// The Data Privacy Vocabulary namespace (purposes).
pub const DPV: &str = "https://w3id.org/dpv#";
/// The agora ODRL profile (`ontologies/odrl-profile.ttl`).
pub const AGORA_PROFILE: &str = "https://w3id.org/agora/profile";
/// The ODRL 2.2 context URL policies refer to.
pub use crate::rdf_input::ODRL_CONTEXT_URL;
/// The EU authority table of countries, whose concepts `agora:country` and `spatial` compare.
pub const EU_COUNTRY: &str = "http://publications.europa.eu/resource/authority/country/";

pub(crate) const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";
pub(crate) const RDF_VALUE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#value";
pub(crate) const RDF_FIRST: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#first";
pub(crate) const RDF_REST: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#rest";
pub(crate) const RDF_NIL: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#nil";
pub(crate) const RDF_LIST: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#List";
pub(crate) const XSD: &str = "http://www.w3.org/2001/XMLSchema#";
pub(crate) const SKOS_BROADER: &str = "http://www.w3.org/2004/02/skos/core#broader";
pub(crate) const SKOS_NOTATION: &str = "http://www.w3.org/2004/02/skos/core#notation";
pub(crate) const SKOS_IN_SCHEME: &str = "http://www.w3.org/2004/02/skos/core#inScheme";

/// `odrl:` + `local`, as a string.
pub(crate) fn odrl(local: &str) -> String {
    format!("{ODRL}{local}")
}

/// The local name of an IRI in `namespace`, if it is in it.
pub(crate) fn local<'a>(iri: &'a str, namespace: &str) -> Option<&'a str> {
    iri.strip_prefix(namespace).filter(|rest| !rest.is_empty())
}

/// The prefixes the node writes compact IRIs with, and reads them back with (explanations, JSON-LD).
pub(crate) const PREFIXES: [(&str, &str); 12] = [
    ("odrl", ODRL),
    ("dpv", DPV),
    ("agora", AGORA),
    ("dct", "http://purl.org/dc/terms/"),
    ("rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"),
    ("rdfs", "http://www.w3.org/2000/01/rdf-schema#"),
    ("xsd", XSD),
    ("skos", "http://www.w3.org/2004/02/skos/core#"),
    ("owl", "http://www.w3.org/2002/07/owl#"),
    ("foaf", "http://xmlns.com/foaf/0.1/"),
    ("vcard", "http://www.w3.org/2006/vcard/ns#"),
    ("schema", "http://schema.org/"),
];

/// `prefix:local` for an IRI under one of [`PREFIXES`], else the IRI itself: for people.
pub(crate) fn compact(iri: &str) -> String {
    for (prefix, namespace) in PREFIXES {
        if let Some(rest) = local(iri, namespace)
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return format!("{prefix}:{rest}");
        }
    }
    iri.to_owned()
}

/// How people read a term in sentences: ODRL's own terms bare (`use`, `purpose`), others compact
/// (`agora:pseudonymise`).
pub(crate) fn label(iri: &str) -> String {
    match local(iri, ODRL) {
        Some(name) => name.to_owned(),
        None => compact(iri),
    }
}

/// The ODRL 2.2 actions in force, each with the action it is `odrl:includedIn` (transcribed from
/// `ODRL22.ttl`; `use` and `transfer` are the two roots).
pub(crate) const ODRL_ACTIONS: [(&str, Option<&str>); 42] = [
    ("use", None),
    ("transfer", None),
    ("acceptTracking", Some("use")),
    ("aggregate", Some("use")),
    ("annotate", Some("use")),
    ("anonymize", Some("use")),
    ("archive", Some("use")),
    ("attribute", Some("use")),
    ("compensate", Some("use")),
    ("concurrentUse", Some("use")),
    ("delete", Some("use")),
    ("derive", Some("use")),
    ("digitize", Some("use")),
    ("display", Some("play")),
    ("distribute", Some("use")),
    ("ensureExclusivity", Some("use")),
    ("execute", Some("use")),
    ("extract", Some("reproduce")),
    ("give", Some("transfer")),
    ("grantUse", Some("use")),
    ("include", Some("use")),
    ("index", Some("use")),
    ("inform", Some("use")),
    ("install", Some("use")),
    ("modify", Some("use")),
    ("move", Some("use")),
    ("nextPolicy", Some("use")),
    ("obtainConsent", Some("use")),
    ("play", Some("use")),
    ("present", Some("use")),
    ("print", Some("use")),
    ("read", Some("use")),
    ("reproduce", Some("use")),
    ("reviewPolicy", Some("use")),
    ("sell", Some("transfer")),
    ("stream", Some("use")),
    ("synchronize", Some("use")),
    ("textToSpeech", Some("use")),
    ("transform", Some("use")),
    ("translate", Some("use")),
    ("uninstall", Some("use")),
    ("watermark", Some("use")),
];

/// Deprecated ODRL actions and the action in force each one is a `skos:exactMatch` of.
pub(crate) const ODRL_DEPRECATED_ACTIONS: [(&str, &str); 8] = [
    ("append", "modify"),
    ("appendTo", "modify"),
    ("copy", "reproduce"),
    ("export", "transform"),
    ("license", "grantUse"),
    ("pay", "compensate"),
    ("write", "modify"),
    ("writeTo", "modify"),
];

/// The ODRL 2.2 left operands (including the deprecated `device` and `system`, exact matches of
/// `systemDevice`).
pub(crate) const ODRL_LEFT_OPERANDS: [&str; 34] = [
    "absolutePosition",
    "absoluteSize",
    "absoluteSpatialPosition",
    "absoluteTemporalPosition",
    "count",
    "dateTime",
    "delayPeriod",
    "deliveryChannel",
    "device",
    "elapsedTime",
    "event",
    "fileFormat",
    "industry",
    "language",
    "media",
    "meteredTime",
    "payAmount",
    "percentage",
    "product",
    "purpose",
    "recipient",
    "relativePosition",
    "relativeSize",
    "relativeSpatialPosition",
    "relativeTemporalPosition",
    "resolution",
    "spatial",
    "spatialCoordinates",
    "system",
    "systemDevice",
    "timeInterval",
    "unitOfCount",
    "version",
    "virtualLocation",
];

/// The ODRL party functions other than `assigner` and `assignee` (sub-properties of `odrl:function`).
pub(crate) const ODRL_PARTY_FUNCTIONS: [&str; 12] = [
    "attributedParty",
    "attributingParty",
    "compensatedParty",
    "compensatingParty",
    "consentedParty",
    "consentingParty",
    "contractedParty",
    "contractingParty",
    "informedParty",
    "informingParty",
    "trackedParty",
    "trackingParty",
];

/// The action `action` directly includes, following deprecated terms to their replacement.
/// `None` for the roots and for actions the node does not know.
pub(crate) fn parent_action(action: &str) -> Option<String> {
    if let Some(name) = local(action, ODRL) {
        if let Some((_, replacement)) = ODRL_DEPRECATED_ACTIONS.iter().find(|(d, _)| *d == name) {
            return Some(odrl(replacement));
        }
        return ODRL_ACTIONS
            .iter()
            .find(|(a, _)| *a == name)
            .and_then(|(_, parent)| parent.map(odrl));
    }
    super::knowledge().profile_action_parent(action)
}

/// Whether `narrow` is `broad` or (transitively) included in it.
pub(crate) fn action_is_included_in(narrow: &str, broad: &str) -> bool {
    let mut current = narrow.to_owned();
    // The hierarchy is a few levels deep; the bound only guards against a cycle in a profile.
    for _ in 0..16 {
        if current == broad {
            return true;
        }
        match parent_action(&current) {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

/// Whether the node knows `action` (an ODRL 2.2 action, a deprecated one, or a profile action).
pub(crate) fn is_known_action(action: &str) -> bool {
    if let Some(name) = local(action, ODRL) {
        return ODRL_ACTIONS.iter().any(|(a, _)| *a == name)
            || ODRL_DEPRECATED_ACTIONS.iter().any(|(d, _)| *d == name);
    }
    super::knowledge().profile_action_parent(action).is_some()
}

/// Whether `operand` is an ODRL 2.2 or agora profile left operand.
pub(crate) fn is_known_left_operand(operand: &str) -> bool {
    match local(operand, ODRL) {
        Some(name) => ODRL_LEFT_OPERANDS.contains(&name),
        None => super::knowledge().is_profile_left_operand(operand),
    }
}
