#!/usr/bin/env python3
"""A neutron-server stand-in built on the real oslo.messaging library.

It serves, over RabbitMQ, the server side of every RPC a neutron-dhcp-agent makes
(Neutron's DhcpRpcCallback, MetadataRpcCallback.get_ports and AgentExtRpcCallback.report_state,
with the same argument names, return values and remote exception classes), backed by an
in-memory set of Neutron network dicts, and it sends the casts that neutron-server's
DhcpAgentNotifyAPI sends to DHCP agents.

A test drives it through stdin/stdout, one JSON object per line (see tests/peer/README.md):
commands on stdin are answered with {"ok": true, ...} / {"ok": false, "error": "..."};
every RPC message the peer receives is reported as {"event": "call", ...}. Logs go to stderr.

Run it with the venv made by scripts/py-venv.sh:

    "$(scripts/py-venv.sh)" tests/peer/neutron_peer.py --transport-url rabbit://guest:guest@127.0.0.1:5672/ --vhost X
"""

import argparse
import copy
import datetime
import ipaddress
import itertools
import json
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
import uuid
import warnings

# oslo.messaging imports oslo.service, which imports eventlet, which warns on import.
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

from urllib.parse import quote, urlsplit, urlunsplit  # noqa: E402

try:  # noqa: E402
    import oslo_messaging
    from oslo_config import cfg
    from oslo_messaging.rpc import dispatcher as rpc_dispatcher
    from oslo_messaging.rpc import server as rpc_server
    from oslo_messaging._drivers import amqpdriver, impl_rabbit
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        "neutron_peer: cannot import oslo.messaging (%s); run it with the python printed by "
        "scripts/py-venv.sh\n" % exc
    )
    sys.exit(2)

LOG = logging.getLogger("neutron_peer")

# An idle RPC listener's poll loop sleeps up to ACK_REQUEUE_EVERY_SECONDS_MAX (5 s) in
# drain_events() and only then notices server.stop(), so every stop took up to 5 s per server.
# 1 s keeps shutdown quick; nothing on the wire depends on it.
# (impl_rabbit is imported above on purpose: it derives an option bound from the original
# value at import time, and would reject its own default if imported after this.)
amqpdriver.ACK_REQUEUE_EVERY_SECONDS_MAX = 1.0

# --------------------------------------------------------------------------------------------
# Neutron constants (neutron_lib/constants.py, neutron_lib/agent/topics.py)
# --------------------------------------------------------------------------------------------

TOPIC_PLUGIN = "q-plugin"
TOPIC_REPORTS = "q-reports-plugin"
TOPIC_DHCP_AGENT = "dhcp_agent"
DEVICE_OWNER_DHCP = "network:dhcp"
DEVICE_ID_RESERVED_DHCP_PORT = "reserved_dhcp_port"
DEFAULT_PROJECT = "5f0e0000000000000000000000000000"

# DhcpAgentNotifyAPI's METHOD_PRIORITY_MAP (port_create_end: 5 for one random agent, 6 for
# the others; the peer uses 6 unless the payload says otherwise).
METHOD_PRIORITY = {
    "network_create_end": 0,
    "network_update_end": 1,
    "network_delete_end": 2,
    "subnet_create_end": 3,
    "subnet_update_end": 3,
    "subnet_delete_end": 4,
    "port_create_end": 6,
    "port_update_end": 6,
    "port_delete_end": 6,
}

REPORT_REPLIES = ("alive", "new", "revived", "auto", None)


def dhcp_agent_device_id(network_id, host):
    """neutron.common.utils.get_dhcp_agent_device_id (no segmentation id)."""
    local_hostname = host.split(".")[0]
    host_uuid = uuid.uuid5(uuid.NAMESPACE_DNS, str(local_hostname))
    return "dhcp%s-%s" % (host_uuid, network_id)


