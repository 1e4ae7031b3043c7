//! Fuzz target: the networks file's scanner and incremental re-parse (`jsonscan`, `netfile`).
//!
//! The input is two files separated by the first NUL byte: the first is parsed, then replaced
//! by the second as a reload would. Nothing may panic, and the reload must leave exactly what
//! a full parse of the second file gives (plus the running version of each network that file
//! refuses as a whole), or, when the second file is refused, the first file's networks.
//!
//! Run with `cargo +nightly fuzz run netfile` from the crate root.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use neutron_dhcp::standalone::jsonscan;
use neutron_dhcp::standalone::netfile::NetworksFile;
use neutron_dhcp::agent::DesiredNetwork;

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

fuzz_target!(|data: &[u8]| {
    let path = Path::new("networks.json");
    let (first, second) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, data),
    };
    // The scanner alone, on arbitrary bytes.
    let open = jsonscan::skip_ws(second, 0);
    if let Some((content, items)) = jsonscan::array(second, open) {
        assert!(content.end <= second.len());
        for r in items {
            assert!(r.start <= r.end && r.end <= second.len());
            let _ = jsonscan::member(second, r, "ports");
        }
    }
    let _ = jsonscan::value_end(second, open);
    let Ok(mut file) = NetworksFile::parse(first.to_vec(), path, "me") else {
        return;
    };
    let before = file.networks().to_vec();
    let full = NetworksFile::parse(second.to_vec(), path, "me");
    match (file.update(second.to_vec()), full) {
        (Ok(_), Ok(full)) => assert_eq!(file.networks(), &expected(&full, &before)[..]),
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string());
            assert_eq!(file.networks(), &before[..]);
        }
        (a, b) => panic!("reload {:?} vs full parse {:?}", a.is_ok(), b.is_ok()),
    }
    for d in file.networks() {
        // Whatever was accepted is valid and names its network with a UUID.
        let id = d.network.check().expect("an accepted network passes the check");
        assert!(!id.namespace().contains('/'));
        assert!(d.own_port().is_some());
    }
});
