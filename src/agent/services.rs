//! The services of one served network, as one value: its DHCP server, its DNS service and its
//! metadata proxy.
//!
//! This is the seam a new per-network service plugs into. Every service of a network is
//! started from the same namespace plumbing (the DHCP port's namespace, device and addresses,
//! [`PlumbPlan`]) and reads the same [`ViewHandle`], so a port event swaps one view and every
//! service answers from it at its next request. [`NetworkServices`] is what the agent keeps per
//! served network, and the only place that knows the services' order:
//! * started: DNS first, then DHCP ([`NetworkServices::start`]); a DNS service that cannot open
//!   its sockets is logged and the network is served without DNS (as dnsmasq's DHCP goes on
//!   when a DNS address cannot be bound), while a DHCP server that cannot start stops the
//!   others and fails the network. The metadata proxy follows once the network is configured
//!   ([`NetworkServices::update_metadata`]: it depends on the network's ports, not only its
//!   plumbing, and on the migration hook having stopped the Python agent's haproxy);
//! * adopted after a restart: the same services on the sockets a namespace thread opened
//!   ([`NetworkServices::open_here`], [`NetworkServices::serve_opened`]);
//! * stopped together: metadata, DNS, then DHCP ([`NetworkServices::stop`]), or, when the
//!   agent exits leaving the plumbing for the next start, all networks' at once
//!   ([`NetworkServices::release_all`]).
//!
//! A new service adds its field here, its start beside DNS's, its stop in `stop` and
//! `release_all`, and its counters in the status book's [`super::ServedNetwork`].

use std::net::SocketAddr;
use std::sync::Arc;

use crate::device::PlumbPlan;
use crate::dhcp::server::{AdoptedSockets, DhcpServer, Endpoint, ServerError, Sockets};
use crate::dns::server::{DnsError, DnsService, DnsSockets, Listen};
use crate::view::cache::ViewHandle;

use super::DesiredNetwork;

/// How the services of a network are set up beyond its plumbing: the options read once, at
/// start.
#[derive(Default)]
pub(super) struct ServiceSettings {
    /// Where the DNS services forward names that are not their network's (empty: REFUSED).
    pub(super) dns_upstreams: Arc<[SocketAddr]>,
    /// Isolated metadata (issue 15): `None` when the agent runs without it.
    pub(super) metadata: Option<crate::metadata::ProxySettings>,
}

/// A network's metadata proxy and the DHCP device it was opened on (a new device or
/// namespace needs new listeners).
pub(super) struct RunningProxy {
    pub(super) proxy: crate::metadata::MetadataProxy,
    namespace: String,
    ifname: String,
    ifindex: u32,
}

/// The running services of one network.
pub(super) struct NetworkServices {
    pub(super) dhcp: DhcpServer,
    /// The network's DNS service (issue 14); `None` if its sockets could not be opened.
    pub(super) dns: Option<DnsService>,
    /// The network's metadata proxy (issue 15), while one runs.
    pub(super) metadata: Option<RunningProxy>,
}

/// A network's sockets opened inside its namespace by [`NetworkServices::open_here`], to be
/// served from the runtime by [`NetworkServices::serve_opened`].
pub(super) struct OpenedSockets {
    dhcp: AdoptedSockets,
    dns: Result<DnsSockets, DnsError>,
}

impl ServiceSettings {
    /// Opens and serves a network's DNS sockets; a failure is logged and the network is
    /// served without DNS (as dnsmasq's DHCP goes on when a DNS address cannot be bound).
    pub(super) async fn start_dns(
        &self,
        network_id: &str,
        namespace: &str,
        plan: &PlumbPlan,
        view: ViewHandle,
    ) -> Option<DnsService> {
        let opened = DnsSockets::open(namespace, Listen::of(&plan.addresses)).await;
        self.serve_dns(network_id, opened, view)
    }

    fn serve_dns(
        &self,
        network_id: &str,
        opened: Result<DnsSockets, DnsError>,
        view: ViewHandle,
    ) -> Option<DnsService> {
        let served = tokio::runtime::Handle::try_current()
            .map_err(|e| format!("no runtime: {e}"))
            .and_then(|rt| {
                opened
                    .and_then(|s| {
                        DnsService::serve(network_id, s, view, self.dns_upstreams.clone(), &rt)
                    })
                    .map_err(|e| e.to_string())
            });
        match served {
            Ok(dns) => Some(dns),
            Err(e) => {
                tracing::error!(%network_id, error = %e, "DNS not served on this network");
                None
            }
        }
    }
}

