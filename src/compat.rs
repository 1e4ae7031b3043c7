//! Which of the Python agent's options this agent honours: one table, read at start.
//!
//! An operator switching a node over keeps the same `neutron.conf` and `dhcp_agent.ini`. An
//! option we accept but do not act on would change behaviour silently, so every option that
//! Neutron's DHCP agent reads is classified here: implemented, not needed (and why), or not
//! implemented (and what the agent does instead). At start, a not-implemented option set to
//! something other than its default is logged at WARNING; one whose loss would break clients
//! without a trace (e.g. extra DHCP options in `dnsmasq_config_file`) stops the start-up unless
//! `[DEFAULT] allow_unsupported_options = true`. `--help` and the README print the table.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::config::RawConfig;

/// What the agent does with an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Read and acted on with Neutron's meaning.
    Implemented,
    /// Has no job in this agent; the text says why.
    NotNeeded(&'static str),
    /// Not acted on; the text says what the agent does instead. A non-default value is
    /// logged at WARNING.
    Missing(&'static str),
    /// Not acted on, and a non-default value would leave clients without something they
    /// got before: the start is refused unless `allow_unsupported_options` is set.
    Refused(&'static str),
}

/// How an option's value is compared with its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Str,
    List,
}

#[derive(Clone, Copy, Debug)]
pub struct OptionSupport {
    pub section: &'static str,
    pub key: &'static str,
    /// Neutron's default, as written in a config file.
    pub default: &'static str,
    kind: Kind,
    pub support: Support,
}

/// The override for [`Support::Refused`] options.
pub const ALLOW_UNSUPPORTED: (&str, &str) = ("DEFAULT", "allow_unsupported_options");

const NO_CHILDREN: &str = "the agent starts no child processes: DHCP, DNS and the metadata proxy \
                           run in its own process";
const NO_HELPER: &str = "the agent changes namespaces and links itself (netlink, setns) and \
                         needs capabilities, not a root helper";
const NO_IPTABLES: &str = "the DHCP agent installs no iptables rules";
const SERVER_SIDE: &str = "read by neutron-server, not by the agent";

macro_rules! opt {
    ($section:literal, $key:literal, $default:literal, $kind:ident, $support:expr) => {
        OptionSupport {
            section: $section,
            key: $key,
            default: $default,
            kind: Kind::$kind,
            support: $support,
        }
    };
}

use Support::{Implemented, Missing, NotNeeded, Refused};

/// Every option Neutron's DHCP agent reads (dhcp_agent.ini, neutron.conf, oslo.log's basics),
/// in the order of Neutron's option reference. `[oslo_messaging_rabbit]` is checked as a whole
/// by the transport and is not listed.
pub static OPTIONS: &[OptionSupport] = &[
    opt!("DEFAULT", "host", "", Str, Implemented),
    opt!("DEFAULT", "state_path", "/var/lib/neutron", Str, Implemented),
    opt!("DEFAULT", "transport_url", "", Str, Implemented),
    opt!("DEFAULT", "control_exchange", "neutron", Str, Implemented),
    opt!("DEFAULT", "rpc_response_timeout", "60", Int, Implemented),
    opt!("DEFAULT", "rpc_response_max_timeout", "600", Int, Implemented),
    opt!("DEFAULT", "resync_interval", "5", Int, Implemented),
    opt!("DEFAULT", "resync_throttle", "1", Int, Implemented),
    opt!("DEFAULT", "num_sync_threads", "4", Int, Implemented),
    opt!(
        "DEFAULT",
        "dhcp_driver",
        "neutron.agent.linux.dhcp.Dnsmasq",
        Str,
        NotNeeded("the embedded server is the driver; the value is reported in the agent state as configured")
    ),
    opt!("DEFAULT", "interface_driver", "openvswitch", Str, Implemented),
    opt!("DEFAULT", "ovs_use_veth", "false", Bool, Implemented),
    opt!("DEFAULT", "dhcp_lease_duration", "86400", Int, Implemented),
    opt!("DEFAULT", "dns_domain", "openstacklocal", Str, Implemented),
    opt!("DEFAULT", "dhcp_broadcast_reply", "false", Bool, Implemented),
    opt!("DEFAULT", "dhcp_renewal_time", "0", Int, Implemented),
    opt!("DEFAULT", "dhcp_rebinding_time", "0", Int, Implemented),
    opt!("DEFAULT", "enable_isolated_metadata", "false", Bool, Implemented),
    opt!("DEFAULT", "force_metadata", "false", Bool, Implemented),
    opt!("DEFAULT", "enable_metadata_network", "false", Bool, Implemented),
    opt!("DEFAULT", "metadata_proxy_socket", "$state_path/metadata_proxy", Str, Implemented),
    opt!(
        "DEFAULT",
        "metadata_proxy_user",
        "",
        Str,
        NotNeeded("the proxy runs inside the agent and connects to the socket as the agent's user")
    ),
    opt!(
        "DEFAULT",
        "metadata_proxy_group",
        "",
        Str,
        NotNeeded("the proxy runs inside the agent and connects to the socket as the agent's group")
    ),
    opt!(
        "DEFAULT",
        "bulk_reload_interval",
        "0",
        Int,
        Missing("port changes are applied at once (a view swap costs less than batching saves)")
    ),
    opt!(
        "DEFAULT",
        "dhcp_confs",
        "$state_path/dhcp",
        Str,
        Missing("per-network records are kept in $state_path/dhcp")
    ),
    opt!(
        "DEFAULT",
        "dnsmasq_config_file",
        "",
        Str,
        Refused("there is no dnsmasq: options, ranges or hosts in that file would no longer reach clients")
    ),
    opt!("DEFAULT", "dnsmasq_dns_servers", "", List, Implemented),
    opt!("DEFAULT", "dnsmasq_local_resolv", "false", Bool, Implemented),
    opt!(
        "DEFAULT",
        "dnsmasq_base_log_dir",
        "",
        Str,
        Missing("DHCP and DNS requests are logged to the agent's own log (at debug level)")
    ),
    opt!(
        "DEFAULT",
        "dnsmasq_lease_max",
        "16777216",
        Int,
        NotNeeded("the server is static-only: one binding per port, no pool to bound")
    ),
    opt!(
        "DEFAULT",
        "dnsmasq_enable_addr6_list",
        "false",
        Bool,
        NotNeeded("a DHCPv6 client is always given all of its port's addresses on the link, which is what the option turns on in dnsmasq")
    ),
    opt!(
        "DEFAULT",
        "dnsmasq_txt_record",
        "",
        Str,
        Missing("no TXT record is served")
    ),
    opt!(
        "DEFAULT",
        "external_pids",
        "$state_path/external/pids",
        Str,
        NotNeeded(NO_CHILDREN)
    ),
    opt!("DEFAULT", "dhcp_agent_notification", "true", Bool, NotNeeded(SERVER_SIDE)),
    opt!("DEFAULT", "enable_traditional_dhcp", "true", Bool, NotNeeded(SERVER_SIDE)),
    opt!("DEFAULT", "debug", "false", Bool, Implemented),
    opt!("DEFAULT", "log_file", "", Str, Implemented),
    opt!("DEFAULT", "log_dir", "", Str, Implemented),
    opt!(
        "DEFAULT",
        "use_syslog",
        "false",
        Bool,
        Missing("logs go to the log file, or to stderr (the journal under systemd)")
    ),
    opt!(
        "DEFAULT",
        "use_journal",
        "false",
        Bool,
        Missing("logs go to stderr, which systemd sends to the journal")
    ),
    opt!(
        "DEFAULT",
        "use_json",
        "false",
        Bool,
        Missing("logs are plain text lines with key=value fields")
    ),
    opt!(
        "DEFAULT",
        "log_config_append",
        "",
        Str,
        Missing("logging follows debug, log_file and log_dir only")
    ),
    opt!("AGENT", "report_interval", "30", Int, Implemented),
    opt!("AGENT", "log_agent_heartbeats", "false", Bool, Implemented),
    opt!("AGENT", "availability_zone", "nova", Str, Implemented),
    opt!("AGENT", "root_helper", "sudo", Str, NotNeeded(NO_HELPER)),
    opt!("AGENT", "use_helper_for_ns_read", "true", Bool, NotNeeded(NO_HELPER)),
    opt!("AGENT", "root_helper_daemon", "", Str, NotNeeded(NO_HELPER)),
    opt!("AGENT", "check_child_processes_action", "respawn", Str, NotNeeded(NO_CHILDREN)),
    opt!("AGENT", "check_child_processes_interval", "60", Int, NotNeeded(NO_CHILDREN)),
    opt!("AGENT", "kill_scripts_path", "/etc/neutron/kill_scripts/", Str, NotNeeded(NO_CHILDREN)),
    opt!("AGENT", "comment_iptables_rules", "true", Bool, NotNeeded(NO_IPTABLES)),
    opt!("AGENT", "debug_iptables_rules", "false", Bool, NotNeeded(NO_IPTABLES)),
    opt!("AGENT", "use_random_fully", "true", Bool, NotNeeded(NO_IPTABLES)),
    opt!("OVS", "integration_bridge", "br-int", Str, Implemented),
    opt!("OVS", "datapath_type", "system", Str, Implemented),
    opt!("OVS", "ovsdb_connection", "tcp:127.0.0.1:6640", Str, Implemented),
    opt!("OVS", "ovsdb_timeout", "10", Int, Implemented),
    opt!("metadata_rate_limiting", "rate_limit_enabled", "false", Bool, Implemented),
    opt!("metadata_rate_limiting", "ip_versions", "4", List, Implemented),
    opt!("metadata_rate_limiting", "base_window_duration", "10", Int, Implemented),
    opt!("metadata_rate_limiting", "base_query_rate_limit", "10", Int, Implemented),
    opt!("metadata_rate_limiting", "burst_window_duration", "10", Int, Implemented),
    opt!("metadata_rate_limiting", "burst_query_rate_limit", "10", Int, Implemented),
    opt!("metadata_haproxy", "timeout_connect", "30", Int, Implemented),
    opt!("metadata_haproxy", "timeout_client", "32", Int, Implemented),
    opt!("metadata_haproxy", "timeout_server", "32", Int, Implemented),
    opt!("metadata_haproxy", "timeout_http_request", "30", Int, Implemented),
    opt!("metadata_haproxy", "timeout_http_keep_alive", "30", Int, Implemented),
];

/// An option set to a value this agent does not act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    pub file: Option<PathBuf>,
    pub section: &'static str,
    pub key: &'static str,
    pub value: String,
    /// What the agent does instead.
    pub instead: &'static str,
    /// Whether it stops the start-up (without the override).
    pub refused: bool,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self
            .file
            .as_ref()
            .map_or_else(|| "<defaults>".to_string(), |p| p.display().to_string());
        write!(
            f,
            "{file}: [{}] {} = {:?} is not supported by this agent: {}",
            self.section, self.key, self.value, self.instead
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{first}{more}; set [DEFAULT] allow_unsupported_options = true to start anyway",
    first = .0[0],
    more = if .0.len() > 1 { format!(" (and {} more)", .0.len() - 1) } else { String::new() }
)]
pub struct RefusedOptions(pub Vec<Unsupported>);

