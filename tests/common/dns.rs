//! DNS helpers for the tests: `dig` in a client namespace, its answer parsed.
#![allow(dead_code)]

use std::process::Command;

/// What `dig` got: the RCODE (`NOERROR`, `REFUSED`, ...; `TIMEOUT` when nothing came back)
/// and the answer section's data, lower-cased and sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dug {
    pub status: String,
    pub answers: Vec<String>,
}

impl Dug {
    pub fn ok(answers: &[&str]) -> Dug {
        let mut answers: Vec<String> = answers.iter().map(|a| a.to_lowercase()).collect();
        answers.sort();
        Dug {
            status: "NOERROR".into(),
            answers,
        }
    }

    pub fn status(status: &str) -> Dug {
        Dug {
            status: status.into(),
            answers: Vec::new(),
        }
    }
}

/// `dig @server name qtype` from inside namespace `ns`; `tcp` asks over TCP. One try, a few
/// seconds: a server that does not answer shows as `TIMEOUT`.
pub fn dig(ns: &str, server: &str, name: &str, qtype: &str, tcp: bool) -> Dug {
    let mut args = vec![
        "netns".to_string(),
        "exec".into(),
        ns.into(),
        "dig".into(),
        format!("@{server}"),
        name.into(),
        qtype.into(),
        "+tries=1".into(),
        "+time=4".into(),
        "+noall".into(),
        "+comments".into(),
        "+answer".into(),
    ];
    if tcp {
        args.push("+tcp".into());
    }
    let out = Command::new("ip")
        .args(&args)
        .output()
        .expect("run dig (bind9-dnsutils)");
    parse_dig(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `dig +noall +comments +answer` output.
pub fn parse_dig(text: &str) -> Dug {
    let mut status = "TIMEOUT".to_string();
    let mut answers = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            status = rest.split(',').next().unwrap_or("").trim().to_string();
            continue;
        }
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        // name ttl class type data
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() >= 5 {
            answers.push(format!("{} {}", fields[3], fields[4..].join(" ")).to_lowercase());
        }
    }
    answers.sort();
    Dug { status, answers }
}

/// `dig -x`'s name for an address.
pub fn arpa(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>().expect("IP literal") {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        std::net::IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s + "ip6.arpa"
        }
    }
}
