//! Phone numbers as callers present them: the check of a number and the
//! prefix rules (`rewrite`) that bring `+7...` and `8...` to one form. The
//! callback's permit list and the alert line's caller lookup share them.

use serde::Deserialize;

/// Most digits a number may have (E.164 allows 15; local prefixes add a few).
pub const MAX_DIGITS: usize = 20;

/// A prefix rule bringing caller IDs to one form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    pub prefix: String,
    pub replace: String,
    /// Apply only when the number has exactly this many digits.
    #[serde(default)]
    pub digits: Option<usize>,
}

/// ASCII digits with an optional leading `+`, 1 to [`MAX_DIGITS`] digits.
/// (`is_ascii_digit`, never `is_numeric`: other scripts' digits are refused.)
pub fn valid_number(s: &[u8]) -> bool {
    let digits = s.strip_prefix(b"+").unwrap_or(s);
    !digits.is_empty() && digits.len() <= MAX_DIGITS && digits.iter().all(u8::is_ascii_digit)
}

/// Applies the first matching rewrite rule.
pub fn rewrite(number: &str, rules: &[Rewrite]) -> String {
    let digits = number.trim_start_matches('+').len();
    for r in rules {
        if r.digits.is_some_and(|d| d != digits) {
            continue;
        }
        if let Some(rest) = number.strip_prefix(r.prefix.as_str()) {
            return format!("{}{rest}", r.replace);
        }
    }
    number.to_string()
}

/// Checks rewrite rules; the error names the rule (`{key}[i]`).
pub fn check_rules(key: &str, rules: &[Rewrite]) -> Result<(), String> {
    for (i, r) in rules.iter().enumerate() {
        let ok_prefix = !r.prefix.is_empty() && valid_number(r.prefix.as_bytes());
        let ok_replace = r.replace.is_empty() || valid_number(r.replace.as_bytes());
        if !ok_prefix || !ok_replace {
            return Err(format!(
                "{key}[{i}]: prefix and replace must be digits with an optional leading '+' (prefix not empty)"
            ));
        }
        if r.digits.is_some_and(|d| d == 0 || d > MAX_DIGITS) {
            return Err(format!("{key}[{i}].digits must be 1..={MAX_DIGITS}"));
        }
    }
    Ok(())
}
