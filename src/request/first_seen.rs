//! A list that keeps each item once, in order of first appearance, at linear cost: a hashed
//! set beside the ordered `Vec`. Tenant lists (device names, CDI names, IMEX channels) can be
//! long, and `Vec::contains` per item made them quadratic. The std `HashSet` hashes with
//! SipHash under per-process random keys, so a tenant cannot choose values that collide.

use std::collections::HashSet;
use std::hash::Hash;

#[derive(Debug, Clone)]
pub struct FirstSeen<T> {
    items: Vec<T>,
    seen: HashSet<T>,
}

impl<T: Clone + Eq + Hash> FirstSeen<T> {
    pub fn new() -> Self {
        FirstSeen {
            items: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Adds `item` unless it is already there; true when added.
    pub fn insert(&mut self, item: T) -> bool {
        if self.seen.contains(&item) {
            return false;
        }
        self.seen.insert(item.clone());
        self.items.push(item);
        true
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items in order of first appearance.
    pub fn into_vec(self) -> Vec<T> {
        self.items
    }
}

impl<T: Clone + Eq + Hash> Default for FirstSeen<T> {
    fn default() -> Self {
        FirstSeen::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_of_first_appearance_and_drops_repeats() {
        let mut list = FirstSeen::new();
        let added: Vec<bool> = [3, 1, 3, 2, 1, 0]
            .into_iter()
            .map(|i| list.insert(i))
            .collect();
        assert_eq!(added, [true, true, false, true, false, true]);
        assert_eq!(list.len(), 4);
        assert_eq!(list.into_vec(), [3, 1, 2, 0]);
        assert!(FirstSeen::<String>::default().is_empty());
    }
}
