//! What the evaluator knows besides the policy: the agora profile's actions, left operands and
//! organisation types, the purpose hierarchy, and the EU country table with the ISO codes that
//! identity tokens carry. Read once from the ontology files compiled into the binary.

use super::purposes::PurposeHierarchy;
use super::vocab::{
    AGORA, EU_COUNTRY, ODRL, RDF_TYPE, SKOS_BROADER, SKOS_IN_SCHEME, SKOS_NOTATION,
};
use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::{NamedOrBlankNode, Term, Triple};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The ontology files the knowledge is read from.
mod embedded {
    pub const PROFILE: &str = include_str!("../../ontologies/odrl-profile.ttl");
    pub const PURPOSES: &str = include_str!("../../ontologies/dpv-purposes.ttl");
    pub const VOCABULARIES: &str = include_str!("../../ontologies/vocabularies.ttl");
}

/// The facts the evaluator and the publication checks look up.
#[derive(Debug, Default)]
pub struct Knowledge {
    /// DPV's and agora's purposes.
    pub purposes: PurposeHierarchy,
    profile_actions: HashMap<String, String>,
    profile_left_operands: HashSet<String>,
    /// Organisation-type code (the `org_type` claim) by concept IRI.
    org_types: BTreeMap<String, String>,
    /// Country concept IRI by ISO 3166-1 alpha-2 code.
    countries_by_code: HashMap<String, String>,
    countries: HashSet<String>,
}

impl Knowledge {
    /// Reads the embedded ontologies. They are part of the binary, so a failure is a build defect
    /// that every test run catches.
    pub(crate) fn load() -> Self {
        let mut knowledge = Self::default();
        for triple in triples(embedded::PURPOSES)
            .into_iter()
            .chain(triples(embedded::PROFILE))
        {
            if triple.predicate.as_str() == SKOS_BROADER
                && let (Some(narrow), Term::NamedNode(broad)) =
                    (subject_iri(&triple), &triple.object)
            {
                knowledge.purposes.insert(narrow, broad.as_str());
            }
        }
        let profile = triples(embedded::PROFILE);
        let org_scheme = format!("{AGORA}OrganisationTypes");
        let mut in_org_scheme = HashSet::new();
        let mut notations = HashMap::new();
        for triple in &profile {
            let Some(subject) = subject_iri(triple).map(str::to_owned) else {
                continue;
            };
            match (triple.predicate.as_str(), &triple.object) {
                (p, Term::NamedNode(o)) if p == format!("{ODRL}includedIn") => {
                    knowledge
                        .profile_actions
                        .insert(subject, o.as_str().to_owned());
                }
                (RDF_TYPE, Term::NamedNode(o)) if o.as_str() == format!("{ODRL}LeftOperand") => {
                    knowledge.profile_left_operands.insert(subject);
                }
                (SKOS_IN_SCHEME, Term::NamedNode(o)) if o.as_str() == org_scheme => {
                    in_org_scheme.insert(subject);
                }
                (SKOS_NOTATION, Term::Literal(l)) => {
                    notations.insert(subject, l.value().to_owned());
                }
                _ => {}
            }
        }
        for concept in in_org_scheme {
            if let Some(code) = notations.get(&concept) {
                knowledge.org_types.insert(concept, code.clone());
            }
        }
        let country_scheme = EU_COUNTRY.trim_end_matches('/');
        let vocabularies = triples(embedded::VOCABULARIES);
        let countries: HashSet<String> = vocabularies
            .iter()
            .filter(|t| {
                t.predicate.as_str() == SKOS_IN_SCHEME
                    && matches!(&t.object, Term::NamedNode(o) if o.as_str() == country_scheme)
            })
            .filter_map(|t| subject_iri(t).map(str::to_owned))
            .collect();
        for triple in &vocabularies {
            if triple.predicate.as_str() == SKOS_NOTATION
                && let (Some(subject), Term::Literal(code)) = (subject_iri(triple), &triple.object)
                && countries.contains(subject)
            {
                knowledge
                    .countries_by_code
                    .insert(code.value().to_ascii_uppercase(), subject.to_owned());
            }
        }
        knowledge.countries = countries;
        knowledge
    }

