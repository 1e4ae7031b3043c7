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

mod desired;
pub use desired::DesiredNetwork;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::StreamExt;
use tracing::Instrument;

use crate::device::{DeviceManager, PlumbPlan};
use crate::dhcp::server::{DhcpServer, Endpoint, ServerError, Sockets};
use crate::dns::server::{DnsService, DnsSockets, Listen};
use crate::model::{MacAddr, NetworkId};
use crate::view::cache::NetworkCache;
use crate::view::v6::ServerDuid;

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

struct Served {
    plan: PlumbPlan,
    server: DhcpServer,
    /// The network's DNS service (issue 14); `None` if its sockets could not be opened.
    dns: Option<DnsService>,
    /// The plumbing was made or checked by this run. False while a network is served on what a
    /// previous run left behind ([`Agent::adopt`]) until [`Agent::configure`] has verified it.
    verified: bool,
}

/// A previous run's plumbing that matches what a network needs now ([`Agent::adopt`]).
struct RecordedPlumbing {
    plan: PlumbPlan,
    namespace: String,
    ifname: String,
    /// The DHCP port's MAC (the DHCPv6 server DUID is derived from it).
    mac: MacAddr,
}

/// `$state_path/dhcp/<network>/plumbing`: fingerprint of the plan the recorded device was
/// plumbed for.
const PLUMBING_FILE: &str = "plumbing";
/// `$state_path/dhcp/<network>/interface`: the DHCP device's name inside the namespace.
const INTERFACE_FILE: &str = "interface";

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
    /// Where the DNS services forward names that are not their network's (empty: REFUSED).
    dns_upstreams: Arc<[std::net::SocketAddr]>,
    /// Isolated metadata (issue 15): `None` when the agent runs without it.
    metadata: Option<crate::metadata::ProxySettings>,
    /// The running metadata proxies, by network.
    proxies: Mutex<HashMap<String, RunningProxy>>,
    /// What the status endpoint reports beside the served set (`crate::status`).
    status: Mutex<StatusBook>,
    /// How long [`Agent::configure`] took until the change was served: a view swap (ports or
    /// options changed), or plumbing (a network started or replumbed).
    configure_latency: [crate::telemetry::histogram::Histogram; 2],
    /// From a change arriving (a Neutron cast received, a networks-file change noticed) to
    /// its networks served on the new data, by [`EventSource`].
    event_latency: [crate::telemetry::histogram::Histogram; 2],
}

/// Where a change came from, for [`Agent::record_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventSource {
    /// A cast from neutron-server (port, subnet, network events).
    Rpc,
    /// A reload of the standalone networks file.
    File,
}

/// A network's metadata proxy and the DHCP device it was opened on (a new device or
/// namespace needs new listeners).
struct RunningProxy {
    proxy: crate::metadata::MetadataProxy,
    namespace: String,
    ifname: String,
    ifindex: u32,
}

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
    last: HashMap<String, (std::time::SystemTime, Option<String>)>,
    retired: (crate::dhcp::server::Counters, crate::dhcp::server::Counters),
}

impl Agent {
    /// The networks served now, sorted by id.
    pub fn served_networks(&self) -> Vec<ServedNetwork> {
        let mut out: Vec<ServedNetwork> = self
            .served()
            .iter()
            .map(|(id, s)| ServedNetwork {
                network_id: id.clone(),
                namespace: s.server.endpoint.namespace.clone(),
                ifname: s.server.endpoint.ifname.clone(),
                verified: s.verified,
                serves_v6: s.server.serves_v6(),
                counters: s.server.counters.clone(),
                counters6: s.server.counters6.clone(),
                dns: s.dns.as_ref().map(|d| DnsCounters {
                    queries: d.counters.clone(),
                    forward: d.forward.clone(),
                }),
                metadata: None,
            })
            .collect();
        let proxies = self.proxies();
        for n in &mut out {
            n.metadata = proxies.get(&n.network_id).map(|p| p.proxy.counters.clone());
        }
        drop(proxies);
        out.sort_by(|a, b| a.network_id.cmp(&b.network_id));
        out
    }

