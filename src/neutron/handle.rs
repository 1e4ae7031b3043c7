//! The handlers of one network's work, after Neutron's `DhcpAgent` (`enable_dhcp_helper`,
//! `disable_dhcp_helper`, `refresh_dhcp_helper`, `configure_dhcp_for_network`, `_port_create`,
//! `_port_update`, `reload_allocations`, `_port_delete`): each fetches what it needs from
//! neutron-server, hands the agent a [`DesiredNetwork`] and reports the ports it served. They
//! run on the network's [`super::worker::Worker`], one at a time per network.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::agent::{Configured, DesiredNetwork};
use crate::model::{Network, Port};
use crate::neutron::plugin::{NetworkInfo, PluginError};
use crate::rpc::oslo::{IP_ADDRESS_GENERATION_FAILURE, NETWORK_NOT_FOUND};

use super::events::Event;
use super::ports::{self, PortError};
use super::{lock, Core};

impl Core {
    pub(super) async fn handle_event(self: &Arc<Self>, network_id: &str, ev: Event) {
        match ev {
            Event::NetworkCreate { .. } => self.enable_network(network_id).await,
            Event::NetworkUpdate {
                admin_state_up: true,
                ..
            } => self.enable_network(network_id).await,
            Event::NetworkUpdate {
                admin_state_up: false,
                ..
            } => self.disable_network(network_id, "network admin down").await,
            Event::NetworkDelete { .. } => {
                self.disable_network(network_id, "network deleted or removed from this agent")
                    .await
            }
            Event::SubnetUpdate { .. } => self.refresh_network(network_id).await,
            Event::SubnetDelete { subnet_id, .. } => {
                let ours = self
                    .agent
                    .cache()
                    .get(network_id)
                    .is_some_and(|n| n.subnet(&subnet_id).is_some());
                if ours {
                    self.refresh_network(network_id).await;
                } else {
                    tracing::debug!(%subnet_id, "deleted subnet is not on a network we serve");
                }
            }
            Event::PortCreate(p) => self.port_create(network_id, p.port).await,
            Event::PortUpdate(p) => self.port_update(network_id, p.port).await,
            Event::PortDelete { port_id, .. } => self.port_delete(network_id, &port_id).await,
            Event::AgentUpdated { .. } => {}
        }
    }

    /// A failed plugin call for a network (`call_driver`'s error handling): resync unless the
    /// server ran out of IPs; `NetworkNotFound` is expected when a network goes away.
    pub(super) fn plugin_failed(&self, network_id: &str, what: &str, e: &PluginError) {
        if !e.is_remote(IP_ADDRESS_GENERATION_FAILURE) {
            self.schedule_resync(format!("{what}: {e}"), network_id);
        }
        if e.is_remote(NETWORK_NOT_FOUND) {
            tracing::debug!(error = %e, "network has been removed from the agent or deleted; cannot {what}");
        } else {
            tracing::error!(error = %e, "cannot {what}");
        }
    }

    /// `enable_dhcp_helper`: fetch and configure.
    pub(super) async fn enable_network(self: &Arc<Self>, network_id: &str) {
        let fetched_at = Instant::now();
        match self.plugin.get_network_info(network_id).await {
            Err(e) => self.plugin_failed(network_id, "get the network's info", &e),
            Ok(None) => tracing::debug!("network has been deleted"),
            Ok(Some(info)) => self.configure_network(info, fetched_at).await,
        }
    }

    /// `refresh_dhcp_helper`: re-fetch a served network after a subnet change.
    pub(super) async fn refresh_network(self: &Arc<Self>, network_id: &str) {
        if self.agent.cache().get(network_id).is_none() {
            return self.enable_network(network_id).await;
        }
        let fetched_at = Instant::now();
        match self.plugin.get_network_info(network_id).await {
            Err(e) => self.plugin_failed(network_id, "get the network's info", &e),
            Ok(None) => tracing::debug!("network has been deleted"),
            Ok(Some(info)) => {
                if !info.network.subnets.iter().any(|s| s.enable_dhcp) {
                    self.disable_network(network_id, "no DHCP-enabled subnet left")
                        .await;
                } else {
                    self.configure_network(info, fetched_at).await;
                }
            }
        }
    }

