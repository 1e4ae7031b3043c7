//! Neutron control plane: this is what makes the process behave like Neutron's
//! `DhcpAgentWithStateReport` (reference §1, §3, §6–§8).
//!
//! ```text
//!  transport ──TransportEvent──▶ dispatch: parse cast, drop stale/irrelevant ports,
//!                                 └─▶ per-network queue (priority order) ─▶ processor task
//!                                       (one per busy network; networks run in parallel)
//!  resync loop ── sync_state: get_active_networks_info ─▶ queue Sync/Teardown per network
//!  heartbeat   ── report_state every report_interval (own task)
//!  ready loop  ── dhcp_ready_on_ports, ≤64 ids per call, woken as soon as ports are served
//! ```
//!
//! Handlers follow the Python agent (`enable_dhcp_helper`, `disable_dhcp_helper`,
//! `refresh_dhcp_helper`, `_port_create`, `reload_allocations`, `_port_delete`), with these
//! deliberate differences:
//! * events are processed from the start (no wait for the first state report) and never
//!   behind a global lock: a sync only queues per-network work;
//! * ports are reported ready per network as soon as it is served;
//! * a port event only swaps the network's view (no re-plumb) unless our own DHCP port
//!   changed;
//! * `new` from `report_state` triggers a full sync at once;
//! * synced data never resurrects a port deleted meanwhile, nor replaces a newer revision.

pub mod events;
pub mod heartbeat;
pub mod plugin;
pub mod ports;
pub mod ready;
pub mod stale;
pub mod sync;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::agent::DesiredNetwork;
use crate::agent::{is_uuid_like, Agent, Configured};
use crate::model::{Network, Port};
use crate::neutron::plugin::{NetworkInfo, PluginApi, PluginError};
use crate::rpc::oslo::{Context, IP_ADDRESS_GENERATION_FAILURE, NETWORK_NOT_FOUND};
use crate::rpc::transport::TransportEvent;

use self::events::{parse_cast, Event, NetQueue, Update, Work, SYNC_PRIORITY};
use self::ports::{host_uuid, PortError};
use self::ready::ReadyPorts;
use self::stale::{is_older_revision, DeletedPorts};
use self::sync::{Resync, SyncScope};

/// How long a change is remembered for the staleness check of synced data (longer than any
/// fetch can take, with neutron-lib's timeout back-off at its 600 s default cap).
const TOUCH_MAX_AGE: Duration = Duration::from_secs(1800);
/// How long shutdown waits for running handlers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What the Neutron mode needs besides the plugin and the agent.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `[DEFAULT] host`.
    pub host: String,
    pub resync_interval: Duration,
    pub resync_throttle: Duration,
    /// Networks plumbed in parallel by a sync.
    pub num_sync_threads: usize,
    /// `None`: no heartbeat (`report_interval = 0`).
    pub report_interval: Option<Duration>,
    pub state: heartbeat::StateTemplate,
}

/// See [`Core::touch`].
#[derive(Clone, Debug)]
struct Touch {
    at: Instant,
    /// Our DHCP port as last obtained through RPC (newer than any data fetched before `at`).
    own_port: Option<Port>,
}

#[derive(Default)]
struct Slot {
    queue: NetQueue,
    running: bool,
}

