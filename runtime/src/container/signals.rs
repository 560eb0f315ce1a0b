//! Signal names and numbers as `kill` accepts them (`KILL`, `SIGKILL`, `9`, `SIGRTMIN+3`).

use nix::sys::signal::Signal;

use super::ContainerError;

/// Parse a signal given as a name (with or without `SIG`) or a number.
pub fn parse_signal(s: &str) -> Result<i32, ContainerError> {
    let bad = || ContainerError::BadSignal(s.to_owned());
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) { Ok(n) } else { Err(bad()) };
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    if let Some(off) = name.strip_prefix("SIGRTMIN") {
        let n = libc::SIGRTMIN() + rt_offset(off, '+').ok_or_else(bad)?;
        return if n <= libc::SIGRTMAX() { Ok(n) } else { Err(bad()) };
    }
    if let Some(off) = name.strip_prefix("SIGRTMAX") {
        let n = libc::SIGRTMAX() - rt_offset(off, '-').ok_or_else(bad)?;
        return if n >= libc::SIGRTMIN() { Ok(n) } else { Err(bad()) };
    }
    name.parse::<Signal>().map(|s| s as i32).map_err(|_| bad())
}

fn rt_offset(s: &str, sign: char) -> Option<i32> {
    if s.is_empty() {
        return Some(0);
    }
    s.strip_prefix(sign)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("KILL", Some(9))]
    #[test_case("SIGTERM", Some(15))]
    #[test_case("term", Some(15))]
    #[test_case("9", Some(9))]
    #[test_case("SIGRTMIN", Some(libc::SIGRTMIN()))]
    #[test_case("RTMIN+2", Some(libc::SIGRTMIN() + 2))]
    #[test_case("SIGRTMAX-1", Some(libc::SIGRTMAX() - 1))]
    #[test_case("0", None)]
    #[test_case("65", None)]
    #[test_case("SIGFOO", None)]
    #[test_case("RTMIN+99", None)]
    fn signals(s: &str, want: Option<i32>) {
        assert_eq!(parse_signal(s).ok(), want);
    }
}
