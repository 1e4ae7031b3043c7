//! Agent configuration: oslo.config-style INI files with Neutron's option names and defaults.
//!
//! Operators start us exactly like the Python agent (`--config-file neutron.conf --config-file
//! dhcp_agent.ini`), so their files hold hundreds of options we do not use. Those are ignored with
//! a debug log; options we do use are validated, and a bad value is an error naming the file,
//! section and key, because a daemon that silently falls back to a default is worse than one that
//! refuses to start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Everything the agent reads from its configuration files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    pub host: String,
    pub state_path: PathBuf,
    /// `None`: standalone mode (no Neutron).
    pub transport_url: Option<String>,
    pub interface_driver: String,
    /// `[veth] bridge`: Linux bridge template for the root end of the DHCP port's veth.
    pub veth_bridge: Option<String>,
    /// `[standalone] networks_file`.
    pub networks_file: Option<PathBuf>,
    /// `--teardown-on-exit` (command line only): remove namespaces and devices on SIGTERM.
    /// Off by default: like the Python agent, which leaves dnsmasq and its namespaces running,
    /// a restart then re-plumbs nothing.
    pub teardown_on_exit: bool,
    pub serve: ServeConfig,
    /// Options of the Neutron RPC mode (only used when `transport_url` is set).
    pub neutron: NeutronOptions,
    /// `[OVS]` options and `[DEFAULT] ovs_use_veth` (the `openvswitch` interface driver).
    pub ovs: OvsOptions,
    /// The isolated-metadata proxy's options ([`crate::metadata`]).
    pub metadata: MetadataOptions,
    /// The DNS service's options (`dnsmasq_dns_servers`, `dnsmasq_local_resolv`, ...).
    pub dns: DnsOptions,
    /// `[agent] status_listen` (this agent's own option, not Neutron's): where the status
    /// endpoint (metrics, health, networks, explain) listens, in the root namespace. Off when
    /// unset.
    pub status_listen: Option<std::net::SocketAddr>,
}

// --- metadata proxy options (issue 15) ---

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

