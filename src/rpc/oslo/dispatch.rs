//! Which endpoint serves a request, and the failure a refused call gets back (oslo's
//! `RPCDispatcher`, docs/reference/oslo-messaging-rabbit.md §6.2).

use super::failure::RemoteError;
use super::request::Request;
use super::version::RpcVersion;

/// What one endpoint object serves: its `target` and its public methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// `target.namespace`.
    pub namespace: Option<&'a str>,
    /// `target.version` (`None` in Python counts as 1.0).
    pub version: RpcVersion,
    /// Method names callable over RPC.
    pub methods: &'a [&'a str],
}

/// The DHCP agent's RPC API (`DhcpAgent` endpoint: target 1.0, no namespace; every method is
/// a cast with `args == {"payload": {...}}`).
pub const DHCP_AGENT_METHODS: &[&str] = &[
    "network_create_end",
    "network_update_end",
    "network_delete_end",
    "subnet_create_end",
    "subnet_update_end",
    "subnet_delete_end",
    "port_create_end",
    "port_update_end",
    "port_delete_end",
    "agent_updated",
];

/// The one endpoint of the DHCP agent.
pub const DHCP_AGENT_ENDPOINT: Endpoint<'static> = Endpoint {
    namespace: None,
    version: RpcVersion::new(1, 0),
    methods: DHCP_AGENT_METHODS,
};

/// Why a request cannot be dispatched, worded as oslo's dispatcher words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// An endpoint matched namespace and version but has no such (public) method.
    #[error("Endpoint does not support RPC method {method}")]
    NoSuchMethod {
        /// The requested method.
        method: String,
    },
    /// No endpoint matched namespace and version.
    #[error("Endpoint does not support RPC version {version}. Attempted method: {method}")]
    UnsupportedVersion {
        /// The requested version string (`1.0` when absent).
        version: String,
        /// The requested method.
        method: String,
    },
}

impl DispatchError {
    /// The failure oslo sends back for calls (`oslo_messaging.rpc.dispatcher`, `args = [message]`).
    pub fn to_remote_error(&self) -> RemoteError {
        let class = match self {
            DispatchError::NoSuchMethod { .. } => "NoSuchMethod",
            DispatchError::UnsupportedVersion { .. } => "UnsupportedVersion",
        };
        RemoteError::new("oslo_messaging.rpc.dispatcher", class, self.to_string())
    }
}

/// `RPCDispatcher.dispatch` without the call: the index of the first endpoint whose namespace
/// and version match and that has the method. Names starting with `_` are refused like
/// `DefaultRPCAccessPolicy` does. An unparsable version matches nothing.
pub fn select_endpoint(req: &Request, endpoints: &[Endpoint<'_>]) -> Result<usize, DispatchError> {
    let version = req.version.as_deref().unwrap_or("1.0");
    let requested = RpcVersion::parse(version).ok();
    let mut found_compatible = false;
    for (i, ep) in endpoints.iter().enumerate() {
        let compatible = requested.is_some_and(|r| ep.version.can_serve(&r));
        if ep.namespace != req.namespace.as_deref() || !compatible {
            continue;
        }
        if !req.method.starts_with('_') && ep.methods.contains(&req.method.as_str()) {
            return Ok(i);
        }
        found_compatible = true;
    }
    if found_compatible {
        Err(DispatchError::NoSuchMethod {
            method: req.method.clone(),
        })
    } else {
        Err(DispatchError::UnsupportedVersion {
            version: version.to_string(),
            method: req.method.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dispatch_rules() {
        let cast = |method: &str, version: Option<&str>| {
            let mut r = Request::new(method, json!({"payload": {}}), "u");
            r.version = version.map(str::to_string);
            r
        };
        let eps = [DHCP_AGENT_ENDPOINT];
        assert_eq!(
            select_endpoint(&cast("port_update_end", Some("1.0")), &eps),
            Ok(0)
        );
        assert_eq!(select_endpoint(&cast("agent_updated", None), &eps), Ok(0));
        assert_eq!(
            select_endpoint(&cast("sync_state", Some("1.0")), &eps),
            Err(DispatchError::NoSuchMethod {
                method: "sync_state".into()
            })
        );
        assert!(matches!(
            select_endpoint(&cast("_private", Some("1.0")), &eps),
            Err(DispatchError::NoSuchMethod { .. })
        ));
        let e =
            select_endpoint(&cast("port_update_end", Some("1.1")), &eps).expect_err("1.1 > 1.0");
        assert_eq!(
            e.to_string(),
            "Endpoint does not support RPC version 1.1. Attempted method: port_update_end"
        );
        let remote = e.to_remote_error();
        assert_eq!(
            (remote.module.as_str(), remote.class.as_str()),
            ("oslo_messaging.rpc.dispatcher", "UnsupportedVersion")
        );
        assert_eq!(remote.args, vec![json!(e.to_string())]);
        assert!(select_endpoint(&cast("port_update_end", Some("x")), &eps).is_err());
        let with_ns = cast("port_update_end", Some("1.0")).with_namespace("ns1");
        assert!(matches!(
            select_endpoint(&with_ns, &eps),
            Err(DispatchError::UnsupportedVersion { .. })
        ));
        // First matching endpoint that has the method wins.
        let other = Endpoint {
            namespace: None,
            version: RpcVersion::new(1, 5),
            methods: &["get_ports"],
        };
        assert_eq!(
            select_endpoint(
                &cast("get_ports", Some("1.0")),
                &[DHCP_AGENT_ENDPOINT, other]
            ),
            Ok(1)
        );
    }
}
