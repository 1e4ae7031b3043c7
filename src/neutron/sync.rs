//! Resync scheduling (reference §7.3): `schedule_resync(reason, network_id=None)` records a
//! reason per network (`None` = everything) and wakes the resync loop. The loop waits for a
//! wake-up at most `resync_interval`, spaces syncs at least `resync_throttle` apart, then runs
//! one sync for all recorded networks (or a full sync if any reason was global). With no reason
//! recorded nothing is sent: there is no periodic full sync, as in Neutron.
//!
//! The sync itself ([`super::Core::sync_state`]) only fetches the active networks and queues
//! per-network work, so it never blocks events of other networks or the heartbeat.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// What one sync covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncScope {
    All,
    Networks(BTreeSet<String>),
}

impl SyncScope {
    /// Whether `network_id` must be (re)configured by this sync.
    pub fn includes(&self, network_id: &str) -> bool {
        match self {
            SyncScope::All => true,
            SyncScope::Networks(ids) => ids.contains(network_id),
        }
    }
}

/// Why resyncs are scheduled, in a few fixed classes: the reasons themselves are free text
/// (often an error message), unbounded as metric labels.
pub const RESYNC_REASONS: [&str; 8] = [
    "initial",
    "sighup",
    "agent_state",
    "agent_updated",
    "broker_reconnected",
    "own_port_changed",
    "stale_data",
    "error",
];

/// The class in [`RESYNC_REASONS`] of a reason given to [`Resync::schedule`].
pub fn reason_class(reason: &str) -> usize {
    match reason {
        "initial sync" => 0,
        "SIGHUP" => 1,
        "registered" | "Agent has just been revived" | "Agent has just been registered" => 2,
        r if r.starts_with("Agent updated") => 3,
        "reconnected to the message broker" => 4,
        "Agent port was modified" | "Agent port was deleted" => 5,
        "events arrived during configuration"
        | "synced data was stale"
        | "teardown decided on stale data" => 6,
        _ => 7,
    }
}

/// Pending resync reasons.
#[derive(Debug, Default)]
pub struct Resync {
    /// Resyncs scheduled so far, by [`reason_class`] (for the status endpoint).
    scheduled: [std::sync::atomic::AtomicU64; RESYNC_REASONS.len()],
    reasons: Mutex<BTreeMap<Option<String>, Vec<String>>>,
    notify: Notify,
    /// Set by [`Resync::schedule_now`]: the next sync skips the throttle.
    urgent: AtomicBool,
}

impl Resync {
    fn reasons(&self) -> MutexGuard<'_, BTreeMap<Option<String>, Vec<String>>> {
        self.reasons.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `schedule_resync(reason, network_id)`; `None` resyncs every network.
    pub fn schedule(&self, reason: impl Into<String>, network_id: Option<&str>) {
        let reason = reason.into();
        tracing::debug!(network_id = network_id.unwrap_or("*"), %reason, "resync scheduled");
        self.scheduled[reason_class(&reason)].fetch_add(1, Ordering::Relaxed);
        self.reasons()
            .entry(network_id.map(str::to_owned))
            .or_default()
            .push(reason);
        self.notify.notify_one();
    }

