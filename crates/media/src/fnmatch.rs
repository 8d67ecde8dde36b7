//! A small `fnmatch(3)` (flags = 0) for module aliases and path globs.

/// Matches `text` against a shell wildcard `pattern` with `fnmatch(pattern, text, 0)` semantics:
///
/// * `*` matches any sequence of characters, including an empty one and `/`;
/// * `?` matches exactly one character;
/// * `[...]` matches one character from a set: single characters, ranges `a-z`, negation with a
///   leading `!` or `^`; a `]` right after the opening `[` (or after the negation mark) is a
///   literal member; a `-` first or last is literal; an unterminated `[` matches a literal `[`;
/// * `\x` matches the character `x` literally (also inside brackets).
///
/// Matching is on Unicode scalar values; module aliases and sysfs `modalias` strings are ASCII.
/// The algorithm backtracks only to the most recent `*`, so it runs in `O(len(pattern) *
/// len(text))` time in the worst case.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position after the last `*` seen in the pattern, and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                // Collapse runs of stars.
                while p.get(pi) == Some(&'*') {
                    pi += 1;
                }
                if pi == p.len() {
                    return true;
                }
                star = Some((pi, ti));
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match match_bracket(&p, pi, t[ti]) {
                BracketResult::Match(next) => Some(next),
                BracketResult::NoMatch => None,
                BracketResult::Literal => (t[ti] == '[').then_some(pi + 1),
            },
            Some('\\') => match p.get(pi + 1) {
                Some(&c) => (c == t[ti]).then_some(pi + 2),
                None => (t[ti] == '\\').then_some(pi + 1),
            },
            Some(&c) => (c == t[ti]).then_some(pi + 1),
            None => None,
        };
        match step {
            Some(next) => {
                pi = next;
                ti += 1;
            }
            None => match star {
                Some((sp, st)) => {
                    // Let the last star absorb one more character and retry.
                    pi = sp;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    while p.get(pi) == Some(&'*') {
        pi += 1;
    }
    pi == p.len()
}

enum BracketResult {
    /// Matched; the value is the pattern index after the closing `]`.
    Match(usize),
    NoMatch,
    /// No closing `]`: the `[` is an ordinary character.
    Literal,
}

fn match_bracket(p: &[char], open: usize, c: char) -> BracketResult {
    let mut i = open + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let Some(&ch) = p.get(i) else {
            return BracketResult::Literal;
        };
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        // One (possibly escaped) member character.
        let (lo, after_lo) = if ch == '\\' {
            match p.get(i + 1) {
                Some(&e) => (e, i + 2),
                None => return BracketResult::Literal,
            }
        } else {
            (ch, i + 1)
        };
        // Range `lo-hi` unless the `-` is followed by the closing `]`.
        if p.get(after_lo) == Some(&'-') && p.get(after_lo + 1).is_some_and(|&n| n != ']') {
            let hi_idx = after_lo + 1;
            let (hi, after_hi) = if p[hi_idx] == '\\' {
                match p.get(hi_idx + 1) {
                    Some(&e) => (e, hi_idx + 2),
                    None => return BracketResult::Literal,
                }
            } else {
                (p[hi_idx], hi_idx + 1)
            };
            if lo <= c && c <= hi {
                matched = true;
            }
            i = after_hi;
        } else {
            if lo == c {
                matched = true;
            }
            i = after_lo;
        }
    }
    if matched != negate {
        BracketResult::Match(i)
    } else {
        BracketResult::NoMatch
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn basics() {
        assert!(fnmatch("", ""));
        assert!(!fnmatch("", "a"));
        assert!(fnmatch("*", ""));
        assert!(fnmatch("*", "a/b"));
        assert!(fnmatch("a?c", "abc"));
        assert!(!fnmatch("a?c", "ac"));
        assert!(fnmatch("a*c", "abbbbc"));
        assert!(fnmatch("a*c", "ac"));
        assert!(!fnmatch("a*c", "acb"));
        assert!(fnmatch("a*b*c*d", "aXbYbZcQd"));
        assert!(fnmatch("**a**", "xxa"));
        assert!(fnmatch(
            "kernel/drivers/ata/*",
            "kernel/drivers/ata/ahci.ko"
        ));
        assert!(fnmatch(
            "kernel/drivers/ata/*",
            "kernel/drivers/ata/sub/x.ko"
        ));
        assert!(!fnmatch(
            "kernel/drivers/ata/*",
            "kernel/drivers/scsi/sd_mod.ko"
        ));
    }

    #[test]
    fn brackets() {
        assert!(fnmatch("[abc]", "b"));
        assert!(!fnmatch("[abc]", "d"));
        assert!(fnmatch("[a-c]x", "bx"));
        assert!(!fnmatch("[a-c]x", "dx"));
        assert!(fnmatch("[!a-c]", "d"));
        assert!(fnmatch("[^a-c]", "d"));
        assert!(!fnmatch("[!a-c]", "a"));
        assert!(fnmatch("[]]", "]"));
        assert!(fnmatch("[!]]", "a"));
        assert!(!fnmatch("[!]]", "]"));
        assert!(fnmatch("[a-]", "-"));
        assert!(fnmatch("[-a]", "-"));
        assert!(fnmatch("[0-9A-F]", "C"));
        assert!(fnmatch("a[", "a["));
        assert!(!fnmatch("a[", "ab"));
        assert!(fnmatch("[\\]]", "]"));
        assert!(fnmatch("\\*", "*"));
        assert!(!fnmatch("\\*", "a"));
    }

    #[test]
    fn modaliases() {
        let m = "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01";
        assert!(fnmatch("pci:v*d*sv*sd*bc01sc06i01*", m));
        assert!(!fnmatch("pci:v*d*sv*sd*bc01sc08i02*", m));
        assert!(fnmatch("pci:v00008086d00002922sv*sd*bc*sc*i*", m));
        assert!(fnmatch(
            "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*",
            "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00"
        ));
        assert!(fnmatch("virtio:d00000002v*", "virtio:d00000002v00001AF4"));
        assert!(fnmatch("acpi*:PNP0A0[38]:*", "acpi:PNP0A08:"));
        assert!(!fnmatch("acpi*:PNP0A0[38]:*", "acpi:PNP0A05:"));
    }

    #[test]
    fn pathological_is_fast() {
        let text = "a".repeat(200);
        let pat = format!("{}b", "a*".repeat(50));
        assert!(!fnmatch(&pat, &text));
    }
}