impl NetworkServices {
    /// Starts a network's services on new (or changed) plumbing: DNS, then DHCP. When the DHCP
    /// server cannot start, the DNS service is stopped again and the network is not served.
    pub(super) async fn start(
        settings: &ServiceSettings,
        endpoint: Endpoint,
        plan: &PlumbPlan,
        view: ViewHandle,
    ) -> Result<NetworkServices, ServerError> {
        let dns = settings
            .start_dns(
                &endpoint.network_id,
                &endpoint.namespace,
                plan,
                view.clone(),
            )
            .await;
        match DhcpServer::start(endpoint, view).await {
            Ok(dhcp) => Ok(NetworkServices {
                dhcp,
                dns,
                metadata: None,
            }),
            Err(e) => {
                if let Some(dns) = dns {
                    dns.stop().await;
                }
                Err(e)
            }
        }
    }

    /// Serves a network at once on the namespace and device a previous run left (see
    /// [`super::Agent::adopt`]), opening its sockets from this task.
    pub(super) async fn adopt(
        settings: &ServiceSettings,
        network_id: &str,
        namespace: &str,
        ifname: &str,
        plan: &PlumbPlan,
        view: ViewHandle,
    ) -> Result<NetworkServices, ServerError> {
        let listen = Listen::of(&plan.addresses);
        let dns = DnsSockets::open(namespace, listen).await;
        let dns = settings.serve_dns(network_id, dns, view.clone());
        let r = DhcpServer::adopt(network_id, namespace, ifname, view).await;
        Self::adopted(r, dns)
    }

    /// Opens a network's sockets on a thread already inside its namespace (a batch thread of
    /// [`super::Agent::adopt_all`]).
    pub(super) fn open_here(
        network_id: &str,
        namespace: &str,
        ifname: &str,
        plan: &PlumbPlan,
    ) -> OpenedSockets {
        let dns = DnsSockets::open_here(namespace, Listen::of(&plan.addresses));
        OpenedSockets {
            dhcp: DhcpServer::open_here(network_id, namespace, ifname),
            dns,
        }
    }

    /// Serves sockets [`NetworkServices::open_here`] opened. Runs within the runtime (the DNS
    /// services' TCP side runs on it).
    pub(super) fn serve_opened(
        settings: &ServiceSettings,
        network_id: &str,
        opened: OpenedSockets,
        view: ViewHandle,
    ) -> Result<NetworkServices, ServerError> {
        let dns = settings.serve_dns(network_id, opened.dns, view.clone());
        Self::adopted(DhcpServer::serve_adopted(opened.dhcp, view), dns)
    }

    /// The adopted services, or, when DHCP could not be served there, the DNS service's sockets
    /// closed again (a configure opens them again).
    fn adopted(
        r: Result<DhcpServer, ServerError>,
        dns: Option<DnsService>,
    ) -> Result<NetworkServices, ServerError> {
        match r {
            Ok(dhcp) => Ok(NetworkServices {
                dhcp,
                dns,
                metadata: None,
            }),
            Err(e) => {
                if let Some(dns) = dns {
                    // Closed now: configure opens them again.
                    drop(tokio::runtime::Handle::try_current().map(|rt| rt.spawn(dns.stop())));
                }
                Err(e)
            }
        }
    }

    /// Moves the DNS service to the plan's addresses if they changed (DNS follows the DHCP
    /// port's addresses), on a device whose DHCP server stays.
    pub(super) async fn follow_plan(
        &mut self,
        settings: &ServiceSettings,
        plan: &PlumbPlan,
        view: ViewHandle,
    ) {
        let listen = Listen::of(&plan.addresses);
        if self.dns.as_ref().map(|d| &d.listen) != Some(&listen) {
            if let Some(old) = self.dns.take() {
                old.stop().await;
            }
            let e = &self.dhcp.endpoint;
            self.dns = settings
                .start_dns(&e.network_id, &e.namespace, plan, view)
                .await;
        }
    }

