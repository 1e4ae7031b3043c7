//! Bounded random-input tests of the control plane's parsers, the `cargo test` side of the
//! fuzz targets in `fuzz/` (`netfile`, `oslo`, `model`): a fixed number of inputs from a fixed
//! seed, so a run is fast and a failure reproduces. Nothing may panic, and what is accepted
//! must be what the validation promises.
//!
//! No root needed.

#[path = "common/rng.rs"]
mod rng;

use std::path::Path;

use serde_json::{json, Value};

use neutron_dhcp::agent::DesiredNetwork;
use neutron_dhcp::device::plan::PlumbPlan;
use neutron_dhcp::device::DeviceConfig;
use neutron_dhcp::model::{is_uuid_like, Network};
use neutron_dhcp::neutron::events::parse_cast;
use neutron_dhcp::rpc::oslo::{self, Message};
use neutron_dhcp::standalone::jsonscan;
use neutron_dhcp::standalone::netfile::NetworksFile;
use rng::XorShift;

/// 1 to 6 byte-level edits: a random byte, a JSON structural character, a removal, a cut, or
/// a copy of another stretch of the text.
fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        if b.is_empty() {
            break;
        }
        let at = rng.below(b.len());
        match rng.below(6) {
            0 => b[at] = rng.next() as u8,
            1 => b.insert(at, *rng.pick(b"{}[]\",:\\0a-./ \n")),
            2 => {
                b.remove(at);
            }
            3 => b.truncate(at),
            4 => {
                let from = rng.below(b.len());
                let len = rng.below(40).min(b.len() - from);
                let piece: Vec<u8> = b[from..from + len].to_vec();
                b.splice(at..at, piece);
            }
            _ => {
                let end = (at + rng.below(20)).min(b.len());
                b.drain(at..end);
            }
        }
    }
    b
}

/// What a reload must leave: a full parse of the new text plus the running version of each
/// network it refuses as a whole.
fn expected(full: &NetworksFile, before: &[DesiredNetwork]) -> Vec<DesiredNetwork> {
    let mut out = full.networks().to_vec();
    for r in full.rejected() {
        let Some(id) = &r.network else { continue };
        if !out.iter().any(|d| &d.network.id == id) {
            out.extend(before.iter().find(|d| &d.network.id == id).cloned());
        }
    }
    out
}

/// Random damage to the sample networks file: the scanner never panics, a reload equals a
/// full parse, a refused file keeps the state, and everything accepted passes the model check.
#[test]
fn damaged_networks_files() {
    let path = Path::new("networks.json");
    let seed = include_str!("../config/networks.json").as_bytes();
    let mut rng = XorShift::star(0x5eed_0001);
    let (mut accepted, mut refused_entries, mut errors) = (0, 0, 0);
    for _ in 0..3000 {
        let mut file = NetworksFile::parse(seed.to_vec(), path, "me").expect("sample parses");
        let before = file.networks().to_vec();
        let bytes = mutate(&mut rng, seed);
        let open = jsonscan::skip_ws(&bytes, 0);
        if let Some((content, items)) = jsonscan::array(&bytes, open) {
            assert!(content.end <= bytes.len());
            for r in items {
                let _ = jsonscan::member(&bytes, r, "ports");
            }
        }
        let full = NetworksFile::parse(bytes.clone(), path, "me");
        match (file.update(bytes), full) {
            (Ok(_), Ok(full)) => {
                assert_eq!(file.networks(), &expected(&full, &before)[..]);
                accepted += 1;
                refused_entries += full.rejected().len();
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string());
                assert_eq!(file.networks(), &before[..]);
                errors += 1;
            }
            (a, b) => panic!("reload {:?} vs full parse {:?}", a.is_ok(), b.is_ok()),
        }
        for d in file.networks() {
            d.network.check().expect("accepted networks pass the check");
            assert!(d.own_port().is_some());
        }
    }
    assert!(
        accepted > 100 && refused_entries > 20 && errors > 100,
        "accepted {accepted}, refused entries {refused_entries}, errors {errors}"
    );
}

const UUIDS: [&str; 4] = [
    "6f1a5d2e-9c3b-4e7a-8d21-3b5c7e9f0a11",
    "a1b2c3d4-1111-4a5b-9c6d-7e8f9a0b1c2d",
    "0d4c6a1e3b2f4c8d9e7a1f2b3c4d5e6f",
    "1E5D7B2F-4C3A-4D9E-8F1B-2A3C4D5E6F70",
];
const BAD_IDS: [&str; 8] = [
    "..",
    ".",
    "x/../../../y",
    "",
    "6f1a5d2e-9c3b-4e7a-8d21-3b5c7e9f0a1/",
    "6f1a5d2e-9c3b-4e7a-8d21-3b5c7e9f0a11 ",
    "qdhcp",
    "6f1a5d2e_9c3b_4e7a_8d21_3b5c7e9f0a11",
];

fn id(rng: &mut XorShift) -> Value {
    match rng.below(10) {
        0 => json!(rng.pick(&BAD_IDS)),
        1 => json!(7),
        _ => json!(rng.pick(&UUIDS)),
    }
}

