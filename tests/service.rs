//! The agent as a system service: the systemd notification protocol (`READY=1` once every
//! network is plumbed and served, `WATCHDOG=1` from the main loop, `STOPPING=1`), the log file
//! reopened on SIGHUP for logrotate, and the Debian package: built with `packaging/build-deb.sh`,
//! installed with `dpkg -i`, its unit verified with `systemd-analyze verify`, and the installed
//! binary run as the unit runs it (user `neutron`, only the unit's ambient capabilities).
//!
//! Needs root. The package test installs `neutron-dhcp-rs` on this machine and purges it
//! again (the `neutron` user it may create is kept, as Neutron's own packages keep it).

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const UNIT: &str = "/lib/systemd/system/neutron-dhcp-agent.service";
const INSTALLED_BIN: &str = "/usr/bin/neutron-dhcp-agent";

/// A service manager's notification socket, as systemd passes it in `NOTIFY_SOCKET`.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    sock: UnixDatagram,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = tempfile::tempdir().expect("tempdir");
        // The agent may run as another user (the package test).
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).expect("chmod");
        NotifySocket {
            _dir: dir,
            path,
            sock,
        }
    }

    /// The next message that `wanted` accepts, skipping others (watchdog pings); panics after
    /// `timeout` with what arrived.
    fn expect(&self, what: &str, timeout: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {what} from the agent within {timeout:?}; got {seen:?}"
            );
            self.sock.set_read_timeout(Some(left)).expect("timeout");
            let Ok(n) = self.sock.recv(&mut buf) else {
                continue;
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if wanted(&msg) {
                return msg;
            }
            seen.push(msg);
        }
    }
}

/// Removes a network's namespace and tap if the agent under test left them (it should not:
/// it runs with `--teardown-on-exit`).
struct NetworkLeftovers(String, String);

impl Drop for NetworkLeftovers {
    fn drop(&mut self) {
        run_quiet("ip", &["netns", "del", &self.0]);
        run_quiet("ip", &["link", "del", &self.1]);
    }
}

/// Config files for a standalone agent serving `net`, in `dir`.
fn write_config(dir: &Path, net: &NetSpec) -> Vec<String> {
    let state = dir.join("state");
    fs::create_dir_all(&state).expect("state dir");
    fs::write(
        dir.join("neutron.conf"),
        format!(
            "[DEFAULT]\nstate_path = {}\nhost = {}\n",
            state.display(),
            unique_name("host")
        ),
    )
    .expect("neutron.conf");
    fs::write(dir.join("dhcp_agent.ini"), test_ini()).expect("dhcp_agent.ini");
    fs::write(dir.join("networks.json"), networks_json(&[net])).expect("networks.json");
    let p = |f: &str| dir.join(f).display().to_string();
    vec![
        "--config-file".into(),
        p("neutron.conf"),
        "--config-file".into(),
        p("dhcp_agent.ini"),
        "--networks-file".into(),
        p("networks.json"),
        "--log-file".into(),
        p("agent.log"),
        "--teardown-on-exit".into(),
    ]
}

fn one_port_network(third_octet: u8) -> (NetSpec, PortSpec) {
    let a = |last: u8| Ipv4Addr::new(10, 64, third_octet, last);
    let mut net = NetSpec::new(&format!("10.64.{third_octet}.0/24"), Some(a(1)), a(2));
    let port = net.add_port(PortSpec::vm(a(10)));
    (net, port)
}

fn wait_for_file_containing(path: &Path, text: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let now = fs::read_to_string(path).unwrap_or_default();
        if now.contains(text) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{} never contained {text:?}; it has:\n{now}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn standalone_agent_notifies_ready_alive_and_stopping_and_reopens_its_log_on_sighup() {
    root_or_skip!();
    require_client_tools();
    let (net, port) = one_port_network(0);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let _left = NetworkLeftovers(net.namespace(), net.dhcp_port.tap_name());
    let client = ClientNs::new(&net.bridge_name(), &port.mac);
    let dir = tempfile::tempdir().expect("tempdir");
    let args = write_config(dir.path(), &net);
    let notify = NotifySocket::new();
    let child = Command::new(AGENT_BIN)
        .args(&args)
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the agent");
    let mut agent = ChildGuard::new(child, false);

    let ready = notify.expect("READY=1", AGENT_TIMEOUT, |m| m.starts_with("READY=1"));
    assert!(
        ready.contains("STATUS=serving 1 networks"),
        "status line: {ready:?}"
    );
    // Ready means plumbed and answering.
    assert!(netns_exists(&net.namespace()), "namespace missing at READY");
    assert_eq!(
        client.dhclient(LEASE_TIMEOUT).expect("a lease after READY"),
        net.expected_lease(&port)
    );
    // The watchdog interval is half of WATCHDOG_USEC; the loop comes round every second.
    notify.expect("WATCHDOG=1", Duration::from_secs(5), |m| m == "WATCHDOG=1");

    // logrotate moves the file away, then sends SIGHUP.
    let log = dir.path().join("agent.log");
    let rotated = dir.path().join("agent.log.1");
    fs::rename(&log, &rotated).expect("rotate the log");
    agent.signal(libc::SIGHUP);
    wait_for_file_containing(&log, "log file reopened", AGENT_TIMEOUT);
    let old = fs::read_to_string(&rotated).expect("rotated log");
    assert!(old.contains("serving network"), "rotated log:\n{old}");
    // The SIGHUP still reloads the networks file, now logged to the new file.
    wait_for_file_containing(&log, "reloaded networks file", AGENT_TIMEOUT);

    agent.signal(libc::SIGTERM);
    notify.expect("STOPPING=1", AGENT_TIMEOUT, |m| m.starts_with("STOPPING=1"));
    let status = agent.wait_timeout(AGENT_TIMEOUT).expect("agent exits");
    assert!(status.success(), "exit status {status:?}");
    assert!(!netns_exists(&net.namespace()), "namespace left behind");
}

/// Purges the package on drop, also when an assertion failed half way.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "neutron-dhcp-rs"])
            .stdout(Stdio::null())
            .status();
    }
}

