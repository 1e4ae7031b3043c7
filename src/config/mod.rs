//! Agent configuration: oslo.config-style INI files with Neutron's option names and defaults.
//!
//! Operators start us exactly like the Python agent (`--config-file neutron.conf --config-file
//! dhcp_agent.ini`), so their files hold hundreds of options we do not use. Those are ignored with
//! a debug log; options we do use are validated, and a bad value is an error naming the file,
//! section and key, because a daemon that silently falls back to a default is worse than one that
//! refuses to start.
//!
//! `raw` reads and merges the files, `reader` types single values, one file per option group
//! (`serve`, `neutron`, `ovs`, `metadata`, `dns`, `logging`) validates its options, `known`
//! lists the options read (the others are logged as ignored), and [`AgentConfig`] here is the
//! whole. Options whose syntax belongs to a layer above (the interface driver, `[OVS]`,
//! messaging) are refused through [`RawConfig::refused`] and its siblings, which name the file,
//! section and key the same way.

mod dns;
mod error;
mod known;
mod logging;
mod metadata;
mod neutron;
mod ovs;
mod raw;
mod reader;
mod serve;

use std::path::PathBuf;

use self::dns::dns_options;
pub use self::dns::DnsOptions;
pub use self::error::{ConfigError, SourceError};
pub use self::logging::{LoggingArgs, LoggingOptions};
use self::metadata::metadata_options;
pub use self::metadata::{MetadataOptions, MetadataTimeouts, RateLimitOptions};
use self::neutron::neutron_options;
pub use self::neutron::NeutronOptions;
use self::ovs::ovs_options;
pub use self::ovs::OvsOptions;
pub use self::raw::RawConfig;
use self::reader::Reader;
use self::serve::serve_options;
pub use self::serve::ServeConfig;

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

impl AgentConfig {
    /// Types and validates the merged files.
    pub fn from_raw(raw: &RawConfig) -> Result<AgentConfig, ConfigError> {
        known::log_ignored(raw);
        let r = Reader::new(raw);
        let serve = serve_options(&r)?;
        let host = r
            .opt_string("DEFAULT", "host")
            .unwrap_or_else(system_hostname);
        let state_path = PathBuf::from(
            r.opt_string("DEFAULT", "state_path")
                .unwrap_or_else(|| "/var/lib/neutron".into()),
        );
        let neutron = neutron_options(&r)?;
        let metadata = metadata_options(&r, &state_path)?;
        let ovs = ovs_options(&r)?;
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

/// The system hostname: Neutron's default for `host`.
/// (`gethostname` on Linux is the `nodename` of `uname`, which cannot fail.)
pub fn system_hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The configuration of one file's text, as if read from `/etc/neutron/dhcp_agent.ini` (the
/// option groups' tests).
#[cfg(test)]
fn cfg(text: &str) -> Result<AgentConfig, ConfigError> {
    let mut raw = RawConfig::default();
    raw.parse_str(text, std::path::Path::new("/etc/neutron/dhcp_agent.ini"))?;
    AgentConfig::from_raw(&raw)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

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
}
