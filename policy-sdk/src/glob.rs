//! Shell-style wildcards, as OpenSSH uses them in `from=` patterns and as
//! policies may use them for worker names.
//!
//! ```
//! use keygate_policy_sdk::glob::glob_match;
//!
//! assert!(glob_match("main-*", "main-worker-3"));
//! assert!(glob_match("ci-??", "ci-07"));
//! assert!(!glob_match("ci-??", "ci-100"));
//! ```

/// Whether `text` matches `pattern` as a whole: `*` matches any run of
/// characters (none included), `?` exactly one character, and every other
/// character itself. There is no escape and no character class; matching is
/// case-sensitive and counts Unicode characters, not bytes.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (mut p, mut t) = (pattern, text);
    // After a `*`: the pattern following it, and where in the text the run
    // it matches currently ends. On a mismatch the run grows by one.
    let mut star: Option<(&str, &str)> = None;
    loop {
        let mut pattern_rest = p.chars();
        let mut text_rest = t.chars();
        match (pattern_rest.next(), text_rest.next()) {
            (Some('*'), _) => {
                p = pattern_rest.as_str();
                star = Some((p, t));
            }
            (Some(c), Some(d)) if c == '?' || c == d => {
                p = pattern_rest.as_str();
                t = text_rest.as_str();
            }
            (None, None) => return true,
            _ => {
                let Some((after_star, run_end)) = star else {
                    return false;
                };
                let mut longer = run_end.chars();
                if longer.next().is_none() {
                    return false;
                }
                p = after_star;
                t = longer.as_str();
                star = Some((after_star, t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn wildcards() {
        assert!(glob_match("10.*.1", "10.200.1"));
        assert!(glob_match("*", ""));
        assert!(glob_match("**", "anything"));
        assert!(glob_match("1?.0.0.1", "12.0.0.1"));
        assert!(!glob_match("1?.0.0.1", "1.0.0.1"));
        assert!(!glob_match("10.*", "11.0.0.1"));
        assert!(glob_match("a*b*c", "a-b-b-c"));
        assert!(!glob_match("a*b*c", "a-b-b-"));
        assert!(glob_match("*-worker", "data-worker"));
        assert!(!glob_match("*-worker", "data-worker-2"));
    }

    #[test]
    fn whole_text_only() {
        assert!(glob_match("main", "main"));
        assert!(!glob_match("main", "main-1"));
        assert!(!glob_match("main", "mai"));
        assert!(!glob_match("", "x"));
        assert!(glob_match("", ""));
        assert!(!glob_match("?", ""));
    }

    #[test]
    fn counts_characters_not_bytes() {
        assert!(glob_match("caf?", "café"));
        assert!(!glob_match("caf??", "café"));
        assert!(!glob_match("Main-*", "main-1"));
    }
}
