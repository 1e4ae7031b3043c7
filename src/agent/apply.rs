//! Applying what is desired: [`Agent::apply`] converges the served set, [`Agent::configure`]
//! serves one network (plumbing, view swap, services) and rolls a failure back,
//! [`Agent::disable`] stops one and removes everything made for it, and [`Agent::exit`] /
//! [`Agent::shutdown`] end the run.

use std::collections::HashSet;

use futures_util::StreamExt;
use tracing::Instrument;

use crate::device::PlumbPlan;
use crate::dhcp::server::{Endpoint, Sockets};
use crate::model::NetworkId;

use super::services::{stop_metadata, NetworkServices};
use super::{Agent, AgentError, ApplySummary, Configured, DesiredNetwork, Served, PARALLELISM};

impl Agent {
    /// Makes the served set equal to `desired`. Networks whose data did not change are not
    /// touched at all; a network that fails is reported in the summary and left for a retry,
    /// the others still converge.
    ///
    /// Only the networks that differ are copied (for `configure`): a copy touches every port's
    /// reference count, and the unchanged networks may hold most of the ports.
    pub async fn apply(&self, desired: &[DesiredNetwork]) -> ApplySummary {
        let mut summary = ApplySummary::default();
        let wanted: HashSet<String> = desired.iter().map(|d| d.network.id.clone()).collect();
        let mut stale: Vec<String> = self
            .cache
            .network_ids()
            .into_iter()
            .filter(|id| !wanted.contains(id))
            .collect();
        let failed: Vec<String> = self.failed().iter().cloned().collect();
        for id in failed {
            if !wanted.contains(&id) && !stale.contains(&id) {
                stale.push(id);
            }
        }
        summary.removed = stale.len();
        futures_util::stream::iter(stale)
            .for_each_concurrent(PARALLELISM, |id| async move { self.disable(&id).await })
            .await;
        let mut changed = Vec::new();
        for d in desired {
            let id = &d.network.id;
            let same = self.is_served(id)
                && !self.dirty().contains(id)
                && self.cache.get(id).is_some_and(|n| *n == d.network)
                && self.cache.own_port_id(id).as_deref() == Some(d.own_port_id.as_str());
            if same {
                summary.unchanged += 1;
            } else {
                changed.push(d);
            }
        }
        let existed: HashSet<String> = changed
            .iter()
            .filter(|d| self.is_served(&d.network.id))
            .map(|d| d.network.id.clone())
            .collect();
        // First serve what a previous run left plumbed for exactly these plans, then verify
        // (or make) the plumbing of everything: after a restart every network answers again
        // before the slower netlink checks start. (Only a start has such records: the first
        // check is all a reload pays.)
        let fresh: Vec<&DesiredNetwork> = changed
            .iter()
            .copied()
            .filter(|d| !existed.contains(&d.network.id))
            .collect();
        if fresh.iter().any(|d| self.has_recorded_plumbing(d)) {
            self.adopt_all(&fresh);
        }
        // Networks are independent: configuring several at once overlaps their kernel round
        // trips. (Futures are collected in a loop rather than built by a closure over
        // references: the compiler cannot prove such closures `Send` inside a spawned task.)
        let mut configures = Vec::with_capacity(changed.len());
        for d in changed {
            let was_served = existed.contains(&d.network.id);
            configures.push(async move { (&d.network.id, was_served, self.configure(d).await) });
        }
        let mut results = futures_util::stream::iter(configures).buffer_unordered(PARALLELISM);
        while let Some((id, existed, result)) = results.next().await {
            match result {
                Ok(_) if existed => summary.changed += 1,
                Ok(_) => summary.added += 1,
                Err(e) if self.is_served(id) => {
                    tracing::error!(network_id = %id, error = %e, "cannot configure network; still served on its last good configuration");
                    summary.rolled_back.push(id.clone());
                }
                Err(e) => {
                    tracing::error!(network_id = %id, error = %e, "cannot configure network");
                    summary.failed.push(id.clone());
                }
            }
        }
        summary.failed.sort();
        summary.rolled_back.sort();
        summary
    }

