//! Text units the filters count: words (CJK-aware), lines, paragraphs, and the punctuation
//! sets datatrove's filters use (facts from datatrove 0.10.1's `utils/text.py`).

/// Python's `str.isspace`: Unicode whitespace plus the separators U+001C..U+001F.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&c)
}

/// Han ideographs, kana and Hangul syllables: written without spaces, so each is a word.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F
        | 0x3040..=0x30FF | 0x31F0..=0x31FF | 0xAC00..=0xD7AF)
}

const PUNCT_EXTRA: [u32; 34] = [
    0xAB, 0xB4, 0xBB, 0x2013, 0x2014, 0x2019, 0x201C, 0x201D, 0x201E, 0x2026, 0x2236, 0x2501,
    0x25BA, 0x3001, 0x3002, 0x3008, 0x3009, 0x300A, 0x300B, 0x300C, 0x300D, 0x3010, 0x3011, 0xFF01,
    0xFF05, 0xFF08, 0xFF09, 0xFF0C, 0xFF0E, 0xFF11, 0xFF1A, 0xFF1B, 0xFF1F, 0xFF5E,
];

/// datatrove's `PUNCTUATION`: ASCII punctuation, common CJK and typographic marks, and
/// control characters other than tab and newline.
pub fn is_punctuation(c: char) -> bool {
    let u = c as u32;
    c.is_ascii_punctuation()
        || PUNCT_EXTRA.contains(&u)
        || matches!(u, 0x00..=0x08 | 0x0B..=0x1F | 0x7F..=0x9F)
}

/// datatrove's `TERMINAL_PUNCTUATION`: sentence-ending marks across scripts.
const TERMINAL: &[(u32, u32)] = &[
    (0x21, 0x21),
    (0x2E, 0x2E),
    (0x3F, 0x3F),
    (0x589, 0x589),
    (0x61D, 0x61F),
    (0x6D4, 0x6D4),
    (0x700, 0x702),
    (0x7F9, 0x7F9),
    (0x837, 0x837),
    (0x839, 0x839),
    (0x83D, 0x83E),
    (0x964, 0x965),
    (0x104A, 0x104B),
    (0x1362, 0x1362),
    (0x1367, 0x1368),
    (0x166E, 0x166E),
    (0x1735, 0x1736),
    (0x17D4, 0x17D6),
    (0x17D9, 0x17DA),
    (0x1803, 0x1803),
    (0x1809, 0x1809),
    (0x1944, 0x1945),
    (0x1AA8, 0x1AAB),
    (0x1B5A, 0x1B5B),
    (0x1B5E, 0x1B5F),
    (0x1B7D, 0x1B7E),
    (0x1C3B, 0x1C3C),
    (0x1C7E, 0x1C7F),
    (0x203C, 0x203D),
    (0x2047, 0x2049),
    (0x2E2E, 0x2E2E),
    (0x2E3C, 0x2E3C),
    (0x2E53, 0x2E54),
    (0x3002, 0x3002),
    (0xA4FF, 0xA4FF),
    (0xA60E, 0xA60F),
    (0xA6F3, 0xA6F3),
    (0xA6F7, 0xA6F7),
    (0xA876, 0xA877),
    (0xA8CE, 0xA8CF),
    (0xA92F, 0xA92F),
    (0xA9C8, 0xA9C9),
    (0xAA5D, 0xAA5F),
    (0xAAF0, 0xAAF1),
    (0xABEB, 0xABEB),
    (0xFE52, 0xFE52),
    (0xFE56, 0xFE57),
    (0xFF01, 0xFF01),
    (0xFF0E, 0xFF0E),
    (0xFF1F, 0xFF1F),
    (0xFF61, 0xFF61),
    (0x10A56, 0x10A57),
    (0x10F55, 0x10F59),
    (0x10F86, 0x10F89),
    (0x11047, 0x11048),
    (0x110BE, 0x110C1),
    (0x11141, 0x11143),
    (0x111C5, 0x111C6),
    (0x111CD, 0x111CD),
    (0x111DE, 0x111DF),
    (0x11238, 0x11239),
    (0x1123B, 0x1123C),
    (0x112A9, 0x112A9),
    (0x1144B, 0x1144C),
    (0x115C2, 0x115C3),
    (0x115C9, 0x115D7),
    (0x11641, 0x11642),
    (0x1173C, 0x1173E),
    (0x11944, 0x11944),
    (0x11946, 0x11946),
    (0x11A42, 0x11A43),
    (0x11A9B, 0x11A9C),
    (0x11C41, 0x11C42),
    (0x11EF7, 0x11EF8),
    (0x11F43, 0x11F44),
    (0x16A6E, 0x16A6F),
    (0x16AF5, 0x16AF5),
    (0x16B37, 0x16B38),
    (0x16B44, 0x16B44),
    (0x16E98, 0x16E98),
    (0x1BC9F, 0x1BC9F),
    (0x1DA88, 0x1DA88),
];