fn metadata_options(r: &Reader<'_>, state_path: &Path) -> Result<MetadataOptions, ConfigError> {
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

// --- end of metadata proxy options ---

// ---- DNS service options (issue 14) ----

/// Options of the network's DNS service, with the names and defaults of Neutron's dnsmasq
/// driver (reference §9.1, §11). `[DEFAULT] dns_domain` is in [`ServeConfig`].
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

fn dns_options(r: &Reader<'_>) -> Result<DnsOptions, ConfigError> {
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
mod dns_options_tests {
    use super::*;

    fn cfg(text: &str) -> Result<AgentConfig, ConfigError> {
        let mut raw = RawConfig::default();
        raw.parse_str(text, Path::new("/etc/neutron/dhcp_agent.ini"))?;
        AgentConfig::from_raw(&raw)
    }

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

// ---- end of DNS service options ----

/// `[OVS]` options and `[DEFAULT] ovs_use_veth`, with Neutron's defaults (checked further by
/// the device layer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OvsOptions {
    /// `[OVS] integration_bridge` (`br-int`).
    pub integration_bridge: String,
    /// `[OVS] ovsdb_connection` (`tcp:127.0.0.1:6640`).
    pub ovsdb_connection: String,
    /// `[OVS] ovsdb_timeout` (10 s, min 1).
    pub ovsdb_timeout: Duration,
    /// `[OVS] datapath_type` (`system`).
    pub datapath_type: String,
    /// `[DEFAULT] ovs_use_veth` (false).
    pub use_veth: bool,
}

impl Default for OvsOptions {
    fn default() -> Self {
        OvsOptions {
            integration_bridge: "br-int".into(),
            ovsdb_connection: "tcp:127.0.0.1:6640".into(),
            ovsdb_timeout: Duration::from_secs(10),
            datapath_type: "system".into(),
            use_veth: false,
        }
    }
}

/// Options of the Neutron control plane (RPC mode). Names and defaults are Neutron's
/// (reference §11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeutronOptions {
    /// `[AGENT] report_interval` (seconds, a float in the file); zero disables the heartbeat.
    pub report_interval: Duration,
    /// `[AGENT] availability_zone` (`nova`, at most 255 characters).
    pub availability_zone: String,
    /// `[AGENT] log_agent_heartbeats` (reported in the agent state only).
    pub log_agent_heartbeats: bool,
    /// `[DEFAULT] resync_interval` in seconds (5, min 1).
    pub resync_interval: u64,
    /// `[DEFAULT] resync_throttle` in seconds (1, min 0, at most `resync_interval`).
    pub resync_throttle: u64,
    /// `[DEFAULT] num_sync_threads` (4, min 1): networks configured in parallel by a sync.
    pub num_sync_threads: usize,
    /// `[DEFAULT] dhcp_driver`: only reported in the agent state (the server shows it).
    pub dhcp_driver: String,
    /// `[DEFAULT] control_exchange`, raw (validated by the transport).
    pub control_exchange: Option<String>,
    /// `[DEFAULT] rpc_response_timeout`, raw (validated by the transport).
    pub rpc_response_timeout: Option<String>,
    /// `[DEFAULT] rpc_response_max_timeout` in seconds (600): cap of the per-method back-off.
    pub rpc_response_max_timeout: u64,
    /// `[DEFAULT] bulk_reload_interval` (0). Accepted for compatibility; reloads are immediate
    /// here (a view swap costs microseconds), so a non-zero value changes nothing.
    pub bulk_reload_interval: u64,
    /// Every `[oslo_messaging_rabbit]` option, for the transport.
    pub rabbit: Vec<(String, String)>,
}

impl Default for NeutronOptions {
    fn default() -> Self {
        NeutronOptions {
            report_interval: Duration::from_secs(30),
            availability_zone: "nova".into(),
            log_agent_heartbeats: false,
            resync_interval: 5,
            resync_throttle: 1,
            num_sync_threads: 4,
            dhcp_driver: "neutron.agent.linux.dhcp.Dnsmasq".into(),
            control_exchange: None,
            rpc_response_timeout: None,
            rpc_response_max_timeout: 600,
            bulk_reload_interval: 0,
            rabbit: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: [{section}] {key} = {value:?}: {reason}")]
    Invalid {
        path: PathBuf,
        section: String,
        key: String,
        value: String,
        reason: String,
    },
}

/// Where a raw value came from, so a validation error can point at it.
#[derive(Clone, Debug)]
struct RawValue {
    value: String,
    path: PathBuf,
    /// The section name as written in that file (`[agent]` or `[AGENT]`).
    section: String,
}

/// oslo.config's group-name rule (`_normalize_group_name`): group names are case-insensitive
/// (`[agent]` is `[AGENT]`, `[ovs]` is `[OVS]`), except that only `DEFAULT` is the default group.
fn group_key(name: &str) -> String {
    if name == "DEFAULT" {
        name.to_owned()
    } else {
        name.to_lowercase()
    }
}

/// The merged contents of all config files: later files override earlier ones, like oslo.config.
#[derive(Default, Debug)]
pub struct RawConfig {
    values: HashMap<(String, String), RawValue>,
}

impl RawConfig {
    /// Reads `--config-file`s in order, then every `*.conf` of each `--config-dir` in name order.
    pub fn load(files: &[PathBuf], dirs: &[PathBuf]) -> Result<RawConfig, ConfigError> {
        let mut raw = RawConfig::default();
        for f in files {
            raw.parse_file(f)?;
        }
        for d in dirs {
            let entries = std::fs::read_dir(d).map_err(|source| ConfigError::Read {
                path: d.clone(),
                source,
            })?;
            let mut confs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect();
            confs.sort();
            for f in confs {
                raw.parse_file(&f)?;
            }
        }
        Ok(raw)
    }

    fn parse_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.parse_str(&text, path)
    }

    /// oslo.config's INI dialect: `[section]`, `key = value` or `key: value`, `#`/`;` comments,
    /// indented continuation lines, matching surrounding quotes stripped.
    pub fn parse_str(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let mut section: Option<String> = None;
        let mut last_key: Option<(String, String)> = None;
        for (idx, line) in text.lines().enumerate() {
            let lineno = idx + 1;
            let syntax = |reason: &str| ConfigError::Syntax {
                path: path.to_owned(),
                line: lineno,
                reason: reason.to_owned(),
            };
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                let key = last_key
                    .as_ref()
                    .ok_or_else(|| syntax("continuation line without a key"))?;
                if let Some(v) = self.values.get_mut(key) {
                    v.value.push('\n');
                    v.value.push_str(trimmed);
                }
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| syntax("section header without closing ]"))?
                    .trim();
                if name.is_empty() {
                    return Err(syntax("empty section name"));
                }
                section = Some(name.to_owned());
                last_key = None;
                continue;
            }
            let sect = section
                .clone()
                .ok_or_else(|| syntax("option outside of any [section]"))?;
            let split = trimmed
                .find(['=', ':'])
                .ok_or_else(|| syntax("expected 'key = value'"))?;
            let key = trimmed[..split].trim().replace('-', "_");
            if key.is_empty() {
                return Err(syntax("empty option name"));
            }
            let value = unquote(trimmed[split + 1..].trim()).to_owned();
            let k = (group_key(&sect), key);
            self.values.insert(
                k.clone(),
                RawValue {
                    value,
                    path: path.to_owned(),
                    section: sect,
                },
            );
            last_key = Some(k);
        }
        Ok(())
    }

    /// All `(key, value)` pairs of one section, for option groups parsed elsewhere
    /// (e.g. `[oslo_messaging_rabbit]` by the RPC layer), sorted by key.
    pub fn section(&self, section: &str) -> Vec<(String, String)> {
        let section = group_key(section);
        let mut out: Vec<(String, String)> = self
            .values
            .iter()
            .filter(|((s, _), _)| *s == section)
            .map(|((_, k), v)| (k.clone(), v.value.clone()))
            .collect();
        out.sort();
        out
    }

    fn get(&self, section: &str, key: &str) -> Option<&RawValue> {
        self.values.get(&(group_key(section), key.to_owned()))
    }

    /// The file that set `[section] key` last (the one in effect), for error messages about
    /// options validated elsewhere (e.g. `[oslo_messaging_rabbit]` by the RPC layer).
    pub fn origin(&self, section: &str, key: &str) -> Option<&Path> {
        self.get(section, key).map(|v| v.path.as_path())
    }

    /// The raw value of `[section] key` as the file in effect wrote it (not interpolated).
    pub fn value(&self, section: &str, key: &str) -> Option<&str> {
        self.get(section, key).map(|v| v.value.as_str())
    }

    /// `$name` / `${name}` substitution from `[DEFAULT]`, as oslo.config does for `$state_path`;
    /// `$$` is a literal `$` (how a password containing `$` is written for oslo.config).
    fn interpolate(&self, value: &str, defaults: &HashMap<&str, String>) -> String {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
                continue;
            }
            let (name, tail) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) => (&inner[..end], &inner[end + 1..]),
                    None => ("", after),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            let resolved = self
                .get("DEFAULT", name)
                .map(|v| v.value.clone())
                .or_else(|| defaults.get(name).cloned());
            match (name.is_empty(), resolved) {
                (false, Some(v)) => out.push_str(&v),
                _ => {
                    out.push('$');
                    rest = after;
                    continue;
                }
            }
            rest = tail;
        }
        out.push_str(rest);
        out
    }
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// Options this agent reads; everything else in an operator's file is logged and ignored.
const KNOWN: &[(&str, &str)] = &[
    ("DEFAULT", "host"),
    ("DEFAULT", "state_path"),
    ("DEFAULT", "transport_url"),
    ("DEFAULT", "interface_driver"),
    ("DEFAULT", "dhcp_lease_duration"),
    ("DEFAULT", "dns_domain"),
    ("DEFAULT", "enable_isolated_metadata"),
    ("DEFAULT", "force_metadata"),
    ("DEFAULT", "dhcp_broadcast_reply"),
    ("DEFAULT", "dhcp_renewal_time"),
    ("DEFAULT", "dhcp_rebinding_time"),
    ("DEFAULT", "debug"),
    // Read by main (logging set-up), like oslo.log's options.
    ("DEFAULT", "log_file"),
    ("DEFAULT", "log_dir"),
    ("DEFAULT", "control_exchange"),
    ("DEFAULT", "rpc_response_timeout"),
    ("DEFAULT", "rpc_response_max_timeout"),
    ("DEFAULT", "resync_interval"),
    ("DEFAULT", "resync_throttle"),
    ("DEFAULT", "num_sync_threads"),
    ("DEFAULT", "dhcp_driver"),
    ("DEFAULT", "bulk_reload_interval"),
    ("DEFAULT", "ovs_use_veth"),
    ("OVS", "integration_bridge"),
    ("OVS", "ovsdb_connection"),
    ("OVS", "ovsdb_timeout"),
    ("OVS", "datapath_type"),
    ("AGENT", "report_interval"),
    ("AGENT", "availability_zone"),
    ("AGENT", "log_agent_heartbeats"),
    ("AGENT", "status_listen"),
    ("veth", "bridge"),
    ("standalone", "networks_file"),
    // The isolated-metadata proxy.
    ("DEFAULT", "enable_metadata_network"),
    ("DEFAULT", "metadata_proxy_socket"),
    ("metadata_haproxy", "timeout_connect"),
    ("metadata_haproxy", "timeout_client"),
    ("metadata_haproxy", "timeout_server"),
    ("metadata_haproxy", "timeout_http_request"),
    ("metadata_haproxy", "timeout_http_keep_alive"),
    ("metadata_rate_limiting", "rate_limit_enabled"),
    ("metadata_rate_limiting", "ip_versions"),
    ("metadata_rate_limiting", "base_window_duration"),
    ("metadata_rate_limiting", "base_query_rate_limit"),
    ("metadata_rate_limiting", "burst_window_duration"),
    ("metadata_rate_limiting", "burst_query_rate_limit"),
    ("metadata_proxy", "max_connections_per_network"),
    // The DNS service (issue 14); the unimplemented ones are warned about.
    ("DEFAULT", "dnsmasq_dns_servers"),
    ("DEFAULT", "dnsmasq_local_resolv"),
    ("DEFAULT", "dnsmasq_enable_addr6_list"),
    ("DEFAULT", "dnsmasq_txt_record"),
    ("DEFAULT", "dnsmasq_config_file"),
    ("DEFAULT", "dnsmasq_base_log_dir"),
];

