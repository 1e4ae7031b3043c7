#!/usr/bin/env python3
"""Self-test of tests/peer/neutron_peer.py against the real RabbitMQ, no Rust involved.

It creates a throw-away vhost, starts the peer on it as a subprocess, and plays a minimal
neutron-dhcp-agent with the real oslo.messaging: the agent->server calls (report_state,
get_active_networks_info, get_network_info, create/update/release/get_dhcp_port,
dhcp_ready_on_ports, get_ports), checking the replies and the peer's "call" events, and two
agent RPC servers on topic dhcp_agent (hosts agent-a and agent-b, each with its fanout queue)
that must receive the peer's directed casts and fanouts with the right method, payload and
version. Then it stops the peer three ways (stop command, SIGTERM, EOF) and deletes the vhost.

    PY=$(scripts/py-venv.sh) && "$PY" tests/peer/selftest.py      # exit 0 = all passed

Needs RabbitMQ on 127.0.0.1:5672 with guest/guest (started with `rabbitmq-server -detached`
if nothing listens there) and rabbitmqctl (for the vhost).
"""

import datetime
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings

warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

import oslo_messaging  # noqa: E402
from oslo_config import cfg  # noqa: E402
from oslo_messaging.rpc import dispatcher as rpc_dispatcher  # noqa: E402
from oslo_messaging.rpc import server as rpc_server  # noqa: E402
from oslo_messaging._drivers import amqpdriver, impl_rabbit  # noqa: E402

# Idle listeners notice stop() only after up to ACK_REQUEUE_EVERY_SECONDS_MAX (5 s).
# (impl_rabbit is imported above on purpose: it derives an option bound from the original
# value at import time, and would reject its own default if imported after this.)
amqpdriver.ACK_REQUEUE_EVERY_SECONDS_MAX = 1.0

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "neutron_peer.py")
BROKER = ("127.0.0.1", 5672)
BASE_URL = "rabbit://guest:guest@127.0.0.1:5672/"
HOST_A, HOST_B = "agent-a", "agent-b"
PROJECT = "5f0e1111111111111111111111111111"


class Failure(Exception):
    pass


PASSED = []


def check(cond, what):
    if not cond:
        raise Failure(what)
    PASSED.append(what)


T0 = time.time()


def log(msg):
    sys.stderr.write("selftest: [%5.1fs] %s\n" % (time.time() - T0, msg))
    sys.stderr.flush()


