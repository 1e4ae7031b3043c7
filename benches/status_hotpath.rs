//! What the status endpoint adds to the DHCP shell per request: the message type and MAC read
//! from the request, one relaxed increment of the per-type counter, and the last-seen ring's
//! record (a coarse clock read and four stores). Compared with the responder's own cost per
//! request (`benches/responder.rs`).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use neutron_dhcp::telemetry::seen::{self, Fate, SeenRing};

fn request() -> Vec<u8> {
    let mut p = vec![0u8; 240];
    p[0] = 1;
    p[1] = 1;
    p[2] = 6;
    p[28..34].copy_from_slice(&[0xfa, 0x16, 0x3e, 0, 0, 1]);
    p[236..240].copy_from_slice(&[99, 130, 83, 99]);
    p.extend_from_slice(&[53, 1, 3, 55, 4, 1, 3, 6, 15, 255]);
    p
}

fn bench(c: &mut Criterion) {
    let req = request();
    let ring = SeenRing::default();
    let by_type: [AtomicU64; 16] = Default::default();
    c.bench_function(
        "status: per-request bookkeeping (type, MAC, counter, ring)",
        |b| {
            b.iter(|| {
                let req = black_box(&req[..]);
                let message = seen::v4_message_type(req);
                by_type[usize::from(message & 0x0f) * usize::from(message < 16)]
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(mac) = seen::v4_mac(req) {
                    ring.record(mac, message, Fate::Answered);
                }
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