def utcnow():
    """Naive UTC now, like oslo_utils.timeutils.utcnow() (datetime.utcnow is deprecated)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def utcnow_str():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# Exceptions: same class names, module and constructor as neutron_lib.exceptions, so the
# failure sent back is {"class": "NetworkNotFound", "module": "neutron_lib.exceptions",
# "message": "Network X could not be found.", "args": [message], "kwargs": {}} exactly as
# neutron-server sends it (NeutronException has no .kwargs attribute).
# --------------------------------------------------------------------------------------------


class NeutronException(Exception):
    message = "An unknown exception occurred."

    def __init__(self, **kwargs):
        try:
            super().__init__(self.message % kwargs)
            self.msg = self.message % kwargs
        except Exception:
            super().__init__(self.message)
            self.msg = self.message

    def __str__(self):
        return self.msg


class BadRequest(NeutronException):
    message = "Bad %(resource)s request: %(msg)s."


class NotFound(NeutronException):
    pass


class Conflict(NeutronException):
    pass


class InUse(NeutronException):
    message = "The resource is in use."


class NetworkNotFound(NotFound):
    message = "Network %(net_id)s could not be found."


class SubnetNotFound(NotFound):
    message = "Subnet %(subnet_id)s could not be found."


class PortNotFound(NotFound):
    message = "Port %(port_id)s could not be found."


class IpAddressInUse(InUse):
    message = (
        "Unable to complete operation for network %(net_id)s. "
        "The IP address %(ip_address)s is in use."
    )


class InvalidIpForSubnet(BadRequest):
    message = "IP address %(ip_address)s is not a valid IP for the specified subnet."


class InvalidIpForNetwork(BadRequest):
    message = (
        "IP address %(ip_address)s is not a valid IP for any of the subnets on the "
        "specified network."
    )


class InvalidInput(BadRequest):
    message = "Invalid input for operation: %(error_message)s."


class IpAddressGenerationFailure(Conflict):
    message = "No more IP addresses available on network %(net_id)s."


class DhcpPortInUse(InUse):
    message = "Port %(port_id)s is already acquired by another DHCP agent"


NEUTRON_EXCEPTIONS = {}
for _cls in (
    NeutronException,
    BadRequest,
    NotFound,
    Conflict,
    InUse,
    NetworkNotFound,
    SubnetNotFound,
    PortNotFound,
    IpAddressInUse,
    InvalidIpForSubnet,
    InvalidIpForNetwork,
    InvalidInput,
    IpAddressGenerationFailure,
    DhcpPortInUse,
):
    _cls.__module__ = "neutron_lib.exceptions"
    NEUTRON_EXCEPTIONS[_cls.__name__] = _cls
DhcpPortInUse.__module__ = "neutron.common.exceptions"  # neutron's own, not neutron-lib's

BUILTIN_EXCEPTIONS = {
    c.__name__: c
    for c in (AttributeError, KeyError, RuntimeError, TypeError, ValueError, Exception)
}


def make_exception(name, message=None, kwargs=None):
    """Build the exception named by an "inject" command."""
    if name in NEUTRON_EXCEPTIONS:
        cls = NEUTRON_EXCEPTIONS[name]
        exc = cls(**(kwargs or {}))
        if message:
            exc.msg = message
            exc.args = (message,)
        return exc
    if name in BUILTIN_EXCEPTIONS:
        return BUILTIN_EXCEPTIONS[name](message or "injected %s" % name)
    raise ValueError(
        "unknown exception %r (one of: %s)"
        % (name, ", ".join(sorted(NEUTRON_EXCEPTIONS) + sorted(BUILTIN_EXCEPTIONS)))
    )


# --------------------------------------------------------------------------------------------
# The in-memory "database"
# --------------------------------------------------------------------------------------------


def _ip_version(cidr):
    return ipaddress.ip_network(cidr, strict=False).version


def default_allocation_pools(cidr, gateway_ip):
    """Neutron's default pools: the whole subnet minus network/broadcast (v4) and gateway."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.version == 4:
        if net.prefixlen >= 31:
            first, last = net[0], net[-1]
        else:
            first, last = net[1], net[-2]
    else:
        first, last = net[1], net[-1]
    pools = []
    gw = ipaddress.ip_address(gateway_ip) if gateway_ip else None
    if gw is not None and first <= gw <= last:
        if first < gw:
            pools.append((first, gw - 1))
        if gw < last:
            pools.append((gw + 1, last))
    else:
        pools.append((first, last))
    return [{"start": str(a), "end": str(b)} for a, b in pools if a <= b]


def eui64_address(cidr, mac):
    net = ipaddress.ip_network(cidr, strict=False)
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    iid = octets[:3] + [0xFF, 0xFE] + octets[3:]
    return str(net[int.from_bytes(bytes(iid), "big")])