    /// The action a profile action is `odrl:includedIn`.
    pub(crate) fn profile_action_parent(&self, action: &str) -> Option<String> {
        self.profile_actions.get(action).cloned()
    }

    /// Whether `action` is one of the profile's data-plane actions.
    pub(crate) fn is_profile_action(&self, action: &str) -> bool {
        self.profile_actions.contains_key(action)
    }

    /// Whether `operand` is one of the profile's left operands.
    pub(crate) fn is_profile_left_operand(&self, operand: &str) -> bool {
        self.profile_left_operands.contains(operand)
    }

    /// The organisation-type codes the profile defines (`university`, `hospital`, ...).
    pub fn org_type_codes(&self) -> impl Iterator<Item = &str> {
        self.org_types.values().map(String::as_str)
    }

    /// The code of an organisation type given as a code or as its concept IRI.
    pub(crate) fn org_type_code<'a>(&'a self, value: &'a str) -> Option<&'a str> {
        if let Some(code) = self.org_types.get(value) {
            return Some(code);
        }
        self.org_types
            .values()
            .find(|code| code.as_str() == value)
            .map(String::as_str)
    }

    /// The EU country concept for a country given as its concept IRI, its three-letter code (the
    /// IRI's last segment, `DEU`) or its ISO 3166-1 alpha-2 code (the `country` claim, `DE`).
    pub fn country_iri(&self, value: &str) -> Option<&str> {
        if let Some(iri) = self.countries.get(value) {
            return Some(iri);
        }
        let code = value.trim().to_ascii_uppercase();
        if let Some(iri) = self.countries_by_code.get(&code) {
            return Some(iri);
        }
        self.countries
            .get(&format!("{EU_COUNTRY}{code}"))
            .map(String::as_str)
    }

    /// Whether `country` (a concept IRI) is part of `region` (a concept IRI): itself, or a member
    /// state of the Union (`…/country/EUR`), the only grouping in the node's country table.
    pub(crate) fn country_is_part_of(&self, country: &str, region: &str) -> bool {
        let union = format!("{EU_COUNTRY}EUR");
        country == region || (region == union && self.countries.contains(country))
    }
}

/// The subject of a triple, when it is an IRI.
fn subject_iri(triple: &Triple) -> Option<&str> {
    match &triple.subject {
        NamedOrBlankNode::NamedNode(node) => Some(node.as_str()),
        NamedOrBlankNode::BlankNode(_) => None,
    }
}

/// The triples of an embedded Turtle file.
fn triples(turtle: &str) -> Vec<Triple> {
    RdfParser::from_format(RdfFormat::Turtle)
        .for_slice(turtle.as_bytes())
        .map(|quad| Triple::from(quad.expect("the embedded ontology files are valid Turtle")))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::policy::knowledge;

    #[test]
    fn the_embedded_ontologies_are_read() {
        let k = knowledge();
        assert_eq!(
            k.country_iri("DE"),
            Some("http://publications.europa.eu/resource/authority/country/DEU")
        );
        assert_eq!(
            k.country_iri("deu"),
            Some("http://publications.europa.eu/resource/authority/country/DEU")
        );
        assert_eq!(k.country_iri("US"), None);
        assert!(k.country_is_part_of(
            "http://publications.europa.eu/resource/authority/country/FRA",
            "http://publications.europa.eu/resource/authority/country/EUR"
        ));
        assert!(k.is_profile_action("https://w3id.org/agora/ns#pseudonymise"));
        assert!(k.is_profile_left_operand("https://w3id.org/agora/ns#rowBudget"));
        assert_eq!(
            k.org_type_code("https://w3id.org/agora/ns#University"),
            Some("university")
        );
        assert_eq!(k.org_type_code("hospital"), Some("hospital"));
        assert_eq!(k.org_types.len(), 6);
    }
}
