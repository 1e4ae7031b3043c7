//! The isolated-metadata proxy's options (issue 15).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigError;
use super::reader::{unreachable_missing, Reader};

/// Options of the in-process isolated-metadata proxy. Names and defaults are Neutron's
/// (`neutron/conf/agent/metadata/config.py`, `conf/agent/dhcp.py`), except
/// `[metadata_proxy] max_connections_per_network`, which is haproxy's `maxconn 1024` of the
/// config Neutron generates for each network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataOptions {
    /// `[DEFAULT] enable_metadata_network` (false).
    pub enable_metadata_network: bool,
    /// `[DEFAULT] metadata_proxy_socket` (`$state_path/metadata_proxy`): neutron-metadata-agent.
    pub proxy_socket: PathBuf,
    /// `[metadata_haproxy]` timeouts.
    pub timeouts: MetadataTimeouts,
    /// `[metadata_rate_limiting]`; `None` when disabled (or, as in Neutron, when `ip_versions`
    /// names both versions).
    pub rate_limit: Option<RateLimitOptions>,
    /// Open client connections per network; further clients wait in the listen backlog.
    pub max_connections_per_network: usize,
}

/// `[metadata_haproxy]`: the timeouts Neutron writes into each haproxy config (seconds, min 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataTimeouts {
    /// `timeout_connect` (30): connecting to the metadata agent's socket.
    pub connect: Duration,
    /// `timeout_client` (32): client inactivity while a request body is read.
    pub client: Duration,
    /// `timeout_server` (32): waiting for the metadata agent's answer.
    pub server: Duration,
    /// `timeout_http_request` (30): a complete request head.
    pub http_request: Duration,
    /// `timeout_http_keep_alive` (30): an idle kept-alive connection.
    pub http_keep_alive: Duration,
}

impl Default for MetadataTimeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        MetadataTimeouts {
            connect: s(30),
            client: s(32),
            server: s(32),
            http_request: s(30),
            http_keep_alive: s(30),
        }
    }
}

/// `[metadata_rate_limiting]` when `rate_limit_enabled` (haproxy's two stick tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitOptions {
    /// The one IP version (`ip_versions`) whose clients are limited.
    pub ipv6: bool,
    pub base_window: Duration,
    pub base_limit: u32,
    pub burst_window: Duration,
    pub burst_limit: u32,
}

impl MetadataOptions {
    pub fn defaults_for(state_path: &Path) -> MetadataOptions {
        MetadataOptions {
            enable_metadata_network: false,
            proxy_socket: state_path.join("metadata_proxy"),
            timeouts: MetadataTimeouts::default(),
            rate_limit: None,
            max_connections_per_network: 1024,
        }
    }
}

pub(super) fn metadata_options(
    r: &Reader<'_>,
    state_path: &Path,
) -> Result<MetadataOptions, ConfigError> {
    let d = MetadataOptions::defaults_for(state_path);
    let secs = |section: &str, key: &str, default: Duration| -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(
            r.int(section, key, default.as_secs() as i64, 1)? as u64,
        ))
    };
    let t = MetadataTimeouts::default();
    let h = "metadata_haproxy";
    let timeouts = MetadataTimeouts {
        connect: secs(h, "timeout_connect", t.connect)?,
        client: secs(h, "timeout_client", t.client)?,
        server: secs(h, "timeout_server", t.server)?,
        http_request: secs(h, "timeout_http_request", t.http_request)?,
        http_keep_alive: secs(h, "timeout_http_keep_alive", t.http_keep_alive)?,
    };
    let rl = "metadata_rate_limiting";
    let count = |key: &str| -> Result<u32, ConfigError> {
        let v = r.int(rl, key, 10, 1)?;
        u32::try_from(v).map_err(|_| match r.string(rl, key) {
            Some((_, rv)) => r.invalid(rl, key, rv, "too large".into()),
            None => unreachable_missing(key),
        })
    };
    let mut versions = Vec::new();
    if let Some((v, raw)) = r.string(rl, "ip_versions") {
        for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "4" => versions.push(false),
                "6" => versions.push(true),
                _ => return Err(r.invalid(rl, "ip_versions", raw, "expected 4 and/or 6".into())),
            }
        }
    } else {
        versions.push(false);
    }
    let base_window = secs(rl, "base_window_duration", Duration::from_secs(10))?;
    let burst_window = secs(rl, "burst_window_duration", Duration::from_secs(10))?;
    let (base_limit, burst_limit) = (
        count("base_query_rate_limit")?,
        count("burst_query_rate_limit")?,
    );
    let rate_limit = if !r.boolean(rl, "rate_limit_enabled", false)? {
        None
    } else if versions.len() != 1 {
        // Neutron's parse_ip_versions: one version only, else a warning and no limiting.
        tracing::warn!(?versions, "[metadata_rate_limiting] ip_versions must name exactly one IP version; metadata rate limiting is not enabled");
        None
    } else {
        Some(RateLimitOptions {
            ipv6: versions[0],
            base_window,
            base_limit,
            burst_window,
            burst_limit,
        })
    };
    let max_conns = r.int(
        "metadata_proxy",
        "max_connections_per_network",
        d.max_connections_per_network as i64,
        1,
    )?;
    Ok(MetadataOptions {
        enable_metadata_network: r.boolean("DEFAULT", "enable_metadata_network", false)?,
        proxy_socket: r
            .opt_string("DEFAULT", "metadata_proxy_socket")
            .map(PathBuf::from)
            .unwrap_or(d.proxy_socket),
        timeouts,
        rate_limit,
        max_connections_per_network: max_conns as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cfg;

    #[test]
    fn metadata_options_have_neutrons_names_and_defaults() {
        let c = cfg("[DEFAULT]\nstate_path = /s\n").unwrap();
        assert_eq!(c.metadata, MetadataOptions::defaults_for(Path::new("/s")));
        assert_eq!(c.metadata.proxy_socket, PathBuf::from("/s/metadata_proxy"));
        assert_eq!(c.metadata.timeouts.client, Duration::from_secs(32));
        let c = cfg(
            "[DEFAULT]\nstate_path = /s\nmetadata_proxy_socket = $state_path/mp\n\
             enable_metadata_network = true\n[metadata_haproxy]\ntimeout_server = 3\n\
             [metadata_rate_limiting]\nrate_limit_enabled = true\nip_versions = 6\n\
             base_query_rate_limit = 7\nburst_window_duration = 2\n\
             [metadata_proxy]\nmax_connections_per_network = 5\n",
        )
        .unwrap();
        let m = c.metadata;
        assert_eq!(m.proxy_socket, PathBuf::from("/s/mp"));
        assert!(m.enable_metadata_network);
        assert_eq!(m.timeouts.server, Duration::from_secs(3));
        assert_eq!(m.max_connections_per_network, 5);
        let rl = m.rate_limit.unwrap();
        assert!(rl.ipv6);
        assert_eq!((rl.base_limit, rl.burst_limit), (7, 10));
        assert_eq!(rl.burst_window, Duration::from_secs(2));
        // Both versions at once: Neutron warns and does not limit.
        let c = cfg("[metadata_rate_limiting]\nrate_limit_enabled = true\nip_versions = 4,6\n");
        assert_eq!(c.unwrap().metadata.rate_limit, None);
        let e = cfg("[metadata_rate_limiting]\nip_versions = 5\n").unwrap_err();
        assert!(e.to_string().contains("ip_versions"), "{e}");
        let e = cfg("[metadata_haproxy]\ntimeout_connect = 0\n").unwrap_err();
        assert!(e.to_string().contains("timeout_connect"), "{e}");
    }
}
