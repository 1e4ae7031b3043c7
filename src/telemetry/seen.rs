//! The last clients a network's DHCP server saw: MAC, message, time, and what became of the
//! request (answered, or why not), in a fixed ring per network and family.
//!
//! Written by the network's DHCP thread only, read by the status endpoint: each entry is two
//! atomic words, so recording costs four plain stores (release stores are plain moves on
//! x86) and a coarse clock read from the vDSO (no system call), no lock and no allocation. The
//! writer marks a slot invalid before rewriting it and stamps it with the write's sequence
//! number last, so a reader that races it drops the entry instead of pairing one client's
//! time with another's MAC.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::MacAddr;

/// Entries kept per network and family.
pub const SIZE: usize = 32;

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fate {
    Answered = 1,
    UnknownMac = 2,
    OtherServer = 3,
    Ignored = 4,
    Malformed = 5,
    SendFailed = 6,
}

impl Fate {
    fn from_u8(v: u8) -> Option<Fate> {
        Some(match v {
            1 => Fate::Answered,
            2 => Fate::UnknownMac,
            3 => Fate::OtherServer,
            4 => Fate::Ignored,
            5 => Fate::Malformed,
            6 => Fate::SendFailed,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Fate::Answered => "answered",
            Fate::UnknownMac => "not answered: unknown MAC (no port)",
            Fate::OtherServer => "not answered: for another DHCP server",
            Fate::Ignored => "not answered (see explain)",
            Fate::Malformed => "dropped: malformed",
            Fate::SendFailed => "answer could not be sent",
        }
    }
}

/// One entry as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub mac: MacAddr,
    /// The DHCP message type (DHCPv4 option 53, or the DHCPv6 message type); 0 if unknown.
    pub message: u8,
    pub fate: Fate,
    /// Milliseconds since the Unix epoch (a coarse clock: a few ms of resolution).
    pub time_ms: u64,
}

/// A slot being rewritten.
const INVALID: u64 = u64::MAX;

#[derive(Debug, Default)]
struct Slot {
    /// MAC (48 bits) << 16 | message << 8 | fate.
    what: AtomicU64,
    /// Milliseconds since the epoch << 8 | the low byte of the write's sequence number.
    when: AtomicU64,
}

/// The ring.
#[derive(Debug)]
pub struct SeenRing {
    next: AtomicU64,
    slots: [Slot; SIZE],
}

impl Default for SeenRing {
    fn default() -> Self {
        SeenRing {
            next: AtomicU64::new(0),
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }
}

impl SeenRing {
    /// Records a request (the DHCP thread's side; single writer per ring).
    pub fn record(&self, mac: [u8; 6], message: u8, fate: Fate) {
        let seq = self.next.load(Ordering::Relaxed);
        let slot = &self.slots[(seq % SIZE as u64) as usize];
        let mut m = [0u8; 8];
        m[2..].copy_from_slice(&mac);
        let what = (u64::from_be_bytes(m) << 16) | (u64::from(message) << 8) | fate as u64;
        slot.when.store(INVALID, Ordering::Release);
        slot.what.store(what, Ordering::Release);
        slot.when
            .store((now_ms() << 8) | (seq & 0xff), Ordering::Release);
        self.next.store(seq + 1, Ordering::Release);
    }

    /// The entries, newest first.
    pub fn snapshot(&self) -> Vec<Seen> {
        let next = self.next.load(Ordering::Acquire);
        let n = next.min(SIZE as u64);
        let mut out = Vec::with_capacity(n as usize);
        for back in 1..=n {
            let seq = next - back;
            let slot = &self.slots[(seq % SIZE as u64) as usize];
            let when = slot.when.load(Ordering::Acquire);
            let what = slot.what.load(Ordering::Acquire);
            if when == INVALID
                || when & 0xff != seq & 0xff
                || slot.when.load(Ordering::Acquire) != when
            {
                continue; // being rewritten, or overwritten while we read
            }
            let Some(fate) = Fate::from_u8((what & 0xff) as u8) else {
                continue;
            };
            let b = (what >> 16).to_be_bytes();
            out.push(Seen {
                mac: MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]),
                message: ((what >> 8) & 0xff) as u8,
                fate,
                time_ms: when >> 8,
            });
        }
        out
    }
}

/// The coarse real-time clock (vDSO, no system call), in ms since the epoch.
fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// The DHCPv4 message type of a request: option 53, where clients put it (first), else found
/// by a bounded walk of the options. 0 if there is none.
pub fn v4_message_type(req: &[u8]) -> u8 {
    const OPTIONS: usize = 240;
    if let Some(&[53, 1, t]) = req.get(OPTIONS..OPTIONS + 3) {
        return t;
    }
    let mut i = OPTIONS;
    while let Some(&c) = req.get(i) {
        match c {
            0 => i += 1,
            255 => return 0,
            _ => {
                let Some(&len) = req.get(i + 1) else { return 0 };
                if c == 53 && len == 1 {
                    return req.get(i + 2).copied().unwrap_or(0);
                }
                i += 2 + len as usize;
            }
        }
    }
    0
}

/// The client MAC of a DHCPv4 request (`chaddr`, Ethernet only).
pub fn v4_mac(req: &[u8]) -> Option<[u8; 6]> {
    match (req.get(1), req.get(2), req.get(28..34)) {
        (Some(1), Some(6), Some(m)) => {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(m);
            Some(mac)
        }
        _ => None,
    }
}

/// A message type's name for people.
pub fn message_name(v6: bool, t: u8) -> String {
    let name = if v6 {
        match t {
            1 => "SOLICIT",
            3 => "REQUEST",
            4 => "CONFIRM",
            5 => "RENEW",
            6 => "REBIND",
            8 => "RELEASE",
            9 => "DECLINE",
            11 => "INFORMATION-REQUEST",
            12 => "RELAY-FORW",
            _ => "",
        }
    } else {
        match t {
            1 => "DHCPDISCOVER",
            3 => "DHCPREQUEST",
            4 => "DHCPDECLINE",
            7 => "DHCPRELEASE",
            8 => "DHCPINFORM",
            _ => "",
        }
    };
    if name.is_empty() {
        format!("type {t}")
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_entries_newest_first() {
        let r = SeenRing::default();
        assert!(r.snapshot().is_empty());
        for i in 0..(SIZE as u8 + 3) {
            r.record([2, 0, 0, 0, 0, i], 1, Fate::Answered);
        }
        r.record([2, 0, 0, 0, 0, 0xee], 3, Fate::UnknownMac);
        let s = r.snapshot();
        assert_eq!(s.len(), SIZE);
        assert_eq!(s[0].mac, MacAddr([2, 0, 0, 0, 0, 0xee]));
        assert_eq!((s[0].message, s[0].fate), (3, Fate::UnknownMac));
        assert_eq!(s[1].mac, MacAddr([2, 0, 0, 0, 0, SIZE as u8 + 2]));
        assert!(s[0].time_ms > 1_600_000_000_000);
    }

    #[test]
    fn message_type_is_found_first_or_by_walking() {
        let mut p = vec![0u8; 240];
        p.extend_from_slice(&[53, 1, 3, 255]);
        assert_eq!(v4_message_type(&p), 3);
        let mut q = vec![0u8; 240];
        q.extend_from_slice(&[0, 61, 2, 1, 2, 53, 1, 8, 255]);
        assert_eq!(v4_message_type(&q), 8);
        assert_eq!(v4_message_type(&q[..245]), 0);
    }
}
