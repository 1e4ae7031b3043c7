//! The agent: turns the desired set of networks into namespaces, DHCP ports and running servers.
//!
//! This is the only module that coordinates the cache, the device manager and the DHCP servers.
//! Control-plane sources (the standalone file today, Neutron RPC next) only hand it desired
//! networks; it works out what changed and touches nothing else, so a reload of one network
//! never disturbs another.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::NetworkCache;
use crate::device::{DeviceManager, PlumbPlan};
use crate::dhcp::server::{DhcpServer, Endpoint};
use crate::standalone::DesiredNetwork;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("network {network}: own DHCP port {port} is not in the network's port list")]
    OwnPortMissing { network: String, port: String },
    #[error("network {network}: {source}")]
    Device {
        network: String,
        source: crate::device::DeviceError,
    },
    #[error("network {network}: {source}")]
    Server {
        network: String,
        source: crate::dhcp::server::ServerError,
    },
}

struct Served {
    plan: PlumbPlan,
    server: DhcpServer,
}

/// What one `apply` did, for the log line operators (and tests) read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApplySummary {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
    pub failed: Vec<String>,
}

pub struct Agent {
    cache: Arc<NetworkCache>,
    devices: DeviceManager,
    served: HashMap<String, Served>,
    /// `$state_path/dhcp`: one directory per served network, like the Python agent's
    /// `dhcp_confs`, so a restarted agent can find and remove networks it no longer serves.
    state_dir: PathBuf,
}

impl Agent {
    pub fn new(cache: Arc<NetworkCache>, devices: DeviceManager, state_path: PathBuf) -> Agent {
        Agent {
            cache,
            devices,
            served: HashMap::new(),
            state_dir: state_path.join("dhcp"),
        }
    }

    pub fn cache(&self) -> &Arc<NetworkCache> {
        &self.cache
    }

    /// Makes the served set equal to `desired`. Networks whose data did not change are not
    /// touched at all; a network that fails is reported in the summary and left for a retry,
    /// the others still converge.
    pub async fn apply(&mut self, desired: Vec<DesiredNetwork>) -> ApplySummary {
        let mut summary = ApplySummary::default();
        let wanted: HashSet<String> = desired.iter().map(|d| d.network.id.clone()).collect();
        let stale: Vec<String> = self
            .cache
            .network_ids()
            .into_iter()
            .filter(|id| !wanted.contains(id))
            .collect();
        for id in stale {
            self.disable(&id).await;
            summary.removed += 1;
        }
        for d in desired {
            let id = d.network.id.clone();
            let same = self.served.contains_key(&id)
                && self.cache.get(&id).is_some_and(|n| *n == d.network)
                && self.cache.own_port_id(&id).as_deref() == Some(d.own_port_id.as_str());
            if same {
                summary.unchanged += 1;
                continue;
            }
            let existed = self.served.contains_key(&id);
            match self.configure(d).await {
                Ok(()) if existed => summary.changed += 1,
                Ok(()) => summary.added += 1,
                Err(e) => {
                    tracing::error!(network_id = %id, error = %e, "cannot configure network");
                    summary.failed.push(id);
                }
            }
        }
        summary
    }