/// `Key=value` of the unit's `[Service]` section.
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
        .trim()
        .to_owned()
}

#[test]
fn the_debian_package_installs_and_runs_as_the_unit_says() {
    root_or_skip!();
    require_client_tools();
    for tool in ["dpkg-deb", "dpkg", "setpriv", "systemd-analyze"] {
        require_tool(tool);
    }
    let out = tempfile::tempdir().expect("tempdir");
    let built = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/build-deb.sh"
        ))
        .args(["--binary", AGENT_BIN, "--out"])
        .arg(out.path())
        .output()
        .expect("run build-deb.sh");
    assert!(
        built.status.success(),
        "build-deb.sh failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let deb = String::from_utf8_lossy(&built.stdout).trim().to_owned();
    let listing = run("dpkg-deb", &["--contents", &deb]);
    for f in [
        "./usr/bin/neutron-dhcp-agent",
        "./lib/systemd/system/neutron-dhcp-agent.service",
        "./etc/logrotate.d/neutron-dhcp-agent",
        "./usr/share/doc/neutron-dhcp-rs/examples/dhcp_agent.ini",
    ] {
        assert!(listing.contains(f), "{f} not in the package:\n{listing}");
    }
    let fields = run("dpkg-deb", &["--field", &deb, "Conflicts", "Replaces"]);
    assert!(
        fields.contains("Conflicts: neutron-dhcp-agent")
            && fields.contains("Replaces: neutron-dhcp-agent"),
        "{fields}"
    );

    let _installed = Installed;
    let installed = Command::new("dpkg")
        .args(["-i", &deb])
        .output()
        .expect("dpkg -i");
    assert!(
        installed.status.success(),
        "dpkg -i failed: {}{}",
        String::from_utf8_lossy(&installed.stdout),
        String::from_utf8_lossy(&installed.stderr)
    );
    assert!(Path::new(INSTALLED_BIN).is_file());
    assert!(
        run_quiet("getent", &["passwd", "neutron"]),
        "postinst made no neutron user"
    );
    let verify = Command::new("systemd-analyze")
        .args(["verify", UNIT])
        .output()
        .expect("systemd-analyze verify");
    let complaints = String::from_utf8_lossy(&verify.stderr).into_owned();
    assert!(
        !complaints.contains("neutron-dhcp-agent.service:"),
        "systemd-analyze verify {UNIT}:\n{complaints}"
    );

    // Run the installed binary as the unit would: its user, its ambient capabilities only.
    let unit = fs::read_to_string(UNIT).expect("read the unit");
    assert_eq!(unit_value(&unit, "Type"), "notify");
    let user = unit_value(&unit, "User");
    let caps: Vec<String> = unit_value(&unit, "AmbientCapabilities")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let caps = caps.join(",");
    let (net, port) = one_port_network(1);
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let _left = NetworkLeftovers(net.namespace(), net.dhcp_port.tap_name());
    let client = ClientNs::new(&net.bridge_name(), &port.mac);
    let dir = tempfile::tempdir().expect("tempdir");
    let args = write_config(dir.path(), &net);
    // What StateDirectory=/LogsDirectory= give the unit: directories the user owns.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    run(
        "chown",
        &[
            "-R",
            &format!("{user}:{user}"),
            &dir.path().display().to_string(),
        ],
    );
    let notify = NotifySocket::new();
    let child = Command::new("setpriv")
        .args(["--reuid", &user, "--regid", &user, "--init-groups"])
        .args(["--inh-caps", &caps, "--ambient-caps", &caps])
        .arg(INSTALLED_BIN)
        .args(&args)
        .env("NOTIFY_SOCKET", &notify.path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the installed agent under setpriv");
    let mut agent = ChildGuard::new(child, false);
    let ready = notify.expect("READY=1", AGENT_TIMEOUT, |m| m.starts_with("READY=1"));
    let log = dir.path().join("agent.log");
    assert!(
        ready.contains("STATUS=serving 1 networks"),
        "{ready:?}; log:\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    let status = fs::read_to_string(format!("/proc/{}/status", agent.pid())).expect("status");
    let uid = run("id", &["-u", &user]).trim().to_owned();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some(uid.as_str())),
        "the agent does not run as {user}:\n{status}"
    );
    assert_eq!(
        client
            .dhclient(LEASE_TIMEOUT)
            .expect("a lease from the packaged agent"),
        net.expected_lease(&port)
    );
    agent.signal(libc::SIGTERM);
    let exit = agent.wait_timeout(AGENT_TIMEOUT).expect("agent exits");
    assert!(
        exit.success(),
        "exit {exit:?}; log:\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(!netns_exists(&net.namespace()), "namespace left behind");
}
