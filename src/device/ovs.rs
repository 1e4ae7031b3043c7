//! The `openvswitch` interface driver: the DHCP port plugged into the integration bridge the
//! way Neutron's `OVSInterfaceDriver` does it (reference §8), so that the local
//! neutron-openvswitch-agent finds it by `external_ids:iface-id`, tags it and wires it.
//!
//! - Default: an OVS port and interface `tap<port_id[:11]>` of type `internal` on
//!   `[OVS] integration_bridge`; ovs-vswitchd creates the device in the root namespace, we set
//!   its MAC, move it into `qdhcp-<network_id>` (where it keeps its `tap…` name), then set MTU
//!   (after the move, as Neutron does: a device on the bridge cannot exceed the bridge's MTU)
//!   and link up.
//! - `ovs_use_veth = True`: a veth pair, `tap…` in the root namespace added to the bridge as a
//!   system port (IPv6 disabled on it), `ns-…` in the namespace.
//! - Interface `external_ids`: `iface-id=<port_id>`, `iface-status=active`,
//!   `attached-mac=<mac>`; a new port gets `tag=4095` (Neutron's dead VLAN) until the L2 agent
//!   sets the network's local VLAN.
//! - With `datapath_type = netdev` (ovs-vswitchd forwards in userspace and never completes a
//!   partial checksum) or a veth pair, TX checksum offload is turned off on the namespace
//!   device, so the kernel writes full checksums into what it sends (Neutron does this for
//!   veth with netdev, bug 1832021). With veth and netdev, RX checksum offload too, as Neutron.
//!
//! Idempotent like the rest of the device layer: when the namespace device exists, the OVS
//! rows are only checked (and `external_ids` corrected in place); the port is never replaced,
//! so its ofport, its VLAN tag set by the L2 agent and its flows stay. When ovsdb-server is
//! unavailable, an existing device is kept and served (DHCP of plugged networks goes on);
//! only new plugs fail, with the ovsdb error, and are retried by the caller.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use rtnetlink::packet_route::link::InfoKind;
use rtnetlink::LinkUnspec;
use tracing::{debug, info, warn};

use super::netns::{in_netns, open_netns, Netlink, ROOT_NS};
use super::nl::{errno, Link};
use super::ovsdb::vswitch::PortView;
use super::ovsdb::{Ovsdb, Remote, Session};
use super::plan::{ns_ifname, tap_name, PlumbPlan};
use super::veth::create_pair;
use super::{check_ifname, DeviceError};

/// `[OVS]` options and `[DEFAULT] ovs_use_veth`, with Neutron's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OvsConfig {
    /// `[OVS] integration_bridge` (`br-int`). Must exist: like Neutron, we never create it.
    pub integration_bridge: String,
    /// `[OVS] ovsdb_connection` (`tcp:127.0.0.1:6640`); `tcp:HOST:PORT` or `unix:PATH`.
    pub ovsdb_connection: String,
    /// `[OVS] ovsdb_timeout` (10 s): bound of every ovsdb request, and of the wait for
    /// ovs-vswitchd to create an internal port's device.
    pub ovsdb_timeout: Duration,
    /// `[OVS] datapath_type` (`system`); `netdev` is the userspace datapath.
    pub datapath_type: String,
    /// `[DEFAULT] ovs_use_veth` (false).
    pub use_veth: bool,
}

impl Default for OvsConfig {
    fn default() -> Self {
        OvsConfig {
            integration_bridge: "br-int".into(),
            ovsdb_connection: "tcp:127.0.0.1:6640".into(),
            ovsdb_timeout: Duration::from_secs(10),
            datapath_type: "system".into(),
            use_veth: false,
        }
    }
}

/// The `[OVS]` option a value of [`OvsConfig`] was refused for, so that start-up can name the
/// file and key that set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OvsOption {
    IntegrationBridge,
    OvsdbConnection,
    OvsdbTimeout,
}

impl OvsOption {
    /// The option's key in `[OVS]`.
    pub fn key(self) -> &'static str {
        match self {
            OvsOption::IntegrationBridge => "integration_bridge",
            OvsOption::OvsdbConnection => "ovsdb_connection",
            OvsOption::OvsdbTimeout => "ovsdb_timeout",
        }
    }
}