/// The shared state of the Neutron mode.
pub struct Core {
    settings: Settings,
    host_uuid: String,
    plugin: Arc<PluginApi>,
    agent: Arc<Agent>,
    resync: Arc<Resync>,
    ready: Arc<ReadyPorts>,
    deleted: Mutex<DeletedPorts>,
    /// Networks we may hold resources for: served, left by a previous run, or with a DHCP
    /// port we obtained. A sync tears down those not active any more.
    known: Mutex<BTreeSet<String>>,
    queues: Mutex<HashMap<String, Slot>>,
    /// When each network was last changed by something other than synced data (an event, a
    /// DHCP port we obtained): synced data fetched before that is stale.
    touched: Mutex<HashMap<String, Touch>>,
    seq: AtomicU64,
    sync_permits: Semaphore,
    stopping: AtomicBool,
    processors: AtomicUsize,
    /// Set once the first successful full sync has been applied (the networks served then):
    /// the agent's readiness (`READY=1` to systemd).
    first_sync: watch::Sender<Option<usize>>,
    first_sync_watched: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running Neutron mode.
pub struct NeutronAgent {
    core: Arc<Core>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl NeutronAgent {
    /// Starts the resync loop (with an immediate full sync), the ready-port sender, the
    /// heartbeat and the event loop.
    pub fn start(
        settings: Settings,
        plugin: Arc<PluginApi>,
        agent: Arc<Agent>,
        events: mpsc::Receiver<TransportEvent>,
    ) -> NeutronAgent {
        // Networks a previous run served: torn down by the first sync unless still ours
        // (`_populate_networks_cache`).
        let leftovers: BTreeSet<String> = agent
            .recorded_networks()
            .into_iter()
            .filter(|id| is_uuid_like(id))
            .collect();
        if !leftovers.is_empty() {
            tracing::info!(networks = ?leftovers, "found networks served by a previous run");
        }
        let core = Arc::new(Core {
            host_uuid: host_uuid(&settings.host),
            sync_permits: Semaphore::new(settings.num_sync_threads.max(1)),
            settings,
            plugin,
            agent,
            resync: Arc::new(Resync::default()),
            ready: Arc::new(ReadyPorts::default()),
            deleted: Mutex::new(DeletedPorts::default()),
            known: Mutex::new(leftovers),
            queues: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            processors: AtomicUsize::new(0),
            first_sync: watch::channel(None).0,
            first_sync_watched: AtomicBool::new(false),
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        core.resync.schedule_now("initial sync", None);
        {
            let core = core.clone();
            let stop_rx = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let resync = core.resync.clone();
                let (interval, throttle) =
                    (core.settings.resync_interval, core.settings.resync_throttle);
                sync::run(
                    &resync,
                    interval,
                    throttle,
                    |scope| {
                        let core = core.clone();
                        async move { core.sync_state(scope).await }
                    },
                    stop_rx,
                )
                .await
            }));
        }
        tasks.push(tokio::spawn(ready::run(
            core.ready.clone(),
            core.plugin.clone(),
            stop_rx.clone(),
        )));
        if let Some(interval) = core.settings.report_interval {
            tasks.push(tokio::spawn(heartbeat::run(
                core.settings.state.clone(),
                interval,
                core.plugin.clone(),
                core.agent.cache().clone(),
                core.resync.clone(),
                stop_rx.clone(),
            )));
        } else {
            tracing::warn!("[AGENT] report_interval = 0: no state reports; neutron-server will consider this agent dead");
        }
        {
            let core = core.clone();
            let mut stop_rx = stop_rx;
            let mut events = events;
            tasks.push(tokio::spawn(async move {
                loop {
                    let ev = tokio::select! {
                        ev = events.recv() => ev,
                        _ = stop_rx.changed() => return,
                    };
                    match ev {
                        Some(TransportEvent::Cast {
                            method,
                            args,
                            context,
                        }) => core.dispatch(&method, &args, &context),
                        Some(TransportEvent::Reconnected) => {
                            tracing::info!("reconnected to the message broker: scheduling a full sync (casts may have been lost)");
                            core.resync.schedule("reconnected to the message broker", None);
                        }
                        None => {
                            tracing::info!("the transport stopped delivering events");
                            return;
                        }
                    }
                }
            }));
        }
        NeutronAgent { core, stop, tasks }
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Completes once the first successful full sync has been applied: every network it
    /// fetched configured (or failed) and every stale one torn down. Yields the number of
    /// networks served then.
    pub fn first_sync_done(&self) -> impl std::future::Future<Output = usize> + 'static {
        let mut rx = self.core.first_sync.subscribe();
        async move {
            loop {
                if let Some(n) = *rx.borrow_and_update() {
                    return n;
                }
                if rx.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }

    /// The resync scheduler, for its counters (the status endpoint).
    pub fn resync(&self) -> Arc<Resync> {
        self.core.resync.clone()
    }

    /// Schedules a full sync (e.g. on SIGHUP).
    pub fn resync_all(&self, reason: &str) {
        self.core.resync.schedule(reason, None);
    }

    /// Stops every task and waits (bounded) for running handlers; the served networks stay as
    /// they are (the caller decides whether to tear them down).
    pub async fn shutdown(self) {
        self.core.stopping.store(true, Ordering::SeqCst);
        let _ = self.stop.send(true);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        for mut t in self.tasks {
            // The loops return on the stop signal; bounded anyway, so that a stuck call can
            // never keep the process from exiting on SIGTERM.
            let joined = tokio::time::timeout_at(deadline.into(), &mut t).await;
            match joined {
                Ok(Err(e)) if e.is_panic() => tracing::error!("a Neutron agent task panicked"),
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!("a Neutron agent task did not stop in time; aborting it");
                    t.abort();
                }
            }
        }
        while self.core.processors.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                tracing::warn!("shutting down with network updates still running");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Core {
    /// `dhcp<uuid5(host)>-<network_id>`.
    pub fn device_id(&self, network_id: &str) -> String {
        format!("dhcp{}-{network_id}", self.host_uuid)
    }

    fn schedule_resync(&self, reason: impl Into<String>, network_id: &str) {
        self.resync.schedule(reason, Some(network_id));
    }

    /// Entry point for a cast (runs on the event loop: must not block).
    pub fn dispatch(self: &Arc<Self>, method: &str, args: &serde_json::Value, ctx: &Context) {
        let request_id = ctx.request_id().unwrap_or("");
        let cast = match parse_cast(method, args) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%method, request_id, error = %e, "dropping a cast that cannot be handled");
                return;
            }
        };
        tracing::debug!(%method, request_id, priority = cast.priority, network_id = cast.event.network_id().unwrap_or(""), "cast received");
        // Ids become names on this host: anything but a Neutron UUID is refused here, before
        // it is queued, looked up or logged as a network of ours.
        if let Some(bad) = invalid_id(&cast.event) {
            tracing::error!(%method, request_id, error = %bad, "refusing a cast with an id that is not a UUID");
            return;
        }
        match &cast.event {
            Event::AgentUpdated { admin_state_up } => {
                tracing::info!(
                    ?admin_state_up,
                    request_id,
                    "agent updated by the admin: scheduling a full sync"
                );
                self.resync
                    .schedule(format!("Agent updated: {admin_state_up:?}"), None);
                return;
            }
            Event::PortCreate(p) | Event::PortUpdate(p) => {
                if !self.port_needs_configuration(&p.network_id, &p.port) {
                    tracing::debug!(%method, port_id = %p.port.id, device_owner = %p.port.device_owner, "port needs no DHCP configuration; ignored");
                    return;
                }
                if matches!(cast.event, Event::PortUpdate(_))
                    && self.is_port_message_stale(&p.network_id, &p.port)
                {
                    tracing::debug!(port_id = %p.port.id, revision = ?p.port.revision_number, "discarding stale port update");
                    return;
                }
            }
            _ => {}
        }
        let network_id = match (&cast.event, cast.event.network_id()) {
            (_, Some(n)) => n.to_owned(),
            (Event::SubnetDelete { subnet_id, .. }, None) => {
                match self.network_of_subnet(subnet_id) {
                    Some(n) => n,
                    None => {
                        tracing::debug!(%subnet_id, "subnet_delete_end for a subnet we do not serve");
                        return;
                    }
                }
            }
            _ => return,
        };
        self.submit(network_id, cast.priority, Work::Event(cast.event));
    }

