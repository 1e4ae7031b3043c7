//! What a control source asks the agent for. Both sources (the Neutron RPC side in
//! [`crate::neutron`], the networks file in [`crate::standalone`]) hand the agent this one type,
//! so the agent does not know which of them it talks to.

use crate::model::{Network, Port};

/// A network to serve and the DHCP port this agent owns on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredNetwork {
    pub network: Network,
    pub own_port_id: String,
}

impl DesiredNetwork {
    pub fn own_port(&self) -> Option<&Port> {
        self.network.port(&self.own_port_id)
    }
}