    /// Networks whose last configuration failed, with the error, sorted by id.
    pub fn failed_networks(&self) -> Vec<(String, String)> {
        let book = self.status_book();
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
    pub fn last_change(&self, network_id: &str) -> Option<(std::time::SystemTime, Option<String>)> {
        self.status_book().last.get(network_id).cloned()
    }

    /// DHCPv4 and DHCPv6 packet counts of the servers stopped so far (removed or replumbed
    /// networks), for totals that never decrease.
    pub fn retired_counters(
        &self,
        f: impl FnOnce(&crate::dhcp::server::Counters, &crate::dhcp::server::Counters),
    ) {
        let book = self.status_book();
        f(&book.retired.0, &book.retired.1)
    }

    fn status_book(&self) -> MutexGuard<'_, StatusBook> {
        // Every update is a single insert/remove/add: a poisoned lock is consistent.
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note_configured(&self, network_id: &str, error: Option<String>) {
        let now = std::time::SystemTime::now();
        self.status_book()
            .last
            .insert(network_id.to_owned(), (now, error));
    }

    /// [`Agent::configure`]'s latency by what it did: `view_swap` and `plumbing`.
    pub fn configure_latency(
        &self,
    ) -> [(&'static str, &crate::telemetry::histogram::Histogram); 2] {
        [
            ("view_swap", &self.configure_latency[0]),
            ("plumbing", &self.configure_latency[1]),
        ]
    }

    /// A change from `source` that arrived `took` ago is now served.
    pub fn record_event(&self, source: EventSource, took: std::time::Duration) {
        self.event_latency[source as usize].record(took);
    }

    /// [`Agent::record_event`]'s histograms by source: `rpc` and `file`.
    pub fn event_latency(&self) -> [(&'static str, &crate::telemetry::histogram::Histogram); 2] {
        [
            ("rpc", &self.event_latency[EventSource::Rpc as usize]),
            ("file", &self.event_latency[EventSource::File as usize]),
        ]
    }

    /// Called once a server stopped (its counters are final).
    fn retire(&self, v4: &crate::dhcp::server::Counters, v6: &crate::dhcp::server::Counters) {
        let book = self.status_book();
        v4.add_into(&book.retired.0);
        v6.add_into(&book.retired.1);
    }
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
            metadata: None,
            proxies: Mutex::new(HashMap::new()),
            dns_upstreams: Arc::new([]),
            status: Mutex::default(),
            configure_latency: Default::default(),
            event_latency: Default::default(),
        }
    }

    /// Serves isolated metadata on the networks [`crate::metadata::decide`] picks.
    pub fn with_metadata(mut self, settings: crate::metadata::ProxySettings) -> Agent {
        self.metadata = Some(settings);
        self
    }

    fn dirty(&self) -> MutexGuard<'_, HashSet<String>> {
        self.dirty.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self) -> MutexGuard<'_, HashSet<String>> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- DNS service (issue 14) ----

    /// Sets the DNS services' upstream servers from the options (read once, at start).
    pub fn with_dns(mut self, opts: &crate::config::DnsOptions) -> Agent {
        let upstreams = crate::dns::upstreams(opts);
        tracing::info!(upstreams = ?upstreams, "DNS service: names that are not a network's are {}",
            if upstreams.is_empty() { "refused" } else { "forwarded" });
        self.dns_upstreams = upstreams.into();
        self
    }

    /// Opens and serves a network's DNS sockets; a failure is logged and the network is
    /// served without DNS (as dnsmasq's DHCP goes on when a DNS address cannot be bound).
    async fn start_dns(
        &self,
        network_id: &str,
        namespace: &str,
        plan: &PlumbPlan,
        view: crate::view::cache::ViewHandle,
    ) -> Option<DnsService> {
        let opened = DnsSockets::open(namespace, Listen::of(&plan.addresses)).await;
        self.serve_dns(network_id, opened, view)
    }

    fn serve_dns(
        &self,
        network_id: &str,
        opened: Result<DnsSockets, crate::dns::server::DnsError>,
        view: crate::view::cache::ViewHandle,
    ) -> Option<DnsService> {
        let served = tokio::runtime::Handle::try_current()
            .map_err(|e| format!("no runtime: {e}"))
            .and_then(|rt| {
                opened
                    .and_then(|s| {
                        DnsService::serve(network_id, s, view, self.dns_upstreams.clone(), &rt)
                    })
                    .map_err(|e| e.to_string())
            });
        match served {
            Ok(dns) => Some(dns),
            Err(e) => {
                tracing::error!(%network_id, error = %e, "DNS not served on this network");
                None
            }
        }
    }

    /// Starts a served network's DNS service if it has none: its port may have been held by a
    /// process stopped since (the Python agent's dnsmasq, [`crate::migrate`]).
    async fn ensure_dns(&self, network_id: &str) {
        let (namespace, plan) = match self.served().get(network_id) {
            Some(s) if s.dns.is_none() => (s.server.endpoint.namespace.clone(), s.plan.clone()),
            _ => return,
        };
        let Some(view) = self.cache.view(network_id) else {
            return;
        };
        let Some(dns) = self.start_dns(network_id, &namespace, &plan, view).await else {
            return;
        };
        let unused = match self.served().get_mut(network_id) {
            Some(s) if s.dns.is_none() => {
                s.dns = Some(dns);
                None
            }
            _ => Some(dns),
        };
        if let Some(dns) = unused {
            dns.stop().await;
        }
    }

    // ---- end of DNS service ----

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

