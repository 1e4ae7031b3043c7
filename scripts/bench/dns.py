#!/usr/bin/env python3
"""DNS benchmark: our agent's DNS service beside dnsmasq run with Neutron's command line, in
one run, on the same network layout (see scripts/bench-dns.sh).

One network (a DHCP port and PORTS VM ports, half with a dns_assignment name) on a Linux
bridge; a client namespace runs dnsperf against the DHCP port's address; an upstream dnsmasq
on the tenant network answers `*.upstream.test` for the forwarded queries. Each server is
measured in turn:

- local names: dnsperf over the network's names (FQDN, short, PTR) for SECS seconds;
- forwarded names: dnsperf over distinct names under upstream.test (so that dnsmasq's cache
  does not answer them) for SECS seconds.

For each: queries/s as dnsperf saw them, and the server's CPU time (utime + stime from
/proc/<pid>/stat) per answered query, whence queries per CPU-second. dnsperf and the servers
share this machine's cores, so queries/s depends on the machine's load; CPU per query is the
comparison that holds. Everything made is removed on exit.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REL = os.path.join(ROOT, "target", "release")
AGENT = os.path.join(REL, "neutron-dhcp-agent")
RENDER = os.path.join(REL, "render-dnsmasq")
FOOTPRINT = os.path.join(REL, "dns-footprint")
HZ = os.sysconf("SC_CLK_TCK")
DOMAIN = "ndrs.bench"
PREFIX = "10.88.0"
DHCP_IP = f"{PREFIX}.2"
CLIENT_IP = f"{PREFIX}.250"
UPSTREAM_IP = f"{PREFIX}.251"

_cleanup = []


def at_exit(fn):
    _cleanup.append(fn)


def cleanup():
    while _cleanup:
        fn = _cleanup.pop()
        try:
            fn()
        except Exception as e:  # cleanup must go on
            print(f"cleanup: {e}", file=sys.stderr)


def sh(*args, check=True, timeout=120):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr}{r.stdout}")
    return r.stdout


def cpu_us(pid, part=None):
    """utime + stime of a process in microseconds (`part`: 11 user only, 12 system only)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    ticks = int(rest[part]) if part else int(rest[11]) + int(rest[12])
    return ticks * 1_000_000 // HZ


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def kill(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(400):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


def network(ports):
    net_id = str(uuid.uuid4())
    subnet = str(uuid.uuid4())
    mac = lambda i: "fa:16:3e:88:%02x:%02x" % (i >> 8, i & 0xFF)

    def port(i, owner, ip, name=None):
        p = {"id": str(uuid.uuid4()), "mac_address": mac(i), "device_owner": owner,
             "device_id": str(uuid.uuid4()), "admin_state_up": True,
             "fixed_ips": [{"subnet_id": subnet, "ip_address": ip}], "extra_dhcp_opts": []}
        if name:
            p["dns_assignment"] = [{"ip_address": ip, "hostname": name,
                                    "fqdn": f"{name}.{DOMAIN}."}]
        return p

    ps = [port(1, "network:dhcp", DHCP_IP)]
    names = []
    for i in range(ports):
        ip = f"{PREFIX}.{10 + i}"
        name = f"vm-{i}" if i % 2 == 0 else None
        ps.append(port(10 + i, "compute:nova", ip, name))
        host = name or f"host-{ip.replace('.', '-')}"
        names += [f"{host}.{DOMAIN} A", f"{host} A",
                  ".".join(reversed(ip.split("."))) + ".in-addr.arpa PTR"]
    net = {"id": net_id, "admin_state_up": True, "mtu": 1450,
           "subnets": [{"id": subnet, "ip_version": 4, "cidr": f"{PREFIX}.0/24",
                        "gateway_ip": f"{PREFIX}.1", "enable_dhcp": True,
                        "dns_nameservers": [], "host_routes": []}],
           "ports": ps}
    return net, names


def dnsperf(ns, queries_file, secs):
    out = sh("ip", "netns", "exec", ns, "dnsperf", "-s", DHCP_IP, "-d", queries_file,
             "-l", str(secs), "-c", "4", "-q", "200", "-t", "2", timeout=secs + 30)
    num = lambda key: float(re.search(key + r":\s+([0-9.]+)", out).group(1))
    return {"completed": int(num("Queries completed")), "qps": num("Queries per second"),
            "lost": int(num("Queries lost")), "latency_ms": num("Average Latency \\(s\\)") * 1000,
            "noerror": int(re.search(r"NOERROR (\d+)", out).group(1)) if "NOERROR" in out else 0}


def measure(label, pid, ns, files, secs):
    out = {}
    for kind, path in files.items():
        c0, s0 = cpu_us(pid), cpu_us(pid, 12)
        r = dnsperf(ns, path, secs)
        r["cpu_us_per_query"] = (cpu_us(pid) - c0) / max(r["completed"], 1)
        r["sys_us_per_query"] = (cpu_us(pid, 12) - s0) / max(r["completed"], 1)
        r["queries_per_cpu_s"] = 1e6 / r["cpu_us_per_query"] if r["cpu_us_per_query"] else 0
        out[kind] = r
        print(f"  {label:8} {kind:9} {r['qps']:10.0f} q/s  {r['cpu_us_per_query']:7.2f} us CPU/query"
              f" ({r['sys_us_per_query']:.2f} in the kernel)"
              f"  {r['queries_per_cpu_s']:9.0f} q/CPU-s  lost {r['lost']}  NOERROR {r['noerror']}"
              f"  avg latency {r['latency_ms']:.2f} ms", flush=True)
    return out


def wait_answer(ns, name):
    for _ in range(100):
        out = subprocess.run(["ip", "netns", "exec", ns, "dig", f"@{DHCP_IP}", name, "+short",
                              "+tries=1", "+time=1"], capture_output=True, text=True).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{DHCP_IP} does not answer {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=200)
    ap.add_argument("--secs", type=int, default=6)
    ap.add_argument("--json", default=os.path.join(ROOT, "target", "bench", "dns.json"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ndrs-bench-dns-")
    os.chmod(work, 0o755)
    at_exit(lambda: shutil.rmtree(work, ignore_errors=True))
    net, names = network(args.ports)
    nets_file = os.path.join(work, "networks.json")
    with open(nets_file, "w") as f:
        json.dump([net], f)
    local_q = os.path.join(work, "local.txt")
    with open(local_q, "w") as f:
        f.write("\n".join(names) + "\n")
    fwd_q = os.path.join(work, "forward.txt")
    with open(fwd_q, "w") as f:
        f.write("".join(f"q{i}.upstream.test A\n" for i in range(400_000)))
    files = {"local": local_q, "forwarded": fwd_q}

    tag = uuid.uuid4().hex[:6]
    bridge = f"brq{net['id'][:11]}"
    sh("ip", "link", "add", bridge, "type", "bridge")
    at_exit(lambda: sh("ip", "link", "del", bridge, check=False))
    sh("ip", "link", "set", bridge, "up")

    def side_ns(name, addr):
        sh("ip", "netns", "add", name)
        at_exit(lambda: sh("ip", "netns", "del", name, check=False))
        sh("ip", "link", "add", f"{name}r", "type", "veth", "peer", "name", f"{name}c",
           "netns", name)
        at_exit(lambda: sh("ip", "link", "del", f"{name}r", check=False))
        sh("ip", "link", "set", f"{name}r", "master", bridge, "up")
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", name, "addr", "add", f"{addr}/24", "dev", f"{name}c")
        sh("ip", "-n", name, "link", "set", f"{name}c", "up")

    client = f"ndbc{tag}"
    side_ns(client, CLIENT_IP)
    upstream = f"ndbu{tag}"
    side_ns(upstream, UPSTREAM_IP)
    up = subprocess.Popen(["ip", "netns", "exec", upstream, "dnsmasq", "--keep-in-foreground",
                           "--no-resolv", "--no-hosts", "--bind-interfaces", "--conf-file=/dev/null",
                           f"--listen-address={UPSTREAM_IP}", "--address=/upstream.test/192.0.2.7",
                           "--pid-file=", "--user=root", "--dns-forward-max=1000"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    at_exit(lambda: (up.terminate(), up.wait()))

    ini = os.path.join(work, "dhcp_agent.ini")
    with open(ini, "w") as f:
        f.write(f"[DEFAULT]\ndns_domain = {DOMAIN}\ndnsmasq_dns_servers = {UPSTREAM_IP}\n"
                f"interface_driver = veth\nstate_path = {work}/state\nhost = bench\n"
                "\n[veth]\nbridge = brq{network_id}\n")
    results = {"ports": args.ports, "secs": args.secs, "nproc": os.cpu_count()}

    # dnsmasq with Neutron's command line and files, in a namespace shaped like the agent's.
    conf = os.path.join(work, "dnsmasq", net["id"])
    os.makedirs(os.path.dirname(conf))
    os.chmod(os.path.dirname(conf), 0o755)
    info = json.loads(sh(RENDER, "--networks-file", nets_file, "--config-file", ini,
                         "--out", conf, "--host", "bench"))
    dns_ns, tap, ifname = f"ndbd{tag}", f"ndbt{tag}", info["interface"]
    sh("ip", "netns", "add", dns_ns)
    at_exit(lambda: sh("ip", "netns", "del", dns_ns, check=False))
    sh("ip", "link", "add", tap, "type", "veth", "peer", "name", ifname, "netns", dns_ns)
    at_exit(lambda: sh("ip", "link", "del", tap, check=False))
    sh("ip", "link", "set", tap, "master", bridge, "up")
    sh("ip", "-n", dns_ns, "link", "set", "lo", "up")
    sh("ip", "-n", dns_ns, "link", "set", ifname, "address", info["dhcp_port"]["mac"])
    for a in info["dhcp_port"]["addresses"]:
        sh("ip", "-n", dns_ns, "addr", "add", a, "dev", ifname)
    sh("ip", "-n", dns_ns, "link", "set", ifname, "up")
    argv = list(info["argv"])
    argv[0] = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    sh("ip", "netns", "exec", dns_ns, *argv)
    pid = None
    for _ in range(500):
        try:
            pid = int(open(info["pid_file"]).read().strip())
            break
        except (OSError, ValueError):
            time.sleep(0.01)
    at_exit(lambda: kill(pid))
    wait_answer(client, f"vm-0.{DOMAIN}")
    print(f"dnsmasq {sh('dnsmasq', '--version').split(chr(10))[0]}; {args.ports} ports; "
          f"dnsperf {args.secs} s per run", flush=True)
    results["dnsmasq"] = measure("dnsmasq", pid, client, files, args.secs)
    kill(pid)
    sh("ip", "netns", "del", dns_ns, check=False)
    sh("ip", "link", "del", tap, check=False)

    # Our agent on the same bridge.
    log_path = os.path.join(work, "agent.log")
    log = open(log_path, "w")
    agent = subprocess.Popen([AGENT, "--config-file", ini, "--networks-file", nets_file,
                              "--teardown-on-exit"], stdout=subprocess.DEVNULL, stderr=log,
                             env={**os.environ, "NO_COLOR": "1"})
    at_exit(lambda: (agent.terminate(), agent.wait(timeout=30)))
    for _ in range(300):
        if "serving network" in open(log_path).read():
            break
        time.sleep(0.05)
    wait_answer(client, f"vm-0.{DOMAIN}")
    results["agent"] = measure("agent", agent.pid, client, files, args.secs)
    results["agent_rss_kb"] = rss_kb(agent.pid)

    agent.terminate()
    agent.wait(timeout=30)

    # Memory the DNS service adds per network (names of 10 ports + a running service).
    results["footprint"] = json.loads(sh(FOOTPRINT, "--networks", "200", "--ports", "10"))
    big = json.loads(sh(FOOTPRINT, "--networks", "5", "--ports", "1000"))
    results["names_build_us_1000_ports"] = big["names_build_us_per_network"]
    results["names_update_us_1000_ports"] = big["names_update_us_one_port"]
    fp = results["footprint"]
    print(f"  added per network (10 ports): names {fp['names_heap_bytes_per_network'] / 1024:.1f} KiB"
          f" + service {fp['service_heap_bytes_per_network'] / 1024:.1f} KiB heap"
          f" = {fp['added_heap_bytes_per_network'] / 1024:.1f} KiB"
          f" (service RSS growth {fp['service_rss_bytes_per_network'] / 1024:.1f} KiB);"
          f" names of 1,000 ports built in {big['names_build_us_per_network']:.0f} us,"
          f" patched for a one-port change in {big['names_update_us_one_port']:.0f} us", flush=True)

    print()
    for kind in files:
        a, d = results["agent"][kind], results["dnsmasq"][kind]
        print(f"{kind:9}: queries per CPU-second {a['queries_per_cpu_s']:.0f} vs "
              f"{d['queries_per_cpu_s']:.0f} = {a['queries_per_cpu_s'] / d['queries_per_cpu_s']:.2f}x; "
              f"queries/s {a['qps']:.0f} vs {d['qps']:.0f} = {a['qps'] / d['qps']:.2f}x")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    finally:
        cleanup()
