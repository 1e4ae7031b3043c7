//! The process: the options checked before anything starts, the runtime, and one mode's
//! control loop (standalone: [`crate::standalone::reload`]; Neutron RPC: `rpc`) with the
//! status endpoint, signals and the service manager (`process`); `options` checks the options
//! whose syntax the device layer and the transport own.
//!
//! `main` parses the command line, reads the configuration and starts logging; everything from
//! there to the exit is here.

mod options;
mod process;
mod rpc;

use std::sync::Arc;

use crate::agent::Agent;
use crate::config::{AgentConfig, ConfigError, RawConfig};
use crate::device::DeviceManager;
use crate::rpc::transport::TransportConfig;
use crate::standalone::reload::{ReloadError, Reloader};
use crate::status::{self, http::HttpError, Mode};

pub use self::process::Process;
use self::process::Supervisor;
use self::rpc::RpcMode;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot block SIGHUP/SIGTERM/SIGINT: {0}")]
    BlockSignals(#[source] std::io::Error),
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("the agent's main task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error("cannot open a signalfd: {0}")]
    OpenSignals(#[source] std::io::Error),
    #[error("cannot read signals: {0}")]
    ReadSignals(#[source] std::io::Error),
    #[error(transparent)]
    Status(#[from] HttpError),
    #[error(transparent)]
    Standalone(#[from] ReloadError),
}

/// The agent process with every option checked, ready to run one mode.
pub struct Daemon {
    cfg: AgentConfig,
    devices: DeviceManager,
    /// `None`: standalone mode (no `transport_url`).
    transport: Option<TransportConfig>,
    process: Process,
}

impl Daemon {
    /// Checks every remaining option before anything starts; an error names the file, section
    /// and key like the ones [`AgentConfig::from_raw`] reports.
    pub fn new(cfg: AgentConfig, raw: &RawConfig, process: Process) -> Result<Daemon, ConfigError> {
        let devices = options::device_manager(&cfg, raw)?;
        let transport = match cfg.transport_url.as_deref() {
            Some(url) => Some(options::transport_config(&cfg, url, raw)?),
            None => None,
        };
        Ok(Daemon {
            cfg,
            devices,
            transport,
            process,
        })
    }

    /// Prepares the process (open-files limit, blocked signals, the runtime), then runs the
    /// mode until SIGTERM or SIGINT.
    pub fn run(self) -> Result<(), DaemonError> {
        // Before any thread starts: see crate::fds and crate::signals.
        match crate::fds::prepare() {
            Ok(room) if room.soft != room.soft_before => tracing::info!(
                from = room.soft_before,
                to = room.soft,
                "raised the open-files limit to the hard limit (three sockets per network)"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the open-files limit"),
        }
        crate::signals::block().map_err(DaemonError::BlockSignals)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(DaemonError::Runtime)?;
        let Daemon {
            cfg,
            devices,
            transport,
            process,
        } = self;
        let result = match transport {
            None => run_standalone(&runtime, cfg, devices, &process),
            // On a worker, not on this thread: a signal wakes the worker that polls the I/O
            // driver, which then runs the loop itself instead of waking this thread (a hop that
            // costs 0.1 ms and more on a busy host).
            Some(transport) => {
                let mode = RpcMode {
                    cfg,
                    devices,
                    transport,
                    process,
                };
                runtime
                    .block_on(async { tokio::spawn(mode.run()).await.map_err(DaemonError::Task)? })
            }
        };
        // The exit work is done (sockets closed, records written); joining the idle workers and
        // blocking-pool threads would only delay the exit that a restart waits for.
        runtime.shutdown_background();
        result
    }
}

/// Standalone mode: the networks file is the control plane, reloaded on this thread (see
/// [`Reloader`]).
fn run_standalone(
    runtime: &tokio::runtime::Runtime,
    cfg: AgentConfig,
    devices: DeviceManager,
    process: &Process,
) -> Result<(), DaemonError> {
    let _in_runtime = runtime.enter();
    let reloader = Reloader::open(&cfg)?;
    let agent = new_agent(&cfg, devices);
    // Listening before the initial apply: /readyz says 503 until it is done.
    let status = runtime.block_on(status::start(
        cfg.status_listen,
        agent.clone(),
        Mode::Standalone,
    ))?;
    let supervisor = Supervisor { process, status };
    Ok(reloader.run(runtime, agent, &supervisor)?)
}

/// The agent, with its metadata and DNS options; the same in both modes.
fn new_agent(cfg: &AgentConfig, devices: DeviceManager) -> Arc<Agent> {
    let cache = Arc::new(crate::view::cache::NetworkCache::new(cfg.serve.clone()));
    Arc::new(
        Agent::new(cache, devices, cfg.state_path.clone())
            .with_metadata(crate::metadata::ProxySettings::from_config(cfg))
            .with_dns(&cfg.dns),
    )
}