    /// Makes the served set equal to `desired`. Networks whose data did not change are not
    /// touched at all; a network that fails is reported in the summary and left for a retry,
    /// the others still converge.
    ///
    /// Only the networks that differ are copied (for `configure`): a copy touches every port's
    /// reference count, and the unchanged networks may hold most of the ports.
    pub async fn apply(&self, desired: &[DesiredNetwork]) -> ApplySummary {
        let mut summary = ApplySummary::default();
        let wanted: HashSet<String> = desired.iter().map(|d| d.network.id.clone()).collect();
        let mut stale: Vec<String> = self
            .cache
            .network_ids()
            .into_iter()
            .filter(|id| !wanted.contains(id))
            .collect();
        let failed: Vec<String> = self.failed().iter().cloned().collect();
        for id in failed {
            if !wanted.contains(&id) && !stale.contains(&id) {
                stale.push(id);
            }
        }
        summary.removed = stale.len();
        futures_util::stream::iter(stale)
            .for_each_concurrent(PARALLELISM, |id| async move { self.disable(&id).await })
            .await;
        let mut changed = Vec::new();
        for d in desired {
            let id = &d.network.id;
            let same = self.is_served(id)
                && !self.dirty().contains(id)
                && self.cache.get(id).is_some_and(|n| *n == d.network)
                && self.cache.own_port_id(id).as_deref() == Some(d.own_port_id.as_str());
            if same {
                summary.unchanged += 1;
            } else {
                changed.push(d);
            }
        }
        let existed: HashSet<String> = changed
            .iter()
            .filter(|d| self.is_served(&d.network.id))
            .map(|d| d.network.id.clone())
            .collect();
        // First serve what a previous run left plumbed for exactly these plans, then verify
        // (or make) the plumbing of everything: after a restart every network answers again
        // before the slower netlink checks start. (Only a start has such records: the first
        // check is all a reload pays.)
        let fresh: Vec<&DesiredNetwork> = changed
            .iter()
            .copied()
            .filter(|d| !existed.contains(&d.network.id))
            .collect();
        if fresh.iter().any(|d| self.recorded_plumbing(d).is_some()) {
            self.adopt_all(&fresh);
        }
        // Networks are independent: configuring several at once overlaps their kernel round
        // trips. (Futures are collected in a loop rather than built by a closure over
        // references: the compiler cannot prove such closures `Send` inside a spawned task.)
        let mut configures = Vec::with_capacity(changed.len());
        for d in changed {
            let was_served = existed.contains(&d.network.id);
            configures.push(async move { (&d.network.id, was_served, self.configure(d).await) });
        }
        let mut results = futures_util::stream::iter(configures).buffer_unordered(PARALLELISM);
        while let Some((id, existed, result)) = results.next().await {
            match result {
                Ok(_) if existed => summary.changed += 1,
                Ok(_) => summary.added += 1,
                Err(e) if self.is_served(id) => {
                    tracing::error!(network_id = %id, error = %e, "cannot configure network; still served on its last good configuration");
                    summary.rolled_back.push(id.clone());
                }
                Err(e) => {
                    tracing::error!(network_id = %id, error = %e, "cannot configure network");
                    summary.failed.push(id.clone());
                }
            }
        }
        summary.failed.sort();
        summary.rolled_back.sort();
        summary
    }

    /// Configures (or reconfigures) one network: plumbing first, then the view swap, then the
    /// server, so a client is never answered from a namespace that lacks the addresses it names.
    /// When only ports or options changed, this is a view swap and nothing else.
    pub async fn configure(&self, d: &DesiredNetwork) -> Result<Configured, AgentError> {
        let span = tracing::info_span!("configure", network_id = %d.network.id);
        let began = std::time::Instant::now();
        let r = self.configure_inner(d).instrument(span.clone()).await;
        match &r {
            Ok(Configured::ViewUpdated) => self.configure_latency[0].record(began.elapsed()),
            Ok(Configured::Started | Configured::Replumbed) => {
                self.configure_latency[1].record(began.elapsed())
            }
            _ => {}
        }
        match &r {
            Ok(Configured::NotServed) => drop(self.status_book().last.remove(&d.network.id)),
            Ok(_) => self.note_configured(&d.network.id, None),
            Err(e) => self.note_configured(&d.network.id, Some(e.to_string())),
        }
        // --- migration hook (src/migrate.rs): once we serve, stop what the Python agent left.
        if matches!(r, Ok(Configured::Started)) {
            let state_path = self
                .state_dir
                .parent()
                .unwrap_or(&self.state_dir)
                .to_path_buf();
            let id = d.network.id.clone();
            let in_span = span.clone();
            let take_over =
                move || in_span.in_scope(|| crate::migrate::take_over(&state_path, &id));
            if let Err(e) = tokio::task::spawn_blocking(take_over).await {
                tracing::error!(network_id = %d.network.id, error = %e, "taking over from the Python agent failed");
            }
            // dnsmasq may have held port 53 until now: a DNS service that could not bind
            // starts now (haproxy, holding port 80, is gone before the metadata proxy below).
            self.ensure_dns(&d.network.id).await;
        }
        // --- end of migration hook
        if matches!(r, Ok(c) if c != Configured::NotServed) {
            self.update_metadata(d).instrument(span).await;
        }
        r
    }

    // --- metadata proxy (issue 15) ---

    fn proxies(&self) -> MutexGuard<'_, HashMap<String, RunningProxy>> {
        // Entries are inserted/removed in single statements: a poisoned lock is consistent.
        self.proxies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a metadata proxy runs for this network.
    pub fn has_metadata_proxy(&self, network_id: &str) -> bool {
        self.proxies().contains_key(network_id)
    }

