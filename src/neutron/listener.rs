//! The RPC listener: takes what the transport delivers, parses each cast, drops what needs no
//! work here (stale or irrelevant ports, ids that are not UUIDs) and queues the rest on its
//! network's worker ([`Core::submit`]). It never waits for a network's work, so one busy network
//! cannot hold up events of the others.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::agent::is_uuid_like;
use crate::model::Port;
use crate::rpc::oslo::Context;
use crate::rpc::transport::TransportEvent;

use super::events::{parse_cast, Event, Work};
use super::stale::is_older_revision;
use super::{lock, Core};

/// The event loop: one cast at a time from the transport to [`Core::dispatch`], until `stop`
/// turns true or the transport stops delivering.
pub struct Listener {
    pub core: Arc<Core>,
    pub events: mpsc::Receiver<TransportEvent>,
    pub stop: watch::Receiver<bool>,
}

impl Listener {
    /// Dispatches events until stopped; a reconnection to the broker schedules a full sync
    /// (casts may have been lost meanwhile).
    pub async fn run(mut self) {
        loop {
            let ev = tokio::select! {
                ev = self.events.recv() => ev,
                _ = self.stop.changed() => return,
            };
            match ev {
                Some(TransportEvent::Cast {
                    method,
                    args,
                    context,
                }) => self.core.dispatch(&method, &args, &context),
                Some(TransportEvent::Reconnected) => {
                    tracing::info!("reconnected to the message broker: scheduling a full sync (casts may have been lost)");
                    self.core
                        .resync
                        .schedule("reconnected to the message broker", None);
                }
                None => {
                    tracing::info!("the transport stopped delivering events");
                    return;
                }
            }
        }
    }
}

impl Core {
    /// Entry point for a cast (runs on the event loop: must not block).
    pub fn dispatch(self: &Arc<Self>, method: &str, args: &serde_json::Value, ctx: &Context) {
        let request_id = ctx.request_id().unwrap_or("");
        let cast = match parse_cast(method, args) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%method, request_id, error = %e, "dropping a cast that cannot be handled");
                return;
            }
        };
        tracing::debug!(%method, request_id, priority = cast.priority, network_id = cast.event.network_id().unwrap_or(""), "cast received");
        // Ids become names on this host: anything but a Neutron UUID is refused here, before
        // it is queued, looked up or logged as a network of ours.
        if let Some(bad) = invalid_id(&cast.event) {
            tracing::error!(%method, request_id, error = %bad, "refusing a cast with an id that is not a UUID");
            return;
        }
        match &cast.event {
            Event::AgentUpdated { admin_state_up } => {
                tracing::info!(
                    ?admin_state_up,
                    request_id,
                    "agent updated by the admin: scheduling a full sync"
                );
                self.resync
                    .schedule(format!("Agent updated: {admin_state_up:?}"), None);
                return;
            }
            Event::PortCreate(p) | Event::PortUpdate(p) => {
                if !self.port_needs_configuration(&p.network_id, &p.port) {
                    tracing::debug!(%method, port_id = %p.port.id, device_owner = %p.port.device_owner, "port needs no DHCP configuration; ignored");
                    return;
                }
                if matches!(cast.event, Event::PortUpdate(_))
                    && self.is_port_message_stale(&p.network_id, &p.port)
                {
                    tracing::debug!(port_id = %p.port.id, revision = ?p.port.revision_number, "discarding stale port update");
                    return;
                }
            }
            _ => {}
        }
        let network_id = match (&cast.event, cast.event.network_id()) {
            (_, Some(n)) => n.to_owned(),
            (Event::SubnetDelete { subnet_id, .. }, None) => {
                match self.network_of_subnet(subnet_id) {
                    Some(n) => n,
                    None => {
                        tracing::debug!(%subnet_id, "subnet_delete_end for a subnet we do not serve");
                        return;
                    }
                }
            }
            _ => return,
        };
        self.submit(network_id, cast.priority, Work::Event(cast.event));
    }

    /// `port_requires_dhcp_configuration`, except that our own DHCP port always gets through
    /// (its changes re-plumb or resync the network).
    pub(super) fn port_needs_configuration(&self, network_id: &str, port: &Port) -> bool {
        port.wants_dhcp() || port.device_id == self.device_id(network_id)
    }

    pub(super) fn is_port_message_stale(&self, network_id: &str, port: &Port) -> bool {
        if lock(&self.deleted).contains(&port.id, Instant::now()) {
            return true;
        }
        let cached = self.agent.cache().get(network_id);
        let cached_rev = cached
            .as_ref()
            .and_then(|n| n.port(&port.id))
            .and_then(|p| p.revision_number);
        is_older_revision(cached_rev, port.revision_number)
    }

    pub(super) fn network_of_subnet(&self, subnet_id: &str) -> Option<String> {
        let cache = self.agent.cache();
        cache
            .network_ids()
            .into_iter()
            .find(|id| cache.get(id).is_some_and(|n| n.subnet(subnet_id).is_some()))
    }
}

/// The first id of an event that is not a Neutron UUID (network, subnet or port).
fn invalid_id(event: &Event) -> Option<crate::model::InvalidId> {
    let bad = |kind: &'static str, id: &str| {
        (!is_uuid_like(id)).then(|| crate::model::InvalidId {
            kind,
            id: id.to_owned(),
        })
    };
    if let Some(id) = event.network_id() {
        if let Some(e) = bad("network", id) {
            return Some(e);
        }
    }
    match event {
        Event::PortCreate(p) | Event::PortUpdate(p) => bad("port", &p.port.id),
        Event::PortDelete { port_id, .. } => bad("port", port_id),
        Event::SubnetDelete { subnet_id, .. } => bad("subnet", subnet_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn casts_with_ids_that_are_not_uuids_are_refused() {
        let net = "6f1a5d2e-9c3b-4e7a-8d21-3b5c7e9f0a11";
        let ok = parse_cast(
            "network_delete_end",
            &json!({"payload": {"network_id": net}}),
        )
        .unwrap();
        assert!(invalid_id(&ok.event).is_none());
        for bad in ["..", "x/../../y", "n1"] {
            let c = parse_cast(
                "network_delete_end",
                &json!({"payload": {"network_id": bad}}),
            )
            .unwrap();
            assert_eq!(invalid_id(&c.event).unwrap().id, bad);
            let c = parse_cast(
                "port_delete_end",
                &json!({"payload": {"network_id": net, "port_id": bad}}),
            )
            .unwrap();
            assert_eq!(invalid_id(&c.event).unwrap().kind, "port");
        }
    }
}
