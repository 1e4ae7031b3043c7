//! `neutron-dhcp-agent status|networks|explain`: a client of the running agent's status
//! endpoint, found through `[agent] status_listen` in the same configuration files. Tables for
//! people by default, the endpoint's JSON with `--json`.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// The running agent: mode, readiness, health, networks served and failed.
    Status {
        /// Print the endpoint's JSON.
        #[arg(long)]
        json: bool,
    },
    /// The networks the running agent serves; with an id, that network in detail.
    Networks {
        /// A network id.
        id: Option<String>,
        /// Print the endpoint's JSON.
        #[arg(long)]
        json: bool,
    },
    /// The reply the running agent would send a client right now, option by option, with
    /// where each value comes from; or why it would not answer.
    Explain {
        /// The network id.
        #[arg(long)]
        network: String,
        /// The client's MAC address.
        #[arg(long)]
        mac: String,
        /// The client identifier (option 61) the client sends, in hex (`01fa163e...`).
        #[arg(long = "client-id")]
        client_id: Option<String>,
        /// DHCPv6 instead of DHCPv4.
        #[arg(long)]
        v6: bool,
        /// DHCPv6: the client's DUID in hex (default: the DUID-LL of its MAC).
        #[arg(long)]
        duid: Option<String>,
        /// Print the endpoint's JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "the status endpoint is off: set [agent] status_listen = HOST:PORT in the agent's \
         configuration (and pass the same --config-file options here)"
    )]
    NotConfigured,
    #[error(
        "cannot reach the agent's status endpoint at {addr}: {reason} (is the agent running?)"
    )]
    Connect { addr: SocketAddr, reason: String },
    #[error("the status endpoint at {addr} answered {path} with {code}: {body}")]
    Refused {
        addr: SocketAddr,
        path: String,
        code: u16,
        body: String,
    },
    #[error("the status endpoint's answer to {path} is not JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("cannot start the client: {0}")]
    Runtime(std::io::Error),
}

/// Runs one subcommand against the endpoint at `listen`, printing to stdout.
pub fn run(command: &Command, listen: Option<SocketAddr>) -> Result<(), CliError> {
    let addr = connect_addr(listen.ok_or(CliError::NotConfigured)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let (path, json) = match command {
        Command::Status { json } => ("/v1/status".to_owned(), *json),
        Command::Networks { id: None, json } => ("/v1/networks".to_owned(), *json),
        Command::Networks { id: Some(id), json } => (format!("/v1/networks/{}", encode(id)), *json),
        Command::Explain {
            network,
            mac,
            client_id,
            v6,
            duid,
            json,
        } => {
            let mut p = format!(
                "/v1/explain?network={}&mac={}",
                encode(network),
                encode(mac)
            );
            if let Some(c) = client_id {
                let _ = write!(p, "&client_id={}", encode(c));
            }
            if *v6 {
                p.push_str("&family=v6");
            }
            if let Some(d) = duid {
                let _ = write!(p, "&duid={}", encode(d));
            }
            (p, *json)
        }
    };
    // /v1/explain answers 404 with a document saying why there would be no answer: printed
    // like any other.
    let explain = matches!(command, Command::Explain { .. });
    let (code, body) = runtime.block_on(get(addr, &path))?;
    if !(code == 200 || explain && code == 404) {
        return Err(CliError::Refused {
            addr,
            path,
            code,
            body: body.trim().to_owned(),
        });
    }
    let doc: Value = serde_json::from_str(&body).map_err(|source| CliError::Json {
        path: path.clone(),
        source,
    })?;
    let text = if json {
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s
    } else {
        match command {
            Command::Status { .. } => render_status(&doc),
            Command::Networks { id: None, .. } => render_networks(&doc),
            Command::Networks { id: Some(_), .. } => render_network(&doc),
            Command::Explain { .. } => super::explain::render(&doc),
        }
    };
    print!("{text}");
    Ok(())
}

/// A wildcard listen address is reached on loopback.
fn connect_addr(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

/// Percent-encodes a query or path value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One GET; the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), CliError> {
    let fail = |e: &dyn std::fmt::Display| CliError::Connect {
        addr,
        reason: e.to_string(),
    };
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| fail(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(&e))?;
    let driver = tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| fail(&e))?;
    let resp = sender.send_request(req).await.map_err(|e| fail(&e))?;
    let code = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(&e))?
        .to_bytes();
    driver.abort();
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// The items of a JSON list as cells (nothing for a missing list).
fn list(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(s).collect()
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        other => other.to_string(),
    }
}

fn time(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), super::explain::utc)
}