    /// Neutron's `update_isolated_metadata_proxy`, after every change of a served network:
    /// starts, keeps, restarts (new keying or device) or stops its metadata proxy. A proxy
    /// that cannot start is logged and leaves DHCP served; the next change tries again.
    async fn update_metadata(&self, d: &DesiredNetwork) {
        let Some(settings) = &self.metadata else {
            return;
        };
        let id = &d.network.id;
        let mut wanted = crate::metadata::decide(&d.network, &d.own_port_id, settings.switches);
        let (endpoint, has_v6_address) = match self.served().get(id) {
            Some(s) => (
                Some(s.server.endpoint.clone()),
                s.plan
                    .addresses
                    .iter()
                    .any(|a| a.ip() == crate::device::plan::METADATA_V6),
            ),
            None => (None, false),
        };
        // The IPv6 listener needs fe80::a9fe:a9fe on the device, which the plan puts there
        // only for a DHCP-enabled IPv6 subnet.
        if let Some(w) = wanted.as_mut() {
            w.ipv6 &= has_v6_address;
        }
        let current = self.proxies().remove(id);
        if let (Some(w), Some(e), Some(cur)) = (&wanted, &endpoint, &current) {
            let same_device =
                cur.namespace == e.namespace && cur.ifname == e.ifname && cur.ifindex == e.ifindex;
            if *w == cur.proxy.decision && same_device {
                if let Some(cur) = current {
                    self.proxies().insert(id.clone(), cur);
                }
                return;
            }
        }
        if let Some(cur) = current {
            let counters = cur.proxy.stop().await;
            tracing::info!(network_id = %id, %counters, "metadata proxy stopped");
        }
        let (Some(decision), Some(e)) = (wanted, endpoint) else {
            return;
        };
        let started =
            crate::metadata::MetadataProxy::start(id, &e.namespace, &e.ifname, decision, settings)
                .await;
        match started {
            Ok(proxy) => {
                self.proxies().insert(
                    id.clone(),
                    RunningProxy {
                        proxy,
                        namespace: e.namespace,
                        ifname: e.ifname,
                        ifindex: e.ifindex,
                    },
                );
            }
            Err(e) => {
                tracing::error!(network_id = %id, error = %e, "cannot start the metadata proxy")
            }
        }
    }

    async fn stop_metadata(&self, network_id: &str) {
        let running = self.proxies().remove(network_id);
        if let Some(p) = running {
            let counters = p.proxy.stop().await;
            tracing::info!(%network_id, %counters, "metadata proxy stopped");
        }
    }

    // --- end of metadata proxy ---

    async fn configure_inner(&self, d: &DesiredNetwork) -> Result<Configured, AgentError> {
        // The gate: nothing on the host is touched for a network that fails validation, and
        // every name and path below comes from the validated id.
        let nid = d.network.check().map_err(|source| AgentError::Invalid {
            source: Box::new(source),
        })?;
        let id = d.network.id.clone();
        if !d.network.is_servable() {
            tracing::info!("network is admin down or has no DHCP-enabled subnet; not serving it");
            self.disable(&id).await;
            return Ok(Configured::NotServed);
        }
        let port = d.own_port().ok_or_else(|| AgentError::OwnPortMissing {
            network: id.clone(),
            port: d.own_port_id.clone(),
        })?;
        let plan = PlumbPlan::for_network(&d.network, port, self.devices.config());
        let same_plan = self
            .served()
            .get(&id)
            .is_some_and(|s| s.plan == plan && s.verified)
            && !self.dirty().contains(&id);
        if same_plan {
            // Only ports/options changed: a view swap is all it takes.
            let view = self.cache.upsert_borrowed(&d.network, &d.own_port_id);
            tracing::info!(
                bindings = view.load().v4_binding_count(),
                "network updated in place"
            );
            return Ok(Configured::ViewUpdated);
        }
        self.record_intent(&nid, &plan);
        self.pin_server_duid(&nid, port.mac_address);
        let plugged = match self.devices.setup(&plan).await {
            Ok(plugged) => plugged,
            Err(source) => {
                self.recover(&nid, &plan).await;
                return Err(AgentError::Device {
                    network: id.clone(),
                    source,
                });
            }
        };
        self.remember(&nid, &plugged.ifname, &self.plumbing_fingerprint(&plan));
        let view = self.cache.upsert_borrowed(&d.network, &d.own_port_id);
        let endpoint = Endpoint {
            network_id: id.clone(),
            namespace: plugged.namespace.clone(),
            ifname: plugged.ifname.clone(),
            ifindex: plugged.ifindex,
        };
        let previous = self.served().remove(&id);
        let replumb = previous.is_some();
        if let Some(mut served) = previous {
            // A device that gained or lost IPv6 (its MTU crossed 1280) needs new DHCPv6
            // sockets: the old one lost its multicast membership with the device's IPv6.
            if served.server.endpoint == endpoint && served.server.serves_v6() == plugged.ipv6 {
                let adopted = !served.verified;
                // DNS follows the DHCP port's addresses.
                let listen = Listen::of(&plan.addresses);
                if served.dns.as_ref().map(|d| &d.listen) != Some(&listen) {
                    if let Some(old) = served.dns.take() {
                        old.stop().await;
                    }
                    served.dns = self
                        .start_dns(&id, &endpoint.namespace, &plan, view.clone())
                        .await;
                }
                served.plan = plan;
                served.verified = true;
                self.served().insert(id.clone(), served);
                self.configured(&id);
                if adopted {
                    tracing::info!(network_id = %id, "plumbing left by the previous run verified");
                    return Ok(Configured::Started);
                }
                tracing::info!(network_id = %id, "network replumbed in place");
                return Ok(Configured::Replumbed);
            }
            if let Some(dns) = served.dns {
                dns.stop().await;
            }
            let counts = (
                served.server.counters.clone(),
                served.server.counters6.clone(),
            );
            served.server.stop().await;
            self.retire(&counts.0, &counts.1);
        }
        let dns = self
            .start_dns(&id, &plugged.namespace, &plan, view.clone())
            .await;
        let server = match DhcpServer::start(endpoint, view).await {
            Ok(server) => server,
            Err(source) => {
                if let Some(dns) = dns {
                    dns.stop().await;
                }
                self.recover(&nid, &plan).await;
                return Err(AgentError::Server {
                    network: id.clone(),
                    source,
                });
            }
        };
        tracing::info!(
            network_id = %id,
            namespace = %plugged.namespace,
            interface = %plugged.ifname,
            "serving network"
        );
        self.served().insert(
            id.clone(),
            Served {
                plan,
                server,
                dns,
                verified: true,
            },
        );
        self.configured(&id);
        Ok(if replumb {
            Configured::Replumbed
        } else {
            Configured::Started
        })
    }

