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
//! or re-check the device, return the namespace end) and an `unplug`; addresses, routes and the
//! removal of stale devices from the namespace are driver-independent.

pub mod netns;
mod nl;
pub mod ovs;
pub mod ovsdb;
pub mod plan;
mod veth;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, info_span, warn, Instrument};

use self::netns::Netlink;
pub use self::netns::{in_netns, list_managed_namespaces, on_batch_threads, BatchThread};
use self::nl::Link;
use self::ovs::OvsDriver;
pub use self::ovs::{checksum_offload, disable_checksum_offload, OvsConfig};
pub use self::ovsdb::OvsdbError;
pub use self::plan::{bridge_name, namespace_name, ns_ifname, tap_name, DefaultRoute, PlumbPlan};
use crate::model::{MacAddr, IPV6_MIN_MTU};

/// `interface_driver` of `dhcp_agent.ini`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterfaceDriver {
    /// veth pair `tap…`/`ns-…`, root end optionally on a Linux bridge (`veth_bridge`).
    Veth,
    /// Neutron's `OVSInterfaceDriver`: an Open vSwitch port on `[OVS] integration_bridge`
    /// (see [`ovs`]).
    Openvswitch,
}

impl FromStr for InterfaceDriver {
    type Err = DeviceError;

    /// `veth`; `openvswitch` or Neutron's class path for it
    /// (`neutron.agent.linux.interface.OVSInterfaceDriver`). Anything else is an error naming
    /// the value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "veth" => Ok(InterfaceDriver::Veth),
            "openvswitch" | "neutron.agent.linux.interface.OVSInterfaceDriver" => {
                Ok(InterfaceDriver::Openvswitch)
            }
            other => Err(DeviceError::UnknownDriver(other.to_owned())),
        }
    }
}

impl fmt::Display for InterfaceDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterfaceDriver::Veth => f.write_str("veth"),
            InterfaceDriver::Openvswitch => f.write_str("openvswitch"),
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
    /// `[OVS]` options and `[DEFAULT] ovs_use_veth`, used by the `openvswitch` driver.
    pub ovs: OvsConfig,
}

impl Default for DeviceConfig {
    /// veth, no bridge, no metadata addresses (Neutron's metadata defaults), Neutron's `[OVS]`
    /// defaults.
    fn default() -> Self {
        DeviceConfig {
            driver: InterfaceDriver::Veth,
            veth_bridge: None,
            enable_isolated_metadata: false,
            force_metadata: false,
            ovs: OvsConfig::default(),
        }
    }
}

impl DeviceConfig {
    /// Checks what can be checked without touching the host (the driver's option syntax), so
    /// the agent can refuse a bad configuration at start-up.
    pub fn validate(&self) -> Result<(), DeviceError> {
        match self.driver {
            InterfaceDriver::Veth => Ok(()),
            InterfaceDriver::Openvswitch => self.ovs.validate(),
        }
    }
}

/// The plugged DHCP device, as seen from inside the namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plugged {
    pub namespace: String,
    /// Name of the device inside the namespace (`ns-…` for veth and OVS with `ovs_use_veth`,
    /// `tap…` for an OVS internal port).
    pub ifname: String,
    /// Its index inside the namespace.
    pub ifindex: u32,
    pub mac: MacAddr,
    /// The device has IPv6 (enabled on the host and an MTU of at least 1280): DHCPv6 can be
    /// served on it.
    pub ipv6: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown interface_driver {0:?} (supported: veth, openvswitch)")]
    UnknownDriver(String),
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Ovsdb(#[from] OvsdbError),
    #[error(
        "integration bridge {bridge} does not exist in ovsdb-server at {remote} \
         (it is created by neutron-openvswitch-agent or the operator, never by the DHCP agent)"
    )]
    BridgeMissing { bridge: String, remote: String },
    #[error(
        "device {device} did not appear within {timeout:?} after adding it to bridge {bridge} \
         (is ovs-vswitchd running?)"
    )]
    OvsDeviceMissing {
        device: String,
        bridge: String,
        timeout: Duration,
    },
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
    /// The `openvswitch` driver and its state (the ovsdb back-off), shared by clones; `Some`
    /// exactly when `cfg.driver` is [`InterfaceDriver::Openvswitch`].
    ovs: Option<Arc<OvsDriver>>,
}