class Database:
    """Networks (with subnets and ports), agents, ready ports. All access under self.lock."""

    def __init__(self, agent_down_time):
        self.lock = threading.RLock()
        self.networks = {}  # id -> network dict (with "subnets" and "ports"), insertion order
        self.agents = {}  # (agent_type, host) -> record
        self.ready_ports = []
        self.report_mode = "auto"
        self.report_once = []  # queued one-shot replies, consumed first
        self.injections = []
        self.agent_down_time = agent_down_time
        self.start_time = utcnow()
        self._std_attr = itertools.count(1)

    # -- fixtures ---------------------------------------------------------------------------

    def _all_macs(self):
        return {p.get("mac_address") for n in self.networks.values() for p in n["ports"]}

    def new_mac(self):
        used = self._all_macs()
        while True:
            mac = "fa:16:3e:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(3))
            if mac not in used:
                return mac

    def normalize_network(self, net):
        if not isinstance(net, dict) or not isinstance(net.get("id"), str) or not net["id"]:
            raise ValueError('a network must be an object with a string "id"')
        net = copy.deepcopy(net)
        nid = net["id"]
        project = net.get("project_id") or net.get("tenant_id") or DEFAULT_PROJECT
        for k, v in (
            ("name", ""),
            ("project_id", project),
            ("tenant_id", project),
            ("admin_state_up", True),
            ("status", "ACTIVE"),
            ("shared", False),
            ("subnets", []),
            ("ports", []),
        ):
            net.setdefault(k, v)
        if not isinstance(net["subnets"], list) or not isinstance(net["ports"], list):
            raise ValueError("network %s: subnets and ports must be lists" % nid)
        net.pop("non_local_subnets", None)  # computed per host on every reply
        for s in net["subnets"]:
            if not isinstance(s, dict) or not s.get("id") or not s.get("cidr"):
                raise ValueError('network %s: a subnet needs "id" and "cidr"' % nid)
            try:
                ipaddress.ip_network(s["cidr"], strict=False)
            except ValueError as e:
                raise ValueError("subnet %s: %s" % (s["id"], e))
            s.setdefault("network_id", nid)
            s.setdefault("ip_version", _ip_version(s["cidr"]))
            s.setdefault("name", "")
            s.setdefault("project_id", project)
            s.setdefault("tenant_id", project)
            s.setdefault("enable_dhcp", True)
            s.setdefault("gateway_ip", None)
            s.setdefault("dns_nameservers", [])
            s.setdefault("host_routes", [])
            if not s.get("allocation_pools"):
                s["allocation_pools"] = default_allocation_pools(s["cidr"], s["gateway_ip"])
            s.setdefault("ipv6_ra_mode", None)
            s.setdefault("ipv6_address_mode", None)
            s.setdefault("subnetpool_id", None)
            s.setdefault("description", "")
            s.setdefault("tags", [])
            s.setdefault("revision_number", 0)
        for p in net["ports"]:
            if not isinstance(p, dict) or not p.get("id"):
                raise ValueError('network %s: a port needs an "id"' % nid)
            self._port_defaults(p, nid, project)
        return net

    def _port_defaults(self, p, nid, project):
        p.setdefault("network_id", nid)
        p.setdefault("name", "")
        p.setdefault("project_id", project)
        p.setdefault("tenant_id", project)
        p.setdefault("admin_state_up", True)
        p.setdefault("status", "ACTIVE")
        p.setdefault("device_id", "")
        p.setdefault("device_owner", "")
        p.setdefault("fixed_ips", [])
        p.setdefault("extra_dhcp_opts", [])
        if not p.get("mac_address"):
            p["mac_address"] = self.new_mac()
        p.setdefault("binding:host_id", "")
        p.setdefault("revision_number", 1)
        p.setdefault("description", "")
        p.setdefault("tags", [])
        p.setdefault("security_groups", [])
        p.setdefault("allowed_address_pairs", [])

    def set_networks(self, networks):
        if not isinstance(networks, list):
            raise ValueError('"networks" must be a list')
        new = {}
        for n in networks:
            n = self.normalize_network(n)
            new[n["id"]] = n
        with self.lock:
            self.networks = new
        return len(new)

    def upsert_network(self, network):
        n = self.normalize_network(network)
        with self.lock:
            created = n["id"] not in self.networks
            self.networks[n["id"]] = n
        return created

    def remove_network(self, network_id):
        with self.lock:
            return self.networks.pop(network_id, None) is not None

    # -- views ------------------------------------------------------------------------------

    @staticmethod
    def _public(obj):
        return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}

    def hosted_by(self, net, host):
        hosts = net.get("_hosts")
        return hosts is None or host in hosts

    def network_view(self, net, host, dhcp_only):
        """Network dict as DhcpRpcCallback returns it: subnets sorted by id, segment split."""
        out = self._public(net)
        subnets = [copy.deepcopy(s) for s in net["subnets"] if s.get("enable_dhcp") or not dhcp_only]
        local, nonlocal_ = subnets, []
        segments = net.get("segments")
        if segments and any(s.get("segment_id") for s in subnets):
            host_segs = {
                seg.get("id")
                for seg in segments
                if seg.get("hosts") is None or host in (seg.get("hosts") or [])
            }
            local = [s for s in subnets if s.get("segment_id") in host_segs]
            nonlocal_ = [s for s in subnets if s.get("segment_id") and s["segment_id"] not in host_segs]
        out["subnets"] = sorted(local, key=lambda s: s["id"])
        out["non_local_subnets"] = sorted(nonlocal_, key=lambda s: s["id"])
        out["ports"] = [copy.deepcopy(p) for p in net["ports"]]
        return out

    def find_port(self, port_id):
        for net in self.networks.values():
            for p in net["ports"]:
                if p["id"] == port_id:
                    return net, p
        return None, None

    def find_subnet(self, subnet_id):
        for net in self.networks.values():
            for s in net["subnets"]:
                if s["id"] == subnet_id:
                    return net, s
        return None, None

    # -- IPAM -------------------------------------------------------------------------------

    @staticmethod
    def _used_ips(net, exclude_port_id=None):
        used = set()
        for p in net["ports"]:
            if p["id"] == exclude_port_id:
                continue
            for fip in p.get("fixed_ips") or []:
                if fip.get("ip_address"):
                    used.add(ipaddress.ip_address(fip["ip_address"]))
        return used

    def _allocate(self, net, subnet, mac, used):
        mode = subnet.get("ipv6_address_mode")
        if subnet["ip_version"] == 6 and mode in ("slaac", "dhcpv6-stateless"):
            return eui64_address(subnet["cidr"], mac)
        gw = ipaddress.ip_address(subnet["gateway_ip"]) if subnet.get("gateway_ip") else None
        for pool in subnet["allocation_pools"]:
            addr = ipaddress.ip_address(pool["start"])
            end = ipaddress.ip_address(pool["end"])
            while addr <= end:
                if addr not in used and addr != gw:
                    return str(addr)
                addr += 1
        raise IpAddressGenerationFailure(net_id=net["id"])

    def _resolve_fixed_ips(self, net, requested, mac, port_id=None, current=None):
        """Turn [{"subnet_id"[, "ip_address"]} | {"ip_address"}] into full fixed_ips."""
        used = self._used_ips(net, exclude_port_id=port_id)
        current = current or []
        out = []
        for req in requested:
            if not isinstance(req, dict):
                raise InvalidInput(error_message="fixed_ips entries must be objects")
            sid, ip = req.get("subnet_id"), req.get("ip_address")
            if sid is None and ip is None:
                raise InvalidInput(error_message="fixed_ip needs subnet_id or ip_address")
            if sid is not None:
                subnet = next((s for s in net["subnets"] if s["id"] == sid), None)
                if subnet is None:
                    raise SubnetNotFound(subnet_id=sid)
            else:
                addr = ipaddress.ip_address(ip)
                subnet = next(
                    (s for s in net["subnets"] if addr in ipaddress.ip_network(s["cidr"], strict=False)),
                    None,
                )
                if subnet is None:
                    raise InvalidIpForNetwork(ip_address=ip)
            if ip is None:
                # update with only a subnet id keeps the address the port already has there
                kept = next(
                    (
                        f["ip_address"]
                        for f in current
                        if f.get("subnet_id") == subnet["id"]
                        and ipaddress.ip_address(f["ip_address"]) not in used
                        and all(o["ip_address"] != f["ip_address"] for o in out)
                    ),
                    None,
                )
                ip = kept or self._allocate(net, subnet, mac, used)
            else:
                if ipaddress.ip_address(ip) not in ipaddress.ip_network(subnet["cidr"], strict=False):
                    raise InvalidIpForSubnet(ip_address=ip)
                if ipaddress.ip_address(ip) in used:
                    raise IpAddressInUse(net_id=net["id"], ip_address=ip)
            used.add(ipaddress.ip_address(ip))
            out.append({"subnet_id": subnet["id"], "ip_address": str(ipaddress.ip_address(ip))})
        return out

    # -- port operations (ML2 create_port / update_port / delete_ports_by_device_id) --------

    def create_port(self, body, host):
        nid = body.get("network_id")
        net = self.networks.get(nid)
        if net is None:
            raise NetworkNotFound(net_id=nid)
        mac = body.get("mac_address") or self.new_mac()
        requested = body.get("fixed_ips")
        if requested is None:
            requested = [{"subnet_id": s["id"]} for s in net["subnets"] if s.get("enable_dhcp")]
        fixed_ips = self._resolve_fixed_ips(net, requested, mac)
        now = utcnow_str()
        project = body.get("project_id") or body.get("tenant_id") or net["project_id"]
        port = {
            "id": str(uuid.uuid4()),
            "name": body.get("name", ""),
            "network_id": nid,
            "project_id": project,
            "tenant_id": project,
            "mac_address": mac,
            "admin_state_up": body.get("admin_state_up", True),
            "status": "DOWN",
            "device_id": body.get("device_id", ""),
            "device_owner": body.get("device_owner", ""),
            "fixed_ips": fixed_ips,
            "extra_dhcp_opts": body.get("extra_dhcp_opts", []),
            "dns_name": body.get("dns_name", ""),
            "binding:host_id": body.get("binding:host_id", host or ""),
            "binding:vif_type": "ovs",
            "binding:vnic_type": "normal",
            "binding:profile": {},
            "binding:vif_details": {},
            "security_groups": [],
            "allowed_address_pairs": [],
            "port_security_enabled": False,
            "description": body.get("description", ""),
            "tags": [],
            "standard_attr_id": next(self._std_attr),
            "revision_number": 1,
            "created_at": now,
            "updated_at": now,
        }
        net["ports"].append(port)
        return copy.deepcopy(port)

    UPDATABLE = (
        "device_id",
        "device_owner",
        "name",
        "admin_state_up",
        "binding:host_id",
        "extra_dhcp_opts",
        "dns_name",
        "description",
    )

    def update_port(self, port_id, body):
        net, port = self.find_port(port_id)
        if port is None:
            raise PortNotFound(port_id=port_id)
        if "fixed_ips" in body:
            port["fixed_ips"] = self._resolve_fixed_ips(
                net, body["fixed_ips"], port["mac_address"], port_id=port_id, current=port["fixed_ips"]
            )
        for k in self.UPDATABLE:
            if k in body:
                port[k] = copy.deepcopy(body[k])
        port["revision_number"] = port.get("revision_number", 0) + 1
        port["updated_at"] = utcnow_str()
        return copy.deepcopy(port)

    def delete_ports_by_device_id(self, device_id, network_id):
        net = self.networks.get(network_id)
        if net is None:
            return []
        gone = [p["id"] for p in net["ports"] if p.get("device_id") == device_id]
        net["ports"] = [p for p in net["ports"] if p.get("device_id") != device_id]
        return gone

    # -- injections -------------------------------------------------------------------------

    def take_injection(self, method):
        with self.lock:
            for inj in self.injections:
                if inj["method"] in (method, "*"):
                    if inj["count"] > 0:
                        inj["count"] -= 1
                        if inj["count"] == 0:
                            self.injections.remove(inj)
                    return inj
        return None


