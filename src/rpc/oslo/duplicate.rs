//! Duplicate detection: oslo's `_MsgIdCache` (docs/reference/oslo-messaging-rabbit.md §5.6).

use std::collections::VecDeque;

/// oslo's `_MsgIdCache.DUP_MSG_CHECK_SIZE`.
pub const DUPLICATE_CACHE_SIZE: usize = 16;

/// oslo's `_MsgIdCache`: the last 16 `_unique_id`s seen by one listener. A broker redelivery
/// (e.g. after a reconnect before the ack landed) is dropped instead of run twice.
#[derive(Debug, Clone, Default)]
pub struct DuplicateFilter {
    recent: VecDeque<String>,
}

impl DuplicateFilter {
    /// An empty filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when `unique_id` was seen among the last 16. Messages without one are never
    /// duplicates.
    pub fn is_duplicate(&self, unique_id: Option<&str>) -> bool {
        unique_id.is_some_and(|id| self.recent.iter().any(|r| r == id))
    }

    /// Remembers `unique_id` (ignored when empty or already known), evicting the oldest.
    pub fn add(&mut self, unique_id: Option<&str>) {
        let Some(id) = unique_id.filter(|id| !id.is_empty()) else {
            return;
        };
        if self.recent.iter().any(|r| r == id) {
            return;
        }
        if self.recent.len() == DUPLICATE_CACHE_SIZE {
            self.recent.pop_front();
        }
        self.recent.push_back(id.to_string());
    }

    /// The receive path: false (drop it) for a duplicate, else records the id and returns true.
    pub fn check_and_add(&mut self, unique_id: Option<&str>) -> bool {
        if self.is_duplicate(unique_id) {
            return false;
        }
        self.add(unique_id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_filter_matches_msg_id_cache() {
        let mut f = DuplicateFilter::new();
        assert!(f.check_and_add(Some("a")));
        assert!(!f.check_and_add(Some("a")));
        assert!(f.check_and_add(None) && f.check_and_add(None));
        for i in 0..DUPLICATE_CACHE_SIZE {
            assert!(f.check_and_add(Some(&format!("id{i}"))));
        }
        // "a" was the oldest of 17 and is gone; the last 16 are remembered.
        assert!(!f.is_duplicate(Some("a")));
        assert!(f.is_duplicate(Some("id0")) && f.is_duplicate(Some("id15")));
        f.add(Some(""));
        assert!(!f.is_duplicate(Some("")));
    }
}
