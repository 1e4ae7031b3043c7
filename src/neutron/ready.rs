//! `dhcp_ready_on_ports` batching (reference §7.5): ports whose bindings are being served are
//! reported to neutron-server, which then clears their DHCP provisioning block (the port goes
//! ACTIVE, Nova gets `network-vif-plugged`).
//!
//! Two sets: *priority* (ports from create/update events) and *normal* (everything a sync or a
//! network (re)configuration serves). A batch holds at most [`READY_PORTS_SYNC_MAX`] ids,
//! priority ones first. A failed call puts its ids back for the next attempt.
//!
//! Unlike the Python agent's 0.2 s polling loop, the sender wakes as soon as ids are added, so
//! a port_create_end is reported within milliseconds; and ports are added per network as soon
//! as that network is served, not after a whole sync.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::neutron::plugin::PluginApi;

/// `DHCP_READY_PORTS_SYNC_MAX`.
pub const READY_PORTS_SYNC_MAX: usize = 64;
/// Pause after a failed call before the ids are tried again.
const RETRY_DELAY: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
struct Sets {
    prio: BTreeSet<String>,
    normal: BTreeSet<String>,
}

/// The pending ready ports.
#[derive(Debug, Default)]
pub struct ReadyPorts {
    sets: Mutex<Sets>,
    notify: Notify,
}

impl ReadyPorts {
    fn sets(&self) -> MutexGuard<'_, Sets> {
        self.sets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ports from create/update events: sent first.
    pub fn add_prio<I: IntoIterator<Item = String>>(&self, ids: I) {
        {
            let mut s = self.sets();
            for id in ids {
                s.normal.remove(&id);
                s.prio.insert(id);
            }
        }
        self.notify.notify_one();
    }

    /// Ports of a (re)configured network.
    pub fn add_normal<I: IntoIterator<Item = String>>(&self, ids: I) {
        {
            let mut s = self.sets();
            for id in ids {
                if !s.prio.contains(&id) {
                    s.normal.insert(id);
                }
            }
        }
        self.notify.notify_one();
    }

    pub fn pending(&self) -> usize {
        let s = self.sets();
        s.prio.len() + s.normal.len()
    }

    /// Takes the next batch: up to `max` ids, priority ones first.
    pub fn take_batch(&self, max: usize) -> Batch {
        let mut s = self.sets();
        let mut b = Batch::default();
        while b.len() < max {
            if let Some(id) = s.prio.pop_first() {
                b.prio.push(id);
            } else if let Some(id) = s.normal.pop_first() {
                b.normal.push(id);
            } else {
                break;
            }
        }
        b
    }

    /// Puts a batch back after a failed call (into the set each id came from).
    pub fn requeue(&self, batch: Batch) {
        let mut s = self.sets();
        for id in batch.prio {
            s.normal.remove(&id);
            s.prio.insert(id);
        }
        for id in batch.normal {
            if !s.prio.contains(&id) {
                s.normal.insert(id);
            }
        }
    }

    /// Forgets ids (e.g. ports deleted before being reported).
    pub fn discard(&self, ids: &HashSet<String>) {
        let mut s = self.sets();
        s.prio.retain(|i| !ids.contains(i));
        s.normal.retain(|i| !ids.contains(i));
    }
}

/// One `dhcp_ready_on_ports` call's worth of ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub prio: Vec<String>,
    pub normal: Vec<String>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.prio.len() + self.normal.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn ids(&self) -> Vec<String> {
        self.prio.iter().chain(&self.normal).cloned().collect()
    }
}

/// The ready-ports reporter task: sends what [`ReadyPorts`] collects to neutron-server.
pub struct ReadyReporter {
    pub ready: Arc<ReadyPorts>,
    pub plugin: Arc<PluginApi>,
    pub stop: watch::Receiver<bool>,
}

impl ReadyReporter {
    /// Sends batches until `stop` turns true: one call at a time, right after ids arrive.
    pub async fn run(self) {
        let ReadyReporter {
            ready,
            plugin,
            mut stop,
        } = self;
        loop {
            let batch = ready.take_batch(READY_PORTS_SYNC_MAX);
            if batch.is_empty() {
                tokio::select! {
                    _ = ready.notify.notified() => continue,
                    _ = stop.changed() => return,
                }
            }
            let ids = batch.ids();
            // Without a broker the call waits up to rpc_response_timeout; a stop must not.
            let result = tokio::select! {
                r = plugin.dhcp_ready_on_ports(&ids) => r,
                _ = stop.changed() => return,
            };
            match result {
                Ok(()) => {
                    tracing::info!(count = ids.len(), ports = ?ids, "DHCP configuration for ports is completed");
                }
                Err(e) => {
                    if e.is_timeout() {
                        tracing::error!("timeout notifying the server of ready ports; retrying");
                    } else {
                        tracing::error!(error = %e, "failure notifying the server of ready ports; will retry");
                    }
                    ready.requeue(batch);
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_DELAY) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i:03}")).collect()
    }

    #[test]
    fn batches_hold_at_most_64_ids_priority_first() {
        let r = ReadyPorts::default();
        r.add_normal(ids("n", 100));
        r.add_prio(ids("p", 10));
        let b = r.take_batch(READY_PORTS_SYNC_MAX);
        assert_eq!(b.len(), 64);
        assert_eq!(b.prio, ids("p", 10));
        assert_eq!(b.normal.len(), 54);
        let b2 = r.take_batch(READY_PORTS_SYNC_MAX);
        assert_eq!(b2.len(), 46);
        assert!(b2.prio.is_empty());
        assert!(r.take_batch(READY_PORTS_SYNC_MAX).is_empty());
    }

    #[test]
    fn failed_batches_are_requeued_into_their_sets() {
        let r = ReadyPorts::default();
        r.add_prio(vec!["a".to_string()]);
        r.add_normal(vec!["b".to_string(), "c".to_string()]);
        let b = r.take_batch(2);
        assert_eq!(b.ids(), vec!["a", "b"]);
        r.requeue(b);
        assert_eq!(r.pending(), 3);
        let b = r.take_batch(64);
        assert_eq!(b.prio, vec!["a"]);
        assert_eq!(b.normal, vec!["b", "c"]);
    }

    #[test]
    fn an_id_is_pending_once_and_priority_wins() {
        let r = ReadyPorts::default();
        r.add_normal(vec!["x".to_string()]);
        r.add_prio(vec!["x".to_string()]);
        r.add_normal(vec!["x".to_string()]);
        assert_eq!(r.pending(), 1);
        let b = r.take_batch(64);
        assert_eq!(b.prio, vec!["x"]);
        r.add_normal(vec!["y".to_string(), "z".to_string()]);
        r.discard(&HashSet::from(["y".to_string()]));
        assert_eq!(r.take_batch(64).normal, vec!["z"]);
    }
}