    /// A configure succeeded: the host matches the network's plan.
    fn configured(&self, id: &str) {
        self.dirty().remove(id);
        self.failed().remove(id);
    }

    /// After a configure that failed half way: puts the host back to the last plan that
    /// worked, on which the network stays served (its server and view were not touched), or,
    /// when there is none or that fails too, tears the network down completely. Either way
    /// the next apply re-applies the whole plan, comparing with what is on the host.
    async fn recover(&self, nid: &NetworkId, attempted: &PlumbPlan) {
        let id = nid.as_str();
        let last_good = self
            .served()
            .get(id)
            .map(|s| (s.plan.clone(), s.server.endpoint.clone()));
        if let Some((plan, endpoint)) = last_good.filter(|(plan, _)| plan != attempted) {
            match self.devices.setup(&plan).await {
                Ok(p) if p.ifname == endpoint.ifname && p.ifindex == endpoint.ifindex => {
                    tracing::warn!(network_id = %id, "rolled the host back to the network's last good plumbing");
                    self.dirty().insert(id.to_owned());
                    return;
                }
                Ok(_) => {
                    tracing::error!(network_id = %id, "rolling back recreated the DHCP device; tearing the network down")
                }
                Err(e) => {
                    tracing::error!(network_id = %id, error = %e, "cannot roll back to the last good plumbing; tearing the network down")
                }
            }
        }
        self.failed().insert(id.to_owned());
        self.disable(id).await;
    }

