//! The options this agent reads, so that the others in an operator's files can be listed (at
//! debug level) as ignored.

use std::path::Path;

use super::raw::{group_key, RawConfig};

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
    // Read for the logging set-up (see logging.rs), like oslo.log's options.
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

/// Logs every option of the files that this agent does not read, sorted so the list reads like
/// the files.
pub(super) fn log_ignored(raw: &RawConfig) {
    let mut ignored: Vec<(&Path, &str, &str)> = raw
        .entries()
        // [oslo_messaging_rabbit] goes to the transport as a whole, which checks it.
        .filter(|(section, key, _)| {
            *section != "oslo_messaging_rabbit"
                && !KNOWN
                    .iter()
                    .any(|(s, k)| group_key(s) == *section && k == key)
        })
        .map(|(_, key, v)| (v.path.as_path(), v.section.as_str(), key))
        .collect();
    ignored.sort_unstable();
    for (path, section, key) in ignored {
        tracing::debug!(file = %path.display(), section = %section, key = %key, "ignoring option not used by this agent");
    }
}
