//! Attacker-controlled text (finding titles, user agents, domains, alarm
//! descriptions) ends up in logs, records and notices. It is capped and has
//! its control characters escaped before it is stored anywhere, so it cannot
//! forge log lines, hide text with terminal escapes, or blow up a notice.

/// Default cap for free text copied from an event.
pub const TEXT_CAP: usize = 512;
/// Cap for identifiers and names.
pub const NAME_CAP: usize = 256;

/// Returns `s` with control characters escaped (`\n` → `\\n`, others as
/// `\u{..}`) and cut to at most `cap` characters, marking a cut with `…`.
pub fn clean(s: &str, cap: usize) -> String {
    let mut out = String::with_capacity(s.len().min(cap * 4 + 4));
    // Counted in output characters, so escapes cannot stretch the cap.
    let mut count = 0usize;
    let mut escaped = String::new();
    for c in s.chars() {
        escaped.clear();
        let piece: &str = match c {
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            // Bidirectional overrides can make a log line read differently
            // from what it contains.
            c if c.is_control()
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c) =>
            {
                use std::fmt::Write;
                let _ = write!(escaped, "\\u{{{:x}}}", c as u32);
                &escaped
            }
            // The common case: no allocation per character.
            c => {
                if count + 1 > cap {
                    out.push('…');
                    return out;
                }
                out.push(c);
                count += 1;
                continue;
            }
        };
        let len = piece.chars().count();
        if count + len > cap {
            out.push('…');
            return out;
        }
        out.push_str(piece);
        count += len;
    }
    out
}

/// [`clean`] with the default cap for free text.
pub fn text(s: &str) -> String {
    clean(s, TEXT_CAP)
}

/// [`clean`] with the cap for names and identifiers.
pub fn name(s: &str) -> String {
    clean(s, NAME_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_and_caps() {
        assert_eq!(clean("a\nb\x1b[31m", 100), "a\\nb\\u{1b}[31m");
        assert_eq!(clean("abcdef", 3), "abc…");
        assert_eq!(clean("\u{202e}evil", 100), "\\u{202e}evil");
        assert_eq!(clean("ünïcode", 100), "ünïcode");
    }
}
