//! Timestamps as Python prints them: the context `timestamp` and `report_state`'s `time`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// UTC civil date and time of `t` (clamped at the epoch).
fn utc_parts(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros(),
    )
}

/// `str(datetime.utcnow())`: `2026-08-01 12:00:00.123456` (no fraction when it is zero), the
/// context `timestamp` format.
pub fn python_utc_timestamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, us) = utc_parts(t);
    let base = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
    if us == 0 {
        base
    } else {
        format!("{base}.{us:06}")
    }
}

/// `utcnow().strftime('%Y-%m-%dT%H:%M:%S.%f')`: the `time` argument of `report_state`.
pub fn iso_utc_timestamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, us) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}")
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
