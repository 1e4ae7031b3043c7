//! Standalone mode's control loop: the networks file is the control plane, re-read on SIGHUP
//! and when it changes on disk, and applied to the agent.
//!
//! The loop runs on the thread that started the process; it waits for signals itself and
//! applies each reload, driving the agent's futures with `block_on`: a SIGHUP wakes it
//! directly, and a change of ports completes here without any other thread (the view swap is
//! synchronous), which is most of the SIGHUP -> servable path at 1,000 ports. Plumbing changes
//! still await netlink replies through the runtime's workers.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::agent::{Agent, EventSource};
use crate::config::AgentConfig;
use crate::signals::{BlockingSignals, Signal};
use crate::standalone::netfile::{NetworksFile, Reparsed};
use crate::standalone::{FileStamp, StandaloneError};

/// How often the networks file is checked for changes, and failed networks retried.
const POLL: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_secs(5);
/// How long after a reload what it replaced is freed (see `NetworkCache::release_replaced`) and
/// the replaced networks file closed.
const FREE_REPLACED_AFTER: Duration = Duration::from_millis(2);
/// Replaced networks files held open at most, while reloads follow each other without a pause.
const MAX_HELD_FILES: usize = 4;

/// What the control loop tells the rest of the process: the service manager, the status
/// endpoint and the log file belong to the process wiring above this module.
pub trait Lifecycle {
    /// The initial networks are applied: the agent is ready (`status` is a one-line summary
    /// for the service manager).
    fn ready(&self, status: &str);
    /// The loop came round: the agent is alive.
    fn alive(&self);
    /// SIGHUP arrived (the mode's own meaning of it follows).
    fn hangup(&self);
    /// SIGTERM or SIGINT arrived: the agent stops.
    fn stopping(&self);
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(
        "standalone mode (no transport_url) needs a networks file: set \
         [standalone] networks_file or pass --networks-file"
    )]
    NoNetworksFile,
    #[error(transparent)]
    File(#[from] StandaloneError),
    #[error("cannot open a signalfd: {0}")]
    OpenSignals(#[source] std::io::Error),
    #[error("cannot read signals: {0}")]
    ReadSignals(#[source] std::io::Error),
}

/// Why the networks file is read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Hangup,
    FileChanged,
    /// Networks failed to apply: they are tried again, even with an unchanged file (and an
    /// unreadable file then keeps the last good one instead of being an error).
    RetryFailed,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Hangup => "SIGHUP",
            Reason::FileChanged => "file changed",
            Reason::RetryFailed => "retrying failed networks",
        })
    }
}

/// The networks file and the state of the loop that keeps the agent in line with it.
pub struct Reloader {
    path: PathBuf,
    file: NetworksFile,
    teardown_on_exit: bool,
    /// The file as last read, to notice a change.
    stamp: FileStamp,
    /// Networks of the last apply that failed, retried every [`RETRY`].
    failed: Vec<String>,
    next_poll: Instant,
    next_retry: Instant,
    /// Replaced networks files not closed yet (see [`close_in_background`]).
    replaced_files: Vec<std::fs::File>,
}

impl Reloader {
    /// Reads the networks file (`[standalone] networks_file` or `--networks-file`): the start
    /// stops when there is none or it cannot be read; the entries it refuses are logged.
    pub fn open(cfg: &AgentConfig) -> Result<Reloader, ReloadError> {
        let path = cfg
            .networks_file
            .clone()
            .ok_or(ReloadError::NoNetworksFile)?;
        let file = NetworksFile::load(&path, &cfg.host)?;
        log_rejected(&file);
        tracing::info!(
            file = %path.display(),
            networks = file.networks().len(),
            host = %cfg.host,
            "starting in standalone mode"
        );
        let now = Instant::now();
        Ok(Reloader {
            stamp: FileStamp::of(&path),
            path,
            file,
            teardown_on_exit: cfg.teardown_on_exit,
            failed: Vec::new(),
            next_poll: now,
            next_retry: now,
            replaced_files: Vec::new(),
        })
    }

