//! Adoption: serving a network at once on the namespace and device a previous run of this
//! agent left for exactly the plumbing it needs now (recorded under `$state_path`), before
//! [`Agent::configure`] verifies them.

use tracing::Instrument;

use crate::device::PlumbPlan;
use crate::dhcp::server::ServerError;
use crate::model::{MacAddr, NetworkId};

use super::records::{INTERFACE_FILE, PLUMBING_FILE};
use super::services::NetworkServices;
use super::{Agent, DesiredNetwork, Served};

/// A previous run's plumbing that matches what a network needs now ([`Agent::adopt`]).
struct RecordedPlumbing {
    plan: PlumbPlan,
    namespace: String,
    ifname: String,
    /// The DHCP port's MAC (the DHCPv6 server DUID is derived from it).
    mac: MacAddr,
}

impl Agent {
    /// Serves a network at once on the namespace and device a previous run of this agent left
    /// for exactly this plumbing (recorded under `$state_path`), before [`Agent::configure`]
    /// verifies them: a restarted agent answers again within milliseconds instead of after a
    /// netlink check of every namespace. Anything unexpected (no record, another plan, the
    /// device gone) just leaves the network to `configure`. Returns whether it now serves.
    pub async fn adopt(&self, d: &DesiredNetwork) -> bool {
        let Some(found) = self.recorded_plumbing(d) else {
            return false;
        };
        let span = tracing::info_span!("adopt", network_id = %d.network.id);
        async {
            let view = self.adopt_view(d, &found);
            let r = NetworkServices::adopt(
                &self.services,
                &d.network.id,
                &found.namespace,
                &found.ifname,
                &found.plan,
                view,
            )
            .await;
            self.adopted(d, found, r)
        }
        .instrument(span)
        .await
    }

    /// [`Agent::adopt`] for many networks at once, as after a restart: each network's sockets
    /// are opened by a thread that steps from namespace to namespace, a few such threads side
    /// by side, with no hand-off between a task and a namespace thread per network (which cost
    /// several times the work at 200 networks on 2 cores). Every network's sockets are opened
    /// before any is served: from then on a request that arrives is queued, and answered as
    /// soon as its network is served, instead of being dropped (a client would only ask again
    /// seconds later). Blocks this thread (moving the runtime's other tasks elsewhere when it
    /// can) for a few ms per hundred networks.
    pub fn adopt_all(&self, ds: &[&DesiredNetwork]) {
        let threads = crate::par::threads(4);
        // The DNS services' TCP side runs on this runtime, entered from the batch threads.
        let rt = tokio::runtime::Handle::try_current().ok();
        let run = || {
            let opened = crate::device::on_batch_threads(ds.to_vec(), threads, |thread, d| {
                let found = self.recorded_plumbing(d)?;
                let sockets = thread.enter(&found.namespace).map(|()| {
                    NetworkServices::open_here(
                        &d.network.id,
                        &found.namespace,
                        &found.ifname,
                        &found.plan,
                    )
                });
                Some((found, sockets))
            });
            let work: Vec<_> = ds.iter().copied().zip(opened).collect();
            crate::device::on_batch_threads(work, threads, |_, (d, opened)| {
                let Some((found, sockets)) = opened? else {
                    return Ok(false);
                };
                let _span = tracing::info_span!("adopt", network_id = %d.network.id).entered();
                let _rt = rt.as_ref().map(|rt| rt.enter());
                let r = match sockets {
                    Ok(sockets) => {
                        let view = self.adopt_view(d, &found);
                        NetworkServices::serve_opened(&self.services, &d.network.id, sockets, view)
                    }
                    Err(source) => Err(ServerError::Namespace {
                        namespace: found.namespace.clone(),
                        source,
                    }),
                };
                Ok(self.adopted(d, found, r))
            })
        };
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let results = if multi_thread {
            tokio::task::block_in_place(run)
        } else {
            run()
        };
        for (d, r) in ds.iter().zip(results) {
            if let Err(e) = r.and_then(|r| r) {
                tracing::warn!(network_id = %d.network.id, error = %e, "cannot reuse the previous run's plumbing; configuring it");
            }
        }
    }

    /// What a previous run recorded for this network, if it matches the plumbing the network
    /// needs now.
    fn recorded_plumbing(&self, d: &DesiredNetwork) -> Option<RecordedPlumbing> {
        let id = &d.network.id;
        if self.is_served(id) || !d.network.is_servable() {
            return None;
        }
        let nid = d.network.check().ok()?;
        let port = d.own_port()?;
        let plan = PlumbPlan::for_network(&d.network, port, self.devices.config());
        let dir = self.network_dir(&nid)?;
        let recorded = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
        let ifname = recorded(INTERFACE_FILE)?.trim().to_owned();
        if recorded(PLUMBING_FILE)?.trim() != self.plumbing_fingerprint(&plan) {
            return None;
        }
        Some(RecordedPlumbing {
            namespace: plan.namespace(),
            plan,
            ifname,
            mac: port.mac_address,
        })
    }

    /// Whether a previous run left plumbing recorded for exactly what this network needs now.
    pub(super) fn has_recorded_plumbing(&self, d: &DesiredNetwork) -> bool {
        self.recorded_plumbing(d).is_some()
    }

    fn adopt_view(
        &self,
        d: &DesiredNetwork,
        found: &RecordedPlumbing,
    ) -> crate::view::cache::ViewHandle {
        if let Ok(nid) = NetworkId::parse(&d.network.id) {
            self.pin_server_duid(&nid, found.mac);
        }
        self.cache.upsert(d.network.clone(), &d.own_port_id)
    }

    fn adopted(
        &self,
        d: &DesiredNetwork,
        found: RecordedPlumbing,
        r: Result<NetworkServices, ServerError>,
    ) -> bool {
        match r {
            Ok(services) => {
                tracing::info!(
                    network_id = %d.network.id,
                    namespace = %services.dhcp.endpoint.namespace,
                    interface = %services.dhcp.endpoint.ifname,
                    "serving network (on the previous run's plumbing, to be verified)"
                );
                self.served().insert(
                    d.network.id.clone(),
                    Served {
                        plan: found.plan,
                        services,
                        verified: false,
                    },
                );
                true
            }
            Err(e) => {
                tracing::info!(error = %e, "cannot reuse the previous run's plumbing; configuring it");
                false
            }
        }
    }
}
