//! Helpers for the isolated-metadata tests: a stand-in metadata agent on a UNIX socket, a
//! client namespace with a fixed address, curl inside it, and raw TCP from inside it.
//!
//! Included by the metadata test files with `#[path = "common/metadata.rs"]` next to
//! `mod common;`.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use std::thread;

use crate::common::*;

/// Size of the `/big` answer.
pub const BIG: usize = 1 << 20;

/// The `/big` answer's bytes: not a repeating short pattern, so a lost or doubled chunk shows.
pub fn big_body() -> Vec<u8> {
    (0..BIG as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// An HTTP/1.1 server on a UNIX socket that plays neutron-metadata-agent for the proxy tests:
///
/// - `/big`: 1 MiB of [`big_body`];
/// - `/status/<n>`: answers status `n`;
/// - `/slow`: answers after 5 s;
/// - `/stall`: promises 100 kB, sends 1 kB, then nothing;
/// - anything else: a JSON echo of the request (`method`, `uri`, `headers` as
///   `[name, value]` pairs in order, `body`).
///
/// Stops (and removes its socket) on drop.
pub struct FakeMetadataAgent {
    path: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeMetadataAgent {
    pub fn start(path: &Path) -> FakeMetadataAgent {
        let _ = std::fs::remove_file(path);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = {
            let _g = runtime.enter();
            tokio::net::UnixListener::bind(path).expect("bind the fake metadata agent's socket")
        };
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(answer);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeMetadataAgent {
            path: path.to_owned(),
            runtime: Some(runtime),
        }
    }
}

impl Drop for FakeMetadataAgent {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A body that sends one chunk of a longer answer, then nothing ever again.
struct Stalling {
    sent: bool,
}

impl hyper::body::Body for Stalling {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if self.sent {
            return std::task::Poll::Pending;
        }
        self.sent = true;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(vec![
            b'x';
            1000
        ])))))
    }
}

type FakeBody = http_body_util::Either<Full<Bytes>, Stalling>;

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<FakeBody>, Infallible> {
    let full = |b: Vec<u8>| Response::new(http_body_util::Either::Left(Full::new(Bytes::from(b))));
    let path = req.uri().path().to_owned();
    if path == "/big" {
        return Ok(full(big_body()));
    }
    if path == "/stall" {
        // Promises 100 kB, sends 1 kB, then stalls.
        let mut resp = Response::new(http_body_util::Either::Right(Stalling { sent: false }));
        resp.headers_mut().insert(
            "content-length",
            hyper::header::HeaderValue::from_static("100000"),
        );
        return Ok(resp);
    }
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let status = path
        .strip_prefix("/status/")
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(200);
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let headers: Vec<Value> = req
        .headers()
        .iter()
        .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let echo = json!({
        "method": method,
        "uri": uri,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut resp = full(echo.to_string().into_bytes());
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Values of header `name` in an echo, in order.
pub fn echoed(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .filter_map(|h| h[1].as_str().map(str::to_owned))
        .collect()
}

/// A VM: a client namespace on the network's bridge with a fixed address and the route to
/// 169.254.169.254 via the DHCP port that DHCP would hand it.
pub struct Vm {
    pub ns: ClientNs,
    pub ip: Ipv4Addr,
}

impl Vm {
    pub fn new(net: &NetSpec, port: &PortSpec) -> Vm {
        let ns = ClientNs::new(&net.bridge_name(), &port.mac);
        ip(&format!(
            "-n {} addr add {}/{} dev {}",
            ns.ns, port.ip, net.prefix, ns.ifname
        ));
        ip(&format!(
            "-n {} route add 169.254.169.254/32 via {}",
            ns.ns, net.dhcp_port.ip
        ));
        Vm { ns, ip: port.ip }
    }

    /// Turns IPv6 on inside the VM (the harness creates namespaces with it off), so it gets
    /// a link-local address.
    pub fn enable_ipv6(&self) {
        for key in [
            "net.ipv6.conf.all.disable_ipv6=0".to_string(),
            "net.ipv6.conf.default.disable_ipv6=0".to_string(),
            format!("net.ipv6.conf.{}.disable_ipv6=0", self.ns.ifname),
        ] {
            run_quiet("ip", &["netns", "exec", &self.ns.ns, "sysctl", "-qw", &key]);
        }
    }

    /// `curl` inside the VM; returns (HTTP status, body). Status 0: no HTTP answer (curl's
    /// exit code is in the body then).
    pub fn curl(&self, url: &str, extra: &[&str]) -> (u16, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("body");
        let out_s = out.to_str().expect("utf-8 path");
        let mut args = vec![
            "netns",
            "exec",
            &self.ns.ns,
            "curl",
            "-s",
            "-g",
            "-m",
            "10",
            "-o",
            out_s,
            "-w",
            "%{http_code}",
        ];
        args.extend_from_slice(extra);
        args.push(url);
        let o = Command::new("ip").args(&args).output().expect("run curl");
        let code: u16 = String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if code == 0 {
            return (0, format!("curl exit {:?}", o.status.code()).into_bytes());
        }
        (code, std::fs::read(&out).unwrap_or_default())
    }

    /// `curl`'s exit code (28: its own `-m 10` timeout fired).
    pub fn curl_exit(&self, url: &str) -> Option<i32> {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns.ns,
                "curl",
                "-s",
                "-m",
                "10",
                "-o",
                "/dev/null",
                url,
            ])
            .status()
            .expect("run curl")
            .code()
    }

    /// `curl` that must get an answer; returns (status, parsed JSON echo or Null).
    pub fn curl_json(&self, url: &str, extra: &[&str]) -> (u16, Value) {
        let (code, body) = self.curl(url, extra);
        (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Repeats `curl` until it gets any HTTP answer (the proxy starts just after the agent
    /// logs the network as served; an IPv6 address answers once DAD is done).
    pub fn curl_until_answer(&self, url: &str, extra: &[&str]) -> (u16, Vec<u8>) {
        let deadline = std::time::Instant::now() + AGENT_TIMEOUT;
        loop {
            let r = self.curl(url, extra);
            if r.0 != 0 || std::time::Instant::now() > deadline {
                return r;
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `f` on a thread inside the VM's namespace (sockets it opens stay there).
    pub fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.ns.ns);
        thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open namespace");
            // SAFETY: setns on this thread only, with a namespace fd we hold.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread inside the VM")
    }
}

/// The agent config for the metadata tests: [`test_ini`] with isolated metadata on, the
/// proxy socket at `socket`, and `extra` appended (more sections).
pub fn metadata_ini(socket: &Path, extra: &str) -> String {
    test_ini().replace(
        "enable_isolated_metadata = false",
        &format!(
            "enable_isolated_metadata = true\nmetadata_proxy_socket = {}",
            socket.display()
        ),
    ) + extra
}

/// A router interface port on the network's gateway address (makes the subnet not isolated).
pub fn router_port(net: &NetSpec) -> PortSpec {
    PortSpec {
        device_owner: "network:router_interface".into(),
        ..PortSpec::vm(net.gateway.expect("network with a gateway"))
    }
}

/// Wraps a shared value for [`Vm::inside`] closures.
pub fn shared<T>(v: T) -> Arc<T> {
    Arc::new(v)
}