impl DeviceManager {
    pub fn new(cfg: DeviceConfig) -> Self {
        let ovs = (cfg.driver == InterfaceDriver::Openvswitch)
            .then(|| Arc::new(OvsDriver::new(cfg.ovs.clone())));
        DeviceManager { cfg, ovs }
    }

    pub fn config(&self) -> &DeviceConfig {
        &self.cfg
    }

    /// The DHCP port id prefix (`port[:11]`) of the device in the network's namespace
    /// (`ns-…` for veth, `tap…` for openvswitch), when nothing recorded it: an agent killed
    /// between plumbing a network and recording it leaves only the namespace to say which
    /// port it plugged. `None` when there is no namespace or no such device.
    pub async fn port_prefix_in_namespace(
        &self,
        network_id: &str,
    ) -> Result<Option<String>, DeviceError> {
        let ns = namespace_name(network_id);
        if !netns::namespace_exists(&ns).await? {
            return Ok(None);
        }
        let nsnl = Netlink::in_namespace(&ns).await?;
        let links = nsnl.links().await?;
        Ok(links.into_iter().find_map(|l| {
            let prefix = l
                .name
                .strip_prefix("ns-")
                .or_else(|| l.name.strip_prefix("tap"))?;
            (!prefix.is_empty()).then(|| prefix.to_owned())
        }))
    }

