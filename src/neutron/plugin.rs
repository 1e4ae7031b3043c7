//! The agent → neutron-server RPC API: Neutron's `DhcpPluginApi` (topic `q-plugin`) and
//! `PluginReportStateAPI.report_state` (topic `q-reports-plugin`), typed (reference §4, §6).
//!
//! Method names, argument names and versions are exactly the Python agent's. Replies are parsed
//! into model types here, at the edge; a reply that does not parse is a
//! [`PluginError::BadReply`] naming the method. Remote exceptions keep their class
//! ([`PluginError::is_remote`]), because the agent branches on `NetworkNotFound` and
//! `IpAddressGenerationFailure`.
//!
//! Timeouts follow neutron-lib's `_BackingOffContextWrapper`: each method starts at
//! `rpc_response_timeout`; after a timeout the caller sleeps a random time up to that timeout
//! and the method's timeout doubles, up to `rpc_response_max_timeout`. `report_state` has its
//! own fixed timeout (`report_interval`) and no back-off.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::model::{ModelError, Network, Port};
use crate::rpc::client::{RpcClient, RpcError};
use crate::rpc::oslo::iso_utc_timestamp;
use crate::rpc::topology::{PLUGIN_TOPIC, REPORTS_TOPIC};

/// `device_id` of a DHCP port kept for the next agent (`DEVICE_ID_RESERVED_DHCP_PORT`).
pub const DEVICE_ID_RESERVED_DHCP_PORT: &str = "reserved_dhcp_port";

/// Why a plugin call failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{method}: {source}")]
    Rpc {
        method: &'static str,
        #[source]
        source: Box<RpcError>,
    },
    #[error("{method}: unusable reply: {reason}")]
    BadReply {
        method: &'static str,
        reason: String,
    },
}

impl PluginError {
    /// True when neutron-server raised an exception of class `class`.
    pub fn is_remote(&self, class: &str) -> bool {
        matches!(self, PluginError::Rpc { source, .. } if source.is_remote(class))
    }

    /// The remote exception class, if the server raised.
    pub fn remote_class(&self) -> Option<&str> {
        match self {
            PluginError::Rpc { source, .. } => match source.as_ref() {
                RpcError::Remote(e) => Some(&e.class),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, PluginError::Rpc { source, .. } if matches!(**source, RpcError::Timeout { .. }))
    }
}

/// A network dict as neutron-server sends it, parsed, with the few fields the agent needs that
/// are not part of [`Network`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInfo {
    pub network: Network,
    /// Used when creating our DHCP port.
    pub project_id: String,
    /// Routed network (`segments` present): served as one instance here (see the report).
    pub has_segments: bool,
}

