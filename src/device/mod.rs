//! Host plumbing for one network: the `qdhcp-<network_id>` namespace, the DHCP port's device,
//! its addresses and default routes (Neutron's `DeviceManager` minus the port RPCs, reference
//! §8).
//!
//! [`PlumbPlan`] (pure, in [`plan`]) says what the host should look like; [`DeviceManager`]
//! converges the host to it with rtnetlink and netns-rs (no `ip` subprocesses). Setup is
//! idempotent and never recreates or flaps what is already right, so the agent can call it on
//! every sync.
//!
//! Interface drivers plug in through [`InterfaceDriver`]: each variant provides a `plug` (create
//! or re-check the device, return the namespace end) and an `unplug`; addresses and routes are
//! driver-independent.

pub mod netns;
mod nl;
pub mod plan;
mod veth;

use std::fmt;
use std::str::FromStr;

use tracing::{info, info_span, warn, Instrument};

use self::netns::Netlink;
pub use self::netns::{in_netns, list_managed_namespaces};
pub use self::plan::{bridge_name, namespace_name, ns_ifname, tap_name, DefaultRoute, PlumbPlan};
use crate::model::MacAddr;

/// `interface_driver` of `dhcp_agent.ini`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterfaceDriver {
    /// veth pair `tap…`/`ns-…`, root end optionally on a Linux bridge (`veth_bridge`).
    Veth,
}

impl FromStr for InterfaceDriver {
    type Err = DeviceError;

    /// `veth`. `openvswitch` (or Neutron's class path for it) is recognised but not
    /// implemented yet; anything else is an error naming the value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "veth" => Ok(InterfaceDriver::Veth),
            "openvswitch" | "neutron.agent.linux.interface.OVSInterfaceDriver" => {
                Err(DeviceError::DriverNotImplemented(s.trim().to_owned()))
            }
            other => Err(DeviceError::UnknownDriver(other.to_owned())),
        }
    }
}

impl fmt::Display for InterfaceDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterfaceDriver::Veth => f.write_str("veth"),
        }
    }
}

/// How devices are plugged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    pub driver: InterfaceDriver,
    /// Linux bridge for the root end of the veth; may contain `{network_id}` (first 11
    /// characters of the network id), e.g. `brq{network_id}`. `None`: the tap stays unattached.
    pub veth_bridge: Option<String>,
    pub enable_isolated_metadata: bool,
    pub force_metadata: bool,
}

impl Default for DeviceConfig {
    /// veth, no bridge, no metadata addresses (Neutron's metadata defaults).
    fn default() -> Self {
        DeviceConfig {
            driver: InterfaceDriver::Veth,
            veth_bridge: None,
            enable_isolated_metadata: false,
            force_metadata: false,
        }
    }
}

/// The plugged DHCP device, as seen from inside the namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plugged {
    pub namespace: String,
    /// Name of the device inside the namespace (`ns-…` for veth).
    pub ifname: String,
    /// Its index inside the namespace.
    pub ifindex: u32,
    pub mac: MacAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown interface_driver {0:?} (supported: veth)")]
    UnknownDriver(String),
    #[error("interface_driver {0:?} is not implemented yet (supported: veth)")]
    DriverNotImplemented(String),
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("namespace {namespace}: {op}: {source}")]
    Namespace {
        namespace: String,
        op: &'static str,
        #[source]
        source: netns_rs::Error,
    },
    #[error("namespace {namespace}: {op}: {source}")]
    Io {
        namespace: String,
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{namespace}: device {device}: {op}: {source}")]
    Netlink {
        /// `qdhcp-…` or `root namespace`.
        namespace: String,
        device: String,
        op: String,
        #[source]
        source: Box<rtnetlink::Error>,
    },
    #[error("{namespace}: device {device} missing after {op}")]
    DeviceMissing {
        namespace: String,
        device: String,
        op: &'static str,
    },
    #[error("namespace {namespace}: {reason}")]
    Thread { namespace: String, reason: String },
}

/// Linux interface names: 1 to 15 bytes, no `/`, `:`, whitespace or NUL.
pub(crate) fn check_ifname(name: &str) -> Result<(), DeviceError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > 15 {
        "longer than 15 bytes"
    } else if name == "." || name == ".." {
        "reserved"
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        "contains '/', ':', whitespace or NUL"
    } else {
        return Ok(());
    };
    Err(DeviceError::InvalidName {
        what: "interface",
        name: name.to_owned(),
        reason,
    })
}

/// Creates, converges and removes the per-network namespace and DHCP device.
#[derive(Clone, Debug)]
pub struct DeviceManager {
    cfg: DeviceConfig,
}

impl DeviceManager {
    pub fn new(cfg: DeviceConfig) -> Self {
        DeviceManager { cfg }
    }

    pub fn config(&self) -> &DeviceConfig {
        &self.cfg
    }

    /// Names of the existing `qdhcp-*` namespaces (same as [`list_managed_namespaces`]).
    pub async fn list_managed_namespaces() -> Result<Vec<String>, DeviceError> {
        netns::list_managed_namespaces().await
    }

