//! The status endpoint: what a running agent serves, how it is doing, and (`explain`) what it
//! would answer a given client — the questions an operator used to answer from dnsmasq's host
//! and opts files and its log.
//!
//! Off by default; `[agent] status_listen = HOST:PORT` turns it on, in the root namespace. One
//! HTTP/1.1 listener ([`http`]) serves `/metrics` ([`metrics`], Prometheus/OpenMetrics text),
//! `/healthz`, `/readyz`, `/v1/status`, `/v1/networks[/<id>]` ([`networks`]) and `/v1/explain`
//! ([`explain`]); [`cli`] is the client behind `neutron-dhcp-agent status|networks|explain`.
//!
//! Nothing here is on the DHCP hot path: the DHCP threads only bump relaxed atomics
//! ([`crate::dhcp::server::Counters`]) that a scrape reads.

pub mod cli;
pub mod explain;
pub mod explain6;
pub mod http;
pub mod metrics;
pub mod networks;
pub mod query;
pub mod rpc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::agent::Agent;

/// How the agent is driven, for readiness and the status summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Serving a networks file.
    Standalone,
    /// Driven by neutron-server over the message broker.
    Rpc,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Standalone => "standalone",
            Mode::Rpc => "rpc",
        }
    }
}

/// The main loop counts as stuck when it has not come round for this long (the packaged
/// unit's `WatchdogSec`).
pub const STUCK_AFTER: Duration = Duration::from_secs(30);

/// How often the main loop ticks at least, when nothing else wakes it, while the endpoint is
/// on (the standalone loop wakes every second anyway).
pub const TICK_EVERY: Duration = Duration::from_secs(5);

/// Starts the endpoint when `[agent] status_listen` is set: binds now (a wrong address stops
/// the start), serves on the runtime from then on. The caller ticks it from its main loop and
/// marks it synced where it tells the service manager `READY=1`.
pub async fn start(
    listen: Option<std::net::SocketAddr>,
    agent: Arc<Agent>,
    mode: Mode,
) -> Result<Option<Arc<Status>>, http::HttpError> {
    let Some(addr) = listen else {
        return Ok(None);
    };
    let listener = http::bind(addr).await?;
    let status = Status::new(agent, mode);
    status.tick();
    drop(http::spawn(listener, status.clone()));
    Ok(Some(status))
}

/// Tells whether the message broker is connected (RPC mode).
pub type BrokerProbe = Box<dyn Fn() -> bool + Send + Sync>;

/// What the endpoint reads: the agent, and the few facts only the main loop knows.
pub struct Status {
    agent: Arc<Agent>,
    mode: Mode,
    started: Instant,
    /// Milliseconds since `started` at the main loop's last round.
    last_tick_ms: AtomicU64,
    /// The same readiness the service manager is told (`READY=1`): the initial apply of the
    /// networks file, or the first full sync with neutron-server, is done.
    synced: AtomicBool,
    broker: Mutex<Option<BrokerProbe>>,
    /// Extra metric sources (DNS, metadata, RPC), encoded after the agent's own.
    registry: Mutex<prometheus_client::registry::Registry>,
}

/// Why the agent is not ready, as `/readyz` says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotReady {
    InitialApply,
    FirstSync,
    BrokerDown,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotReady::InitialApply => "the networks file is not applied yet",
            NotReady::FirstSync => "the first full sync with neutron-server is not done yet",
            NotReady::BrokerDown => "not connected to the message broker",
        })
    }
}

impl Status {
    pub fn new(agent: Arc<Agent>, mode: Mode) -> Arc<Status> {
        Arc::new_cyclic(|me| Status {
            agent,
            mode,
            started: Instant::now(),
            last_tick_ms: AtomicU64::new(0),
            synced: AtomicBool::new(false),
            broker: Mutex::new(None),
            registry: Mutex::new(metrics::registry(me.clone())),
        })
    }

    pub fn agent(&self) -> &Arc<Agent> {
        &self.agent
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The main loop came round.
    pub fn tick(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_tick_ms.store(ms, Ordering::Relaxed);
    }

    /// How long ago the main loop last came round.
    pub fn tick_age(&self) -> Duration {
        let last = Duration::from_millis(self.last_tick_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The initial apply (standalone) or the first full sync (RPC) is done; called where the
    /// service manager is told `READY=1`.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    /// RPC mode: how to tell whether the broker is connected.
    pub fn set_broker_probe(&self, probe: BrokerProbe) {
        *self.broker.lock().unwrap_or_else(|p| p.into_inner()) = Some(probe);
    }

    /// `Some(connected)` in RPC mode.
    pub fn broker_connected(&self) -> Option<bool> {
        let probe = self.broker.lock().unwrap_or_else(|p| p.into_inner());
        probe.as_ref().map(|p| p())
    }

    /// `/readyz`: the reason when not ready.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if !self.synced.load(Ordering::Relaxed) {
            return Err(match self.mode {
                Mode::Standalone => NotReady::InitialApply,
                Mode::Rpc => NotReady::FirstSync,
            });
        }
        if self.broker_connected() == Some(false) {
            return Err(NotReady::BrokerDown);
        }
        Ok(())
    }

    /// `/healthz`: the main loop is ticking. Before the first sync (or the initial apply) the
    /// loop waits for it, which may take long on a host with many networks: that is start-up
    /// (`/readyz` says so), not a hang, as for the service manager, whose watchdog starts
    /// with `READY=1` too.
    pub fn healthy(&self) -> bool {
        !self.synced.load(Ordering::Relaxed) || self.tick_age() <= STUCK_AFTER
    }

    /// The seam for services with metrics of their own (DNS, metadata, RPC): their collector
    /// is encoded on every scrape after the agent's metrics; its names get the
    /// `neutron_dhcp_agent_` prefix. Label cardinality must stay bounded (a `network` label
    /// with network ids at most, never MACs or IPs).
    pub fn register_collector(&self, collector: Box<dyn prometheus_client::collector::Collector>) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register_collector(collector);
    }

    /// Encodes every registered collector's metrics and the closing `# EOF`.
    pub(crate) fn encode_registered(&self, out: &mut String) -> std::fmt::Result {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(out, &registry)
    }
}