def utcnow():
    """Naive UTC now, like oslo_utils.timeutils.utcnow() (datetime.utcnow is deprecated)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def dhcp_device_id(network_id, host):
    # neutron.common.utils.get_dhcp_agent_device_id, written out independently of the peer
    return "dhcp%s-%s" % (uuid.uuid5(uuid.NAMESPACE_DNS, host.split(".")[0]), network_id)


# ------------------------------------------------------------------------------------------
# broker / vhost
# ------------------------------------------------------------------------------------------


def rabbitmqctl():
    for cand in (shutil.which("rabbitmqctl"), "/usr/sbin/rabbitmqctl", "/usr/lib/rabbitmq/bin/rabbitmqctl"):
        if cand and os.path.exists(cand):
            return cand
    raise Failure("rabbitmqctl not found (install rabbitmq-server)")


def ctl(*args):
    r = subprocess.run([rabbitmqctl(), "-q", *args], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=90)
    if r.returncode != 0:
        raise Failure("rabbitmqctl %s failed: %s" % (" ".join(args), (r.stderr or r.stdout).strip()))
    return r.stdout


def broker_listening():
    try:
        socket.create_connection(BROKER, timeout=2).close()
        return True
    except OSError:
        return False


def ensure_broker():
    if broker_listening():
        return
    server = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
    if not os.path.exists(server):
        raise Failure("nothing listens on %s:%d and rabbitmq-server is not installed" % BROKER)
    log("RabbitMQ is down; starting it (rabbitmq-server -detached), it stays running")
    subprocess.run([server, "-detached"], stdin=subprocess.DEVNULL, check=False, timeout=60)
    ctl("await_startup")
    deadline = time.time() + 30
    while not broker_listening():
        if time.time() > deadline:
            raise Failure("RabbitMQ did not start listening on %s:%d" % BROKER)
        time.sleep(0.5)


# ------------------------------------------------------------------------------------------
# the peer subprocess
# ------------------------------------------------------------------------------------------


class PeerProc:
    def __init__(self, vhost, server_host="selftest-server", extra=()):
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, PEER, "--transport-url", BASE_URL, "--vhost", vhost, "--host", server_host,
             *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            bufsize=1,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        )
        self.cond = threading.Condition()
        self.events = []
        self.replies = []
        self.bad_lines = []
        self.eof = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            with self.cond:
                if not isinstance(obj, dict):
                    self.bad_lines.append(line)
                elif "event" in obj:
                    self.events.append(obj)
                else:
                    self.replies.append(obj)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.events)

    def wait_event(self, pred, since=0, timeout=10.0, what="event"):
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for ev in self.events[since:]:
                    if pred(ev):
                        return ev
                left = deadline - time.time()
                if left <= 0 or self.eof:
                    raise Failure("peer did not report %s within %.0fs" % (what, timeout))
                self.cond.wait(left)

    def send(self, obj):
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def cmd(self, obj, timeout=10.0, expect_ok=True):
        with self.cond:
            n = len(self.replies)
        self.send(obj)
        deadline = time.time() + timeout
        with self.cond:
            while len(self.replies) <= n:
                left = deadline - time.time()
                if left <= 0 or self.eof:
                    raise Failure("no reply from peer to %s" % obj.get("cmd"))
                self.cond.wait(left)
            reply = self.replies[n]
        if expect_ok and not reply.get("ok"):
            raise Failure("peer refused %s: %s" % (obj.get("cmd"), reply.get("error")))
        return reply

    def wait_exit(self, timeout=20.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failure("peer did not exit within %.0fs" % timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read()


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------

NET1, NET2, NET3 = (str(uuid.uuid4()) for _ in range(3))
S1, S2, S3, S30 = ("11111111-0000-0000-0000-00000000000%d" % i for i in (1, 2, 3, 4))
P_VM, P_ROUTER, P_RES, P_RES3 = (str(uuid.uuid4()) for _ in range(4))


def fixtures():
    net1 = {
        "id": NET1,
        "name": "net1",
        "project_id": PROJECT,
        "admin_state_up": True,
        "mtu": 1450,
        "subnets": [
            {"id": S1, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1", "enable_dhcp": True,
             "dns_nameservers": ["8.8.8.8"],
             "allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.254"}]},
            {"id": S2, "cidr": "10.0.1.0/24", "gateway_ip": "10.0.1.1", "enable_dhcp": False},
            {"id": S3, "cidr": "fd00:1::/64", "gateway_ip": "fd00:1::1", "ip_version": 6,
             "enable_dhcp": True, "ipv6_address_mode": "dhcpv6-stateful",
             "ipv6_ra_mode": "dhcpv6-stateful"},
        ],
        "ports": [
            {"id": P_VM, "mac_address": "fa:16:3e:00:00:01", "device_owner": "compute:nova",
             "device_id": "vm-1", "fixed_ips": [{"subnet_id": S1, "ip_address": "10.0.0.2"}],
             "binding:host_id": "compute1"},
            {"id": P_ROUTER, "mac_address": "fa:16:3e:00:00:02",
             "device_owner": "network:router_interface", "device_id": "router-1",
             "fixed_ips": [{"subnet_id": S1, "ip_address": "10.0.0.1"}]},
            {"id": P_RES, "mac_address": "fa:16:3e:00:00:03", "device_owner": "network:dhcp",
             "device_id": "reserved_dhcp_port",
             "fixed_ips": [{"subnet_id": S1, "ip_address": "10.0.0.10"}]},
        ],
    }
    net2 = {"id": NET2, "name": "down", "admin_state_up": False,
            "subnets": [{"id": str(uuid.uuid4()), "cidr": "10.2.0.0/24", "gateway_ip": "10.2.0.1"}]}
    net3 = {
        "id": NET3, "name": "other-agent", "_hosts": [HOST_B],
        "subnets": [{"id": S30, "cidr": "192.168.9.0/30", "gateway_ip": "192.168.9.1"}],
        "ports": [{"id": P_RES3, "device_owner": "network:dhcp", "device_id": "reserved_dhcp_port"}],
    }
    return [net1, net2, net3]


# ------------------------------------------------------------------------------------------
# the minimal "agent"
# ------------------------------------------------------------------------------------------


def admin_ctx():
    """neutron_lib.context.get_admin_context_without_session().to_dict() (abridged)."""
    return {
        "user_id": None, "project_id": None, "is_admin": True, "read_only": False,
        "show_deleted": False, "auth_token": None, "request_id": "req-%s" % uuid.uuid4(),
        "global_request_id": None, "roles": ["admin", "member", "reader"],
        "timestamp": str(utcnow()), "project_name": None, "user_name": None,
        "has_global_access": True, "can_set_project_id": True,
    }


class CastRecorder(rpc_dispatcher.RPCDispatcher):
    """Dispatcher of the fake agents' dhcp_agent servers: records what arrives, by host."""

    def __init__(self, endpoints, host, sink, cond):
        super().__init__(endpoints, None)
        self.host, self.sink, self.cond = host, sink, cond

    def dispatch(self, incoming):
        with self.cond:
            self.sink.append({
                "host": self.host,
                "method": incoming.message.get("method"),
                "version": incoming.message.get("version"),
                "args": incoming.message.get("args"),
                "is_admin": (incoming.ctxt or {}).get("is_admin"),
                "cast": getattr(incoming, "reply_q", None) is None,  # msg_id is set even on casts
            })
            self.cond.notify_all()
        return super().dispatch(incoming)


