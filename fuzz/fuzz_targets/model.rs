//! Fuzz target: the model's parsing and validation of a network dict (`Network::from_json`,
//! `Network::validate`), as the standalone file and neutron-server deliver it.
//!
//! Arbitrary JSON: nothing panics, and whatever validation accepts is safe to build host state
//! from: every id a UUID (so the namespace and the state path are one plain name), every fixed
//! IP of a remaining port inside its subnet.
//!
//! Run with `cargo +nightly fuzz run model` from the crate root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use neutron_dhcp::model::{is_uuid_like, Network};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(mut network) = Network::from_json(&value) else {
        return;
    };
    let Ok((id, refused)) = network.validate() else {
        return;
    };
    assert!(is_uuid_like(id.as_str()));
    assert_eq!(std::path::Path::new(id.as_str()).components().count(), 1);
    assert!(!id.namespace().contains(['/', '\0']));
    for e in &refused {
        assert!(!e.to_string().is_empty());
    }
    for s in network.subnets.iter().chain(&network.non_local_subnets) {
        assert!(is_uuid_like(&s.id));
    }
    for p in &network.ports {
        assert!(is_uuid_like(&p.id));
        for f in &p.fixed_ips {
            if let Some(s) = network.subnet(&f.subnet_id) {
                assert!(s.cidr.contains(f.ip_address));
            }
        }
    }
    assert!(network.check().is_ok());
});
