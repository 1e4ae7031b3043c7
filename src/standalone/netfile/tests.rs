use std::path::Path;

use serde_json::{json, Value};

use super::*;

use crate::testrng::Rng;

/// A UUID-shaped id: the agent accepts no other. `kind` tells ports (`a0`), DHCP ports
/// (`d0`), networks (`e0`) and subnets (`5b`) apart.
fn uuid(kind: &str, net: usize, serial: usize) -> String {
    format!("{kind}{net:06x}-0000-4000-8000-{serial:012x}")
}

fn port(rng: &mut Rng, net: usize, serial: usize) -> Value {
    let mut p = json!({
        "id": uuid("a0", net, serial),
        "mac_address": format!("fa:16:3e:{:02x}:{:02x}:{:02x}", net, serial >> 8, serial & 255),
        "device_owner": "compute:nova",
        "fixed_ips": [{"subnet_id": uuid("5b", net, 0), "ip_address": format!("10.{net}.{}.{}", serial >> 8, serial & 255)}],
    });
    if rng.chance(30) {
        p["extra_dhcp_opts"] =
            json!([{"opt_name": "bootfile-name", "opt_value": "pxe.0", "ip_version": 4}]);
    }
    if rng.chance(20) {
        p["unknown"] = json!({"nested": [1, 2.5, "x\"]}", null]});
    }
    if rng.chance(10) {
        p["binding:host_id"] = json!("me");
    }
    p
}

fn network(rng: &mut Rng, net: usize, ports: usize) -> Value {
    let mut list = vec![json!({
        "id": uuid("d0", net, 0), "mac_address": format!("fa:16:3e:ff:00:{net:02x}"),
        "device_owner": "network:dhcp",
        "fixed_ips": [{"subnet_id": uuid("5b", net, 0), "ip_address": format!("10.{net}.255.2")}],
    })];
    for i in 0..ports {
        list.push(port(rng, net, i));
    }
    json!({
        "id": uuid("e0", net, 0), "mtu": 1450, "admin_state_up": true,
        "subnets": [{"id": uuid("5b", net, 0), "ip_version": 4, "cidr": format!("10.{net}.0.0/16"),
                     "gateway_ip": format!("10.{net}.0.1")}],
        "ports": list,
    })
}

/// A structural edit, as an operator or a script rewriting the file would make.
fn edit(rng: &mut Rng, nets: &mut Vec<Value>, serial: &mut usize) {
    *serial += 1;
    let n = rng.below(nets.len());
    let net_no = nets.len() + 100 + *serial % 100;
    match rng.below(10) {
        0..=2 => {
            let p = port(rng, n, 1000 + *serial);
            let ports = nets[n]["ports"].as_array_mut().unwrap();
            let at = if rng.chance(50) {
                ports.len()
            } else {
                rng.below(ports.len() + 1)
            };
            ports.insert(at, p);
        }
        3 => {
            let ports = nets[n]["ports"].as_array_mut().unwrap();
            if ports.len() > 1 {
                let at = 1 + rng.below(ports.len() - 1);
                ports.remove(at);
            }
        }
        4 => {
            let ports = nets[n]["ports"].as_array_mut().unwrap();
            let at = rng.below(ports.len());
            if rng.chance(50) {
                ports[at]["binding:host_id"] = json!(format!("h{serial}"));
            } else {
                // Another DHCP port, maybe ours (bound to this host).
                ports[at]["device_owner"] = json!("network:dhcp");
                ports[at]["binding:host_id"] = json!(if rng.chance(50) { "me" } else { "x" });
            }
        }
        5 => nets[n]["mtu"] = json!(1400 + rng.below(100)),
        6 => {
            let at = rng.below(nets.len() + 1);
            let ports = rng.below(5);
            nets.insert(at, network(rng, net_no % 250, ports));
        }
        7 if nets.len() > 1 => {
            nets.remove(n);
        }
        8 => {
            // Invalid: a bad MAC, a duplicate network or a network without a DHCP port.
            match rng.below(3) {
                0 => {
                    let ports = nets[n]["ports"].as_array_mut().unwrap();
                    let at = rng.below(ports.len());
                    ports[at]["mac_address"] = json!("zz:00:00:00:00:00");
                }
                1 => {
                    let dup = nets[n].clone();
                    nets.push(dup);
                }
                _ => {
                    nets[n]["ports"].as_array_mut().unwrap().remove(0);
                }
            }
        }
        _ => {
            let ports = nets[n]["ports"].as_array_mut().unwrap();
            ports.reverse();
        }
    }
}

fn render(rng: &mut Rng, nets: &[Value]) -> String {
    let v = Value::Array(nets.to_vec());
    if rng.chance(50) {
        serde_json::to_string(&v).unwrap()
    } else {
        serde_json::to_string_pretty(&v).unwrap()
    }
}