    /// Removes what a previous run left for networks the file no longer has, applies the file,
    /// then reloads it until SIGTERM or SIGINT; the agent then exits. Must run inside
    /// `runtime` (entered), on a thread of its own.
    pub fn run(
        mut self,
        runtime: &tokio::runtime::Runtime,
        agent: Arc<Agent>,
        process: &impl Lifecycle,
    ) -> Result<(), ReloadError> {
        let keep: HashSet<String> = self
            .file
            .networks()
            .iter()
            .map(|d| d.network.id.clone())
            .collect();
        runtime.block_on(agent.cleanup_leftovers(&keep));
        self.stamp = FileStamp::of(&self.path);
        let summary = runtime.block_on(agent.apply(self.file.networks()));
        tracing::info!(?summary, "initial networks applied");
        // The parse and the initial plumbing freed much; a few ms of trimming, off this thread.
        drop(tokio::task::spawn_blocking(
            crate::memory::release_free_memory,
        ));
        self.failed = summary.failed;
        process.ready(&format!(
            "serving {} networks from {} ({} failed)",
            self.file.networks().len().saturating_sub(self.failed.len()),
            self.path.display(),
            self.failed.len()
        ));

        let signals = BlockingSignals::open().map_err(ReloadError::OpenSignals)?;
        self.next_poll = Instant::now() + POLL;
        self.next_retry = Instant::now() + RETRY;
        let mut pending = None;
        loop {
            // The loop wakes at least every POLL: it is alive as long as it comes round.
            process.alive();
            let wait = self
                .next_poll
                .min(self.next_retry)
                .saturating_duration_since(Instant::now());
            let signal = match pending.take() {
                Some(sig) => Some(sig),
                None => signals.wait(wait).map_err(ReloadError::ReadSignals)?,
            };
            let reason = match signal {
                Some(Signal::Hangup) => {
                    process.hangup();
                    Reason::Hangup
                }
                Some(Signal::Terminate | Signal::Interrupt) => break,
                None => match self.due() {
                    Some(reason) => reason,
                    None => continue,
                },
            };
            if !self.reload(runtime, &agent, reason) {
                continue;
            }
            // What the reload replaced is freed once the first answers from the new views are
            // out (before, it would compete with them for the CPU).
            match signals.wait(FREE_REPLACED_AFTER) {
                Ok(None) => {
                    agent.cache().release_replaced();
                    close_in_background(std::mem::take(&mut self.replaced_files));
                }
                // A signal in the meantime: taken by the next wait; this is freed after that
                // one.
                Ok(Some(sig)) => pending = Some(sig),
                Err(e) => return Err(ReloadError::ReadSignals(e)),
            }
        }
        process.stopping();
        runtime.block_on(agent.exit(self.teardown_on_exit));
        Ok(())
    }

    /// After a wait that no signal ended: the reason to reload, if the retry is due with networks
    /// failed, or the poll is due and the file changed.
    fn due(&mut self) -> Option<Reason> {
        let now = Instant::now();
        if now >= self.next_retry {
            self.next_retry = now + RETRY;
            (!self.failed.is_empty()).then_some(Reason::RetryFailed)
        } else {
            self.next_poll = now + POLL;
            (FileStamp::of(&self.path) != self.stamp).then_some(Reason::FileChanged)
        }
    }

    /// Reads the file again and applies it. False when the file could not be read or parsed:
    /// the running configuration is kept and nothing was replaced.
    fn reload(&mut self, runtime: &tokio::runtime::Runtime, agent: &Agent, reason: Reason) -> bool {
        let began = Instant::now();
        self.stamp = FileStamp::of(&self.path);
        let reparsed = match self.file.reload() {
            Ok(Reparsed::Unchanged) => Reparsed::Unchanged,
            Ok(how) => {
                log_rejected(&self.file);
                how
            }
            Err(e) if reason != Reason::RetryFailed => {
                tracing::error!(error = %e, "networks file not applied; keeping the running configuration");
                return false;
            }
            Err(_) => Reparsed::Unchanged,
        };
        let read = began.elapsed();
        let summary = runtime.block_on(agent.apply(self.file.networks()));
        let took = began.elapsed();
        // Recorded before the line below is logged: whoever waits for that line (an operator,
        // a test) then finds the event counted.
        if summary.added + summary.changed + summary.removed > 0 {
            agent.record_event(EventSource::File, took);
        }
        tracing::info!(
            %reason,
            ?reparsed,
            // How long the reload took: reading and parsing the file, then applying it (the
            // new views are served from within the apply).
            read_us = read.as_micros() as u64,
            apply_us = (took - read).as_micros() as u64,
            added = summary.added,
            changed = summary.changed,
            removed = summary.removed,
            unchanged = summary.unchanged,
            failed = summary.failed.len(),
            rolled_back = summary.rolled_back.len(),
            "reloaded networks file"
        );
        self.failed = summary.failed;
        self.replaced_files.extend(self.file.take_replaced());
        if self.replaced_files.len() > MAX_HELD_FILES {
            // Reloads without a pause: each held file keeps its page cache.
            close_in_background(std::mem::take(&mut self.replaced_files));
        }
        true
    }
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

#[cfg(test)]
mod tests {
    use super::Reason;

    /// The reasons are the `reason` field of the "reloaded networks file" log line, which
    /// operators and tests search for.
    #[test]
    fn reasons_read_as_before() {
        assert_eq!(Reason::Hangup.to_string(), "SIGHUP");
        assert_eq!(Reason::FileChanged.to_string(), "file changed");
        assert_eq!(Reason::RetryFailed.to_string(), "retrying failed networks");
    }
}
