//! RPC call statistics per method (calls, errors, timeouts, latency), kept by the plugin API
//! client; [`crate::status`] encodes them on scrape. Calls are control-plane traffic (a few per
//! second at most), so a mutex-guarded map is fine here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::histogram::Histogram;

#[derive(Debug, Default)]
struct Method {
    calls: u64,
    errors: u64,
    timeouts: u64,
    latency: Arc<Histogram>,
    /// When a call last succeeded (for `report_state`: the heartbeat's age).
    last_ok: Option<std::time::Instant>,
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallResult {
    Ok,
    Timeout,
    Error,
}

#[derive(Debug, Default)]
pub struct RpcStats {
    methods: Mutex<BTreeMap<&'static str, Method>>,
}

impl RpcStats {
    pub fn record(&self, method: &'static str, took: Duration, result: CallResult) {
        let latency = {
            let mut m = self.methods.lock().unwrap_or_else(|p| p.into_inner());
            let e = m.entry(method).or_default();
            e.calls += 1;
            match result {
                CallResult::Ok => e.last_ok = Some(std::time::Instant::now()),
                CallResult::Timeout => {
                    e.errors += 1;
                    e.timeouts += 1;
                }
                CallResult::Error => e.errors += 1,
            }
            e.latency.clone()
        };
        latency.record(took);
    }
}

/// A method's counters as encoded: name, calls, errors, timeouts, latency.
pub type Row = (&'static str, u64, u64, u64, Arc<Histogram>);

impl RpcStats {
    /// Every method's counters, and for those that ever succeeded, the seconds since they last
    /// did.
    pub fn snapshot(&self) -> (Vec<Row>, Vec<(&'static str, f64)>) {
        let m = self.methods.lock().unwrap_or_else(|p| p.into_inner());
        let rows = m
            .iter()
            .map(|(k, v)| (*k, v.calls, v.errors, v.timeouts, v.latency.clone()))
            .collect();
        let ages = m
            .iter()
            .filter_map(|(k, v)| v.last_ok.map(|t| (*k, t.elapsed().as_secs_f64())))
            .collect();
        (rows, ages)
    }
}
