//! Quoting untrusted input in error messages: a bounded excerpt, so that a huge or hostile
//! value never makes a huge error (or log line).

/// At most `max_chars` characters of `s`, with `…` where it was cut.
pub fn excerpt(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_characters_and_marks_the_cut() {
        assert_eq!(excerpt("short", 8), "short");
        assert_eq!(excerpt("éééé", 2), "éé…");
        assert_eq!(excerpt("", 0), "");
    }
}