/// The options in `raw` that are set to a non-default value this agent does not act on.
pub fn unsupported(raw: &RawConfig) -> Vec<Unsupported> {
    let mut out = Vec::new();
    for o in OPTIONS {
        let (instead, refused) = match o.support {
            Missing(t) => (t, false),
            Refused(t) => (t, true),
            Implemented | NotNeeded(_) => continue,
        };
        let Some(value) = raw.value(o.section, o.key) else {
            continue;
        };
        if same_as_default(o, value) {
            continue;
        }
        out.push(Unsupported {
            file: raw.origin(o.section, o.key).map(Into::into),
            section: o.section,
            key: o.key,
            value: value.to_owned(),
            instead,
            refused,
        });
    }
    out
}

/// Warns about every unsupported option that is set, and refuses the start for the ones that
/// would break clients unless the operator allowed it.
pub fn check(raw: &RawConfig) -> Result<Vec<Unsupported>, RefusedOptions> {
    let found = unsupported(raw);
    let allow = raw
        .value(ALLOW_UNSUPPORTED.0, ALLOW_UNSUPPORTED.1)
        .is_some_and(is_true);
    let refused: Vec<Unsupported> = found.iter().filter(|u| u.refused).cloned().collect();
    if !refused.is_empty() && !allow {
        return Err(RefusedOptions(refused));
    }
    for u in &found {
        tracing::warn!(
            file = %u.file.as_ref().map_or_else(String::new, |p| p.display().to_string()),
            section = u.section,
            key = u.key,
            value = %u.value,
            instead = u.instead,
            "option set but not supported by this agent"
        );
    }
    Ok(found)
}

