//! Drops values whose destruction is slow on a background thread of idle priority, so that it
//! never competes for a CPU with the DHCP responders or a reload.
//!
//! The networks file the agent keeps open (see [`crate::netfile::NetworksFile::take_replaced`])
//! frees its page cache when closed: about 0.5 ms of kernel work per 500 KB. Done on a normal
//! thread, a burst of them delays whatever request or reload runs meanwhile on a busy host.

use std::sync::mpsc::{self, Sender};

/// The sending end; dropping it ends the thread once everything sent is dropped.
pub struct Reaper<T: Send + 'static> {
    tx: Option<Sender<T>>,
}

impl<T: Send + 'static> Reaper<T> {
    /// Starts the thread; if it cannot be started, values are dropped where they are sent.
    pub fn start(name: &str) -> Reaper<T> {
        let (tx, rx) = mpsc::channel::<T>();
        let started = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                idle_priority();
                for value in rx {
                    drop(value);
                }
            });
        match started {
            Ok(_) => Reaper { tx: Some(tx) },
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the {name} thread; dropping inline");
                Reaper { tx: None }
            }
        }
    }

    pub fn drop_later(&self, value: T) {
        if let Some(tx) = &self.tx {
            // The thread only ends when `tx` is dropped, so the send cannot fail; if it did,
            // the value comes back and is dropped here.
            let _ = tx.send(value);
        }
    }
}

/// `SCHED_IDLE` for the calling thread: it runs only on otherwise idle CPUs (Linux).
fn idle_priority() {
    // SAFETY: sched_param is plain data; sched_setscheduler(0, ..) affects only this thread.
    let rc = unsafe {
        let param: libc::sched_param = std::mem::zeroed();
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param)
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the reaper's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn values_are_dropped_on_the_thread() {
        let reaper = Reaper::start("test-reaper");
        let value = Arc::new(());
        reaper.drop_later(value.clone());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&value) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(Arc::strong_count(&value), 1);
    }
}