/// [`OvsConfig::check`]'s refusal: the option and why.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct InvalidOvsOption {
    pub option: OvsOption,
    pub source: DeviceError,
}

impl OvsConfig {
    /// The names and the remote are usable.
    pub fn validate(&self) -> Result<(), DeviceError> {
        self.check().map_err(|e| e.source)
    }

    /// [`OvsConfig::validate`], saying which option is wrong.
    pub fn check(&self) -> Result<(), InvalidOvsOption> {
        let invalid = |option, source| InvalidOvsOption { option, source };
        check_ifname(&self.integration_bridge)
            .map_err(|e| invalid(OvsOption::IntegrationBridge, e))?;
        self.ovsdb_connection
            .parse::<Remote>()
            .map_err(|e| invalid(OvsOption::OvsdbConnection, e.into()))?;
        if self.ovsdb_timeout.is_zero() {
            let e = DeviceError::InvalidOption {
                option: "[OVS] ovsdb_timeout",
                reason: "must be positive".into(),
            };
            return Err(invalid(OvsOption::OvsdbTimeout, e));
        }
        Ok(())
    }

    fn netdev(&self) -> bool {
        self.datapath_type == "netdev"
    }
}

/// The driver with its ovsdb handle (whose back-off state all setups share).
#[derive(Debug)]
pub(super) struct OvsDriver {
    cfg: OvsConfig,
    db: Result<Ovsdb, String>,
}