    /// Converges the host to `plan`:
    /// 1. namespace `qdhcp-<network_id>` (created if missing), `lo` up,
    ///    `net.ipv4.ip_nonlocal_bind=1`, `net.ipv4.conf.all.promote_secondaries=1`,
    ///    `net.ipv6.conf.default.accept_ra=0`;
    /// 2. the driver's device (for veth: pair, MAC on the namespace end, MTU on both ends,
    ///    bridge membership, up), created only if missing;
    /// 3. `accept_ra=0` on the namespace device;
    /// 4. the device's addresses made exactly `plan.addresses` (kernel IPv6 link-local ones
    ///    aside);
    /// 5. per IP version, the default route of the plan (with on-link host route), or none.
    ///
    /// If IPv6 is disabled on the host, IPv6 addresses and routes are skipped with a warning.
    /// Safe to call again with the same or a changed plan.
    pub async fn setup(&self, plan: &PlumbPlan) -> Result<Plugged, DeviceError> {
        let span =
            info_span!("device_setup", network_id = %plan.network_id, port_id = %plan.port_id);
        self.setup_inner(plan).instrument(span).await
    }

    async fn setup_inner(&self, plan: &PlumbPlan) -> Result<Plugged, DeviceError> {
        let ns = plan.namespace();
        if netns::ensure_namespace(&ns).await? {
            info!(namespace = %ns, "created namespace");
        }
        let sysctls = netns::prepare_sysctls(&ns).await?;
        let root = Netlink::root().await?;
        let nsnl = Netlink::in_namespace(&ns).await?;
        if let Some(lo) = nsnl.link_by_name("lo").await? {
            nsnl.set_up(&lo).await?;
        }

        let dev = match self.cfg.driver {
            InterfaceDriver::Veth => veth::plug(&self.cfg, &root, &nsnl, plan).await?,
        };

        let mut addresses = plan.addresses.clone();
        if sysctls.ipv6 {
            netns::disable_accept_ra(&ns, &dev.name).await?;
        } else if addresses.iter().any(|a| a.is_ipv6()) || plan.default_v6.is_some() {
            warn!(namespace = %ns, "IPv6 is disabled on this host: skipping IPv6 addresses and routes");
            addresses.retain(|a| a.is_ipv4());
        }
        nsnl.sync_addresses(&dev, &addresses).await?;
        nsnl.sync_default_route(&dev, false, plan.default_v4.as_ref())
            .await?;
        if sysctls.ipv6 {
            nsnl.sync_default_route(&dev, true, plan.default_v6.as_ref())
                .await?;
        }
        Ok(Plugged {
            namespace: ns,
            ifname: dev.name.clone(),
            ifindex: dev.index,
            mac: plan.mac,
        })
    }

    /// Removes the DHCP device of `port_id` and the namespace of `network_id`; with a
    /// `{network_id}` bridge template, also the network's bridge once it has no ports left (a
    /// fixed `veth_bridge` name is shared by all networks and is never deleted). Whatever is
    /// already gone is skipped, so teardown is idempotent.
    pub async fn teardown(&self, network_id: &str, port_id: &str) -> Result<(), DeviceError> {
        let span = info_span!("device_teardown", network_id = %network_id, port_id = %port_id);
        self.teardown_inner(network_id, port_id)
            .instrument(span)
            .await
    }

    async fn teardown_inner(&self, network_id: &str, port_id: &str) -> Result<(), DeviceError> {
        let ns = namespace_name(network_id);
        let root = Netlink::root().await?;
        let nsnl = if netns::namespace_exists(&ns).await? {
            Some(Netlink::in_namespace(&ns).await?)
        } else {
            None
        };
        match self.cfg.driver {
            InterfaceDriver::Veth => {
                veth::unplug(&self.cfg, &root, nsnl.as_ref(), network_id, port_id).await?
            }
        }
        drop(nsnl);
        if netns::delete_namespace(&ns).await? {
            info!(namespace = %ns, "deleted namespace");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_parsing() {
        assert_eq!(
            "veth".parse::<InterfaceDriver>().unwrap(),
            InterfaceDriver::Veth
        );
        assert_eq!(
            " veth ".parse::<InterfaceDriver>().unwrap(),
            InterfaceDriver::Veth
        );
        let e = "openvswitch".parse::<InterfaceDriver>().unwrap_err();
        assert!(matches!(e, DeviceError::DriverNotImplemented(_)));
        assert!(e.to_string().contains("not implemented yet"), "{e}");
        let e = "linuxbridgeish".parse::<InterfaceDriver>().unwrap_err();
        assert!(e.to_string().contains("\"linuxbridgeish\""), "{e}");
        assert_eq!(InterfaceDriver::Veth.to_string(), "veth");
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("tapa1b2c3d4-e5").is_ok());
        assert!(check_ifname("brq0123456789ab").is_ok());
        assert!(check_ifname("brq0123456789abc").is_err());
        assert!(check_ifname("").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("a b").is_err());
        let e = check_ifname("x:y").unwrap_err().to_string();
        assert!(e.contains("\"x:y\""), "{e}");
    }

    #[test]
    fn namespace_names_are_checked() {
        assert!(netns::check_namespace_name("qdhcp-abc").is_ok());
        assert!(netns::check_namespace_name("qdhcp-../../etc").is_err());
        assert!(netns::check_namespace_name("..").is_err());
        assert!(netns::check_namespace_name("").is_err());
    }
}
