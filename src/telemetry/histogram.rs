//! A fixed-bucket latency histogram of atomics (recording: two relaxed increments and one
//! add, no lock), encoded as a Prometheus histogram on scrape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::MetricEncoder;

/// Upper bounds in seconds: 100 µs to 30 s (a view swap takes well under a millisecond; a
/// replumb or an RPC call takes milliseconds to seconds).
pub const BOUNDS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    30.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last one is +Inf.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Writes the histogram's series (cumulative buckets, sum, count).
    pub fn encode(&self, mut enc: MetricEncoder<'_>) -> std::fmt::Result {
        // Per bucket: the encoder writes them cumulated.
        let mut total = 0;
        let mut buckets = Vec::with_capacity(BOUNDS.len() + 1);
        for (i, bound) in BOUNDS.iter().copied().chain([f64::INFINITY]).enumerate() {
            let n = self.buckets[i].load(Ordering::Relaxed);
            total += n;
            buckets.push((bound, n));
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        // The count is the buckets' total, so that the exposition is consistent even while
        // another thread records.
        enc.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, total, &buckets, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_buckets() {
        let h = Histogram::default();
        h.record(Duration::from_micros(50));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(60));
        assert_eq!(h.count(), 3);
        assert_eq!(h.buckets[0].load(Ordering::Relaxed), 1);
        assert_eq!(h.buckets[5].load(Ordering::Relaxed), 1); // <= 5 ms
        assert_eq!(h.buckets[BOUNDS.len()].load(Ordering::Relaxed), 1); // +Inf
    }
}
