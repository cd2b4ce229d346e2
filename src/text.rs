//! Text from outside (servers, fleet reports) made safe to print and to store.

/// Escape control characters (and the escape character itself) so a hostile hostname,
/// error body or message cannot move the cursor, recolour or rewrite a terminal, in the
/// output now or in `status` later.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        // Controls, line separators and bidirectional overrides (which reorder what
        // follows them on screen).
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' || bidi {
            out.extend(c.escape_default());
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}
