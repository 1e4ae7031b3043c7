//! A private, throw-away Open vSwitch for a test: `scripts/ovs-test-env.sh` in userspace mode
//! (`ovs-vswitchd --disable-system`, a bridge with `datapath_type=netdev`), its database,
//! sockets and logs in a temp dir of its own, ovsdb-server also on a free TCP port of
//! 127.0.0.1.
//!
//! Declared from a test file with `#[path = "common/ovs.rs"] mod ovs;` next to `mod common;`
//! (it uses `crate::common`). Needs root (`root_or_skip!` first).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::unique_name;

/// The script that installs, starts and stops the environment.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ovs-test-env.sh");

/// One running Open vSwitch with one bridge. Stopped on drop; one kept in a `static` is never
/// dropped, so its owner stops it at exit ([`OvsEnv::stop`]), and the script's watchdog stops
/// it anyway once this process is gone (also when it was killed).
pub struct OvsEnv {
    pub dir: PathBuf,
    /// `unix:<dir>/db.sock`
    pub unix: String,
    /// `tcp:127.0.0.1:<port>`
    pub tcp: String,
    pub bridge: String,
}

fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr()
        .expect("a bound socket has an address")
        .port()
}

impl OvsEnv {
    /// Starts one in a fresh temp dir `<dir_prefix>…` with a bridge `<bridge_prefix>…`
    /// (`bridge_prefix` at most 6 characters: see [`unique_name`]); panics with the script's
    /// output when it cannot.
    pub fn start(dir_prefix: &str, bridge_prefix: &str) -> OvsEnv {
        let dir = tempfile::Builder::new()
            .prefix(dir_prefix)
            .tempdir()
            .expect("tempdir")
            .keep();
        let bridge = unique_name(bridge_prefix);
        let port = free_tcp_port().to_string();
        let pid = std::process::id().to_string();
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("start")
            .arg(&dir)
            .args(["--bridge", &bridge, "--tcp-port", &port, "--owner", &pid])
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/ovs-test-env.sh");
        assert!(
            out.status.success(),
            "cannot start the test Open vSwitch with `{SCRIPT} start {}` ({}):\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("ovs-test-env.sh printed no {key}: {text}"))
                .to_owned()
        };
        OvsEnv {
            unix: field("OVSDB_UNIX="),
            tcp: field("OVSDB_TCP="),
            bridge: field("BRIDGE="),
            dir,
        }
    }

    /// Stops both daemons and removes the directory; idempotent, silent (also used from an
    /// atexit hook and from `drop`).
    pub fn stop(&self) {
        let _ = Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// `ovs-vsctl ARGS` against this database: trimmed stdout, or stderr when it fails.
    pub fn vsctl_try(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ovs-vsctl")
            .arg(format!("--db={}", self.unix))
            .arg("--timeout=10")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ovs-vsctl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// [`OvsEnv::vsctl_try`] that panics when ovs-vsctl fails.
    pub fn vsctl(&self, args: &[&str]) -> String {
        self.vsctl_try(args)
            .unwrap_or_else(|e| panic!("ovs-vsctl {args:?} failed: {e}"))
    }
}

impl Drop for OvsEnv {
    fn drop(&mut self) {
        self.stop();
    }
}