    /// Configures (or reconfigures) one network: plumbing first, then the view swap, then the
    /// server, so a client is never answered from a namespace that lacks the addresses it names.
    /// When only ports or options changed, this is a view swap and nothing else.
    pub async fn configure(&self, d: &DesiredNetwork) -> Result<Configured, AgentError> {
        let span = tracing::info_span!("configure", network_id = %d.network.id);
        let began = std::time::Instant::now();
        let r = self.configure_inner(d).instrument(span.clone()).await;
        match &r {
            Ok(Configured::ViewUpdated) => self.book.record_configure(false, began.elapsed()),
            Ok(Configured::Started | Configured::Replumbed) => {
                self.book.record_configure(true, began.elapsed())
            }
            _ => {}
        }
        match &r {
            // Its teardown ([`Agent::disable`]) already forgot it, or recorded why it failed.
            Ok(Configured::NotServed) => {}
            Ok(_) => self.book.note(&d.network.id, None),
            Err(e) => self.book.note(&d.network.id, Some(e.to_string())),
        }
        // --- migration hook (src/migrate.rs): once we serve, stop what the Python agent left.
        if matches!(r, Ok(Configured::Started)) {
            let state_path = self
                .state_dir
                .parent()
                .unwrap_or(&self.state_dir)
                .to_path_buf();
            let id = d.network.id.clone();
            let in_span = span.clone();
            let take_over =
                move || in_span.in_scope(|| crate::migrate::take_over(&state_path, &id));
            if let Err(e) = tokio::task::spawn_blocking(take_over).await {
                tracing::error!(network_id = %d.network.id, error = %e, "taking over from the Python agent failed");
            }
            // dnsmasq may have held port 53 until now: a DNS service that could not bind
            // starts now (haproxy, holding port 80, is gone before the metadata proxy below).
            self.ensure_dns(&d.network.id).await;
        }
        // --- end of migration hook
        if matches!(r, Ok(c) if c != Configured::NotServed) {
            self.update_metadata(d).instrument(span).await;
        }
        r
    }

    /// Starts a served network's DNS service if it has none: its port may have been held by a
    /// process stopped since (the Python agent's dnsmasq, [`crate::migrate`]).
    async fn ensure_dns(&self, network_id: &str) {
        let (namespace, plan) = match self.served().get(network_id) {
            Some(s) if s.services.dns.is_none() => {
                (s.services.dhcp.endpoint.namespace.clone(), s.plan.clone())
            }
            _ => return,
        };
        let Some(view) = self.cache.view(network_id) else {
            return;
        };
        let started = self.services.start_dns(network_id, &namespace, &plan, view);
        let Some(dns) = started.await else {
            return;
        };
        let unused = match self.served().get_mut(network_id) {
            Some(s) if s.services.dns.is_none() => {
                s.services.dns = Some(dns);
                None
            }
            _ => Some(dns),
        };
        if let Some(dns) = unused {
            dns.stop().await;
        }
    }

    /// Keeps, restarts or stops a served network's metadata proxy after a change
    /// ([`NetworkServices::update_metadata`]).
    async fn update_metadata(&self, d: &DesiredNetwork) {
        let Some(settings) = &self.services.metadata else {
            return;
        };
        let id = &d.network.id;
        let (served_on, current) = match self.served().get_mut(id) {
            Some(s) => (
                Some((
                    s.services.dhcp.endpoint.clone(),
                    s.plan
                        .addresses
                        .iter()
                        .any(|a| a.ip() == crate::device::plan::METADATA_V6),
                )),
                s.services.metadata.take(),
            ),
            None => (None, None),
        };
        let running = NetworkServices::update_metadata(settings, d, served_on, current).await;
        let unused = match self.served().get_mut(id) {
            Some(s) => {
                s.services.metadata = running;
                None
            }
            None => running,
        };
        stop_metadata(id, unused).await;
    }