    /// Before a new network's first plumbing: records the DHCP device it is about to get, so
    /// that whatever a failure (or a crash) leaves half made can be found and removed, by this
    /// run on removal and exit, or by the next start. Without the plan's fingerprint beside it
    /// such a record is never adopted as working plumbing.
    fn record_intent(&self, nid: &NetworkId, plan: &PlumbPlan) {
        let Some(dir) = self.network_dir(nid) else {
            return;
        };
        if dir.join(INTERFACE_FILE).exists() {
            return;
        }
        let ifname = crate::device::plan::ns_ifname(&plan.port_id);
        if let Err(e) = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(INTERFACE_FILE), ifname))
        {
            tracing::warn!(network_id = %nid, dir = %dir.display(), error = %e, "cannot record the network's DHCP device");
        }
    }

    /// `$state_path/dhcp/<network>`, checked to be a directory right under `$state_path/dhcp`
    /// (a validated id always is one plain path component; this is the last line of defence
    /// against a path that would escape the state directory).
    fn network_dir(&self, nid: &NetworkId) -> Option<PathBuf> {
        use std::path::Component;
        let mut parts = Path::new(nid.as_str()).components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(_)), None) => Some(self.state_dir.join(nid.as_str())),
            _ => {
                tracing::error!(network_id = %nid, "network id does not name one directory; refusing to use it as a path");
                None
            }
        }
    }

    /// Serves a network at once on the namespace and device a previous run of this agent left
    /// for exactly this plumbing (recorded under `$state_path`), before [`Agent::configure`]
    /// verifies them: a restarted agent answers again within milliseconds instead of after a
    /// netlink check of every namespace. Anything unexpected (no record, another plan, the
    /// device gone) just leaves the network to `configure`. Returns whether it now serves.
    pub async fn adopt(&self, d: &DesiredNetwork) -> bool {
        let Some(found) = self.recorded_plumbing(d) else {
            return false;
        };
        let span = tracing::info_span!("adopt", network_id = %d.network.id);
        async {
            let view = self.adopt_view(d, &found);
            let listen = Listen::of(&found.plan.addresses);
            let dns = DnsSockets::open(&found.namespace, listen).await;
            let dns = self.serve_dns(&d.network.id, dns, view.clone());
            let r = DhcpServer::adopt(&d.network.id, &found.namespace, &found.ifname, view).await;
            self.adopted(d, found, r, dns)
        }
        .instrument(span)
        .await
    }

    /// [`Agent::adopt`] for many networks at once, as after a restart: each network's sockets
    /// are opened by a thread that steps from namespace to namespace, a few such threads side
    /// by side, with no hand-off between a task and a namespace thread per network (which cost
    /// several times the work at 200 networks on 2 cores). Every network's sockets are opened
    /// before any is served: from then on a request that arrives is queued, and answered as
    /// soon as its network is served, instead of being dropped (a client would only ask again
    /// seconds later). Blocks this thread (moving the runtime's other tasks elsewhere when it
    /// can) for a few ms per hundred networks.
    pub fn adopt_all(&self, ds: &[&DesiredNetwork]) {
        let threads = crate::par::threads(4);
        // The DNS services' TCP side runs on this runtime, entered from the batch threads.
        let rt = tokio::runtime::Handle::try_current().ok();
        let run = || {
            let opened = crate::device::on_batch_threads(ds.to_vec(), threads, |thread, d| {
                let found = self.recorded_plumbing(d)?;
                let sockets = thread.enter(&found.namespace).map(|()| {
                    let dns =
                        DnsSockets::open_here(&found.namespace, Listen::of(&found.plan.addresses));
                    (
                        DhcpServer::open_here(&d.network.id, &found.namespace, &found.ifname),
                        dns,
                    )
                });
                Some((found, sockets))
            });
            let work: Vec<_> = ds.iter().copied().zip(opened).collect();
            crate::device::on_batch_threads(work, threads, |_, (d, opened)| {
                let Some((found, sockets)) = opened? else {
                    return Ok(false);
                };
                let _span = tracing::info_span!("adopt", network_id = %d.network.id).entered();
                let _rt = rt.as_ref().map(|rt| rt.enter());
                let (r, dns) = match sockets {
                    Ok((sockets, dns)) => {
                        let view = self.adopt_view(d, &found);
                        let dns = self.serve_dns(&d.network.id, dns, view.clone());
                        (DhcpServer::serve_adopted(sockets, view), dns)
                    }
                    Err(source) => (
                        Err(ServerError::Namespace {
                            namespace: found.namespace.clone(),
                            source,
                        }),
                        None,
                    ),
                };
                Ok(self.adopted(d, found, r, dns))
            })
        };
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let results = if multi_thread {
            tokio::task::block_in_place(run)
        } else {
            run()
        };
        for (d, r) in ds.iter().zip(results) {
            if let Err(e) = r.and_then(|r| r) {
                tracing::warn!(network_id = %d.network.id, error = %e, "cannot reuse the previous run's plumbing; configuring it");
            }
        }
    }

    /// What a previous run recorded for this network, if it matches the plumbing the network
    /// needs now.
    fn recorded_plumbing(&self, d: &DesiredNetwork) -> Option<RecordedPlumbing> {
        let id = &d.network.id;
        if self.is_served(id) || !d.network.is_servable() {
            return None;
        }
        let nid = d.network.check().ok()?;
        let port = d.own_port()?;
        let plan = PlumbPlan::for_network(&d.network, port, self.devices.config());
        let dir = self.network_dir(&nid)?;
        let recorded = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
        let ifname = recorded(INTERFACE_FILE)?.trim().to_owned();
        if recorded(PLUMBING_FILE)?.trim() != self.plumbing_fingerprint(&plan) {
            return None;
        }
        Some(RecordedPlumbing {
            namespace: plan.namespace(),
            plan,
            ifname,
            mac: port.mac_address,
        })
    }

    fn adopt_view(
        &self,
        d: &DesiredNetwork,
        found: &RecordedPlumbing,
    ) -> crate::view::cache::ViewHandle {
        if let Ok(nid) = NetworkId::parse(&d.network.id) {
            self.pin_server_duid(&nid, found.mac);
        }
        self.cache.upsert(d.network.clone(), &d.own_port_id)
    }

    fn adopted(
        &self,
        d: &DesiredNetwork,
        found: RecordedPlumbing,
        r: Result<DhcpServer, ServerError>,
        dns: Option<DnsService>,
    ) -> bool {
        match r {
            Ok(server) => {
                tracing::info!(
                    network_id = %d.network.id,
                    namespace = %server.endpoint.namespace,
                    interface = %server.endpoint.ifname,
                    "serving network (on the previous run's plumbing, to be verified)"
                );
                self.served().insert(
                    d.network.id.clone(),
                    Served {
                        plan: found.plan,
                        server,
                        dns,
                        verified: false,
                    },
                );
                true
            }
            Err(e) => {
                tracing::info!(error = %e, "cannot reuse the previous run's plumbing; configuring it");
                if let Some(dns) = dns {
                    // Closed now: configure opens them again.
                    drop(tokio::runtime::Handle::try_current().map(|rt| rt.spawn(dns.stop())));
                }
                false
            }
        }
    }

    /// Identifies the plumbing a plan needs under this driver configuration.
    fn plumbing_fingerprint(&self, plan: &PlumbPlan) -> String {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: the same text hashes alike in every run of this binary (a
        // new build that hashes differently only costs one verification before serving).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{plan:?}|{:?}", self.devices.config()).hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Stops serving a network and removes everything made for it on this host, including what
    /// a previous run left behind (found through the state directory). Idempotent.
    pub async fn disable(&self, network_id: &str) {
        let Ok(nid) = NetworkId::parse(network_id) else {
            // Nothing is ever made for such an id: there is nothing to remove, and its name
            // must not reach a path or the kernel.
            tracing::error!(%network_id, "not a network id (not a UUID); nothing to tear down");
            return;
        };
        self.dirty().remove(network_id);
        self.stop_metadata(network_id).await;
        let served = self.served().remove(network_id);
        let mut port_id = served
            .as_ref()
            .map(|s| s.plan.port_id.clone())
            .or_else(|| self.cache.own_port_id(network_id))
            .or_else(|| self.recorded_port_prefix(&nid));
        let counters = match served {
            Some(s) => {
                let counts = (s.server.counters.clone(), s.server.counters6.clone());
                if let Some(dns) = s.dns {
                    let dns_counters = dns.counters.clone();
                    dns.stop().await;
                    tracing::info!(%network_id, packets = %dns_counters, "stopped DNS");
                }
                s.server.stop().await;
                self.retire(&counts.0, &counts.1);
                Some(counts)
            }
            None => None,
        };
        self.cache.remove(network_id);
        self.status_book().last.remove(network_id);
        if port_id.is_none() {
            // Killed between plumbing and recording: the namespace alone names the port.
            match self.devices.port_prefix_in_namespace(network_id).await {
                Ok(found) => port_id = found,
                Err(e) => {
                    tracing::warn!(%network_id, error = %e, "cannot look into the namespace for its DHCP device")
                }
            }
        }
        let removed = match &port_id {
            Some(port_id) => self.devices.teardown(network_id, port_id).await,
            None => self.devices.delete_namespace_of(network_id).await.map(drop),
        };
        if let Err(e) = removed {
            tracing::error!(%network_id, error = %e, "teardown failed");
            // Tried again when the network is removed or the agent exits.
            self.failed().insert(network_id.to_owned());
            return;
        }
        self.failed().remove(network_id);
        self.forget(&nid);
        if let Some((v4, v6)) = counters {
            // Read after the stop, so the figures are final.
            let packets = format_args!("DHCPv4 {v4}; DHCPv6 {v6}");
            tracing::info!(%network_id, %packets, "stopped network");
        }
    }

    /// The SIGTERM path: stop answering, then either tear everything down or leave the
    /// namespaces, devices and `$state_path` records for the next start to adopt.
    pub async fn exit(&self, teardown: bool) {
        if teardown {
            tracing::info!("shutting down: removing served networks");
            self.shutdown().await;
            return;
        }
        let started = std::time::Instant::now();
        // Metadata proxies stop with their tasks (listeners closed, connections cut).
        drop(std::mem::take(&mut *self.proxies()));
        let servers: Vec<Served> = self.served().drain().map(|(_, s)| s).collect();
        let networks = servers.len();
        tracing::info!(
            networks,
            "shutting down: namespaces and devices are left for the next start"
        );
        let (servers, dns): (Vec<DhcpServer>, Vec<Option<DnsService>>) =
            servers.into_iter().map(|s| (s.server, s.dns)).unzip();
        futures_util::future::join_all(dns.into_iter().flatten().map(DnsService::stop)).await;
        let sockets =
            futures_util::future::join_all(servers.into_iter().map(|s| s.release())).await;
        let stopped = started.elapsed();
        if let Err(e) = tokio::task::spawn_blocking(move || Sockets::close_all(sockets)).await {
            tracing::warn!(error = %e, "closing the DHCP sockets failed");
        }
        tracing::info!(
            networks,
            tasks_stopped = ?stopped,
            sockets_closed = ?started.elapsed(),
            "stopped serving"
        );
    }

    /// Tears down every network we made.
    pub async fn shutdown(&self) {
        let mut ids: HashSet<String> = self.cache.network_ids().into_iter().collect();
        ids.extend(self.served().keys().cloned());
        ids.extend(self.failed().iter().cloned());
        // Each teardown mostly waits for the kernel (RCU grace periods when sockets and devices
        // go): concurrent teardowns share those waits.
        futures_util::stream::iter(ids)
            .for_each_concurrent(PARALLELISM, |id| async move { self.disable(&id).await })
            .await;
    }

    /// Ids of the networks recorded under `$state_path/dhcp` (served now or by a previous run).
    pub fn recorded_networks(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.state_dir) else {
            return Vec::new();
        };
        // Only network ids: anything else there (`lost+found`, an operator's backup) is not
        // ours to remove.
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|name| is_uuid_like(name))
            .collect();
        ids.sort();
        ids
    }

    /// Removes networks a previous run left behind (recorded under `$state_path/dhcp`) that are
    /// not in `keep`.
    pub async fn cleanup_leftovers(&self, keep: &HashSet<String>) {
        let leftovers = self
            .recorded_networks()
            .into_iter()
            .filter(|id| !keep.contains(id) && !self.is_served(id));
        futures_util::stream::iter(leftovers)
            .for_each_concurrent(PARALLELISM, |id| async move {
                tracing::info!(network_id = %id, "removing network left over from a previous run");
                self.disable(&id).await;
            })
            .await;
    }

    /// The DHCP device recorded for a network: `ns-<port_id[:11]>` → the port id prefix, which
    /// is all a teardown needs.
    fn recorded_port_prefix(&self, nid: &NetworkId) -> Option<String> {
        let ifname = std::fs::read_to_string(self.network_dir(nid)?.join(INTERFACE_FILE)).ok()?;
        let prefix = ifname
            .trim()
            .trim_start_matches("ns-")
            .trim_start_matches("tap")
            .to_owned();
        (!prefix.is_empty()).then_some(prefix)
    }

    /// Keeps the network's DHCPv6 server DUID stable across restarts and DHCP port changes:
    /// the first one (DUID-LL of our port's MAC) is persisted in `$state_path/dhcp/<net>/duid`,
    /// as dnsmasq keeps its DUID in the lease file Neutron preserves.
    fn pin_server_duid(&self, nid: &NetworkId, mac: MacAddr) {
        let network_id = nid.as_str();
        let Some(dir) = self.network_dir(nid) else {
            return;
        };
        match load_or_create_duid(&dir, mac) {
            Ok(duid) => self.cache.pin_server_duid(network_id, duid),
            Err(e) => {
                tracing::warn!(%network_id, dir = %dir.display(), error = %e, "cannot persist the DHCPv6 server DUID; using one derived from the port MAC")
            }
        }
    }

    /// Records the served network, its device and the plan it was plumbed for.
    fn remember(&self, nid: &NetworkId, ifname: &str, fingerprint: &str) {
        let network_id = nid.as_str();
        let Some(dir) = self.network_dir(nid) else {
            return;
        };
        let res = std::fs::create_dir_all(&dir).and_then(|()| {
            write_if_changed(&dir.join(INTERFACE_FILE), ifname)?;
            write_if_changed(&dir.join(PLUMBING_FILE), fingerprint)
        });
        if let Err(e) = res {
            tracing::warn!(%network_id, dir = %dir.display(), error = %e, "cannot record served network");
        }
    }

    fn forget(&self, nid: &NetworkId) {
        let network_id = nid.as_str();
        let Some(dir) = self.network_dir(nid) else {
            return;
        };
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(%network_id, dir = %dir.display(), error = %e, "cannot remove state dir");
            }
        }
    }
}

