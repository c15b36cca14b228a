//! RFC 3339 timestamps as Go's `time.Time` marshals them (UTC, `Z`, fractional
//! seconds with trailing zeros removed), for `created` fields in configs and history.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats seconds and nanoseconds since the Unix epoch, e.g.
/// `1970-01-01T00:00:00Z` or `2023-11-14T22:13:20.5Z`.
pub fn rfc3339_utc(unix_seconds: i64, nanos: u32) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    );
    let nanos = nanos.min(999_999_999);
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// Formats a `SystemTime` (times before 1970 included).
pub fn rfc3339_from_system_time(time: SystemTime) -> String {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => rfc3339_utc(after.as_secs() as i64, after.subsec_nanos()),
        Err(before) => {
            let before = before.duration();
            let mut seconds = -(before.as_secs() as i64);
            let mut nanos = before.subsec_nanos();
            if nanos > 0 {
                seconds -= 1;
                nanos = 1_000_000_000 - nanos;
            }
            rfc3339_utc(seconds, nanos)
        }
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(rfc3339_utc(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000, 0), "2023-11-14T22:13:20Z");
        assert_eq!(
            rfc3339_utc(1_700_000_000, 120_000_000),
            "2023-11-14T22:13:20.12Z"
        );
        assert_eq!(
            rfc3339_utc(1_700_000_000, 1),
            "2023-11-14T22:13:20.000000001Z"
        );
        assert_eq!(rfc3339_utc(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(4_102_444_799, 0), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339_utc(-1, 0), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn system_times_before_and_after_the_epoch() {
        let after = UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000);
        assert_eq!(rfc3339_from_system_time(after), "2023-11-14T22:13:20.5Z");
        let before = UNIX_EPOCH - Duration::new(0, 250_000_000);
        assert_eq!(rfc3339_from_system_time(before), "1969-12-31T23:59:59.75Z");
    }
}