pub fn is_terminal_punctuation(c: char) -> bool {
    let u = c as u32;
    TERMINAL.iter().any(|&(lo, hi)| (lo..=hi).contains(&u))
}

/// Words as the quality filters count them. Text splits at whitespace; each CJK character is a
/// word of its own (Chinese is written without spaces: character n-grams stand in for a
/// segmenter); leading and trailing punctuation of a chunk become one-character tokens, as in
/// spaCy's prefix and suffix rules, while inner punctuation (`don't`, `3.14`) stays.
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for chunk in text.split(is_py_space).filter(|c| !c.is_empty()) {
        let mut run_start: Option<usize> = None;
        for (i, c) in chunk.char_indices() {
            if is_cjk(c) {
                if let Some(s) = run_start.take() {
                    push_run(&chunk[s..i], &mut out);
                }
                out.push(&chunk[i..i + c.len_utf8()]);
            } else if run_start.is_none() {
                run_start = Some(i);
            }
        }
        if let Some(s) = run_start {
            push_run(&chunk[s..], &mut out);
        }
    }
    out
}

fn is_split_punct(c: char) -> bool {
    is_punctuation(c)
        || is_terminal_punctuation(c)
        || matches!(c, '，' | '；' | '：' | '“' | '”' | '‘' | '’' | '（' | '）')
}

fn push_run<'a>(run: &'a str, out: &mut Vec<&'a str>) {
    let start = run
        .char_indices()
        .find(|&(_, c)| !is_split_punct(c))
        .map(|(i, _)| i)
        .unwrap_or(run.len());
    for (i, c) in run[..start].char_indices() {
        out.push(&run[i..i + c.len_utf8()]);
    }
    let rest = &run[start..];
    let end = rest
        .char_indices()
        .rev()
        .find(|&(_, c)| !is_split_punct(c))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    if end > 0 {
        out.push(&rest[..end]);
    }
    for (i, c) in rest[end..].char_indices() {
        out.push(&rest[end + i..end + i + c.len_utf8()]);
    }
}

/// Python's `str.splitlines()`.
pub fn splitlines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{0B}'
                | '\u{0C}'
                | '\u{1C}'
                | '\u{1D}'
                | '\u{1E}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            out.push(&text[start..i]);
            let mut next = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = chars.peek() {
                    chars.next();
                    next = j + 1;
                }
            }
            start = next;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Number of characters (Python's `len` on `str`).
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_cjk_and_peel_punctuation() {
        assert_eq!(
            words("Hello, world! Don't stop."),
            ["Hello", ",", "world", "!", "Don't", "stop", "."]
        );
        assert_eq!(
            words("我爱北京。Hi 3.14"),
            ["我", "爱", "北", "京", "。", "Hi", "3.14"]
        );
        assert_eq!(words("  (quoted)  "), ["(", "quoted", ")"]);
        assert!(words(" \n ").is_empty());
    }

    #[test]
    fn splitlines_like_python() {
        assert_eq!(splitlines("a\nb\r\nc\rd\n"), ["a", "b", "c", "d"]);
        assert_eq!(splitlines("\n\nx"), ["", "", "x"]);
        assert!(splitlines("").is_empty());
    }

    #[test]
    fn punctuation_sets() {
        assert!(is_punctuation('#') && is_punctuation('、') && is_punctuation('\u{1}'));
        assert!(!is_punctuation('\n') && !is_punctuation('a'));
        assert!(
            is_terminal_punctuation('。')
                && is_terminal_punctuation('?')
                && !is_terminal_punctuation(',')
        );
    }
}
