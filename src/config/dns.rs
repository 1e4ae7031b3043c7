//! The DNS service's options (issue 14).

use super::error::ConfigError;
use super::reader::Reader;

/// Options of the network's DNS service, with the names and defaults of Neutron's dnsmasq
/// driver (reference §9.1, §11). `[DEFAULT] dns_domain` is in
/// [`ServeConfig`](super::ServeConfig).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsOptions {
    /// `dnsmasq_dns_servers` (`[]`): where names that are not the network's are forwarded;
    /// `ip` or dnsmasq's `ip#port`.
    pub servers: Vec<std::net::SocketAddr>,
    /// `dnsmasq_local_resolv` (false): without `dnsmasq_dns_servers`, forward to the host's
    /// resolv.conf servers.
    pub local_resolv: bool,
    /// `dnsmasq_enable_addr6_list` (false): merges a port's addresses on one stateful DHCPv6
    /// subnet into one *host* line; Neutron's `addn_hosts` (the DNS names) is never merged,
    /// so the DNS service answers the same either way.
    pub enable_addr6_list: bool,
}

pub(super) fn dns_options(r: &Reader<'_>) -> Result<DnsOptions, ConfigError> {
    let mut servers = Vec::new();
    if let Some((v, raw)) = r.string("DEFAULT", "dnsmasq_dns_servers") {
        for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (ip, port) = match item.split_once('#') {
                Some((ip, port)) => (ip, port.parse::<u16>().ok()),
                None => (item, Some(53)),
            };
            let ip: Option<std::net::IpAddr> = ip.parse().ok();
            match (ip, port) {
                (Some(ip), Some(port)) if port != 0 => {
                    servers.push(std::net::SocketAddr::new(ip, port))
                }
                _ => {
                    return Err(r.invalid(
                        "DEFAULT",
                        "dnsmasq_dns_servers",
                        raw,
                        format!("{item:?} is not an IP address or address#port"),
                    ))
                }
            }
        }
    }
    Ok(DnsOptions {
        servers,
        local_resolv: r.boolean("DEFAULT", "dnsmasq_local_resolv", false)?,
        enable_addr6_list: r.boolean("DEFAULT", "dnsmasq_enable_addr6_list", false)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cfg;

    #[test]
    fn dns_options_have_neutrons_names_and_defaults() {
        assert_eq!(cfg("[DEFAULT]\n").unwrap().dns, DnsOptions::default());
        let c = cfg(
            "[DEFAULT]\ndnsmasq_dns_servers = 10.0.0.1, 2001:db8::1 ,10.0.0.2#5353\n\
                     dnsmasq_local_resolv = True\ndnsmasq_enable_addr6_list = true\n\
                     dnsmasq_txt_record = x\n",
        )
        .unwrap();
        assert_eq!(
            c.dns.servers,
            vec![
                "10.0.0.1:53".parse().unwrap(),
                "[2001:db8::1]:53".parse().unwrap(),
                "10.0.0.2:5353".parse().unwrap()
            ]
        );
        assert!(c.dns.local_resolv && c.dns.enable_addr6_list);
        let e = cfg("[DEFAULT]\ndnsmasq_dns_servers = 10.0.0.1, /example.org/10.0.0.9\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dnsmasq_dns_servers"), "{e}");
    }
}
