//! What the control loops do for the process as a whole, whichever the mode.

use std::sync::Arc;

use crate::logfile::LogFile;
use crate::sdnotify::{Notifier, NotifyError};
use crate::standalone::reload::Lifecycle;
use crate::status::Status;

/// What the control loops do for the process as a whole, whichever the mode: the log file to
/// reopen on SIGHUP, and the service manager to tell about readiness, liveness and the stop.
pub struct Process {
    log_file: Option<LogFile>,
    notifier: Notifier,
}

impl Process {
    pub fn new(log_file: Option<LogFile>, notifier: Notifier) -> Process {
        Process { log_file, notifier }
    }

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

    fn notify(&self, what: &str, r: Result<(), NotifyError>) {
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot tell the service manager {what}");
        }
    }

    /// The service manager's watchdog interval, when it wants keep-alives.
    pub(super) fn watchdog_interval(&self) -> Option<std::time::Duration> {
        self.notifier.watchdog_interval()
    }
}

/// The process and, when it is on, the status endpoint: whom a running control loop tells that
/// it is ready, alive or stopping.
pub(super) struct Supervisor<'a> {
    pub(super) process: &'a Process,
    pub(super) status: Option<Arc<Status>>,
}

impl Lifecycle for Supervisor<'_> {
    fn ready(&self, status: &str) {
        if let Some(s) = &self.status {
            s.set_synced();
        }
        let p = self.process;
        p.notify("that the agent is ready", p.notifier.ready(status));
    }

    fn alive(&self) {
        let p = self.process;
        p.notify("that the agent is alive", p.notifier.watchdog());
        if let Some(s) = &self.status {
            s.tick();
        }
    }

    fn hangup(&self) {
        self.process.reopen_log();
    }

    fn stopping(&self) {
        let p = self.process;
        p.notify("that the agent stops", p.notifier.stopping());
    }
}
