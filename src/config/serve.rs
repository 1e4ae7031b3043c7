//! Options that shape what the DHCP server answers (`[DEFAULT]` lease, domain, metadata).

use super::error::ConfigError;
use super::reader::{unreachable_missing, Reader};

/// Options that shape what the DHCP server answers. Names and defaults are Neutron's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeConfig {
    /// `[DEFAULT] dhcp_lease_duration` in seconds; `-1` means infinite (0xffffffff on the wire).
    pub dhcp_lease_duration: i64,
    /// `[DEFAULT] dns_domain`; empty means no domain (option 15 not sent, bare hostnames).
    pub dns_domain: String,
    pub enable_isolated_metadata: bool,
    pub force_metadata: bool,
    pub dhcp_broadcast_reply: bool,
    /// 0 = not configured (dnsmasq default lease/2).
    pub dhcp_renewal_time: u32,
    /// 0 = not configured (dnsmasq default lease*7/8).
    pub dhcp_rebinding_time: u32,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            dhcp_lease_duration: 86400,
            dns_domain: "openstacklocal".into(),
            enable_isolated_metadata: false,
            force_metadata: false,
            dhcp_broadcast_reply: false,
            dhcp_renewal_time: 0,
            dhcp_rebinding_time: 0,
        }
    }
}

/// `[DEFAULT]`'s DHCP options, validated.
pub(super) fn serve_options(r: &Reader<'_>) -> Result<ServeConfig, ConfigError> {
    let lease = r.int("DEFAULT", "dhcp_lease_duration", 86400, -1)?;
    if lease == 0 {
        let (_, rv) = r
            .string("DEFAULT", "dhcp_lease_duration")
            .ok_or_else(|| unreachable_missing("dhcp_lease_duration"))?;
        return Err(r.invalid(
            "DEFAULT",
            "dhcp_lease_duration",
            rv,
            "must be -1 (infinite) or a positive number of seconds".into(),
        ));
    }
    let u32_opt = |key: &str| -> Result<u32, ConfigError> {
        let v = r.int("DEFAULT", key, 0, 0)?;
        u32::try_from(v).map_err(|_| match r.string("DEFAULT", key) {
            Some((_, rv)) => r.invalid("DEFAULT", key, rv, "too large".into()),
            None => unreachable_missing(key),
        })
    };
    Ok(ServeConfig {
        dhcp_lease_duration: lease,
        dns_domain: r
            .string("DEFAULT", "dns_domain")
            .map(|(v, _)| v)
            .unwrap_or_else(|| "openstacklocal".into()),
        enable_isolated_metadata: r.boolean("DEFAULT", "enable_isolated_metadata", false)?,
        force_metadata: r.boolean("DEFAULT", "force_metadata", false)?,
        dhcp_broadcast_reply: r.boolean("DEFAULT", "dhcp_broadcast_reply", false)?,
        dhcp_renewal_time: u32_opt("dhcp_renewal_time")?,
        dhcp_rebinding_time: u32_opt("dhcp_rebinding_time")?,
    })
}