struct Reader<'a> {
    raw: &'a RawConfig,
    defaults: HashMap<&'static str, String>,
}

impl Reader<'_> {
    fn string(&self, section: &str, key: &str) -> Option<(String, &RawValue)> {
        self.raw
            .get(section, key)
            .map(|v| (self.raw.interpolate(&v.value, &self.defaults), v))
    }

    fn invalid(&self, section: &str, key: &str, raw: &RawValue, reason: String) -> ConfigError {
        // The section as the operator wrote it (`[agent]`), so it can be found in the file.
        let section = if group_key(&raw.section) == group_key(section) {
            raw.section.as_str()
        } else {
            section
        };
        ConfigError::Invalid {
            path: raw.path.clone(),
            section: section.to_owned(),
            key: key.to_owned(),
            value: raw.value.clone(),
            reason,
        }
    }

    fn boolean(&self, section: &str, key: &str, default: bool) -> Result<bool, ConfigError> {
        let Some((v, raw)) = self.string(section, key) else {
            return Ok(default);
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(self.invalid(section, key, raw, "expected a boolean".into())),
        }
    }

    fn int(&self, section: &str, key: &str, default: i64, min: i64) -> Result<i64, ConfigError> {
        let Some((v, raw)) = self.string(section, key) else {
            return Ok(default);
        };
        let n: i64 = v
            .parse()
            .map_err(|_| self.invalid(section, key, raw, "expected an integer".into()))?;
        if n < min {
            return Err(self.invalid(section, key, raw, format!("must be >= {min}")));
        }
        Ok(n)
    }

    fn float(&self, section: &str, key: &str, default: f64, min: f64) -> Result<f64, ConfigError> {
        let Some((v, raw)) = self.string(section, key) else {
            return Ok(default);
        };
        let n: f64 = v
            .trim()
            .parse()
            .map_err(|_| self.invalid(section, key, raw, "expected a number".into()))?;
        // Also bounds it for Duration::from_secs_f64 (a century is plenty for any interval).
        if !n.is_finite() || n < min || n > 3.2e9 {
            return Err(self.invalid(
                section,
                key,
                raw,
                format!("must be between {min} and 3.2e9"),
            ));
        }
        Ok(n)
    }

    fn opt_string(&self, section: &str, key: &str) -> Option<String> {
        self.string(section, key)
            .map(|(v, _)| v)
            .filter(|v| !v.is_empty())
    }
}

