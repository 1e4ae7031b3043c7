//! `[metadata_rate_limiting]`: per-source-IP request rates over a base and a burst window,
//! as the two haproxy stick tables Neutron configures (`http_req_rate(<window>)`, a request
//! over either limit denied with 429).
//!
//! A rate is haproxy's sliding-window estimate (`freq_ctr`): the requests of the current
//! window plus those of the previous window weighted by how much of it still overlaps, so it
//! costs two counters per window per client instead of a timestamp per request. As in
//! haproxy, a denied request is counted too (it is tracked before the deny rule), so a client
//! that keeps hammering stays limited. The table holds at most 10k clients (haproxy's
//! `size 10k`); entries idle for the longer window are dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimitOptions;

/// haproxy's `stick-table ... size 10k`.
const TABLE_SIZE: usize = 10_000;

/// A window's counters: `curr` requests since `start`, `prev` in the window before.
#[derive(Clone, Copy, Debug)]
struct Freq {
    start: Instant,
    curr: u32,
    prev: u32,
}

impl Freq {
    fn new(now: Instant) -> Freq {
        Freq {
            start: now,
            curr: 0,
            prev: 0,
        }
    }

    /// Counts one request at `now` and returns the rate over `period` including it.
    fn hit(&mut self, now: Instant, period: Duration) -> u64 {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= period {
            // Roll over one or more whole periods.
            let periods = (elapsed.as_nanos() / period.as_nanos().max(1)) as u32;
            self.prev = if periods == 1 { self.curr } else { 0 };
            self.curr = 0;
            self.start += period * periods;
        }
        self.curr = self.curr.saturating_add(1);
        let into = now.saturating_duration_since(self.start).as_nanos();
        let left = period.as_nanos().saturating_sub(into);
        let weighted = u128::from(self.prev) * left / period.as_nanos().max(1);
        u64::from(self.curr) + weighted as u64
    }
}

#[derive(Debug)]
struct Entry {
    base: Freq,
    burst: Freq,
    last: Instant,
}

/// One network's table (each network's proxy is a separate haproxy in Neutron, so each
/// has its own tables).
#[derive(Debug)]
pub struct RateLimiter {
    opts: RateLimitOptions,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

impl RateLimiter {
    pub fn new(opts: RateLimitOptions) -> RateLimiter {
        RateLimiter {
            opts,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request from `src` at `now`; false: deny it with 429. Clients of the other IP
    /// version are not limited (Neutron's tables are `type ip` or `type ipv6`).
    pub fn allow(&self, src: IpAddr, now: Instant) -> bool {
        if src.is_ipv6() != self.opts.ipv6 {
            return true;
        }
        let expire = self.opts.base_window.max(self.opts.burst_window);
        // Only counters are updated under the lock; a panic cannot leave them half-written.
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= TABLE_SIZE && !table.contains_key(&src) {
            table.retain(|_, e| now.saturating_duration_since(e.last) < expire);
            if table.len() >= TABLE_SIZE {
                // haproxy evicts its oldest entry; the same here.
                if let Some(oldest) = table.iter().min_by_key(|(_, e)| e.last).map(|(k, _)| *k) {
                    table.remove(&oldest);
                }
            }
        }
        let e = table.entry(src).or_insert_with(|| Entry {
            base: Freq::new(now),
            burst: Freq::new(now),
            last: now,
        });
        e.last = now;
        let base = e.base.hit(now, self.opts.base_window);
        let burst = e.burst.hit(now, self.opts.burst_window);
        base <= u64::from(self.opts.base_limit) && burst <= u64::from(self.opts.burst_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(base: (u64, u32), burst: (u64, u32)) -> RateLimiter {
        RateLimiter::new(RateLimitOptions {
            ipv6: false,
            base_window: Duration::from_secs(base.0),
            base_limit: base.1,
            burst_window: Duration::from_secs(burst.0),
            burst_limit: burst.1,
        })
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 5));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 6));

    #[test]
    fn limit_requests_pass_then_429_per_source() {
        let l = limiter((10, 3), (10, 100));
        let t = Instant::now();
        assert!(l.allow(A, t));
        assert!(l.allow(A, t));
        assert!(l.allow(A, t));
        assert!(!l.allow(A, t));
        // Another client is counted apart.
        assert!(l.allow(B, t));
    }

    #[test]
    fn the_burst_window_limits_too() {
        let l = limiter((60, 100), (1, 2));
        let t = Instant::now();
        assert!(l.allow(A, t));
        assert!(l.allow(A, t));
        assert!(!l.allow(A, t));
        // Two burst windows later the burst count is clear; the base window still counts 4.
        let later = t + Duration::from_secs(2);
        assert!(l.allow(A, later));
    }

    #[test]
    fn the_previous_window_fades_out() {
        let l = limiter((10, 4), (10, 100));
        let t = Instant::now();
        for _ in 0..4 {
            assert!(l.allow(A, t));
        }
        // Halfway into the next window: 4 * 0.5 + 1 = 3 <= 4.
        assert!(l.allow(A, t + Duration::from_secs(15)));
        // Now 4 * 0.5 + 2 = 4 still passes, the next (5) does not.
        assert!(l.allow(A, t + Duration::from_secs(15)));
        assert!(!l.allow(A, t + Duration::from_secs(15)));
        // Long idle: everything forgotten.
        for _ in 0..4 {
            assert!(l.allow(A, t + Duration::from_secs(100)));
        }
    }

    #[test]
    fn denied_requests_count_as_in_haproxy() {
        let l = limiter((10, 2), (10, 100));
        let t = Instant::now();
        for _ in 0..10 {
            l.allow(A, t);
        }
        // 10 in the previous window, 9.5 s into the next: 10 * 0.05 + 1 = 1.5 passes, but at
        // 5 s in, 10 * 0.5 + 1 = 6 does not.
        assert!(!l.allow(A, t + Duration::from_secs(15)));
    }

    #[test]
    fn other_ip_version_is_not_limited() {
        let l = limiter((10, 1), (10, 1));
        let v6: IpAddr = "fe80::1".parse().unwrap();
        let t = Instant::now();
        for _ in 0..5 {
            assert!(l.allow(v6, t));
        }
    }

    #[test]
    fn table_is_bounded() {
        let l = limiter((10, 1), (10, 1));
        let t = Instant::now();
        for i in 0..(TABLE_SIZE as u32 + 50) {
            l.allow(IpAddr::V4(i.into()), t);
        }
        assert!(l.table.lock().unwrap().len() <= TABLE_SIZE);
    }
}
