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
use neutron_dhcp::device::{DeviceConfig, DeviceManager, InterfaceDriver};
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
    /// Standalone mode: networks file (overrides `[standalone] networks_file`).
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
    let default = if cli.debug { "debug" } else { "info" };
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

async fn run(cfg: AgentConfig) -> anyhow::Result<()> {
    if cfg.transport_url.is_some() {
        bail!(
            "[DEFAULT] transport_url is set, but the Neutron RPC control plane is not \
             implemented yet; remove transport_url to run in standalone mode"
        );
    }
    let Some(networks_file) = cfg.networks_file.clone() else {
        bail!(
            "standalone mode (no transport_url) needs a networks file: set \
             [standalone] networks_file or pass --networks-file"
        );
    };
    let driver: InterfaceDriver = cfg
        .interface_driver
        .parse()
        .with_context(|| "invalid [DEFAULT] interface_driver".to_string())?;
    let devices = DeviceManager::new(DeviceConfig {
        driver,
        veth_bridge: cfg.veth_bridge.clone(),
        enable_isolated_metadata: cfg.serve.enable_isolated_metadata,
        force_metadata: cfg.serve.force_metadata,
    });
    let desired = standalone::load(&networks_file, &cfg.host)?;
    tracing::info!(
        file = %networks_file.display(),
        networks = desired.len(),
        host = %cfg.host,
        "starting in standalone mode"
    );
    let cache = Arc::new(NetworkCache::new(cfg.serve.clone()));
    let mut agent = Agent::new(cache, devices, cfg.state_path.clone());
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