class DhcpAgentEndpoint:
    """neutron.agent.dhcp.agent.DhcpAgent's RPC surface: target 1.0, (context, payload)."""

    target = oslo_messaging.Target(version="1.0")

    def _noop(self, context, payload):
        return None

    network_create_end = network_update_end = network_delete_end = _noop
    subnet_create_end = subnet_update_end = subnet_delete_end = _noop
    port_create_end = port_update_end = port_delete_end = agent_updated = _noop


def remote_class(exc):
    """Class name of a failure as a neutron agent sees it (RemoteError.exc_type or type)."""
    if isinstance(exc, oslo_messaging.RemoteError):
        return exc.exc_type
    return type(exc).__name__


def expect_remote(fn, cls_name, what):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        check(remote_class(e) == cls_name, "%s raises %s (got %s: %s)" % (what, cls_name, remote_class(e), e))
        return e
    raise Failure("%s did not raise %s" % (what, cls_name))


def run(vhost):
    url = BASE_URL.rstrip("/") + "/" + vhost
    oslo_messaging.set_transport_defaults(control_exchange="neutron")
    cfg.CONF([], project="ndrs-peer-selftest", default_config_files=[], default_config_dirs=[])
    # Neutron agents allow remote exceptions from neutron_lib.exceptions only.
    transport = oslo_messaging.get_rpc_transport(
        cfg.CONF, url=url, allowed_remote_exmods=["neutron_lib.exceptions"]
    )
    agent_servers = []
    peer = None
    try:
        # -- the fake agents' RPC servers first, so the queues exist before any cast ---------
        received, rcond = [], threading.Condition()
        for host in (HOST_A, HOST_B):
            target = oslo_messaging.Target(topic="dhcp_agent", server=host)
            disp = CastRecorder([DhcpAgentEndpoint()], host, received, rcond)
            srv = rpc_server.RPCServer(transport, target, disp)
            srv.start()
            agent_servers.append(srv)

        t0 = time.time()
        peer = PeerProc(vhost)
        ready = peer.wait_event(lambda e: e.get("event") in ("ready", "error"), timeout=30, what="ready")
        check(ready["event"] == "ready", "peer ready (%s)" % ready.get("error", ""))
        log("peer ready after %.2fs" % (time.time() - t0))

        check(peer.cmd({"cmd": "set_networks", "networks": fixtures()})["count"] == 3, "set_networks")

        plugin = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic="q-plugin", version="1.0"), timeout=10)
        reports = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic="q-reports-plugin", version="1.4"), timeout=10)

        def call(client, method, version=None, **kwargs):
            """A call as DhcpPluginApi makes it, plus the check of the peer's call event."""
            mark = peer.mark()
            cctxt = client.prepare(version=version) if version else client
            try:
                return cctxt.call(admin_ctx(), method, **kwargs)
            finally:
                ev = peer.wait_event(
                    lambda e: e.get("event") == "call" and e.get("method") == method,
                    since=mark, what="call event for %s" % method)
                topic = "q-reports-plugin" if client is reports else "q-plugin"
                check(ev["topic"] == topic and ev["rpc"] == "call", "%s event topic/rpc" % method)
                check(ev["args"] == json.loads(json.dumps(kwargs)), "%s event args" % method)
                check(ev["context_is_admin"] is True, "%s event context_is_admin" % method)
                check(ev["version"] == (version or client.target.version), "%s event version" % method)
                check(isinstance(ev["ts"], float), "%s event ts" % method)

        log("calls: report_state")
        # -- report_state ---------------------------------------------------------------
        def state(start=False):
            s = {"binary": "neutron-dhcp-agent", "host": HOST_A, "availability_zone": "nova",
                 "topic": "dhcp_agent", "agent_type": "DHCP agent", "uuid": str(uuid.uuid4()),
                 "configurations": {"dhcp_driver": "neutron.agent.linux.dhcp.Dnsmasq",
                                    "dhcp_lease_duration": 86400, "log_agent_heartbeats": False,
                                    "networks": 0, "subnets": 0, "ports": 0}}
            if start:
                s["start_flag"] = True
            return s

        def report(start=False):
            now = utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")
            return call(reports, "report_state", agent_state={"agent_state": state(start)}, time=now)

        mark = peer.mark()
        check(report(start=True) == "new", "first report_state -> new")
        ev = peer.wait_event(lambda e: e.get("method") == "report_state", since=mark)
        check(ev["args"]["agent_state"]["agent_state"]["start_flag"] is True, "report_state event has full agent_state")
        check(report() == "alive", "second report_state -> alive")
        peer.cmd({"cmd": "set_report_reply", "value": "revived", "once": True})
        check(report() == "revived", "set_report_reply once -> revived")
        check(report() == "alive", "once-reply used up -> alive")
        peer.cmd({"cmd": "set_report_reply", "value": None})
        check(report() is None, "set_report_reply null -> None (stale report)")
        peer.cmd({"cmd": "set_report_reply", "value": "auto"})
        check(call(plugin, "report_state", version="1.4",
                   agent_state={"agent_state": state()},
                   time=utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")) == "alive",
              "report_state also served on q-plugin")

        log("calls: network info")
        # -- get_active_networks_info / get_network_info --------------------------------
        nets = call(plugin, "get_active_networks_info", version="1.1", host=HOST_A, enable_dhcp_filter=False)
        check([n["id"] for n in nets] == [NET1], "active networks: only the admin-up network hosted by agent-a")
        n1 = nets[0]
        check([s["id"] for s in n1["subnets"]] == [S1, S2, S3], "enable_dhcp_filter=false: all subnets, sorted by id")
        check(n1["non_local_subnets"] == [] and len(n1["ports"]) == 3 and n1["mtu"] == 1450, "network dict shape")
        check("_hosts" not in n1, "private fixture keys are not sent")
        s3 = next(s for s in n1["subnets"] if s["id"] == S3)
        check(s3["allocation_pools"] == [{"start": "fd00:1::2", "end": "fd00:1::ffff:ffff:ffff:ffff"}],
              "default allocation pool filled in (gateway excluded)")
        nets = call(plugin, "get_active_networks_info", version="1.1", host=HOST_A)
        check([s["id"] for s in nets[0]["subnets"]] == [S1, S3], "default filter: DHCP-enabled subnets only")
        nets_b = call(plugin, "get_active_networks_info", version="1.1", host=HOST_B, enable_dhcp_filter=False)
        check(sorted(n["id"] for n in nets_b) == sorted([NET1, NET3]), "agent-b also gets its own network")

        info = call(plugin, "get_network_info", network_id=NET1, host=HOST_A)
        check(info["id"] == NET1 and [s["id"] for s in info["subnets"]] == [S1, S3], "get_network_info")
        check(call(plugin, "get_network_info", network_id=str(uuid.uuid4()), host=HOST_A) is None,
              "get_network_info of an unknown network -> None")

        log("calls: DHCP port lifecycle")
        # -- DHCP port lifecycle --------------------------------------------------------
        dev = dhcp_device_id(NET1, HOST_A)
        port = call(plugin, "create_dhcp_port", version="1.1", host=HOST_A, port={"port": {
            "name": "", "admin_state_up": True, "device_id": dev, "network_id": NET1,
            "project_id": PROJECT, "fixed_ips": [{"subnet_id": S1}]}})
        check(port["fixed_ips"] == [{"subnet_id": S1, "ip_address": "10.0.0.3"}],
              "create_dhcp_port: lowest free IP (10.0.0.3) %s" % port["fixed_ips"])
        check(port["device_owner"] == "network:dhcp" and port["binding:host_id"] == HOST_A
              and port["device_id"] == dev and port["network_id"] == NET1, "create_dhcp_port port fields")
        check(port["mac_address"].startswith("fa:16:3e:") and len(port["mac_address"]) == 17
              and str(uuid.UUID(port["id"])) == port["id"], "create_dhcp_port mac/id")
        pid = port["id"]

        upd = call(plugin, "update_dhcp_port", version="1.1", host=HOST_A, port_id=pid, port={"port": {
            "network_id": NET1,
            "fixed_ips": [{"subnet_id": S1, "ip_address": "10.0.0.3"}, {"subnet_id": S3}]}})
        check(upd["fixed_ips"] == [{"subnet_id": S1, "ip_address": "10.0.0.3"},
                                   {"subnet_id": S3, "ip_address": "fd00:1::2"}],
              "update_dhcp_port keeps 10.0.0.3, adds fd00:1::2 (%s)" % upd["fixed_ips"])
        check(upd["revision_number"] == 2, "update bumps revision_number")
        check(call(plugin, "update_dhcp_port", version="1.1", host=HOST_A, port_id=P_VM,
                   port={"port": {"network_id": NET1, "device_id": dev}}) is None,
              "update_dhcp_port of a port owned by someone else -> None")
        check(call(plugin, "update_dhcp_port", version="1.1", host=HOST_A, port_id=str(uuid.uuid4()),
                   port={"port": {"network_id": NET1, "device_id": dev}}) is None,
              "update_dhcp_port of a vanished port -> None")
        adopted = call(plugin, "update_dhcp_port", version="1.1", host=HOST_A, port_id=P_RES,
                       port={"port": {"network_id": NET1, "device_id": dev}})
        check(adopted["device_id"] == dev and adopted["fixed_ips"][0]["ip_address"] == "10.0.0.10",
              "reserved_dhcp_port adopted, IP kept")

        mark = peer.mark()
        e = expect_remote(lambda: call(plugin, "update_dhcp_port", version="1.1", host=HOST_A, port_id=P_RES3,
                                       port={"port": {"network_id": NET3, "device_id": dhcp_device_id(NET3, HOST_A)}}),
                          "NetworkNotFound", "update_dhcp_port on a network agent-a does not host")
        check(isinstance(e, oslo_messaging.RemoteError) and NET3 in e.value,
              "NetworkNotFound message names the network")
        rep = peer.wait_event(lambda ev: ev.get("event") == "reply" and ev.get("method") == "update_dhcp_port",
                              since=mark)
        check(rep["error"] == {"class": "NetworkNotFound", "module": "neutron_lib.exceptions",
                               "message": "Network %s could not be found." % NET3},
              "failure class/module as neutron-server sends it")

        check(call(plugin, "get_dhcp_port", version="1.8", port_id=pid) == upd, "get_dhcp_port")
        expect_remote(lambda: call(plugin, "get_dhcp_port", version="1.8", port_id=str(uuid.uuid4())),
                      "PortNotFound", "get_dhcp_port of an unknown port")

        small = {"port": {"name": "", "admin_state_up": True, "device_id": dhcp_device_id(NET3, HOST_B),
                          "network_id": NET3, "project_id": PROJECT, "fixed_ips": [{"subnet_id": S30}]}}
        p3 = call(plugin, "create_dhcp_port", version="1.1", host=HOST_B, port=small)
        check(p3["fixed_ips"][0]["ip_address"] == "192.168.9.2", "only address of a /30 allocated")
        expect_remote(lambda: call(plugin, "create_dhcp_port", version="1.1", host=HOST_B, port=small),
                      "IpAddressGenerationFailure", "create_dhcp_port on a full subnet")
        gone = {"port": dict(small["port"], network_id=str(uuid.uuid4()))}
        check(call(plugin, "create_dhcp_port", version="1.1", host=HOST_A, port=gone) is None,
              "create_dhcp_port on an unknown network -> None")

        check(call(plugin, "dhcp_ready_on_ports", version="1.5", port_ids=[P_VM, pid]) is None,
              "dhcp_ready_on_ports -> None")
        st = peer.cmd({"cmd": "get_state"})
        check(st["ready_ports"] == [P_VM, pid], "peer recorded the ready ports")
        check(len(st["agents"]) == 1 and st["agents"][0]["host"] == HOST_A
              and st["agents"][0]["reports"] == 6, "peer recorded the agent's reports")

        dports = call(plugin, "get_ports", filters={"network_id": [NET1], "device_owner": ["network:dhcp"]})
        check(sorted(p["id"] for p in dports) == sorted([pid, P_RES]), "get_ports with filters")

        check(call(plugin, "release_dhcp_port", network_id=NET1, device_id=dev, host=HOST_A) is None,
              "release_dhcp_port -> None")
        info = call(plugin, "get_network_info", network_id=NET1, host=HOST_A)
        check(sorted(p["id"] for p in info["ports"]) == sorted([P_VM, P_ROUTER]),
              "release_dhcp_port deleted every port with that device_id")

        log("calls: faults")
        # -- fault injection, unknown method ------------------------------------------
        peer.cmd({"cmd": "inject", "method": "get_network_info", "error": "RuntimeError", "message": "boom"})
        e = expect_remote(lambda: call(plugin, "get_network_info", network_id=NET1, host=HOST_A),
                          "RuntimeError", "injected error")
        check("boom" in str(e), "injected message")
        check(call(plugin, "get_network_info", network_id=NET1, host=HOST_A)["id"] == NET1,
              "injection used up after count=1")
        expect_remote(lambda: call(plugin, "no_such_method", host=HOST_A), "NoSuchMethod", "unknown method")
        expect_remote(lambda: call(plugin, "get_network_info", version="1.11", network_id=NET1),
                      "UnsupportedVersion", "version newer than the endpoint's 1.10")

        log("casts")
        # -- server -> agent casts ----------------------------------------------------
        def wait_received(n, timeout=10.0):
            deadline = time.time() + timeout
            with rcond:
                while len(received) < n:
                    left = deadline - time.time()
                    if left <= 0:
                        raise Failure("agents received %d of %d casts: %s" % (len(received), n, received))
                    rcond.wait(left)

        vm_port = {"id": P_VM, "network_id": NET1, "device_owner": "compute:nova",
                   "mac_address": "fa:16:3e:00:00:01",
                   "fixed_ips": [{"subnet_id": S1, "ip_address": "10.0.0.2"}]}
        r = peer.cmd({"cmd": "cast", "method": "port_create_end", "payload": {"port": vm_port}, "host": HOST_A})
        check(r["args"] == {"payload": {"port": vm_port, "priority": 6}}, "cast reply echoes the args sent")
        peer.cmd({"cmd": "cast", "method": "port_update_end", "payload": {"port": vm_port, "priority": 5},
                  "host": HOST_A})
        peer.cmd({"cmd": "cast", "method": "agent_updated", "payload": {"admin_state_up": False}, "host": HOST_B})
        peer.cmd({"cmd": "fanout", "method": "network_delete_end", "payload": {"network_id": NET2}})
        wait_received(5)
        time.sleep(0.5)  # anything misrouted would show up now
        with rcond:
            got = sorted((r["host"], r["method"], json.dumps(r["args"], sort_keys=True), r["version"],
                          r["is_admin"], r["cast"]) for r in received)
        want = sorted([
            (HOST_A, "port_create_end", json.dumps({"payload": {"port": vm_port, "priority": 6}}, sort_keys=True)),
            (HOST_A, "port_update_end", json.dumps({"payload": {"port": vm_port, "priority": 5}}, sort_keys=True)),
            (HOST_B, "agent_updated", json.dumps({"payload": {"admin_state_up": False}}, sort_keys=True)),
            (HOST_A, "network_delete_end", json.dumps({"payload": {"network_id": NET2, "priority": 2}}, sort_keys=True)),
            (HOST_B, "network_delete_end", json.dumps({"payload": {"network_id": NET2, "priority": 2}}, sort_keys=True)),
        ])
        check([g[:3] for g in got] == want,
              "directed casts reach only their host, fanout reaches both, payloads/priorities exact:\n%s" % got)
        check(all(g[3] == "1.0" and g[4] is True and g[5] for g in got), "casts: version 1.0, admin context, no reply: %s" % [g[3:] for g in got])

        r = peer.cmd({"cmd": "cast", "method": "port_create_end", "payload": {}}, expect_ok=False)
        check(not r["ok"] and "host" in r["error"], "directed cast without host refused")
        r = peer.cmd({"cmd": "nonsense"}, expect_ok=False)
        check(not r["ok"] and "unknown cmd" in r["error"], "unknown command refused")
        r = peer.cmd({"cmd": "ping", "id": 42})
        check(r == {"cmd": "ping", "id": 42, "ok": True}, "ping echoes id")

        log("stop command")
        # -- shutdown: stop command ---------------------------------------------------
        mark = peer.mark()
        r = peer.cmd({"cmd": "stop"})
        check(r["ok"], "stop acknowledged")
        check(peer.wait_exit() == 0, "peer exits 0 after stop")
        peer.wait_event(lambda e: e.get("event") == "stopped", since=mark, what="stopped")
        check(not peer.bad_lines, "every stdout line was JSON: %r" % peer.bad_lines[:3])
        peer = None

        log("SIGTERM / EOF")
        # -- shutdown: SIGTERM, EOF ---------------------------------------------------
        # The EOF run also covers --create-vhost: the peer makes its own vhost and drops it.
        own_vhost = vhost + "-own"
        for how in ("SIGTERM", "EOF"):
            if how == "EOF":
                peer = PeerProc(own_vhost, extra=("--create-vhost",))
            else:
                peer = PeerProc(vhost)
            peer.wait_event(lambda e: e.get("event") == "ready", timeout=30, what="ready")
            if how == "SIGTERM":
                peer.proc.send_signal(signal.SIGTERM)
            else:
                peer.proc.stdin.close()
            check(peer.wait_exit() == 0, "peer exits 0 on %s" % how)
            log("peer exited on %s" % how)
            ev = peer.wait_event(lambda e: e.get("event") == "stopped", what="stopped")
            check(ev["rc"] == 0, "stopped event rc 0 on %s" % how)
            peer = None
        check(own_vhost not in ctl("list_vhosts", "name").split(), "--create-vhost: vhost deleted on exit")
    except Failure:
        if peer is not None:
            sys.stderr.write("---- peer stderr ----\n%s---------------------\n" % peer.stderr_text())
        raise
    finally:
        if peer is not None:
            peer.kill()
        log("stopping agent servers")
        stoppers = [threading.Thread(target=srv.stop) for srv in agent_servers]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        for srv in agent_servers:
            srv.wait()
        log("cleanup transport")
        transport.cleanup()


def main():
    start = time.time()
    # oslo.messaging's client warns "Failed to rebuild remote exception ... No module named
    # 'neutron_lib'" for every neutron_lib failure (expected: it then raises RemoteError, as a
    # real agent effectively gets too); py-amqp warns about basic.cancel-ok during close.
    logging.basicConfig(stream=sys.stderr, level=logging.ERROR,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    vhost = "ndrs-peer-selftest-%s" % uuid.uuid4().hex[:12]
    rc = 1
    created = False
    try:
        ensure_broker()
        log("creating vhost %s" % vhost)
        ctl("add_vhost", vhost)
        created = True
        ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        run(vhost)
        log("deleting vhost")
        rc = 0
    except Failure as e:
        log("FAILED: %s" % e)
    except Exception as e:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        log("ERROR: %s: %s" % (type(e).__name__, e))
    finally:
        if created:
            try:
                ctl("delete_vhost", vhost)
                left = [v for v in ctl("list_vhosts", "name").split() if v.startswith(vhost)]
                for v in left:  # e.g. the --create-vhost one after a failure
                    log("deleting leftover vhost %s" % v)
                    ctl("delete_vhost", v)
                if vhost in left:
                    rc = 1
            except Failure as e:
                log("cleanup: %s" % e)
                rc = 1
    log("%d checks passed, %s in %.1fs" % (len(PASSED), "OK" if rc == 0 else "FAILED", time.time() - start))
    print("%d passed, %d failed" % (len(PASSED), 0 if rc == 0 else 1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
