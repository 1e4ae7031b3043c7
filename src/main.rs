//! `neutron-dhcp-agent`: started exactly like Neutron's Python agent
//! (`--config-file /etc/neutron/neutron.conf --config-file /etc/neutron/dhcp_agent.ini`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;

use neutron_dhcp::agent::Agent;
use neutron_dhcp::config::{AgentConfig, RawConfig};
use neutron_dhcp::device::{DeviceConfig, DeviceManager, InterfaceDriver, OvsConfig};
use neutron_dhcp::logfile::LogFile;
use neutron_dhcp::neutron::plugin::PluginApi;
use neutron_dhcp::neutron::{heartbeat::StateTemplate, NeutronAgent, Settings};
use neutron_dhcp::rpc::transport::{self, TransportConfig, TransportError};
use neutron_dhcp::rpc::url::OptionError;
use neutron_dhcp::sdnotify::Notifier;
use neutron_dhcp::signals::{self, BlockingSignals, Signal, Signals};
use neutron_dhcp::standalone::netfile::{NetworksFile, Reparsed};
use neutron_dhcp::standalone::FileStamp;
use neutron_dhcp::view::cache::NetworkCache;

#[derive(Parser, Debug)]
#[command(name = "neutron-dhcp-agent", version, about)]
struct Cli {
    /// Without a subcommand the agent runs; a subcommand asks the running agent's status
    /// endpoint (`[agent] status_listen` in the same configuration files).
    #[command(subcommand)]
    command: Option<neutron_dhcp::status::cli::Command>,
    /// Configuration file; repeatable, later files override earlier ones.
    #[arg(long = "config-file", value_name = "PATH", global = true)]
    config_file: Vec<PathBuf>,
    /// Directory whose `*.conf` files are read after the --config-files.
    #[arg(long = "config-dir", value_name = "DIR", global = true)]
    config_dir: Vec<PathBuf>,
    /// Standalone mode: networks file (overrides `[standalone] networks_file`; ignored when
    /// `[DEFAULT] transport_url` is set).
    #[arg(long = "networks-file", value_name = "PATH")]
    networks_file: Option<PathBuf>,
    /// Overrides `[DEFAULT] state_path` (oslo.config CLI option).
    #[arg(long = "state-path", alias = "state_path", value_name = "DIR")]
    state_path: Option<PathBuf>,
    /// Log at debug level (also `[DEFAULT] debug = true` in a config file).
    #[arg(long, short = 'd')]
    debug: bool,
    /// Write logs to this file instead of stderr (overrides `[DEFAULT] log_file`; relative to
    /// the log directory when one is set).
    #[arg(long = "log-file", value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Log directory (overrides `[DEFAULT] log_dir`); without a log file the log goes to
    /// `<dir>/neutron-dhcp-agent.log`, as oslo.log does.
    #[arg(long = "log-dir", value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// On SIGTERM/SIGINT remove every namespace and device the agent made. Without it they are
    /// left in place (as the Python agent leaves dnsmasq and its namespaces), so a restart
    /// adopts them without re-plumbing and networks no longer wanted are removed at start.
    #[arg(long = "teardown-on-exit")]
    teardown_on_exit: bool,
}

/// The command line; `--help` ends with the table of Neutron's options and what this agent
/// does with each.
fn parse_cli() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command()
        .after_long_help(neutron_dhcp::compat::table_text())
        .get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// oslo.log's file name when only a log directory is given (`<binary>.log`).
const LOG_FILE_IN_DIR: &str = "neutron-dhcp-agent.log";

/// How often the networks file is checked for changes, and failed networks retried.
const POLL: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_secs(5);
/// How long after a reload what it replaced is freed (see `NetworkCache::release_replaced`) and
/// the replaced networks file closed.
const FREE_REPLACED_AFTER: Duration = Duration::from_millis(2);
/// Replaced networks files held open at most, while reloads follow each other without a pause.
const MAX_HELD_FILES: usize = 4;