impl AgentConfig {
    /// Types and validates the merged files.
    pub fn from_raw(raw: &RawConfig) -> Result<AgentConfig, ConfigError> {
        // Sorted, so the list reads like the files.
        let mut ignored: Vec<(&Path, &str, &str)> = raw
            .values
            .iter()
            // [oslo_messaging_rabbit] goes to the transport as a whole, which checks it.
            .filter(|((section, key), _)| {
                section != "oslo_messaging_rabbit"
                    && !KNOWN
                        .iter()
                        .any(|(s, k)| group_key(s) == *section && k == key)
            })
            .map(|((_, key), v)| (v.path.as_path(), v.section.as_str(), key.as_str()))
            .collect();
        ignored.sort_unstable();
        for (path, section, key) in ignored {
            tracing::debug!(file = %path.display(), section = %section, key = %key, "ignoring option not used by this agent");
        }
        let mut defaults = HashMap::new();
        defaults.insert("state_path", "/var/lib/neutron".to_owned());
        let r = Reader { raw, defaults };
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
        let serve = ServeConfig {
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
        };
        let host = r
            .opt_string("DEFAULT", "host")
            .unwrap_or_else(system_hostname);
        let state_path = PathBuf::from(
            r.opt_string("DEFAULT", "state_path")
                .unwrap_or_else(|| "/var/lib/neutron".into()),
        );
        let neutron = neutron_options(&r)?;
        let metadata = metadata_options(&r, &state_path)?;
        let d = OvsOptions::default();
        let ovs = OvsOptions {
            integration_bridge: r
                .opt_string("OVS", "integration_bridge")
                .unwrap_or(d.integration_bridge),
            ovsdb_connection: r
                .opt_string("OVS", "ovsdb_connection")
                .unwrap_or(d.ovsdb_connection),
            ovsdb_timeout: Duration::from_secs(r.int("OVS", "ovsdb_timeout", 10, 1)? as u64),
            datapath_type: r
                .opt_string("OVS", "datapath_type")
                .unwrap_or(d.datapath_type),
            use_veth: r.boolean("DEFAULT", "ovs_use_veth", false)?,
        };
        let dns = dns_options(&r)?;
        Ok(AgentConfig {
            neutron,
            ovs,
            metadata,
            dns,
            host,
            state_path,
            transport_url: r.opt_string("DEFAULT", "transport_url"),
            interface_driver: r
                .opt_string("DEFAULT", "interface_driver")
                .unwrap_or_else(|| "openvswitch".into()),
            veth_bridge: r.opt_string("veth", "bridge"),
            networks_file: r
                .opt_string("standalone", "networks_file")
                .map(PathBuf::from),
            teardown_on_exit: false,
            serve,
            status_listen: status_listen(&r)?,
        })
    }
}

