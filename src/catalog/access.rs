//! Who may see a dataset at all. A holder may give a dataset an access policy
//! (`agora:accessPolicy`, an ODRL policy or a template uid, next to its usage offers): only a
//! requester whose verified claims satisfy it sees the dataset, in the REST API, the DCAT
//! catalogue, search and DSP. Evaluation is the policy evaluator's, with no purpose stated, so a
//! missing claim (an anonymous caller) never opens access. The public SPARQL endpoint serves
//! only datasets without an access policy: its checkpoints drop the restricted graphs.

use super::{Catalog, Result};
use crate::policy::{self, Evaluator, Policy, Request};
use oxigraph::model::{GraphName, NamedNodeRef, Term};
use serde_json::{Map, Value as Json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// `agora:accessPolicy`: the policy a requester must satisfy to see a dataset.
pub const ACCESS_POLICY: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("https://w3id.org/agora/ns#accessPolicy");

/// The restricted datasets of one catalogue generation: id → access policy.
pub(super) type Restricted = Arc<HashMap<String, Arc<Policy>>>;

/// Who is looking: a requester's verified claims (`sub`, `country`, `org_type`, ...), or
/// nobody known.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    claims: Option<Map<String, Json>>,
}

impl Viewer {
    /// An anonymous caller: sees only datasets without an access policy.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A caller with these verified claims.
    pub fn with_claims(claims: Map<String, Json>) -> Self {
        Self {
            claims: Some(claims),
        }
    }
}

impl Catalog {
    /// The restricted datasets and their access policies, read once per generation.
    pub(super) fn restricted(&self) -> Result<Restricted> {
        let generation = self.generation();
        if let Some((cached, restricted)) =
            &*self.restricted.lock().unwrap_or_else(|p| p.into_inner())
            && *cached == generation
        {
            return Ok(restricted.clone());
        }
        let mut found = HashMap::new();
        for quad in self
            .store
            .quads_for_pattern(None, Some(ACCESS_POLICY), None, None)
        {
            let quad = quad?;
            let GraphName::NamedNode(graph) = &quad.graph_name else {
                continue;
            };
            let Some(id) = graph.as_str().strip_prefix("urn:agora:local:") else {
                continue;
            };
            let Term::NamedNode(uid) = &quad.object else {
                continue;
            };
            let triples = self
                .store
                .quads_for_pattern(None, None, None, Some(graph.as_ref().into()))
                .filter_map(std::result::Result::ok)
                .map(oxigraph::model::Triple::from);
            let policies = policy::policies_in_triples(triples).map_err(|e| {
                super::CatalogError::Internal(format!("access policy of {id}: {e}"))
            })?;
            if let Some(policy) = policies.into_iter().find(|p| p.uid == *uid) {
                found.insert(id.to_owned(), Arc::new(policy));
            }
        }
        let restricted = Arc::new(found);
        *self.restricted.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((generation, restricted.clone()));
        Ok(restricted)
    }

    /// The ids of restricted datasets (what public SPARQL checkpoints leave out).
    pub fn restricted_ids(&self) -> Result<Vec<String>> {
        Ok(self.restricted()?.keys().cloned().collect())
    }

    /// The datasets `viewer` may not see.
    pub fn hidden_from(&self, viewer: &Viewer) -> Result<HashSet<String>> {
        let restricted = self.restricted()?;
        Ok(restricted
            .iter()
            .filter(|(_, policy)| !self.satisfies(policy, viewer))
            .map(|(id, _)| id.clone())
            .collect())
    }

    /// Whether `viewer` may see dataset `id`.
    pub fn is_visible(&self, id: &str, viewer: &Viewer) -> Result<bool> {
        Ok(match self.restricted()?.get(id) {
            None => true,
            Some(policy) => self.satisfies(policy, viewer),
        })
    }

    fn satisfies(&self, policy: &Policy, viewer: &Viewer) -> bool {
        let Some(claims) = &viewer.claims else {
            return false;
        };
        let request = Request::from_claims(claims.clone(), None);
        Evaluator::new(self.clock.clone())
            .evaluate(policy, &request)
            .is_permitted()
    }
}
