//! OpenSSH public keys and `authorized_keys` lines.
//!
//! Keys are compared by algorithm and key data ([`PublicKeyData`]), never by
//! their text: the same key appears with different comments and spacing in
//! different files. [`parse_authorized_keys`] reads a whole file and keeps
//! each line's number, so a policy can point the operator at the faulty line.
//!
//! Of the options OpenSSH allows before a key, two are honoured and checked
//! by [`KeyOptions::check`]:
//!
//! - `from="pattern,..."`: the client address must match. Patterns are IP
//!   addresses, CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`) and wildcards over
//!   the address text (`192.168.1.*`); a pattern prefixed with `!` denies.
//!   Host names are accepted but, since a policy resolves no names, match
//!   only as text against the address; a warning says so.
//! - `expiry-time="YYYYMMDD[HHMM[SS]][Z]"`: the key stops working at that
//!   instant. keygate reads the time as UTC whether or not it ends in `Z`
//!   (OpenSSH reads it as the server's local time without `Z`).
//!
//! Options that only restrict what keygate never grants (`no-pty`,
//! `no-agent-forwarding`, `no-X11-forwarding`, `no-user-rc` and their
//! positive forms, `no-touch-required`) are accepted with a warning.
//! `restrict` is accepted only together with `port-forwarding`, because
//! workers need reverse tunnels. Options keygate cannot enforce, such as
//! `command=`, `permitlisten=` or `no-port-forwarding`, are errors: ignoring
//! them would give the key more than its owner wrote down.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

/// A public key reduced to what identifies it: its algorithm and key data.
/// Two keys are the same key exactly when these are equal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKeyData {
    algorithm: String,
    blob: Vec<u8>,
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The text has no key in it.
    Missing,
    /// The algorithm name is not one keygate accepts.
    UnknownAlgorithm(String),
    /// The algorithm is known but not accepted, with the reason.
    Unsupported(String),
    /// The key data is not valid base64.
    BadBase64,
    /// The key data does not have the structure its algorithm requires.
    Malformed(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Missing => write!(f, "no public key found"),
            KeyError::UnknownAlgorithm(a) => write!(f, "unknown key type `{a}`"),
            KeyError::Unsupported(why) => write!(f, "{why}"),
            KeyError::BadBase64 => write!(f, "key data is not valid base64"),
            KeyError::Malformed(why) => write!(f, "malformed key data; {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

const PLAIN_ALGORITHMS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Whether `word` names a key type, plain or otherwise, so that a line's
/// first word can be told apart from an options list.
fn is_key_type(word: &str) -> bool {
    PLAIN_ALGORITHMS.contains(&word) || word == "ssh-dss" || word.ends_with("-cert-v01@openssh.com")
}

impl PublicKeyData {
    /// Parse `ALGORITHM BASE64 [COMMENT]`, the form of `.pub` files and of
    /// the key part of an `authorized_keys` line.
    pub fn parse(text: &str) -> Result<PublicKeyData, KeyError> {
        let mut words = text.split_ascii_whitespace();
        let algorithm = words.next().ok_or(KeyError::Missing)?;
        let data = words.next().ok_or(KeyError::Missing)?;
        PublicKeyData::from_parts(algorithm, data)
    }

    /// Build from an algorithm name and base64 key data, checking that the
    /// data is a well-formed key of that algorithm.
    pub fn from_parts(algorithm: &str, base64: &str) -> Result<PublicKeyData, KeyError> {
        if algorithm == "ssh-dss" {
            return Err(KeyError::Unsupported("DSA keys are not supported".into()));
        }
        if algorithm.ends_with("-cert-v01@openssh.com") {
            return Err(KeyError::Unsupported(
                "certificates are not accepted in key lists; list the plain key".into(),
            ));
        }
        if !PLAIN_ALGORITHMS.contains(&algorithm) {
            return Err(KeyError::UnknownAlgorithm(algorithm.to_owned()));
        }
        let blob = STANDARD.decode(base64).map_err(|_| KeyError::BadBase64)?;
        validate_blob(algorithm, &blob)?;
        Ok(PublicKeyData {
            algorithm: algorithm.to_owned(),
            blob,
        })
    }

    /// The algorithm name, e.g. `ssh-ed25519`.
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The key in SSH wire format.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// `SHA256:` fingerprint, as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint_sha256(&self.blob)
    }

    /// One-line OpenSSH form without comment: `ALGORITHM BASE64`.
    pub fn to_openssh(&self) -> String {
        format!("{} {}", self.algorithm, STANDARD.encode(&self.blob))
    }
}

impl fmt::Debug for PublicKeyData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.algorithm, self.fingerprint())
    }
}