fn render_status(doc: &Value) -> String {
    let mut out = String::new();
    let ready = match doc["not_ready_reason"].as_str() {
        Some(why) => format!("no ({why})"),
        None => s(&doc["ready"]),
    };
    let rows = [
        ("version", s(&doc["version"])),
        ("mode", s(&doc["mode"])),
        ("ready", ready),
        ("healthy", s(&doc["healthy"])),
        ("broker connected", s(&doc["broker_connected"])),
        ("uptime", format!("{} s", s(&doc["uptime_seconds"]))),
        ("networks served", s(&doc["networks_served"])),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<18}{v}");
    }
    let failed = doc["networks_failed"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let _ = writeln!(out, "{:<18}{}", "networks failed", failed.len());
    for f in failed {
        let _ = writeln!(out, "  {}: {}", s(&f["id"]), s(&f["error"]));
    }
    out
}

/// Rows of cells as aligned columns.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, v) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(v);
            } else {
                let _ = write!(line, "{v:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn dhcp_cell(c: &Value) -> String {
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    format!(
        "{}/{}/{}",
        n("received"),
        n("replied"),
        n("ignored") + n("malformed")
    )
}

fn render_networks(doc: &Value) -> String {
    let mut rows = vec![[
        "NETWORK",
        "NAMESPACE",
        "DEVICE",
        "ADDRESSES",
        "PORTS",
        "BOUND",
        "V4 RECV/REPLIED/DROPPED",
        "V6 RECV/REPLIED/DROPPED",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect::<Vec<_>>()];
    for n in doc.as_array().into_iter().flatten() {
        let addrs = list(&n["addresses"]);
        rows.push(vec![
            s(&n["id"]),
            s(&n["namespace"]),
            s(&n["device"]),
            if addrs.is_empty() {
                "-".into()
            } else {
                addrs.join(",")
            },
            s(&n["ports"]),
            s(&n["ports_bound_v4"]),
            dhcp_cell(&n["dhcp"]["v4"]),
            dhcp_cell(&n["dhcp"]["v6"]),
        ]);
    }
    if rows.len() == 1 {
        return "no networks served\n".into();
    }
    table(&rows)
}

fn render_network(n: &Value) -> String {
    let mut out = String::new();
    let addrs = list(&n["addresses"]);
    let rows = [
        ("network", s(&n["id"])),
        ("namespace", s(&n["namespace"])),
        ("device", s(&n["device"])),
        ("plumbing verified", s(&n["plumbing_verified"])),
        ("DHCP port", s(&n["dhcp_port"])),
        ("DHCP port MAC", s(&n["dhcp_port_mac"])),
        ("addresses", addrs.join(" ")),
        ("MTU", s(&n["mtu"])),
        ("ports", s(&n["ports"])),
        ("bound (IPv4)", s(&n["ports_bound_v4"])),
        ("serves DHCPv6", s(&n["serves_v6"])),
        ("last change", time(&n["last_change_unix"])),
        ("last packet", time(&n["last_packet_unix"])),
        ("last error", s(&n["last_error"])),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<20}{v}");
    }
    let _ = writeln!(out, "subnets:");
    for sub in n["subnets"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {}  {}  dhcp {}  gateway {}",
            s(&sub["id"]),
            s(&sub["cidr"]),
            s(&sub["enable_dhcp"]),
            s(&sub["gateway_ip"])
        );
    }
    let _ = writeln!(out, "DHCP packets:");
    for fam in ["v4", "v6"] {
        let c = &n["dhcp"][fam];
        let _ = writeln!(
            out,
            "  {fam}: received {}, replied {}, ignored {} (unknown MAC {}, other server {}), malformed {}, send errors {}",
            s(&c["received"]),
            s(&c["replied"]),
            s(&c["ignored"]),
            s(&c["unknown_mac"]),
            s(&c["other_server"]),
            s(&c["malformed"]),
            s(&c["send_errors"])
        );
    }
    if let Some(seen) = n["last_seen"].as_array() {
        let _ = writeln!(out, "last seen clients (newest first):");
        for c in seen {
            let _ = writeln!(
                out,
                "  {}  {}  {}  {}",
                c["time_unix"]
                    .as_f64()
                    .map_or_else(|| "-".into(), super::explain::utc),
                s(&c["mac"]),
                s(&c["message"]),
                s(&c["result"])
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encoded_for_the_query() {
        assert_eq!(encode("fa:16:3e:00:00:01"), "fa:16:3e:00:00:01");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn wildcard_listen_is_reached_on_loopback() {
        let a: SocketAddr = "0.0.0.0:9733".parse().unwrap();
        assert_eq!(connect_addr(a), "127.0.0.1:9733".parse().unwrap());
        let b: SocketAddr = "10.1.2.3:9733".parse().unwrap();
        assert_eq!(connect_addr(b), b);
    }
}