fn neutron_options(r: &Reader<'_>) -> Result<NeutronOptions, ConfigError> {
    let d = NeutronOptions::default();
    let resync_interval = r.int("DEFAULT", "resync_interval", d.resync_interval as i64, 1)? as u64;
    let resync_throttle = r.int("DEFAULT", "resync_throttle", d.resync_throttle as i64, 0)? as u64;
    if resync_throttle > resync_interval {
        // Neutron refuses to start too (InvalidConfigurationOption).
        let (_, rv) = r
            .string("DEFAULT", "resync_throttle")
            .or_else(|| r.string("DEFAULT", "resync_interval"))
            .ok_or_else(|| unreachable_missing("resync_throttle"))?;
        return Err(r.invalid(
            "DEFAULT",
            "resync_throttle",
            rv,
            format!("must be <= resync_interval ({resync_interval})"),
        ));
    }
    let availability_zone = r
        .string("AGENT", "availability_zone")
        .map(|(v, _)| v)
        .unwrap_or(d.availability_zone);
    if availability_zone.chars().count() > 255 {
        let (_, rv) = r
            .string("AGENT", "availability_zone")
            .ok_or_else(|| unreachable_missing("availability_zone"))?;
        return Err(r.invalid(
            "AGENT",
            "availability_zone",
            rv,
            "longer than 255 characters".into(),
        ));
    }
    Ok(NeutronOptions {
        report_interval: Duration::from_secs_f64(r.float(
            "AGENT",
            "report_interval",
            d.report_interval.as_secs_f64(),
            0.0,
        )?),
        availability_zone,
        log_agent_heartbeats: r.boolean("AGENT", "log_agent_heartbeats", false)?,
        resync_interval,
        resync_throttle,
        num_sync_threads: r.int("DEFAULT", "num_sync_threads", d.num_sync_threads as i64, 1)?
            as usize,
        dhcp_driver: r
            .opt_string("DEFAULT", "dhcp_driver")
            .unwrap_or(d.dhcp_driver),
        control_exchange: r.opt_string("DEFAULT", "control_exchange"),
        rpc_response_timeout: r.opt_string("DEFAULT", "rpc_response_timeout"),
        rpc_response_max_timeout: r.int(
            "DEFAULT",
            "rpc_response_max_timeout",
            d.rpc_response_max_timeout as i64,
            1,
        )? as u64,
        bulk_reload_interval: r.int("DEFAULT", "bulk_reload_interval", 0, 0)? as u64,
        rabbit: r.raw.section("oslo_messaging_rabbit"),
    })
}

