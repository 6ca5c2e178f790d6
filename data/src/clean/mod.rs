//! Cleaners: rewrite a document's text in place (they never drop a document).

pub mod pii;

pub use pii::{RemovePii, RemovePiiConfig};

use unicode_normalization::UnicodeNormalization;

/// Unicode NFKC (compatibility composition: full-width forms, ligatures, circled digits...).
pub fn nfkc(text: &str) -> String {
    text.nfkc().collect()
}

/// Full-width ASCII variants (U+FF01..U+FF5E) to ASCII, and the ideographic space to a space.
pub fn fullwidth_to_halfwidth(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect()
}

/// Removes control characters (keeping `\n` and `\t`) and invisible format characters
/// (zero-width spaces and joiners, byte-order marks, soft hyphens) that break matching.
pub fn remove_control_chars(text: &str) -> String {
    text.chars()
        .filter(|&c| {
            let invisible = matches!(
                c,
                '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}'
            );
            !invisible && (!c.is_control() || c == '\n' || c == '\t')
        })
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect()
}

/// Collapses runs of horizontal whitespace to one space, trims every line, turns `\r\n` and
/// `\r` into `\n`, keeps at most `max_newlines` consecutive line breaks, and trims the text.
pub fn normalize_whitespace(text: &str, max_newlines: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_newlines = 0usize;
    let unified = text.replace("\r\n", "\n").replace('\r', "\n");
    for line in unified.split('\n') {
        let mut words = line
            .split(|c: char| c.is_whitespace())
            .filter(|w| !w.is_empty())
            .peekable();
        if words.peek().is_none() {
            pending_newlines += 1;
            continue;
        }
        if !out.is_empty() {
            out.extend(std::iter::repeat_n(
                '\n',
                (pending_newlines + 1).min(max_newlines.max(1)),
            ));
        }
        pending_newlines = 0;
        let mut first = true;
        for w in words {
            if !first {
                out.push(' ');
            }
            out.push_str(w);
            first = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_and_nfkc() {
        assert_eq!(fullwidth_to_halfwidth("ＡＢＣ１２３！　ｘ"), "ABC123! x");
        assert_eq!(nfkc("ﬁ①ＡＢ"), "fi1AB");
        assert_eq!(fullwidth_to_halfwidth("中文，标点。"), "中文,标点。");
    }

    #[test]
    fn control_and_whitespace() {
        assert_eq!(
            remove_control_chars("a\u{0}b\u{200B}c\td\u{7F}\n"),
            "abc d\n"
        );
        assert_eq!(
            normalize_whitespace("  a   b \r\n\r\n\r\n\n c\u{3000}d  \n", 2),
            "a b\n\nc d"
        );
        assert_eq!(normalize_whitespace("x\n\n\ny", 1), "x\ny");
        assert_eq!(normalize_whitespace("x\ny", 2), "x\ny");
        assert_eq!(normalize_whitespace(" \n ", 2), "");
    }
}
