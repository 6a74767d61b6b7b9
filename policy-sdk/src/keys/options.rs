//! The `authorized_keys` options keygate enforces (`from=`, `expiry-time=`)
//! and the rules for the ones it accepts, ignores or refuses.

use std::net::IpAddr;

use crate::glob::glob_match;
use crate::net::Cidr;

/// One `from=` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AddrPattern {
    Cidr(Cidr),
    Glob(String),
}

impl AddrPattern {
    fn parse(text: &str, warnings: &mut Vec<String>) -> Result<AddrPattern, String> {
        if text.contains('/') || text.parse::<IpAddr>().is_ok() {
            return Cidr::parse(text).map(AddrPattern::Cidr);
        }
        let looks_like_addr = text
            .chars()
            .all(|c| c.is_ascii_hexdigit() || ".:*?".contains(c));
        if !looks_like_addr {
            warnings.push(format!(
                "from= pattern `{text}` is a host name; keygate does not resolve names, \
                 so it can only match an address written the same way"
            ));
        }
        Ok(AddrPattern::Glob(text.to_ascii_lowercase()))
    }

    fn matches(&self, ip: IpAddr, text: &str) -> bool {
        match self {
            AddrPattern::Cidr(net) => net.contains(ip),
            AddrPattern::Glob(pattern) => glob_match(pattern, text),
        }
    }
}

/// The options of one `authorized_keys` line that keygate enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyOptions {
    from: Vec<(bool, AddrPattern)>,
    expiry: Option<u64>,
}

impl KeyOptions {
    /// Whether a client at `client` may use the key at time `now` (seconds
    /// since the Unix epoch). The error is a reason fit to show the worker.
    pub fn check(&self, client: Option<IpAddr>, now: u64) -> Result<(), String> {
        if let Some(expiry) = self.expiry
            && now >= expiry
        {
            return Err("key has expired (expiry-time)".into());
        }
        if self.from.is_empty() {
            return Ok(());
        }
        let Some(ip) = client else {
            return Err("client address unknown; key is restricted by from=".into());
        };
        let text = ip.to_string();
        let mut allowed = false;
        for (negated, pattern) in &self.from {
            if pattern.matches(ip, &text) {
                if *negated {
                    return Err(format!("client address {text} is excluded by from="));
                }
                allowed = true;
            }
        }
        if allowed {
            Ok(())
        } else {
            Err(format!("client address {text} is not in from="))
        }
    }

    /// The `expiry-time`, as seconds since the Unix epoch.
    pub fn expiry(&self) -> Option<u64> {
        self.expiry
    }

    /// Whether the options restrict anything at all.
    pub fn is_empty(&self) -> bool {
        self.from.is_empty() && self.expiry.is_none()
    }
}

const IGNORED_OPTIONS: &[&str] = &[
    "no-pty",
    "pty",
    "no-agent-forwarding",
    "agent-forwarding",
    "no-x11-forwarding",
    "x11-forwarding",
    "no-user-rc",
    "user-rc",
    "no-touch-required",
];

const UNENFORCEABLE_OPTIONS: &[&str] = &[
    "command",
    "environment",
    "permitlisten",
    "permitopen",
    "no-port-forwarding",
    "principals",
    "cert-authority",
    "tunnel",
    "verify-required",
];

/// Split an options list on unquoted commas into (name, value) pairs.
fn split_options(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| *c != ',' && *c != '=') {
            name.push(c);
        }
        let value = if chars.next_if_eq(&'=').is_some() {
            if chars.next_if_eq(&'"').is_none() {
                return Err(format!(
                    "option `{name}` needs a quoted value: {name}=\"...\""
                ));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('\\') if chars.peek() == Some(&'"') => value.push('"'),
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quote in option `{name}`")),
                }
            }
            Some(value)
        } else {
            None
        };
        if name.is_empty() {
            return Err("empty option in options list".into());
        }
        out.push((name, value));
        match chars.next() {
            Some(',') => continue,
            None => return Ok(out),
            Some(c) => return Err(format!("unexpected `{c}` after an option")),
        }
    }
}

pub(super) fn parse_options(text: &str, warnings: &mut Vec<String>) -> Result<KeyOptions, String> {
    let mut options = KeyOptions::default();
    let pairs = split_options(text)?;
    let has = |n: &str| pairs.iter().any(|(name, _)| name.eq_ignore_ascii_case(n));
    if has("restrict") && !has("port-forwarding") {
        return Err(
            "option `restrict` forbids the reverse tunnels workers need; \
                    write `restrict,port-forwarding` or drop it"
                .into(),
        );
    }
    for (name, value) in &pairs {
        let lower = name.to_ascii_lowercase();
        match (lower.as_str(), value) {
            ("from", Some(v)) => options.from.extend(parse_from(v, warnings)?),
            ("expiry-time", Some(v)) => options.expiry = Some(parse_expiry(v)?),
            ("restrict" | "port-forwarding", None) => {}
            (n, None) if IGNORED_OPTIONS.contains(&n) => {
                warnings.push(format!(
                    "option `{name}` has no effect: keygate never grants it"
                ));
            }
            (n, _) if UNENFORCEABLE_OPTIONS.contains(&n) => {
                return Err(format!(
                    "option `{name}` is not supported by keygate and would go unenforced"
                ));
            }
            ("from" | "expiry-time", None) => {
                return Err(format!("option `{name}` needs a value: {name}=\"...\""));
            }
            _ => return Err(format!("unknown option `{name}`")),
        }
    }
    Ok(options)
}

fn parse_from(value: &str, warnings: &mut Vec<String>) -> Result<Vec<(bool, AddrPattern)>, String> {
    let mut out = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        let (negated, text) = match item.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        if text.is_empty() {
            return Err(format!("empty pattern in from=\"{value}\""));
        }
        out.push((negated, AddrPattern::parse(text, warnings)?));
    }
    Ok(out)
}

/// Parse `YYYYMMDD[HHMM[SS]][Z]` into seconds since the Unix epoch (UTC).
pub fn parse_expiry(value: &str) -> Result<u64, String> {
    let bad = || format!("invalid expiry-time `{value}`; expected YYYYMMDD[HHMM[SS]][Z]");
    let digits = value.strip_suffix(['Z', 'z']).unwrap_or(value);
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(bad());
    }
    let field = |range: std::ops::Range<usize>| -> u32 {
        digits.get(range).and_then(|s| s.parse().ok()).unwrap_or(0)
    };
    crate::civil_to_unix(
        field(0..4),
        field(4..6),
        field(6..8),
        field(8..10),
        field(10..12),
        field(12..14),
    )
    .ok_or_else(bad)
}
