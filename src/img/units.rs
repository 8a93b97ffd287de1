//! Sizes as qemu-img reads and prints them: `qemu_strtosz` suffixes on input, and
//! `size_to_str`'s three significant digits with binary units ("1.26 MiB") on output.

/// Parses a size: a number, possibly with a fraction, and an optional suffix B, K, M, G, T, P
/// or E (binary, either case); a plain number is bytes. `None` if malformed or over 2^63 - 1.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let shift = match suffix {
        "" | "b" | "B" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        "e" | "E" => 60,
        _ => return None,
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (num, None),
    };
    if int.is_empty() || frac.is_some_and(|f| f.is_empty() || f.contains('.')) {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    let mut value = whole.checked_mul(1u64 << shift)?;
    if let Some(f) = frac {
        // A fraction only makes sense with a unit (qemu: "1.5M"); bytes are whole.
        let f: f64 = format!("0.{f}").parse().ok()?;
        if shift == 0 && f != 0.0 {
            return None;
        }
        value = value.checked_add((f * (1u64 << shift) as f64) as u64)?;
    }
    (value <= i64::MAX as u64).then_some(value)
}

/// Formats a byte count as qemu's `size_to_str`: "64 MiB", "1.26 MiB", "196 KiB", "0 B".
pub fn size_to_str(val: u64) -> String {
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    // Switch to the next unit once the value reaches 1000 of the current one, as qemu does.
    let mut i = 0;
    while i + 1 < SUFFIXES.len() && val as f64 >= 1000.0 * (1u64 << (10 * i)) as f64 {
        i += 1;
    }
    let v = val as f64 / (1u64 << (10 * i)) as f64;
    format!("{} {}B", format_g3(v), SUFFIXES[i])
}

/// C's `%0.3g`: three significant digits, trailing zeros dropped.
fn format_g3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-4..3).contains(&exp) {
        let s = format!("{v:.2e}");
        let (mant, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", strip_zeros(mant), e.abs());
    }
    let decimals = (2 - exp).max(0) as usize;
    strip_zeros(&format!("{v:.decimals$}")).to_string()
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_qemu() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("1.5M"), Some(1572864));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("2T"), Some(2 << 40));
        assert_eq!(parse_size("8E"), None);
        assert_eq!(parse_size("1.5"), None);
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("3Q"), None);
    }

    #[test]
    fn sizes_print_like_qemu() {
        assert_eq!(size_to_str(67108864), "64 MiB");
        assert_eq!(size_to_str(1323008), "1.26 MiB");
        assert_eq!(size_to_str(200704), "196 KiB");
        assert_eq!(size_to_str(0), "0 B");
        assert_eq!(size_to_str(4096), "4 KiB");
        assert_eq!(size_to_str(1073741824), "1 GiB");
        assert_eq!(size_to_str(999), "999 B");
        assert_eq!(size_to_str(1000), "0.977 KiB");
    }
}
