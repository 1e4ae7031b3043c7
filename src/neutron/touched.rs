//! What changed a network besides synced data (an event applied, our DHCP port obtained through
//! RPC), and therefore what synced data fetched before it must not undo: a sync's data that
//! predates such a change is refetched rather than applied.

use std::time::{Duration, Instant};

use crate::model::{Network, Port};

use super::stale::is_older_revision;
use super::{lock, Core};

/// How long a change is remembered for the staleness check of synced data (longer than any
/// fetch can take, with neutron-lib's timeout back-off at its 600 s default cap).
const TOUCH_MAX_AGE: Duration = Duration::from_secs(1800);

/// See [`Core::touch`].
#[derive(Clone, Debug)]
pub(super) struct Touch {
    at: Instant,
    /// Our DHCP port as last obtained through RPC (newer than any data fetched before `at`).
    pub(super) own_port: Option<Port>,
}

impl Core {
    /// Records a change of the network not coming from synced data: an event being applied
    /// (or dropped because the network is not served yet), or our DHCP port obtained via RPC.
    pub(super) fn touch(&self, network_id: &str, own_port: Option<Port>) {
        let now = Instant::now();
        let mut touched = lock(&self.touched);
        touched.retain(|_, t| now.duration_since(t.at) < TOUCH_MAX_AGE);
        let entry = touched.entry(network_id.to_owned()).or_insert(Touch {
            at: now,
            own_port: None,
        });
        entry.at = now;
        if own_port.is_some() {
            entry.own_port = own_port;
        }
    }

    /// Whether data requested at `fetched_at` may predate changes already applied.
    pub(super) fn is_stale(&self, network_id: &str, fetched_at: Instant) -> bool {
        lock(&self.touched)
            .get(network_id)
            .is_some_and(|t| t.at >= fetched_at)
    }

    /// Synced data older than the served state is not applied (it could undo events or make
    /// a second DHCP port); the network is refetched instead.
    pub(super) fn stale_for_served(&self, network_id: &str, fetched_at: Instant) -> bool {
        if self.agent.is_served(network_id) && self.is_stale(network_id, fetched_at) {
            tracing::info!(
                "the sync's data predates changes applied since; refetching the network"
            );
            self.schedule_resync("synced data was stale", network_id);
            return true;
        }
        false
    }

    /// Fetched data may predate events already applied: never resurrect a port deleted
    /// meanwhile, never replace a port by an older revision of itself.
    pub(super) fn keep_newer_ports(&self, network: &mut Network) {
        let now = Instant::now();
        {
            let deleted = lock(&self.deleted);
            network.ports.retain(|p| !deleted.contains(&p.id, now));
        }
        if let Some(cached) = self.agent.cache().get(&network.id) {
            for p in &mut network.ports {
                if let Some(c) = cached.ports.iter().find(|c| c.id == p.id) {
                    if is_older_revision(c.revision_number, p.revision_number) {
                        *p = c.clone();
                    }
                }
            }
        }
    }
}