    /// Stops the DNS service and the DHCP server of a network about to be served on new
    /// plumbing, keeping the metadata proxy for [`NetworkServices::update_metadata`] to keep or
    /// restart. Returns the server's final counters and the proxy.
    pub(super) async fn stop_for_replumb(
        self,
    ) -> (
        (
            Arc<crate::dhcp::server::Counters>,
            Arc<crate::dhcp::server::Counters>,
        ),
        Option<RunningProxy>,
    ) {
        if let Some(dns) = self.dns {
            dns.stop().await;
        }
        let counts = (self.dhcp.counters.clone(), self.dhcp.counters6.clone());
        self.dhcp.stop().await;
        (counts, self.metadata)
    }

    /// Stops every service of the network: metadata, DNS, then DHCP. Returns the DHCP
    /// server's final counters.
    pub(super) async fn stop(
        mut self,
        network_id: &str,
    ) -> (
        Arc<crate::dhcp::server::Counters>,
        Arc<crate::dhcp::server::Counters>,
    ) {
        stop_metadata(network_id, self.metadata.take()).await;
        let counts = (self.dhcp.counters.clone(), self.dhcp.counters6.clone());
        if let Some(dns) = self.dns {
            let dns_counters = dns.counters.clone();
            dns.stop().await;
            tracing::info!(%network_id, packets = %dns_counters, "stopped DNS");
        }
        self.dhcp.stop().await;
        counts
    }

    /// Stops every network's services on exit, leaving the plumbing: metadata proxies first
    /// (with their tasks: listeners closed, connections cut), then the DNS services, then the
    /// DHCP servers, whose sockets are returned to be closed off the runtime.
    pub(super) async fn release_all(all: Vec<NetworkServices>) -> Vec<Sockets> {
        let (servers, dns): (Vec<DhcpServer>, Vec<Option<DnsService>>) =
            all.into_iter().map(|s| (s.dhcp, s.dns)).unzip();
        futures_util::future::join_all(dns.into_iter().flatten().map(DnsService::stop)).await;
        futures_util::future::join_all(servers.into_iter().map(|s| s.release())).await
    }

    /// Neutron's `update_isolated_metadata_proxy`, after every change of a served network:
    /// starts, keeps, restarts (new keying or device) or stops its metadata proxy. A proxy
    /// that cannot start is logged and leaves DHCP served; the next change tries again.
    ///
    /// `current` is the proxy running now (taken out of the served network); the proxy to run
    /// from now on is returned.
    pub(super) async fn update_metadata(
        settings: &crate::metadata::ProxySettings,
        d: &DesiredNetwork,
        served_on: Option<(Endpoint, bool)>,
        current: Option<RunningProxy>,
    ) -> Option<RunningProxy> {
        let id = &d.network.id;
        let mut wanted = crate::metadata::decide(&d.network, &d.own_port_id, settings.switches);
        let (endpoint, has_v6_address) = match served_on {
            Some((e, v6)) => (Some(e), v6),
            None => (None, false),
        };
        // The IPv6 listener needs fe80::a9fe:a9fe on the device, which the plan puts there
        // only for a DHCP-enabled IPv6 subnet.
        if let Some(w) = wanted.as_mut() {
            w.ipv6 &= has_v6_address;
        }
        if let (Some(w), Some(e), Some(cur)) = (&wanted, &endpoint, &current) {
            let same_device =
                cur.namespace == e.namespace && cur.ifname == e.ifname && cur.ifindex == e.ifindex;
            if *w == cur.proxy.decision && same_device {
                return current;
            }
        }
        if let Some(cur) = current {
            let counters = cur.proxy.stop().await;
            tracing::info!(network_id = %id, %counters, "metadata proxy stopped");
        }
        let (Some(decision), Some(e)) = (wanted, endpoint) else {
            return None;
        };
        let started =
            crate::metadata::MetadataProxy::start(id, &e.namespace, &e.ifname, decision, settings)
                .await;
        match started {
            Ok(proxy) => Some(RunningProxy {
                proxy,
                namespace: e.namespace,
                ifname: e.ifname,
                ifindex: e.ifindex,
            }),
            Err(e) => {
                tracing::error!(network_id = %id, error = %e, "cannot start the metadata proxy");
                None
            }
        }
    }
}

/// Stops a network's metadata proxy, if one runs.
pub(super) async fn stop_metadata(network_id: &str, running: Option<RunningProxy>) {
    if let Some(p) = running {
        let counters = p.proxy.stop().await;
        tracing::info!(%network_id, %counters, "metadata proxy stopped");
    }
}
