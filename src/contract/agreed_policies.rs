//! The parsed ODRL policies of agreements in use. Every data-plane request re-evaluates its
//! agreement's policy (time windows, counts and budgets move), but the policy itself is fixed
//! when the agreement is made: reading its JSON-LD again for every shard of a training job cost
//! more than the rest of the check. Entries are keyed by agreement id and compared with the
//! stored text, so a record rewritten with another policy is never answered from an old parse.

use crate::policy::{self, Policy};
use crate::rdf_input::RdfSyntax;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Agreements whose parsed policy is kept; beyond it an arbitrary entry makes room (a parse
/// is a few hundred microseconds, so a miss costs little).
const CAPACITY: usize = 1024;

/// By agreement id: the policy text parsed, and its parse.
type Parsed = HashMap<String, (Arc<str>, Arc<Policy>)>;

/// Parsed policies by agreement id.
#[derive(Debug, Default)]
pub struct AgreedPolicies {
    parsed: Mutex<Parsed>,
}

impl AgreedPolicies {
    /// The policy of `agreement` whose JSON-LD text is `odrl`, parsed at most once while it
    /// stays in use.
    pub fn get(&self, agreement: &str, odrl: &str) -> Result<Arc<Policy>, String> {
        if let Some((text, policy)) = self.lock().get(agreement)
            && **text == *odrl
        {
            return Ok(policy.clone());
        }
        let policy = Arc::new(
            policy::parse(odrl.as_bytes(), RdfSyntax::JsonLd)
                .map_err(|e| format!("the agreed policy cannot be read: {e}"))?,
        );
        let mut parsed = self.lock();
        if parsed.len() >= CAPACITY
            && !parsed.contains_key(agreement)
            && let Some(evicted) = parsed.keys().next().cloned()
        {
            parsed.remove(&evicted);
        }
        parsed.insert(agreement.to_owned(), (Arc::from(odrl), policy.clone()));
        Ok(policy)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Parsed> {
        self.parsed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"{
        "@context": {"odrl": "http://www.w3.org/ns/odrl/2/"},
        "@id": "urn:policy:1", "@type": "odrl:Agreement",
        "odrl:permission": {"odrl:action": {"@id": "odrl:use"}}
    }"#;

    #[test]
    fn a_policy_is_parsed_once_and_a_changed_text_is_parsed_again() {
        let policies = AgreedPolicies::default();
        let first = policies.get("a1", POLICY).unwrap();
        let again = policies.get("a1", POLICY).unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second call reuses the parse"
        );
        let other = POLICY.replace("odrl:use", "odrl:read");
        let changed = policies.get("a1", &other).unwrap();
        assert!(
            !Arc::ptr_eq(&first, &changed),
            "another text is parsed anew"
        );
        assert_ne!(*first, *changed);
        assert!(policies.get("a2", "{ not json").is_err());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let policies = AgreedPolicies::default();
        for i in 0..CAPACITY + 10 {
            policies.get(&format!("a{i}"), POLICY).unwrap();
        }
        assert_eq!(policies.lock().len(), CAPACITY);
    }
}