    /// `configure_dhcp_for_network`: our DHCP port, then plumbing and serving; then every port
    /// of the network is reported ready. `fetched_at`: when `info` was requested.
    pub(super) async fn configure_network(
        self: &Arc<Self>,
        info: NetworkInfo,
        fetched_at: Instant,
    ) {
        let mut info = info;
        // Refused before anything is asked of neutron-server or changed on the host; a bad VM
        // port is refused alone.
        match info.network.validate() {
            Ok((_, refused)) => {
                for e in refused {
                    tracing::error!(error = %e, "refusing a port neutron-server sent");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "refusing a network neutron-server sent; it keeps its running configuration, if any");
                return;
            }
        }
        let network_id = info.network.id.clone();
        if !info.network.admin_state_up {
            tracing::debug!("network is admin down; not configuring it");
            return;
        }
        if !info.network.subnets.iter().any(|s| s.enable_dhcp) {
            if self.holds(&network_id) {
                self.disable_network(&network_id, "no DHCP-enabled subnet")
                    .await;
            }
            return;
        }
        if info.has_segments {
            tracing::debug!("routed network: served as one instance with its local subnets");
        }
        let device_id = self.device_id(&network_id);
        let stale = self.is_stale(&network_id, fetched_at);
        if stale {
            // Not served (else the data would have been dropped): it may still lack a DHCP port
            // we obtained after it was fetched; never create a second one.
            let own = lock(&self.touched)
                .get(&network_id)
                .and_then(|t| t.own_port.clone());
            if let Some(own) = own {
                if !info.network.ports.iter().any(|p| p.device_id == device_id) {
                    info.network.put_port(own);
                }
            }
        }
        let (port, source) = match ports::setup_dhcp_port(&self.plugin, &info, &device_id).await {
            Ok(p) => p,
            Err(PortError::Conflict { .. }) => {
                // No resync (neutron): an event about the network's state will follow.
                tracing::warn!(
                    "cannot set up our DHCP port: conflict with the network's current state"
                );
                return;
            }
            Err(e @ PortError::SubnetMismatch { .. }) => {
                tracing::warn!(error = %e, "error configuring our DHCP port; scheduling a resync");
                self.schedule_resync(e.to_string(), &network_id);
                return;
            }
            Err(PortError::Plugin(e)) => {
                self.plugin_failed(&network_id, "set up our DHCP port", &e);
                return;
            }
        };
        lock(&self.known).insert(network_id.clone());
        if source != ports::PortSource::Existing {
            self.touch(&network_id, Some(port.clone()));
        }
        let mut network = info.network;
        self.keep_newer_ports(&mut network);
        network.put_port(port.clone());
        let port_ids: Vec<String> = network.ports.iter().map(|p| p.id.clone()).collect();
        let started = Instant::now();
        let desired = DesiredNetwork {
            network,
            own_port_id: port.id.clone(),
        };
        // After a restart: answer on the plumbing the previous run left for this very plan
        // while `configure` verifies it.
        self.agent.adopt(&desired).await;
        match self.agent.configure(&desired).await {
            Ok(Configured::NotServed) => {}
            Ok(outcome) => {
                tracing::info!(?outcome, dhcp_port = %port.id, port_source = ?source, took = ?started.elapsed(), "network configured");
                self.ready.add_normal(port_ids);
                if stale {
                    tracing::info!(
                        "events arrived while the network was being configured; resyncing it"
                    );
                    self.schedule_resync("events arrived during configuration", &network_id);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot serve network; scheduling a resync");
                self.schedule_resync(e.to_string(), &network_id);
            }
        }
    }

    /// `disable_dhcp_helper`: stop serving, remove the plumbing, release our DHCP port. Does
    /// nothing for a network we never held (fanout deletes reach every agent).
    pub(super) async fn disable_network(self: &Arc<Self>, network_id: &str, why: &str) {
        if let Some(t) = lock(&self.touched).get_mut(network_id) {
            t.own_port = None;
        }
        if !self.holds(network_id) {
            tracing::debug!(
                reason = why,
                "not a network of this agent; nothing to disable"
            );
            return;
        }
        tracing::info!(reason = why, "disabling DHCP for network");
        self.agent.disable(network_id).await;
        let device_id = self.device_id(network_id);
        match self.plugin.release_dhcp_port(network_id, &device_id).await {
            Ok(()) => {
                lock(&self.known).remove(network_id);
                tracing::info!(%device_id, "released our DHCP port");
            }
            Err(e) => {
                // Still known: the next sync tears it down (and releases) again.
                tracing::error!(error = %e, "cannot release our DHCP port; scheduling a resync");
                self.schedule_resync(format!("release_dhcp_port: {e}"), network_id);
            }
        }
    }

    /// `_port_create`: duplicate-IP check, then `reload_allocations`.
    pub(super) async fn port_create(self: &Arc<Self>, network_id: &str, port: Port) {
        let Some(net) = self.agent.cache().get(network_id) else {
            tracing::debug!(port_id = %port.id, "port on a network we do not serve; ignored");
            return;
        };
        if let Err(e) = net.check_port(&port) {
            tracing::error!(error = %e, "refusing a port neutron-server sent");
            return;
        }
        let new_ips: HashSet<IpAddr> = port.fixed_ips.iter().map(|f| f.ip_address).collect();
        if let Some(dup) = net.ports.iter().find(|c| {
            (c.id != port.id || c.mac_address != port.mac_address)
                && c.fixed_ips.iter().any(|f| new_ips.contains(&f.ip_address))
        }) {
            let reason = format!(
                "Duplicate IP addresses found, port in cache: {}, created port: {}. DHCP cache is out of sync",
                dup.id, port.id
            );
            tracing::warn!(%reason, "scheduling a resync of the network");
            self.schedule_resync(reason, network_id);
            return;
        }
        self.reload_allocations(network_id, &net, port).await;
    }

    /// `_port_update`.
    pub(super) async fn port_update(self: &Arc<Self>, network_id: &str, port: Port) {
        if self.is_port_message_stale(network_id, &port) {
            tracing::debug!(port_id = %port.id, "discarding stale port update");
            return;
        }
        let Some(net) = self.agent.cache().get(network_id) else {
            tracing::debug!(port_id = %port.id, "port on a network we do not serve; ignored");
            return;
        };
        if let Err(e) = net.check_port(&port) {
            tracing::error!(error = %e, "refusing a port update neutron-server sent; the port keeps its running configuration");
            return;
        }
        self.reload_allocations(network_id, &net, port).await;
    }

    /// `reload_allocations(port, network, prio=True)`: the payload replaces the cached port and
    /// the view is swapped. Our own DHCP port: subnets changed → resync the network; IPs
    /// changed → re-plumb (the plan differs).
    pub(super) async fn reload_allocations(
        self: &Arc<Self>,
        network_id: &str,
        net: &Network,
        port: Port,
    ) {
        let Some(own_port_id) = self.agent.cache().own_port_id(network_id) else {
            return;
        };
        if port.device_id == self.device_id(network_id) {
            let subnets = |p: Option<&Port>| -> BTreeSet<String> {
                p.map(|p| p.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect())
                    .unwrap_or_default()
            };
            if port.id != own_port_id || subnets(net.port(&port.id)) != subnets(Some(&port)) {
                tracing::info!(port_id = %port.id, "our DHCP port was modified; scheduling a resync");
                self.schedule_resync("Agent port was modified", network_id);
                return;
            }
        }
        let port_id = port.id.clone();
        let mut network = net.clone();
        network.put_port(port);
        match self
            .agent
            .configure(&DesiredNetwork {
                network,
                own_port_id,
            })
            .await
        {
            Ok(Configured::NotServed) => {}
            Ok(outcome) => {
                tracing::debug!(?outcome, %port_id, "port applied");
                self.ready.add_prio([port_id]);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot apply port; scheduling a resync");
                self.schedule_resync(e.to_string(), network_id);
            }
        }
    }

    /// `_port_delete`.
    pub(super) async fn port_delete(self: &Arc<Self>, network_id: &str, port_id: &str) {
        lock(&self.deleted).add(port_id, Instant::now());
        self.ready.discard(&HashSet::from([port_id.to_owned()]));
        let Some(net) = self.agent.cache().get(network_id) else {
            tracing::debug!(%port_id, "deleted port is on a network we do not serve");
            return;
        };
        let Some(port) = net.port(port_id) else {
            tracing::debug!(%port_id, "deleted port is unknown; nothing to remove");
            return;
        };
        let own = self.agent.cache().own_port_id(network_id).as_deref() == Some(port_id)
            || port.device_id == self.device_id(network_id);
        if own {
            tracing::warn!(%port_id, "our DHCP port was deleted: disabling the network and resyncing it");
            self.disable_network(network_id, "our DHCP port was deleted")
                .await;
            self.schedule_resync("Agent port was deleted", network_id);
            return;
        }
        let mut network = (*net).clone();
        network.ports.retain(|p| p.id != port_id);
        let own_port_id = self
            .agent
            .cache()
            .own_port_id(network_id)
            .unwrap_or_default();
        match self
            .agent
            .configure(&DesiredNetwork {
                network,
                own_port_id,
            })
            .await
        {
            Ok(outcome) => tracing::debug!(?outcome, %port_id, "port removed"),
            Err(e) => {
                tracing::error!(error = %e, "cannot remove port; scheduling a resync");
                self.schedule_resync(e.to_string(), network_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn put_port_replaces_or_appends() {
        let mut n = Network::from_json(&json!({"id": "n", "ports": [
            {"id": "a", "mac_address": "fa:16:3e:00:00:01", "revision_number": 1}]}))
        .unwrap();
        let (mut a2, _) = crate::neutron::plugin::parse_port(
            &json!({"id": "a", "mac_address": "fa:16:3e:00:00:02", "revision_number": 2}),
        )
        .unwrap();
        n.put_port(a2.clone());
        assert_eq!(n.ports.len(), 1);
        assert_eq!(n.ports[0].revision_number, Some(2));
        a2.id = "b".into();
        n.put_port(a2);
        assert_eq!(n.ports.len(), 2);
    }
}
