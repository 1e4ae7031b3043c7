//! Thin, error-naming wrappers over rtnetlink, and the converging steps shared by interface
//! drivers: addresses and default routes of the namespace device.
//!
//! Every step reads the current state first and changes only what differs, so re-running
//! setup never flaps a link, an address or a route that is already right.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteScope, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{LinkUnspec, RouteMessageBuilder};
use tracing::{debug, info};

use super::netns::Netlink;
use super::plan::{DefaultRoute, METADATA_V6};
use super::DeviceError;
use crate::model::MacAddr;

const ENODEV: i32 = libc::ENODEV;
const EEXIST: i32 = libc::EEXIST;
const ESRCH: i32 = libc::ESRCH;
const EADDRNOTAVAIL: i32 = libc::EADDRNOTAVAIL;

/// The errno of a netlink NACK, if that is what `e` is.
pub(crate) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

/// What we read about one link.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub up: bool,
    /// Index of the bridge (or other controller) the link is enslaved to.
    pub controller: Option<u32>,
    pub kind: Option<InfoKind>,
}

impl Link {
    fn from_message(m: LinkMessage) -> Link {
        let mut link = Link {
            index: m.header.index,
            name: String::new(),
            mac: None,
            mtu: None,
            up: m.header.flags.contains(LinkFlags::Up),
            controller: None,
            kind: None,
        };
        for attr in m.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::Address(a) => {
                    if let Ok(b) = <[u8; 6]>::try_from(a.as_slice()) {
                        link.mac = Some(MacAddr(b));
                    }
                }
                LinkAttribute::Mtu(m) => link.mtu = Some(m),
                LinkAttribute::Controller(c) if c != 0 => link.controller = Some(c),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            link.kind = Some(k);
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

impl Netlink {
    fn err(&self, device: &str, op: impl Into<String>, source: rtnetlink::Error) -> DeviceError {
        DeviceError::Netlink {
            namespace: self.ns.clone(),
            device: device.to_owned(),
            op: op.into(),
            source: Box::new(source),
        }
    }

    /// The link called `name`, or `None` if there is none.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>, DeviceError> {
        let res = self
            .handle
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_next()
            .await;
        match res {
            Ok(m) => Ok(m.map(Link::from_message)),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(self.err(name, "look up link", e)),
        }
    }

    /// All links of the namespace.
    pub async fn links(&self) -> Result<Vec<Link>, DeviceError> {
        self.handle
            .link()
            .get()
            .execute()
            .map_ok(Link::from_message)
            .try_collect()
            .await
            .map_err(|e| self.err("*", "list links", e))
    }

    /// `RTM_NEWLINK` on an existing link (`ip link set`).
    pub async fn change_link(
        &self,
        device: &str,
        op: &str,
        msg: LinkMessage,
    ) -> Result<(), DeviceError> {
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(|e| self.err(device, op, e))
    }

    pub async fn set_up(&self, link: &Link) -> Result<(), DeviceError> {
        if link.up {
            return Ok(());
        }
        info!(namespace = %self.ns, device = %link.name, "setting link up");
        let msg = LinkUnspec::new_with_index(link.index).up().build();
        self.change_link(&link.name, "set link up", msg).await
    }

    pub async fn set_mtu(&self, link: &Link, mtu: u32) -> Result<(), DeviceError> {
        if link.mtu == Some(mtu) {
            return Ok(());
        }
        info!(namespace = %self.ns, device = %link.name, old = ?link.mtu, mtu, "setting MTU");
        let msg = LinkUnspec::new_with_index(link.index).mtu(mtu).build();
        self.change_link(&link.name, &format!("set MTU {mtu}"), msg)
            .await
    }

    pub async fn set_mac(&self, link: &Link, mac: MacAddr) -> Result<(), DeviceError> {
        if link.mac == Some(mac) {
            return Ok(());
        }
        info!(namespace = %self.ns, device = %link.name, old = ?link.mac, %mac, "setting MAC");
        let msg = LinkUnspec::new_with_index(link.index)
            .address(mac.0.to_vec())
            .build();
        self.change_link(&link.name, &format!("set MAC {mac}"), msg)
            .await
    }

    pub async fn del_link(&self, link: &Link) -> Result<(), DeviceError> {
        info!(namespace = %self.ns, device = %link.name, "deleting link");
        match self.handle.link().del(link.index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            Err(e) => Err(self.err(&link.name, "delete link", e)),
        }
    }

    /// Makes the addresses of `link` exactly `wanted`, leaving kernel IPv6 link-local
    /// addresses (fe80::/10 other than the metadata address) alone. New addresses are added
    /// before stale ones are removed.
    pub async fn sync_addresses(
        &self,
        link: &Link,
        wanted: &[IpNetwork],
    ) -> Result<(), DeviceError> {
        let existing: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.err(&link.name, "list addresses", e))?;
        let present: HashSet<(IpAddr, u8)> = existing
            .iter()
            .filter_map(|m| Some((address_of(m)?, m.header.prefix_len)))
            .collect();
        let wanted_set: HashSet<(IpAddr, u8)> =
            wanted.iter().map(|n| (n.ip(), n.prefix())).collect();

        for net in wanted {
            if present.contains(&(net.ip(), net.prefix())) {
                continue;
            }
            info!(namespace = %self.ns, device = %link.name, address = %net, "adding address");
            match self
                .handle
                .address()
                .add(link.index, net.ip(), net.prefix())
                .execute()
                .await
            {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(EEXIST) => {}
                Err(e) => return Err(self.err(&link.name, format!("add address {net}"), e)),
            }
        }

        for m in existing {
            let Some(ip) = address_of(&m) else { continue };
            let key = (ip, m.header.prefix_len);
            if wanted_set.contains(&key) || is_kernel_link_local(ip) {
                continue;
            }
            let shown = format!("{ip}/{}", key.1);
            info!(namespace = %self.ns, device = %link.name, address = %shown, "removing address");
            let mut del = AddressMessage::default();
            del.header = m.header.clone();
            del.attributes = m
                .attributes
                .into_iter()
                .filter(|a| matches!(a, AddressAttribute::Address(_) | AddressAttribute::Local(_)))
                .collect();
            match self.handle.address().del(del).execute().await {
                Ok(()) => {}
                // Already gone (e.g. a secondary removed with its primary).
                Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => {}
                Err(e) => return Err(self.err(&link.name, format!("remove address {shown}"), e)),
            }
        }
        Ok(())
    }

