//! The kernel command line, as far as sysclone reads it.

use std::collections::BTreeMap;

/// `key=value` and bare `key` words of the kernel command line (quotes honoured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline(pub BTreeMap<String, String>);

impl Cmdline {
    pub fn parse(text: &str) -> Cmdline {
        let mut map = BTreeMap::new();
        let mut word = String::new();
        let mut quoted = false;
        let mut words = Vec::new();
        for c in text.trim().chars() {
            match c {
                '"' => quoted = !quoted,
                c if c.is_whitespace() && !quoted => words.push(std::mem::take(&mut word)),
                c => word.push(c),
            }
        }
        words.push(word);
        for w in words.into_iter().filter(|w| !w.is_empty()) {
            let (k, v) = w.split_once('=').unwrap_or((&w, ""));
            if k.is_empty() {
                continue; // "=value" names nothing (the kernel ignores it too)
            }
            map.insert(k.to_string(), v.to_string());
        }
        Cmdline(map)
    }

    pub fn read() -> Cmdline {
        Cmdline::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_words_and_quotes() {
        let c = Cmdline::parse("console=ttyS0 quiet sysclone.job=/sysclone/job.toml foo=\"a b\"\n");
        assert_eq!(c.get("console"), Some("ttyS0"));
        assert!(c.has("quiet"));
        assert_eq!(c.get("sysclone.job"), Some("/sysclone/job.toml"));
        assert_eq!(c.get("foo"), Some("a b"));
        assert_eq!(c.get("nope"), None);
        assert_eq!(Cmdline::parse(""), Cmdline::default());
    }

    /// Found by fuzzing (fuzz/fuzz_targets/kernel_cmdline.rs): a word `=value` was kept
    /// under an empty key.
    #[test]
    fn word_without_key_is_ignored() {
        let c = Cmdline::parse("toml sysclone.mode=list =UUID=1234 ro =");
        assert_eq!(c.0.keys().collect::<Vec<_>>(), ["ro", "sysclone.mode", "toml"]);
        assert_eq!(c.get(""), None);
    }
}
