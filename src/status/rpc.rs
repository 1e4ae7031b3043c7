//! RPC call statistics per method (calls, errors, timeouts, latency), kept by the plugin API
//! and encoded on scrape. Calls are control-plane traffic (a few per second at most), so a
//! mutex-guarded map is fine here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

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
type Row = (&'static str, u64, u64, u64, Arc<Histogram>);

/// The `/metrics` side of [`RpcStats`] (register with `Status::register_collector`).
#[derive(Debug)]
pub struct RpcCollector(pub Arc<RpcStats>);

impl Collector for RpcCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let (rows, ages): (Vec<Row>, Vec<(&'static str, f64)>) = {
            let m = self.0.methods.lock().unwrap_or_else(|p| p.into_inner());
            let rows = m
                .iter()
                .map(|(k, v)| (*k, v.calls, v.errors, v.timeouts, v.latency.clone()))
                .collect();
            let ages = m
                .iter()
                .filter_map(|(k, v)| v.last_ok.map(|t| (*k, t.elapsed().as_secs_f64())))
                .collect();
            (rows, ages)
        };
        let mut f = enc.encode_descriptor(
            "rpc_last_success_age_seconds",
            "Seconds since a call of the method last succeeded; for report_state, the age of \
             the last heartbeat neutron-server accepted.",
            None,
            MetricType::Gauge,
        )?;
        for (method, age) in ages {
            ConstGauge::new(age).encode(f.encode_family(&[("method", method)])?)?;
        }
        type Get = fn(&Row) -> u64;
        let counters: [(&str, &str, Get); 3] = [
            (
                "rpc_calls",
                "RPC calls to neutron-server, by method.",
                |r| r.1,
            ),
            (
                "rpc_errors",
                "RPC calls that failed (timeouts included), by method.",
                |r| r.2,
            ),
            (
                "rpc_timeouts",
                "RPC calls that timed out, by method.",
                |r| r.3,
            ),
        ];
        for (name, help, get) in counters {
            let mut f = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for r in &rows {
                ConstCounter::new(get(r)).encode(f.encode_family(&[("method", r.0)])?)?;
            }
        }
        let mut f = enc.encode_descriptor(
            "rpc_call_seconds",
            "Latency of RPC calls to neutron-server, by method.",
            None,
            MetricType::Histogram,
        )?;
        for r in &rows {
            r.4.encode(f.encode_family(&[("method", r.0)])?)?;
        }
        Ok(())
    }
}

/// The `/metrics` side of the resync scheduler: syncs scheduled by reason class.
#[derive(Debug)]
pub struct ResyncCollector(pub Arc<crate::neutron::sync::Resync>);

impl Collector for ResyncCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let mut f = enc.encode_descriptor(
            "resyncs",
            "Syncs with neutron-server scheduled (of all networks or of one), by reason: \
             initial, sighup, agent_state (neutron-server said revived or new), agent_updated, \
             broker_reconnected, own_port_changed, stale_data, error (an RPC or a \
             configuration failed).",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in self.0.scheduled() {
            ConstCounter::new(n).encode(f.encode_family(&[("reason", reason)])?)?;
        }
        Ok(())
    }
}