def match_filters(obj, filters):
    for key, allowed in (filters or {}).items():
        if key == "fixed_ips" and isinstance(allowed, dict):
            fips = obj.get("fixed_ips") or []
            if not any(
                all(f.get(fk) in (fv if isinstance(fv, list) else [fv]) for fk, fv in allowed.items())
                for f in fips
            ):
                return False
            continue
        if not isinstance(allowed, (list, tuple)):
            allowed = [allowed]
        if obj.get(key) not in allowed:
            return False
    return True


def select_fields(obj, fields):
    if not fields:
        return obj
    return {k: v for k, v in obj.items() if k in fields}


# --------------------------------------------------------------------------------------------
# RPC endpoints: the server side of everything the DHCP agent calls
# --------------------------------------------------------------------------------------------


class DhcpRpcCallback:
    """neutron/api/rpc/handlers/dhcp_rpc.py (topic q-plugin, namespace None)."""

    target = oslo_messaging.Target(version="1.10")

    def __init__(self, db):
        self.db = db

    def get_active_networks_info(self, context, **kwargs):
        host = kwargs.get("host")
        dhcp_only = kwargs.get("enable_dhcp_filter", True)
        with self.db.lock:
            return [
                self.db.network_view(n, host, dhcp_only)
                for n in self.db.networks.values()
                if n.get("admin_state_up", True) and self.db.hosted_by(n, host)
            ]

    def get_network_info(self, context, **kwargs):
        network_id = kwargs.get("network_id")
        host = kwargs.get("host")
        with self.db.lock:
            net = self.db.networks.get(network_id)
            if net is None:
                LOG.debug("Network %s could not be found", network_id)
                return None
            return self.db.network_view(net, host, dhcp_only=True)

    def _port_action(self, action, port, host):
        """DhcpRpcCallback._port_action: expected failures become a None reply."""
        try:
            if action == "create_port":
                return self.db.create_port(port["port"], host)
            return self.db.update_port(port["id"], port["port"])
        except (NetworkNotFound, SubnetNotFound, InvalidInput, IpAddressGenerationFailure) as e:
            if isinstance(e, IpAddressGenerationFailure):
                # re-raised unless the subnet vanished meanwhile
                try:
                    sid = port["port"]["fixed_ips"][0]["subnet_id"]
                except (KeyError, IndexError, TypeError):
                    sid = None
                if sid is None or self.db.find_subnet(sid)[1] is not None:
                    LOG.warning("Action %s for network %s could not complete: %s",
                                action, port["port"].get("network_id"), e)
                    raise
            return None

    @oslo_messaging.expected_exceptions(IpAddressGenerationFailure)
    def create_dhcp_port(self, context, **kwargs):
        host = kwargs.get("host")
        port = copy.deepcopy(kwargs.get("port"))
        port["port"]["device_owner"] = DEVICE_OWNER_DHCP
        port["port"]["binding:host_id"] = host
        with self.db.lock:
            return self._port_action("create_port", port, host)

    @oslo_messaging.expected_exceptions(NetworkNotFound)
    @oslo_messaging.expected_exceptions(IpAddressGenerationFailure)
    def update_dhcp_port(self, context, **kwargs):
        host = kwargs.get("host")
        port = copy.deepcopy(kwargs.get("port"))
        port["id"] = kwargs.get("port_id")
        port["port"]["binding:host_id"] = host
        with self.db.lock:
            network_id = port["port"]["network_id"]
            _net, old = self.db.find_port(port["id"])
            if old is None:
                LOG.debug("Host %s tried to update port %s which no longer exists", host, port["id"])
                return None
            if old["device_id"] not in (
                DEVICE_ID_RESERVED_DHCP_PORT,
                dhcp_agent_device_id(network_id, host),
            ):
                return None
            net = self.db.networks.get(network_id)
            if net is None or not self.db.hosted_by(net, host):
                LOG.warning("The DHCP agent on %s does not host the network %s", host, network_id)
                raise NetworkNotFound(net_id=network_id)
            return self._port_action("update_port", port, host)

    def release_dhcp_port(self, context, **kwargs):
        with self.db.lock:
            gone = self.db.delete_ports_by_device_id(kwargs.get("device_id"), kwargs.get("network_id"))
        LOG.debug("release_dhcp_port deleted %s", gone)

    def get_dhcp_port(self, context, **kwargs):
        port_id = kwargs.get("port_id")
        with self.db.lock:
            _net, port = self.db.find_port(port_id)
            if port is None:
                raise PortNotFound(port_id=port_id)
            return copy.deepcopy(port)

    def dhcp_ready_on_ports(self, context, port_ids):
        with self.db.lock:
            self.db.ready_ports.extend(port_ids)

    def get_networks(self, context, filters=None, fields=None):
        with self.db.lock:
            out = []
            for n in self.db.networks.values():
                view = self.db._public(n)
                view["subnets"] = [s["id"] for s in n["subnets"]]
                view.pop("ports", None)
                if match_filters(view, filters):
                    out.append(select_fields(view, fields))
            return out