    async fn configure_inner(&self, d: &DesiredNetwork) -> Result<Configured, AgentError> {
        // The gate: nothing on the host is touched for a network that fails validation, and
        // every name and path below comes from the validated id.
        let nid = d.network.check().map_err(|source| AgentError::Invalid {
            source: Box::new(source),
        })?;
        let id = d.network.id.clone();
        if !d.network.is_servable() {
            tracing::info!("network is admin down or has no DHCP-enabled subnet; not serving it");
            self.disable(&id).await;
            return Ok(Configured::NotServed);
        }
        let port = d.own_port().ok_or_else(|| AgentError::OwnPortMissing {
            network: id.clone(),
            port: d.own_port_id.clone(),
        })?;
        let plan = PlumbPlan::for_network(&d.network, port, self.devices.config());
        let same_plan = self
            .served()
            .get(&id)
            .is_some_and(|s| s.plan == plan && s.verified)
            && !self.dirty().contains(&id);
        if same_plan {
            // Only ports/options changed: a view swap is all it takes.
            let view = self.cache.upsert_borrowed(&d.network, &d.own_port_id);
            tracing::info!(
                bindings = view.load().v4_binding_count(),
                "network updated in place"
            );
            return Ok(Configured::ViewUpdated);
        }
        self.record_intent(&nid, &plan);
        self.pin_server_duid(&nid, port.mac_address);
        let plugged = match self.devices.setup(&plan).await {
            Ok(plugged) => plugged,
            Err(source) => {
                self.recover(&nid, &plan).await;
                return Err(AgentError::Device {
                    network: id.clone(),
                    source,
                });
            }
        };
        self.remember(&nid, &plugged.ifname, &self.plumbing_fingerprint(&plan));
        let view = self.cache.upsert_borrowed(&d.network, &d.own_port_id);
        let endpoint = Endpoint {
            network_id: id.clone(),
            namespace: plugged.namespace.clone(),
            ifname: plugged.ifname.clone(),
            ifindex: plugged.ifindex,
        };
        let previous = self.served().remove(&id);
        let replumb = previous.is_some();
        let mut proxy = None;
        if let Some(mut served) = previous {
            // A device that gained or lost IPv6 (its MTU crossed 1280) needs new DHCPv6
            // sockets: the old one lost its multicast membership with the device's IPv6.
            let server = &served.services.dhcp;
            if server.endpoint == endpoint && server.serves_v6() == plugged.ipv6 {
                let adopted = !served.verified;
                served
                    .services
                    .follow_plan(&self.services, &plan, view.clone())
                    .await;
                served.plan = plan;
                served.verified = true;
                self.served().insert(id.clone(), served);
                self.configured(&id);
                if adopted {
                    tracing::info!(network_id = %id, "plumbing left by the previous run verified");
                    return Ok(Configured::Started);
                }
                tracing::info!(network_id = %id, "network replumbed in place");
                return Ok(Configured::Replumbed);
            }
            let (counts, running) = served.services.stop_for_replumb().await;
            self.book.retire(&counts.0, &counts.1);
            // Kept (or restarted on the new device) by the metadata update after this.
            proxy = running;
        }
        let services = match NetworkServices::start(&self.services, endpoint, &plan, view).await {
            Ok(services) => services,
            Err(source) => {
                stop_metadata(&id, proxy).await;
                self.recover(&nid, &plan).await;
                return Err(AgentError::Server {
                    network: id.clone(),
                    source,
                });
            }
        };
        tracing::info!(
            network_id = %id,
            namespace = %plugged.namespace,
            interface = %plugged.ifname,
            "serving network"
        );
        self.served().insert(
            id.clone(),
            Served {
                plan,
                services: NetworkServices {
                    metadata: proxy,
                    ..services
                },
                verified: true,
            },
        );
        self.configured(&id);
        Ok(if replumb {
            Configured::Replumbed
        } else {
            Configured::Started
        })
    }

    /// A configure succeeded: the host matches the network's plan.
    fn configured(&self, id: &str) {
        self.dirty().remove(id);
        self.failed().remove(id);
    }

    /// After a configure that failed half way: puts the host back to the last plan that
    /// worked, on which the network stays served (its server and view were not touched), or,
    /// when there is none or that fails too, tears the network down completely. Either way
    /// the next apply re-applies the whole plan, comparing with what is on the host.
    async fn recover(&self, nid: &NetworkId, attempted: &PlumbPlan) {
        let id = nid.as_str();
        let last_good = self
            .served()
            .get(id)
            .map(|s| (s.plan.clone(), s.services.dhcp.endpoint.clone()));
        if let Some((plan, endpoint)) = last_good.filter(|(plan, _)| plan != attempted) {
            match self.devices.setup(&plan).await {
                Ok(p) if p.ifname == endpoint.ifname && p.ifindex == endpoint.ifindex => {
                    tracing::warn!(network_id = %id, "rolled the host back to the network's last good plumbing");
                    self.dirty().insert(id.to_owned());
                    return;
                }
                Ok(_) => {
                    tracing::error!(network_id = %id, "rolling back recreated the DHCP device; tearing the network down")
                }
                Err(e) => {
                    tracing::error!(network_id = %id, error = %e, "cannot roll back to the last good plumbing; tearing the network down")
                }
            }
        }
        self.failed().insert(id.to_owned());
        self.disable(id).await;
    }