    /// `port_requires_dhcp_configuration`, except that our own DHCP port always gets through
    /// (its changes re-plumb or resync the network).
    fn port_needs_configuration(&self, network_id: &str, port: &Port) -> bool {
        port.wants_dhcp() || port.device_id == self.device_id(network_id)
    }

    fn is_port_message_stale(&self, network_id: &str, port: &Port) -> bool {
        if lock(&self.deleted).contains(&port.id, Instant::now()) {
            return true;
        }
        let cached = self.agent.cache().get(network_id);
        let cached_rev = cached
            .as_ref()
            .and_then(|n| n.port(&port.id))
            .and_then(|p| p.revision_number);
        is_older_revision(cached_rev, port.revision_number)
    }

    fn network_of_subnet(&self, subnet_id: &str) -> Option<String> {
        let cache = self.agent.cache();
        cache
            .network_ids()
            .into_iter()
            .find(|id| cache.get(id).is_some_and(|n| n.subnet(subnet_id).is_some()))
    }

    /// Queues work for a network and makes sure a processor runs for it.
    fn submit(self: &Arc<Self>, network_id: String, priority: i64, work: Work) {
        let update = Update {
            seq: self.seq.fetch_add(1, Ordering::SeqCst),
            priority,
            work,
            received: Instant::now(),
        };
        let spawn = {
            let mut queues = lock(&self.queues);
            let slot = queues.entry(network_id.clone()).or_default();
            slot.queue.push(update);
            !std::mem::replace(&mut slot.running, true)
        };
        if spawn {
            self.processors.fetch_add(1, Ordering::SeqCst);
            let core = self.clone();
            tokio::spawn(async move {
                core.process(network_id).await;
                core.processors.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }

    /// Applies a network's updates one at a time until its queue is empty.
    async fn process(self: &Arc<Self>, network_id: String) {
        loop {
            let next = {
                let mut queues = lock(&self.queues);
                let Some(slot) = queues.get_mut(&network_id) else {
                    return;
                };
                if self.stopping.load(Ordering::SeqCst) {
                    slot.running = false;
                    return;
                }
                match slot.queue.pop() {
                    Some(u) => u,
                    None => {
                        queues.remove(&network_id);
                        return;
                    }
                }
            };
            let span = tracing::info_span!(
                "update",
                network_id = %network_id,
                work = next.work.name(),
                priority = next.priority,
                seq = next.seq,
            );
            let waited = next.received.elapsed();
            let (received, is_event) = (next.received, matches!(next.work, Work::Event(_)));
            let core = self.clone();
            let id = network_id.clone();
            let handled = tokio::spawn(
                async move {
                    tracing::debug!(queued_for = ?waited, "processing");
                    core.handle(&id, next.work).await
                }
                .instrument(span),
            )
            .await;
            match handled {
                Ok(()) if is_event => self
                    .agent
                    .record_event(crate::agent::EventSource::Rpc, received.elapsed()),
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(network_id = %network_id, error = %e, "network update handler failed; scheduling a resync");
                    self.schedule_resync("update handler failed", &network_id);
                }
            }
        }
    }

    async fn handle(self: &Arc<Self>, network_id: &str, work: Work) {
        match work {
            Work::Sync { info, fetched_at } => {
                if self.stale_for_served(network_id, fetched_at) {
                    return;
                }
                // Bound the expensive part (new plumbing) like num_sync_threads does; networks
                // already served usually only need a view swap.
                let _permit = if self.agent.is_served(network_id) {
                    None
                } else {
                    self.sync_permits.acquire().await.ok()
                };
                self.configure_network(info, fetched_at).await;
            }
            Work::Teardown { fetched_at } => {
                if self.is_stale(network_id, fetched_at) {
                    tracing::info!("the sync's data predates changes applied since; refetching instead of tearing down");
                    self.schedule_resync("teardown decided on stale data", network_id);
                    return;
                }
                self.disable_network(network_id, "no longer hosted by this agent")
                    .await
            }
            Work::Event(ev) => {
                self.touch(network_id, None);
                self.handle_event(network_id, ev).await
            }
        }
    }

    async fn handle_event(self: &Arc<Self>, network_id: &str, ev: Event) {
        match ev {
            Event::NetworkCreate { .. } => self.enable_network(network_id).await,
            Event::NetworkUpdate {
                admin_state_up: true,
                ..
            } => self.enable_network(network_id).await,
            Event::NetworkUpdate {
                admin_state_up: false,
                ..
            } => self.disable_network(network_id, "network admin down").await,
            Event::NetworkDelete { .. } => {
                self.disable_network(network_id, "network deleted or removed from this agent")
                    .await
            }
            Event::SubnetUpdate { .. } => self.refresh_network(network_id).await,
            Event::SubnetDelete { subnet_id, .. } => {
                let ours = self
                    .agent
                    .cache()
                    .get(network_id)
                    .is_some_and(|n| n.subnet(&subnet_id).is_some());
                if ours {
                    self.refresh_network(network_id).await;
                } else {
                    tracing::debug!(%subnet_id, "deleted subnet is not on a network we serve");
                }
            }
            Event::PortCreate(p) => self.port_create(network_id, p.port).await,
            Event::PortUpdate(p) => self.port_update(network_id, p.port).await,
            Event::PortDelete { port_id, .. } => self.port_delete(network_id, &port_id).await,
            Event::AgentUpdated { .. } => {}
        }
    }

    /// A failed plugin call for a network (`call_driver`'s error handling): resync unless the
    /// server ran out of IPs; `NetworkNotFound` is expected when a network goes away.
    fn plugin_failed(&self, network_id: &str, what: &str, e: &PluginError) {
        if !e.is_remote(IP_ADDRESS_GENERATION_FAILURE) {
            self.schedule_resync(format!("{what}: {e}"), network_id);
        }
        if e.is_remote(NETWORK_NOT_FOUND) {
            tracing::debug!(error = %e, "network has been removed from the agent or deleted; cannot {what}");
        } else {
            tracing::error!(error = %e, "cannot {what}");
        }
    }

    /// `enable_dhcp_helper`: fetch and configure.
    async fn enable_network(self: &Arc<Self>, network_id: &str) {
        let fetched_at = Instant::now();
        match self.plugin.get_network_info(network_id).await {
            Err(e) => self.plugin_failed(network_id, "get the network's info", &e),
            Ok(None) => tracing::debug!("network has been deleted"),
            Ok(Some(info)) => self.configure_network(info, fetched_at).await,
        }
    }

    /// `refresh_dhcp_helper`: re-fetch a served network after a subnet change.
    async fn refresh_network(self: &Arc<Self>, network_id: &str) {
        if self.agent.cache().get(network_id).is_none() {
            return self.enable_network(network_id).await;
        }
        let fetched_at = Instant::now();
        match self.plugin.get_network_info(network_id).await {
            Err(e) => self.plugin_failed(network_id, "get the network's info", &e),
            Ok(None) => tracing::debug!("network has been deleted"),
            Ok(Some(info)) => {
                if !info.network.subnets.iter().any(|s| s.enable_dhcp) {
                    self.disable_network(network_id, "no DHCP-enabled subnet left")
                        .await;
                } else {
                    self.configure_network(info, fetched_at).await;
                }
            }
        }
    }

    /// `configure_dhcp_for_network`: our DHCP port, then plumbing and serving; then every port
    /// of the network is reported ready. `fetched_at`: when `info` was requested.
    async fn configure_network(self: &Arc<Self>, info: NetworkInfo, fetched_at: Instant) {
        let mut info = info;
        // Refused before anything is asked of neutron-server or changed on the host; a bad VM
        // port is refused alone.
        match info.network.validate() {
            Ok((_, refused)) => {
                for e in refused {
                    tracing::error!(error = %e, "refusing a port neutron-server sent");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "refusing a network neutron-server sent; it keeps its running configuration, if any");
                return;
            }
        }
        let network_id = info.network.id.clone();
        if !info.network.admin_state_up {
            tracing::debug!("network is admin down; not configuring it");
            return;
        }
        if !info.network.subnets.iter().any(|s| s.enable_dhcp) {
            if self.holds(&network_id) {
                self.disable_network(&network_id, "no DHCP-enabled subnet")
                    .await;
            }
            return;
        }
        if info.has_segments {
            tracing::debug!("routed network: served as one instance with its local subnets");
        }
        let device_id = self.device_id(&network_id);
        let stale = self.is_stale(&network_id, fetched_at);
        if stale {
            // Not served (else the data would have been dropped): it may still lack a DHCP port
            // we obtained after it was fetched; never create a second one.
            let own = lock(&self.touched)
                .get(&network_id)
                .and_then(|t| t.own_port.clone());
            if let Some(own) = own {
                if !info.network.ports.iter().any(|p| p.device_id == device_id) {
                    upsert_port(&mut info.network, own);
                }
            }
        }
        let (port, source) = match ports::setup_dhcp_port(&self.plugin, &info, &device_id).await {
            Ok(p) => p,
            Err(PortError::Conflict { .. }) => {
                // No resync (neutron): an event about the network's state will follow.
                tracing::warn!(
                    "cannot set up our DHCP port: conflict with the network's current state"
                );
                return;
            }
            Err(e @ PortError::SubnetMismatch { .. }) => {
                tracing::warn!(error = %e, "error configuring our DHCP port; scheduling a resync");
                self.schedule_resync(e.to_string(), &network_id);
                return;
            }
            Err(PortError::Plugin(e)) => {
                self.plugin_failed(&network_id, "set up our DHCP port", &e);
                return;
            }
        };
        lock(&self.known).insert(network_id.clone());
        if source != ports::PortSource::Existing {
            self.touch(&network_id, Some(port.clone()));
        }
        let mut network = info.network;
        self.keep_newer_ports(&mut network);
        upsert_port(&mut network, port.clone());
        let port_ids: Vec<String> = network.ports.iter().map(|p| p.id.clone()).collect();
        let started = Instant::now();
        let desired = DesiredNetwork {
            network,
            own_port_id: port.id.clone(),
        };
        // After a restart: answer on the plumbing the previous run left for this very plan
        // while `configure` verifies it.
        self.agent.adopt(&desired).await;
        match self.agent.configure(&desired).await {
            Ok(Configured::NotServed) => {}
            Ok(outcome) => {
                tracing::info!(?outcome, dhcp_port = %port.id, port_source = ?source, took = ?started.elapsed(), "network configured");
                self.ready.add_normal(port_ids);
                if stale {
                    tracing::info!(
                        "events arrived while the network was being configured; resyncing it"
                    );
                    self.schedule_resync("events arrived during configuration", &network_id);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot serve network; scheduling a resync");
                self.schedule_resync(e.to_string(), &network_id);
            }
        }
    }

    /// Records a change of the network not coming from synced data: an event being applied
    /// (or dropped because the network is not served yet), or our DHCP port obtained via RPC.
    fn touch(&self, network_id: &str, own_port: Option<Port>) {
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
    fn is_stale(&self, network_id: &str, fetched_at: Instant) -> bool {
        lock(&self.touched)
            .get(network_id)
            .is_some_and(|t| t.at >= fetched_at)
    }

    /// Synced data older than the served state is not applied (it could undo events or make
    /// a second DHCP port); the network is refetched instead.
    fn stale_for_served(&self, network_id: &str, fetched_at: Instant) -> bool {
        if self.agent.is_served(network_id) && self.is_stale(network_id, fetched_at) {
            tracing::info!(
                "the sync's data predates changes applied since; refetching the network"
            );
            self.schedule_resync("synced data was stale", network_id);
            return true;
        }
        false
    }

    /// Whether we may hold resources for the network (so a teardown is due).
    fn holds(&self, network_id: &str) -> bool {
        self.agent.is_served(network_id)
            || self.agent.cache().get(network_id).is_some()
            || lock(&self.known).contains(network_id)
    }

    /// Fetched data may predate events already applied: never resurrect a port deleted
    /// meanwhile, never replace a port by an older revision of itself.
    fn keep_newer_ports(&self, network: &mut Network) {
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

    /// `disable_dhcp_helper`: stop serving, remove the plumbing, release our DHCP port. Does
    /// nothing for a network we never held (fanout deletes reach every agent).
    async fn disable_network(self: &Arc<Self>, network_id: &str, why: &str) {
        if let Some(t) = lock(&self.touched).get_mut(network_id) {
            t.own_port = None;
        }
        if !self.holds(network_id) {
            tracing::debug!(
                reason = why,
                "not a network of this agent; nothing to disable"
            );
            return;
        }
        tracing::info!(reason = why, "disabling DHCP for network");
        self.agent.disable(network_id).await;
        let device_id = self.device_id(network_id);
        match self.plugin.release_dhcp_port(network_id, &device_id).await {
            Ok(()) => {
                lock(&self.known).remove(network_id);
                tracing::info!(%device_id, "released our DHCP port");
            }
            Err(e) => {
                // Still known: the next sync tears it down (and releases) again.
                tracing::error!(error = %e, "cannot release our DHCP port; scheduling a resync");
                self.schedule_resync(format!("release_dhcp_port: {e}"), network_id);
            }
        }
    }

    /// `_port_create`: duplicate-IP check, then `reload_allocations`.
    async fn port_create(self: &Arc<Self>, network_id: &str, port: Port) {
        let Some(net) = self.agent.cache().get(network_id) else {
            tracing::debug!(port_id = %port.id, "port on a network we do not serve; ignored");
            return;
        };
        if let Err(e) = net.check_port(&port) {
            tracing::error!(error = %e, "refusing a port neutron-server sent");
            return;
        }
        let new_ips: HashSet<IpAddr> = port.fixed_ips.iter().map(|f| f.ip_address).collect();
        if let Some(dup) = net.ports.iter().find(|c| {
            (c.id != port.id || c.mac_address != port.mac_address)
                && c.fixed_ips.iter().any(|f| new_ips.contains(&f.ip_address))
        }) {
            let reason = format!(
                "Duplicate IP addresses found, port in cache: {}, created port: {}. DHCP cache is out of sync",
                dup.id, port.id
            );
            tracing::warn!(%reason, "scheduling a resync of the network");
            self.schedule_resync(reason, network_id);
            return;
        }
        self.reload_allocations(network_id, &net, port).await;
    }

    /// `_port_update`.
    async fn port_update(self: &Arc<Self>, network_id: &str, port: Port) {
        if self.is_port_message_stale(network_id, &port) {
            tracing::debug!(port_id = %port.id, "discarding stale port update");
            return;
        }
        let Some(net) = self.agent.cache().get(network_id) else {
            tracing::debug!(port_id = %port.id, "port on a network we do not serve; ignored");
            return;
        };
        if let Err(e) = net.check_port(&port) {
            tracing::error!(error = %e, "refusing a port update neutron-server sent; the port keeps its running configuration");
            return;
        }
        self.reload_allocations(network_id, &net, port).await;
    }

    /// `reload_allocations(port, network, prio=True)`: the payload replaces the cached port and
    /// the view is swapped. Our own DHCP port: subnets changed → resync the network; IPs
    /// changed → re-plumb (the plan differs).
    async fn reload_allocations(self: &Arc<Self>, network_id: &str, net: &Network, port: Port) {
        let Some(own_port_id) = self.agent.cache().own_port_id(network_id) else {
            return;
        };
        if port.device_id == self.device_id(network_id) {
            let subnets = |p: Option<&Port>| -> BTreeSet<String> {
                p.map(|p| p.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect())
                    .unwrap_or_default()
            };
            if port.id != own_port_id || subnets(net.port(&port.id)) != subnets(Some(&port)) {
                tracing::info!(port_id = %port.id, "our DHCP port was modified; scheduling a resync");
                self.schedule_resync("Agent port was modified", network_id);
                return;
            }
        }
        let port_id = port.id.clone();
        let mut network = net.clone();
        upsert_port(&mut network, port);
        match self
            .agent
            .configure(&DesiredNetwork {
                network,
                own_port_id,
            })
            .await
        {
            Ok(Configured::NotServed) => {}
            Ok(outcome) => {
                tracing::debug!(?outcome, %port_id, "port applied");
                self.ready.add_prio([port_id]);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot apply port; scheduling a resync");
                self.schedule_resync(e.to_string(), network_id);
            }
        }
    }

    /// `_port_delete`.
    async fn port_delete(self: &Arc<Self>, network_id: &str, port_id: &str) {
        lock(&self.deleted).add(port_id, Instant::now());
        self.ready.discard(&HashSet::from([port_id.to_owned()]));
        let Some(net) = self.agent.cache().get(network_id) else {
            tracing::debug!(%port_id, "deleted port is on a network we do not serve");
            return;
        };
        let Some(port) = net.port(port_id) else {
            tracing::debug!(%port_id, "deleted port is unknown; nothing to remove");
            return;
        };
        let own = self.agent.cache().own_port_id(network_id).as_deref() == Some(port_id)
            || port.device_id == self.device_id(network_id);
        if own {
            tracing::warn!(%port_id, "our DHCP port was deleted: disabling the network and resyncing it");
            self.disable_network(network_id, "our DHCP port was deleted")
                .await;
            self.schedule_resync("Agent port was deleted", network_id);
            return;
        }
        let mut network = (*net).clone();
        network.ports.retain(|p| p.id != port_id);
        let own_port_id = self
            .agent
            .cache()
            .own_port_id(network_id)
            .unwrap_or_default();
        match self
            .agent
            .configure(&DesiredNetwork {
                network,
                own_port_id,
            })
            .await
        {
            Ok(outcome) => tracing::debug!(?outcome, %port_id, "port removed"),
            Err(e) => {
                tracing::error!(error = %e, "cannot remove port; scheduling a resync");
                self.schedule_resync(e.to_string(), network_id);
            }
        }
    }

    /// `sync_state(networks)`: fetch the active networks, queue a teardown for every network
    /// we hold that is not active, and a configuration for every active one in scope (all of
    /// them for a full sync, plus any we do not hold yet).
    pub async fn sync_state(self: &Arc<Self>, scope: SyncScope) {
        let span = tracing::info_span!("sync_state", scope = ?scope);
        async {
            tracing::info!("synchronizing state");
            let fetched_at = Instant::now();
            let active = match self.plugin.get_active_networks_info().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "unable to sync network state; will retry");
                    match &scope {
                        SyncScope::All => self.resync.schedule(e.to_string(), None),
                        SyncScope::Networks(ids) => {
                            for id in ids {
                                self.schedule_resync(e.to_string(), id);
                            }
                        }
                    }
                    return;
                }
            };
            let mut active_ids = BTreeSet::new();
            let mut infos = Vec::new();
            for r in active {
                match r {
                    Ok(info) => {
                        active_ids.insert(info.network.id.clone());
                        infos.push(info);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "ignoring a network neutron-server sent that cannot be parsed");
                        // Still active: not torn down for a typo (only a UUID can be ours).
                        if is_uuid_like(&e.network) {
                            active_ids.insert(e.network.clone());
                        }
                    }
                }
            }
            let mut held: BTreeSet<String> = lock(&self.known).clone();
            held.extend(self.agent.cache().network_ids());
            let mut removed = 0;
            for id in held.difference(&active_ids) {
                self.submit(id.clone(), SYNC_PRIORITY, Work::Teardown { fetched_at });
                removed += 1;
            }
            let mut queued = 0;
            for info in infos {
                let id = info.network.id.clone();
                if scope.includes(&id) || !held.contains(&id) {
                    self.submit(id, SYNC_PRIORITY, Work::Sync { info, fetched_at });
                    queued += 1;
                }
            }
            tracing::info!(
                active = active_ids.len(),
                to_configure = queued,
                to_remove = removed,
                "all active networks fetched; per-network work queued"
            );
            if matches!(scope, SyncScope::All)
                && !self.first_sync_watched.swap(true, Ordering::SeqCst)
            {
                self.watch_first_sync(held.union(&active_ids).cloned().collect());
            }
            // The parsed reply of a full sync (every network's JSON) has been freed.
            drop(tokio::task::spawn_blocking(
                crate::memory::release_free_memory,
            ));
        }
        .instrument(span)
        .await
    }
}

impl Core {
    /// Marks the first full sync done once none of its networks has work queued or running
    /// (a processor removes a network's slot when its queue is empty). Polled: it happens once.
    fn watch_first_sync(self: &Arc<Self>, networks: Vec<String>) {
        let core = self.clone();
        tokio::spawn(async move {
            loop {
                let busy = {
                    let queues = lock(&core.queues);
                    networks.iter().any(|id| queues.contains_key(id))
                };
                if !busy || core.stopping.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let served = core.agent.cache().network_ids().len();
            tracing::info!(networks = served, "first full sync applied");
            core.first_sync.send_replace(Some(served));
        });
    }
}

/// `NetworkCache.put_port`: replaces the port with the same id, or appends it.
fn upsert_port(network: &mut Network, port: Port) {
    match network.ports.iter_mut().find(|p| p.id == port.id) {
        Some(p) => *p = Arc::new(port),
        None => network.ports.push(Arc::new(port)),
    }
}

/// The first id of an event that is not a Neutron UUID (network, subnet or port).
fn invalid_id(event: &Event) -> Option<crate::model::InvalidId> {
    let bad = |kind: &'static str, id: &str| {
        (!is_uuid_like(id)).then(|| crate::model::InvalidId {
            kind,
            id: id.to_owned(),
        })
    };
    if let Some(id) = event.network_id() {
        if let Some(e) = bad("network", id) {
            return Some(e);
        }
    }
    match event {
        Event::PortCreate(p) | Event::PortUpdate(p) => bad("port", &p.port.id),
        Event::PortDelete { port_id, .. } => bad("port", port_id),
        Event::SubnetDelete { subnet_id, .. } => bad("subnet", subnet_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn upsert_port_replaces_or_appends() {
        let mut n = Network::from_json(&json!({"id": "n", "ports": [
            {"id": "a", "mac_address": "fa:16:3e:00:00:01", "revision_number": 1}]}))
        .unwrap();
        let (mut a2, _) = crate::neutron::plugin::parse_port(
            &json!({"id": "a", "mac_address": "fa:16:3e:00:00:02", "revision_number": 2}),
        )
        .unwrap();
        upsert_port(&mut n, a2.clone());
        assert_eq!(n.ports.len(), 1);
        assert_eq!(n.ports[0].revision_number, Some(2));
        a2.id = "b".into();
        upsert_port(&mut n, a2);
        assert_eq!(n.ports.len(), 2);
    }

    #[test]
    fn casts_with_ids_that_are_not_uuids_are_refused() {
        let net = "6f1a5d2e-9c3b-4e7a-8d21-3b5c7e9f0a11";
        let ok = parse_cast(
            "network_delete_end",
            &json!({"payload": {"network_id": net}}),
        )
        .unwrap();
        assert!(invalid_id(&ok.event).is_none());
        for bad in ["..", "x/../../y", "n1"] {
            let c = parse_cast(
                "network_delete_end",
                &json!({"payload": {"network_id": bad}}),
            )
            .unwrap();
            assert_eq!(invalid_id(&c.event).unwrap().id, bad);
            let c = parse_cast(
                "port_delete_end",
                &json!({"payload": {"network_id": net, "port_id": bad}}),
            )
            .unwrap();
            assert_eq!(invalid_id(&c.event).unwrap().kind, "port");
        }
    }
}
