//! The in-memory priority queue: lower priority first, insertion order on ties, O(log n)
//! push/pop/bump/drop, iteration in run order (for the checkpoint and `queue.json`).
//! Each entry keeps its spec serialized once, so checkpoints are written without serializing
//! the queue again.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde_json::value::RawValue;
use std::sync::Arc;

use crate::checkpoint::SpecJson;
use crate::spec::WorkSpec;

/// A queued spec with its serialized form and the checkpoint revision that first contains its
/// current form (for merging live hand edits).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) spec: WorkSpec,
    pub(crate) json: Arc<RawValue>,
    pub(crate) rev: u64,
}

impl Entry {
    pub(crate) fn new(spec: WorkSpec, rev: u64) -> Self {
        let json = match serde_json::value::to_raw_value(&spec) {
            Ok(raw) => Arc::from(raw),
            // A WorkSpec always serializes (string keys, finite numbers); keep a valid document.
            Err(_) => Arc::from(RawValue::NULL.to_owned()),
        };
        Entry { spec, json, rev }
    }
}

impl SpecJson for Arc<Entry> {
    fn json(&self) -> &RawValue {
        &self.json
    }
}

#[derive(Debug, Clone, Copy)]
struct Prio(f64);
impl PartialEq for Prio {
    fn eq(&self, o: &Self) -> bool {
        self.0.total_cmp(&o.0) == Ordering::Equal
    }
}
impl Eq for Prio {}
impl PartialOrd for Prio {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Prio {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0)
    }
}

type Key = (Prio, u64);

/// Priority queue of specs keyed by id.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    order: BTreeMap<Key, Arc<Entry>>,
    keys: FxHashMap<String, Key>,
    seq: u64,
}

impl Queue {
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    /// Adds an entry behind others of equal priority. The caller checks id uniqueness.
    pub(crate) fn push(&mut self, entry: Entry) {
        self.seq += 1;
        let key = (Prio(entry.spec.priority), self.seq);
        self.keys.insert(entry.spec.id.clone(), key);
        self.order.insert(key, Arc::new(entry));
    }

    pub(crate) fn pop(&mut self) -> Option<Entry> {
        let (_, entry) = self.order.pop_first()?;
        self.keys.remove(&entry.spec.id);
        Some(Arc::unwrap_or_clone(entry))
    }

    /// Puts back an entry that was popped but not started, in front of equal priorities.
    pub(crate) fn push_front(&mut self, entry: Entry) {
        let first = self.order.keys().next().map(|k| k.1).unwrap_or(1);
        let key = (Prio(entry.spec.priority), first.saturating_sub(1));
        self.keys.insert(entry.spec.id.clone(), key);
        self.order.insert(key, Arc::new(entry));
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Entry> {
        let key = self.keys.remove(id)?;
        self.order.remove(&key).map(Arc::unwrap_or_clone)
    }

    /// The queued entry with this id.
    pub(crate) fn get(&self, id: &str) -> Option<&Entry> {
        self.keys
            .get(id)
            .and_then(|k| self.order.get(k))
            .map(|e| &**e)
    }

    /// Changes a queued spec's priority, keeping its insertion rank among equals.
    pub(crate) fn bump(&mut self, id: &str, priority: f64, rev: u64) -> bool {
        let Some(key) = self.keys.get(id).copied() else {
            return false;
        };
        let Some(old) = self.order.remove(&key) else {
            return false;
        };
        let mut spec = Arc::unwrap_or_clone(old).spec;
        spec.priority = priority;
        let entry = Arc::new(Entry::new(spec, rev));
        let new_key = (Prio(priority), key.1);
        self.keys.insert(id.to_string(), new_key);
        self.order.insert(new_key, entry);
        true
    }

    /// The queued entries in run order (shared, not copied).
    pub(crate) fn snapshot(&self) -> Vec<Arc<Entry>> {
        self.order.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(id: usize, p: f64) -> WorkSpec {
        WorkSpec::new(format!("s{id}"), p, "k", Default::default()).expect("valid")
    }

    proptest! {
        #[test]
        fn pops_by_priority_then_insertion(prios in proptest::collection::vec(-3i32..3, 0..200)) {
            let mut q = Queue::default();
            for (i, p) in prios.iter().enumerate() {
                q.push(Entry::new(spec(i, *p as f64), 0));
            }
            let mut expected: Vec<(i32, usize)> = prios.iter().copied().zip(0..).collect();
            expected.sort();
            let got: Vec<String> = std::iter::from_fn(|| q.pop()).map(|e| e.spec.id).collect();
            let want: Vec<String> = expected.iter().map(|(_, i)| format!("s{i}")).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn bump_and_remove_keep_order(prios in proptest::collection::vec(0i32..5, 1..100), target in 0usize..100) {
            let mut q = Queue::default();
            for (i, p) in prios.iter().enumerate() {
                q.push(Entry::new(spec(i, *p as f64), 0));
            }
            let t = target % prios.len();
            let id = format!("s{t}");
            prop_assert!(q.bump(&id, -1.0, 1));
            prop_assert_eq!(q.pop().map(|e| e.spec.id), Some(id.clone()));
            prop_assert!(q.remove(&id).is_none());
            prop_assert_eq!(q.len(), prios.len() - 1);
        }
    }
}
