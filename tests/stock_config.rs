//! The agent started exactly like the Python one:
//! `neutron-dhcp-agent --config-file /etc/neutron/neutron.conf --config-file
//! /etc/neutron/dhcp_agent.ini`, with the deployment-style files in tests/fixtures/.
//!
//! The fixtures are copied to a temp `etc/neutron/` with only `[DEFAULT] transport_url` (a
//! throw-away vhost on 127.0.0.1:5672 with a user and password of its own) and `state_path` (a
//! temp dir) replaced. Everything else is the stock value: `interface_driver = openvswitch`,
//! `enable_isolated_metadata = true`, `[agent]` in neutron.conf next to `[AGENT]` in
//! dhcp_agent.ini, database/Keystone/Nova passwords, oslo.log options, ...
//!
//! * registration (exactly the two files): the report_state the peer receives carries the
//!   values of the files; no password of any file appears in the log;
//! * `--debug`: every option we do not implement is listed as ignored, none we do; still no
//!   password;
//! * an invalid value in a known option: start-up error naming the file, section and key;
//! * serving a network: the stock files plus a third `--config-file` that sets only
//!   `interface_driver = veth` (and its bridge), to keep Open vSwitch out of the test; a real
//!   client gets a lease built from the stock values (lease time, domain, metadata route).
//!
//! Needs root (namespaces) for the last test; `NDRS_TEST_ECHO=1` streams the agent's log.

#[path = "common/broker.rs"]
mod broker;
mod common;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use broker::{agent_state, ready_ids, Peer, TestVhost};
use common::*;

/// What the broker tests need root for (`rabbitmqctl` is root's), and one the namespaces.
const NEEDS_ROOT: &str = "rabbitmqctl for vhosts of their own, network namespaces";

const NEUTRON_CONF: &str = include_str!("fixtures/neutron.conf");
const DHCP_AGENT_INI: &str = include_str!("fixtures/dhcp_agent.ini");

/// Every secret in the fixtures (besides the test vhost's password, checked separately).
const FIXTURE_SECRETS: &[&str] = &[
    "Rabbit-Stock-Pa55",
    "Db-Stock-Pa55",
    "Keystone-Stock-Pa55",
    "Nova-Stock-Pa55",
    "Placement-Stock-Pa55",
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Rendering the fixtures
// ---------------------------------------------------------------------------------------------

/// oslo.config's group names: case-insensitive except `DEFAULT`.
fn same_group(a: &str, b: &str) -> bool {
    if a == "DEFAULT" || b == "DEFAULT" {
        a == b
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

/// `text` with `[section] key` set to `value`: the active line is replaced, or the option is
/// added at the end of the section (or of the file, in a new section).
fn set_option(text: &str, section: &str, key: &str, value: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut done = false;
    let mut section_end: Option<usize> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            if same_group(&current, section) && section_end.is_none() {
                section_end = Some(out.len());
            }
            current = name.trim().to_string();
        } else if !done
            && same_group(&current, section)
            && !t.starts_with('#')
            && t.split(['=', ':'])
                .next()
                .is_some_and(|k| k.trim() == key && t.contains(['=', ':']))
        {
            out.push(format!("{key} = {value}"));
            done = true;
            continue;
        }
        out.push(line.to_string());
    }
    if !done {
        match section_end {
            Some(at) => out.insert(at, format!("{key} = {value}")),
            None if same_group(&current, section) => out.push(format!("{key} = {value}")),
            None => {
                out.push(format!("[{section}]"));
                out.push(format!("{key} = {value}"));
            }
        }
    }
    out.join("\n") + "\n"
}

/// `etc/neutron/{neutron.conf,dhcp_agent.ini}` in a temp dir, from the fixtures with
/// transport_url and state_path replaced, plus `extra` edits `(file, section, key, value)`.
struct Etc {
    dir: tempfile::TempDir,
    neutron_conf: PathBuf,
    dhcp_agent_ini: PathBuf,
}

impl Etc {
    fn new(transport_url: &str, extra: &[(&str, &str, &str, &str)]) -> Etc {
        let dir = tempfile::Builder::new()
            .prefix("ndrs-stock-")
            .tempdir()
            .expect("tempdir");
        let etc = dir.path().join("etc/neutron");
        std::fs::create_dir_all(&etc).expect("etc/neutron");
        let state = dir.path().join("var/lib/neutron");
        std::fs::create_dir_all(&state).expect("state dir");
        let mut conf = set_option(NEUTRON_CONF, "DEFAULT", "transport_url", transport_url);
        conf = set_option(&conf, "DEFAULT", "state_path", &state.display().to_string());
        let mut ini = DHCP_AGENT_INI.to_string();
        for (file, section, key, value) in extra {
            match *file {
                "neutron.conf" => conf = set_option(&conf, section, key, value),
                "dhcp_agent.ini" => ini = set_option(&ini, section, key, value),
                other => panic!("unknown fixture {other}"),
            }
        }
        let neutron_conf = etc.join("neutron.conf");
        let dhcp_agent_ini = etc.join("dhcp_agent.ini");
        std::fs::write(&neutron_conf, conf).expect("write neutron.conf");
        std::fs::write(&dhcp_agent_ini, ini).expect("write dhcp_agent.ini");
        Etc {
            dir,
            neutron_conf,
            dhcp_agent_ini,
        }
    }

    /// `--config-file neutron.conf --config-file dhcp_agent.ini`, as the Python agent is run.
    fn args(&self) -> Vec<String> {
        vec![
            "--config-file".into(),
            self.neutron_conf.display().to_string(),
            "--config-file".into(),
            self.dhcp_agent_ini.display().to_string(),
        ]
    }

    /// A third file, after the stock two.
    fn add_file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join("etc/neutron").join(name);
        std::fs::write(&p, text).expect("write extra config file");
        p
    }
}

