//! Real dnsmasq, run with Neutron's command line and files (`neutron_dhcp::dnsmasq`) in a
//! namespace shaped like the agent's: the oracle of the differential tests (DHCP in
//! `tests/differential.rs`, DNS in `tests/dns_differential.rs`).
//!
//! ```text
//!  <ndq…>: ns-<port11> (DHCP port MAC + the caller's addresses)  ──veth──  <ndt…> ── bridge
//! ```
//!
//! Declared from a test file with `#[path = "common/dnsmasq.rs"] mod oracle;` next to
//! `mod common;` (it uses `crate::common`).

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use neutron_dhcp::config::ServeConfig;
use neutron_dhcp::dnsmasq::{interface_name, Dnsmasq, DnsmasqConfig};
use neutron_dhcp::model::{Network, Port};

use crate::common::{ip, tool_path, unique_name, LinkGuard, NetnsGuard};

/// The DHCP port's device pair, named for the caller that gives it its addresses (and MTU)
/// before it comes up.
pub struct Plumbing<'a> {
    /// The namespace dnsmasq runs in.
    pub ns: &'a str,
    /// The root end, attached to the bridge once the namespace end is set up.
    pub tap: &'a str,
    /// The namespace end, named as Neutron's veth driver names it.
    pub ifname: &'a str,
}

/// dnsmasq with Neutron's command line in a namespace shaped like the agent's; killed (and the
/// namespace removed) on drop.
pub struct DnsmasqServer {
    pid: i32,
    _dir: tempfile::TempDir,
    // Drop order: the root end first, then the namespace (whose guard kills dnsmasq).
    _tap: LinkGuard,
    pub ns: NetnsGuard,
}

impl DnsmasqServer {
    /// Renders Neutron's files for `net` at time `now` (Unix seconds) with `own` as the DHCP
    /// port (veth driver, Neutron's defaults), plumbs the namespace as the device manager leaves
    /// it, lets `address` add the port's addresses, attaches it to `bridge` and starts dnsmasq
    /// with Neutron's argv, verbatim; returns once dnsmasq has written its pid file.
    pub fn start(
        net: &Network,
        own: &Port,
        serve: &ServeConfig,
        bridge: &str,
        now: u64,
        address: impl FnOnce(&Plumbing),
    ) -> DnsmasqServer {
        let dir = tempfile::Builder::new()
            .prefix("ndrs-dnsmasq-")
            .tempdir()
            .expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let conf_dir = dir.path().join(&net.id);
        fs::create_dir(&conf_dir).expect("conf dir");
        fs::set_permissions(&conf_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        let cfg = DnsmasqConfig::default(); // bridged (veth driver), Neutron's defaults
        let ifname = interface_name(&own.id, cfg.bridged);
        let dm = Dnsmasq::new(net, serve, &cfg, &conf_dir, &ifname, Some(own));
        let rendered = dm.render(now, None);
        for (name, contents) in rendered.files() {
            let p = conf_dir.join(name);
            fs::write(&p, contents).expect("write dnsmasq file");
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        }

        // The namespace as the device manager leaves it (reference §8).
        let ns = NetnsGuard::create(&unique_name("ndq"));
        let tap = unique_name("ndt");
        ip(&format!(
            "link add {tap} type veth peer name {ifname} netns {}",
            ns.name
        ));
        let tap_guard = LinkGuard::adopt(&tap);
        ip(&format!(
            "-n {} link set {ifname} address {}",
            ns.name, own.mac_address
        ));
        address(&Plumbing {
            ns: &ns.name,
            tap: &tap,
            ifname: &ifname,
        });
        ip(&format!("-n {} link set {ifname} up", ns.name));
        ip(&format!("link set {tap} master {bridge} up"));

        // Neutron's argv, verbatim (including an empty --no-resolv slot if there is one).
        let mut argv = rendered.argv.clone();
        argv[0] = tool_path("dnsmasq");
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .args(&argv)
            .output()
            .expect("run dnsmasq");
        assert!(
            out.status.success(),
            "dnsmasq failed to start ({}): {}\nargv: {argv:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let pid_file = dm.conf_file("pid");
        let deadline = Instant::now() + Duration::from_secs(5);
        let pid = loop {
            if let Some(pid) = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "dnsmasq wrote no pid file");
            thread::sleep(Duration::from_millis(20));
        };
        DnsmasqServer {
            pid,
            _dir: dir,
            _tap: tap_guard,
            ns,
        }
    }

    /// SIGTERM to dnsmasq, then whatever is left in its namespace; the namespace and the tap go
    /// with `self`.
    pub fn stop(self) {
        // SAFETY: kill(2) on the dnsmasq we started (its pid from its own pid file).
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
        self.ns.kill_all();
    }
}
