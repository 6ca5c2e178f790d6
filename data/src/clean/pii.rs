//! Removal of personal and contact data: e-mail addresses, IP addresses, phone numbers, URLs.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Which kinds to remove and what to put in their place.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemovePiiConfig {
    pub emails: bool,
    pub ips: bool,
    pub phones: bool,
    pub urls: bool,
    /// Text put where something was removed.
    pub replacement: String,
}

impl Default for RemovePiiConfig {
    fn default() -> Self {
        RemovePiiConfig {
            emails: true,
            ips: true,
            phones: true,
            urls: true,
            replacement: String::new(),
        }
    }
}

#[derive(Debug)]
pub struct RemovePii {
    /// Each pattern, and whether trailing punctuation of a match is given back (URLs: the
    /// comma or full stop after a link belongs to the sentence).
    patterns: Vec<(Regex, bool)>,
    replacement: String,
}

// Order matters: URLs first (they may contain e-mail-like and IP-like parts), then e-mails,
// then IPs (before phones, whose digit runs would otherwise eat dotted quads).
// `(?-u:\b)`: an ASCII word boundary, so a link or address right after Chinese text (which
// Unicode counts as word characters) still starts a match.
const URL: &str = r"(?i)(?-u:\b)(?:https?|ftp)://[^\s<>\x22'，。；！？、）)】\p{Han}]+|(?-u:\b)www\.[a-z0-9-]+(?:\.[a-z0-9-]+)+[^\s<>\x22'，。；！？、）)】\p{Han}]*";
const EMAIL: &str = r"(?i)(?-u:\b)[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}(?-u:\b)";
const IPV4: &str =
    r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?-u:\b)";
const IPV6: &str = r"(?i)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b(?:[0-9a-f]{1,4}:){1,7}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?";
// Mainland mobile numbers (1[3-9] + 9 digits, optional +86), landlines with area code
// (0xx-xxxxxxxx), and international/North-American forms with separators.
const PHONE: &str = r"(?:(?:\+|00)86[ -]?)?(?-u:\b)1[3-9]\d{9}(?-u:\b)|(?-u:\b)0\d{2,3}[- ]\d{7,8}(?-u:\b)|\+\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ -]?\d{2,4}){2,4}(?-u:\b)|\(\d{3}\) ?\d{3}[ -]\d{4}(?-u:\b)|(?-u:\b)\d{3}-\d{3}-\d{4}(?-u:\b)";

impl RemovePii {
    pub fn new(cfg: &RemovePiiConfig) -> Self {
        let mut patterns = Vec::new();
        let mut add = |on: bool, re: &str, trim: bool| {
            if on {
                patterns.push((Regex::new(re).expect("the PII patterns are valid"), trim));
            }
        };
        add(cfg.urls, URL, true);
        add(cfg.emails, EMAIL, false);
        add(cfg.ips, IPV4, false);
        add(cfg.ips, IPV6, false);
        add(cfg.phones, PHONE, false);
        RemovePii {
            patterns,
            replacement: cfg.replacement.clone(),
        }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut out = std::borrow::Cow::Borrowed(text);
        for (re, trim) in &self.patterns {
            let replaced = re.replace_all(&out, |caps: &regex::Captures<'_>| {
                let m = &caps[0];
                let kept = if *trim {
                    m.trim_end_matches(['.', ',', ';', ':', '!', '?', '\''])
                } else {
                    m
                };
                format!("{}{}", self.replacement, &m[kept.len()..])
            });
            if let std::borrow::Cow::Owned(s) = replaced {
                out = std::borrow::Cow::Owned(s);
            }
        }
        out.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_each_kind() {
        let pii = RemovePii::new(&RemovePiiConfig {
            replacement: "<X>".into(),
            ..Default::default()
        });
        let cases = [
            ("联系zhang.san@baai.ac.cn谢谢", "联系<X>谢谢"),
            ("see https://example.com/a?b=1, ok", "see <X>, ok"),
            ("链接https://baai.ac.cn/x谢谢", "链接<X>谢谢"),
            ("访问www.baai.ac.cn/news。", "访问<X>。"),
            ("server 192.168.1.254 up", "server <X> up"),
            (
                "v6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 end",
                "v6 <X> end",
            ),
            ("手机13812345678或010-62345678", "手机<X>或<X>"),
            ("call +1 415 555 2671 now", "call <X> now"),
            ("call (415) 555-2671 now", "call <X> now"),
        ];
        for (input, want) in cases {
            assert_eq!(pii.apply(input), want, "{input}");
        }
    }

    #[test]
    fn leaves_ordinary_numbers_alone() {
        let pii = RemovePii::new(&RemovePiiConfig::default());
        for keep in [
            "1998年1月1日",
            "版本 3.14.159",
            "共 256.5 元",
            "ISBN 978-7-111",
            "999.1.1.1",
        ] {
            assert_eq!(pii.apply(keep), keep);
        }
    }
}
