//! Text forms shared by the configuration, the CLI, the audit log and the answers (pure): durations as the
//! configuration writes them (`90s`, `1h30m`), expirations as every SDK reads them, and the line and column
//! of a byte offset for error messages.

use std::time::{Duration, SystemTime};

/// Parses `"90s"`, `"30m"`, `"1h"`, `"1h30m"`, `"500ms"`, `"1d"` (humantime's syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim().is_empty() {
        return Err("empty (use e.g. \"90s\", \"30m\", \"1h\")".into());
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. \"90s\", \"30m\", \"1h\")"))
}

/// Formats a duration the way the configuration writes it: `1h30m`, `90s` → `1m30s`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let mut out = String::new();
    let mut secs = d.as_secs();
    for (unit, len) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    if d.subsec_millis() > 0 {
        out.push_str(&format!("{}ms", d.subsec_millis()));
    }
    out
}

/// `Expiration` as every SDK accepts it: RFC 3339, UTC, whole seconds, `Z`.
pub fn expiration(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// 1-based (line, column in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h 30min"), Ok(Duration::from_secs(5400)));
        for bad in ["", "5", "h", "5x", "-5s", "99999999999999999999s", "an hour"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for s in ["1h", "1h30m", "90s", "1d2h3m4s", "250ms"] {
            assert_eq!(parse_duration(&format_duration(parse_duration(s).unwrap())), parse_duration(s));
        }
    }

    #[test]
    fn positions_count_characters() {
        let t = "ab\ncdé\nf";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, t.find('f').unwrap()), (3, 1));
        // Inside a multi-byte character: its start.
        assert_eq!(line_col(t, t.find('é').unwrap() + 1), (2, 3));
        assert_eq!(line_col(t, 999), (3, 2));
    }

    #[test]
    fn expirations_end_in_z_without_fractions() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(expiration(t), "2026-11-18T11:06:40Z");
    }
}
