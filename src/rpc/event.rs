//! What the transport tells the agent. Both the RPC server (casts) and the connection
//! supervisor (reconnects) send these, so the type sits below both.

use crate::rpc::oslo::Context;

/// What the transport tells the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportEvent {
    /// A decoded, de-duplicated, version-checked cast for the DHCP agent endpoint; `method`
    /// is one of `DHCP_AGENT_METHODS`.
    Cast {
        /// E.g. `port_update_end`.
        method: String,
        /// The keyword arguments, `{"payload": {...}}` from neutron-server.
        args: serde_json::Value,
        /// The sender's context (`request_id` for log correlation).
        context: Context,
    },
    /// The connection was re-established after a loss: casts may have been lost, resync.
    Reconnected,
}