fn address(rng: &mut XorShift) -> Value {
    json!(rng.pick(&[
        "10.0.0.2",
        "10.0.0.0",
        "10.0.0.255",
        "10.0.1.9",
        "10.198.5.5",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "fd00::2",
        "fd00::",
        "fe80::1",
        "ff02::1",
        "10.0.0.300",
    ]))
}

/// A network dict assembled from valid and hostile pieces.
fn network(rng: &mut XorShift) -> Value {
    let subnets: Vec<Value> = (0..rng.below(4))
        .map(|_| {
            json!({
                "id": id(rng),
                "ip_version": rng.pick(&[4, 6, 4, 5]),
                "cidr": rng.pick(&["10.0.0.0/24", "10.0.0.5/24", "224.0.0.0/24", "fd00::/64",
                                   "10.0.0.0/31", "10.0.0.0/32", "0.0.0.0/0", "fd00::1/128",
                                   "10.0.0.0/33"]),
                "gateway_ip": if rng.below(4) == 0 { Value::Null } else { address(rng) },
                "enable_dhcp": rng.below(5) != 0,
                "host_routes": if rng.below(3) == 0 {
                    json!([{"destination": "192.168.0.0/24", "nexthop": address(rng)}])
                } else {
                    json!([])
                },
            })
        })
        .collect();
    let subnet_ids: Vec<Value> = subnets.iter().map(|s| s["id"].clone()).collect();
    let ports: Vec<Value> = (0..rng.below(6))
        .map(|i| {
            let fixed: Vec<Value> = (0..rng.below(3))
                .map(|_| {
                    let subnet = if subnet_ids.is_empty() || rng.below(6) == 0 {
                        id(rng)
                    } else {
                        rng.pick(&subnet_ids).clone()
                    };
                    json!({"subnet_id": subnet, "ip_address": address(rng)})
                })
                .collect();
            json!({
                "id": id(rng),
                "mac_address": format!("fa:16:3e:00:00:{i:02x}"),
                "device_owner": rng.pick(&["network:dhcp", "compute:nova", "network:router_interface"]),
                "fixed_ips": fixed,
            })
        })
        .collect();
    json!({
        "id": id(rng),
        "mtu": rng.pick(&[json!(null), json!(0), json!(67), json!(68), json!(1279), json!(1280),
                          json!(65535), json!(65536), json!(-1), json!("1500")]),
        "admin_state_up": true,
        "subnets": subnets,
        "ports": ports,
    })
}

/// Random network dicts: parsing and validation never panic; what validation accepts has
/// UUID ids only (one plain path component, a namespace name without `/`), every remaining
/// port's fixed IPs inside their subnets, and plumbing plans with device names of its ids.
#[test]
fn random_network_dicts() {
    let mut rng = XorShift::star(0x5eed_0002);
    let (mut valid, mut refused) = (0, 0);
    for _ in 0..5000 {
        let value = network(&mut rng);
        let Ok(mut net) = Network::from_json(&value) else {
            refused += 1;
            continue;
        };
        let Ok((nid, _)) = net.validate() else {
            refused += 1;
            continue;
        };
        valid += 1;
        assert!(is_uuid_like(nid.as_str()));
        assert_eq!(Path::new(nid.as_str()).components().count(), 1);
        assert!(!nid.namespace().contains('/'));
        net.check().expect("validated network passes the check");
        for p in &net.ports {
            assert!(is_uuid_like(&p.id), "{}", p.id);
            for f in &p.fixed_ips {
                if let Some(s) = net.subnet(&f.subnet_id) {
                    assert!(s.cidr.contains(f.ip_address), "{value}");
                }
            }
            let plan = PlumbPlan::for_network(&net, p, &DeviceConfig::default());
            assert_eq!(plan.namespace(), nid.namespace());
        }
    }
    assert!(
        valid > 200 && refused > 200,
        "valid {valid}, refused {refused}"
    );
}

/// Damaged oslo.messaging bodies (the recorded frames, mutated) through the envelope decoder
/// and, for requests, the Neutron cast parser: no panic; decoded requests re-encode.
#[test]
fn damaged_oslo_frames_through_the_cast_parser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captures");
    let mut bodies = Vec::new();
    for name in ["oslo-default.jsonl", "oslo-quorum.jsonl"] {
        let text = std::fs::read_to_string(dir.join(name)).expect("capture file");
        for line in text.lines() {
            let frame: Value = serde_json::from_str(line).expect("capture line");
            if let Some(body) = frame["body"].as_str() {
                bodies.push(body.as_bytes().to_vec());
            }
        }
    }
    assert!(!bodies.is_empty());
    let mut rng = XorShift::star(0x5eed_0003);
    let (mut requests, mut casts) = (0, 0);
    for i in 0..4000 {
        let seed = &bodies[i % bodies.len()];
        let b = mutate(&mut rng, seed);
        match oslo::decode(&b) {
            Ok(Message::Request(r)) => {
                requests += 1;
                let encoded = r.encode().expect("re-encodes");
                assert!(oslo::decode(&encoded).is_ok());
                if parse_cast(&r.method, &r.args).is_ok() {
                    casts += 1;
                }
            }
            Ok(Message::Reply(r)) => drop(r.encode()),
            Ok(Message::Notification(_)) | Err(_) => {}
        }
    }
    assert!(requests > 50, "requests {requests}, casts {casts}");
}