class MetadataRpcCallback:
    """neutron/api/rpc/handlers/metadata_rpc.py: get_ports (same topic, namespace None)."""

    target = oslo_messaging.Target(version="1.0")

    def __init__(self, db):
        self.db = db

    def get_ports(self, context, filters):
        with self.db.lock:
            return [
                copy.deepcopy(p)
                for n in self.db.networks.values()
                for p in n["ports"]
                if match_filters(p, filters)
            ]


class AgentExtRpcCallback:
    """neutron/db/agents_db.py AgentExtRpcCallback (topics q-reports-plugin and q-plugin)."""

    target = oslo_messaging.Target(version="1.4")

    def __init__(self, db):
        self.db = db

    def report_state(self, context, **kwargs):
        agent_time = datetime.datetime.strptime(kwargs["time"], "%Y-%m-%dT%H:%M:%S.%f")
        if self.db.start_time > agent_time:
            LOG.debug("Message with invalid timestamp received")
            return None
        agent_state = kwargs["agent_state"]["agent_state"]
        key = (agent_state["agent_type"], agent_state["host"])
        now = time.time()
        with self.db.lock:
            rec = self.db.agents.get(key)
            if rec is None:
                status = "new"
            elif now - rec["heartbeat"] > self.db.agent_down_time:
                status = "revived"
            else:
                status = "alive"
            if self.db.report_once:
                reply = self.db.report_once.pop(0)
            else:
                reply = self.db.report_mode
            if reply == "auto":
                reply = status
            if rec is None:
                rec = self.db.agents[key] = {"reports": 0, "started_at": now}
            if agent_state.get("start_flag"):
                rec["started_at"] = now
            rec.update(
                agent_state=copy.deepcopy(agent_state),
                heartbeat=now,
                agent_time=kwargs["time"],
                last_reply=reply,
            )
            rec["reports"] += 1
        return reply

    def has_alive_neutron_server(self, context, **kwargs):
        return True


