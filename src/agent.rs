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

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::StreamExt;
use tracing::Instrument;

use crate::cache::NetworkCache;
use crate::device::{DeviceManager, PlumbPlan};
use crate::dhcp::server::{DhcpServer, Endpoint, ServerError, Sockets};
use crate::model::MacAddr;
use crate::standalone::DesiredNetwork;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
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
    pub failed: Vec<String>,
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
    /// What the status endpoint reports beside the served set (`crate::status`).
    status: Mutex<StatusBook>,
    /// How long [`Agent::configure`] took until the change was served: a view swap (ports or
    /// options changed), or plumbing (a network started or replumbed).
    configure_latency: [crate::status::histogram::Histogram; 2],
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
            })
            .collect();
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
    pub fn configure_latency(&self) -> [(&'static str, &crate::status::histogram::Histogram); 2] {
        [
            ("view_swap", &self.configure_latency[0]),
            ("plumbing", &self.configure_latency[1]),
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
            status: Mutex::default(),
            configure_latency: Default::default(),
        }
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

    /// Makes the served set equal to `desired`. Networks whose data did not change are not
    /// touched at all; a network that fails is reported in the summary and left for a retry,
    /// the others still converge.
    ///
    /// Only the networks that differ are copied (for `configure`): a copy touches every port's
    /// reference count, and the unchanged networks may hold most of the ports.
    pub async fn apply(&self, desired: &[DesiredNetwork]) -> ApplySummary {
        let mut summary = ApplySummary::default();
        let wanted: HashSet<String> = desired.iter().map(|d| d.network.id.clone()).collect();
        let stale: Vec<String> = self
            .cache
            .network_ids()
            .into_iter()
            .filter(|id| !wanted.contains(id))
            .collect();
        summary.removed = stale.len();
        futures_util::stream::iter(stale)
            .for_each_concurrent(PARALLELISM, |id| async move { self.disable(&id).await })
            .await;
        let mut changed = Vec::new();
        for d in desired {
            let id = &d.network.id;
            let same = self.is_served(id)
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
                Err(e) => {
                    tracing::error!(network_id = %id, error = %e, "cannot configure network");
                    summary.failed.push(id.clone());
                }
            }
        }
        summary.failed.sort();
        summary
    }

    /// Configures (or reconfigures) one network: plumbing first, then the view swap, then the
    /// server, so a client is never answered from a namespace that lacks the addresses it names.
    /// When only ports or options changed, this is a view swap and nothing else.
    pub async fn configure(&self, d: &DesiredNetwork) -> Result<Configured, AgentError> {
        let span = tracing::info_span!("configure", network_id = %d.network.id);
        let began = std::time::Instant::now();
        let r = self.configure_inner(d).instrument(span).await;
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
        r
    }

    async fn configure_inner(&self, d: &DesiredNetwork) -> Result<Configured, AgentError> {
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
            .is_some_and(|s| s.plan == plan && s.verified);
        if same_plan {
            // Only ports/options changed: a view swap is all it takes.
            let view = self.cache.upsert_borrowed(&d.network, &d.own_port_id);
            tracing::info!(
                bindings = view.load().v4_binding_count(),
                "network updated in place"
            );
            return Ok(Configured::ViewUpdated);
        }
        self.pin_server_duid(&id, port.mac_address);
        let plugged = self
            .devices
            .setup(&plan)
            .await
            .map_err(|source| AgentError::Device {
                network: id.clone(),
                source,
            })?;
        self.remember(&id, &plugged.ifname, &self.plumbing_fingerprint(&plan));
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
            if served.server.endpoint == endpoint {
                let adopted = !served.verified;
                served.plan = plan;
                served.verified = true;
                self.served().insert(id.clone(), served);
                if adopted {
                    tracing::info!(network_id = %id, "plumbing left by the previous run verified");
                    return Ok(Configured::Started);
                }
                tracing::info!(network_id = %id, "network replumbed in place");
                return Ok(Configured::Replumbed);
            }
            let counts = (
                served.server.counters.clone(),
                served.server.counters6.clone(),
            );
            served.server.stop().await;
            self.retire(&counts.0, &counts.1);
        }
        let server =
            DhcpServer::start(endpoint, view)
                .await
                .map_err(|source| AgentError::Server {
                    network: id.clone(),
                    source,
                })?;
        tracing::info!(
            network_id = %id,
            namespace = %plugged.namespace,
            interface = %plugged.ifname,
            "serving network"
        );
        self.served().insert(
            id,
            Served {
                plan,
                server,
                verified: true,
            },
        );
        Ok(if replumb {
            Configured::Replumbed
        } else {
            Configured::Started
        })
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
            let r = DhcpServer::adopt(&d.network.id, &found.namespace, &found.ifname, view).await;
            self.adopted(d, found, r)
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
        let run = || {
            let opened = crate::device::on_batch_threads(ds.to_vec(), threads, |thread, d| {
                let found = self.recorded_plumbing(d)?;
                let sockets = thread.enter(&found.namespace).map(|()| {
                    DhcpServer::open_here(&d.network.id, &found.namespace, &found.ifname)
                });
                Some((found, sockets))
            });
            let work: Vec<_> = ds.iter().copied().zip(opened).collect();
            crate::device::on_batch_threads(work, threads, |_, (d, opened)| {
                let Some((found, sockets)) = opened? else {
                    return Ok(false);
                };
                let _span = tracing::info_span!("adopt", network_id = %d.network.id).entered();
                let r = match sockets {
                    Ok(sockets) => {
                        let view = self.adopt_view(d, &found);
                        DhcpServer::serve_adopted(sockets, view)
                    }
                    Err(source) => Err(ServerError::Namespace {
                        namespace: found.namespace.clone(),
                        source,
                    }),
                };
                Ok(self.adopted(d, found, r))
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
        let port = d.own_port()?;
        let plan = PlumbPlan::for_network(&d.network, port, self.devices.config());
        let dir = self.state_dir.join(id);
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

    fn adopt_view(&self, d: &DesiredNetwork, found: &RecordedPlumbing) -> crate::cache::ViewHandle {
        self.pin_server_duid(&d.network.id, found.mac);
        self.cache.upsert(d.network.clone(), &d.own_port_id)
    }

    fn adopted(
        &self,
        d: &DesiredNetwork,
        found: RecordedPlumbing,
        r: Result<DhcpServer, ServerError>,
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
                        verified: false,
                    },
                );
                true
            }
            Err(e) => {
                tracing::info!(error = %e, "cannot reuse the previous run's plumbing; configuring it");
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
        let served = self.served().remove(network_id);
        let mut port_id = served
            .as_ref()
            .map(|s| s.plan.port_id.clone())
            .or_else(|| self.cache.own_port_id(network_id))
            .or_else(|| self.recorded_port_prefix(network_id));
        let counters = match served {
            Some(s) => {
                let counts = (s.server.counters.clone(), s.server.counters6.clone());
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
            return;
        }
        self.forget(network_id);
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
        let servers: Vec<Served> = self.served().drain().map(|(_, s)| s).collect();
        let networks = servers.len();
        tracing::info!(
            networks,
            "shutting down: namespaces and devices are left for the next start"
        );
        let sockets =
            futures_util::future::join_all(servers.into_iter().map(|s| s.server.release())).await;
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
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
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
    fn recorded_port_prefix(&self, network_id: &str) -> Option<String> {
        let ifname =
            std::fs::read_to_string(self.state_dir.join(network_id).join(INTERFACE_FILE)).ok()?;
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
    fn pin_server_duid(&self, network_id: &str, mac: MacAddr) {
        let dir = self.state_dir.join(network_id);
        match load_or_create_duid(&dir, mac) {
            Ok(duid) => self.cache.pin_server_duid(network_id, duid),
            Err(e) => {
                tracing::warn!(%network_id, dir = %dir.display(), error = %e, "cannot persist the DHCPv6 server DUID; using one derived from the port MAC")
            }
        }
    }

    /// Records the served network, its device and the plan it was plumbed for.
    fn remember(&self, network_id: &str, ifname: &str, fingerprint: &str) {
        let dir = self.state_dir.join(network_id);
        let res = std::fs::create_dir_all(&dir).and_then(|()| {
            write_if_changed(&dir.join(INTERFACE_FILE), ifname)?;
            write_if_changed(&dir.join(PLUMBING_FILE), fingerprint)
        });
        if let Err(e) = res {
            tracing::warn!(%network_id, dir = %dir.display(), error = %e, "cannot record served network");
        }
    }

    fn forget(&self, network_id: &str) {
        let dir = self.state_dir.join(network_id);
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

/// `oslo_utils.uuidutils.is_uuid_like`, as the Python agent filters `dhcp_confs` entries:
/// 32 hex digits, optionally hyphenated 8-4-4-4-12.
pub fn is_uuid_like(s: &str) -> bool {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return false;
    }
    if s.contains('-') {
        let groups: Vec<usize> = s.split('-').map(str::len).collect();
        return groups == [8, 4, 4, 4, 12];
    }
    true
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
}

const DUID_FILE: &str = "duid";

/// Reads the persisted DUID-LL (`00:03:00:01:<mac>`, dnsmasq's lease-file notation), or derives
/// one from `mac` and writes it. A damaged file is replaced rather than trusted.
fn load_or_create_duid(dir: &Path, mac: MacAddr) -> std::io::Result<[u8; 10]> {
    let path = dir.join(DUID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes: Option<Vec<u8>> = text
            .trim()
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).ok())
            .collect();
        match bytes.map(<[u8; 10]>::try_from) {
            Some(Ok(duid)) if duid.starts_with(&[0, 3, 0, 1]) => return Ok(duid),
            _ => tracing::warn!(file = %path.display(), "ignoring malformed DUID file"),
        }
    }
    let mut duid = [0, 3, 0, 1, 0, 0, 0, 0, 0, 0];
    duid[4..].copy_from_slice(&mac.0);
    let text: Vec<String> = duid.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(dir)?;
    std::fs::write(&path, text.join(":") + "\n")?;
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
        assert_eq!(first, [0, 3, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!(
            std::fs::read_to_string(net.join(DUID_FILE)).unwrap(),
            "00:03:00:01:fa:16:3e:00:00:01\n"
        );
        // A new DHCP port (new MAC) keeps the persisted identity.
        assert_eq!(load_or_create_duid(&net, b).unwrap(), first);
        std::fs::write(net.join(DUID_FILE), "garbage").unwrap();
        assert_eq!(
            load_or_create_duid(&net, b).unwrap(),
            [0, 3, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 2]
        );
    }
}
