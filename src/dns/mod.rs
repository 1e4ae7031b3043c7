//! The network's DNS service, as dnsmasq provides it under Neutron (reference §9.9): in each
//! `qdhcp-<network>` namespace, port 53 (UDP and TCP) on the DHCP port's addresses answers
//! the network's `addn_hosts` names and forwards everything else from inside the namespace.
//!
//! `names` (the name table, built with the view) and `answer` (query in, reply out) are pure;
//! `server` is the per-namespace shell (sockets, the DNS threads, TCP) and `forward` the
//! upstream side.

pub mod answer;
pub mod batch;

pub mod forward;
pub mod server;
pub mod tcp;

use std::net::SocketAddr;

use crate::config::DnsOptions;

/// Where names that are not a network's go, as dnsmasq decides it from Neutron's command line:
/// `dnsmasq_dns_servers` (one `--server=` each); without them and with `dnsmasq_local_resolv`,
/// the host's resolv.conf servers (`--no-resolv` is then not passed); else nowhere (REFUSED).
pub fn upstreams(opts: &DnsOptions) -> Vec<SocketAddr> {
    if !opts.servers.is_empty() || !opts.local_resolv {
        return opts.servers.clone();
    }
    match std::fs::read_to_string(RESOLV_CONF) {
        Ok(text) => {
            let servers = resolv_conf_servers(&text);
            if servers.is_empty() {
                tracing::warn!(file = RESOLV_CONF, "dnsmasq_local_resolv: no nameserver in the file; names that are not a network's are refused");
            }
            servers
        }
        Err(e) => {
            tracing::warn!(file = RESOLV_CONF, error = %e, "dnsmasq_local_resolv: cannot read the host's resolvers; names that are not a network's are refused");
            Vec::new()
        }
    }
}

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The `nameserver` lines of a resolv.conf (port 53; an IPv6 zone suffix is dropped).
pub fn resolv_conf_servers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip = words.next()?.split('%').next()?;
            Some(SocketAddr::new(ip.parse().ok()?, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_are_read() {
        let text = "# c\nsearch x\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver bad\n";
        assert_eq!(
            resolv_conf_servers(text),
            vec![
                "10.0.0.1:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn configured_servers_win_over_resolv_conf() {
        let opts = DnsOptions {
            servers: vec!["192.0.2.1:53".parse().unwrap()],
            local_resolv: true,
            enable_addr6_list: false,
        };
        assert_eq!(upstreams(&opts), opts.servers);
        assert!(upstreams(&DnsOptions::default()).is_empty());
    }
}
