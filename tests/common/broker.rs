//! Broker-side fixtures for the RPC-mode agent tests: a RabbitMQ node of the test's own (to
//! stop and restart freely), a throw-away vhost with its own user on the shared broker, and the
//! neutron-server stand-in (tests/peer/neutron_peer.py on the real Python oslo.messaging).
//!
//! Declared from a test file with `#[path = "common/broker.rs"] mod broker;` next to
//! `mod common;` (it uses `crate::common`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::unique_name;

/// The shared broker every other test uses; never stopped here.
pub const SHARED_BROKER: &str = "127.0.0.1:5672";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// `rabbitmqctl <args>` (stdin closed: the Erlang CLI would eat a shared stdin).
pub fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run rabbitmqctl (is rabbitmq-server installed?): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "rabbitmqctl {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// A RabbitMQ node of the test's own
// ---------------------------------------------------------------------------------------------

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local_addr").port()
}

/// A RabbitMQ node owned by the test: own node name, AMQP and distribution ports, config,
/// data and logs under a temp dir. Stopped (`rabbitmqctl -n NODE stop`) on drop.
///
/// The Debian `rabbitmq-server` wrapper switches to the `rabbitmq` user, so the temp dir is
/// world-writable; `-detached`, then poll the port.
pub struct OwnBroker {
    pub node: String,
    pub port: u16,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl OwnBroker {
    /// Boots a plain AMQP node on a free port of 127.0.0.1 (default vhost `/`, guest/guest).
    pub fn start() -> OwnBroker {
        Self::start_with(|_, port| format!("listeners.tcp.local = 127.0.0.1:{port}\n"))
    }

    /// A node whose `rabbitmq.conf` is `conf(dir, port)` (`dir` is the node's temp dir, for
    /// certificates and the like); its AMQP listener must use `port`.
    pub fn start_with(conf: impl FnOnce(&Path, u16) -> String) -> OwnBroker {
        let dir = tempfile::Builder::new()
            .prefix("ndrs-broker-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .expect("chmod the broker dir");
        let port = free_port();
        let node = format!("{}@localhost", unique_name("ndrsrs"));
        let p = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(p("rabbitmq.conf"), conf(dir.path(), port)).expect("rabbitmq.conf");
        std::fs::write(p("enabled_plugins"), "[].\n").expect("enabled_plugins");
        std::fs::write(p("rabbitmq-env.conf"), "").expect("rabbitmq-env.conf");
        let env = vec![
            ("RABBITMQ_NODENAME".to_string(), node.clone()),
            ("RABBITMQ_NODE_PORT".into(), port.to_string()),
            ("RABBITMQ_DIST_PORT".into(), free_port().to_string()),
            ("RABBITMQ_MNESIA_BASE".into(), p("mnesia")),
            ("RABBITMQ_LOG_BASE".into(), p("log")),
            ("RABBITMQ_PID_FILE".into(), p("pid")),
            ("RABBITMQ_CONFIG_FILE".into(), p("rabbitmq.conf")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE".into(), p("enabled_plugins")),
            ("RABBITMQ_CONF_ENV_FILE".into(), p("rabbitmq-env.conf")),
            ("ERL_EPMD_ADDRESS".into(), "127.0.0.1".into()),
            (
                "ERL_FLAGS".into(),
                "-kernel inet_dist_use_interface {127,0,0,1}".into(),
            ),
        ];
        let b = OwnBroker {
            node,
            port,
            env,
            dir,
        };
        b.boot();
        b
    }

    /// `rabbitmq-server -detached` (same node, port and data dir), then waits until the AMQP
    /// port answers (at most 90 s).
    pub fn boot(&self) {
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "rabbitmq-server -detached failed for {}: {status:?}",
            self.node
        );
        let deadline = Instant::now() + Duration::from_secs(90);
        while !port_open(self.port) {
            assert!(
                Instant::now() < deadline,
                "own broker {} did not start on port {}\n{}",
                self.node,
                self.port,
                self.log_tail()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// `rabbitmqctl -n NODE stop` (connections are closed, the VM exits), then waits until the
    /// port is closed (at most 30 s). Returns whether it is.
    pub fn stop(&self) -> bool {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while port_open(self.port) {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(100));
        }
        true
    }

    /// The node's temp dir (config, data, logs, and whatever `start_with` put there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn is_up(&self) -> bool {
        port_open(self.port)
    }

    /// `rabbit://guest:guest@127.0.0.1:<port>/` (the default vhost `/`).
    pub fn url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.port)
    }

    /// The end of the node's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let dir = self.dir.path().join("log");
        let mut out = String::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            out.push_str(&format!("--- {} ---\n", e.path().display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if !self.stop() {
            // Last resort: the pid file of our own node (never a process found by name).
            let pid = std::fs::read_to_string(self.dir.path().join("pid"))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            if let Some(pid) = pid.filter(|p| *p > 1) {
                // SAFETY: kill(2) on the pid our own node wrote.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A throw-away vhost and user on the shared broker
// ---------------------------------------------------------------------------------------------

/// Panics (never skips) when the shared broker does not answer.
pub fn require_shared_broker() {
    let addr: SocketAddr = SHARED_BROKER.parse().expect("broker address");
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!(
            "RabbitMQ is not reachable on {SHARED_BROKER} ({e}). These tests need a real broker \
             with the default guest/guest user: start it with `rabbitmq-server -detached` \
             (scripts/test.sh does), wait for `rabbitmqctl await_startup`, and run again."
        );
    }
}

/// A vhost of this test on 127.0.0.1:5672 with a user allowed everything there: one of its
/// own ([`TestVhost::create`]) or `guest` ([`TestVhost::for_guest`]). The vhost, and a user of
/// its own, are deleted on drop.
pub struct TestVhost {
    pub name: String,
    pub user: String,
    pub password: String,
    own_user: bool,
}

impl TestVhost {
    /// A vhost with a user of its own (a real deployment's `openstack:<password>`).
    pub fn create() -> TestVhost {
        require_shared_broker();
        let tag = unique_name("stk");
        let v = TestVhost {
            name: format!("ndrs-{tag}"),
            user: format!("ndrs-{tag}"),
            // Distinctive, so a leak into a log is found by a plain substring search.
            password: format!("Pw{}{}", tag, "Xq9Zr7Lk"),
            own_user: true,
        };
        rabbitmqctl(&["add_vhost", &v.name]).unwrap_or_else(|e| panic!("{e}"));
        rabbitmqctl(&["add_user", &v.user, &v.password]).unwrap_or_else(|e| panic!("{e}"));
        v.permit();
        v
    }

    /// A vhost `ndrs-rpc-<tag><unique>` for the default `guest` user.
    pub fn for_guest(tag: &str) -> TestVhost {
        require_shared_broker();
        let v = TestVhost {
            name: format!("ndrs-rpc-{tag}{}", unique_name("v")),
            user: "guest".into(),
            password: "guest".into(),
            own_user: false,
        };
        rabbitmqctl(&["add_vhost", &v.name]).unwrap_or_else(|e| panic!("{e}"));
        v.permit();
        v
    }

    fn permit(&self) {
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &self.name,
            &self.user,
            ".*",
            ".*",
            ".*",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn url(&self) -> String {
        format!(
            "rabbit://{}:{}@{SHARED_BROKER}/{}",
            self.user, self.password, self.name
        )
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        if let Err(e) = rabbitmqctl(&["delete_vhost", &self.name]) {
            eprintln!("warning: {e}");
        }
        if self.own_user {
            if let Err(e) = rabbitmqctl(&["delete_user", &self.user]) {
                eprintln!("warning: {e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The neutron-server peer (tests/peer/neutron_peer.py; protocol in tests/peer/README.md)
// ---------------------------------------------------------------------------------------------

/// The venv python with oslo.messaging (built by scripts/py-venv.sh on first use).
pub fn venv_python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/py-venv.sh");
        let out = Command::new(script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
        assert!(
            out.status.success(),
            "{script} failed ({}); it builds the oslo.messaging venv the peer needs",
            out.status
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .expect("py-venv.sh printed no python path")
    })
}

#[derive(Default)]
struct PeerLog {
    events: Vec<Value>,
    replies: Vec<Value>,
    eof: bool,
}

/// The running peer. Stopped by EOF on its stdin on drop (killed after 15 s).
pub struct Peer {
    child: Option<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    log: Arc<(Mutex<PeerLog>, Condvar)>,
    next_id: AtomicU64,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Peer {
    /// Starts the peer on `transport_url` and waits for its `ready` event.
    pub fn start(transport_url: &str) -> Peer {
        let dir = tempfile::Builder::new()
            .prefix("ndrs-peer-")
            .tempdir()
            .expect("tempdir");
        let stderr_path = dir.path().join("peer.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("peer stderr file");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peer/neutron_peer.py");
        let mut child = Command::new(venv_python())
            .arg(script)
            .arg("--transport-url")
            .arg(transport_url)
            .arg("--host")
            .arg("neutron-peer")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the peer: {e}"));
        let stdout = child.stdout.take().expect("peer stdout");
        let log: Arc<(Mutex<PeerLog>, Condvar)> = Arc::default();
        {
            let log = log.clone();
            let echo = std::env::var_os("NDRS_PEER_ECHO").is_some();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if echo {
                        eprintln!("[peer] {line}");
                    }
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    let mut l = lock(&log.0);
                    if v.get("event").is_some() {
                        l.events.push(v);
                    } else {
                        l.replies.push(v);
                    }
                    log.1.notify_all();
                }
                lock(&log.0).eof = true;
                log.1.notify_all();
            });
        }
        let peer = Peer {
            stdin: Mutex::new(child.stdin.take()),
            child: Some(child),
            log,
            next_id: AtomicU64::new(1),
            stderr_path,
            _dir: dir,
        };
        let ready = peer.wait_event(0, Duration::from_secs(60), |e| {
            e["event"] == "ready" || e["event"] == "error"
        });
        match ready {
            Some(e) if e["event"] == "ready" => peer,
            other => panic!(
                "the peer did not start: {other:?}\n--- peer stderr ---\n{}",
                peer.stderr()
            ),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends a command and returns its reply (panics on `ok: false` or no reply in 30 s).
    pub fn cmd(&self, mut c: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        c["id"] = json!(id);
        {
            let mut stdin = lock(&self.stdin);
            let w = stdin.as_mut().expect("peer stdin");
            writeln!(w, "{c}").expect("write to the peer");
            w.flush().expect("flush to the peer");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let (m, cv) = &*self.log;
        let mut l = lock(m);
        loop {
            if let Some(r) = l.replies.iter().find(|r| r["id"] == json!(id)) {
                assert_eq!(
                    r["ok"],
                    json!(true),
                    "peer command {c} failed: {r}\n--- peer stderr ---\n{}",
                    self.stderr()
                );
                return r.clone();
            }
            assert!(!l.eof, "the peer exited\n{}", self.stderr());
            let now = Instant::now();
            assert!(now < deadline, "no reply to peer command {c}");
            l = cv
                .wait_timeout(l, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Number of events so far (a mark for [`Peer::wait_event`]).
    pub fn mark(&self) -> usize {
        lock(&self.log.0).events.len()
    }

    pub fn events(&self) -> Vec<Value> {
        lock(&self.log.0).events.clone()
    }

    /// Waits for an event (index ≥ `since`) matching `pred`.
    pub fn wait_event(
        &self,
        since: usize,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.log;
        let mut l = lock(m);
        loop {
            if let Some(e) = l.events.iter().skip(since).find(|e| pred(e)) {
                return Some(e.clone());
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

    /// Waits for a `call` event of `method` (index ≥ `since`) matching `pred`; panics with the
    /// methods seen so far when it does not come.
    pub fn expect_call(
        &self,
        since: usize,
        method: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_event(since, timeout, |e| {
            e["event"] == "call" && e["method"] == method && pred(e)
        })
        .unwrap_or_else(|| {
            panic!(
                "no {method} call from the agent within {timeout:?}; calls seen since #{since}: {:?}",
                self.events()
                    .iter()
                    .skip(since)
                    .filter(|e| e["event"] == "call")
                    .map(|e| e["method"].as_str().unwrap_or("?").to_string())
                    .collect::<Vec<_>>()
            )
        })
    }

    /// Every `call` event of `method` so far.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == "call" && e["method"] == method)
            .collect()
    }

    /// A directed cast to `dhcp_agent.<host>` (priority added as DhcpAgentNotifyAPI does).
    pub fn cast(&self, host: &str, method: &str, payload: Value) {
        self.cmd(json!({"cmd": "cast", "method": method, "payload": payload, "host": host}));
    }

    /// The stored network (with the ports the agent created), or null.
    pub fn network(&self, id: &str) -> Value {
        self.cmd(json!({"cmd": "get_network", "network_id": id}))["network"].clone()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // EOF on stdin: the peer stops its servers and exits.
        lock(&self.stdin).take();
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        if thread::panicking() {
            eprintln!(
                "--- peer stderr ---\n{}\n--- end of peer stderr ---",
                self.stderr()
            );
        }
    }
}

/// `args.agent_state.agent_state` of a report_state call event.
pub fn agent_state(call: &Value) -> &Value {
    &call["args"]["agent_state"]["agent_state"]
}

/// `args.port_ids` of a dhcp_ready_on_ports call event.
pub fn ready_ids(call: &Value) -> Vec<String> {
    call["args"]["port_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}
