//! Fuzz target: the oslo.messaging envelope decoder and the casts built from it.
//!
//! Arbitrary bytes as an AMQP message body: decoding never panics; a decoded request or reply
//! re-encodes; a request's method and args go through the Neutron cast parser, which either
//! refuses them or yields an event whose ids are checked by the dispatcher.
//!
//! Run with `cargo +nightly fuzz run oslo` from the crate root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use neutron_dhcp::neutron::events::parse_cast;
use neutron_dhcp::rpc::oslo::{self, Message};

fuzz_target!(|data: &[u8]| {
    match oslo::decode(data) {
        Ok(Message::Request(r)) => {
            let encoded = r.encode().expect("a decoded request re-encodes");
            assert!(oslo::decode(&encoded).is_ok(), "a re-encoded request decodes");
            let _ = parse_cast(&r.method, &r.args);
        }
        Ok(Message::Reply(r)) => drop(r.encode().expect("a decoded reply re-encodes")),
        Ok(Message::Notification(_)) | Err(_) => {}
    }
});