/// Byte-level damage or whitespace: mostly invalid JSON (or UTF-8), sometimes a valid
/// different value.
fn mutate(rng: &mut Rng, text: &str) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    let at = rng.below(b.len());
    match rng.below(7) {
        5 => {
            // "é", whole or cut, inside a string or not.
            let cut = rng.below(3);
            b.splice(at..at, "é".bytes().skip(cut % 2).take(2 - cut / 2));
        }
        6 => {
            // A port id made of several multi-byte characters.
            let text = text.replacen("\"a0", "\"aé€", 1);
            b = text.into_bytes();
        }
        0 => {
            b.insert(at, b' ');
        }
        1 => {
            b.insert(at, b'\n');
        }
        2 => {
            b.remove(at);
        }
        3 => {
            let chars = b",:[]{}\"0a\\";
            b.insert(at, chars[rng.below(chars.len())]);
        }
        _ => {
            if b[at].is_ascii_digit() {
                b[at] = b'0' + (b[at] - b'0' + 1) % 10;
            }
        }
    }
    b
}

/// What a reload must leave: the networks of a full parse, plus the running version of each
/// network the new text refuses as a whole.
fn with_kept(full: &NetworksFile, before: &[DesiredNetwork]) -> Vec<DesiredNetwork> {
    let mut out = full.networks().to_vec();
    for r in full.rejected() {
        let Some(id) = &r.network else { continue };
        if out.iter().any(|d| &d.network.id == id) {
            continue;
        }
        out.extend(before.iter().find(|d| &d.network.id == id).cloned());
    }
    out
}

fn check(file: &mut NetworksFile, bytes: Vec<u8>, path: &Path) -> Option<Reparsed> {
    let before = file.networks().to_vec();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let parsed = NetworksFile::parse(bytes.clone(), path, "me");
    let full = parsed.as_ref().map(|f| with_kept(f, &before));
    match std::str::from_utf8(&bytes) {
        Ok(valid) => {
            let slow = standalone::parse(valid, path, "me");
            match (&parsed, &slow) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(
                        a.networks(),
                        &b.networks[..],
                        "typed and Value parses differ"
                    );
                    let errors = |r: &[standalone::Rejected]| -> Vec<String> {
                        r.iter().map(|r| r.error.to_string()).collect()
                    };
                    assert_eq!(errors(a.rejected()), errors(&b.rejected));
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                _ => panic!(
                    "typed {:?} vs Value {:?} for {text}",
                    full.is_ok(),
                    slow.is_ok()
                ),
            }
        }
        Err(_) => {
            let e = full.as_ref().err().map(ToString::to_string);
            let want = "cannot read networks file nets.json: stream did not contain valid UTF-8";
            assert_eq!(e.as_deref(), Some(want));
        }
    }
    let inc = file.update(bytes.clone());
    match (inc, full) {
        (Ok(how), Ok(nets)) => {
            assert_eq!(file.networks(), &nets[..], "incremental differs for {text}");
            assert_eq!(file.text, bytes);
            Some(how)
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string());
            assert_eq!(
                file.networks(),
                &before[..],
                "a rejected file changed the state"
            );
            None
        }
        (a, b) => panic!(
            "incremental {:?} vs full {:?} for {text}",
            a.is_ok(),
            b.is_ok()
        ),
    }
}

