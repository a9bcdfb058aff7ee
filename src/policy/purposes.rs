//! The purpose hierarchy: DPV 2.1's purposes (`ontologies/dpv-purposes.ttl`) and agora's own
//! (`agora:AITraining`, in `ontologies/odrl-profile.ttl`), linked by `skos:broader`. A purpose
//! satisfies a constraint on any purpose it is (transitively) narrower than, so a researcher asking
//! for `dpv:AcademicResearch` qualifies under a permission for `dpv:ResearchAndDevelopment`.

use std::collections::{HashMap, HashSet, VecDeque};

/// Purposes and the purposes each one is directly narrower than.
#[derive(Debug, Default, Clone)]
pub struct PurposeHierarchy {
    broader: HashMap<String, Vec<String>>,
}

impl PurposeHierarchy {
    /// Records that `narrow` has `broad` as a direct broader purpose.
    pub(crate) fn insert(&mut self, narrow: &str, broad: &str) {
        let entry = self.broader.entry(narrow.to_owned()).or_default();
        if !entry.iter().any(|b| b == broad) {
            entry.push(broad.to_owned());
        }
        self.broader.entry(broad.to_owned()).or_default();
    }

    /// Whether the node knows `purpose` (it appears in the hierarchy).
    pub fn contains(&self, purpose: &str) -> bool {
        self.broader.contains_key(purpose)
    }

    /// Whether `narrow` is `broad` or a narrower purpose of it, through any chain of
    /// `skos:broader` links (the hierarchy is a graph: `dpv:CommercialResearch` is narrower than
    /// both `dpv:CommercialPurpose` and `dpv:ResearchAndDevelopment`).
    pub fn is_kind_of(&self, narrow: &str, broad: &str) -> bool {
        if narrow == broad {
            return true;
        }
        let mut seen: HashSet<&str> = HashSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([narrow]);
        while let Some(current) = queue.pop_front() {
            if !seen.insert(current) {
                continue;
            }
            for parent in self.broader.get(current).into_iter().flatten() {
                if parent == broad {
                    return true;
                }
                queue.push_back(parent);
            }
        }
        false
    }

    /// Every purpose the hierarchy holds, in no particular order (the UI's purpose picker).
    pub fn iris(&self) -> impl Iterator<Item = &str> {
        self.broader.keys().map(String::as_str)
    }

    /// How many purposes the hierarchy holds.
    pub fn len(&self) -> usize {
        self.broader.len()
    }

    /// Whether the hierarchy is empty.
    pub fn is_empty(&self) -> bool {
        self.broader.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::knowledge;

    fn dpv(local: &str) -> String {
        format!("https://w3id.org/dpv#{local}")
    }

    #[test]
    fn narrower_purposes_satisfy_broader_ones() {
        let purposes = &knowledge().purposes;
        assert!(purposes.len() >= 119, "{} purposes", purposes.len());
        assert!(purposes.is_kind_of(&dpv("AcademicResearch"), &dpv("ResearchAndDevelopment")));
        assert!(purposes.is_kind_of(&dpv("AcademicResearch"), &dpv("Purpose")));
        assert!(purposes.is_kind_of(&dpv("CommercialResearch"), &dpv("CommercialPurpose")));
        assert!(purposes.is_kind_of(&dpv("DirectMarketing"), &dpv("Marketing")));
        assert!(!purposes.is_kind_of(&dpv("Marketing"), &dpv("ResearchAndDevelopment")));
        assert!(!purposes.is_kind_of(&dpv("ResearchAndDevelopment"), &dpv("AcademicResearch")));
        assert!(!purposes.is_kind_of(&dpv("NonCommercialResearch"), &dpv("CommercialPurpose")));
        assert!(purposes.is_kind_of(
            "https://w3id.org/agora/ns#AITraining",
            &dpv("ResearchAndDevelopment")
        ));
        assert!(purposes.contains(&dpv("ImproveTransportMobility")));
        assert!(!purposes.contains(&dpv("NoSuchPurpose")));
    }
}
