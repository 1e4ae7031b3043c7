#!/bin/sh
# Dump-everything hook for dhclient (-sf): records EVERY option the client received.
#
# dhclient hands a script each received option as an environment variable `new_<name>`
# (options it has no name for as `new_unknown_<code>`, hex bytes), plus the BOOTP fields it
# keeps (`new_ip_address`, `new_filename`, `new_server_name`, ...). This hook writes one record
# per invocation with all of them, sorted, so that two servers' answers can be compared as
# sets. It configures nothing and never touches /etc/resolv.conf.
#
#   DHCP-DUMP-BEGIN
#   reason=BOUND
#   new_domain_name_servers=10.0.0.2
#   new_ip_address=10.0.0.5
#   ...
#   DHCP-DUMP-END
#
# Environment: DHCP_HOOK_OUT  append the record to this file instead of stdout.
set -u

record() {
    echo "DHCP-DUMP-BEGIN"
    echo "reason=${reason:-}"
    # `env` quotes nothing; values never contain newlines (dhclient escapes them).
    env | grep '^new_' | LC_ALL=C sort
    echo "DHCP-DUMP-END"
}

if [ -n "${DHCP_HOOK_OUT:-}" ]; then
    record >>"$DHCP_HOOK_OUT"
else
    record
fi
exit 0