    /// Resyncs scheduled so far (of all networks or of one), by reason class.
    pub fn scheduled(&self) -> [(&'static str, u64); RESYNC_REASONS.len()] {
        std::array::from_fn(|i| (RESYNC_REASONS[i], self.scheduled[i].load(Ordering::Relaxed)))
    }

    /// Like [`Resync::schedule`], without waiting for the throttle.
    pub fn schedule_now(&self, reason: impl Into<String>, network_id: Option<&str>) {
        self.urgent.store(true, Ordering::SeqCst);
        self.schedule(reason, network_id);
    }

    /// Takes every recorded reason and says what to sync.
    pub fn take(&self) -> Option<SyncScope> {
        let reasons = std::mem::take(&mut *self.reasons());
        if reasons.is_empty() {
            return None;
        }
        for (net, r) in &reasons {
            tracing::debug!(network_id = net.as_deref().unwrap_or("*"), reasons = ?r, "resync");
        }
        if reasons.contains_key(&None) {
            return Some(SyncScope::All);
        }
        Some(SyncScope::Networks(reasons.into_keys().flatten().collect()))
    }

    /// True when reasons are waiting.
    pub fn is_pending(&self) -> bool {
        !self.reasons().is_empty()
    }
}

/// The resync loop (`_periodic_resync_helper`). `sync` runs one sync for a scope.
pub async fn run<F, Fut>(
    resync: &Resync,
    interval: Duration,
    throttle: Duration,
    mut sync: F,
    mut stop: watch::Receiver<bool>,
) where
    F: FnMut(SyncScope) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut last: Option<Instant> = None;
    loop {
        let woken = tokio::select! {
            _ = resync.notify.notified() => true,
            _ = tokio::time::sleep(interval) => false,
            _ = stop.changed() => return,
        };
        // Throttle: at most one sync per `throttle`, unless a reason is urgent (also one that
        // arrives while we wait).
        while woken && !resync.urgent.swap(false, Ordering::SeqCst) {
            let Some(remaining) = last.and_then(|l| throttle.checked_sub(l.elapsed())) else {
                break;
            };
            if remaining.is_zero() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(remaining) => break,
                _ = resync.notify.notified() => {}
                _ = stop.changed() => return,
            }
        }
        if let Some(scope) = resync.take() {
            last = Some(Instant::now());
            // A sync can wait a long time for the broker (rpc_response_timeout, doubled after
            // each timeout); a stop must not wait for it.
            tokio::select! {
                () = sync(scope) => {}
                _ = stop.changed() => return,
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reasons_collapse_into_one_scope() {
        let r = Resync::default();
        assert_eq!(r.take(), None);
        r.schedule("a", Some("n1"));
        r.schedule("b", Some("n2"));
        r.schedule("c", Some("n1"));
        assert_eq!(
            r.take(),
            Some(SyncScope::Networks(
                ["n1".to_string(), "n2".to_string()].into()
            ))
        );
        assert_eq!(r.take(), None);
        r.schedule("x", Some("n1"));
        r.schedule("global", None);
        assert_eq!(r.take(), Some(SyncScope::All));
        assert!(SyncScope::All.includes("anything"));
    }

    #[tokio::test]
    async fn loop_throttles_and_never_syncs_without_a_reason() {
        let ms = Duration::from_millis;
        let r = Arc::new(Resync::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let runs: Arc<Mutex<Vec<(Instant, SyncScope)>>> = Arc::default();
        let task = {
            let (r, runs) = (r.clone(), runs.clone());
            tokio::spawn(async move {
                run(
                    &r,
                    ms(200),
                    ms(300),
                    |scope| {
                        runs.lock().unwrap().push((Instant::now(), scope));
                        async {}
                    },
                    stop_rx,
                )
                .await
            })
        };
        let count = || runs.lock().unwrap().len();
        tokio::time::sleep(ms(500)).await;
        assert_eq!(count(), 0, "no reason, no sync");
        r.schedule("first", None);
        tokio::time::sleep(ms(20)).await;
        assert_eq!(count(), 1, "first sync at once");
        r.schedule("second", Some("n1"));
        r.schedule("third", Some("n2"));
        tokio::time::sleep(ms(100)).await;
        assert_eq!(count(), 1, "throttled");
        tokio::time::sleep(ms(400)).await;
        {
            let runs = runs.lock().unwrap();
            assert_eq!(runs.len(), 2, "{runs:?}");
            assert_eq!(runs[0].1, SyncScope::All);
            assert!(runs[1].0 - runs[0].0 >= ms(300), "throttled");
            assert_eq!(
                runs[1].1,
                SyncScope::Networks(["n1".to_string(), "n2".to_string()].into())
            );
        }
        // schedule_now skips the throttle.
        r.schedule_now("registered", None);
        tokio::time::sleep(ms(30)).await;
        assert_eq!(count(), 3);
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }

    #[test]
    fn resyncs_are_counted_by_a_bounded_reason_class() {
        let r = Resync::default();
        r.schedule_now("initial sync", None);
        r.schedule("SIGHUP", None);
        r.schedule("reconnected to the message broker", None);
        r.schedule("Agent updated: Some(true)", None);
        r.schedule("get_network_info: timed out after 60s", Some("n"));
        r.schedule("Agent has just been revived", None);
        let counts: std::collections::HashMap<_, _> = r.scheduled().into_iter().collect();
        assert_eq!(counts["initial"], 1);
        assert_eq!(counts["sighup"], 1);
        assert_eq!(counts["broker_reconnected"], 1);
        assert_eq!(counts["agent_updated"], 1);
        assert_eq!(counts["agent_state"], 1);
        assert_eq!(counts["error"], 1);
        assert_eq!(counts["stale_data"], 0);
    }
}
