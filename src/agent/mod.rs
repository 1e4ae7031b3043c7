//! The agent: turns the desired set of networks into namespaces, DHCP ports and running servers.
//!
//! This is the only module that touches the cache, the device manager and the DHCP servers
//! together. Control-plane sources (the standalone file, Neutron RPC in [`crate::neutron`])
//! only hand it desired networks; it works out what changed and touches nothing else, so a
//! reload of one network never disturbs another.
//!
//! The agent is shared (`&self` everywhere): operations on *different* networks may run
//! concurrently, and [`Agent::apply`] itself configures (and tears down) networks several at a
//! time. Operations on the *same* network must be serialized by the caller (the standalone loop
//! applies one file at a time, in which a network appears once; the Neutron event processor
//! runs one update per network at a time). Internal locks are only held for map lookups, never
//! across an `.await`.
//!
//! One file per job, all of them `impl Agent` blocks or types the agent holds:
//! * `apply` — making the served set equal to the desired one: configure, roll back, disable,
//!   exit;
//! * `adopt` — serving at once on what a previous run left plumbed;
//! * `services` — the services of one served network (DHCP, DNS, metadata) started, adopted
//!   and stopped together;
//! * `book` — the status book: what the status endpoint reads beside the served set;
//! * `records` — the per-network records under `$state_path/dhcp`;
//! * `duid` — the DHCPv6 server-DUID file.

mod adopt;
mod apply;
mod book;
mod desired;
mod duid;
mod records;
mod services;

pub use book::{DnsCounters, ServedNetwork};
pub use desired::DesiredNetwork;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::device::{DeviceManager, PlumbPlan};
use crate::view::cache::NetworkCache;

pub use crate::model::is_uuid_like;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Refused before anything was changed on the host.
    #[error("{source}")]
    Invalid {
        source: Box<crate::model::ModelError>,
    },
    #[error("network {network}: own DHCP port {port} is not in the network's port list")]
    OwnPortMissing { network: String, port: String },
    #[error("network {network}: {source}")]
    Device {
        network: String,
        source: crate::device::DeviceError,
    },
    #[error("network {network}: {source}")]
    Server {
        network: String,
        source: crate::dhcp::server::ServerError,
    },
}

/// A network the agent serves: the plan its plumbing was made for and its running services.
struct Served {
    plan: PlumbPlan,
    /// The DHCP server, the DNS service and the metadata proxy of the network.
    services: services::NetworkServices,
    /// The plumbing was made or checked by this run. False while a network is served on what a
    /// previous run left behind ([`Agent::adopt`]) until [`Agent::configure`] has verified it.
    verified: bool,
}

/// What one `apply` did, for the log line operators (and tests) read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApplySummary {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
    /// Not served: failed to configure (and torn down), to be retried.
    pub failed: Vec<String>,
    /// Failed to take the new configuration and put back on the last one that worked, on
    /// which they are still served; re-applied in full by the next apply.
    pub rolled_back: Vec<String>,
}

/// What [`Agent::configure`] did to a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Configured {
    /// Newly plumbed and served.
    Started,
    /// The DHCP port's plumbing changed (addresses, MTU, routes, device); served again.
    Replumbed,
    /// Only ports/options changed: the view was swapped, nothing on the host was touched.
    ViewUpdated,
    /// Admin down or no DHCP-enabled subnet: the network is not (or no longer) served.
    NotServed,
}

pub struct Agent {
    cache: Arc<NetworkCache>,
    devices: DeviceManager,
    served: Mutex<HashMap<String, Served>>,
    /// `$state_path/dhcp`: one directory per served network, like the Python agent's
    /// `dhcp_confs`, so a restarted agent can find and remove networks it no longer serves.
    state_dir: PathBuf,
    /// Served networks whose last configure failed and was rolled back: what is on the host
    /// may not be what the desired network says even when it equals the one served, so the
    /// next apply re-applies them in full.
    dirty: Mutex<HashSet<String>>,
    /// Networks that are not served but may have plumbing on the host (their configure or
    /// their teardown failed): torn down on removal and on exit like served ones.
    failed: Mutex<HashSet<String>>,
    /// How the services of a network are set up beyond its plumbing (DNS upstreams, isolated
    /// metadata).
    services: services::ServiceSettings,
    /// What the status endpoint reports beside the served set (`crate::status`), with the
    /// latency histograms.
    book: book::Book,
}

/// Where a change came from, for [`Agent::record_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventSource {
    /// A cast from neutron-server (port, subnet, network events).
    Rpc,
    /// A reload of the standalone networks file.
    File,
}

/// Networks [`Agent::apply`] configures (or tears down) at once: enough to overlap the kernel
/// round trips of a restart adopting hundreds of namespaces on a few cores.
const PARALLELISM: usize = 32;

impl Agent {
    pub fn new(cache: Arc<NetworkCache>, devices: DeviceManager, state_path: PathBuf) -> Agent {
        Agent {
            cache,
            devices,
            served: Mutex::new(HashMap::new()),
            state_dir: state_path.join("dhcp"),
            dirty: Mutex::new(HashSet::new()),
            failed: Mutex::new(HashSet::new()),
            services: services::ServiceSettings::default(),
            book: book::Book::default(),
        }
    }

    /// Serves isolated metadata on the networks [`crate::metadata::decide`] picks.
    pub fn with_metadata(mut self, settings: crate::metadata::ProxySettings) -> Agent {
        self.services.metadata = Some(settings);
        self
    }

    /// Sets the DNS services' upstream servers from the options (read once, at start).
    pub fn with_dns(mut self, opts: &crate::config::DnsOptions) -> Agent {
        let upstreams = crate::dns::upstreams(opts);
        tracing::info!(upstreams = ?upstreams, "DNS service: names that are not a network's are {}",
            if upstreams.is_empty() { "refused" } else { "forwarded" });
        self.services.dns_upstreams = upstreams.into();
        self
    }

    fn dirty(&self) -> MutexGuard<'_, HashSet<String>> {
        self.dirty.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self) -> MutexGuard<'_, HashSet<String>> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn cache(&self) -> &Arc<NetworkCache> {
        &self.cache
    }

    fn served(&self) -> MutexGuard<'_, HashMap<String, Served>> {
        // Entries are inserted/removed in single statements: a poisoned lock is consistent.
        self.served.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a DHCP server is running for this network.
    pub fn is_served(&self, network_id: &str) -> bool {
        self.served().contains_key(network_id)
    }

    /// Whether a metadata proxy runs for this network.
    pub fn has_metadata_proxy(&self, network_id: &str) -> bool {
        self.served()
            .get(network_id)
            .is_some_and(|s| s.services.metadata.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_like_names() {
        assert!(is_uuid_like("8d4c2c5e-1a2b-4c3d-8e9f-0123456789ab"));
        assert!(is_uuid_like("8d4c2c5e1a2b4c3d8e9f0123456789ab"));
        assert!(!is_uuid_like("lost+found"));
        assert!(!is_uuid_like("8d4c2c5e-1a2b-4c3d-8e9f-0123456789a"));
        assert!(!is_uuid_like("8d4c2c5e1-a2b-4c3d-8e9f-0123456789ab"));
    }

    /// An agent over `state` with default settings, for the tests of every agent file.
    pub(super) fn agent(state: &std::path::Path) -> Agent {
        let cache = Arc::new(NetworkCache::new(crate::config::ServeConfig::default()));
        let devices = DeviceManager::new(crate::device::DeviceConfig::default());
        Agent::new(cache, devices, state.to_owned())
    }
}
