//! The status book: what the status endpoint (`crate::status`) reads beside the served set —
//! each network's last change and its error, the packet counts of stopped servers, and the
//! configure and event latency histograms.
//!
//! One record per network is the single source of truth for "failed": a network is failed
//! exactly when its record holds an error, so [`Agent::failed_networks`] and
//! [`Agent::last_change`] read the same entry and cannot disagree. Every way the agent gives up
//! on a network writes its error here: a configure that failed ([`Agent::configure`]) and a
//! teardown that failed ([`Agent::disable`], which leaves the network in the agent's failed set
//! for a later retry); a teardown that succeeds forgets the record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::dhcp::server::Counters;
use crate::telemetry::histogram::Histogram;

use super::{Agent, EventSource};

// --- For the status endpoint (`crate::status`): read-only views of what is served. ---

/// A served network as the status endpoint shows it.
#[derive(Clone, Debug)]
pub struct ServedNetwork {
    pub network_id: String,
    pub namespace: String,
    pub ifname: String,
    /// False while served on a previous run's plumbing not yet verified.
    pub verified: bool,
    pub serves_v6: bool,
    pub counters: Arc<crate::dhcp::server::Counters>,
    pub counters6: Arc<crate::dhcp::server::Counters>,
    /// The DNS service's counters, while it serves.
    pub dns: Option<DnsCounters>,
    /// The metadata proxy's counters, while one runs.
    pub metadata: Option<Arc<crate::metadata::proxy::ProxyCounters>>,
}

/// A network's DNS service counters: queries, and its upstream side.
#[derive(Clone, Debug)]
pub struct DnsCounters {
    pub queries: Arc<crate::dns::server::Counters>,
    pub forward: Arc<crate::dns::forward::ForwardCounters>,
}

/// Per-network outcome of the last configuration, and the packet counts of servers that
/// stopped (so totals never go backwards when a network is removed or replumbed).
#[derive(Default)]
struct StatusBook {
    /// Network id -> (when last configured, the error if that failed).
    last: HashMap<String, (SystemTime, Option<String>)>,
    retired: (Counters, Counters),
}

/// The agent's status book and latency histograms.
#[derive(Default)]
pub(super) struct Book {
    /// What the status endpoint reports beside the served set (`crate::status`).
    status: Mutex<StatusBook>,
    /// How long [`Agent::configure`] took until the change was served: a view swap (ports or
    /// options changed), or plumbing (a network started or replumbed).
    configure_latency: [Histogram; 2],
    /// From a change arriving (a Neutron cast received, a networks-file change noticed) to
    /// its networks served on the new data, by [`EventSource`].
    event_latency: [Histogram; 2],
}

impl Book {
    fn status(&self) -> MutexGuard<'_, StatusBook> {
        // Every update is a single insert/remove/add: a poisoned lock is consistent.
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a network's change now, failed with `error` or not.
    pub(super) fn note(&self, network_id: &str, error: Option<String>) {
        let now = SystemTime::now();
        self.status()
            .last
            .insert(network_id.to_owned(), (now, error));
    }

    /// Forgets a network that is not served any more and left nothing behind.
    pub(super) fn forget(&self, network_id: &str) {
        self.status().last.remove(network_id);
    }

    /// A configure that changed what is served took `took`: a view swap or new plumbing.
    pub(super) fn record_configure(&self, plumbing: bool, took: std::time::Duration) {
        self.configure_latency[usize::from(plumbing)].record(took);
    }

    /// Called once a server stopped (its counters are final).
    pub(super) fn retire(&self, v4: &Counters, v6: &Counters) {
        let book = self.status();
        v4.add_into(&book.retired.0);
        v6.add_into(&book.retired.1);
    }
}

impl Agent {
    /// The networks served now, sorted by id.
    pub fn served_networks(&self) -> Vec<ServedNetwork> {
        let mut out: Vec<ServedNetwork> = self
            .served()
            .iter()
            .map(|(id, s)| {
                let server = &s.services.dhcp;
                ServedNetwork {
                    network_id: id.clone(),
                    namespace: server.endpoint.namespace.clone(),
                    ifname: server.endpoint.ifname.clone(),
                    verified: s.verified,
                    serves_v6: server.serves_v6(),
                    counters: server.counters.clone(),
                    counters6: server.counters6.clone(),
                    dns: s.services.dns.as_ref().map(|d| DnsCounters {
                        queries: d.counters.clone(),
                        forward: d.forward.clone(),
                    }),
                    metadata: s
                        .services
                        .metadata
                        .as_ref()
                        .map(|p| p.proxy.counters.clone()),
                }
            })
            .collect();
        out.sort_by(|a, b| a.network_id.cmp(&b.network_id));
        out
    }

    /// Networks whose last configuration (or teardown) failed, with the error, sorted by id:
    /// the networks whose [`Agent::last_change`] holds an error.
    pub fn failed_networks(&self) -> Vec<(String, String)> {
        let book = self.book.status();
        let mut out: Vec<(String, String)> = book
            .last
            .iter()
            .filter_map(|(id, (_, e))| e.as_ref().map(|e| (id.clone(), e.clone())))
            .collect();
        out.sort();
        out
    }

    /// When a network was last configured (started, replumbed, view swapped), and whether
    /// that failed.
    pub fn last_change(&self, network_id: &str) -> Option<(SystemTime, Option<String>)> {
        self.book.status().last.get(network_id).cloned()
    }

    /// DHCPv4 and DHCPv6 packet counts of the servers stopped so far (removed or replumbed
    /// networks), for totals that never decrease.
    pub fn retired_counters(&self, f: impl FnOnce(&Counters, &Counters)) {
        let book = self.book.status();
        f(&book.retired.0, &book.retired.1)
    }

    /// [`Agent::configure`]'s latency by what it did: `view_swap` and `plumbing`.
    pub fn configure_latency(&self) -> [(&'static str, &Histogram); 2] {
        [
            ("view_swap", &self.book.configure_latency[0]),
            ("plumbing", &self.book.configure_latency[1]),
        ]
    }

    /// A change from `source` that arrived `took` ago is now served.
    pub fn record_event(&self, source: EventSource, took: std::time::Duration) {
        self.book.event_latency[source as usize].record(took);
    }

    /// [`Agent::record_event`]'s histograms by source: `rpc` and `file`.
    pub fn event_latency(&self) -> [(&'static str, &Histogram); 2] {
        [
            ("rpc", &self.book.event_latency[EventSource::Rpc as usize]),
            ("file", &self.book.event_latency[EventSource::File as usize]),
        ]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_network_is_listed_with_the_error_its_last_change_holds() {
        let state = tempfile::tempdir().unwrap();
        let a = super::super::tests::agent(state.path());
        let (ok, bad) = ("net-ok", "net-bad");
        a.book.note(ok, None);
        a.book.note(bad, Some("teardown failed: boom".into()));
        let failed = a.failed_networks();
        assert_eq!(
            failed,
            [(bad.to_owned(), "teardown failed: boom".to_owned())]
        );
        for (id, error) in &failed {
            assert_eq!(a.last_change(id).and_then(|(_, e)| e).as_ref(), Some(error));
        }
        assert_eq!(a.last_change(ok).map(|(_, e)| e), Some(None));
        a.book.note(bad, None);
        assert!(a.failed_networks().is_empty());
        a.book.forget(ok);
        assert!(a.last_change(ok).is_none());
    }
}