/// `[agent] status_listen = HOST:PORT` (an IP literal: the endpoint must not depend on name
/// resolution at start); empty or unset means off.
fn status_listen(r: &Reader<'_>) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match r.string("AGENT", "status_listen") {
        Some((v, _)) if v.trim().is_empty() => Ok(None),
        Some((v, rv)) => v.trim().parse().map(Some).map_err(|_| {
            r.invalid(
                "AGENT",
                "status_listen",
                rv,
                "expected IP:PORT, e.g. 127.0.0.1:9733 or [::1]:9733".into(),
            )
        }),
        None => Ok(None),
    }
}

/// Only reachable if a value vanished between two reads of the same map; kept as an error
/// rather than a panic so config handling can never abort the daemon.
fn unreachable_missing(key: &str) -> ConfigError {
    ConfigError::Syntax {
        path: PathBuf::new(),
        line: 0,
        reason: format!("internal: option {key} disappeared while validating"),
    }
}

/// The system hostname: Neutron's default for `host`.
pub fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<AgentConfig, ConfigError> {
        let mut raw = RawConfig::default();
        raw.parse_str(text, Path::new("/etc/neutron/dhcp_agent.ini"))?;
        AgentConfig::from_raw(&raw)
    }

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

    #[test]
    fn defaults_are_neutrons() {
        let c = cfg("[DEFAULT]\n").unwrap();
        assert_eq!(c.serve, ServeConfig::default());
        assert_eq!(c.interface_driver, "openvswitch");
        assert_eq!(c.state_path, PathBuf::from("/var/lib/neutron"));
        assert!(c.transport_url.is_none());
        assert!(!c.host.is_empty());
    }

    #[test]
    fn reads_options_and_ignores_unknown_ones() {
        let c = cfg(
            "# comment\n[DEFAULT]\ninterface_driver = veth\ndhcp_lease_duration=-1\n\
             dns_domain = \"example.org\"\nforce_metadata = True\nsome_unknown = x\n\
             dhcp_renewal_time: 100\n[veth]\nbridge = brq{network_id}\n[standalone]\n\
             networks_file = $state_path/nets.json\n[oslo_concurrency]\nlock_path = /x\n",
        )
        .unwrap();
        assert_eq!(c.interface_driver, "veth");
        assert_eq!(c.serve.dhcp_lease_duration, -1);
        assert_eq!(c.serve.dns_domain, "example.org");
        assert!(c.serve.force_metadata);
        assert_eq!(c.serve.dhcp_renewal_time, 100);
        assert_eq!(c.veth_bridge.as_deref(), Some("brq{network_id}"));
        assert_eq!(
            c.networks_file,
            Some(PathBuf::from("/var/lib/neutron/nets.json"))
        );
    }

    #[test]
    fn later_files_override_earlier() {
        let mut raw = RawConfig::default();
        raw.parse_str(
            "[DEFAULT]\ndns_domain = a\nhost = h1\n",
            Path::new("neutron.conf"),
        )
        .unwrap();
        raw.parse_str("[DEFAULT]\ndns_domain = b\n", Path::new("dhcp_agent.ini"))
            .unwrap();
        let c = AgentConfig::from_raw(&raw).unwrap();
        assert_eq!(c.serve.dns_domain, "b");
        assert_eq!(c.host, "h1");
    }

    #[test]
    fn invalid_values_name_file_section_and_key() {
        let e = cfg("[DEFAULT]\nforce_metadata = maybe\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/neutron/dhcp_agent.ini"), "{e}");
        assert!(e.contains("[DEFAULT] force_metadata"), "{e}");
        let e = cfg("[DEFAULT]\ndhcp_lease_duration = -5\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dhcp_lease_duration") && e.contains(">= -1"),
            "{e}"
        );
        assert!(cfg("[DEFAULT]\ndhcp_lease_duration = 0\n").is_err());
        assert!(cfg("[DEFAULT]\ndhcp_rebinding_time = x\n").is_err());
    }

    #[test]
    fn ovs_options() {
        let c = cfg("[DEFAULT]\n").unwrap();
        assert_eq!(c.ovs, OvsOptions::default());
        let c = cfg(
            "[DEFAULT]\novs_use_veth = true\n[OVS]\nintegration_bridge = br-x\n\
                     ovsdb_connection = unix:/run/openvswitch/db.sock\novsdb_timeout = 3\n\
                     datapath_type = netdev\n",
        )
        .unwrap();
        assert!(c.ovs.use_veth);
        assert_eq!(c.ovs.integration_bridge, "br-x");
        assert_eq!(c.ovs.ovsdb_connection, "unix:/run/openvswitch/db.sock");
        assert_eq!(c.ovs.ovsdb_timeout, Duration::from_secs(3));
        assert_eq!(c.ovs.datapath_type, "netdev");
        assert!(cfg("[OVS]\novsdb_timeout = 0\n").is_err());
    }

    #[test]
    fn neutron_options_defaults_and_validation() {
        let c = cfg("[DEFAULT]\n").unwrap();
        assert_eq!(c.neutron, NeutronOptions::default());
        let c = cfg(
            "[DEFAULT]\nresync_interval = 10\nresync_throttle = 0\nnum_sync_threads = 8\n\
             control_exchange = openstack\nrpc_response_timeout = 20\n\
             [AGENT]\nreport_interval = 0.5\navailability_zone = az1\n\
             [oslo_messaging_rabbit]\namqp_durable_queues = true\n",
        )
        .unwrap();
        assert_eq!(c.neutron.resync_interval, 10);
        assert_eq!(c.neutron.resync_throttle, 0);
        assert_eq!(c.neutron.num_sync_threads, 8);
        assert_eq!(c.neutron.report_interval, Duration::from_millis(500));
        assert_eq!(c.neutron.availability_zone, "az1");
        assert_eq!(c.neutron.control_exchange.as_deref(), Some("openstack"));
        assert_eq!(c.neutron.rpc_response_timeout.as_deref(), Some("20"));
        assert_eq!(
            c.neutron.rabbit,
            vec![("amqp_durable_queues".to_string(), "true".to_string())]
        );
        let e = cfg("[DEFAULT]\nresync_interval = 2\nresync_throttle = 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("resync_throttle") && e.contains("resync_interval"),
            "{e}"
        );
        assert!(cfg("[DEFAULT]\nresync_interval = 0\n").is_err());
        assert!(cfg("[AGENT]\nreport_interval = -1\n").is_err());
        assert_eq!(cfg("").unwrap().status_listen, None);
        assert_eq!(
            cfg("[agent]\nstatus_listen = 127.0.0.1:9733\n")
                .unwrap()
                .status_listen,
            Some("127.0.0.1:9733".parse().unwrap())
        );
        let e = cfg("[agent]\nstatus_listen = localhost\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[agent] status_listen"), "{e}");
        assert!(cfg("[AGENT]\nreport_interval = soon\n").is_err());
        assert!(cfg(&format!(
            "[AGENT]\navailability_zone = {}\n",
            "a".repeat(256)
        ))
        .is_err());
    }

    #[test]
    fn group_names_are_case_insensitive_like_oslo_config() {
        let c = cfg(
            "[agent]\nreport_interval = 7\navailability_zone = az9\n[ovs]\n\
             integration_bridge = br-x\n[Oslo_Messaging_Rabbit]\namqp_durable_queues = true\n",
        )
        .unwrap();
        assert_eq!(c.neutron.report_interval, Duration::from_secs(7));
        assert_eq!(c.neutron.availability_zone, "az9");
        assert_eq!(c.ovs.integration_bridge, "br-x");
        assert_eq!(
            c.neutron.rabbit,
            vec![("amqp_durable_queues".to_string(), "true".to_string())]
        );
        // Only DEFAULT is the default group: [default] is another (unused) group.
        let c = cfg("[default]\ndns_domain = x\n").unwrap();
        assert_eq!(c.serve.dns_domain, "openstacklocal");
        // Errors name the section as written.
        let e = cfg("[agent]\nreport_interval = soon\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[agent] report_interval"), "{e}");
        // A later [AGENT] overrides an earlier [agent].
        let c = cfg("[agent]\nreport_interval = 7\n[AGENT]\nreport_interval = 8\n").unwrap();
        assert_eq!(c.neutron.report_interval, Duration::from_secs(8));
    }

    #[test]
    fn dollar_dollar_is_a_literal_dollar_and_origin_names_the_file() {
        let mut raw = RawConfig::default();
        raw.parse_str(
            "[DEFAULT]\ntransport_url = rabbit://u:pa$$word@h/\nstate_path = /s\n",
            Path::new("/etc/neutron/neutron.conf"),
        )
        .unwrap();
        raw.parse_str(
            "[DEFAULT]\nhost = $state_path$$\n",
            Path::new("/x/dhcp_agent.ini"),
        )
        .unwrap();
        let c = AgentConfig::from_raw(&raw).unwrap();
        assert_eq!(c.transport_url.as_deref(), Some("rabbit://u:pa$word@h/"));
        assert_eq!(c.host, "/s$");
        assert_eq!(
            raw.origin("DEFAULT", "transport_url"),
            Some(Path::new("/etc/neutron/neutron.conf"))
        );
        assert_eq!(
            raw.origin("DEFAULT", "host"),
            Some(Path::new("/x/dhcp_agent.ini"))
        );
        assert_eq!(raw.origin("DEFAULT", "nothing"), None);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = cfg("[DEFAULT]\njust words\n").unwrap_err().to_string();
        assert!(e.contains("dhcp_agent.ini:2"), "{e}");
        assert!(cfg("key = v\n").is_err());
        assert!(cfg("[DEFAULT\n").is_err());
    }

    #[test]
    fn continuation_lines_and_config_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.conf"), "[DEFAULT]\ndns_domain = z\n").unwrap();
        std::fs::write(dir.path().join("a.conf"), "[DEFAULT]\ndns_domain = y\n").unwrap();
        std::fs::write(
            dir.path().join("ignored.ini"),
            "[DEFAULT]\ndns_domain = q\n",
        )
        .unwrap();
        let raw = RawConfig::load(&[], &[dir.path().to_owned()]).unwrap();
        assert_eq!(AgentConfig::from_raw(&raw).unwrap().serve.dns_domain, "z");
        let mut raw = RawConfig::default();
        raw.parse_str("[DEFAULT]\nhost = a\n  b\n", Path::new("x"))
            .unwrap();
        assert_eq!(AgentConfig::from_raw(&raw).unwrap().host, "a\nb");
    }
}