/// Whether `[section] key` is in the table (for the "ignored option" debug list).
pub fn is_listed(section: &str, key: &str) -> bool {
    OPTIONS
        .iter()
        .any(|o| o.section.eq_ignore_ascii_case(section) && o.key == key)
        || (ALLOW_UNSUPPORTED.0.eq_ignore_ascii_case(section) && ALLOW_UNSUPPORTED.1 == key)
}

fn is_true(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1"
    )
}

fn same_as_default(o: &OptionSupport, value: &str) -> bool {
    let v = value.trim();
    match o.kind {
        Kind::Bool => is_true(v) == is_true(o.default),
        Kind::Int => match (v.parse::<f64>(), o.default.parse::<f64>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => v == o.default,
        },
        Kind::Str => v.is_empty() || v == o.default,
        Kind::List => {
            let items = |s: &str| -> Vec<String> {
                s.split(',')
                    .map(|i| i.trim().to_owned())
                    .filter(|i| !i.is_empty())
                    .collect()
            };
            items(v) == items(o.default)
        }
    }
}

/// The table as text, for `--help` and the README.
pub fn table_text() -> String {
    let mut out = String::from("Neutron DHCP agent options and what this agent does with them:\n");
    for o in OPTIONS {
        let what = match o.support {
            Implemented => "implemented".to_string(),
            NotNeeded(why) => format!("not needed: {why}"),
            Missing(instead) => format!("not implemented (warning if set): {instead}"),
            Refused(instead) => format!(
                "not implemented (refuses to start if set, unless allow_unsupported_options): {instead}"
            ),
        };
        let _ = writeln!(out, "  [{}] {}: {what}", o.section, o.key);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn raw(text: &str) -> RawConfig {
        let mut raw = RawConfig::default();
        raw.parse_str(text, Path::new("/etc/neutron/dhcp_agent.ini"))
            .unwrap();
        raw
    }

    #[test]
    fn defaults_and_unset_options_say_nothing() {
        let r = raw(
            "[DEFAULT]\nbulk_reload_interval = 0\ndnsmasq_config_file =\n\
                     dnsmasq_txt_record = \"\"\nuse_syslog = False\n",
        );
        assert_eq!(unsupported(&r), vec![]);
        assert!(check(&r).unwrap().is_empty());
    }

    #[test]
    fn a_missing_feature_set_to_another_value_is_named_with_what_happens_instead() {
        let r = raw("[DEFAULT]\nbulk_reload_interval = 5\n");
        let found = check(&r).unwrap();
        assert_eq!(found.len(), 1);
        let text = found[0].to_string();
        assert!(
            text.contains("/etc/neutron/dhcp_agent.ini: [DEFAULT] bulk_reload_interval = \"5\""),
            "{text}"
        );
        assert!(text.contains("applied at once"), "{text}");
    }

    #[test]
    fn a_dnsmasq_config_file_refuses_the_start_unless_allowed() {
        let r = raw("[DEFAULT]\ndnsmasq_config_file = /etc/neutron/dnsmasq.conf\n");
        let e = check(&r).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("dnsmasq_config_file"), "{text}");
        assert!(text.contains("allow_unsupported_options = true"), "{text}");
        let r = raw(
            "[DEFAULT]\ndnsmasq_config_file = /etc/neutron/dnsmasq.conf\n\
                     allow_unsupported_options = true\n",
        );
        let found = check(&r).unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].refused);
    }

    #[test]
    fn sections_are_case_insensitive_like_oslo_config() {
        let r = raw("[agent]\nroot_helper = sudo neutron-rootwrap /etc/neutron/rootwrap.conf\n");
        // Not needed: never a warning.
        assert_eq!(unsupported(&r), vec![]);
        assert!(is_listed("agent", "root_helper"));
    }

    #[test]
    fn every_option_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for o in OPTIONS {
            assert!(
                seen.insert((o.section, o.key)),
                "[{}] {} twice",
                o.section,
                o.key
            );
        }
    }

    /// The README's table is the code's table: a row per option, saying the same thing.
    #[test]
    fn the_readme_lists_every_option_as_the_code_does() {
        let readme = include_str!("../README.md");
        for line in table_text().lines().skip(1) {
            let (name, what) = line.trim().split_once(": ").unwrap();
            let row = format!("| `{name}` | {what} |");
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
        let section = readme
            .split("### Neutron's options and what this agent does with them")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap();
        let rows = section.lines().filter(|l| l.starts_with("| `[")).count();
        assert_eq!(rows, OPTIONS.len(), "README.md rows vs OPTIONS");
    }

    #[test]
    fn the_table_text_names_every_option() {
        let text = table_text();
        for o in OPTIONS {
            assert!(text.contains(&format!("[{}] {}:", o.section, o.key)));
        }
    }
}
