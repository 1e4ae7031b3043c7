//! `neutron-dhcp-agent`: started exactly like Neutron's Python agent
//! (`--config-file /etc/neutron/neutron.conf --config-file /etc/neutron/dhcp_agent.ini`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use neutron_dhcp::config::{AgentConfig, LoggingArgs, LoggingOptions, RawConfig};
use neutron_dhcp::daemon::{Daemon, Process};

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
    let notifier = neutron_dhcp::sdnotify::Notifier::from_env()?;
    // The files first: oslo.log's `debug`, `log_file` and `log_dir` may be set there. Only
    // then is the rest of the configuration typed, so its debug logs (the ignored options)
    // are not lost.
    let raw = RawConfig::load(&cli.config_file, &cli.config_dir)?;
    let args = LoggingArgs {
        debug: cli.debug,
        log_file: cli.log_file.clone(),
        log_dir: cli.log_dir.clone(),
    };
    let logging = LoggingOptions::from_raw(&raw, &args)?;
    let log_file = neutron_dhcp::logfile::init_tracing(logging.debug, logging.file.as_deref())?;
    *logging_to_file = logging.file.is_some();
    let mut cfg = AgentConfig::from_raw(&raw)?;
    // Options the Python agent honours and we do not: a warning each, or a refusal where
    // clients would silently lose something (neutron_dhcp::compat).
    neutron_dhcp::compat::check(&raw)?;
    cfg.state_path = cli.state_path.unwrap_or(cfg.state_path);
    cfg.networks_file = cli.networks_file.or(cfg.networks_file);
    cfg.teardown_on_exit = cli.teardown_on_exit;
    Ok(Daemon::new(cfg, &raw, Process::new(log_file, notifier))?.run()?)
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