    /// Stops serving a network and removes everything made for it on this host, including what
    /// a previous run left behind (found through the state directory). Idempotent.
    pub async fn disable(&self, network_id: &str) {
        let Ok(nid) = NetworkId::parse(network_id) else {
            // Nothing is ever made for such an id: there is nothing to remove, and its name
            // must not reach a path or the kernel.
            tracing::error!(%network_id, "not a network id (not a UUID); nothing to tear down");
            return;
        };
        self.dirty().remove(network_id);
        let served = self.served().remove(network_id);
        let mut port_id = served
            .as_ref()
            .map(|s| s.plan.port_id.clone())
            .or_else(|| self.cache.own_port_id(network_id))
            .or_else(|| self.recorded_port_prefix(&nid));
        let counters = match served {
            Some(s) => {
                let counts = s.services.stop(network_id).await;
                self.book.retire(&counts.0, &counts.1);
                Some(counts)
            }
            None => None,
        };
        self.cache.remove(network_id);
        self.book.forget(network_id);
        if port_id.is_none() {
            // Killed between plumbing and recording: the namespace alone names the port.
            match self.devices.port_prefix_in_namespace(network_id).await {
                Ok(found) => port_id = found,
                Err(e) => {
                    tracing::warn!(%network_id, error = %e, "cannot look into the namespace for its DHCP device")
                }
            }
        }
        let removed = match &port_id {
            Some(port_id) => self.devices.teardown(network_id, port_id).await,
            None => self.devices.delete_namespace_of(network_id).await.map(drop),
        };
        if let Err(e) = removed {
            tracing::error!(%network_id, error = %e, "teardown failed");
            // Tried again when the network is removed or the agent exits; failed until then,
            // for the status endpoint too.
            self.failed().insert(network_id.to_owned());
            self.book
                .note(network_id, Some(format!("teardown failed: {e}")));
            return;
        }
        self.failed().remove(network_id);
        self.forget(&nid);
        if let Some((v4, v6)) = counters {
            // Read after the stop, so the figures are final.
            let packets = format_args!("DHCPv4 {v4}; DHCPv6 {v6}");
            tracing::info!(%network_id, %packets, "stopped network");
        }
    }

    /// The SIGTERM path: stop answering, then either tear everything down or leave the
    /// namespaces, devices and `$state_path` records for the next start to adopt.
    pub async fn exit(&self, teardown: bool) {
        if teardown {
            tracing::info!("shutting down: removing served networks");
            self.shutdown().await;
            return;
        }
        let started = std::time::Instant::now();
        let mut services: Vec<NetworkServices> =
            self.served().drain().map(|(_, s)| s.services).collect();
        // Metadata proxies stop with their tasks (listeners closed, connections cut).
        for s in &mut services {
            drop(s.metadata.take());
        }
        let networks = services.len();
        tracing::info!(
            networks,
            "shutting down: namespaces and devices are left for the next start"
        );
        let sockets = NetworkServices::release_all(services).await;
        let stopped = started.elapsed();
        if let Err(e) = tokio::task::spawn_blocking(move || Sockets::close_all(sockets)).await {
            tracing::warn!(error = %e, "closing the DHCP sockets failed");
        }
        tracing::info!(
            networks,
            tasks_stopped = ?stopped,
            sockets_closed = ?started.elapsed(),
            "stopped serving"
        );
    }

    /// Tears down every network we made.
    pub async fn shutdown(&self) {
        let mut ids: HashSet<String> = self.cache.network_ids().into_iter().collect();
        ids.extend(self.served().keys().cloned());
        ids.extend(self.failed().iter().cloned());
        // Each teardown mostly waits for the kernel (RCU grace periods when sockets and devices
        // go): concurrent teardowns share those waits.
        futures_util::stream::iter(ids)
            .for_each_concurrent(PARALLELISM, |id| async move { self.disable(&id).await })
            .await;
    }

    /// Removes networks a previous run left behind (recorded under `$state_path/dhcp`) that are
    /// not in `keep`.
    pub async fn cleanup_leftovers(&self, keep: &HashSet<String>) {
        let leftovers = self
            .recorded_networks()
            .into_iter()
            .filter(|id| !keep.contains(id) && !self.is_served(id));
        futures_util::stream::iter(leftovers)
            .for_each_concurrent(PARALLELISM, |id| async move {
                tracing::info!(network_id = %id, "removing network left over from a previous run");
                self.disable(&id).await;
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    /// Whatever id reaches a teardown, nothing outside the network's own record is removed:
    /// the old agent's `disable("..")` removed the whole state path.
    #[tokio::test]
    async fn a_teardown_of_an_id_that_is_no_uuid_touches_nothing() {
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(state.path().join("dhcp")).unwrap();
        std::fs::write(state.path().join("canary"), "x").unwrap();
        let a = super::super::tests::agent(state.path());
        for id in ["..", ".", "x/../..", ""] {
            a.disable(id).await;
        }
        assert!(state.path().join("canary").exists());
        assert!(state.path().join("dhcp").exists());
    }
}
