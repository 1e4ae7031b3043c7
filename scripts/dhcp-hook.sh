#!/bin/sh
# Print-only hook for dhclient (-sf), busybox udhcpc (-s) and dhcpcd (-c).
#
# It configures nothing and never touches /etc/resolv.conf (dhclient-script would
# rewrite the *host's* resolv.conf from inside a network namespace). It prints one
# normalised record per invocation, so tests and scripts/demo.sh can read what the
# client received without caring which client it was:
#
#   DHCP-HOOK-BEGIN
#   client=udhcpc            dhclient | udhcpc | dhcpcd
#   reason=BOUND             BOUND/REBOOT/RENEW/... (udhcpc's "bound" is upper-cased)
#   interface=eth0
#   ip=10.0.0.5
#   mask=255.255.255.0
#   router=10.0.0.1          first router only
#   dns=10.0.0.2 8.8.8.8     space separated
#   mtu=1450
#   hostname=host-10-0-0-5
#   domain=openstacklocal
#   routes=192.168.50.0/24,10.0.0.254 0.0.0.0/0,10.0.0.1     option 121, dest,nexthop
#   server=10.0.0.2          server identifier (option 54)
#   lease=86400
#   DHCP-HOOK-END
#
# Environment:
#   DHCP_HOOK_CLIENT  which client calls us (detected when unset)
#   DHCP_HOOK_OUT     append the record to this file instead of stdout
set -u

client=${DHCP_HOOK_CLIENT:-}
if [ -z "$client" ]; then
    if [ $# -gt 0 ]; then
        client=udhcpc          # udhcpc passes the event as $1
    elif [ -n "${protocol:-}" ] || [ -n "${ifcarrier:-}" ]; then
        client=dhcpcd
    else
        client=dhclient
    fi
fi

# Decode dhclient's raw RFC 3442 bytes ("24 192 168 50 10 0 0 254 0 10 0 0 1")
# into "192.168.50.0/24,10.0.0.254 0.0.0.0/0,10.0.0.1".
decode_rfc3442() {
    # shellcheck disable=SC2086 # word splitting is the point
    set -- $1
    out=
    while [ $# -gt 0 ]; do
        width=$1; shift
        sig=$(( (width + 7) / 8 ))
        [ $# -ge $(( sig + 4 )) ] || break
        d1=0; d2=0; d3=0; d4=0
        [ "$sig" -ge 1 ] && { d1=$1; shift; }
        [ "$sig" -ge 2 ] && { d2=$1; shift; }
        [ "$sig" -ge 3 ] && { d3=$1; shift; }
        [ "$sig" -ge 4 ] && { d4=$1; shift; }
        gw="$1.$2.$3.$4"; shift 4
        out="${out:+$out }$d1.$d2.$d3.$d4/$width,$gw"
    done
    printf '%s' "$out"
}

# "dest/len gw dest/len gw" (udhcpc staticroutes, dhcpcd classless_static_routes)
# into "dest/len,gw dest/len,gw".
pair_routes() {
    # shellcheck disable=SC2086
    set -- $1
    out=
    while [ $# -ge 2 ]; do
        out="${out:+$out }$1,$2"
        shift 2
    done
    printf '%s' "$out"
}

first_word() {
    # shellcheck disable=SC2086
    set -- $1
    printf '%s' "${1:-}"
}

case "$client" in
    udhcpc)
        reason=$(printf '%s' "${1:-}" | tr '[:lower:]' '[:upper:]')
        ip=${ip:-}
        mask=${subnet:-}
        router=$(first_word "${router:-}")
        dns=${dns:-}
        mtu=${mtu:-}
        hostname=${hostname:-}
        domain=${domain:-}
        routes=$(pair_routes "${staticroutes:-}")
        server=${serverid:-}
        leasetime=${lease:-}
        ;;
    dhclient)
        reason=${reason:-}
        ip=${new_ip_address:-}
        mask=${new_subnet_mask:-}
        router=$(first_word "${new_routers:-}")
        dns=${new_domain_name_servers:-}
        mtu=${new_interface_mtu:-}
        hostname=${new_host_name:-}
        domain=${new_domain_name:-}
        routes=$(decode_rfc3442 "${new_rfc3442_classless_static_routes:-}")
        server=${new_dhcp_server_identifier:-}
        leasetime=${new_dhcp_lease_time:-}
        ;;
    dhcpcd)
        reason=${reason:-}
        ip=${new_ip_address:-}
        mask=${new_subnet_mask:-}
        router=$(first_word "${new_routers:-}")
        dns=${new_domain_name_servers:-}
        mtu=${new_interface_mtu:-}
        hostname=${new_host_name:-}
        domain=${new_domain_name:-}
        routes=$(pair_routes "${new_classless_static_routes:-}")
        server=${new_dhcp_server_identifier:-}
        leasetime=${new_dhcp_lease_time:-}
        ;;
    *)
        echo "dhcp-hook.sh: unknown client '$client'" >&2
        exit 0
        ;;
esac

record() {
    echo "DHCP-HOOK-BEGIN"
    echo "client=$client"
    echo "reason=$reason"
    echo "interface=${interface:-}"
    echo "ip=$ip"
    echo "mask=$mask"
    echo "router=$router"
    echo "dns=$dns"
    echo "mtu=$mtu"
    echo "hostname=$hostname"
    echo "domain=$domain"
    echo "routes=$routes"
    echo "server=$server"
    echo "lease=$leasetime"
    echo "DHCP-HOOK-END"
}

if [ -n "${DHCP_HOOK_OUT:-}" ]; then
    record >>"$DHCP_HOOK_OUT"
else
    record
fi
exit 0
