//! A per-network limit on the log lines one packet can cause (DHCPRELEASE/DHCPDECLINE notices,
//! failed sends, panics): any client on the segment can send as many packets as it likes, and
//! one such line per packet let a single client write 20,000 lines (4.4 MB) in 0.27 s.
//!
//! Each window of [`INTERVAL`] lets [`BURST`] lines through; the rest are counted, and the
//! count is written once, as one summary line, when the window is over (the DHCP thread calls
//! back at that time, so the summary comes even when the flood has stopped). Pure state: the
//! caller passes the time, read only for a line that is about to be logged, so the packets that
//! log nothing pay nothing.

use std::time::{Duration, Instant};

/// Lines written per window.
pub const BURST: u32 = 10;
/// Length of a window.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// The limit's state for one network.
#[derive(Debug, Default)]
pub struct LogLimit {
    /// When the current window began; `None` before the first line.
    window: Option<Instant>,
    /// Lines written in the current window.
    written: u32,
    /// Lines held back in the current window.
    held: u64,
}

/// What to do with one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Write the line.
    pub write: bool,
    /// Lines held back in the window that just ended, to be reported first (a summary).
    pub summary: Option<u64>,
}

impl LogLimit {
    /// Whether a line may be written `now`; a line that may not is counted. A window that has
    /// ended hands back its count of held lines (if any) for the summary.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let summary = self.roll(now);
        let write = self.written < BURST;
        if write {
            self.written += 1;
        } else {
            self.held += 1;
        }
        Verdict { write, summary }
    }

    /// When [`LogLimit::due`] has a summary to hand back: the end of a window that held lines
    /// back.
    pub fn deadline(&self) -> Option<Instant> {
        match self.window {
            Some(start) if self.held > 0 => Some(start + INTERVAL),
            _ => None,
        }
    }

    /// The count of held lines of a window that has ended by `now` (`None` if none were held
    /// or the window is still open); the next line starts a new window.
    pub fn due(&mut self, now: Instant) -> Option<u64> {
        match self.window {
            Some(start) if now.saturating_duration_since(start) >= INTERVAL => {
                let held = std::mem::take(&mut self.held);
                self.window = None;
                self.written = 0;
                (held > 0).then_some(held)
            }
            _ => None,
        }
    }

    /// Lines held back so far in the open window, for a summary when the network stops.
    pub fn take_held(&mut self) -> Option<u64> {
        let held = std::mem::take(&mut self.held);
        (held > 0).then_some(held)
    }

    /// Ends the window if it is over, and opens one if none is.
    fn roll(&mut self, now: Instant) -> Option<u64> {
        let summary = self.due(now);
        if self.window.is_none() {
            self.window = Some(now);
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_window_then_one_count() {
        let mut l = LogLimit::default();
        let t0 = Instant::now();
        assert_eq!(l.deadline(), None);
        for i in 0..BURST {
            let v = l.check(t0 + Duration::from_millis(u64::from(i)));
            assert_eq!(
                v,
                Verdict {
                    write: true,
                    summary: None
                },
                "line {i}"
            );
        }
        assert_eq!(l.deadline(), None, "nothing held back yet");
        for _ in 0..20_000 {
            assert!(!l.check(t0 + Duration::from_secs(1)).write);
        }
        assert_eq!(l.deadline(), Some(t0 + INTERVAL));
        assert_eq!(
            l.due(t0 + INTERVAL - Duration::from_millis(1)),
            None,
            "window open"
        );
        assert_eq!(l.due(t0 + INTERVAL), Some(20_000));
        assert_eq!(l.deadline(), None);
        assert_eq!(l.due(t0 + INTERVAL * 3), None, "reported once");
        // A new window lets a burst through again.
        let v = l.check(t0 + INTERVAL * 3);
        assert_eq!(
            v,
            Verdict {
                write: true,
                summary: None
            }
        );
    }

    #[test]
    fn a_line_after_the_window_brings_the_summary_itself() {
        let mut l = LogLimit::default();
        let t0 = Instant::now();
        for _ in 0..BURST + 3 {
            l.check(t0);
        }
        let v = l.check(t0 + INTERVAL + Duration::from_secs(1));
        assert_eq!(
            v,
            Verdict {
                write: true,
                summary: Some(3)
            }
        );
    }

    #[test]
    fn a_stop_takes_what_the_open_window_held() {
        let mut l = LogLimit::default();
        let t0 = Instant::now();
        for _ in 0..BURST + 7 {
            l.check(t0);
        }
        assert_eq!(l.take_held(), Some(7));
        assert_eq!(l.take_held(), None);
        assert_eq!(l.deadline(), None);
    }
}
