//! The `veth` interface driver: a veth pair `tap<port[:11]>` (agent's namespace) /
//! `ns-<port[:11]>` (inside `qdhcp-<network>`), the root end optionally enslaved to a Linux
//! bridge. This is what Neutron's linuxbridge `BridgeInterfaceDriver` builds, without needing
//! an L2 agent: with `veth_bridge = brq{network_id}` the taps land on linuxbridge-style bridges.

use std::os::fd::AsRawFd;

use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{LinkBridge, LinkUnspec, LinkVeth};
use tracing::{info, warn};

use super::netns::{open_netns, Netlink, ROOT_NS};
use super::nl::{errno, Link};
use super::plan::{bridge_name, ns_ifname, tap_name, PlumbPlan};
use super::{check_ifname, DeviceConfig, DeviceError};

/// Plugs (or re-checks) the pair and returns the namespace end. An existing pair is kept: only
/// MAC, MTU, bridge membership and up state are corrected, each only if it differs.
pub(super) async fn plug(
    cfg: &DeviceConfig,
    root: &Netlink,
    nsnl: &Netlink,
    plan: &PlumbPlan,
) -> Result<Link, DeviceError> {
    let tap = tap_name(&plan.port_id);
    let nsif = ns_ifname(&plan.port_id);
    check_ifname(&tap)?;
    check_ifname(&nsif)?;
    let bridge = match &cfg.veth_bridge {
        Some(template) => {
            let name = bridge_name(template, &plan.network_id);
            check_ifname(&name)?;
            Some(name)
        }
        None => None,
    };

    let mut ns_end = nsnl.link_by_name(&nsif).await?;
    let mut root_end = root.link_by_name(&tap).await?;
    match (&ns_end, &root_end) {
        (Some(_), Some(r)) if r.kind == Some(InfoKind::Veth) => {}
        (Some(n), _) => {
            // The namespace end exists but its peer is not our tap in the root namespace:
            // start over rather than serve on a device nobody can reach.
            warn!(namespace = %nsnl.ns, device = %nsif, "namespace device has no matching {tap}; recreating the pair");
            nsnl.del_link(n).await?;
            ns_end = None;
            if let Some(r) = root_end.take() {
                root.del_link(&r).await?;
            }
        }
        (None, Some(r)) => {
            warn!(device = %tap, kind = ?r.kind, "stale device without its namespace end; deleting it");
            root.del_link(r).await?;
            root_end = None;
        }
        (None, None) => {}
    }

    if ns_end.is_none() {
        create_pair(root, nsnl, &tap, &nsif, plan).await?;
        ns_end = nsnl.link_by_name(&nsif).await?;
        root_end = root.link_by_name(&tap).await?;
    }
    let missing = |namespace: &str, device: &str| DeviceError::DeviceMissing {
        namespace: namespace.to_owned(),
        device: device.to_owned(),
        op: "creating the veth pair",
    };
    let ns_end = ns_end.ok_or_else(|| missing(&nsnl.ns, &nsif))?;
    let root_end = root_end.ok_or_else(|| missing(ROOT_NS, &tap))?;

    nsnl.set_mac(&ns_end, plan.mac).await?;
    if let Some(mtu) = plan.mtu {
        root.set_mtu(&root_end, mtu.into()).await?;
        nsnl.set_mtu(&ns_end, mtu.into()).await?;
    }
    if let Some(bridge) = bridge {
        let br = ensure_bridge(root, &bridge).await?;
        if root_end.controller != Some(br.index) {
            info!(device = %tap, bridge = %bridge, "attaching to bridge");
            let msg = LinkUnspec::new_with_index(root_end.index)
                .controller(br.index)
                .build();
            root.change_link(&tap, &format!("attach to bridge {bridge}"), msg)
                .await?;
        }
    }
    root.set_up(&root_end).await?;
    nsnl.set_up(&ns_end).await?;
    Ok(ns_end)
}

