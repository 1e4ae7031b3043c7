//! Stale port messages (`NetworkCache.is_port_message_stale`, reference §3/§7.1): a port update
//! is dropped when the cached copy has a higher `revision_number`, or when the port was deleted
//! within the last 24 hours (`DELETED_PORT_MAX_AGE`).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// `DELETED_PORT_MAX_AGE`.
pub const DELETED_PORT_MAX_AGE: Duration = Duration::from_secs(86_400);

/// `revision_number` comparison; a missing number counts as 0, as in Neutron.
pub fn is_older_revision(cached: Option<u64>, incoming: Option<u64>) -> bool {
    cached.unwrap_or(0) > incoming.unwrap_or(0)
}

/// Recently deleted port ids, expiring after `max_age`.
#[derive(Debug)]
pub struct DeletedPorts {
    max_age: Duration,
    ids: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl Default for DeletedPorts {
    fn default() -> Self {
        DeletedPorts::with_max_age(DELETED_PORT_MAX_AGE)
    }
}

impl DeletedPorts {
    pub fn with_max_age(max_age: Duration) -> Self {
        DeletedPorts {
            max_age,
            ids: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// `add_to_deleted_ports` (the first deletion time is kept).
    pub fn add(&mut self, port_id: &str, now: Instant) {
        self.purge(now);
        if !self.ids.contains_key(port_id) {
            self.ids.insert(port_id.to_owned(), now);
            self.order.push_back((now, port_id.to_owned()));
        }
    }

    pub fn contains(&self, port_id: &str, now: Instant) -> bool {
        self.ids
            .get(port_id)
            .is_some_and(|t| now.saturating_duration_since(*t) < self.max_age)
    }

    /// `cleanup_deleted_ports`: forgets ids older than `max_age`.
    pub fn purge(&mut self, now: Instant) {
        while let Some((t, _)) = self.order.front() {
            if now.saturating_duration_since(*t) < self.max_age {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.ids.remove(&id);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_rule() {
        assert!(is_older_revision(Some(5), Some(4)));
        assert!(!is_older_revision(Some(5), Some(5)));
        assert!(!is_older_revision(Some(5), Some(6)));
        assert!(!is_older_revision(None, Some(1)));
        assert!(is_older_revision(Some(1), None));
        assert!(!is_older_revision(None, None));
    }

    #[test]
    fn deleted_ports_expire() {
        let t0 = Instant::now();
        let mut d = DeletedPorts::with_max_age(Duration::from_secs(10));
        d.add("a", t0);
        d.add("b", t0 + Duration::from_secs(5));
        d.add("a", t0 + Duration::from_secs(6));
        assert!(d.contains("a", t0 + Duration::from_secs(9)));
        assert!(
            !d.contains("a", t0 + Duration::from_secs(10)),
            "first deletion counts"
        );
        assert!(d.contains("b", t0 + Duration::from_secs(10)));
        d.purge(t0 + Duration::from_secs(12));
        assert_eq!(d.len(), 1);
        d.purge(t0 + Duration::from_secs(15));
        assert!(d.is_empty());
    }
}
