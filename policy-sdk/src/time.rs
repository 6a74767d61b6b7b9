//! Calendar arithmetic for `expiry-time=`, without a clock or a time zone
//! database (a policy has neither).

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
    use super::civil_to_unix;

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
}
