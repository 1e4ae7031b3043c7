//! Neutron RPC mode: the agent as neutron-server knows it (`DhcpAgentWithStateReport`).

use std::sync::Arc;
use std::time::Duration;

use super::process::{Process, Supervisor};
use super::DaemonError;
use crate::config::AgentConfig;
use crate::device::DeviceManager;
use crate::neutron::plugin::PluginApi;
use crate::neutron::{heartbeat::StateTemplate, NeutronAgent, Settings};
use crate::rpc::transport::{self, TransportConfig};
use crate::signals::{Signal, Signals};
use crate::standalone::reload::Lifecycle;
use crate::status::rpc::{ResyncCollector, RpcCollector};
use crate::status::{self, Mode};

/// The RPC mode's control loop: the transport, the Neutron agent over it, the status endpoint,
/// and the loop that waits for signals, the first full sync and the watchdog's ticks.
pub(super) struct RpcMode {
    pub(super) cfg: AgentConfig,
    pub(super) devices: DeviceManager,
    pub(super) transport: TransportConfig,
    pub(super) process: Process,
}

impl RpcMode {
    /// Runs until SIGTERM or SIGINT, then stops the Neutron agent, the agent and the transport.
    pub(super) async fn run(self) -> Result<(), DaemonError> {
        let RpcMode {
            cfg,
            devices,
            transport: tcfg,
            process,
        } = self;
        if cfg.networks_file.is_some() {
            tracing::warn!(
                "transport_url is set: running in Neutron RPC mode, the standalone networks file is ignored"
            );
        }
        if cfg.neutron.bulk_reload_interval > 0 {
            tracing::info!(
                "bulk_reload_interval is ignored: port changes are applied at once (a view swap)"
            );
        }
        tracing::info!(
            host = %cfg.host,
            transport_url = %tcfg.url,
            exchange = %tcfg.control_exchange,
            "starting in Neutron RPC mode"
        );
        let rpc_response_timeout = tcfg.rpc_response_timeout;
        let (client, events, transport) = transport::start(tcfg);
        let plugin = Arc::new(PluginApi::new(
            client,
            cfg.host.clone(),
            rpc_response_timeout,
            Duration::from_secs(cfg.neutron.rpc_response_max_timeout),
        ));
        let agent = super::new_agent(&cfg, devices);
        let rpc_stats = plugin.stats().clone();
        let neutron = NeutronAgent::start(settings(&cfg), plugin, agent.clone(), events);
        // The status endpoint of this mode: also the broker's state, the RPC calls and the
        // resyncs.
        let status = status::start(cfg.status_listen, agent.clone(), Mode::Rpc).await?;
        if let Some(s) = &status {
            s.set_broker_probe(Box::new(transport.connected_probe()));
            s.register_collector(Box::new(RpcCollector(rpc_stats)));
            s.register_collector(Box::new(ResyncCollector(neutron.resync())));
        }

        let signals = Signals::open().map_err(DaemonError::OpenSignals)?;
        // READY=1 once the first full sync has configured every network it fetched.
        let mut first_sync = std::pin::pin!(neutron.first_sync_done());
        let mut synced = false;
        // With the status endpoint on, the loop also comes round for /healthz.
        let status_tick = status.as_ref().map(|_| status::TICK_EVERY);
        let mut watchdog = match (process.watchdog_interval(), status_tick) {
            (Some(w), Some(t)) => Some(w.min(t)),
            (w, t) => w.or(t),
        }
        .map(tokio::time::interval);
        let supervisor = Supervisor {
            process: &process,
            status,
        };
        loop {
            let tick = async {
                match watchdog.as_mut() {
                    Some(w) => drop(w.tick().await),
                    None => std::future::pending().await,
                }
            };
            let signal = tokio::select! {
                s = signals.recv() => s.map_err(DaemonError::ReadSignals)?,
                served = &mut first_sync, if !synced => {
                    synced = true;
                    supervisor.ready(&format!("first sync done: serving {served} networks"));
                    continue;
                }
                () = tick => {
                    supervisor.alive();
                    continue;
                }
            };
            match signal {
                Signal::Terminate | Signal::Interrupt => break,
                Signal::Hangup => {
                    supervisor.hangup();
                    tracing::info!("SIGHUP: scheduling a full sync");
                    neutron.resync_all("SIGHUP");
                }
            }
        }
        supervisor.stopping();
        tracing::info!("shutting down: stopping the Neutron agent");
        neutron.shutdown().await;
        // Our DHCP ports stay in Neutron (the Python agent does not release them on stop
        // either), so a restart reuses them.
        agent.exit(cfg.teardown_on_exit).await;
        transport.shutdown().await;
        Ok(())
    }
}

/// The Neutron agent's settings: Neutron's option names, see [`crate::config::NeutronOptions`].
fn settings(cfg: &AgentConfig) -> Settings {
    let report_interval =
        (!cfg.neutron.report_interval.is_zero()).then_some(cfg.neutron.report_interval);
    Settings {
        host: cfg.host.clone(),
        resync_interval: Duration::from_secs(cfg.neutron.resync_interval),
        resync_throttle: Duration::from_secs(cfg.neutron.resync_throttle),
        num_sync_threads: cfg.neutron.num_sync_threads,
        report_interval,
        state: StateTemplate {
            host: cfg.host.clone(),
            availability_zone: cfg.neutron.availability_zone.clone(),
            dhcp_driver: cfg.neutron.dhcp_driver.clone(),
            dhcp_lease_duration: cfg.serve.dhcp_lease_duration,
            log_agent_heartbeats: cfg.neutron.log_agent_heartbeats,
        },
    }
}
