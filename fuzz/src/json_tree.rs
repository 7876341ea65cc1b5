//! The check that an edit of a tenant's `config.json` tree kept everything it does not own:
//! every field keeps its value and its place (new keys only after the old ones), owned
//! arrays only grow at their end (the env array: the edit's keys leave, the rest keep their
//! order, the edit's entries come after them), and new objects appear only on the way to an
//! owned array.

use std::collections::HashSet;

use serde_json::Value;

/// What an edit may do at a path.
#[derive(Debug, Clone)]
pub enum Owned {
    /// Append to this array (created if absent or null).
    Append,
    /// `process.env`: entries whose key is in the set may go; the rest keep their order.
    Env(HashSet<String>),
}

/// The paths an edit owns, each a list of keys from the root.
pub struct Ownership {
    pub owned: Vec<(Vec<String>, Owned)>,
}

impl Ownership {
    pub fn new(paths: &[(&[&str], Owned)]) -> Ownership {
        Ownership {
            owned: paths
                .iter()
                .map(|(p, o)| (p.iter().map(|s| s.to_string()).collect(), o.clone()))
                .collect(),
        }
    }

    fn owned_at(&self, path: &[String]) -> Option<&Owned> {
        self.owned.iter().find(|(p, _)| p == path).map(|(_, o)| o)
    }

    /// A path on the way to an owned array (an object the edit may create or extend).
    fn is_ancestor(&self, path: &[String]) -> bool {
        self.owned
            .iter()
            .any(|(p, _)| p.len() > path.len() && p.starts_with(path))
    }

    /// Panics naming the first path where `after` breaks the rules for `before`.
    pub fn check(&self, before: &Value, after: &Value) {
        self.compare(Some(before), after, &mut Vec::new());
    }

    fn compare(&self, before: Option<&Value>, after: &Value, path: &mut Vec<String>) {
        if before == Some(after) {
            return;
        }
        if let Some(owned) = self.owned_at(path) {
            return check_owned(owned, before, after, path);
        }
        let before = before.filter(|b| !b.is_null() || !self.is_ancestor(path));
        match (before, after) {
            (Some(Value::Object(old)), Value::Object(new)) => {
                let old_keys: Vec<&String> = old.keys().collect();
                let new_keys: Vec<&String> = new.keys().collect();
                assert!(
                    new_keys.len() >= old_keys.len() && new_keys[..old_keys.len()] == old_keys[..],
                    "{path:?}: keys reordered or lost: {old_keys:?} -> {new_keys:?}"
                );
                for (key, value) in new {
                    path.push(key.clone());
                    self.compare(old.get(key), value, path);
                    path.pop();
                }
            }
            (None, Value::Object(new)) => {
                assert!(self.is_ancestor(path), "{path:?}: created, but not owned");
                for (key, value) in new {
                    path.push(key.clone());
                    self.compare(None, value, path);
                    path.pop();
                }
            }
            (Some(old), new) => assert_eq!(old, new, "{path:?} changed"),
            (None, new) => panic!("{path:?}: {new} created, but not owned"),
        }
    }
}

fn check_owned(owned: &Owned, before: Option<&Value>, after: &Value, path: &[String]) {
    let new = after
        .as_array()
        .unwrap_or_else(|| panic!("{path:?} is not an array"));
    let old: Vec<&Value> = match before {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(old)) => old.iter().collect(),
        Some(other) => panic!("{path:?}: {other} replaced although not an array"),
    };
    let kept: Vec<&Value> = match owned {
        Owned::Append => old,
        Owned::Env(keys) => old
            .into_iter()
            .filter(|e| e.as_str().is_none_or(|s| !keys.contains(env_key(s))))
            .collect(),
    };
    assert!(
        new.len() >= kept.len() && new.iter().zip(&kept).all(|(n, k)| n == *k),
        "{path:?}: the tenant's entries were not kept in order"
    );
}

/// The key of a `KEY=value` env entry (the whole entry when it has no `=`).
pub fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}
