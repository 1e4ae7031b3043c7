//! `neutron-dhcp-agent`: started exactly like Neutron's Python agent
//! (`--config-file /etc/neutron/neutron.conf --config-file /etc/neutron/dhcp_agent.ini`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

use neutron_dhcp::agent::Agent;
use neutron_dhcp::cache::NetworkCache;
use neutron_dhcp::config::{AgentConfig, RawConfig};
use neutron_dhcp::device::{DeviceConfig, DeviceManager, InterfaceDriver, OvsConfig};
use neutron_dhcp::neutron::{heartbeat::StateTemplate, NeutronAgent, Settings};
use neutron_dhcp::plugin::PluginApi;
use neutron_dhcp::rpc::transport::{self, TransportConfig};
use neutron_dhcp::standalone::{self, FileStamp};

#[derive(Parser, Debug)]
#[command(name = "neutron-dhcp-agent", version, about)]
struct Cli {
    /// Configuration file; repeatable, later files override earlier ones.
    #[arg(long = "config-file", value_name = "PATH")]
    config_file: Vec<PathBuf>,
    /// Directory whose `*.conf` files are read after the --config-files.
    #[arg(long = "config-dir", value_name = "DIR")]
    config_dir: Vec<PathBuf>,
    /// Standalone mode: networks file (overrides `[standalone] networks_file`; ignored when
    /// `[DEFAULT] transport_url` is set).
    #[arg(long = "networks-file", value_name = "PATH")]
    networks_file: Option<PathBuf>,
    /// Overrides `[DEFAULT] state_path` (oslo.config CLI option).
    #[arg(long = "state-path", alias = "state_path", value_name = "DIR")]
    state_path: Option<PathBuf>,
    /// Log at debug level.
    #[arg(long, short = 'd')]
    debug: bool,
    /// Write logs to this file instead of stderr.
    #[arg(long = "log-file", value_name = "PATH")]
    log_file: Option<PathBuf>,
}

/// How often the networks file is checked for changes, and failed networks retried.
const POLL: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_secs(5);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli)?;
    let raw = RawConfig::load(&cli.config_file, &cli.config_dir)?;
    let mut cfg = AgentConfig::from_raw(&raw)?;
    if let Some(p) = &cli.state_path {
        cfg.state_path = p.clone();
    }
    if let Some(p) = &cli.networks_file {
        cfg.networks_file = Some(p.clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(run(cfg))
}

fn init_tracing(cli: &Cli) -> anyhow::Result<()> {
    // lapin logs every returned reply at WARN and a dropped connection at ERROR; our transport
    // reports both itself, once and with context.
    let default = if cli.debug {
        "debug,lapin=info,lapin::returned_messages=error"
    } else {
        "info,lapin=warn,lapin::returned_messages=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &cli.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder.with_ansi(false).with_writer(Arc::new(file)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

fn device_manager(cfg: &AgentConfig) -> anyhow::Result<DeviceManager> {
    let driver: InterfaceDriver = cfg
        .interface_driver
        .parse()
        .with_context(|| "invalid [DEFAULT] interface_driver".to_string())?;
    let ovs = OvsConfig {
        integration_bridge: cfg.ovs.integration_bridge.clone(),
        ovsdb_connection: cfg.ovs.ovsdb_connection.clone(),
        ovsdb_timeout: cfg.ovs.ovsdb_timeout,
        datapath_type: cfg.ovs.datapath_type.clone(),
        use_veth: cfg.ovs.use_veth,
    };
    if driver == InterfaceDriver::Openvswitch {
        ovs.validate().context("invalid [OVS] options")?;
    }
    Ok(DeviceManager::new(DeviceConfig {
        driver,
        veth_bridge: cfg.veth_bridge.clone(),
        enable_isolated_metadata: cfg.serve.enable_isolated_metadata,
        force_metadata: cfg.serve.force_metadata,
        ovs,
    }))
}

async fn run(cfg: AgentConfig) -> anyhow::Result<()> {
    if let Some(url) = cfg.transport_url.clone() {
        return run_rpc(cfg, &url).await;
    }
    let Some(networks_file) = cfg.networks_file.clone() else {
        bail!(
            "standalone mode (no transport_url) needs a networks file: set \
             [standalone] networks_file or pass --networks-file"
        );
    };
    let devices = device_manager(&cfg)?;
    let desired = standalone::load(&networks_file, &cfg.host)?;
    tracing::info!(
        file = %networks_file.display(),
        networks = desired.len(),
        host = %cfg.host,
        "starting in standalone mode"
    );
    let cache = Arc::new(NetworkCache::new(cfg.serve.clone()));
    let agent = Agent::new(cache, devices, cfg.state_path.clone());
    let keep: HashSet<String> = desired.iter().map(|d| d.network.id.clone()).collect();
    agent.cleanup_leftovers(&keep).await;
    let mut stamp = FileStamp::of(&networks_file);
    let mut current = desired.clone();
    let summary = agent.apply(desired).await;
    tracing::info!(?summary, "initial networks applied");
    let mut failed = summary.failed;

    let mut hup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let mut poll = tokio::time::interval(POLL);
    let mut retry = tokio::time::interval(RETRY);
    loop {
        let reason = tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => "SIGHUP",
            _ = poll.tick() => {
                let now = FileStamp::of(&networks_file);
                if now == stamp { continue; }
                "file changed"
            }
            _ = retry.tick() => {
                if failed.is_empty() { continue; }
                "retrying failed networks"
            }
        };
        stamp = FileStamp::of(&networks_file);
        match standalone::load(&networks_file, &cfg.host) {
            Ok(desired) => current = desired,
            Err(e) if reason != "retrying failed networks" => {
                tracing::error!(error = %e, "networks file not applied; keeping the running configuration");
                continue;
            }
            Err(_) => {}
        }
        let summary = agent.apply(current.clone()).await;
        tracing::info!(
            %reason,
            added = summary.added,
            changed = summary.changed,
            removed = summary.removed,
            unchanged = summary.unchanged,
            failed = summary.failed.len(),
            "reloaded networks file"
        );
        failed = summary.failed;
    }
    tracing::info!("shutting down: removing served networks");
    agent.shutdown().await;
    Ok(())
}

/// Neutron RPC mode: the agent as neutron-server knows it (`DhcpAgentWithStateReport`).
async fn run_rpc(cfg: AgentConfig, transport_url: &str) -> anyhow::Result<()> {
    // TransportError never contains the URL's password; neither does TransportUrl's Display.
    let tcfg = TransportConfig::from_parts(
        transport_url,
        cfg.neutron.control_exchange.as_deref(),
        cfg.neutron.rpc_response_timeout.as_deref(),
        &cfg.neutron.rabbit,
        &cfg.host,
    )
    .context("invalid messaging configuration")?;
    let devices = device_manager(&cfg)?;
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
    let cache = Arc::new(NetworkCache::new(cfg.serve.clone()));
    let agent = Arc::new(Agent::new(cache, devices, cfg.state_path.clone()));
    let report_interval =
        (!cfg.neutron.report_interval.is_zero()).then_some(cfg.neutron.report_interval);
    let settings = Settings {
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
    };
    let neutron = NeutronAgent::start(settings, plugin, agent.clone(), events);

    let mut hup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: scheduling a full sync");
                neutron.resync_all("SIGHUP");
            }
        }
    }
    tracing::info!("shutting down: stopping the Neutron agent");
    neutron.shutdown().await;
    // Local teardown only: our DHCP ports stay in Neutron (the Python agent does not release
    // them on stop either), so a restart reuses them.
    agent.shutdown().await;
    transport.shutdown().await;
    Ok(())
}