# --------------------------------------------------------------------------------------------
# Dispatcher that reports every incoming message on stdout (and applies injected faults)
# --------------------------------------------------------------------------------------------


class Output:
    def __init__(self, stream):
        self.stream = stream
        self.lock = threading.Lock()
        self.broken = False

    def emit(self, obj):
        line = json.dumps(obj, default=str, sort_keys=False)
        with self.lock:
            if self.broken:
                return
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                self.broken = True


def _failure_summary(exc):
    cls = type(exc)
    if isinstance(exc, rpc_dispatcher.ExpectedException):
        cls = type(exc.exc_info[1])
        exc = exc.exc_info[1]
    return {"class": cls.__name__, "module": cls.__module__, "message": str(exc)}


class ReportingDispatcher(rpc_dispatcher.RPCDispatcher):
    def __init__(self, endpoints, topic, server, db, out):
        super().__init__(endpoints, None)
        self.topic, self.server, self.db, self.out = topic, server, db, out

    _seq = itertools.count(1)
    _seq_lock = threading.Lock()

    def dispatch(self, incoming):
        msg, ctxt = incoming.message, incoming.ctxt or {}
        with self._seq_lock:
            seq = next(self._seq)
        method = msg.get("method")
        # msg_id is always set (a random one for casts); only calls carry a reply queue
        is_call = getattr(incoming, "reply_q", None) is not None
        self.out.emit(
            {
                "event": "call",
                "seq": seq,
                "topic": self.topic,
                "method": method,
                "args": msg.get("args", {}),
                "version": msg.get("version"),
                "namespace": msg.get("namespace"),
                "rpc": "call" if is_call else "cast",
                "context_is_admin": ctxt.get("is_admin"),
                "context": ctxt,
                "ts": time.time(),
            }
        )
        try:
            inj = self.db.take_injection(method)
            if inj is not None:
                if inj.get("delay"):
                    time.sleep(float(inj["delay"]))
                if inj.get("error"):
                    raise make_exception(inj["error"], inj.get("message"), inj.get("kwargs"))
            result = super().dispatch(incoming)
        except Exception as e:
            if is_call:
                self.out.emit({"event": "reply", "seq": seq, "method": method,
                               "error": _failure_summary(e), "ts": time.time()})
            raise
        if is_call:
            self.out.emit({"event": "reply", "seq": seq, "method": method, "result": result,
                           "ts": time.time()})
        return result


# --------------------------------------------------------------------------------------------
# The peer process
# --------------------------------------------------------------------------------------------


def admin_context():
    """neutron_lib.context.get_admin_context().to_dict() (keys per reference §2.2)."""
    return {
        "user": None,
        "user_id": None,
        "project_id": None,
        "project": None,
        "system_scope": None,
        "domain": None,
        "user_domain": None,
        "project_domain": None,
        "is_admin": True,
        "read_only": False,
        "show_deleted": False,
        "auth_token": None,
        "request_id": "req-%s" % uuid.uuid4(),
        "global_request_id": None,
        "resource_uuid": None,
        "roles": ["admin", "member", "reader"],
        "user_identity": "- - - - -",
        "is_admin_project": True,
        "timestamp": str(utcnow()),
        "project_name": None,
        "user_name": None,
        "has_global_access": True,
        "can_set_project_id": True,
    }


class Stop(BaseException):
    """Raised by the signal handler; a BaseException so that no `except Exception` on the
    way (logging handlers catch Exception!) can swallow it."""


def effective_url(url, vhost):
    if vhost is None:
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, ""))


def precheck_broker(conf, url):
    """Fail fast (oslo/kombu would retry forever) when the broker or vhost is unusable."""
    import amqp

    turl = oslo_messaging.TransportURL.parse(conf, url)
    errors = []
    for h in turl.hosts:
        vhost = turl.virtual_host or "/"
        try:
            conn = amqp.Connection(
                host="%s:%s" % (h.hostname, h.port or 5672),
                userid=h.username or "guest",
                password=h.password or "guest",
                virtual_host=vhost,
                connect_timeout=5,
            )
            conn.connect()
            conn.close()
            return
        except (OSError, socket.error, amqp.exceptions.AMQPError) as e:
            errors.append("%s:%s vhost %r: %s" % (h.hostname, h.port or 5672, vhost, e))
    raise RuntimeError("cannot connect to RabbitMQ: " + "; ".join(errors or ["no host in URL"]))


def rabbitmqctl(*args):
    import shutil
    import subprocess

    exe = next(
        (c for c in (shutil.which("rabbitmqctl"), "/usr/sbin/rabbitmqctl",
                     "/usr/lib/rabbitmq/bin/rabbitmqctl") if c and os.path.exists(c)),
        None,
    )
    if exe is None:
        raise RuntimeError("--create-vhost needs rabbitmqctl, which is not installed")
    # stdin=DEVNULL: the Erlang CLI would otherwise eat our control commands from stdin
    r = subprocess.run([exe, "-q", *args], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=90)
    if r.returncode != 0:
        raise RuntimeError("rabbitmqctl %s: %s" % (" ".join(args), (r.stderr or r.stdout).strip()))
    return r.stdout