// ---------------------------------------------------------------------------------------------
// The agent process, started with exactly the given arguments
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Log {
    lines: Vec<String>,
    eof: bool,
}

struct Proc {
    child: Option<Child>,
    log: Arc<(Mutex<Log>, Condvar)>,
    reader: Option<JoinHandle<()>>,
    /// Network ids whose namespaces are removed if the agent leaves them behind.
    networks: Vec<String>,
}

impl Proc {
    fn start(args: &[String]) -> Proc {
        let mut cmd = Command::new(AGENT_BIN);
        cmd.args(args)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGTERM as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {AGENT_BIN}: {e}"));
        let stderr = child.stderr.take().expect("stderr");
        let log: Arc<(Mutex<Log>, Condvar)> = Arc::default();
        let reader = {
            let log = log.clone();
            let echo = std::env::var_os("NDRS_TEST_ECHO").is_some();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let line = strip_ansi(&line);
                    if echo {
                        eprintln!("[agent] {line}");
                    }
                    lock(&log.0).lines.push(line);
                    log.1.notify_all();
                }
                lock(&log.0).eof = true;
                log.1.notify_all();
            })
        };
        Proc {
            child: Some(child),
            log,
            reader: Some(reader),
            networks: Vec::new(),
        }
    }

    fn text(&self) -> String {
        lock(&self.log.0).lines.join("\n")
    }

    fn wait_line(&self, needles: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.log;
        let mut l = lock(m);
        loop {
            if let Some(line) = l
                .lines
                .iter()
                .find(|line| needles.iter().all(|n| line.contains(n)))
            {
                return Some(line.clone());
            }
            let now = Instant::now();
            if l.eof || now >= deadline {
                return None;
            }
            l = cv
                .wait_timeout(l, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM; asserts a clean exit within 20 s; returns the whole log.
    fn stop(mut self) -> String {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
        }
        let status = self.wait_exit(Duration::from_secs(20));
        let log = self.text();
        match status {
            Some(s) => assert!(s.success(), "agent exited with {s}\n{log}"),
            None => panic!("agent did not exit within 20 s of SIGTERM\n{log}"),
        }
        log
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if thread::panicking() {
            eprintln!(
                "--- agent log ---\n{}\n--- end of agent log ---",
                self.text()
            );
        }
        for id in &self.networks {
            let ns = format!("qdhcp-{id}");
            if netns_exists(&ns) {
                run_quiet("ip", &["netns", "del", &ns]);
            }
        }
    }
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .expect("hostname")
}

fn assert_no_secrets(log: &str, vhost: Option<&TestVhost>) {
    if let Some(v) = vhost {
        assert!(
            !log.contains(&v.password),
            "the transport_url password was logged:\n{log}"
        );
    }
    for s in FIXTURE_SECRETS {
        assert!(
            !log.contains(s),
            "a password of the config files ({s}) was logged:\n{log}"
        );
    }
}

/// Waits for the first report_state and checks it carries what the stock files say.
fn expect_registration(peer: &Peer, log: &Proc) -> Value {
    let report = peer
        .wait_event(0, Duration::from_secs(30), |e| {
            e["event"] == "call" && e["method"] == "report_state"
        })
        .unwrap_or_else(|| {
            panic!(
                "the agent did not register within 30 s\n--- agent log ---\n{}\n--- peer \
                 stderr ---\n{}",
                log.text(),
                peer.stderr()
            )
        });
    assert_eq!(report["topic"], "q-reports-plugin");
    assert_eq!(report["version"], "1.4");
    assert_eq!(report["rpc"], "call");
    let st = agent_state(&report);
    let host = system_hostname();
    assert_eq!(st["binary"], "neutron-dhcp-agent");
    assert_eq!(st["host"], json!(host), "host defaults to the hostname");
    assert_eq!(st["topic"], "dhcp_agent");
    assert_eq!(st["agent_type"], "DHCP agent");
    assert_eq!(st["start_flag"], json!(true));
    // From dhcp_agent.ini [AGENT] and [DEFAULT], and neutron.conf [DEFAULT].
    assert_eq!(st["availability_zone"], "az-rack1");
    assert_eq!(
        st["configurations"]["dhcp_driver"],
        "neutron.agent.linux.dhcp.Dnsmasq"
    );
    assert_eq!(st["configurations"]["dhcp_lease_duration"], json!(43200));
    assert_eq!(st["configurations"]["log_agent_heartbeats"], json!(false));
    assert_eq!(st["configurations"]["networks"], json!(0));
    let sync = peer.expect_call(
        0,
        "get_active_networks_info",
        Duration::from_secs(10),
        |_| true,
    );
    assert_eq!(
        sync["args"],
        json!({"host": host, "enable_dhcp_filter": false})
    );
    report
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Exactly `--config-file neutron.conf --config-file dhcp_agent.ini`: the agent registers with
/// the values of the files, and logs no password of them.
#[test]
fn stock_files_register_with_the_peer() {
    root_or_skip!(NEEDS_ROOT);
    let vhost = TestVhost::create();
    let peer = Peer::start(&vhost.url());
    let etc = Etc::new(&vhost.url(), &[]);
    let agent = Proc::start(&etc.args());
    expect_registration(&peer, &agent);
    agent
        .wait_line(&["starting in Neutron RPC mode"], Duration::from_secs(5))
        .expect("start-up line");
    let log = agent.stop();
    assert_no_secrets(&log, Some(&vhost));
    assert!(
        log.contains(&format!("rabbit://{}:***@", vhost.user)),
        "the transport_url is logged with its password masked\n{log}"
    );
    // Options we ignore are only listed with --debug.
    assert!(!log.contains("ignoring option"), "{log}");
    assert!(!log.contains(" DEBUG "), "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        errors.is_empty(),
        "errors with the stock files: {errors:#?}"
    );
    drop(peer);
}

/// `--debug` after the two files: each option of the files we do not implement is listed as
/// ignored (file, section, key), none that we do; passwords stay out of the debug log too.
#[test]
fn debug_lists_the_ignored_options_and_no_password() {
    root_or_skip!(NEEDS_ROOT);
    let vhost = TestVhost::create();
    let peer = Peer::start(&vhost.url());
    let etc = Etc::new(&vhost.url(), &[]);
    let mut args = etc.args();
    args.push("--debug".into());
    let agent = Proc::start(&args);
    expect_registration(&peer, &agent);
    // Let the connection and the first syncs log at debug level too.
    thread::sleep(Duration::from_millis(500));
    let log = agent.stop();
    assert_no_secrets(&log, Some(&vhost));
    let conf = etc.neutron_conf.display().to_string();
    let ini = etc.dhcp_agent_ini.display().to_string();
    let ignored = |file: &str, section: &str, key: &str| {
        log.lines().any(|l| {
            l.contains("ignoring option not used by this agent")
                && l.contains(&format!("section={section}"))
                && l.contains(&format!("key={key}"))
                && (file.is_empty() || l.contains(&format!("file={file}")))
        })
    };
    for (file, section, key) in [
        (&conf, "DEFAULT", "core_plugin"),
        (&conf, "DEFAULT", "service_plugins"),
        (&conf, "DEFAULT", "auth_strategy"),
        (&conf, "DEFAULT", "notify_nova_on_port_status_changes"),
        (&conf, "DEFAULT", "global_physnet_mtu"),
        (&conf, "DEFAULT", "api_workers"),
        (&conf, "DEFAULT", "logging_context_format_string"),
        (&conf, "DEFAULT", "use_syslog"),
        (&conf, "agent", "root_helper"),
        (&conf, "agent", "root_helper_daemon"),
        (&conf, "database", "connection"),
        (&conf, "keystone_authtoken", "password"),
        (&conf, "keystone_authtoken", "memcached_servers"),
        (&conf, "nova", "password"),
        (&conf, "placement", "password"),
        (&conf, "oslo_concurrency", "lock_path"),
        (&conf, "oslo_messaging_notifications", "driver"),
        (&conf, "oslo_policy", "enforce_scope"),
        (&conf, "quotas", "quota_port"),
        (&conf, "ovs", "igmp_snooping_enable"),
        (&ini, "DEFAULT", "dnsmasq_lease_max"),
        (&ini, "AGENT", "check_child_processes_action"),
    ] {
        assert!(
            ignored(file, section, key),
            "[{section}] {key} of {file} not listed as ignored\n{log}"
        );
    }
    // oslo.messaging options we accept but do not use (no file: the RPC layer reads them).
    for key in ["heartbeat_in_pthread", "rpc_conn_pool_size"] {
        assert!(
            ignored("", "oslo_messaging_rabbit", key),
            "[oslo_messaging_rabbit] {key} not listed as ignored\n{log}"
        );
    }
    // What we implement is never listed.
    for (section, key) in [
        ("DEFAULT", "transport_url"),
        ("DEFAULT", "state_path"),
        ("DEFAULT", "dhcp_lease_duration"),
        ("DEFAULT", "dns_domain"),
        ("DEFAULT", "rpc_response_timeout"),
        ("DEFAULT", "control_exchange"),
        ("DEFAULT", "debug"),
        ("DEFAULT", "interface_driver"),
        ("DEFAULT", "dhcp_driver"),
        ("DEFAULT", "enable_isolated_metadata"),
        // The isolated-metadata proxy's options (src/metadata).
        ("DEFAULT", "enable_metadata_network"),
        ("DEFAULT", "metadata_proxy_socket"),
        ("metadata_rate_limiting", "rate_limit_enabled"),
        ("metadata_rate_limiting", "ip_versions"),
        ("DEFAULT", "resync_interval"),
        ("DEFAULT", "num_sync_threads"),
        ("DEFAULT", "ovs_use_veth"),
        // The DNS service (issue 14).
        ("DEFAULT", "dnsmasq_dns_servers"),
        ("DEFAULT", "dnsmasq_local_resolv"),
        ("agent", "report_interval"),
        ("AGENT", "availability_zone"),
        ("AGENT", "log_agent_heartbeats"),
        ("OVS", "ovsdb_connection"),
        ("OVS", "integration_bridge"),
        ("oslo_messaging_rabbit", "heartbeat_timeout_threshold"),
        ("oslo_messaging_rabbit", "rabbit_retry_interval"),
    ] {
        assert!(
            !ignored("", section, key),
            "[{section}] {key} is implemented but listed as ignored\n{log}"
        );
    }
    drop(peer);
}

/// oslo.log's options in neutron.conf are honoured: `debug = true` turns on the debug log
/// (the ignored options are listed) and `log_dir` sends the log to
/// `<log_dir>/neutron-dhcp-agent.log` instead of stderr. The broker is unreachable here
/// (port 1): the retries are logged without the password, and SIGTERM still stops the agent.
#[test]
fn oslo_log_options_in_the_files_are_honoured() {
    let url = "rabbit://openstack:Rabbit-Stock-Pa55@127.0.0.1:1/openstack";
    let probe = Etc::new(url, &[]);
    let log_dir = probe.dir.path().join("log");
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let etc = Etc::new(
        url,
        &[
            ("neutron.conf", "DEFAULT", "debug", "true"),
            (
                "neutron.conf",
                "DEFAULT",
                "log_dir",
                &log_dir.display().to_string(),
            ),
        ],
    );
    let agent = Proc::start(&etc.args());
    let file = log_dir.join("neutron-dhcp-agent.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    while !(read().contains("ignoring option not used by this agent")
        && read().contains("is unreachable"))
    {
        assert!(
            Instant::now() < deadline,
            "no debug log in {}:\n{}\n--- stderr ---\n{}",
            file.display(),
            read(),
            agent.text()
        );
        thread::sleep(Duration::from_millis(100));
    }
    // Calls are now waiting for the broker (up to rpc_response_timeout = 60 s): SIGTERM must
    // not wait for them.
    thread::sleep(Duration::from_millis(1500));
    let stopping = Instant::now();
    let stderr = agent.stop();
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    let log = read();
    assert!(stderr.trim().is_empty(), "logged to stderr too:\n{stderr}");
    assert!(log.contains("section=database key=connection"), "{log}");
    assert!(log.contains("openstack:***@127.0.0.1:1"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert_no_secrets(&log, None);
}

/// An invalid value in an option we implement stops the start-up with an error naming the file,
/// the section (as written there) and the key, before any connection; no password in it.
#[test]
fn invalid_known_option_is_a_startup_error_naming_file_section_and_key() {
    let long_az = "a".repeat(256);
    // (file, section, key, bad value)
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (
            "dhcp_agent.ini",
            "DEFAULT",
            "enable_isolated_metadata",
            "maybe",
        ),
        ("dhcp_agent.ini", "DEFAULT", "resync_interval", "0"),
        ("dhcp_agent.ini", "DEFAULT", "num_sync_threads", "four"),
        (
            "dhcp_agent.ini",
            "DEFAULT",
            "interface_driver",
            "linuxbrige",
        ),
        ("dhcp_agent.ini", "AGENT", "availability_zone", &long_az),
        ("dhcp_agent.ini", "OVS", "ovsdb_timeout", "0"),
        ("dhcp_agent.ini", "OVS", "ovsdb_connection", "tcp:no-port"),
        ("neutron.conf", "DEFAULT", "dhcp_lease_duration", "forever"),
        ("neutron.conf", "DEFAULT", "debug", "perhaps"),
        ("neutron.conf", "DEFAULT", "rpc_response_timeout", "soon"),
        (
            "neutron.conf",
            "DEFAULT",
            "transport_url",
            "rabbit://openstack:Rabbit-Stock-Pa55@rabbit1.example.net:99999/openstack",
        ),
        ("neutron.conf", "agent", "report_interval", "often"),
        (
            "neutron.conf",
            "oslo_messaging_rabbit",
            "heartbeat_timeout_threshold",
            "sixty",
        ),
        (
            "neutron.conf",
            "oslo_messaging_rabbit",
            "rabbit_retry_interval",
            "0",
        ),
        ("neutron.conf", "oslo_messaging_rabbit", "ssl", "sometimes"),
    ];
    for (file, section, key, value) in cases {
        // The stock transport_url (unreachable hosts): nothing may get as far as connecting.
        let stock_url = "rabbit://openstack:Rabbit-Stock-Pa55@rabbit1.example.net:5672/openstack";
        let url_value = if key == "transport_url" {
            value
        } else {
            stock_url
        };
        let mut edits = vec![(file, section, key, value)];
        if key == "transport_url" {
            edits.clear();
        }
        let etc = Etc::new(url_value, &edits);
        let mut agent = Proc::start(&etc.args());
        let status = agent.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
            panic!(
                "[{section}] {key} = {value:?} did not stop the start-up\n{}",
                agent.text()
            )
        });
        let log = agent.text();
        assert!(
            !status.success(),
            "[{section}] {key} = {value:?}: {status}\n{log}"
        );
        let path = match file {
            "neutron.conf" => &etc.neutron_conf,
            _ => &etc.dhcp_agent_ini,
        };
        assert!(
            log.contains(&path.display().to_string()),
            "[{section}] {key} = {value:?}: the error does not name {}\n{log}",
            path.display()
        );
        assert!(
            log.contains(&format!("[{section}] {key}")),
            "[{section}] {key} = {value:?}: the error does not name [{section}] {key}\n{log}"
        );
        assert!(
            !log.contains("starting in Neutron RPC mode"),
            "[{section}] {key} = {value:?}: started anyway\n{log}"
        );
        assert_no_secrets(&log, None);
        note(&format!(
            "[{section}] {key} = {:?} → {}",
            if value.len() > 40 {
                &value[..40]
            } else {
                value
            },
            log.lines().last().unwrap_or("").trim()
        ));
    }
}

/// The stock files plus a third `--config-file` that only swaps the interface driver to veth
/// (keeping Open vSwitch out of the test): a network is served and a real client's lease is
/// built from the stock values (43200 s lease, domain cloud.example.net, the isolated-metadata
/// route through the DHCP port), and the port is reported ready.
#[test]
fn stock_files_serve_a_network_with_only_the_interface_driver_overridden() {
    root_or_skip!(NEEDS_ROOT);
    require_client_tools();
    let vhost = TestVhost::create();
    let peer = Peer::start(&vhost.url());
    let etc = Etc::new(&vhost.url(), &[]);
    let mut net = NetSpec::new("10.93.0.0/24", Some(ip4("10.93.0.1")), ip4("10.93.0.2"));
    net.mtu = 1450;
    let vm = net.add_port(PortSpec::vm(ip4("10.93.0.10")));
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let client = ClientNs::new(&net.bridge_name(), &vm.mac);
    let mut stored = net.to_json();
    stored["subnets"][0]
        .as_object_mut()
        .expect("subnet")
        .remove("allocation_pools");
    stored["ports"]
        .as_array_mut()
        .expect("ports")
        .retain(|p| p["device_owner"] != "network:dhcp");
    peer.cmd(json!({"cmd": "set_networks", "networks": [stored]}));

    let overrides = etc.add_file(
        "zz-test-veth.conf",
        "# Test only: the veth driver instead of openvswitch.\n[DEFAULT]\n\
         interface_driver = veth\n\n[veth]\nbridge = brq{network_id}\n",
    );
    let mut args = etc.args();
    args.push("--config-file".into());
    args.push(overrides.display().to_string());
    let mut agent = Proc::start(&args);
    agent.networks.push(net.id.clone());
    agent
        .wait_line(&["serving network", &net.id], Duration::from_secs(30))
        .unwrap_or_else(|| panic!("network not served\n{}", agent.text()));
    let lease = client
        .dhclient(LEASE_TIMEOUT)
        .expect("a lease with the stock configuration");
    let ours: Vec<Value> = peer.network(&net.id)["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["device_owner"] == "network:dhcp")
        .cloned()
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    let dhcp_ip: Ipv4Addr = ours[0]["fixed_ips"][0]["ip_address"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("our DHCP port's IP");
    net.dhcp_port.ip = dhcp_ip;
    let mut expected = net.expected_lease(&vm);
    expected.lease_time = Some(43200);
    expected.domain = Some("cloud.example.net".into());
    // enable_isolated_metadata = true and no router port on the subnet: metadata through the
    // DHCP port, then the default route (reference §9.6).
    expected.routes_121 = vec![
        ("169.254.169.254/32".into(), dhcp_ip),
        ("0.0.0.0/0".into(), ip4("10.93.0.1")),
    ];
    assert_eq!(lease, expected);
    peer.expect_call(0, "dhcp_ready_on_ports", Duration::from_secs(10), |c| {
        ready_ids(c).contains(&vm.id)
    });
    assert!(
        common::ip(&format!("-n {} -4 addr", net.namespace())).contains("169.254.169.254"),
        "no metadata address on the DHCP port"
    );
    let log = agent.stop();
    assert_no_secrets(&log, Some(&vhost));
    assert!(!netns_exists(&net.namespace()));
    drop(client);
    drop(peer);
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 literal")
}
