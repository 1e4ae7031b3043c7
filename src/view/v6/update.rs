//! The DHCPv6 half of [`crate::view::NetworkView::update`]: ports taken out of and added to a
//! copy of the view.

use std::sync::Arc;

use super::{Builder6, NetworkView6};
use crate::config::ServeConfig;
use crate::model::{Network, Port};
use crate::view::client::quiet_client_id;

/// Garbage (clients of removed ports) tolerated before a full build.
const MAX_DEAD: usize = 64;

impl NetworkView6 {
    pub(crate) fn too_much_garbage(&self) -> bool {
        let dead = self.dead_clients as usize;
        dead > MAX_DEAD && dead * 2 > self.clients.len()
    }

    /// Takes a port's client out of the maps (nothing if the port had none).
    pub(crate) fn remove_port(&mut self, port: &Arc<Port>) {
        self.note_vm_port(port, false);
        let addr = Arc::as_ptr(port) as usize;
        let Some(at) = self.slots.iter().position(|s| s.port == addr) else {
            return;
        };
        let slot = self.slots.swap_remove(at);
        let client = self.clients[slot.client as usize];
        self.by_mac.remove(&client.mac, slot.client);
        if let Some(id) = &slot.duid {
            self.by_duid.remove(id, slot.client);
        }
        self.dead_clients += 1;
        self.dead_bindings += client.bindings.1;
    }

    /// Whether no client has the MAC or the client-id (DUID) of `port`.
    pub(crate) fn keys_fresh(&self, port: &Port) -> bool {
        let duid_taken = quiet_client_id(port).is_some_and(|id| self.by_duid.contains_key(&id[..]));
        !duid_taken && !self.by_mac.contains_key(&port.mac_address)
    }
}

/// Adds one port as a full build does (nothing when no IPv6 subnet is served).
pub(crate) fn add_port(
    view: NetworkView6,
    net: &Network,
    cfg: &ServeConfig,
    port: &Arc<Port>,
) -> NetworkView6 {
    let mut view = view;
    view.note_vm_port(port, true);
    if view.subnets.is_empty() {
        return view;
    }
    let mut builder = Builder6::resume(net, cfg, view);
    builder.add_port(port);
    builder.view
}
