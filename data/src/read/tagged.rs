//! POS-tagged text (People's Daily 1998 style: `word/tag` tokens separated by spaces, named
//! entities bracketed as `[word/tag word/tag]nt`) back to plain text.

/// One tagged line as plain text: brackets and `/tag` suffixes dropped, tokens joined without
/// spaces (the text is Chinese).
pub fn strip_pos_tags(line: &str) -> String {
    line.split_whitespace()
        .map(|tok| {
            let tok = tok.trim_start_matches('[');
            let tok = match tok.rfind(']') {
                Some(i) if i > 0 => &tok[..i],
                _ => tok,
            };
            tok.rsplit_once('/').map_or(tok, |(w, _)| w)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn strips_tags_and_brackets() {
        let line = "19980101-01-001-002/m  中共中央/nt  [中央/n 人民/n 广播/vn 电台/n]nt  １２月/t";
        assert_eq!(
            super::strip_pos_tags(line),
            "19980101-01-001-002中共中央中央人民广播电台１２月"
        );
    }
}
