//! A command line's values, parsed once, by clap, where the options are declared: durations,
//! sizes, addresses and CIDR blocks. Clap names the option and the value; each message here
//! says what to write instead, and [`one_line`] makes clap's answer the one line every usage
//! error is.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Clap's error as one line: its first, without the `error: ` clap puts before it, and
/// where to look for the options when clap says no more.
#[must_use]
pub fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match e.kind() {
        clap::error::ErrorKind::UnknownArgument | clap::error::ErrorKind::InvalidSubcommand => {
            format!("{first}; --help lists what is understood")
        }
        _ => first.to_string(),
    }
}

/// A value that is not what its option takes; each says what to write instead (clap puts
/// the option and the value before it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadValue {
    /// Not a duration (humantime's reason).
    #[error("{0}; write a duration such as 2s or 500ms")]
    Duration(String),
    /// Not a duration, where zero would do (humantime's reason).
    #[error("{0}; write a duration such as 15s (0s for none)")]
    DurationOrZero(String),
    /// A duration of zero.
    #[error("give a duration longer than zero, such as 2s")]
    Zero,
    /// A period under a second.
    #[error("give 1s or more")]
    UnderASecond,
    /// Not a size.
    #[error("write a size such as 500MB or 2GiB")]
    Size,
    /// Not an address to listen on.
    #[error("give ADDR:PORT, as 127.0.0.1:7878 or 0.0.0.0:7878")]
    Listen,
    /// Not a DNS server's address.
    #[error("give an IP address, IP:PORT or [IPv6]:PORT")]
    Resolver,
    /// Not a CIDR block.
    #[error("give a CIDR block such as 10.10.0.0/16")]
    Cidr,
}

/// A duration longer than zero, as `2s`, `500ms` or `7d`.
///
/// # Errors
/// What to write instead.
pub fn duration(text: &str) -> Result<Duration, BadValue> {
    let d =
        humantime::parse_duration(text.trim()).map_err(|e| BadValue::Duration(e.to_string()))?;
    if d.is_zero() {
        return Err(BadValue::Zero);
    }
    Ok(d)
}

/// A duration, zero allowed (`0s`: never reuse).
///
/// # Errors
/// What to write instead.
pub fn duration_or_zero(text: &str) -> Result<Duration, BadValue> {
    humantime::parse_duration(text.trim()).map_err(|e| BadValue::DurationOrZero(e.to_string()))
}

/// A period of at least a second, for what runs again and again.
///
/// # Errors
/// What to write instead.
pub fn period(text: &str) -> Result<Duration, BadValue> {
    let d = duration(text)?;
    if d < Duration::from_secs(1) {
        return Err(BadValue::UnderASecond);
    }
    Ok(d)
}

/// A size as `500MB`, `2GiB`, `64KB` or a number of bytes, more than zero.
///
/// # Errors
/// What to write instead.
pub fn size(text: &str) -> Result<u64, BadValue> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let unit = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => Some(1),
        "k" | "kb" => Some(1_000),
        "kib" => Some(1 << 10),
        "m" | "mb" => Some(1_000_000),
        "mib" => Some(1 << 20),
        "g" | "gb" => Some(1_000_000_000),
        "gib" => Some(1 << 30),
        _ => None,
    };
    t[..digits]
        .parse::<u64>()
        .ok()
        .zip(unit)
        .and_then(|(n, u)| n.checked_mul(u))
        .filter(|n| *n > 0)
        .ok_or(BadValue::Size)
}

/// An address to listen on, `ADDR:PORT`.
///
/// # Errors
/// What to write instead.
pub fn listen(text: &str) -> Result<SocketAddr, BadValue> {
    text.trim().parse().map_err(|_| BadValue::Listen)
}

/// A DNS server: `IP`, `IP:PORT` or `[IPv6]:PORT` (port 53 when none is given).
///
/// # Errors
/// What to write instead.
pub fn resolver(text: &str) -> Result<SocketAddr, BadValue> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| BadValue::Resolver)
}

/// A CIDR block, its host bits cleared (`10.10.0.5/16` is `10.10.0.0/16`).
///
/// # Errors
/// What to write instead.
pub fn cidr(text: &str) -> Result<IpNet, BadValue> {
    text.trim()
        .parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| BadValue::Cidr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_parses_or_says_what_to_write() {
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("0s"), Err(BadValue::Zero));
        assert!(
            duration("soon")
                .unwrap_err()
                .to_string()
                .contains("such as 2s")
        );
        assert_eq!(duration_or_zero("0s"), Ok(Duration::ZERO));
        assert_eq!(period("500ms"), Err(BadValue::UnderASecond));
        assert_eq!(size("2GiB"), Ok(2 << 30));
        assert_eq!(size("500MB"), Ok(500_000_000));
        assert!(size("0").is_err() && size("lots").is_err());
        assert_eq!(resolver("10.0.0.2"), Ok("10.0.0.2:53".parse().unwrap()));
        assert_eq!(resolver("[::1]:5353"), Ok("[::1]:5353".parse().unwrap()));
        assert_eq!(cidr("10.10.0.5/16"), Ok("10.10.0.0/16".parse().unwrap()));
        assert!(
            listen("localhost")
                .unwrap_err()
                .to_string()
                .contains("ADDR:PORT")
        );
    }
}
