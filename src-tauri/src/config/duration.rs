//! Durations written the way Go's `time.Duration` prints and parses them ("15s", "2m0s",
//! "200ms"), because IPFS Cluster's `service.json` files use that form and users copy them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub const fn secs(s: u64) -> GoDuration {
        GoDuration(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> GoDuration {
        GoDuration(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<GoDuration> for Duration {
    fn from(d: GoDuration) -> Duration {
        d.0
    }
}

/// Writes `frac` (< `unit`) as decimal digits after a dot, trailing zeros dropped.
fn write_frac(f: &mut fmt::Formatter<'_>, whole: u128, frac: u128, unit: u128) -> fmt::Result {
    write!(f, "{whole}")?;
    if frac == 0 {
        return Ok(());
    }
    let width = (unit as f64).log10().round() as usize;
    let digits = format!("{frac:0width$}");
    write!(f, ".{}", digits.trim_end_matches('0'))
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        if ns == 0 {
            return f.write_str("0s");
        }
        if ns < 1_000 {
            return write!(f, "{ns}ns");
        }
        if ns < 1_000_000 {
            write_frac(f, ns / 1_000, ns % 1_000, 1_000)?;
            return f.write_str("µs");
        }
        if ns < 1_000_000_000 {
            write_frac(f, ns / 1_000_000, ns % 1_000_000, 1_000_000)?;
            return f.write_str("ms");
        }
        let secs_total = ns / 1_000_000_000;
        let sub = ns % 1_000_000_000;
        let (h, m, s) = (secs_total / 3600, (secs_total / 60) % 60, secs_total % 60);
        if h > 0 {
            write!(f, "{h}h{m}m")?;
        } else if m > 0 {
            write!(f, "{m}m")?;
        }
        write_frac(f, s, sub, 1_000_000_000)?;
        f.write_str("s")
    }
}

impl FromStr for GoDuration {
    type Err = String;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("invalid duration {input:?} (expected a Go duration like \"15s\", \"2m0s\" or \"200ms\")")
        };
        let s = input.trim();
        if s == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        if s.is_empty() || s.starts_with('-') {
            return Err(bad());
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        let mut total: f64 = 0.0;
        let mut rest = s;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            if num_len == 0 {
                return Err(bad());
            }
            let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let nanos_per = match &rest[..unit_len] {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total += value * nanos_per;
        }
        Ok(GoDuration(Duration::from_nanos(total.round() as u64)))
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prints_like_go() {
        assert_eq!(GoDuration::secs(0).to_string(), "0s");
        assert_eq!(GoDuration::secs(15).to_string(), "15s");
        assert_eq!(GoDuration::secs(120).to_string(), "2m0s");
        assert_eq!(GoDuration::secs(12 * 60).to_string(), "12m0s");
        assert_eq!(GoDuration::secs(3 * 3600).to_string(), "3h0m0s");
        assert_eq!(GoDuration::millis(200).to_string(), "200ms");
        assert_eq!(GoDuration::millis(1500).to_string(), "1.5s");
        assert_eq!(GoDuration(Duration::from_micros(1500)).to_string(), "1.5ms");
    }

    #[test]
    fn parses_like_go() {
        assert_eq!(
            "1h30m".parse::<GoDuration>().unwrap(),
            GoDuration::secs(5400)
        );
        assert_eq!(
            "1.5s".parse::<GoDuration>().unwrap(),
            GoDuration::millis(1500)
        );
        assert_eq!("0".parse::<GoDuration>().unwrap(), GoDuration::secs(0));
        for bad in ["", "15", "s", "1x", "-1s", "1..5s"] {
            assert!(bad.parse::<GoDuration>().is_err(), "{bad} accepted");
        }
    }

    proptest! {
        #[test]
        fn display_parses_back(ms in 0u64..10_000_000_000) {
            let d = GoDuration::millis(ms);
            prop_assert_eq!(d.to_string().parse::<GoDuration>().unwrap(), d);
        }
    }
}
