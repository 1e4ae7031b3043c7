//! Timestamps as Python prints them: the context `timestamp` and `report_state`'s `time`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::utc::{civil, Civil};

/// UTC date and time of `t` (clamped at the epoch), and its microseconds.
fn utc_parts(t: SystemTime) -> (Civil, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    (civil(secs), d.subsec_micros())
}

/// `str(datetime.utcnow())`: `2026-08-01 12:00:00.123456` (no fraction when it is zero), the
/// context `timestamp` format.
pub fn python_utc_timestamp(t: SystemTime) -> String {
    let (c, us) = utc_parts(t);
    let base = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    if us == 0 {
        base
    } else {
        format!("{base}.{us:06}")
    }
}

/// `utcnow().strftime('%Y-%m-%dT%H:%M:%S.%f')`: the `time` argument of `report_state`.
pub fn iso_utc_timestamp(t: SystemTime) -> String {
    let (c, us) = utc_parts(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{us:06}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::from_micros(1_785_585_600_123_456);
        assert_eq!(python_utc_timestamp(t), "2026-08-01 12:00:00.123456");
        assert_eq!(iso_utc_timestamp(t), "2026-08-01T12:00:00.123456");
        assert_eq!(
            python_utc_timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00:00"
        );
        assert_eq!(iso_utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000");
    }
}