#[test]
fn incremental_reload_equals_full_parse() {
    let path = Path::new("nets.json");
    let (mut ports, mut networks, mut full, mut errors) = (0, 0, 0, 0);
    for seed in 1..=30u64 {
        let mut rng = Rng::star(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut nets: Vec<Value> = (0..1 + rng.below(4))
            .map(|i| {
                let ports = rng.below(12);
                network(&mut rng, i, ports)
            })
            .collect();
        let text = render(&mut rng, &nets);
        let mut file = NetworksFile::parse(text, path, "me").unwrap();
        let mut serial = 0;
        for _ in 0..60 {
            let mut next = nets.clone();
            edit(&mut rng, &mut next, &mut serial);
            let mut text = render(&mut rng, &next).into_bytes();
            if rng.chance(25) {
                text = mutate(&mut rng, std::str::from_utf8(&text).unwrap());
            }
            match check(&mut file, text, path) {
                Some(Reparsed::Ports(_)) => ports += 1,
                Some(Reparsed::Networks(_)) => networks += 1,
                Some(Reparsed::Full) => full += 1,
                Some(Reparsed::Unchanged) => {}
                None => errors += 1,
            }
            // Keep editing from a valid state most of the time.
            if file.networks().len() == next.len() || rng.chance(30) {
                let ok = NetworksFile::parse(render(&mut rng, &next), path, "me")
                    .is_ok_and(|f| f.rejected().is_empty());
                if ok {
                    nets = next;
                }
            }
        }
    }
    // Every path was taken often enough to mean something (a full parse is the reference
    // itself, so it needs no count).
    assert!(
        ports > 100 && networks > 50 && errors > 50,
        "ports {ports}, networks {networks}, full {full}, errors {errors}"
    );
}

#[test]
fn appending_a_port_parses_only_that_port_and_shares_the_rest() {
    let mut rng = Rng::star(7);
    let mut nets = vec![network(&mut rng, 1, 50), network(&mut rng, 2, 5)];
    let path = Path::new("f");
    let mut file = NetworksFile::parse(serde_json::to_string(&nets).unwrap(), path, "me").unwrap();
    let before = file.networks().to_vec();
    let p = port(&mut rng, 2, 999);
    nets[1]["ports"].as_array_mut().unwrap().push(p);
    let how = file.update(serde_json::to_string(&nets).unwrap()).unwrap();
    assert_eq!(how, Reparsed::Ports(1));
    let after = file.networks();
    assert_eq!(after[0], before[0]);
    assert!(Arc::ptr_eq(
        &after[0].network.ports[3],
        &before[0].network.ports[3]
    ));
    assert!(Arc::ptr_eq(
        &after[1].network.ports[2],
        &before[1].network.ports[2]
    ));
    assert_eq!(after[1].network.ports.len(), 7);
    assert_eq!(file.update(file.text.clone()).unwrap(), Reparsed::Unchanged);
}

#[test]
fn errors_keep_the_state_and_match_the_full_parse() {
    let mut rng = Rng::star(9);
    let nets = vec![network(&mut rng, 1, 3)];
    let path = Path::new("nets.json");
    let text = serde_json::to_string(&nets).unwrap();
    let mut file = NetworksFile::parse(text.clone(), path, "me").unwrap();
    let before = file.networks().to_vec();
    // A malformed port refuses its network, which keeps its running configuration.
    let bad = text.replace("10.1.0.2\"", "10.1.0.300\"");
    assert_eq!(file.update(bad).unwrap(), Reparsed::Full);
    let e = file.rejected()[0].error.to_string();
    let port = uuid("a0", 1, 2);
    assert!(
        e.contains("nets.json") && e.contains("entry 0") && e.contains(&port),
        "{e}"
    );
    assert_eq!(file.networks(), &before[..]);
    // A port outside its subnet is refused alone: the network is served without it.
    let outside = text.replace("10.1.0.2\"", "10.99.0.2\"");
    file.update(outside).unwrap();
    let e = file.rejected()[0].error.to_string();
    assert!(e.contains(&port) && e.contains("outside its subnet"), "{e}");
    assert_eq!(file.networks()[0].network.ports.len(), 3);
    assert!(file.networks()[0].network.port(&port).is_none());
    let dup = format!("[{0},{0}]", &text[1..text.len() - 1]);
    file.update(dup).unwrap();
    assert!(matches!(
        file.rejected()[0].error,
        StandaloneError::Duplicate { .. }
    ));
    // Fields the agent does not read may hold what serde_json's Value rejects: still an error.
    let odd = text.replacen("\"mtu\"", "\"x\":\"\\ud800\",\"mtu\"", 1);
    assert!(matches!(
        file.update(odd),
        Err(StandaloneError::Json { .. })
    ));
}

#[test]
fn reload_reads_the_file_and_finds_the_change_across_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nets.json");
    let mut rng = Rng::star(11);
    // Over 64 KB, so the change lies in a later block than the first.
    let mut nets = vec![network(&mut rng, 1, 1200), network(&mut rng, 2, 3)];
    std::fs::write(&path, serde_json::to_string(&nets).unwrap()).unwrap();
    let mut file = NetworksFile::load(&path, "me").unwrap();
    assert!(file.text.len() > 3 * (64 << 10));
    assert_eq!(file.reload().unwrap(), Reparsed::Unchanged);
    for round in 0..4 {
        match round {
            0 => nets[1]["ports"]
                .as_array_mut()
                .unwrap()
                .push(port(&mut rng, 2, 50)),
            1 => nets[0]["ports"]
                .as_array_mut()
                .unwrap()
                .insert(900, port(&mut rng, 1, 9000)),
            2 => {
                nets[0]["ports"].as_array_mut().unwrap().truncate(100);
            }
            _ => nets[0]["mtu"] = json!(1300),
        }
        let text = serde_json::to_string(&nets).unwrap();
        std::fs::write(&path, &text).unwrap();
        file.reload().unwrap();
        let full = NetworksFile::parse(text.clone(), &path, "me").unwrap();
        assert_eq!(file.networks(), full.networks(), "round {round}");
        assert_eq!(file.text, text.as_bytes());
    }
    assert_eq!(file.take_replaced().len(), 5);
}

#[test]
fn a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nets.json");
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Without O_NONBLOCK this open(2) would wait forever: nobody writes.
    let e = NetworksFile::load(&path, "me").err().unwrap();
    assert!(
        matches!(e, StandaloneError::NotAFile { kind: "a FIFO", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("not a regular file"), "{e}");
    // On reload, likewise, and the parsed state stays.
    let good = dir.path().join("good.json");
    std::fs::write(&good, "[]").unwrap();
    let mut file = NetworksFile::load(&good, "me").unwrap();
    std::fs::remove_file(&good).unwrap();
    std::fs::rename(&path, &good).unwrap();
    assert!(matches!(
        file.reload(),
        Err(StandaloneError::NotAFile { .. })
    ));
}
