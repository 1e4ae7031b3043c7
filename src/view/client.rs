//! What the DHCPv4 and the DHCPv6 halves of a view derive from a port or the config the same
//! way: the client identifier a port reserves, and the lease time on the wire.

use crate::codec::options;
use crate::model::{Network, Port};

/// Lease time meaning "infinite" on the wire.
pub const INFINITE: u32 = 0xffff_ffff;

/// The client identifier a port's `client-id` extra option reserves it for (IPv4), or the DUID
/// (IPv6: dnsmasq's `id:` matches the whole DUID); an invalid one is logged and ignored.
pub(crate) fn port_client_id(net: &Network, port: &Port) -> Option<Vec<u8>> {
    let opt = client_id_option(port)?;
    match options::parse_client_id(opt.opt_value.as_deref().unwrap_or("")) {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(
                network = %net.id, port = %port.id, option = %opt.opt_name, error = %e,
                "invalid client-id; the port is matched by MAC only"
            );
            None
        }
    }
}

/// [`port_client_id`] without the warning (for checks; the build that adds the port logs it).
pub(crate) fn quiet_client_id(port: &Port) -> Option<Vec<u8>> {
    let opt = client_id_option(port)?;
    options::parse_client_id(opt.opt_value.as_deref().unwrap_or(""))
        .ok()
        .flatten()
}

fn client_id_option(port: &Port) -> Option<&crate::model::ExtraDhcpOpt> {
    port.extra_dhcp_opts
        .iter()
        .find(|o| options::is_client_id_name(&o.opt_name))
}

/// `dhcp_lease_duration` in wire form: -1 (any negative) is infinite; dnsmasq raises leases
/// shorter than two minutes to 120 s.
pub(crate) fn lease_secs(duration: i64) -> u32 {
    if duration < 0 || duration >= i64::from(INFINITE) {
        INFINITE
    } else {
        duration.max(120) as u32
    }
}
