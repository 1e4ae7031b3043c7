//! Index lists by key for the views' lookups, laid out so that copying a view (to patch it)
//! copies no heap block per key.
//!
//! Almost every key (a MAC, an address) has one entry: it lives inline in the map. The rare
//! longer lists live in a side table.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

#[derive(Clone, Copy, Debug)]
enum Entry {
    One(u32),
    /// Index into `long`.
    Many(u32),
}

#[derive(Clone, Debug)]
pub(crate) struct Multimap<K> {
    map: HashMap<K, Entry>,
    /// Lists of two or more; emptied ones stay until the view is built afresh.
    long: Vec<Vec<u32>>,
}

impl<K> Default for Multimap<K> {
    fn default() -> Self {
        Multimap {
            map: HashMap::new(),
            long: Vec::new(),
        }
    }
}

impl<K: Eq + Hash> Multimap<K> {
    /// The list of `key`, in insertion order. No allocation (the DHCP hot path).
    pub fn get<Q>(&self, key: &Q) -> Option<&[u32]>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self.map.get(key)? {
            Entry::One(i) => Some(std::slice::from_ref(i)),
            Entry::Many(l) => Some(&self.long[*l as usize]),
        }
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// Appends `idx` to the list of `key`.
    pub fn push(&mut self, key: K, idx: u32) {
        let long = &mut self.long;
        self.map
            .entry(key)
            .and_modify(|e| match *e {
                Entry::One(first) => {
                    long.push(vec![first, idx]);
                    *e = Entry::Many(long.len() as u32 - 1);
                }
                Entry::Many(l) => long[l as usize].push(idx),
            })
            .or_insert(Entry::One(idx));
    }

    /// Removes `idx` from the list of `key`, and the key once its list is empty.
    pub fn remove<Q>(&mut self, key: &Q, idx: u32)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let empty = match self.map.get(key) {
            None => return,
            Some(Entry::One(i)) => *i == idx,
            Some(Entry::Many(l)) => {
                let list = &mut self.long[*l as usize];
                list.retain(|&i| i != idx);
                list.is_empty()
            }
        };
        if empty {
            self.map.remove(key);
        }
    }

    /// Every key and its list, in no particular order (tests compare views through this).
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (&K, &[u32])> {
        self.map.iter().map(|(k, e)| {
            let list = match e {
                Entry::One(i) => std::slice::from_ref(i),
                Entry::Many(l) => &self.long[*l as usize][..],
            };
            (k, list)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keep_insertion_order_through_removals() {
        let mut m: Multimap<u8> = Multimap::default();
        m.push(1, 10);
        assert_eq!(m.get(&1), Some(&[10][..]));
        m.push(1, 11);
        m.push(1, 12);
        m.push(2, 20);
        assert_eq!(m.get(&1), Some(&[10, 11, 12][..]));
        m.remove(&1, 11);
        assert_eq!(m.get(&1), Some(&[10, 12][..]));
        m.remove(&1, 10);
        m.remove(&1, 12);
        assert!(!m.contains_key(&1));
        m.remove(&2, 99);
        assert_eq!(m.get(&2), Some(&[20][..]));
        m.remove(&2, 20);
        assert_eq!(m.get(&2), None);
    }
}