/// Desired `external_ids` of the DHCP port's interface.
fn external_ids(plan: &PlumbPlan) -> [(&'static str, String); 3] {
    [
        ("iface-id", plan.port_id.clone()),
        ("iface-status", "active".into()),
        ("attached-mac", plan.mac.to_string()),
    ]
}

fn borrow_ids<'a>(ids: &'a [(&'static str, String); 3]) -> [(&'static str, &'a str); 3] {
    [
        (ids[0].0, ids[0].1.as_str()),
        (ids[1].0, ids[1].1.as_str()),
        (ids[2].0, ids[2].1.as_str()),
    ]
}

/// What an existing port looks like compared with what we want.
enum Verdict {
    /// Right bridge, right type, right `external_ids`.
    Correct,
    /// Only `external_ids` differed; corrected in place.
    Corrected,
    /// The bridge is gone: nothing can be fixed from here.
    BridgeMissing,
    /// Missing or wrong: the port must be (re)created.
    Replace(String),
}

impl OvsDriver {
    pub(super) fn new(cfg: OvsConfig) -> OvsDriver {
        let db = cfg
            .ovsdb_connection
            .parse::<Remote>()
            .map(|r| Ovsdb::new(r, cfg.ovsdb_timeout))
            .map_err(|e| e.to_string());
        OvsDriver { cfg, db }
    }

    async fn session(&self) -> Result<Session, DeviceError> {
        match &self.db {
            Ok(db) => Ok(db.session().await?),
            Err(e) => Err(DeviceError::InvalidOption {
                option: "[OVS] ovsdb_connection",
                reason: e.clone(),
            }),
        }
    }

    fn bridge_missing(&self) -> DeviceError {
        DeviceError::BridgeMissing {
            bridge: self.cfg.integration_bridge.clone(),
            remote: self.cfg.ovsdb_connection.clone(),
        }
    }

    /// Device name inside the namespace: `ns-…` with veth, else the tap name itself.
    pub(super) fn ns_device_name(&self, port_id: &str) -> String {
        if self.cfg.use_veth {
            ns_ifname(port_id)
        } else {
            tap_name(port_id)
        }
    }

    /// Plugs (or re-checks) the DHCP port and returns the namespace device.
    pub(super) async fn plug(
        &self,
        root: &Netlink,
        nsnl: &Netlink,
        plan: &PlumbPlan,
    ) -> Result<Link, DeviceError> {
        let tap = tap_name(&plan.port_id);
        check_ifname(&tap)?;
        check_ifname(&self.cfg.integration_bridge)?;
        let ids = external_ids(plan);
        let dev = if self.cfg.use_veth {
            self.plug_veth(root, nsnl, plan, &tap, &ids).await?
        } else {
            self.plug_internal(root, nsnl, plan, &tap, &ids).await?
        };

        // MAC again (an existing device of a port whose MAC changed), MTU after the move,
        // then up: Neutron's order.
        nsnl.set_mac(&dev, plan.mac).await?;
        if let Some(mtu) = plan.mtu {
            if self.cfg.use_veth {
                if let Some(r) = root.link_by_name(&tap).await? {
                    root.set_mtu(&r, mtu.into()).await?;
                }
            }
            nsnl.set_mtu(&dev, mtu.into()).await?;
        }
        nsnl.set_up(&dev).await?;
        if self.cfg.use_veth {
            if let Some(r) = root.link_by_name(&tap).await? {
                root.set_up(&r).await?;
            }
        }
        if self.cfg.netdev() || self.cfg.use_veth {
            let rx = self.cfg.netdev() && self.cfg.use_veth;
            disable_checksum_offload(&nsnl.ns, &dev.name, rx).await?;
        }
        Ok(dev)
    }

    /// Compares the port called `tap` with what we want; fixes `external_ids` in place.
    async fn verify(
        &self,
        s: &mut Session,
        tap: &str,
        kind: &str,
        ids: &[(&'static str, String); 3],
    ) -> Result<(Verdict, PortView), DeviceError> {
        let bridge = &self.cfg.integration_bridge;
        let view = s.inspect_port(bridge, tap).await?;
        if !view.bridge_exists {
            return Ok((Verdict::BridgeMissing, view));
        }
        let verdict = match (&view.port, &view.interface) {
            (None, _) => Verdict::Replace(format!("no OVS port {tap}")),
            (Some(p), _) if p.bridge.as_deref() != Some(bridge.as_str()) => {
                Verdict::Replace(format!(
                    "OVS port {tap} is on bridge {:?}, not {bridge}",
                    p.bridge.as_deref().unwrap_or("(none)")
                ))
            }
            (Some(_), _) if !view.is_single_interface_port_on(bridge) => Verdict::Replace(format!(
                "OVS port {tap} does not have exactly the interface {tap}"
            )),
            (_, Some(i)) if i.kind != kind => Verdict::Replace(format!(
                "OVS interface {tap} has type {:?}, not {kind:?}",
                i.kind
            )),
            (_, Some(i)) => {
                let wrong = ids
                    .iter()
                    .any(|(k, v)| i.external_ids.get(*k).map(String::as_str) != Some(v.as_str()));
                if wrong {
                    info!(port = %tap, old = ?i.external_ids, "correcting external_ids of the OVS interface");
                    s.set_interface_external_ids(&i.uuid, tap, &borrow_ids(ids))
                        .await?;
                    Verdict::Corrected
                } else {
                    Verdict::Correct
                }
            }
            (_, None) => Verdict::Replace(format!("no OVS interface {tap}")),
        };
        Ok((verdict, view))
    }

    async fn plug_internal(
        &self,
        root: &Netlink,
        nsnl: &Netlink,
        plan: &PlumbPlan,
        tap: &str,
        ids: &[(&'static str, String); 3],
    ) -> Result<Link, DeviceError> {
        let ns_dev = nsnl.link_by_name(tap).await?;
        let (mut s, view) = match &ns_dev {
            Some(dev) => match self.check_existing(tap, "internal", ids).await {
                // Plugged before (Neutron skips `plug` when the device exists).
                None => return Ok(dev.clone()),
                Some((s, view, reason)) => {
                    warn!(namespace = %nsnl.ns, device = %tap, %reason, "replugging the DHCP port");
                    (s, view)
                }
            },
            None => {
                let mut s = self.session().await?;
                let (verdict, view) = self.verify(&mut s, tap, "internal", ids).await?;
                match verdict {
                    Verdict::BridgeMissing => return Err(self.bridge_missing()),
                    Verdict::Correct | Verdict::Corrected => {
                        if root.link_by_name(tap).await?.is_some() {
                            // A plug interrupted before the move: the port is right, adopt
                            // its device.
                            return self.adopt_or_unplug(&mut s, root, nsnl, plan, tap).await;
                        }
                    }
                    Verdict::Replace(_) => {}
                }
                (s, view)
            }
        };

        let mut old_root = root.link_by_name(tap).await?;
        if let Some(v) = old_root.take_if(|l| l.kind == Some(InfoKind::Veth)) {
            // Left by `ovs_use_veth = True`: ours to delete (its peer goes with it).
            info!(device = %tap, "deleting the veth of a previous plug");
            root.del_link(&v).await?;
        }
        // ovs-vswitchd deletes a port's device wherever it is; wait for that so the new device
        // cannot collide with the old one. Without a port, a device of ours may still be on
        // its way out (the port was just deleted), so wait a little for it too.
        let wait = match &view.port {
            Some(p) => {
                info!(port = %tap, bridge = ?p.bridge, "deleting the OVS port before re-adding it");
                s.delete_port_row(tap, &p.uuid).await?;
                self.cfg.ovsdb_timeout
            }
            None => self.cfg.ovsdb_timeout.min(STRAY_GRACE),
        };
        if let Some(old) = &old_root {
            wait_link_gone(root, tap, old.index, wait).await?;
        }
        if let Some(old) = &ns_dev {
            wait_link_gone(nsnl, tap, old.index, wait).await?;
        }
        // Devices of our name that no OVS port owns (any more) would keep ovs-vswitchd from
        // creating the internal device.
        if let Some(stray) = nsnl.link_by_name(tap).await? {
            warn!(namespace = %nsnl.ns, device = %tap, kind = ?stray.kind, "deleting a stale device");
            delete_stray(nsnl, &stray).await?;
        }
        if let Some(stray) = root.link_by_name(tap).await? {
            warn!(device = %tap, kind = ?stray.kind, "deleting a stray device in the way of the OVS port");
            delete_stray(root, &stray).await?;
        }
        info!(port = %tap, bridge = %self.cfg.integration_bridge, "adding OVS internal port");
        s.add_port(
            &self.cfg.integration_bridge,
            tap,
            Some("internal"),
            &borrow_ids(ids),
        )
        .await?;
        self.adopt_or_unplug(&mut s, root, nsnl, plan, tap).await
    }

    /// [`Self::adopt_internal_device`]; on failure the OVS port is deleted again, as Neutron
    /// unplugs after a failed plug: a half-plugged port helps nobody.
    async fn adopt_or_unplug(
        &self,
        s: &mut Session,
        root: &Netlink,
        nsnl: &Netlink,
        plan: &PlumbPlan,
        tap: &str,
    ) -> Result<Link, DeviceError> {
        match self.adopt_internal_device(root, nsnl, plan, tap).await {
            Ok(dev) => Ok(dev),
            Err(e) => {
                if let Err(e2) = s.delete_port(tap).await {
                    warn!(port = %tap, error = %e2, "cannot delete the OVS port after the failed plug");
                }
                Err(e)
            }
        }
    }

    /// Waits for ovs-vswitchd to create the internal device, sets its MAC and moves it into
    /// the namespace.
    async fn adopt_internal_device(
        &self,
        root: &Netlink,
        nsnl: &Netlink,
        plan: &PlumbPlan,
        tap: &str,
    ) -> Result<Link, DeviceError> {
        let timeout = self.cfg.ovsdb_timeout;
        let deadline = Instant::now() + timeout;
        let dev = loop {
            if let Some(d) = root.link_by_name(tap).await? {
                break d;
            }
            if Instant::now() >= deadline {
                return Err(DeviceError::OvsDeviceMissing {
                    device: tap.to_owned(),
                    bridge: self.cfg.integration_bridge.clone(),
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // "Shy port": right after creation the device may refuse changes for a moment.
        loop {
            match root.set_mac(&dev, plan.mac).await {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    debug!(device = %tap, error = %e, "setting MAC failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
        info!(device = %tap, namespace = %nsnl.ns, "moving OVS internal port into the namespace");
        move_to_namespace(root, &dev, &nsnl.ns).await?;
        nsnl.link_by_name(tap)
            .await?
            .ok_or_else(|| DeviceError::DeviceMissing {
                namespace: nsnl.ns.clone(),
                device: tap.to_owned(),
                op: "moving it into the namespace",
            })
    }

    /// For a device that exists: checks its OVS port. `Some` (with the session and what it
    /// saw) when the port must be replaced; `None` when it is right, was corrected, or cannot
    /// be checked now (ovsdb unavailable, bridge missing): the device is kept and served.
    async fn check_existing(
        &self,
        tap: &str,
        kind: &str,
        ids: &[(&'static str, String); 3],
    ) -> Option<(Session, PortView, String)> {
        let res = async {
            let mut s = self.session().await?;
            let (verdict, view) = self.verify(&mut s, tap, kind, ids).await?;
            Ok::<_, DeviceError>((s, verdict, view))
        }
        .await;
        match res {
            Ok((_, Verdict::Correct | Verdict::Corrected, _)) => None,
            Ok((_, Verdict::BridgeMissing, _)) => {
                warn!(port = %tap, bridge = %self.cfg.integration_bridge,
                      "integration bridge does not exist; keeping the plugged device");
                None
            }
            Ok((s, Verdict::Replace(reason), view)) => Some((s, view, reason)),
            Err(e) => {
                warn!(port = %tap, error = %e,
                      "cannot check the OVS port; keeping the plugged device (DHCP goes on)");
                None
            }
        }
    }

    async fn plug_veth(
        &self,
        root: &Netlink,
        nsnl: &Netlink,
        plan: &PlumbPlan,
        tap: &str,
        ids: &[(&'static str, String); 3],
    ) -> Result<Link, DeviceError> {
        let nsif = ns_ifname(&plan.port_id);
        check_ifname(&nsif)?;
        let ns_end = nsnl.link_by_name(&nsif).await?;
        let root_end = root.link_by_name(tap).await?;
        if let (Some(n), Some(r)) = (&ns_end, &root_end) {
            if r.kind == Some(InfoKind::Veth) {
                if let Some((mut s, view, reason)) = self.check_existing(tap, "", ids).await {
                    // The pair is fine; only its OVS port is missing or wrong.
                    warn!(port = %tap, %reason, "re-adding the veth to the integration bridge");
                    if let Some(p) = &view.port {
                        s.delete_port_row(tap, &p.uuid).await?;
                    }
                    s.add_port(&self.cfg.integration_bridge, tap, None, &borrow_ids(ids))
                        .await?;
                }
                return Ok(n.clone());
            }
        }

        let mut s = self.session().await?;
        let view = s.inspect_port(&self.cfg.integration_bridge, tap).await?;
        if !view.bridge_exists {
            return Err(self.bridge_missing());
        }
        if let Some(p) = &view.port {
            // Whatever the port was (an internal port, a veth whose peer is gone), it goes.
            info!(port = %tap, "deleting the OVS port of an incomplete plug");
            s.delete_port_row(tap, &p.uuid).await?;
            if let Some(old) = &root_end {
                if old.kind != Some(InfoKind::Veth) {
                    wait_link_gone(root, tap, old.index, self.cfg.ovsdb_timeout).await?;
                }
            }
        }
        if let Some(n) = &ns_end {
            warn!(namespace = %nsnl.ns, device = %nsif, "namespace device has no matching {tap}; recreating the pair");
            nsnl.del_link(n).await?;
        }
        if let Some(r) = root.link_by_name(tap).await? {
            warn!(device = %tap, kind = ?r.kind, "deleting a stale device in the way of the veth pair");
            delete_stray(root, &r).await?;
        }
        create_pair(root, nsnl, tap, &nsif, plan).await?;
        disable_ipv6_in_root(tap).await?;
        // Up before OVS takes it, not only after (Neutron's order): ovs-vswitchd sets PROMISC
        // on a port it adds by writing back the flags it read when it opened the device, so
        // a device still down then could be put down again after our `set_up` (seen about
        // once in 20 runs with the netdev datapath: the port stayed down, DHCP unanswered).
        if let Some(r) = root.link_by_name(tap).await? {
            root.set_up(&r).await?;
        }
        info!(port = %tap, bridge = %self.cfg.integration_bridge, "adding veth to the integration bridge");
        s.add_port(&self.cfg.integration_bridge, tap, None, &borrow_ids(ids))
            .await?;
        nsnl.link_by_name(&nsif)
            .await?
            .ok_or_else(|| DeviceError::DeviceMissing {
                namespace: nsnl.ns.clone(),
                device: nsif.clone(),
                op: "creating the veth pair",
            })
    }

    /// Deletes the OVS port of `port_id` and its devices. `nsnl` is `None` when the namespace
    /// is already gone. The devices are removed even when ovsdb-server is unavailable; the
    /// ovsdb error is returned afterwards so the caller can retry the port deletion.
    pub(super) async fn unplug(
        &self,
        root: &Netlink,
        nsnl: Option<&Netlink>,
        port_id: &str,
    ) -> Result<(), DeviceError> {
        let tap = tap_name(port_id);
        check_ifname(&tap)?;
        let ovs = self.delete_port(&tap).await;
        if let (Ok(()), Some(nsnl), false) = (&ovs, nsnl, self.cfg.use_veth) {
            // Let ovs-vswitchd close the device before the namespace goes, or the userspace
            // datapath polls a dead tap for a moment.
            if let Some(dev) = nsnl.link_by_name(&tap).await? {
                wait_link_gone(nsnl, &tap, dev.index, self.cfg.ovsdb_timeout).await?;
            }
        }
        if ovs.is_err() && !self.cfg.use_veth {
            if let Some(nsnl) = nsnl {
                // The port stays in OVS for now; its device must not die with the namespace:
                // the userspace datapath spins on the dead tap's fd. Park it in the root
                // namespace until the port can be deleted.
                if let Some(dev) = nsnl.link_by_name(&tap).await? {
                    warn!(device = %tap, "cannot delete the OVS port; moving its device back to the root namespace");
                    move_to_own_namespace(nsnl, &dev).await?;
                }
            }
        }
        self.delete_devices(root, nsnl, &tap, &self.ns_device_name(port_id))
            .await?;
        ovs
    }

    async fn delete_port(&self, tap: &str) -> Result<(), DeviceError> {
        let mut s = self.session().await?;
        if s.delete_port(tap).await? {
            info!(port = %tap, "deleted OVS port");
        }
        Ok(())
    }

    /// Veth ends are deleted (either end takes its peer along); internal devices are left to
    /// ovs-vswitchd, which deletes them with their port (and they die with the namespace).
    async fn delete_devices(
        &self,
        root: &Netlink,
        nsnl: Option<&Netlink>,
        tap: &str,
        ns_dev: &str,
    ) -> Result<(), DeviceError> {
        if let Some(r) = root.link_by_name(tap).await? {
            if r.kind == Some(InfoKind::Veth) {
                root.del_link(&r).await?;
            }
        }
        if let Some(nsnl) = nsnl {
            if let Some(n) = nsnl.link_by_name(ns_dev).await? {
                if n.kind == Some(InfoKind::Veth) {
                    nsnl.del_link(&n).await?;
                }
            }
        }
        Ok(())
    }

    /// Neutron's stale-device cleanup for one device found in the namespace that is not the
    /// DHCP port's: its OVS port (`tap…`, also for an `ns-…` veth end) and the device.
    /// `own_port` (the DHCP port's `tap…`) is never deleted, even when a stale device maps to
    /// it (a device of the same port plugged in the other `ovs_use_veth` mode).
    pub(super) async fn unplug_stale(
        &self,
        root: &Netlink,
        nsnl: &Netlink,
        dev: &Link,
        own_port: &str,
    ) {
        let port = match dev.name.strip_prefix("ns-") {
            Some(rest) => format!("tap{rest}"),
            None => dev.name.clone(),
        };
        let mut deleted_port = false;
        if port.starts_with("tap") && port != own_port {
            match self.delete_port(&port).await {
                Ok(()) => deleted_port = true,
                Err(e) => {
                    warn!(port = %port, error = %e, "cannot delete the OVS port of a stale device")
                }
            }
        }
        if deleted_port && dev.kind != Some(InfoKind::Veth) {
            // An internal port's device goes with its port.
            let _ = wait_link_gone(nsnl, &dev.name, dev.index, STRAY_GRACE).await;
        }
        if let Some(d) = nsnl.link_by_name(&dev.name).await.ok().flatten() {
            if d.index == dev.index {
                if let Err(e) = delete_stray(nsnl, &d).await {
                    warn!(namespace = %nsnl.ns, device = %dev.name, error = %e, "cannot delete stale device");
                }
            }
        }
        if port != own_port {
            if let Ok(Some(r)) = root.link_by_name(&port).await {
                if r.kind == Some(InfoKind::Veth) {
                    let _ = root.del_link(&r).await;
                }
            }
        }
    }
}

/// How long a device of our name without an OVS port may take to disappear by itself.
const STRAY_GRACE: Duration = Duration::from_secs(1);

/// Deletes a device that no OVS port owns. Tun/tap devices (what the userspace datapath makes
/// internal ports of) cannot be deleted over netlink; an orphaned persistent one is deleted
/// by attaching to it and clearing its persist flag.
async fn delete_stray(nl: &Netlink, dev: &Link) -> Result<(), DeviceError> {
    match nl.handle.link().del(dev.index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EOPNOTSUPP) && dev.kind == Some(InfoKind::Tun) => {
            let name = dev.name.clone();
            let res = if nl.ns == ROOT_NS {
                tokio::task::spawn_blocking(move || unpersist_tap(&name))
                    .await
                    .map_err(|e| DeviceError::Thread {
                        namespace: ROOT_NS.into(),
                        reason: format!("blocking task failed: {e}"),
                    })?
            } else {
                in_netns(&nl.ns, move || unpersist_tap(&name)).await?
            };
            res.map_err(|source| DeviceError::Io {
                namespace: nl.ns.clone(),
                op: format!("delete orphaned tap device {}", dev.name),
                source,
            })
        }
        Err(source) => Err(DeviceError::Netlink {
            namespace: nl.ns.clone(),
            device: dev.name.clone(),
            op: "delete link".into(),
            source: Box::new(source),
        }),
    }
}

/// Attaches to the persistent tap `name` of the calling thread's namespace and clears its
/// persist flag: the device goes when the descriptor is closed. Fails with EBUSY while
/// another process (ovs-vswitchd) has it open.
fn unpersist_tap(name: &str) -> std::io::Result<()> {
    use std::os::fd::FromRawFd;
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return Err(std::io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: open(2) of a fixed NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else; closed on drop.
    let tun = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads an ifreq that lives for the call.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF as _, &mut ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: TUNSETPERSIST takes its argument by value.
    if unsafe {
        libc::ioctl(
            tun.as_raw_fd(),
            libc::TUNSETPERSIST as _,
            0 as libc::c_ulong,
        )
    } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    drop(tun);
    Ok(())
}

/// Waits until the device `name` with index `index` is gone from the namespace of `nl`.
/// Returns whether it went within `timeout`.
async fn wait_link_gone(
    nl: &Netlink,
    name: &str,
    index: u32,
    timeout: Duration,
) -> Result<bool, DeviceError> {
    let deadline = Instant::now() + timeout;
    loop {
        match nl.link_by_name(name).await? {
            Some(l) if l.index == index => {}
            _ => return Ok(true),
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `ip link set DEV netns NS`.
async fn move_to_namespace(root: &Netlink, dev: &Link, ns: &str) -> Result<(), DeviceError> {
    let netns = open_netns(ns).await?;
    let msg = LinkUnspec::new_with_index(dev.index)
        .setns_by_fd(netns.file().as_raw_fd())
        .build();
    let res = root
        .change_link(&dev.name, &format!("move into namespace {ns}"), msg)
        .await;
    // The fd must stay open until the kernel has processed the request.
    drop(netns);
    res
}

/// `ip -n NS link set DEV netns <the agent's own namespace>`.
async fn move_to_own_namespace(nsnl: &Netlink, dev: &Link) -> Result<(), DeviceError> {
    let own = tokio::task::spawn_blocking(|| std::fs::File::open("/proc/self/ns/net"))
        .await
        .map_err(|e| DeviceError::Thread {
            namespace: ROOT_NS.into(),
            reason: format!("blocking task failed: {e}"),
        })?
        .map_err(|source| DeviceError::Io {
            namespace: ROOT_NS.into(),
            op: "open /proc/self/ns/net".into(),
            source,
        })?;
    let msg = LinkUnspec::new_with_index(dev.index)
        .setns_by_fd(own.as_raw_fd())
        .build();
    let res = nsnl
        .change_link(&dev.name, "move into the root namespace", msg)
        .await;
    drop(own);
    res
}

/// `net.ipv6.conf.<dev>.disable_ipv6=1` in the root namespace (Neutron's
/// `root_dev.disable_ipv6()`): the bridge end needs no addresses.
async fn disable_ipv6_in_root(dev: &str) -> Result<(), DeviceError> {
    let path = format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6");
    let res = tokio::task::spawn_blocking(move || {
        match std::fs::read_to_string(&path) {
            Ok(v) if v.trim() == "1" => Ok(()),
            Ok(_) => std::fs::write(&path, "1"),
            // IPv6 disabled on the host: nothing to do.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(|e| DeviceError::Thread {
        namespace: ROOT_NS.into(),
        reason: format!("blocking task failed: {e}"),
    })?;
    res.map_err(|source| DeviceError::Io {
        namespace: ROOT_NS.into(),
        op: format!("set sysctl net.ipv6.conf.{dev}.disable_ipv6"),
        source,
    })
}

// ---------------------------------------------------------------------------------------------
// Checksum offload (SIOCETHTOOL)
// ---------------------------------------------------------------------------------------------

const ETHTOOL_GRXCSUM: u32 = 0x14;
const ETHTOOL_SRXCSUM: u32 = 0x15;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;

/// `struct ethtool_value` of `<linux/ethtool.h>`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// A socket to issue interface ioctls on, in the calling thread's namespace.
fn ioctl_socket() -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2); the result is checked before it is wrapped.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// One `SIOCETHTOOL` request carrying a `struct ethtool_value`; returns its `data`.
fn ethtool_value(
    sock: &std::os::fd::OwnedFd,
    ifname: &str,
    cmd: u32,
    data: u32,
) -> std::io::Result<u32> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return Err(std::io::ErrorKind::InvalidInput.into());
    }
    let mut value = EthtoolValue { cmd, data };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    // SAFETY: `ifr` names the device and points at `value`, both alive for the call; the
    // kernel reads and writes exactly a struct ethtool_value for these commands.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL as _, &mut ifr) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(value.data)
}

/// RX and TX checksum offload of a device inside a namespace, as `(rx, tx)`.
pub async fn checksum_offload(ns: &str, ifname: &str) -> Result<(bool, bool), DeviceError> {
    let dev = ifname.to_owned();
    in_netns(ns, move || -> std::io::Result<(bool, bool)> {
        let sock = ioctl_socket()?;
        let rx = ethtool_value(&sock, &dev, ETHTOOL_GRXCSUM, 0)? != 0;
        let tx = ethtool_value(&sock, &dev, ETHTOOL_GTXCSUM, 0)? != 0;
        Ok((rx, tx))
    })
    .await?
    .map_err(|source| DeviceError::Io {
        namespace: ns.to_owned(),
        op: format!("read checksum offload of {ifname}"),
        source,
    })
}

/// `ethtool --offload DEV tx off [rx off]` inside the namespace, only where it is on.
pub async fn disable_checksum_offload(ns: &str, ifname: &str, rx: bool) -> Result<(), DeviceError> {
    let dev = ifname.to_owned();
    let mut wanted = vec![("tx", ETHTOOL_GTXCSUM, ETHTOOL_STXCSUM)];
    if rx {
        wanted.push(("rx", ETHTOOL_GRXCSUM, ETHTOOL_SRXCSUM));
    }
    let changed = in_netns(ns, move || -> std::io::Result<Vec<&'static str>> {
        let sock = ioctl_socket()?;
        let mut changed = Vec::new();
        for (label, get, set) in wanted {
            match ethtool_value(&sock, &dev, get, 0) {
                Ok(0) => {}
                Ok(_) => {
                    ethtool_value(&sock, &dev, set, 0)?;
                    changed.push(label);
                }
                // The driver has no such offload: nothing to turn off.
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(changed)
    })
    .await?
    .map_err(|source| DeviceError::Io {
        namespace: ns.to_owned(),
        op: format!("turn off checksum offload of {ifname}"),
        source,
    })?;
    if !changed.is_empty() {
        info!(namespace = %ns, device = %ifname, offloads = ?changed, "turned checksum offload off");
    }
    Ok(())
}
