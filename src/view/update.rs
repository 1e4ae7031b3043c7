//! Port changes applied to a copy of a view instead of a full rebuild.
//!
//! A full build touches every port (criterion `build_view_1000_ports`); a reload or event
//! usually adds, changes or removes one port. The copy keeps the bindings of removed ports
//! (unreachable from the maps) until there are too many, then a full build starts afresh. The result must answer exactly
//! like a full build of the new network, so anything that a full build would compute
//! differently falls back to it (see [`NetworkView::update`]); `tests_update` checks the two
//! against each other on random change sequences.

use std::sync::Arc;

use super::{quiet_client_id, v4, Builder, NetworkView};
use crate::config::ServeConfig;
use crate::model::{Network, Port, OWNER_DHCP, ROUTER_INTERFACE_OWNERS};

/// Beyond this many changed ports a full build costs about the same.
const MAX_CHANGED: usize = 64;
/// Garbage (bindings of removed ports) tolerated before a full build.
const MAX_DEAD: usize = 64;

impl NetworkView {
    /// The view of `new`, made from this view (of `old`, with the same own DHCP port, and which
    /// `old` outlives: ports are known by address) by taking out the ports that are not
    /// in `new` and adding those that are not in `old`; ports are compared by pointer, as a
    /// reload or an event shares the unchanged `Arc<Port>`s. `None` when only a full build
    /// answers right:
    /// - anything but the port list changed;
    /// - a changed port feeds the subnets' options (DHCP ports: DNS servers; router and
    ///   metadata ports: routes);
    /// - an added port that is not at the end of the list shares a MAC, client-id or address
    ///   with another port (lookups depend on port order, and additions go last);
    /// - too many ports changed, or too much garbage accumulated.
    pub fn update(&self, old: &Network, new: &Network, cfg: &ServeConfig) -> Option<NetworkView> {
        let same_network = old.id == new.id
            && old.admin_state_up == new.admin_state_up
            && old.mtu == new.mtu
            && old.subnets == new.subnets
            && old.non_local_subnets == new.non_local_subnets;
        if !same_network {
            return None;
        }
        let (o, n) = (&old.ports, &new.ports);
        let prefix = o
            .iter()
            .zip(n)
            .take_while(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        let suffix = o
            .iter()
            .rev()
            .zip(n.iter().rev())
            .take(o.len().min(n.len()) - prefix)
            .take_while(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        let removed = &o[prefix..o.len() - suffix];
        let added = &n[prefix..n.len() - suffix];
        if removed.len() + added.len() > MAX_CHANGED
            || removed.iter().chain(added).any(|p| feeds_subnet_options(p))
            || self.too_much_garbage()
        {
            return None;
        }
        let mut view = self.clone();
        for p in removed.iter().filter(|p| p.wants_dhcp()) {
            view.remove_port(p)?;
            view.v6.remove_port(p);
        }
        // Appended ports come after every other port, as in a full build; others must not
        // share a key with any port for the order of lookups not to matter.
        let appended = suffix == 0;
        for p in added.iter().filter(|p| p.wants_dhcp()) {
            let in_order = appended || (view.keys_fresh(p) && view.v6.keys_fresh(p));
            if !in_order {
                return None;
            }
            let v6 = std::mem::take(&mut view.v6);
            let mut builder = Builder::resume(new, cfg, view);
            builder.add_port(p);
            view = builder.view;
            view.v6 = crate::view::v6::add_port(v6, new, cfg, p);
        }
        Some(view)
    }

    fn too_much_garbage(&self) -> bool {
        let dead = self.dead as usize;
        (dead > MAX_DEAD && dead * 2 > self.bindings.len()) || self.v6.too_much_garbage()
    }

    /// Takes a port's bindings out of the maps; `None` if the port is unknown (the view does
    /// not match the old network: build it afresh).
    fn remove_port(&mut self, port: &Arc<Port>) -> Option<()> {
        let addr = Arc::as_ptr(port) as usize;
        let at = self.slots.iter().position(|s| s.port == addr)?;
        let slot = self.slots.swap_remove(at);
        let (start, len) = slot.bindings;
        for idx in start..start + len {
            let ip = self.bindings[idx as usize].ip;
            self.by_mac.remove(&port.mac_address, idx);
            self.by_ip.remove(&ip, idx);
            if let Some(id) = &slot.client_id {
                self.by_client_id.remove(id, idx);
            }
        }
        self.dead += len;
        Some(())
    }

    /// Whether no port has the MAC, client-id or any IPv4 address of `port`.
    fn keys_fresh(&self, port: &Port) -> bool {
        let ip_taken = port
            .fixed_ips
            .iter()
            .filter_map(|f| v4(&f.ip_address))
            .any(|ip| self.by_ip.contains_key(&ip));
        let id_taken =
            quiet_client_id(port).is_some_and(|id| self.by_client_id.contains_key(&id[..]));
        !ip_taken && !id_taken && !self.by_mac.contains_key(&port.mac_address)
    }
}

/// The devices whose ports other ports' options are computed from.
fn feeds_subnet_options(p: &Port) -> bool {
    let owner = p.device_owner.as_str();
    owner == OWNER_DHCP
        || owner == super::OWNER_DISTRIBUTED
        || ROUTER_INTERFACE_OWNERS.contains(&owner)
}