    /// Deletes the network's namespace (and so the devices inside it), for a network whose
    /// DHCP port is unknown. Returns whether there was one.
    pub async fn delete_namespace_of(&self, network_id: &str) -> Result<bool, DeviceError> {
        netns::delete_namespace(&namespace_name(network_id)).await
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
    ///    bridge membership, up; for openvswitch see [`ovs`]), created only if missing;
    /// 3. `accept_ra=0` on the namespace device; any other device in the namespace (but `lo`)
    ///    is stale and unplugged (Neutron's `cleanup_stale_devices`);
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

        let dev = match &self.ovs {
            None => veth::plug(&self.cfg, &root, &nsnl, plan).await?,
            Some(ovs) => ovs.plug(&root, &nsnl, plan).await?,
        };
        self.cleanup_stale_devices(&root, &nsnl, &dev, &tap_name(&plan.port_id))
            .await?;

        let mut addresses = plan.addresses.clone();
        // Below 1280 the kernel removes IPv6 from a device (and its sysctls with it): Neutron
        // allows such MTUs for IPv4, so the network is served for IPv4 alone.
        let small_mtu = plan.mtu.filter(|m| *m < IPV6_MIN_MTU);
        let ipv6 = sysctls.ipv6 && small_mtu.is_none();
        let wants_v6 = addresses.iter().any(|a| a.is_ipv6()) || plan.default_v6.is_some();
        if ipv6 {
            netns::disable_accept_ra(&ns, &dev.name).await?;
        } else if wants_v6 {
            match small_mtu {
                Some(mtu) => {
                    warn!(namespace = %ns, mtu, "MTU below 1280: the device has no IPv6; the network's IPv6 subnets are not served (IPv4 only)")
                }
                None => {
                    warn!(namespace = %ns, "IPv6 is disabled on this host: skipping IPv6 addresses and routes")
                }
            }
        }
        if !ipv6 {
            addresses.retain(|a| a.is_ipv4());
        }
        nsnl.sync_addresses(&dev, &addresses).await?;
        nsnl.sync_default_route(&dev, false, plan.default_v4.as_ref())
            .await?;
        if ipv6 {
            nsnl.sync_default_route(&dev, true, plan.default_v6.as_ref())
                .await?;
        }
        Ok(Plugged {
            namespace: ns,
            ifname: dev.name.clone(),
            ifindex: dev.index,
            mac: plan.mac,
            ipv6,
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
        let unplugged = match &self.ovs {
            None => veth::unplug(&self.cfg, &root, nsnl.as_ref(), network_id, port_id).await,
            Some(ovs) => ovs.unplug(&root, nsnl.as_ref(), port_id).await,
        };
        drop(nsnl);
        // Like Neutron's `destroy`, the namespace goes even when unplugging failed (e.g.
        // ovsdb-server unreachable); the error is still returned so the caller can retry.
        if netns::delete_namespace(&ns).await? {
            info!(namespace = %ns, "deleted namespace");
        }
        unplugged
    }

    /// Neutron's `cleanup_stale_devices`: every device in the namespace except `lo`, the
    /// kernel's fallback tunnel devices and the DHCP port's own is unplugged. Failures are
    /// logged, never fatal: they must not stop the network from being served.
    async fn cleanup_stale_devices(
        &self,
        root: &Netlink,
        nsnl: &Netlink,
        keep: &Link,
        own_tap: &str,
    ) -> Result<(), DeviceError> {
        for dev in nsnl.links().await? {
            if dev.index == keep.index
                || dev.name == "lo"
                || FALLBACK_DEVICES.contains(&dev.name.as_str())
            {
                continue;
            }
            warn!(namespace = %nsnl.ns, device = %dev.name, "unplugging stale device");
            match &self.ovs {
                None => {
                    if let Err(e) = nsnl.del_link(&dev).await {
                        warn!(namespace = %nsnl.ns, device = %dev.name, error = %e, "cannot delete stale device");
                    }
                }
                Some(ovs) => ovs.unplug_stale(root, nsnl, &dev, own_tap).await,
            }
        }
        Ok(())
    }
}

/// Devices the kernel creates in every namespace when a tunnel module is loaded
/// (`ip_lib.get_devices(exclude_fb_tun_devices=True)` in Neutron).
const FALLBACK_DEVICES: &[&str] = &[
    "gre0",
    "gretap0",
    "erspan0",
    "ip_vti0",
    "ip6_vti0",
    "sit0",
    "tunl0",
    "ip6tnl0",
    "ip6gre0",
    "ip6erspan0",
];

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
        for ovs in [
            "openvswitch",
            " openvswitch",
            "neutron.agent.linux.interface.OVSInterfaceDriver",
        ] {
            assert_eq!(
                ovs.parse::<InterfaceDriver>().unwrap(),
                InterfaceDriver::Openvswitch
            );
        }
        let e = "linuxbridgeish".parse::<InterfaceDriver>().unwrap_err();
        assert!(e.to_string().contains("\"linuxbridgeish\""), "{e}");
        assert_eq!(InterfaceDriver::Veth.to_string(), "veth");
        assert_eq!(InterfaceDriver::Openvswitch.to_string(), "openvswitch");
    }

    #[test]
    fn ovs_defaults_are_neutrons_and_are_validated() {
        let c = DeviceConfig::default().ovs;
        assert_eq!(c.integration_bridge, "br-int");
        assert_eq!(c.ovsdb_connection, "tcp:127.0.0.1:6640");
        assert_eq!(c.ovsdb_timeout, Duration::from_secs(10));
        assert_eq!(c.datapath_type, "system");
        assert!(!c.use_veth);
        let mut cfg = DeviceConfig {
            driver: InterfaceDriver::Openvswitch,
            ..DeviceConfig::default()
        };
        cfg.validate().unwrap();
        cfg.ovs.ovsdb_connection = "unix:/run/openvswitch/db.sock".into();
        cfg.validate().unwrap();
        cfg.ovs.ovsdb_connection = "ssl:10.0.0.1:6640".into();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("ssl:10.0.0.1:6640"), "{e}");
        cfg.ovs.ovsdb_connection = "tcp:127.0.0.1:6640".into();
        cfg.ovs.integration_bridge = "an-overly-long-bridge".into();
        assert!(cfg.validate().is_err());
        cfg.ovs.integration_bridge = "br-int".into();
        cfg.ovs.ovsdb_timeout = Duration::ZERO;
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ovsdb_timeout"));
        // The veth driver ignores the [OVS] options.
        cfg.driver = InterfaceDriver::Veth;
        cfg.validate().unwrap();
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