/// `SHA256:` fingerprint of a key in SSH wire format.
pub fn fingerprint_sha256(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// Reads SSH wire-format fields (RFC 4251 `string` and `mpint`).
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn string(&mut self, what: &str) -> Result<&'a [u8], KeyError> {
        let malformed = || KeyError::Malformed(format!("truncated {what}"));
        let (len, rest) = self.0.split_first_chunk::<4>().ok_or_else(malformed)?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > rest.len() {
            return Err(malformed());
        }
        let (field, rest) = rest.split_at(len);
        self.0 = rest;
        Ok(field)
    }

    fn end(&self) -> Result<(), KeyError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(KeyError::Malformed(format!(
                "{} unexpected trailing bytes",
                self.0.len()
            )))
        }
    }
}

fn validate_blob(algorithm: &str, blob: &[u8]) -> Result<(), KeyError> {
    let mut wire = Wire(blob);
    let inner = wire.string("key type")?;
    if inner != algorithm.as_bytes() {
        let inner = String::from_utf8_lossy(inner);
        return Err(KeyError::Malformed(format!(
            "data is a `{inner}` key but the line says `{algorithm}`"
        )));
    }
    match algorithm {
        "ssh-ed25519" | "sk-ssh-ed25519@openssh.com" => {
            expect_len(wire.string("ed25519 key")?, 32, "ed25519 key")?;
        }
        "ssh-rsa" => {
            wire.string("RSA exponent")?;
            let modulus = wire.string("RSA modulus")?;
            let bits = mpint_bits(modulus);
            if bits < 1024 {
                return Err(KeyError::Unsupported(format!(
                    "RSA key of {bits} bits is too short; 1024 bits at least"
                )));
            }
        }
        _ => {
            let curve = wire.string("curve name")?;
            let (name, point_len) = match curve {
                b"nistp256" => ("nistp256", 65),
                b"nistp384" => ("nistp384", 97),
                b"nistp521" => ("nistp521", 133),
                _ => return Err(KeyError::Malformed("unknown curve".into())),
            };
            if !algorithm.contains(name) {
                return Err(KeyError::Malformed(format!(
                    "curve {name} does not match {algorithm}"
                )));
            }
            expect_len(wire.string("curve point")?, point_len, "curve point")?;
        }
    }
    if algorithm.starts_with("sk-") {
        wire.string("security key application")?;
    }
    wire.end()
}

fn expect_len(field: &[u8], len: usize, what: &str) -> Result<(), KeyError> {
    if field.len() == len {
        Ok(())
    } else {
        Err(KeyError::Malformed(format!(
            "{what} is {} bytes, expected {len}",
            field.len()
        )))
    }
}