impl NetworkInfo {
    pub fn parse(v: &Value) -> Result<NetworkInfo, ModelError> {
        let network = Network::from_json(v)?;
        let project_id = v
            .get("project_id")
            .or_else(|| v.get("tenant_id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let has_segments = v
            .get("segments")
            .and_then(Value::as_array)
            .is_some_and(|s| !s.is_empty());
        Ok(NetworkInfo {
            network,
            project_id,
            has_segments,
        })
    }
}

/// A port dict (from a reply or an event): the model port plus its `network_id`.
pub fn parse_port(v: &Value) -> Result<(Port, Option<String>), String> {
    let port: Port = serde_path_to_error::deserialize(v).map_err(|e| {
        let id = v.get("id").and_then(Value::as_str).unwrap_or("<no id>");
        format!("port {id}: field {}: {}", e.path(), e.inner())
    })?;
    let network_id = v
        .get("network_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((port, network_id))
}

/// What `report_state` answered (`AgentExtRpcCallback.report_state`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportReply {
    /// The server did not know this agent.
    New,
    Alive,
    /// The server had considered the agent dead: resync everything.
    Revived,
    /// `null`: the report's `time` was older than the server's start.
    Stale,
    Other(String),
}

impl ReportReply {
    fn from_value(v: &Value) -> ReportReply {
        match v {
            Value::Null => ReportReply::Stale,
            Value::String(s) => match s.as_str() {
                "new" => ReportReply::New,
                "alive" => ReportReply::Alive,
                "revived" => ReportReply::Revived,
                other => ReportReply::Other(other.to_owned()),
            },
            other => ReportReply::Other(other.to_string()),
        }
    }
}

/// The typed plugin API. Cheap to share (`Arc`); every call builds a fresh admin context.
pub struct PluginApi {
    client: RpcClient,
    host: String,
    rpc_response_timeout: Duration,
    rpc_response_max_timeout: Duration,
    /// Current timeout per method (neutron-lib's `_METHOD_TIMEOUTS`).
    timeouts: Mutex<HashMap<&'static str, Duration>>,
    /// Calls, errors and latency per method, for the status endpoint's metrics.
    stats: Arc<crate::telemetry::rpc::RpcStats>,
}

impl PluginApi {
    pub fn new(
        client: RpcClient,
        host: impl Into<String>,
        rpc_response_timeout: Duration,
        rpc_response_max_timeout: Duration,
    ) -> PluginApi {
        PluginApi {
            client,
            host: host.into(),
            rpc_response_timeout,
            rpc_response_max_timeout: rpc_response_max_timeout.max(rpc_response_timeout),
            timeouts: Mutex::new(HashMap::new()),
            stats: Arc::default(),
        }
    }

    /// Per-method call statistics (`crate::telemetry::rpc`).
    pub fn stats(&self) -> &Arc<crate::telemetry::rpc::RpcStats> {
        &self.stats
    }

    fn record(&self, method: &'static str, began: std::time::Instant, r: &Result<Value, RpcError>) {
        use crate::telemetry::rpc::CallResult;
        let result = match r {
            Ok(_) => CallResult::Ok,
            Err(RpcError::Timeout { .. }) => CallResult::Timeout,
            Err(_) => CallResult::Error,
        };
        self.stats.record(method, began.elapsed(), result);
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn timeout_of(&self, method: &'static str) -> Duration {
        let t = self.timeouts.lock().unwrap_or_else(|p| p.into_inner());
        t.get(method).copied().unwrap_or(self.rpc_response_timeout)
    }

    /// A `q-plugin` call with neutron-lib's per-method timeout back-off.
    async fn call(
        &self,
        method: &'static str,
        args: Value,
        version: &str,
    ) -> Result<Value, PluginError> {
        let timeout = self.timeout_of(method);
        let began = std::time::Instant::now();
        let r = self
            .client
            .call(PLUGIN_TOPIC, method, args, version, Some(timeout))
            .await;
        self.record(method, began, &r);
        match r {
            Ok(v) => Ok(v),
            Err(source @ RpcError::Timeout { .. }) => {
                let (wait, new) = backoff_after_timeout(
                    timeout,
                    self.rpc_response_timeout,
                    self.rpc_response_max_timeout,
                    random_unit(),
                );
                tracing::error!(
                    method,
                    wait_secs = wait.as_secs(),
                    "timeout in RPC method; waiting before the next attempt. If the server is \
                     not down, consider increasing rpc_response_timeout"
                );
                if new > timeout {
                    tracing::warn!(
                        method,
                        new_timeout_secs = new.as_secs(),
                        "increasing the timeout of this method; restart the agent to restore it"
                    );
                    self.timeouts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(method, new);
                }
                tokio::time::sleep(wait).await;
                Err(PluginError::Rpc {
                    method,
                    source: Box::new(source),
                })
            }
            Err(source) => Err(PluginError::Rpc {
                method,
                source: Box::new(source),
            }),
        }
    }

    /// `get_active_networks_info(host, enable_dhcp_filter=False)` (1.1). Each network is parsed
    /// on its own: one malformed network does not hide the others.
    pub async fn get_active_networks_info(
        &self,
    ) -> Result<Vec<Result<NetworkInfo, ModelError>>, PluginError> {
        const M: &str = "get_active_networks_info";
        let v = self
            .call(
                M,
                json!({"host": self.host, "enable_dhcp_filter": false}),
                "1.1",
            )
            .await?;
        let list = match v {
            Value::Array(l) => l,
            Value::Null => Vec::new(),
            other => {
                return Err(PluginError::BadReply {
                    method: M,
                    reason: format!("expected a list, got {}", kind(&other)),
                })
            }
        };
        Ok(list.iter().map(NetworkInfo::parse).collect())
    }

    /// `get_network_info(network_id, host)` (1.0); `None` when the network is gone.
    pub async fn get_network_info(
        &self,
        network_id: &str,
    ) -> Result<Option<NetworkInfo>, PluginError> {
        const M: &str = "get_network_info";
        let v = self
            .call(
                M,
                json!({"network_id": network_id, "host": self.host}),
                "1.0",
            )
            .await?;
        if v.is_null() {
            return Ok(None);
        }
        NetworkInfo::parse(&v)
            .map(Some)
            .map_err(|e| PluginError::BadReply {
                method: M,
                reason: e.to_string(),
            })
    }

    /// `create_dhcp_port(port={"port": {...}}, host)` (1.1); `None` when the server refused.
    pub async fn create_dhcp_port(&self, port: Value) -> Result<Option<Port>, PluginError> {
        const M: &str = "create_dhcp_port";
        let v = self
            .call(M, json!({"port": port, "host": self.host}), "1.1")
            .await?;
        port_reply(M, &v)
    }

    /// `update_dhcp_port(port_id, port={"port": {...}}, host)` (1.1); `None` when the port is
    /// gone or not ours to update.
    pub async fn update_dhcp_port(
        &self,
        port_id: &str,
        port: Value,
    ) -> Result<Option<Port>, PluginError> {
        const M: &str = "update_dhcp_port";
        let v = self
            .call(
                M,
                json!({"port_id": port_id, "port": port, "host": self.host}),
                "1.1",
            )
            .await?;
        port_reply(M, &v)
    }

    /// `release_dhcp_port(network_id, device_id, host)` (1.0).
    pub async fn release_dhcp_port(
        &self,
        network_id: &str,
        device_id: &str,
    ) -> Result<(), PluginError> {
        self.call(
            "release_dhcp_port",
            json!({"network_id": network_id, "device_id": device_id, "host": self.host}),
            "1.0",
        )
        .await
        .map(|_| ())
    }

    /// `get_dhcp_port(port_id)` (1.8).
    pub async fn get_dhcp_port(&self, port_id: &str) -> Result<Option<Port>, PluginError> {
        const M: &str = "get_dhcp_port";
        let v = self.call(M, json!({"port_id": port_id}), "1.8").await?;
        port_reply(M, &v)
    }

    /// `dhcp_ready_on_ports(port_ids)` (1.5).
    pub async fn dhcp_ready_on_ports(&self, port_ids: &[String]) -> Result<(), PluginError> {
        self.call(
            "dhcp_ready_on_ports",
            json!({ "port_ids": port_ids }),
            "1.5",
        )
        .await
        .map(|_| ())
    }

    /// `report_state(agent_state={"agent_state": state}, time=utcnow)` (1.4) on
    /// `q-reports-plugin`, always as a call, with a fixed timeout and no back-off.
    pub async fn report_state(
        &self,
        agent_state: Value,
        timeout: Duration,
    ) -> Result<ReportReply, PluginError> {
        let args = report_state_args(agent_state, &iso_utc_timestamp(SystemTime::now()));
        let began = std::time::Instant::now();
        let r = self
            .client
            .call(REPORTS_TOPIC, "report_state", args, "1.4", Some(timeout))
            .await;
        self.record("report_state", began, &r);
        let v = r.map_err(|source| PluginError::Rpc {
            method: "report_state",
            source: Box::new(source),
        })?;
        Ok(ReportReply::from_value(&v))
    }
}

/// The wire arguments of `report_state`.
pub fn report_state_args(agent_state: Value, time: &str) -> Value {
    json!({"agent_state": {"agent_state": agent_state}, "time": time})
}

fn port_reply(method: &'static str, v: &Value) -> Result<Option<Port>, PluginError> {
    if v.is_null() {
        return Ok(None);
    }
    parse_port(v)
        .map(|(p, _)| Some(p))
        .map_err(|reason| PluginError::BadReply { method, reason })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// neutron-lib's reaction to a timeout of a call that used `timeout`: how long to sleep
/// (uniform in `[0, min(timeout, rpc_response_timeout)]`, `unit` in `[0, 1)`) and the method's
/// next timeout (doubled, capped at `max`).
pub fn backoff_after_timeout(
    timeout: Duration,
    rpc_response_timeout: Duration,
    max: Duration,
    unit: f64,
) -> (Duration, Duration) {
    let wait = timeout
        .min(rpc_response_timeout)
        .mul_f64(unit.clamp(0.0, 1.0));
    let next = (timeout * 2).min(max);
    (wait, next)
}

/// A random number in `[0, 1)` from std's randomly keyed hasher (no `rand` dependency; this
/// only spreads retries, it is not cryptography).
pub(crate) fn random_unit() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_replies() {
        assert_eq!(ReportReply::from_value(&json!("new")), ReportReply::New);
        assert_eq!(ReportReply::from_value(&json!("alive")), ReportReply::Alive);
        assert_eq!(
            ReportReply::from_value(&json!("revived")),
            ReportReply::Revived
        );
        assert_eq!(ReportReply::from_value(&Value::Null), ReportReply::Stale);
        assert_eq!(
            ReportReply::from_value(&json!(3)),
            ReportReply::Other("3".into())
        );
    }

    #[test]
    fn report_args_shape() {
        let a = report_state_args(json!({"host": "h"}), "2026-08-07T16:35:51.123456");
        assert_eq!(
            a,
            json!({"agent_state": {"agent_state": {"host": "h"}},
                   "time": "2026-08-07T16:35:51.123456"})
        );
    }

    #[test]
    fn timeout_backoff_doubles_up_to_the_max_and_waits_at_most_the_timeout() {
        let s = Duration::from_secs;
        let (wait, next) = backoff_after_timeout(s(60), s(60), s(600), 0.5);
        assert_eq!((wait, next), (s(30), s(120)));
        let (wait, next) = backoff_after_timeout(s(480), s(60), s(600), 0.999_999);
        assert!(wait <= s(60));
        assert_eq!(next, s(600));
        let (wait, _) = backoff_after_timeout(s(60), s(60), s(600), 0.0);
        assert_eq!(wait, Duration::ZERO);
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn network_info_keeps_project_and_segments() {
        let v = json!({"id": "n1", "project_id": "p1", "subnets": [], "ports": [],
                       "segments": [{"id": "s"}]});
        let i = NetworkInfo::parse(&v).unwrap();
        assert_eq!(i.project_id, "p1");
        assert!(i.has_segments);
        let v = json!({"id": "n1", "tenant_id": "t1"});
        let i = NetworkInfo::parse(&v).unwrap();
        assert_eq!(i.project_id, "t1");
        assert!(!i.has_segments);
    }

    #[test]
    fn ports_parse_with_network_id_and_errors_name_the_field() {
        let (p, n) = parse_port(&json!({"id": "p1", "network_id": "n1",
            "mac_address": "fa:16:3e:00:00:01", "fixed_ips": []}))
        .unwrap();
        assert_eq!(p.id, "p1");
        assert_eq!(n.as_deref(), Some("n1"));
        let e = parse_port(&json!({"id": "p2", "mac_address": "nope"})).unwrap_err();
        assert!(e.contains("p2") && e.contains("mac_address"), "{e}");
    }
}
