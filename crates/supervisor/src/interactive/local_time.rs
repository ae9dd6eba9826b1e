//! Timestamps in the session are shown in the local time zone (the files keep UTC, RFC 3339).
//!
//! The conversion is the C library's `localtime_r`, which follows `TZ` and `/etc/localtime`
//! like every other program on the machine.

use std::time::{SystemTime, UNIX_EPOCH};

/// Local date and time of `t`: (year, month, day, hour, minute, second); `None` when the C
/// library cannot convert it.
fn local_parts(t: SystemTime) -> Option<(i32, u32, u32, u32, u32, u32)> {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_secs()).ok()?,
    };
    // `time_t` is 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    let time: libc::time_t = secs.try_into().ok()?;
    // SAFETY: `localtime_r` only reads `time` and writes the `tm` we own; it is the
    // thread-safe variant (no shared static buffer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&time, &mut tm).is_null() };
    ok.then(|| {
        (
            tm.tm_year + 1900,
            (tm.tm_mon + 1) as u32,
            tm.tm_mday as u32,
            tm.tm_hour as u32,
            tm.tm_min as u32,
            tm.tm_sec as u32,
        )
    })
}

fn parse(ts: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(ts.trim()).ok()
}

/// `HH:MM:SS` in local time of an RFC 3339 timestamp; empty when `ts` is not one.
pub fn clock(ts: Option<&str>) -> String {
    ts.and_then(parse)
        .and_then(local_parts)
        .map(|(_, _, _, h, m, s)| format!("{h:02}:{m:02}:{s:02}"))
        .unwrap_or_default()
}

/// `YYYY-MM-DD HH:MM:SS` in local time of an RFC 3339 timestamp; `ts` itself when it is not
/// one.
pub fn datetime(ts: &str) -> String {
    match parse(ts).and_then(local_parts) {
        Some((y, mo, d, h, mi, s)) => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
        None => ts.to_owned(),
    }
}

/// The local time now, `HH:MM:SS`.
pub fn now() -> String {
    local_parts(SystemTime::now())
        .map(|(_, _, _, h, m, s)| format!("{h:02}:{m:02}:{s:02}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_utc_to_the_local_zone() {
        // Whatever the zone, the local time differs from UTC by whole quarter hours, the
        // minutes and seconds of a round UTC time survive, and garbage stays as it is.
        let t = datetime("2026-03-01T12:00:00Z");
        assert_eq!(t.len(), 19, "{t}");
        assert!(t.ends_with(":00"), "{t}");
        assert_eq!(clock(Some("2026-03-01T12:00:30Z")).len(), 8);
        assert_eq!(clock(Some("not a time")), "");
        assert_eq!(clock(None), "");
        assert_eq!(datetime("yesterday"), "yesterday");
        assert_eq!(now().len(), 8);
    }
}
