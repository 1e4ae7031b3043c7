//! Isolated metadata end to end with the real neutron-metadata-agent (the `neutron` package
//! from PyPI, `scripts/py-venv-neutron.sh`) behind `metadata_proxy_socket`:
//!
//! ```text
//!  VM namespace --curl--> agent's proxy in qdhcp-<net> --UNIX socket--> neutron-metadata-agent
//!      --get_ports over RabbitMQ--> neutron-server peer (tests/peer, oslo.messaging)
//!      --HTTP--> fake Nova metadata API (this test), which echoes X-Instance-ID / X-Tenant-ID
//! ```
//!
//! The metadata agent finds the instance from the network id and client address our proxy
//! sends, so a VM that gets its own port's device_id back proves the headers are right.
//! Needs root and the shared RabbitMQ on 127.0.0.1:5672.

#[path = "common/broker.rs"]
mod broker;
mod common;
#[path = "common/metadata.rs"]
mod mdhelp;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;

use broker::{Peer, TestVhost};
use common::*;
use mdhelp::*;

const SECRET: &str = "ndrs-metadata-secret";

/// A fake Nova metadata API on 127.0.0.1: answers every request with a JSON echo of the
/// identity headers the metadata agent adds.
struct FakeNova {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl FakeNova {
    fn start() -> FakeNova {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind fake nova");
        let addr = listener.local_addr().expect("local addr");
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(nova_answer);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeNova {
            addr,
            _runtime: runtime,
        }
    }
}

async fn nova_answer(
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let body = json!({
        "path": req.uri().path(),
        "instance_id": h("x-instance-id"),
        "tenant_id": h("x-tenant-id"),
        "signature": h("x-instance-id-signature"),
        "forwarded_for": h("x-forwarded-for"),
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// HMAC-SHA256 of the instance id with the shared secret, hex (what Nova checks), computed
/// by Python's hmac in the neutron venv: an independent implementation.
fn signature(instance_id: &str) -> String {
    let py = format!("{}/python", neutron_bin());
    let out = Command::new(py)
        .args([
            "-c",
            "import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
            SECRET,
            instance_id,
        ])
        .output()
        .expect("python hmac");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn vm_gets_its_own_instance_through_the_real_metadata_agent() {
    root_or_skip!();
    require_client_tools();
    let bin = neutron_bin();
    let vhost = TestVhost::for_guest("md");
    let peer = Peer::start(&vhost.url());
    let nova = FakeNova::start();

    let p = |last: u8| Ipv4Addr::new(10, 78, 0, last);
    let mut net = NetSpec::new("10.78.0.0/24", Some(p(1)), p(2));
    let vm_port = net.add_port(PortSpec::vm(p(10)));
    let other = net.add_port(PortSpec::vm(p(11)));
    peer.cmd(json!({"cmd": "set_networks", "networks": [net.to_json()]}));

    // neutron-metadata-agent on its UNIX socket, talking to the peer and the fake Nova.
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("metadata_proxy");
    let ini = dir.path().join("metadata_agent.ini");
    std::fs::write(
        &ini,
        format!(
            "[DEFAULT]\nhost = {host}\nstate_path = {state}\ntransport_url = {url}\n\
             metadata_proxy_socket = {socket}\nnova_metadata_host = 127.0.0.1\n\
             nova_metadata_port = {port}\nmetadata_proxy_shared_secret = {SECRET}\n\
             metadata_workers = 0\ndebug = true\n",
            host = unique_name("mdh"),
            state = dir.path().display(),
            url = vhost.url(),
            socket = socket.display(),
            port = nova.addr.port(),
        ),
    )
    .expect("write metadata_agent.ini");
    let log_path = dir.path().join("metadata-agent.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new(format!("{bin}/neutron-metadata-agent"))
        .arg("--config-file")
        .arg(&ini)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log fd"))
        .stderr(log_file)
        .spawn()
        .expect("start neutron-metadata-agent");
    let _metadata_agent = ChildGuard::new(child, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "neutron-metadata-agent did not create {}\n{}",
            socket.display(),
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Our agent serves the network (standalone) with isolated metadata on that socket.
    let _bridge = LinkGuard::bridge(&net.bridge_name());
    let agent = Agent::start_serving(&metadata_ini(&socket, ""), &[&net]);
    agent.wait_for_log("metadata proxy listening", AGENT_TIMEOUT);

    for port in [&vm_port, &other] {
        let vm = Vm::new(&net, port);
        let (code, body) = vm.curl_until_answer(
            "http://169.254.169.254/openstack/latest/meta_data.json",
            &[],
        );
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(
            code,
            200,
            "{text}\n--- neutron-metadata-agent log ---\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        let echo: serde_json::Value = serde_json::from_str(&text).expect("JSON from fake nova");
        assert_eq!(echo["path"], "/openstack/latest/meta_data.json");
        assert_eq!(echo["instance_id"], port.device_id.as_str(), "{echo}");
        assert_eq!(echo["tenant_id"], net.project_id.as_str(), "{echo}");
        assert_eq!(
            echo["forwarded_for"],
            port.ip.to_string().as_str(),
            "{echo}"
        );
        assert_eq!(echo["signature"], signature(&port.device_id).as_str());
    }

    // A client that fakes another VM's address in X-Forwarded-For still gets its own instance.
    let vm = Vm::new(&net, &other);
    let (code, echo) = vm.curl_json(
        "http://169.254.169.254/latest/meta-data/instance-id",
        &["-H", &format!("X-Forwarded-For: {}", vm_port.ip)],
    );
    assert_eq!(code, 200);
    assert_eq!(echo["instance_id"], other.device_id.as_str(), "{echo}");
    agent.stop();
}
