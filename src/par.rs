//! Short batches spread over a few threads made for the batch: parsing a large networks file,
//! serving hundreds of namespaces again after a restart, closing their sockets at a stop.
//!
//! The threads are scoped: they end with the call, and the caller only waits. That is what
//! lets a job move its thread into another network namespace ([`crate::device::BatchThread`])
//! without ever leaving the caller, or a thread of any pool, in it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Threads worth starting for a batch: one per core, at most `max`.
pub fn threads(max: usize) -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, max.max(1)))
}

/// Why an item of [`map`] has no result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("the job panicked")]
    Panicked,
    #[error("cannot start a thread: {0}")]
    NoThread(String),
}

/// Runs `job` on every item on up to `threads` threads named `name`, each taking the next
/// item as soon as it is free, and returns the results in item order. A job that panics is
/// that item's error; if no thread can be started at all, every item's.
pub fn map<T, R, F>(name: &str, items: Vec<T>, threads: usize, job: F) -> Vec<Result<R, BatchError>>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let next = AtomicUsize::new(0);
    let run = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = slots.get(i) else {
                return done;
            };
            let item = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            let Some(item) = item else { continue };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(item)));
            done.push((i, r.map_err(|_| BatchError::Panicked)));
        }
    };
    let mut out: Vec<Option<Result<R, BatchError>>> = (0..slots.len()).map(|_| None).collect();
    let mut failure = None;
    std::thread::scope(|s| {
        let mut running = Vec::new();
        for _ in 0..threads.clamp(1, slots.len().max(1)) {
            match std::thread::Builder::new()
                .name(name.to_owned())
                .spawn_scoped(s, run)
            {
                Ok(h) => running.push(h),
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        for h in running {
            // `run` catches the jobs' panics; a thread can only fail outside them.
            let Ok(done) = h.join() else { continue };
            for (i, r) in done {
                out[i] = Some(r);
            }
        }
    });
    let missing = BatchError::NoThread(failure.unwrap_or_else(|| "a thread ended early".into()));
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(missing.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_item_order_and_a_panic_stays_with_its_item() {
        let items: Vec<u32> = (0..100).collect();
        let out = map("par-test", items, 3, |i| {
            if i == 42 {
                panic!("job panics");
            }
            i * 2
        });
        assert_eq!(out.len(), 100);
        for (i, r) in out.into_iter().enumerate() {
            if i == 42 {
                assert_eq!(r, Err(BatchError::Panicked));
            } else {
                assert_eq!(r, Ok(i as u32 * 2));
            }
        }
        assert!(map("par-test", Vec::<u8>::new(), 2, |x| x).is_empty());
    }

    #[test]
    fn threads_is_at_least_one_and_at_most_max() {
        assert_eq!(threads(1), 1);
        assert!((1..=4).contains(&threads(4)));
    }
}
