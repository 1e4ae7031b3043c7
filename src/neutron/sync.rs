//! Resync scheduling (reference §7.3): `schedule_resync(reason, network_id=None)` records a
//! reason per network (`None` = everything) and wakes the resync loop. The loop waits for a
//! wake-up at most `resync_interval`, spaces syncs at least `resync_throttle` apart, then runs
//! one sync for all recorded networks (or a full sync if any reason was global). With no reason
//! recorded nothing is sent: there is no periodic full sync, as in Neutron.
//!
//! The sync itself ([`Core::sync_state`]) only fetches the active networks and queues
//! per-network work, so it never blocks events of other networks or the heartbeat. The loop
//! runs as the [`Resyncer`] task; the first full sync also starts a watch that marks the agent
//! ready once every network it queued is done.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::Instrument;

use crate::agent::is_uuid_like;

use super::events::{Work, SYNC_PRIORITY};
use super::{lock, Core};

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

/// The resync task: runs [`run`] with [`Core::sync_state`] as its sync.
pub struct Resyncer {
    pub core: Arc<Core>,
    pub stop: watch::Receiver<bool>,
}

impl Resyncer {
    /// Syncs whenever a resync is scheduled (throttled), until `stop` turns true.
    pub async fn run(self) {
        let core = self.core;
        let resync = core.resync.clone();
        let (interval, throttle) = (core.settings.resync_interval, core.settings.resync_throttle);
        run(
            &resync,
            interval,
            throttle,
            |scope| {
                let core = core.clone();
                async move { core.sync_state(scope).await }
            },
            self.stop,
        )
        .await
    }
}

impl Core {
    /// `sync_state(networks)`: fetch the active networks, queue a teardown for every network
    /// we hold that is not active, and a configuration for every active one in scope (all of
    /// them for a full sync, plus any we do not hold yet).
    pub async fn sync_state(self: &Arc<Self>, scope: SyncScope) {
        let span = tracing::info_span!("sync_state", scope = ?scope);
        async {
            tracing::info!("synchronizing state");
            let fetched_at = std::time::Instant::now();
            let active = match self.plugin.get_active_networks_info().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "unable to sync network state; will retry");
                    match &scope {
                        SyncScope::All => self.resync.schedule(e.to_string(), None),
                        SyncScope::Networks(ids) => {
                            for id in ids {
                                self.schedule_resync(e.to_string(), id);
                            }
                        }
                    }
                    return;
                }
            };
            let mut active_ids = BTreeSet::new();
            let mut infos = Vec::new();
            for r in active {
                match r {
                    Ok(info) => {
                        active_ids.insert(info.network.id.clone());
                        infos.push(info);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "ignoring a network neutron-server sent that cannot be parsed");
                        // Still active: not torn down for a typo (only a UUID can be ours).
                        if is_uuid_like(&e.network) {
                            active_ids.insert(e.network.clone());
                        }
                    }
                }
            }
            let mut held: BTreeSet<String> = lock(&self.known).clone();
            held.extend(self.agent.cache().network_ids());
            let mut removed = 0;
            for id in held.difference(&active_ids) {
                self.submit(id.clone(), SYNC_PRIORITY, Work::Teardown { fetched_at });
                removed += 1;
            }
            let mut queued = 0;
            for info in infos {
                let id = info.network.id.clone();
                if scope.includes(&id) || !held.contains(&id) {
                    self.submit(id, SYNC_PRIORITY, Work::Sync { info, fetched_at });
                    queued += 1;
                }
            }
            tracing::info!(
                active = active_ids.len(),
                to_configure = queued,
                to_remove = removed,
                "all active networks fetched; per-network work queued"
            );
            if matches!(scope, SyncScope::All)
                && !self.first_sync_watched.swap(true, Ordering::SeqCst)
            {
                let watch = FirstSyncWatch {
                    core: self.clone(),
                    networks: held.union(&active_ids).cloned().collect(),
                };
                tokio::spawn(watch.run());
            }
            // The parsed reply of a full sync (every network's JSON) has been freed.
            drop(tokio::task::spawn_blocking(
                crate::memory::release_free_memory,
            ));
        }
        .instrument(span)
        .await
    }
}

/// Marks the first full sync done once none of its networks has work queued or running
/// (a processor removes a network's slot when its queue is empty). Polled: it happens once.
struct FirstSyncWatch {
    core: Arc<Core>,
    /// The networks the first full sync touched: held before it, or active.
    networks: Vec<String>,
}

impl FirstSyncWatch {
    /// Waits for the first sync's networks to be done, then publishes how many networks are
    /// served (the agent's readiness).
    async fn run(self) {
        let core = self.core;
        loop {
            let busy = {
                let queues = lock(&core.queues);
                self.networks.iter().any(|id| queues.contains_key(id))
            };
            if !busy || core.stopping.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let served = core.agent.cache().network_ids().len();
        tracing::info!(networks = served, "first full sync applied");
        core.first_sync.send_replace(Some(served));
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