/// A restart finds its records already there: rewriting one would make ext4 flush the
/// truncated file to disk on close (its replace-by-truncate heuristic), once per network.
fn write_if_changed(path: &Path, content: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|cur| cur == content) {
        return Ok(());
    }
    std::fs::write(path, content)
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

    fn agent(state: &Path) -> Agent {
        let cache = Arc::new(NetworkCache::new(crate::config::ServeConfig::default()));
        let devices = DeviceManager::new(crate::device::DeviceConfig::default());
        Agent::new(cache, devices, state.to_owned())
    }

    #[test]
    fn only_network_ids_are_taken_from_the_state_directory() {
        let state = tempfile::tempdir().unwrap();
        let id = "8d4c2c5e-1a2b-4c3d-8e9f-0123456789ab";
        for dir in [id, "lost+found", "..x", "backup"] {
            std::fs::create_dir_all(state.path().join("dhcp").join(dir)).unwrap();
        }
        assert_eq!(agent(state.path()).recorded_networks(), [id]);
    }

    /// Whatever id reaches a teardown, nothing outside the network's own record is removed:
    /// the old agent's `disable("..")` removed the whole state path.
    #[tokio::test]
    async fn a_teardown_of_an_id_that_is_no_uuid_touches_nothing() {
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(state.path().join("dhcp")).unwrap();
        std::fs::write(state.path().join("canary"), "x").unwrap();
        let a = agent(state.path());
        for id in ["..", ".", "x/../..", ""] {
            a.disable(id).await;
        }
        assert!(state.path().join("canary").exists());
        assert!(state.path().join("dhcp").exists());
    }
}