    /// Configures (or reconfigures) one network: plumbing first, then the view swap, then the
    /// server, so a client is never answered from a namespace that lacks the addresses it names.
    pub async fn configure(&mut self, d: DesiredNetwork) -> Result<(), AgentError> {
        let id = d.network.id.clone();
        let span = tracing::info_span!("network", network_id = %id);
        let _enter = span.enter();
        if !d.network.admin_state_up || !d.network.subnets.iter().any(|s| s.enable_dhcp) {
            tracing::info!("network is admin down or has no DHCP-enabled subnet; not serving it");
            drop(_enter);
            self.disable(&id).await;
            return Ok(());
        }
        let port = d.own_port().ok_or_else(|| AgentError::OwnPortMissing {
            network: id.clone(),
            port: d.own_port_id.clone(),
        })?;
        let plan = PlumbPlan::for_network(&d.network, port, self.devices.config());
        if let Some(served) = self.served.get(&id) {
            if served.plan == plan {
                // Only ports/options changed: a view swap is all it takes.
                self.cache.upsert(d.network, &d.own_port_id);
                tracing::info!("network updated in place");
                return Ok(());
            }
        }
        drop(_enter);
        let plugged = self
            .devices
            .setup(&plan)
            .await
            .map_err(|source| AgentError::Device {
                network: id.clone(),
                source,
            })?;
        self.remember(&id, &plugged.ifname);
        let view = self.cache.upsert(d.network, &d.own_port_id);
        let endpoint = Endpoint {
            network_id: id.clone(),
            namespace: plugged.namespace.clone(),
            ifname: plugged.ifname.clone(),
            ifindex: plugged.ifindex,
        };
        if let Some(mut served) = self.served.remove(&id) {
            if served.server.endpoint == endpoint {
                served.plan = plan;
                self.served.insert(id.clone(), served);
                tracing::info!(network_id = %id, "network replumbed in place");
                return Ok(());
            }
            served.server.stop().await;
        }
        let server =
            DhcpServer::start(endpoint, view)
                .await
                .map_err(|source| AgentError::Server {
                    network: id.clone(),
                    source,
                })?;
        tracing::info!(
            network_id = %id,
            namespace = %plugged.namespace,
            interface = %plugged.ifname,
            "serving network"
        );
        self.served.insert(id, Served { plan, server });
        Ok(())
    }

    /// Stops serving a network and removes everything made for it. Idempotent.
    pub async fn disable(&mut self, network_id: &str) {
        let served = self.served.remove(network_id);
        let port_id = served
            .as_ref()
            .map(|s| s.plan.port_id.clone())
            .or_else(|| self.cache.own_port_id(network_id));
        if let Some(s) = served {
            s.server.stop().await;
        }
        self.cache.remove(network_id);
        if let Some(port_id) = port_id {
            if let Err(e) = self.devices.teardown(network_id, &port_id).await {
                tracing::error!(%network_id, error = %e, "teardown failed");
                return;
            }
        }
        self.forget(network_id);
        tracing::info!(%network_id, "stopped network");
    }

    /// Tears down every network we made (SIGTERM path).
    pub async fn shutdown(&mut self) {
        for id in self.cache.network_ids() {
            self.disable(&id).await;
        }
    }

    /// Removes networks a previous run left behind (recorded under `$state_path/dhcp`) that are
    /// not in `keep`.
    pub async fn cleanup_leftovers(&mut self, keep: &HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(&self.state_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if keep.contains(&id) || self.served.contains_key(&id) {
                continue;
            }
            let ifname =
                std::fs::read_to_string(entry.path().join("interface")).unwrap_or_default();
            // The namespace device is `ns-<port_id[:11]>`; teardown only needs that prefix.
            let port_prefix = ifname
                .trim()
                .trim_start_matches("ns-")
                .trim_start_matches("tap");
            tracing::info!(network_id = %id, "removing network left over from a previous run");
            if !port_prefix.is_empty() {
                if let Err(e) = self.devices.teardown(&id, port_prefix).await {
                    tracing::error!(network_id = %id, error = %e, "cannot remove leftover network");
                    continue;
                }
            }
            self.forget(&id);
        }
    }

    fn remember(&self, network_id: &str, ifname: &str) {
        let dir = self.state_dir.join(network_id);
        let res = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("interface"), ifname));
        if let Err(e) = res {
            tracing::warn!(%network_id, dir = %dir.display(), error = %e, "cannot record served network");
        }
    }

    fn forget(&self, network_id: &str) {
        let dir = self.state_dir.join(network_id);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(%network_id, dir = %dir.display(), error = %e, "cannot remove state dir");
            }
        }
    }
}