fn main() -> ExitCode {
    let mut logging_to_file = false;
    match start(&mut logging_to_file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, context first ("<file>: [section] key ...: cause"), like oslo's
            // start-up errors; no backtrace even with RUST_BACKTRACE set.
            let message = error_chain(&e);
            if logging_to_file {
                tracing::error!("{message}");
            }
            eprintln!("neutron-dhcp-agent: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `error: context: cause: ...`, like anyhow's `{:#}`, but without repeating a cause that an
/// error's own message already ends with (our errors name their cause in their message, and
/// also expose it as `source()`).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn start(logging_to_file: &mut bool) -> anyhow::Result<()> {
    neutron_dhcp::memory::tune_allocator();
    let cli = parse_cli();
    if let Some(command) = &cli.command {
        // A client of the running agent: nothing of the agent starts.
        let raw = RawConfig::load(&cli.config_file, &cli.config_dir)?;
        let cfg = AgentConfig::from_raw(&raw)?;
        return Ok(neutron_dhcp::status::cli::run(command, cfg.status_listen)?);
    }
    // Before any thread exists (it takes the variables out of the environment).
    let notifier = Notifier::from_env()?;
    // The files first: oslo.log's `debug`, `log_file` and `log_dir` may be set there. Only
    // then is the rest of the configuration typed, so its debug logs (the ignored options)
    // are not lost.
    let raw = RawConfig::load(&cli.config_file, &cli.config_dir)?;
    let logging = logging_options(&cli, &raw)?;
    let log_file = init_tracing(&logging)?;
    *logging_to_file = logging.file.is_some();
    let mut cfg = AgentConfig::from_raw(&raw)?;
    // Options the Python agent honours and we do not: a warning each, or a refusal where
    // clients would silently lose something (neutron_dhcp::compat).
    neutron_dhcp::compat::check(&raw)?;
    if let Some(p) = &cli.state_path {
        cfg.state_path = p.clone();
    }
    if let Some(p) = &cli.networks_file {
        cfg.networks_file = Some(p.clone());
    }
    cfg.teardown_on_exit = cli.teardown_on_exit;
    // Every remaining option is checked before anything starts; an error names the file,
    // section and key like the ones AgentConfig reports.
    let devices = device_manager(&cfg, &raw)?;
    let transport = match cfg.transport_url.as_deref() {
        Some(url) => Some(transport_config(&cfg, url, &raw)?),
        None => None,
    };
    // Before any thread starts: see neutron_dhcp::fds and neutron_dhcp::signals.
    match neutron_dhcp::fds::prepare() {
        Ok(room) if room.soft != room.soft_before => tracing::info!(
            from = room.soft_before,
            to = room.soft,
            "raised the open-files limit to the hard limit (three sockets per network)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open-files limit"),
    }
    signals::block().context("cannot block SIGHUP/SIGTERM/SIGINT")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let process = Process { log_file, notifier };
    let result = match transport {
        None => run_standalone(&runtime, cfg, devices, &process),
        // On a worker, not on this thread: a signal wakes the worker that polls the I/O
        // driver, which then runs the loop itself instead of waking this thread (a hop that
        // costs 0.1 ms and more on a busy host).
        Some(transport) => runtime.block_on(async {
            tokio::spawn(run_rpc(cfg, devices, transport, process))
                .await
                .context("the agent's main task failed")?
        }),
    };
    // The exit work is done (sockets closed, records written); joining the idle workers and
    // blocking-pool threads would only delay the exit that a restart waits for.
    runtime.shutdown_background();
    result
}

/// Where and how much to log: the command line wins over `[DEFAULT]` in the files.
struct Logging {
    debug: bool,
    file: Option<PathBuf>,
}

fn logging_options(cli: &Cli, raw: &RawConfig) -> anyhow::Result<Logging> {
    let default = raw.section("DEFAULT");
    let get = |key: &str| {
        default
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let debug = match get("debug") {
        _ if cli.debug => true,
        None => false,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => true,
            "false" | "no" | "off" | "0" => false,
            _ => bail!(
                "{}: [DEFAULT] debug = {v:?}: expected a boolean",
                origin(raw, "DEFAULT", "debug")
            ),
        },
    };
    let dir = cli
        .log_dir
        .clone()
        .or_else(|| get("log_dir").map(PathBuf::from));
    let file = cli
        .log_file
        .clone()
        .or_else(|| get("log_file").map(PathBuf::from));
    let file = match (dir, file) {
        (Some(dir), Some(file)) => Some(dir.join(file)),
        (Some(dir), None) => Some(dir.join(LOG_FILE_IN_DIR)),
        (None, file) => file,
    };
    Ok(Logging { debug, file })
}

/// The file that set `[section] key`, for error messages.
fn origin(raw: &RawConfig, section: &str, key: &str) -> String {
    raw.origin(section, key)
        .map_or_else(|| "<defaults>".to_string(), |p| p.display().to_string())
}

/// What the control loops do for the process as a whole, whichever the mode: the log file to
/// reopen on SIGHUP, and the service manager to tell about readiness, liveness and the stop.
struct Process {
    log_file: Option<LogFile>,
    notifier: Notifier,
}

impl Process {
    /// SIGHUP also reopens the log file, in both modes (logrotate's postrotate sends it; the
    /// mode's own meaning of SIGHUP, reload or resync, follows).
    fn reopen_log(&self) {
        if let Some(log) = &self.log_file {
            match log.reopen() {
                Ok(()) => tracing::info!(file = %log.path().display(), "SIGHUP: log file reopened"),
                Err(e) => {
                    tracing::error!(file = %log.path().display(), error = %e, "SIGHUP: cannot reopen the log file; still writing to the old one")
                }
            }
        }
    }

    fn notify(&self, what: &str, r: Result<(), neutron_dhcp::sdnotify::NotifyError>) {
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot tell the service manager {what}");
        }
    }
}

fn init_tracing(logging: &Logging) -> anyhow::Result<Option<LogFile>> {
    // lapin logs every returned reply at WARN and a dropped connection at ERROR; our transport
    // reports both itself, once and with context.
    let default = if logging.debug {
        "debug,lapin=info,lapin::returned_messages=error"
    } else {
        "info,lapin=warn,lapin::returned_messages=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &logging.file {
        Some(path) => {
            let file = LogFile::open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder.with_ansi(false).with_writer(file.clone()).init();
            Ok(Some(file))
        }
        None => {
            builder.with_writer(std::io::stderr).init();
            Ok(None)
        }
    }
}

fn device_manager(cfg: &AgentConfig, raw: &RawConfig) -> anyhow::Result<DeviceManager> {
    let driver: InterfaceDriver = cfg.interface_driver.parse().with_context(|| {
        format!(
            "{}: invalid [DEFAULT] interface_driver",
            origin(raw, "DEFAULT", "interface_driver")
        )
    })?;
    let ovs = OvsConfig {
        integration_bridge: cfg.ovs.integration_bridge.clone(),
        ovsdb_connection: cfg.ovs.ovsdb_connection.clone(),
        ovsdb_timeout: cfg.ovs.ovsdb_timeout,
        datapath_type: cfg.ovs.datapath_type.clone(),
        use_veth: cfg.ovs.use_veth,
    };
    if driver == InterfaceDriver::Openvswitch {
        if let Err(e) = ovs.validate() {
            // The error names the option ("[OVS] ovsdb_timeout") or quotes the bad value.
            let text = e.to_string();
            let key = if text.contains("ovsdb_timeout") {
                "ovsdb_timeout"
            } else if text.contains(&format!("{:?}", ovs.integration_bridge)) {
                "integration_bridge"
            } else {
                "ovsdb_connection"
            };
            return Err(anyhow::Error::new(e)
                .context(format!("{}: invalid [OVS] {key}", origin(raw, "OVS", key))));
        }
    }
    Ok(DeviceManager::new(DeviceConfig {
        driver,
        veth_bridge: cfg.veth_bridge.clone(),
        enable_isolated_metadata: cfg.serve.enable_isolated_metadata,
        force_metadata: cfg.serve.force_metadata,
        ovs,
    }))
}

/// The messaging configuration, validated; an error names the file, section and key.
fn transport_config(
    cfg: &AgentConfig,
    transport_url: &str,
    raw: &RawConfig,
) -> anyhow::Result<TransportConfig> {
    // TransportError never contains the URL's password; neither does TransportUrl's Display.
    TransportConfig::from_parts(
        transport_url,
        cfg.neutron.control_exchange.as_deref(),
        cfg.neutron.rpc_response_timeout.as_deref(),
        &cfg.neutron.rabbit,
        &cfg.host,
    )
    .map_err(|e| {
        let rabbit = "oslo_messaging_rabbit";
        let (section, key): (&str, &str) = match &e {
            TransportError::Url(_) => ("DEFAULT", "transport_url"),
            TransportError::Invalid { option, .. } => ("DEFAULT", option),
            TransportError::Tls { option, .. } => (rabbit, option),
            TransportError::Rabbit(o) => match o {
                OptionError::Invalid { option, .. } => (rabbit, option.as_str()),
                // Only the URL query can name an unknown option (the section's are ignored).
                OptionError::Unknown(_) => ("DEFAULT", "transport_url"),
                OptionError::QuorumAndHa => (rabbit, "rabbit_quorum_queue"),
                OptionError::StreamNeedsPrefetch | OptionError::StreamNeedsTransientQuorum => {
                    (rabbit, "rabbit_stream_fanout")
                }
            },
        };
        // An [oslo_messaging_rabbit] value may come from the transport_url query instead.
        let file = raw
            .origin(section, key)
            .or_else(|| raw.origin("DEFAULT", "transport_url"))
            .map_or_else(|| "<defaults>".to_string(), |p| p.display().to_string());
        let what = format!("{file}: invalid messaging configuration ([{section}] {key})");
        anyhow::Error::new(e).context(what)
    })
}

/// Standalone mode: the networks file is the control plane. This thread waits for signals
/// itself and applies each reload, driving the agent's futures with `block_on`: a SIGHUP wakes
/// it directly, and a change of ports completes here without any other thread (the view swap
/// is synchronous), which is most of the SIGHUP -> servable path at 1,000 ports. Plumbing
/// changes still await netlink replies through the runtime's workers.
fn run_standalone(
    runtime: &tokio::runtime::Runtime,
    cfg: AgentConfig,
    devices: DeviceManager,
    process: &Process,
) -> anyhow::Result<()> {
    let _in_runtime = runtime.enter();
    let Some(networks_file) = cfg.networks_file.clone() else {
        bail!(
            "standalone mode (no transport_url) needs a networks file: set \
             [standalone] networks_file or pass --networks-file"
        );
    };
    let mut file = NetworksFile::load(&networks_file, &cfg.host)?;
    log_rejected(&file);
    tracing::info!(
        file = %networks_file.display(),
        networks = file.networks().len(),
        host = %cfg.host,
        "starting in standalone mode"
    );
    let cache = Arc::new(NetworkCache::new(cfg.serve.clone()));
    let agent = Arc::new(
        Agent::new(cache, devices, cfg.state_path.clone())
            .with_metadata(neutron_dhcp::metadata::ProxySettings::from_config(&cfg))
            .with_dns(&cfg.dns),
    );
    // Listening before the initial apply: /readyz says 503 until it is done.
    let status = runtime.block_on(neutron_dhcp::status::start(
        cfg.status_listen,
        agent.clone(),
        neutron_dhcp::status::Mode::Standalone,
    ))?;
    let keep: HashSet<String> = file
        .networks()
        .iter()
        .map(|d| d.network.id.clone())
        .collect();
    runtime.block_on(agent.cleanup_leftovers(&keep));
    let mut stamp = FileStamp::of(&networks_file);
    let summary = runtime.block_on(agent.apply(file.networks()));
    tracing::info!(?summary, "initial networks applied");
    // The parse and the initial plumbing freed much; a few ms of trimming, off this thread.
    drop(tokio::task::spawn_blocking(
        neutron_dhcp::memory::release_free_memory,
    ));
    let mut failed = summary.failed;
    if let Some(s) = &status {
        s.set_synced();
    }
    process.notify(
        "that the agent is ready",
        process.notifier.ready(&format!(
            "serving {} networks from {} ({} failed)",
            file.networks().len().saturating_sub(failed.len()),
            networks_file.display(),
            failed.len()
        )),
    );

    let signals = BlockingSignals::open().context("cannot open a signalfd")?;
    let mut next_poll = Instant::now() + POLL;
    let mut next_retry = Instant::now() + RETRY;
    let mut pending = None;
    let mut replaced_files = Vec::new();
    loop {
        // The loop wakes at least every POLL: it is alive as long as it comes round.
        process.notify("that the agent is alive", process.notifier.watchdog());
        if let Some(s) = &status {
            s.tick();
        }
        let wait = next_poll
            .min(next_retry)
            .saturating_duration_since(Instant::now());
        let signal = match pending.take() {
            Some(sig) => Some(sig),
            None => signals.wait(wait).context("cannot read signals")?,
        };
        let reason = match signal {
            Some(Signal::Hangup) => {
                process.reopen_log();
                "SIGHUP"
            }
            Some(Signal::Terminate | Signal::Interrupt) => break,
            None => {
                let now = Instant::now();
                if now >= next_retry {
                    next_retry = now + RETRY;
                    if !failed.is_empty() {
                        "retrying failed networks"
                    } else {
                        continue;
                    }
                } else {
                    next_poll = now + POLL;
                    if FileStamp::of(&networks_file) == stamp {
                        continue;
                    }
                    "file changed"
                }
            }
        };
        let began = Instant::now();
        stamp = FileStamp::of(&networks_file);
        let reparsed = match file.reload() {
            Ok(Reparsed::Unchanged) => Reparsed::Unchanged,
            Ok(how) => {
                log_rejected(&file);
                how
            }
            Err(e) if reason != "retrying failed networks" => {
                tracing::error!(error = %e, "networks file not applied; keeping the running configuration");
                continue;
            }
            Err(_) => Reparsed::Unchanged,
        };
        let read = began.elapsed();
        let summary = runtime.block_on(agent.apply(file.networks()));
        tracing::info!(
            %reason,
            ?reparsed,
            // How long the reload took: reading and parsing the file, then applying it (the
            // new views are served from within the apply).
            read_us = read.as_micros() as u64,
            apply_us = (began.elapsed() - read).as_micros() as u64,
            added = summary.added,
            changed = summary.changed,
            removed = summary.removed,
            unchanged = summary.unchanged,
            failed = summary.failed.len(),
            rolled_back = summary.rolled_back.len(),
            "reloaded networks file"
        );
        if summary.added + summary.changed + summary.removed > 0 {
            agent.record_event(neutron_dhcp::agent::EventSource::File, began.elapsed());
        }
        failed = summary.failed;
        replaced_files.extend(file.take_replaced());
        if replaced_files.len() > MAX_HELD_FILES {
            // Reloads without a pause: each held file keeps its page cache.
            close_in_background(std::mem::take(&mut replaced_files));
        }
        // What the reload replaced is freed once the first answers from the new views are out
        // (before, it would compete with them for the CPU).
        match signals.wait(FREE_REPLACED_AFTER) {
            Ok(None) => {
                agent.cache().release_replaced();
                close_in_background(std::mem::take(&mut replaced_files));
            }
            // A signal in the meantime: taken by the next wait; this is freed after that one.
            Ok(Some(sig)) => pending = Some(sig),
            Err(e) => return Err(e).context("cannot read signals"),
        }
    }
    process.notify("that the agent stops", process.notifier.stopping());
    runtime.block_on(agent.exit(cfg.teardown_on_exit));
    Ok(())
}

/// Each network (or VM port) the networks file refused, with the error naming the file, the
/// entry and the id; the others are served.
fn log_rejected(file: &NetworksFile) {
    for r in file.rejected() {
        match &r.network {
            Some(id) => {
                tracing::error!(network_id = %id, error = %r.error, "network refused; not applied")
            }
            None => tracing::error!(error = %r.error, "networks file entry refused; not applied"),
        }
    }
}

/// Closing the last handle of a replaced networks file frees its page cache (about 0.5 ms per
/// 500 KB): on the blocking pool, so that it never delays the next reload.
fn close_in_background(files: Vec<std::fs::File>) {
    if !files.is_empty() {
        drop(tokio::task::spawn_blocking(move || drop(files)));
    }
}

/// Neutron RPC mode: the agent as neutron-server knows it (`DhcpAgentWithStateReport`).
async fn run_rpc(
    cfg: AgentConfig,
    devices: DeviceManager,
    tcfg: TransportConfig,
    process: Process,
) -> anyhow::Result<()> {
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
    let agent = Arc::new(
        Agent::new(cache, devices, cfg.state_path.clone())
            .with_metadata(neutron_dhcp::metadata::ProxySettings::from_config(&cfg))
            .with_dns(&cfg.dns),
    );
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
    let rpc_stats = plugin.stats().clone();
    let neutron = NeutronAgent::start(settings, plugin, agent.clone(), events);
    let status = neutron_dhcp::status::start(
        cfg.status_listen,
        agent.clone(),
        neutron_dhcp::status::Mode::Rpc,
    )
    .await?;
    if let Some(s) = &status {
        s.set_broker_probe(Box::new(transport.connected_probe()));
        s.register_collector(Box::new(neutron_dhcp::status::rpc::RpcCollector(rpc_stats)));
        s.register_collector(Box::new(neutron_dhcp::status::rpc::ResyncCollector(
            neutron.resync(),
        )));
    }

    let signals = Signals::open().context("cannot open a signalfd")?;
    // READY=1 once the first full sync has configured every network it fetched.
    let mut first_sync = std::pin::pin!(neutron.first_sync_done());
    let mut synced = false;
    // With the status endpoint on, the loop also comes round for /healthz.
    let status_tick = status.as_ref().map(|_| neutron_dhcp::status::TICK_EVERY);
    let mut watchdog = match (process.notifier.watchdog_interval(), status_tick) {
        (Some(w), Some(t)) => Some(w.min(t)),
        (w, t) => w.or(t),
    }
    .map(tokio::time::interval);
    loop {
        let tick = async {
            match watchdog.as_mut() {
                Some(w) => drop(w.tick().await),
                None => std::future::pending().await,
            }
        };
        let signal = tokio::select! {
            s = signals.recv() => s.context("cannot read signals")?,
            served = &mut first_sync, if !synced => {
                synced = true;
                if let Some(s) = &status {
                    s.set_synced();
                }
                process.notify("that the agent is ready", process.notifier.ready(&format!("first sync done: serving {served} networks")));
                continue;
            }
            () = tick => {
                process.notify("that the agent is alive", process.notifier.watchdog());
                if let Some(s) = &status {
                    s.tick();
                }
                continue;
            }
        };
        match signal {
            Signal::Terminate | Signal::Interrupt => break,
            Signal::Hangup => {
                process.reopen_log();
                tracing::info!("SIGHUP: scheduling a full sync");
                neutron.resync_all("SIGHUP");
            }
        }
    }
    process.notify("that the agent stops", process.notifier.stopping());
    tracing::info!("shutting down: stopping the Neutron agent");
    neutron.shutdown().await;
    // Our DHCP ports stay in Neutron (the Python agent does not release them on stop either),
    // so a restart reuses them.
    agent.exit(cfg.teardown_on_exit).await;
    transport.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod error_chain_tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read networks file f: {source}")]
    struct Read {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Read { source: io }).context("starting");
        assert_eq!(
            error_chain(&e),
            "starting: cannot read networks file f: no such file"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&plain), "outer: inner");
    }
}
