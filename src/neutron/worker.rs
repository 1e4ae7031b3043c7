//! The per-network worker: every piece of work for a network (an event, a sync's
//! configuration or teardown) is queued on the network's slot, and one worker per busy network
//! applies them one at a time, in priority order, until the queue is empty. Networks run in
//! parallel; a network's updates never overlap (the agent relies on that).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::events::{Update, Work};
use super::{lock, Core};

/// Applies one network's queued updates; spawned by [`Core::submit`] when the network has no
/// worker running.
pub struct Worker {
    core: Arc<Core>,
    network_id: String,
}

impl Core {
    /// Queues work for a network and makes sure a processor runs for it.
    pub(super) fn submit(self: &Arc<Self>, network_id: String, priority: i64, work: Work) {
        let update = Update {
            seq: self.seq.fetch_add(1, Ordering::SeqCst),
            priority,
            work,
            received: Instant::now(),
        };
        let spawn = {
            let mut queues = lock(&self.queues);
            let slot = queues.entry(network_id.clone()).or_default();
            slot.queue.push(update);
            !std::mem::replace(&mut slot.running, true)
        };
        if spawn {
            self.processors.fetch_add(1, Ordering::SeqCst);
            let worker = Worker {
                core: self.clone(),
                network_id,
            };
            tokio::spawn(worker.run());
        }
    }
}

impl Worker {
    /// Processes the network's queue, then leaves the count of running processors (what
    /// shutdown waits for).
    pub async fn run(self) {
        self.process().await;
        self.core.processors.fetch_sub(1, Ordering::SeqCst);
    }

    /// Applies a network's updates one at a time until its queue is empty.
    async fn process(&self) {
        let network_id = &self.network_id;
        loop {
            let next = {
                let mut queues = lock(&self.core.queues);
                let Some(slot) = queues.get_mut(network_id) else {
                    return;
                };
                if self.core.stopping.load(Ordering::SeqCst) {
                    slot.running = false;
                    return;
                }
                match slot.queue.pop() {
                    Some(u) => u,
                    None => {
                        queues.remove(network_id);
                        return;
                    }
                }
            };
            let span = tracing::info_span!(
                "update",
                network_id = %network_id,
                work = next.work.name(),
                priority = next.priority,
                seq = next.seq,
            );
            let waited = next.received.elapsed();
            let (received, is_event) = (next.received, matches!(next.work, Work::Event(_)));
            let core = self.core.clone();
            let id = network_id.clone();
            let handled = tokio::spawn(
                async move {
                    tracing::debug!(queued_for = ?waited, "processing");
                    core.handle(&id, next.work).await
                }
                .instrument(span),
            )
            .await;
            match handled {
                Ok(()) if is_event => self
                    .core
                    .agent
                    .record_event(crate::agent::EventSource::Rpc, received.elapsed()),
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(network_id = %network_id, error = %e, "network update handler failed; scheduling a resync");
                    self.core
                        .schedule_resync("update handler failed", network_id);
                }
            }
        }
    }
}

impl Core {
    /// Applies one piece of a network's work.
    async fn handle(self: &Arc<Self>, network_id: &str, work: Work) {
        match work {
            Work::Sync { info, fetched_at } => {
                if self.stale_for_served(network_id, fetched_at) {
                    return;
                }
                // Bound the expensive part (new plumbing) like num_sync_threads does; networks
                // already served usually only need a view swap.
                let _permit = if self.agent.is_served(network_id) {
                    None
                } else {
                    self.sync_permits.acquire().await.ok()
                };
                self.configure_network(info, fetched_at).await;
            }
            Work::Teardown { fetched_at } => {
                if self.is_stale(network_id, fetched_at) {
                    tracing::info!("the sync's data predates changes applied since; refetching instead of tearing down");
                    self.schedule_resync("teardown decided on stale data", network_id);
                    return;
                }
                self.disable_network(network_id, "no longer hosted by this agent")
                    .await
            }
            Work::Event(ev) => {
                self.touch(network_id, None);
                self.handle_event(network_id, ev).await
            }
        }
    }
}
