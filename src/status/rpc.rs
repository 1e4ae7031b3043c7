//! The `/metrics` side of the RPC call statistics ([`crate::telemetry::rpc`]) and of the
//! resync scheduler.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::telemetry::rpc::{Row, RpcStats};

/// The `/metrics` side of [`RpcStats`] (register with `Status::register_collector`).
#[derive(Debug)]
pub struct RpcCollector(pub Arc<RpcStats>);

impl Collector for RpcCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let (rows, ages) = self.0.snapshot();
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
