//! Reading `authorized_keys` lines and files.

use super::options::{KeyOptions, parse_options};
use super::{PublicKeyData, is_key_type};

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