class Peer:
    def __init__(self, args, out):
        self.args, self.out = args, out
        self.db = Database(args.agent_down_time)
        self.servers = []
        self.transport = None
        self.client = None
        self.created_vhost = None

    def start(self):
        oslo_messaging.set_transport_defaults(control_exchange=self.args.control_exchange)
        # The global cfg.CONF, not a private ConfigOpts: oslo.messaging 18.3 registers its
        # [oslo_messaging_tracing] options on cfg.CONF only and reads them from the
        # transport's conf on every send/receive (NoSuchOptError otherwise).
        conf = cfg.CONF
        conf([], project="ndrs-neutron-peer", default_config_files=[], default_config_dirs=[])
        url = effective_url(self.args.transport_url, self.args.vhost)
        if self.args.create_vhost:
            if self.args.vhost in (None, "", "/"):
                raise RuntimeError("--create-vhost needs --vhost NAME (not the default vhost)")
            if self.args.vhost not in rabbitmqctl("list_vhosts", "name").split():
                rabbitmqctl("add_vhost", self.args.vhost)
                self.created_vhost = self.args.vhost
            user = oslo_messaging.TransportURL.parse(conf, url).hosts[0].username or "guest"
            rabbitmqctl("set_permissions", "-p", self.args.vhost, user, ".*", ".*", ".*")
        precheck_broker(conf, url)
        self.transport = oslo_messaging.get_rpc_transport(conf, url=url)
        self.client = oslo_messaging.get_rpc_client(
            self.transport, oslo_messaging.Target(topic=TOPIC_DHCP_AGENT, version="1.0")
        )
        state = AgentExtRpcCallback(self.db)
        plugin_endpoints = [DhcpRpcCallback(self.db), MetadataRpcCallback(self.db), state]
        for topic, endpoints in ((TOPIC_PLUGIN, plugin_endpoints), (TOPIC_REPORTS, [state])):
            target = oslo_messaging.Target(topic=topic, server=self.args.host)
            disp = ReportingDispatcher(endpoints, topic, self.args.host, self.db, self.out)
            server = rpc_server.RPCServer(self.transport, target, disp)
            server.start()
            self.servers.append(server)
        return url

    def shutdown(self):
        def stop(server):
            try:
                server.stop()
            except Exception:
                LOG.exception("stopping RPC server")

        # stop() blocks until the listener's poll loop notices; do all of them at once
        stoppers = [threading.Thread(target=stop, args=(s,)) for s in self.servers]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        for s in self.servers:
            try:
                s.wait()
            except Exception:
                LOG.exception("waiting for RPC server")
        self.servers = []
        if self.transport is not None:
            self.transport.cleanup()
            self.transport = None
        if self.created_vhost and not self.args.keep_vhost:
            rabbitmqctl("delete_vhost", self.created_vhost)
            LOG.info("deleted vhost %s", self.created_vhost)
            self.created_vhost = None

    # -- control commands -------------------------------------------------------------------

    def _cast(self, cmd, fanout):
        method = cmd.get("method")
        if not isinstance(method, str) or not method:
            raise ValueError('"method" (string) is required')
        topic = cmd.get("topic", TOPIC_DHCP_AGENT)
        version = cmd.get("version", "1.0")
        if "args" in cmd:
            kwargs = cmd["args"]
            if not isinstance(kwargs, dict):
                raise ValueError('"args" must be an object')
        else:
            payload = copy.deepcopy(cmd.get("payload", {}))
            if not isinstance(payload, dict):
                raise ValueError('"payload" must be an object')
            if not cmd.get("raw") and method in METHOD_PRIORITY:
                payload.setdefault("priority", METHOD_PRIORITY[method])
            kwargs = {"payload": payload}
        if fanout:
            cctxt = self.client.prepare(topic=topic, fanout=True, version=version)
        else:
            host = cmd.get("host")
            if not isinstance(host, str) or not host:
                raise ValueError('"host" (the agent host) is required for a directed cast')
            cctxt = self.client.prepare(topic=topic, server=host, version=version)
        cctxt.cast(cmd.get("context") or admin_context(), method, **kwargs)
        return {"method": method, "args": kwargs}

    def handle(self, cmd):
        name = cmd.get("cmd")
        db = self.db
        if name == "ping":
            return {}
        if name == "set_networks":
            return {"count": db.set_networks(cmd.get("networks"))}
        if name == "upsert_network":
            return {"created": db.upsert_network(cmd.get("network"))}
        if name == "remove_network":
            return {"removed": db.remove_network(cmd.get("network_id"))}
        if name == "get_network":
            with db.lock:
                net = db.networks.get(cmd.get("network_id"))
                return {"network": copy.deepcopy(net)}
        if name == "get_state":
            with db.lock:
                return {
                    "networks": {nid: copy.deepcopy(n) for nid, n in db.networks.items()},
                    "agents": [
                        dict(copy.deepcopy(rec), agent_type=k[0], host=k[1])
                        for k, rec in db.agents.items()
                    ],
                    "ready_ports": list(db.ready_ports),
                    "report_reply": db.report_mode,
                    "report_reply_once": list(db.report_once),
                    "injections": copy.deepcopy(db.injections),
                }
        if name == "set_report_reply":
            if "value" not in cmd or cmd["value"] not in REPORT_REPLIES:
                raise ValueError('"value" must be one of "alive", "new", "revived", "auto", null')
            with db.lock:
                if cmd.get("once"):
                    db.report_once.append(cmd["value"])
                else:
                    db.report_mode = cmd["value"]
                    db.report_once = []
            return {}
        if name == "forget_agents":
            with db.lock:
                db.agents.clear()
            return {}
        if name == "inject":
            method = cmd.get("method")
            if not isinstance(method, str) or not method:
                raise ValueError('"method" (string, or "*") is required')
            if cmd.get("error"):
                make_exception(cmd["error"], cmd.get("message"), cmd.get("kwargs"))  # validate
            elif not cmd.get("delay"):
                raise ValueError('inject needs "error" and/or "delay"')
            inj = {
                "method": method,
                "error": cmd.get("error"),
                "message": cmd.get("message"),
                "kwargs": cmd.get("kwargs"),
                "delay": float(cmd.get("delay") or 0),
                "count": int(cmd.get("count", 1)),
            }
            with db.lock:
                db.injections.append(inj)
            return {}
        if name == "clear_injections":
            with db.lock:
                db.injections = []
            return {}
        if name == "cast":
            return self._cast(cmd, fanout=False)
        if name == "fanout":
            return self._cast(cmd, fanout=True)
        if name == "stop":
            raise Stop()
        raise ValueError("unknown cmd %r" % (name,))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--transport-url",
        default=os.environ.get("NDRS_TRANSPORT_URL", "rabbit://guest:guest@127.0.0.1:5672/"),
        help="oslo.messaging transport URL (default: $NDRS_TRANSPORT_URL or local guest)",
    )
    p.add_argument("--vhost", default=None, help="virtual host; replaces the URL's path")
    p.add_argument("--create-vhost", action="store_true",
                   help="create --vhost with rabbitmqctl (and grant the URL's user) before "
                        "starting; delete it again on exit if it was created here")
    p.add_argument("--keep-vhost", action="store_true",
                   help="with --create-vhost: do not delete the vhost on exit")
    p.add_argument("--control-exchange", default="neutron", help="default: neutron")
    p.add_argument("--host", default="neutron-peer", help="RPC server name (CONF.host)")
    p.add_argument("--agent-down-time", type=float, default=75.0,
                   help="seconds without report after which 'auto' replies 'revived'")
    p.add_argument("--start-timeout", type=float, default=30.0)
    p.add_argument("--debug", action="store_true", help="debug logging (stderr)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.debug:
        for noisy in ("oslo_messaging", "oslo.messaging", "kombu", "stevedore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # py-amqp: "Received method (60, 30) during closing channel 1" on every clean stop
        logging.getLogger("amqp").setLevel(logging.ERROR)

    out = Output(sys.stdout)
    peer = Peer(args, out)

    def on_signal(signum, _frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        LOG.info("signal %d: stopping", signum)
        raise Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    rc = 0
    stop_reply = None
    try:
        started = {}

        def do_start():
            try:
                started["url"] = peer.start()
            except BaseException as e:  # reported by the main thread
                started["error"] = e

        t = threading.Thread(target=do_start, name="peer-start", daemon=True)
        t.start()
        t.join(args.start_timeout)
        if t.is_alive():
            raise RuntimeError("RPC servers did not start within %.0f s" % args.start_timeout)
        if "error" in started:
            raise started["error"]
        LOG.info("serving %s and %s as %s on exchange %s", TOPIC_PLUGIN, TOPIC_REPORTS,
                 args.host, args.control_exchange)
        out.emit(
            {
                "event": "ready",
                "pid": os.getpid(),
                "host": args.host,
                "exchange": args.control_exchange,
                "topics": [TOPIC_PLUGIN, TOPIC_REPORTS],
                "transport_url": started["url"],
            }
        )
        while True:
            line = sys.stdin.readline()
            if not line:
                LOG.info("stdin closed: stopping")
                break
            line = line.strip()
            if not line:
                continue
            try:
                cmd = json.loads(line)
                if not isinstance(cmd, dict):
                    raise ValueError("a command must be a JSON object")
            except ValueError as e:
                out.emit({"ok": False, "error": "bad command line: %s" % e})
                continue
            reply = {"cmd": cmd.get("cmd")}
            if "id" in cmd:
                reply["id"] = cmd["id"]
            try:
                result = peer.handle(cmd)
            except Stop:
                stop_reply = reply
                break
            except Exception as e:
                LOG.debug("command failed", exc_info=True)
                out.emit(dict(reply, ok=False, error="%s: %s" % (type(e).__name__, e)))
                continue
            out.emit(dict(reply, ok=True, **result))
    except Stop:
        pass
    except Exception as e:
        LOG.error("%s", e)
        out.emit({"event": "error", "error": "%s: %s" % (type(e).__name__, e)})
        rc = 2
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        watchdog = threading.Timer(20.0, lambda: (LOG.error("shutdown hung; exiting"), os._exit(3)))
        watchdog.daemon = True
        watchdog.start()
        try:
            peer.shutdown()
        except Exception:
            LOG.exception("shutdown")
            rc = rc or 1
        watchdog.cancel()
    if stop_reply is not None:
        out.emit(dict(stop_reply, ok=True))
    out.emit({"event": "stopped", "rc": rc})
    LOG.info("stopped")
    return rc


if __name__ == "__main__":
    sys.exit(main())