    /// Routes of one family in the main table.
    async fn main_routes(&self, v6: bool) -> Result<Vec<RouteMessage>, DeviceError> {
        let query = if v6 {
            RouteMessageBuilder::<Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<Ipv4Addr>::new().build()
        };
        let all: Vec<RouteMessage> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(|e| {
                self.err(
                    "*",
                    if v6 {
                        "list IPv6 routes"
                    } else {
                        "list IPv4 routes"
                    },
                    e,
                )
            })?;
        Ok(all
            .into_iter()
            .filter(|r| route_table(r) == u32::from(RouteHeader::RT_TABLE_MAIN))
            .collect())
    }

    /// Converges the default route of one family: `want` (with its on-link host route when
    /// the gateway is outside the subnet), or none at all. When an old gateway is dropped, its
    /// on-link host route goes too (Neutron does the same when it replaces a gateway).
    pub async fn sync_default_route(
        &self,
        link: &Link,
        v6: bool,
        want: Option<&DefaultRoute>,
    ) -> Result<(), DeviceError> {
        let family = if v6 { "IPv6" } else { "IPv4" };
        let routes = self.main_routes(v6).await?;
        let defaults: Vec<&RouteMessage> = routes
            .iter()
            .filter(|r| {
                r.header.destination_prefix_length == 0 && r.header.kind == RouteType::Unicast
            })
            .collect();
        let host_route = |gw: IpAddr| {
            routes.iter().find(|r| {
                r.header.destination_prefix_length == full_prefix(gw)
                    && route_dst(r) == Some(gw)
                    && route_gateway(r).is_none()
                    && route_oif(r) == Some(link.index)
            })
        };
        let matches_want = |r: &RouteMessage| {
            want.is_some_and(|w| {
                route_gateway(r) == Some(w.gateway) && route_oif(r) == Some(link.index)
            })
        };

        if let Some(w) = want {
            if w.onlink_host_route && host_route(w.gateway).is_none() {
                info!(namespace = %self.ns, device = %link.name, gateway = %w.gateway, "adding on-link host route");
                let msg = host_route_message(w.gateway, link.index);
                self.add_route(
                    &link.name,
                    &format!("add on-link route to {}", w.gateway),
                    msg,
                )
                .await?;
            }
            if !defaults.iter().any(|r| matches_want(r)) {
                info!(namespace = %self.ns, device = %link.name, gateway = %w.gateway, "setting {family} default route");
                let msg = default_route_message(w.gateway, link.index);
                // Replace, so an old default route (same metric) is swapped atomically.
                match self.handle.route().add(msg).replace().execute().await {
                    Ok(()) => {}
                    Err(e) if errno(&e) == Some(EEXIST) => {}
                    Err(e) => {
                        return Err(self.err(
                            &link.name,
                            format!("set {family} default route via {}", w.gateway),
                            e,
                        ))
                    }
                }
            }
        }

        for old in defaults.iter().filter(|r| !matches_want(r)) {
            let old_gw = route_gateway(old);
            info!(namespace = %self.ns, gateway = ?old_gw, "removing stale {family} default route");
            self.del_route(&link.name, &format!("remove {family} default route"), old)
                .await?;
            if let Some(gw) = old_gw {
                if want.is_none_or(|w| w.gateway != gw) {
                    if let Some(r) = host_route(gw) {
                        if route_is_onlink_host(r) {
                            debug!(namespace = %self.ns, gateway = %gw, "removing on-link host route of old gateway");
                            self.del_route(&link.name, &format!("remove on-link route to {gw}"), r)
                                .await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn add_route(
        &self,
        device: &str,
        op: &str,
        msg: RouteMessage,
    ) -> Result<(), DeviceError> {
        match self.handle.route().add(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(self.err(device, op, e)),
        }
    }

    async fn del_route(&self, device: &str, op: &str, r: &RouteMessage) -> Result<(), DeviceError> {
        let mut msg = RouteMessage::default();
        msg.header = r.header.clone();
        msg.attributes = r
            .attributes
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    RouteAttribute::Destination(_)
                        | RouteAttribute::Gateway(_)
                        | RouteAttribute::Oif(_)
                        | RouteAttribute::Priority(_)
                        | RouteAttribute::Table(_)
                )
            })
            .cloned()
            .collect();
        match self.handle.route().del(msg).execute().await {
            Ok(()) => Ok(()),
            // Already gone, e.g. replaced by the new default route.
            Err(e) if errno(&e) == Some(ESRCH) => Ok(()),
            Err(e) => Err(self.err(device, op, e)),
        }
    }
}

fn address_of(m: &AddressMessage) -> Option<IpAddr> {
    // For IPv4, IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on
    // point-to-point links); IPv6 only has IFA_ADDRESS.
    let mut address = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => return Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    address
}

/// Link-local IPv6 addresses the kernel configures itself; never removed.
fn is_kernel_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 && v6 != METADATA_V6,
        IpAddr::V4(_) => false,
    }
}

fn full_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn route_table(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

fn route_address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn route_gateway(r: &RouteMessage) -> Option<IpAddr> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(g) => route_address(g),
        _ => None,
    })
}

fn route_dst(r: &RouteMessage) -> Option<IpAddr> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(d) => route_address(d),
        _ => None,
    })
}

fn route_oif(r: &RouteMessage) -> Option<u32> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

/// A host route we would have added: IPv4 link scope, or any static IPv6 one (the kernel has
/// no scope for IPv6 routes).
fn route_is_onlink_host(r: &RouteMessage) -> bool {
    match r.header.address_family {
        AddressFamily::Inet => r.header.scope == RouteScope::Link,
        _ => r.header.protocol != rtnetlink::packet_route::route::RouteProtocol::Kernel,
    }
}

fn host_route_message(gw: IpAddr, oif: u32) -> RouteMessage {
    match gw {
        IpAddr::V4(g) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(g, 32)
            .output_interface(oif)
            .scope(RouteScope::Link)
            .build(),
        IpAddr::V6(g) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(g, 128)
            .output_interface(oif)
            .build(),
    }
}

fn default_route_message(gw: IpAddr, oif: u32) -> RouteMessage {
    match gw {
        IpAddr::V4(g) => RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(g)
            .output_interface(oif)
            .build(),
        IpAddr::V6(g) => RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(g)
            .output_interface(oif)
            .build(),
    }
}