fn mpint_bits(mpint: &[u8]) -> usize {
    let digits: Vec<u8> = mpint.iter().copied().skip_while(|b| *b == 0).collect();
    match digits.first() {
        Some(top) => digits.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

/// One `from=` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AddrPattern {
    Cidr(IpAddr, u8),
    Glob(String),
}

impl AddrPattern {
    fn parse(text: &str, warnings: &mut Vec<String>) -> Result<AddrPattern, String> {
        if let Some((addr, len)) = text.split_once('/') {
            return parse_cidr(text, addr, len);
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            let len = if ip.is_ipv4() { 32 } else { 128 };
            return Ok(AddrPattern::Cidr(ip, len));
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
            AddrPattern::Cidr(net, len) => in_network(ip, *net, *len),
            AddrPattern::Glob(pattern) => glob_match(pattern.as_bytes(), text.as_bytes()),
        }
    }
}

fn parse_cidr(text: &str, addr: &str, len: &str) -> Result<AddrPattern, String> {
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("invalid address in CIDR `{text}`"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("invalid prefix length in CIDR `{text}` (0 to {max})"))?;
    if mask(ip, len) != ip {
        return Err(format!(
            "CIDR `{text}` has host bits set; did you mean `{}/{len}`?",
            mask(ip, len)
        ));
    }
    Ok(AddrPattern::Cidr(ip, len))
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    ip.is_ipv4() == net.is_ipv4() && mask(ip, len) == mask(net, len)
}

/// OpenSSH-style wildcard match: `*` any run, `?` one character.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(c) if *c == b'?' || Some(c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((bp, bt)) => {
                    p = bp + 1;
                    t = bt + 1;
                    backtrack = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|c| *c == b'*'))
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

/// One key line with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKey {
    /// The options keygate enforces.
    pub options: KeyOptions,
    /// The key itself.
    pub key: PublicKeyData,
    /// The comment after the key, possibly empty.
    pub comment: String,
    /// Things worth telling the operator that did not stop the line from
    /// loading, such as an option keygate accepts but ignores.
    pub warnings: Vec<String>,
}

/// Parse one `authorized_keys` line. Blank lines and `#` comments give
/// `Ok(None)`. The error names what is wrong, without the line number.
pub fn parse_authorized_key(line: &str) -> Result<Option<AuthorizedKey>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let first_end = options_end(line);
    let (options_text, rest) = match line.get(..first_end) {
        Some(first) if !is_key_type(first) => (Some(first), line.get(first_end..).unwrap_or("")),
        _ => (None, line),
    };
    let next_word = rest.split_ascii_whitespace().next().unwrap_or("");
    if let Some(first) = options_text
        && !is_key_type(next_word)
    {
        // Neither word is a key type: the first is a misspelt one rather
        // than an options list.
        return Err(format!("unknown key type `{first}`"));
    }
    let mut warnings = Vec::new();
    let options = match options_text {
        Some(text) => parse_options(text, &mut warnings)?,
        None => KeyOptions::default(),
    };
    let rest = rest.trim_start();
    let mut words = rest.splitn(3, |c: char| c.is_ascii_whitespace());
    let algorithm = words.next().unwrap_or("");
    let data = words.next().ok_or("no key data after the key type")?;
    let comment = words.next().unwrap_or("").trim().to_owned();
    let key = PublicKeyData::from_parts(algorithm, data.trim()).map_err(|e| e.to_string())?;
    Ok(Some(AuthorizedKey {
        options,
        key,
        comment,
        warnings,
    }))
}

/// Byte offset where the first word ends: the first unquoted space or tab.
fn options_end(line: &str) -> usize {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return i,
            _ => {}
        }
    }
    line.len()
}

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

fn parse_options(text: &str, warnings: &mut Vec<String>) -> Result<KeyOptions, String> {
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

/// A problem found on one line of an `authorized_keys` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Everything read from one `authorized_keys` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizedKeys {
    /// The keys, each with its 1-based line number.
    pub keys: Vec<(usize, AuthorizedKey)>,
    /// Lines that could not be read.
    pub errors: Vec<LineProblem>,
    /// Lines that were read but deserve a look.
    pub warnings: Vec<LineProblem>,
}

/// Read a whole `authorized_keys` file. Every line is read even after an
/// error, so the operator sees all problems at once.
pub fn parse_authorized_keys(text: &str) -> AuthorizedKeys {
    let mut out = AuthorizedKeys::default();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        match parse_authorized_key(line) {
            Ok(Some(mut key)) => {
                for message in key.warnings.drain(..) {
                    out.warnings.push(LineProblem {
                        line: number,
                        message,
                    });
                }
                out.keys.push((number, key));
            }
            Ok(None) => {}
            Err(message) => out.errors.push(LineProblem {
                line: number,
                message,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests;
