//! Calendar arithmetic for `expiry-time=` and RFC 3339 dates, without a
//! clock or a time zone database (a policy has neither).

/// Seconds since the Unix epoch for a UTC calendar time, or `None` when a
/// field is out of range. Days are checked against the month's length.
pub fn civil_to_unix(
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
) -> Option<u64> {
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = *month_days.get(month as usize - 1)?;
    if day == 0 || day > max_day {
        return None;
    }
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec);
    u64::try_from(secs).ok()
}

/// Seconds since the Unix epoch for an RFC 3339 date or date-time:
///
/// - `2027-01-31`, a full date, is midnight UTC at the start of that day;
/// - `2027-01-31T12:00:00Z` or `2027-01-31T14:00:00+02:00` is that instant.
///   `t`, `z` and a space in place of `T` are accepted, as RFC 3339 allows;
///   fractions of a second are dropped (the instant rounds down).
///
/// A date-time must carry its zone (`Z` or an offset): without one it names
/// no instant. Instants before 1970 are refused. The error quotes the text.
///
/// ```
/// use keygate_policy_sdk::parse_rfc3339;
///
/// assert_eq!(parse_rfc3339("1970-01-02"), Ok(86_400));
/// assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Ok(0));
/// assert!(parse_rfc3339("2027-02-30").is_err());
/// ```
pub fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let form = || {
        format!(
            "invalid date `{text}`; expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS with Z or ±HH:MM"
        )
    };
    let (date, clock) = match text.split_once(['T', 't', ' ']) {
        Some((date, clock)) => (date, Some(clock)),
        None => (text, None),
    };
    let (year, month, day) = split_date(date).ok_or_else(form)?;
    let (hour, min, sec, offset) = match clock {
        Some(clock) => split_clock(clock).ok_or_else(form)?,
        None => (0, 0, 0, 0),
    };
    let no_such = || format!("invalid date `{text}`; no such date or time of day");
    let local = civil_to_unix(year, month, day, hour, min, sec).ok_or_else(no_such)?;
    let utc = i64::try_from(local).map_err(|_| no_such())? - offset;
    u64::try_from(utc).map_err(|_| format!("invalid date `{text}`; it is before 1970"))
}

/// `YYYY-MM-DD` as (year, month, day), unchecked against the calendar.
fn split_date(date: &str) -> Option<(u32, u32, u32)> {
    let mut parts = date.split('-');
    let year = digits(parts.next()?, 4)?;
    let month = digits(parts.next()?, 2)?;
    let day = digits(parts.next()?, 2)?;
    parts.next().is_none().then_some((year, month, day))
}

/// `HH:MM:SS[.FRACTION]` followed by `Z` or `±HH:MM`, as (hour, minute,
/// second, offset east of UTC in seconds).
fn split_clock(clock: &str) -> Option<(u32, u32, u32, i64)> {
    let (clock, offset) = match clock.strip_suffix(['Z', 'z']) {
        Some(clock) => (clock, 0),
        None => {
            let (clock, sign, zone) = match clock.rsplit_once('+') {
                Some((clock, zone)) => (clock, 1, zone),
                None => clock.rsplit_once('-').map(|(c, z)| (c, -1, z))?,
            };
            let (hours, minutes) = zone.split_once(':')?;
            let (hours, minutes) = (digits(hours, 2)?, digits(minutes, 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            (clock, sign * i64::from(hours * 3600 + minutes * 60))
        }
    };
    let whole = match clock.split_once('.') {
        Some((whole, fraction)) => {
            let fraction_ok = !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit());
            fraction_ok.then_some(whole)?
        }
        None => clock,
    };
    let mut parts = whole.split(':');
    let hour = digits(parts.next()?, 2)?;
    let min = digits(parts.next()?, 2)?;
    let sec = digits(parts.next()?, 2)?;
    parts.next().is_none().then_some((hour, min, sec, offset))
}

/// `text` as a number when it is exactly `len` ASCII digits.
fn digits(text: &str, len: usize) -> Option<u32> {
    if text.len() != len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::{civil_to_unix, parse_rfc3339};

    #[test]
    fn known_instants() {
        assert_eq!(civil_to_unix(1970, 1, 1, 0, 0, 0), Some(0));
        assert_eq!(civil_to_unix(2000, 3, 1, 0, 0, 0), Some(951_868_800));
        assert_eq!(civil_to_unix(2026, 12, 3, 13, 10, 0), Some(1_796_303_400));
    }

    #[test]
    fn rejects_impossible_dates() {
        assert_eq!(civil_to_unix(2025, 2, 29, 0, 0, 0), None);
        assert_eq!(civil_to_unix(2024, 13, 1, 0, 0, 0), None);
        assert_eq!(civil_to_unix(2024, 4, 31, 0, 0, 0), None);
        assert_eq!(civil_to_unix(2024, 1, 1, 24, 0, 0), None);
    }

    #[test]
    fn rfc3339_dates_and_date_times() {
        let noon = civil_to_unix(2027, 1, 31, 12, 0, 0);
        assert_eq!(
            parse_rfc3339("2027-01-31").ok(),
            civil_to_unix(2027, 1, 31, 0, 0, 0)
        );
        assert_eq!(parse_rfc3339("2027-01-31T12:00:00Z").ok(), noon);
        assert_eq!(parse_rfc3339("2027-01-31t12:00:00z").ok(), noon);
        assert_eq!(parse_rfc3339("2027-01-31 12:00:00Z").ok(), noon);
        assert_eq!(parse_rfc3339("2027-01-31T12:00:00.999Z").ok(), noon);
        assert_eq!(parse_rfc3339("2027-01-31T14:30:00+02:30").ok(), noon);
        assert_eq!(parse_rfc3339("2027-01-31T07:00:00-05:00").ok(), noon);
        assert_eq!(parse_rfc3339("2027-01-30T23:00:00-13:00").ok(), noon);
    }

    #[test]
    fn rfc3339_refuses_what_names_no_instant() {
        for text in [
            "",
            "2027-1-31",
            "2027-01-31T12:00:00",
            "2027-01-31T12:00Z",
            "2027-01-31T12:00:00.Z",
            "2027-01-31T12:00:00+0200",
            "2027-01-31T12:00:00+24:00",
            "20270131",
            "2027-01-31-",
            "tomorrow",
        ] {
            let err = parse_rfc3339(text).unwrap_err();
            assert!(err.contains("expected YYYY-MM-DD"), "{text}: {err}");
        }
        assert!(
            parse_rfc3339("2027-02-29")
                .unwrap_err()
                .contains("no such date")
        );
        assert!(
            parse_rfc3339("2027-01-31T24:00:00Z")
                .unwrap_err()
                .contains("no such")
        );
        let early = parse_rfc3339("1970-01-01T00:00:00+01:00").unwrap_err();
        assert!(early.contains("before 1970"), "{early}");
    }
}