const DUID_FILE: &str = crate::migrate::DUID_FILE;

/// Reads the persisted server DUID (dnsmasq's lease-file notation, `00:03:00:01:<mac>`), or
/// takes the one dnsmasq used for this network (the `duid` line of the Python agent's `leases`
/// file: clients' Renews name it), or else derives a DUID-LL from `mac`, and writes it. A
/// damaged file is replaced rather than trusted.
fn load_or_create_duid(dir: &Path, mac: MacAddr) -> std::io::Result<ServerDuid> {
    let path = dir.join(DUID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        match text.trim().parse::<ServerDuid>() {
            Ok(duid) => return Ok(duid),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring malformed DUID file")
            }
        }
    }
    let duid = match crate::migrate::dnsmasq_server_duid(dir) {
        Some(d) => {
            tracing::info!(duid = %d, "keeping dnsmasq's DHCPv6 server DUID");
            d
        }
        None => ServerDuid::from_mac(mac),
    };
    std::fs::create_dir_all(dir)?;
    std::fs::write(&path, format!("{duid}\n"))?;
    Ok(duid)
}

#[cfg(test)]
mod duid_tests {
    use super::*;

    #[test]
    fn duid_is_created_once_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net-1");
        let a: MacAddr = "fa:16:3e:00:00:01".parse().unwrap();
        let b: MacAddr = "fa:16:3e:00:00:02".parse().unwrap();
        let first = load_or_create_duid(&net, a).unwrap();
        assert_eq!(first.as_bytes(), [0, 3, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!(
            std::fs::read_to_string(net.join(DUID_FILE)).unwrap(),
            "00:03:00:01:fa:16:3e:00:00:01\n"
        );
        // A new DHCP port (new MAC) keeps the persisted identity.
        assert_eq!(load_or_create_duid(&net, b).unwrap(), first);
        std::fs::write(net.join(DUID_FILE), "garbage").unwrap();
        assert_eq!(
            load_or_create_duid(&net, b).unwrap().as_bytes(),
            [0, 3, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 2]
        );
    }

    #[test]
    fn dnsmasq_duid_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net-1");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(
            net.join("leases"),
            "duid 00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1\n0 fa:16:3e:0a:00:11 10.90.0.11 * *\n",
        )
        .unwrap();
        let a: MacAddr = "fa:16:3e:00:00:01".parse().unwrap();
        let duid = load_or_create_duid(&net, a).unwrap();
        assert_eq!(
            duid.to_string(),
            "00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1"
        );
        // Persisted as ours: a later lease file (ours rewritten for dnsmasq) does not change it.
        std::fs::write(
            net.join("leases"),
            "duid 00:01:00:01:00:00:00:01:fa:16:3e:00:00:09\n",
        )
        .unwrap();
        assert_eq!(load_or_create_duid(&net, a).unwrap(), duid);
    }
}