/// `ip link add tap… [mtu M] type veth peer name ns-… address MAC [mtu M] netns qdhcp-…`:
/// the namespace end is born inside the namespace, so it inherits the namespace's
/// `accept_ra=0` default and never exists under its name in the root namespace.
pub(crate) async fn create_pair(
    root: &Netlink,
    nsnl: &Netlink,
    tap: &str,
    nsif: &str,
    plan: &PlumbPlan,
) -> Result<(), DeviceError> {
    let netns = open_netns(&nsnl.ns).await?;
    let mut peer = LinkUnspec::new_with_name(nsif)
        .address(plan.mac.0.to_vec())
        .setns_by_fd(netns.file().as_raw_fd());
    let mut pair = LinkVeth::new(tap, nsif);
    if let Some(mtu) = plan.mtu {
        peer = peer.mtu(mtu.into());
        pair = pair.mtu(mtu.into());
    }
    let msg = pair
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
        .build();
    info!(device = %tap, peer = %nsif, namespace = %nsnl.ns, mac = %plan.mac, "creating veth pair");
    let res = root.handle.link().add(msg).execute().await;
    // The fd must stay open until the kernel has processed the request.
    drop(netns);
    res.map_err(|source| DeviceError::Netlink {
        namespace: ROOT_NS.into(),
        device: tap.to_owned(),
        op: format!("create veth pair {tap}/{nsif} into {}", nsnl.ns),
        source: Box::new(source),
    })
}

/// The bridge called `name`, created (up) if missing and set up if down.
async fn ensure_bridge(root: &Netlink, name: &str) -> Result<Link, DeviceError> {
    if let Some(br) = root.link_by_name(name).await? {
        root.set_up(&br).await?;
        return Ok(br);
    }
    info!(bridge = %name, "creating bridge");
    match root
        .handle
        .link()
        .add(LinkBridge::new(name).build())
        .execute()
        .await
    {
        Ok(()) => {}
        // Created concurrently for another network sharing a fixed bridge name.
        Err(e) if errno(&e) == Some(libc::EEXIST) => {}
        Err(source) => {
            return Err(DeviceError::Netlink {
                namespace: ROOT_NS.into(),
                device: name.to_owned(),
                op: "create bridge".into(),
                source: Box::new(source),
            })
        }
    }
    let br = root
        .link_by_name(name)
        .await?
        .ok_or_else(|| DeviceError::DeviceMissing {
            namespace: ROOT_NS.into(),
            device: name.to_owned(),
            op: "creating the bridge",
        })?;
    root.set_up(&br).await?;
    Ok(br)
}

/// Deletes the pair (deleting either end deletes both). `nsnl` is `None` when the namespace is
/// already gone. A bridge named from a `{network_id}` template belongs to this network alone,
/// so it is deleted once it has no ports left; a fixed bridge name is shared and never deleted.
pub(super) async fn unplug(
    cfg: &DeviceConfig,
    root: &Netlink,
    nsnl: Option<&Netlink>,
    network_id: &str,
    port_id: &str,
) -> Result<(), DeviceError> {
    let tap = tap_name(port_id);
    let nsif = ns_ifname(port_id);
    check_ifname(&tap)?;
    check_ifname(&nsif)?;
    if let Some(r) = root.link_by_name(&tap).await? {
        root.del_link(&r).await?;
    }
    if let Some(nsnl) = nsnl {
        if let Some(n) = nsnl.link_by_name(&nsif).await? {
            nsnl.del_link(&n).await?;
        }
    }
    if let Some(template) = cfg.veth_bridge.as_deref() {
        if template.contains("{network_id}") {
            let bridge = bridge_name(template, network_id);
            check_ifname(&bridge)?;
            if let Some(br) = root.link_by_name(&bridge).await? {
                if br.kind == Some(InfoKind::Bridge) {
                    let ports = root
                        .links()
                        .await?
                        .into_iter()
                        .filter(|l| l.controller == Some(br.index))
                        .count();
                    if ports == 0 {
                        root.del_link(&br).await?;
                    } else {
                        info!(bridge = %bridge, ports, "bridge still has ports; keeping it");
                    }
                }
            }
        }
    }
    Ok(())
}
