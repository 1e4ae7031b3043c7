//! Neutron control plane: this is what makes the process behave like Neutron's
//! `DhcpAgentWithStateReport` (reference §1, §3, §6–§8).
//!
//! ```text
//!  transport ──TransportEvent──▶ Listener: parse cast, drop stale/irrelevant ports,
//!                                 └─▶ per-network queue (priority order) ─▶ Worker task
//!                                       (one per busy network; networks run in parallel)
//!  Resyncer      ── sync_state: get_active_networks_info ─▶ queue Sync/Teardown per network
//!  Heartbeat     ── report_state every report_interval (own task)
//!  ReadyReporter ── dhcp_ready_on_ports, ≤64 ids per call, woken as soon as ports are served
//! ```
//!
//! Each long-lived task is a struct with a `run` method in the file of its job:
//! [`listener::Listener`], [`worker::Worker`] (the handlers it runs are in `handle`, the
//! staleness of synced data in `touched`), [`sync::Resyncer`], [`heartbeat::Heartbeat`],
//! [`ready::ReadyReporter`]. [`NeutronAgent::start`] only builds them and spawns them.
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
mod handle;
pub mod heartbeat;
pub mod listener;
pub mod plugin;
pub mod ports;
pub mod ready;
pub mod stale;
pub mod sync;
mod touched;
pub mod worker;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::agent::{is_uuid_like, Agent};
use crate::neutron::plugin::PluginApi;
use crate::rpc::transport::TransportEvent;

use self::events::NetQueue;
use self::heartbeat::Heartbeat;
use self::listener::Listener;
use self::ports::host_uuid;
use self::ready::{ReadyPorts, ReadyReporter};
use self::stale::DeletedPorts;
use self::sync::{Resync, Resyncer};
use self::touched::Touch;

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
        let resyncer = Resyncer {
            core: core.clone(),
            stop: stop_rx.clone(),
        };
        tasks.push(tokio::spawn(resyncer.run()));
        let reporter = ReadyReporter {
            ready: core.ready.clone(),
            plugin: core.plugin.clone(),
            stop: stop_rx.clone(),
        };
        tasks.push(tokio::spawn(reporter.run()));
        if let Some(interval) = core.settings.report_interval {
            let heartbeat = Heartbeat {
                template: core.settings.state.clone(),
                interval,
                plugin: core.plugin.clone(),
                cache: core.agent.cache().clone(),
                resync: core.resync.clone(),
                stop: stop_rx.clone(),
            };
            tasks.push(tokio::spawn(heartbeat.run()));
        } else {
            tracing::warn!("[AGENT] report_interval = 0: no state reports; neutron-server will consider this agent dead");
        }
        let listener = Listener {
            core: core.clone(),
            events,
            stop: stop_rx,
        };
        tasks.push(tokio::spawn(listener.run()));
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

    /// Whether we may hold resources for the network (so a teardown is due).
    fn holds(&self, network_id: &str) -> bool {
        self.agent.is_served(network_id)
            || self.agent.cache().get(network_id).is_some()
            || lock(&self.known).contains(network_id)
    }
}
