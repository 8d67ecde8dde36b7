//! Identifier references in the text files that decide what a Linux system mounts and boots,
//! found by context and rewritten in place.
//!
//! Pure text: nothing here touches a disk. [`find_refs`] lists every reference in a file;
//! [`rewrite`] replaces the UUIDs and PARTUUIDs of an [`IdMap`] and keeps every other byte
//! (comments, spacing, quoting, line endings, unrelated hex strings) as it was.
//!
//! A reference is an identifier in one of these contexts (the key must start a word: not be
//! preceded by a letter, digit, `.`, `_`, `-` or `/`, so `PARTUUID=` is not also `UUID=` and
//! `GRUB_DEVICE_UUID=` is neither):
//!
//! - `UUID=`, `PARTUUID=`, `LABEL=`, `PARTLABEL=` (optionally quoted; also inside `root=UUID=`,
//!   `resume=UUID=`, `cryptdevice=UUID=…:name`, `RESUME=UUID=`),
//! - `/dev/disk/by-uuid/`, `/dev/disk/by-partuuid/`, `/dev/disk/by-label/`,
//!   `/dev/disk/by-partlabel/`,
//! - `rd.luks.uuid=` / `luks.uuid=` (with or without the `luks-` prefix), and the UUID before
//!   the `=` of `rd.luks.name=`, `rd.luks.options=`, `rd.luks.key=` (and their `luks.` forms),
//! - GRUB only: the name of `search --fs-uuid`/`-u`, `search.fs_uuid`, `search --label`/`-l`,
//!   `search.fs_label` (the first word that is not an option), `cryptomount -u` (GRUB writes
//!   that UUID without dashes), and the UUID that ends a menu entry id (`gnulinux-simple-<uuid>`,
//!   `gnulinux-6.1.0-13-amd64-advanced-<uuid>`, `osprober-efi-<serial>`), which grubenv's
//!   `saved_entry` and `GRUB_DEFAULT` repeat.
//!
//! Lines whose first non-blank character is `#` are comments and are skipped (in all files
//! but `/etc/kernel/cmdline`). In systemd-boot entries only `options` lines hold references.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Result};
use serde::Serialize;

/// What a file is, which decides where references can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FileKind {
    /// `/etc/fstab`.
    Fstab,
    /// `/etc/crypttab` (and `crypttab.initramfs`).
    Crypttab,
    /// A systemd-boot / Boot Loader Specification entry (`loader/entries/*.conf`).
    LoaderEntry,
    /// GRUB's `grub.cfg` (also the small one on the ESP that chains to /boot).
    GrubCfg,
    /// GRUB's environment block (`grubenv`: `kernelopts=`, `saved_entry=`). Its size is fixed.
    GrubEnv,
    /// `/etc/default/grub` and `/etc/default/grub.d/*.cfg`.
    DefaultGrub,
    /// `/etc/kernel/cmdline` (no comments).
    KernelCmdline,
    /// Shell-style `KEY=value` files, e.g. initramfs-tools' `conf.d/resume`.
    ShellVars,
}

/// What an identifier names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum RefKind {
    /// A filesystem (or LUKS) UUID or FAT/NTFS serial.
    Uuid,
    /// A partition GUID (or MBR `SSSSSSSS-NN`).
    PartUuid,
    /// A filesystem label.
    Label,
    /// A GPT partition name.
    PartLabel,
    /// The UUID ending a GRUB menu entry id (rewritten, never resolved).
    MenuId,
}

/// One reference found in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ref {
    /// 1-based line number.
    pub line: usize,
    /// Byte range of the identifier as written, within the line.
    pub start: usize,
    pub end: usize,
    pub kind: RefKind,
    /// The identifier as written.
    pub written: String,
    /// The identifier (labels with `\040` / `\x20` escapes decoded).
    pub value: String,
    /// Where it was found: `UUID=`, `/dev/disk/by-uuid/`, `search --fs-uuid`, `menu entry id`, …
    pub context: String,
    /// Written without dashes (GRUB's `cryptomount -u`).
    pub dashless: bool,
}

impl Ref {
    /// The reference as a person would write it: `UUID=1234…`, `search --fs-uuid 1234…`.
    pub fn display(&self) -> String {
        if self.context.ends_with('=') || self.context.ends_with('/') {
            format!("{}{}", self.context, self.written)
        } else {
            format!("{} {}", self.context, self.written)
        }
    }
}

/// One replaced identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineChange {
    /// 1-based line number.
    pub line: usize,
    /// The context (`UUID=`, `search --fs-uuid`, …).
    pub context: String,
    /// The identifier as it was written.
    pub old: String,
    /// What replaced it.
    pub new: String,
}

/// Old → new identifiers, matched case-insensitively (and, for GRUB's `cryptomount -u`,
/// without dashes).
#[derive(Debug, Clone, Default)]
pub struct IdMap {
    by_lower: BTreeMap<String, String>,
    by_dashless: BTreeMap<String, String>,
}

fn is_id_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

impl IdMap {
    /// Checks the map: identifiers are non-empty letters, digits and dashes, no two keys
    /// differ only in case (or dashes), no identifier maps to another old one.
    pub fn new(map: &BTreeMap<String, String>) -> Result<IdMap> {
        let mut m = IdMap::default();
        for (old, new) in map {
            for s in [old, new] {
                ensure!(
                    !s.is_empty()
                        && s.bytes().all(is_id_char)
                        && !s.starts_with('-')
                        && !s.ends_with('-'),
                    "{s:?} is not an identifier (letters, digits and inner dashes only)"
                );
            }
            let lower = old.to_ascii_lowercase();
            let dashless = lower.replace('-', "");
            if let Some(prev) = m.by_lower.insert(lower.clone(), new.clone()) {
                if !prev.eq_ignore_ascii_case(new) {
                    bail!("identifier {old} is mapped twice ({prev} and {new})");
                }
            }
            if let Some(prev) = m.by_dashless.insert(dashless, new.clone()) {
                if !prev.eq_ignore_ascii_case(new) {
                    bail!("identifiers {old} and another one differ only in dashes but map to {prev} and {new}");
                }
            }
        }
        for (old, new) in map {
            ensure!(
                old.eq_ignore_ascii_case(new) || !m.by_lower.contains_key(&new.to_ascii_lowercase()),
                "new identifier {new} (for {old}) is also an old one: the map would rewrite in a chain"
            );
        }
        Ok(m)
    }

    /// The replacement for `r`, in `r`'s form (dashless stays dashless).
    pub fn lookup(&self, r: &Ref) -> Option<String> {
        if !matches!(r.kind, RefKind::Uuid | RefKind::PartUuid | RefKind::MenuId) {
            return None;
        }
        if r.dashless {
            let key = r.value.to_ascii_lowercase().replace('-', "");
            self.by_dashless.get(&key).map(|n| n.replace('-', ""))
        } else {
            self.by_lower.get(&r.value.to_ascii_lowercase()).cloned()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_lower.is_empty()
    }
}

#[derive(Clone, Copy)]
enum Style {
    /// Letters, digits, dashes.
    Id,
    /// [`Style::Id`] after an optional `luks-`.
    LuksId,
    /// [`Style::Id`] followed by `=` (`rd.luks.name=<uuid>=root`); otherwise no reference.
    IdBeforeEq,
    /// Up to white space or the closing quote; escapes decoded.
    Label,
}

const KEYS: &[(&str, RefKind, Style)] = &[
    ("UUID=", RefKind::Uuid, Style::Id),
    ("PARTUUID=", RefKind::PartUuid, Style::Id),
    ("LABEL=", RefKind::Label, Style::Label),
    ("PARTLABEL=", RefKind::PartLabel, Style::Label),
    ("/dev/disk/by-uuid/", RefKind::Uuid, Style::Id),
    ("/dev/disk/by-partuuid/", RefKind::PartUuid, Style::Id),
    ("/dev/disk/by-label/", RefKind::Label, Style::Label),
    ("/dev/disk/by-partlabel/", RefKind::PartLabel, Style::Label),
    ("rd.luks.uuid=", RefKind::Uuid, Style::LuksId),
    ("luks.uuid=", RefKind::Uuid, Style::LuksId),
    ("rd.luks.name=", RefKind::Uuid, Style::IdBeforeEq),
    ("luks.name=", RefKind::Uuid, Style::IdBeforeEq),
    ("rd.luks.options=", RefKind::Uuid, Style::IdBeforeEq),
    ("luks.options=", RefKind::Uuid, Style::IdBeforeEq),
    ("rd.luks.key=", RefKind::Uuid, Style::IdBeforeEq),
    ("luks.key=", RefKind::Uuid, Style::IdBeforeEq),
];

fn word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/')
}

/// Decodes `\ooo` (fstab, /proc/mounts) and `\xHH` (udev's by-label names).
pub fn decode_escapes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let t = &b[i + 1..i + 4];
            if t.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = u32::from(t[0] - b'0') * 64
                    + u32::from(t[1] - b'0') * 8
                    + u32::from(t[2] - b'0');
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
            if t[0] == b'x' && t[1].is_ascii_hexdigit() && t[2].is_ascii_hexdigit() {
                let h = std::str::from_utf8(&t[1..3]).expect("hex digits are ASCII");
                out.push(u8::from_str_radix(h, 16).expect("two hex digits"));
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn id_run(b: &[u8], from: usize) -> usize {
    let mut e = from;
    while e < b.len() && is_id_char(b[e]) {
        e += 1;
    }
    e
}

fn scan_keys(line: &str, out: &mut Vec<Ref>) {
    let b = line.as_bytes();
    let mut i = 0;
    'outer: while i < b.len() {
        if i > 0 && word_char(b[i - 1]) {
            i += 1;
            continue;
        }
        for &(key, kind, style) in KEYS {
            if !b[i..].starts_with(key.as_bytes()) {
                continue;
            }
            let mut s = i + key.len();
            let quote = b.get(s).copied().filter(|&c| c == b'"' || c == b'\'');
            if quote.is_some() {
                s += 1;
            }
            let e = match style {
                Style::Id => id_run(b, s),
                Style::LuksId => {
                    if b.len() >= s + 5 && b[s..s + 5].eq_ignore_ascii_case(b"luks-") {
                        s += 5;
                    }
                    id_run(b, s)
                }
                Style::IdBeforeEq => {
                    let e = id_run(b, s);
                    if b.get(e) != Some(&b'=') {
                        i = e.max(i + 1);
                        continue 'outer;
                    }
                    e
                }
                Style::Label => {
                    let mut e = s;
                    let stop = |c: u8| match quote {
                        Some(q) => c == q,
                        None => c.is_ascii_whitespace() || c == b'"' || c == b'\'',
                    };
                    while e < b.len() && !stop(b[e]) {
                        e += 1;
                    }
                    e
                }
            };
            if e > s {
                let written = line[s..e].to_string();
                let value = if matches!(style, Style::Label) {
                    decode_escapes(&written)
                } else {
                    written.clone()
                };
                out.push(Ref {
                    line: 0,
                    start: s,
                    end: e,
                    kind,
                    written,
                    value,
                    context: key.to_string(),
                    dashless: false,
                });
            }
            i = e.max(i + 1);
            continue 'outer;
        }
        i += 1;
    }
}

/// Shell-like words of a line with their byte ranges (quotes excluded from the range);
/// `;` is a word of its own.
fn words(line: &str) -> Vec<(usize, usize)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b';' {
            out.push((i, i + 1));
            i += 1;
        } else if c == b'\'' || c == b'"' {
            let e = b[i + 1..]
                .iter()
                .position(|&x| x == c)
                .map_or(b.len(), |p| i + 1 + p);
            out.push((i + 1, e));
            i = e + 1;
        } else {
            let s = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b';' {
                i += 1;
            }
            out.push((s, i));
        }
    }
    out
}

fn scan_grub_commands(line: &str, out: &mut Vec<Ref>) {
    let ws = words(line);
    let text = |w: (usize, usize)| &line[w.0..w.1];
    let mut i = 0;
    while i < ws.len() {
        let cmd = text(ws[i]);
        // Shell keywords before a command: `if true; then search …; fi`.
        if matches!(
            cmd,
            "if" | "then" | "else" | "elif" | "do" | "while" | "until" | "!" | "{"
        ) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < ws.len() && text(ws[j]) != ";" {
            j += 1;
        }
        let args = &ws[i + 1..j];
        let first_plain = || args.iter().copied().find(|&w| !text(w).starts_with('-'));
        let mut push = |w: (usize, usize), kind: RefKind, context: &str, dashless: bool| {
            let written = text(w).to_string();
            let value = if kind == RefKind::Label {
                decode_escapes(&written)
            } else {
                written.clone()
            };
            if !written.is_empty() {
                out.push(Ref {
                    line: 0,
                    start: w.0,
                    end: w.1,
                    kind,
                    written,
                    value,
                    context: context.to_string(),
                    dashless,
                });
            }
        };
        match cmd {
            "search.fs_uuid" => {
                if let Some(w) = first_plain() {
                    push(w, RefKind::Uuid, "search.fs_uuid", false);
                }
            }
            "search.fs_label" => {
                if let Some(w) = first_plain() {
                    push(w, RefKind::Label, "search.fs_label", false);
                }
            }
            "search" => {
                let has = |flags: &[&str]| args.iter().any(|&w| flags.contains(&text(w)));
                let kind = if has(&["--fs-uuid", "-u"]) {
                    Some((RefKind::Uuid, "search --fs-uuid"))
                } else if has(&["--label", "-l"]) {
                    Some((RefKind::Label, "search --label"))
                } else {
                    None
                };
                if let (Some((k, ctx)), Some(w)) = (kind, first_plain()) {
                    push(w, k, ctx, false);
                }
            }
            "cryptomount" => {
                if let Some(p) = args
                    .iter()
                    .position(|&w| matches!(text(w), "-u" | "--uuid"))
                {
                    if let Some(&w) = args.get(p + 1) {
                        let dashless = !text(w).contains('-');
                        push(w, RefKind::Uuid, "cryptomount -u", dashless);
                    }
                }
            }
            _ => {}
        }
        i = j + 1;
    }
}

fn uuid_shaped(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn scan_menu_ids(line: &str, out: &mut Vec<Ref>) {
    let b = line.as_bytes();
    let run_char =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'+' | b'~');
    let mut i = 0;
    while i < b.len() {
        if !run_char(b[i]) {
            i += 1;
            continue;
        }
        let s = i;
        while i < b.len() && run_char(b[i]) {
            i += 1;
        }
        let run = &b[s..i];
        if !(run.starts_with(b"gnulinux-") || run.starts_with(b"osprober-")) {
            continue;
        }
        let hex = |t: &[u8]| t.iter().all(u8::is_ascii_hexdigit);
        let fat = |t: &[u8]| t.len() == 9 && t[4] == b'-' && hex(&t[..4]) && hex(&t[5..]);
        for len in [36usize, 16, 9] {
            if run.len() > len + 9 && run[run.len() - len - 1] == b'-' {
                let t = &run[run.len() - len..];
                let ok = match len {
                    36 => uuid_shaped(t),
                    16 => hex(t),
                    _ => fat(t),
                };
                if ok {
                    let (st, en) = (i - len, i);
                    let written = line[st..en].to_string();
                    out.push(Ref {
                        line: 0,
                        start: st,
                        end: en,
                        kind: RefKind::MenuId,
                        value: written.clone(),
                        written,
                        context: "menu entry id".into(),
                        dashless: false,
                    });
                    break;
                }
            }
        }
    }
}

fn is_comment(kind: FileKind, line: &str) -> bool {
    kind != FileKind::KernelCmdline && line.trim_start().starts_with('#')
}

/// The references on one line (without its line ending), sorted, never overlapping.
fn line_refs(kind: FileKind, line: &str) -> Vec<Ref> {
    let mut out = Vec::new();
    if is_comment(kind, line) {
        return out;
    }
    match kind {
        FileKind::LoaderEntry => {
            let t = line.trim_start();
            if t.strip_prefix("options")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_whitespace()))
            {
                scan_keys(line, &mut out);
            }
        }
        FileKind::Fstab | FileKind::Crypttab | FileKind::KernelCmdline | FileKind::ShellVars => {
            scan_keys(line, &mut out)
        }
        FileKind::GrubCfg => {
            scan_keys(line, &mut out);
            scan_grub_commands(line, &mut out);
            scan_menu_ids(line, &mut out);
        }
        FileKind::GrubEnv | FileKind::DefaultGrub => {
            scan_keys(line, &mut out);
            scan_menu_ids(line, &mut out);
        }
    }
    out.sort_by_key(|r| (r.start, r.end));
    let mut kept: Vec<Ref> = Vec::with_capacity(out.len());
    for r in out {
        if kept.last().is_none_or(|p| p.end <= r.start) {
            kept.push(r);
        }
    }
    kept
}

/// Lines of `text` as (content without the line ending, the line ending).
fn lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_inclusive('\n').map(|l| {
        let body = l.trim_end_matches(['\n', '\r']);
        (body, &l[body.len()..])
    })
}

/// Every reference in `text`, a file of `kind`, in order.
pub fn find_refs(kind: FileKind, text: &str) -> Vec<Ref> {
    let mut out = Vec::new();
    for (n, (body, _)) in lines(text).enumerate() {
        for mut r in line_refs(kind, body) {
            r.line = n + 1;
            out.push(r);
        }
    }
    out
}

/// `text` with every UUID/PARTUUID reference found in `map` replaced (in the form written:
/// dashless stays dashless), and the list of replacements. Everything else is kept byte for
/// byte; when nothing matches the text comes back unchanged.
pub fn rewrite(kind: FileKind, text: &str, map: &IdMap) -> (String, Vec<LineChange>) {
    let mut out = String::with_capacity(text.len());
    let mut changes = Vec::new();
    for (n, (body, ending)) in lines(text).enumerate() {
        let mut pos = 0;
        for r in line_refs(kind, body) {
            if let Some(new) = map.lookup(&r) {
                out.push_str(&body[pos..r.start]);
                out.push_str(&new);
                pos = r.end;
                if new != r.written {
                    changes.push(LineChange {
                        line: n + 1,
                        context: r.context.clone(),
                        old: r.written.clone(),
                        new,
                    });
                }
            }
        }
        out.push_str(&body[pos..]);
        out.push_str(ending);
    }
    (out, changes)
}

/// What a line commented out by [`comment_out`] starts with.
pub const LEFT_OUT_MARK: &str = "# sysclone: left out of the clone: ";

/// `text` with every line that holds a reference `gone` accepts commented out, as
/// `# sysclone: left out of the clone: <the line as it was>`, and the list of those lines
/// (`old` the line, `new` the comment). Only line-per-device files are edited: fstab,
/// crypttab and shell-variable files (initramfs-tools' `resume`); in the others (kernel
/// command lines, GRUB) a line holds more than one device, and they come back unchanged.
pub fn comment_out(
    kind: FileKind,
    text: &str,
    gone: impl Fn(&Ref) -> bool,
) -> (String, Vec<LineChange>) {
    if !matches!(
        kind,
        FileKind::Fstab | FileKind::Crypttab | FileKind::ShellVars
    ) {
        return (text.to_string(), Vec::new());
    }
    let mut out = String::with_capacity(text.len());
    let mut changes = Vec::new();
    for (n, (body, ending)) in lines(text).enumerate() {
        match line_refs(kind, body).into_iter().find(|r| gone(r)) {
            Some(r) => {
                let new = format!("{LEFT_OUT_MARK}{body}");
                out.push_str(&new);
                changes.push(LineChange {
                    line: n + 1,
                    context: format!("{} left out of the clone", r.display()),
                    old: body.to_string(),
                    new,
                });
            }
            None => out.push_str(body),
        }
        out.push_str(ending);
    }
    (out, changes)
}

/// A file named by a systemd-boot entry: (1-based line, key, path as written).
pub fn loader_entry_files(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (n, (body, _)) in lines(text).enumerate() {
        let t = body.trim();
        if t.starts_with('#') {
            continue;
        }
        let (key, rest) = t
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((t, ""));
        if matches!(key, "linux" | "initrd" | "efi" | "devicetree") {
            for p in rest.split_whitespace() {
                out.push((n + 1, key.to_string(), p.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "3f1c2a4e-9b7d-4c1e-8a2b-5d6e7f809102";
    const ROOT_NEW: &str = "0a0b0c0d-1111-4222-8333-444455556666";
    const ESP: &str = "6A1F-22C3";
    const ESP_NEW: &str = "B00C-0FFE";
    const SWAP: &str = "d2a5e0f1-7c3b-4e59-a1d6-0f2e3b4c5d6e";
    const SWAP_NEW: &str = "77777777-8888-4999-aaaa-bbbbccccdddd";
    const PART: &str = "9e2f6b1a-47c8-4d3e-b5a1-c0d9e8f7a6b5";
    const PART_NEW: &str = "12345678-abcd-4ef0-9123-456789abcdef";
    const LUKS: &str = "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d";
    const LUKS_NEW: &str = "feedface-0000-4111-8222-333344445555";

    fn map() -> IdMap {
        let m: BTreeMap<String, String> = [
            (ROOT, ROOT_NEW),
            (ESP, ESP_NEW),
            (SWAP, SWAP_NEW),
            (PART, PART_NEW),
            (LUKS, LUKS_NEW),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        IdMap::new(&m).unwrap()
    }

    fn check(kind: FileKind, before: &str, after: &str, n: usize) -> Vec<LineChange> {
        let (got, ch) = rewrite(kind, before, &map());
        assert_eq!(got, after);
        assert_eq!(ch.len(), n, "{ch:#?}");
        // Idempotent: the rewritten text has nothing left to change.
        let (again, ch2) = rewrite(kind, &got, &map());
        assert_eq!(again, got);
        assert!(ch2.is_empty(), "{ch2:?}");
        ch
    }

    #[test]
    fn fstab_debian() {
        let before = format!(
            "# /etc/fstab: static file system information.\n\
             #\n\
             # <file system> <mount point>   <type>  <options>       <dump>  <pass>\n\
             # / was on /dev/sda2 during installation\n\
             UUID={ROOT} /               ext4    errors=remount-ro 0       1\n\
             # /boot/efi was on /dev/sda1 during installation\n\
             UUID={ESP}  /boot/efi       vfat    umask=0077      0       1\n\
             # swap was on /dev/sda3 during installation\n\
             UUID={SWAP} none            swap    sw              0       0\n\
             /dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0\n"
        );
        let after = before
            .replace(ROOT, ROOT_NEW)
            .replace(ESP, ESP_NEW)
            .replace(SWAP, SWAP_NEW);
        let ch = check(FileKind::Fstab, &before, &after, 3);
        assert_eq!(
            ch[0],
            LineChange {
                line: 5,
                context: "UUID=".into(),
                old: ROOT.into(),
                new: ROOT_NEW.into()
            }
        );
        assert_eq!(ch[1].line, 7);
        assert_eq!(ch[2].line, 9);
    }

    #[test]
    fn fstab_forms_case_quotes_and_crlf() {
        let up = ROOT.to_uppercase();
        let before = format!(
            "PARTUUID={}\t/data xfs defaults 0 2\r\n\
             /dev/disk/by-uuid/{up} /srv ext4 defaults,x-systemd.requires=/dev/disk/by-partuuid/{PART} 0 2\r\n\
             UUID=\"{ROOT}\" /q ext4 defaults 0 0\r\n\
             \t  # UUID={ROOT} /old ext4 defaults 0 0\r\n\
             LABEL=root / ext4 defaults 0 1\r\n\
             UUID={} /mixed ext4 defaults 0 0",
            PART.to_uppercase(),
            "3F1c2A4e-9B7d-4C1e-8A2b-5D6e7F809102"
        );
        let after = format!(
            "PARTUUID={PART_NEW}\t/data xfs defaults 0 2\r\n\
             /dev/disk/by-uuid/{ROOT_NEW} /srv ext4 defaults,x-systemd.requires=/dev/disk/by-partuuid/{PART_NEW} 0 2\r\n\
             UUID=\"{ROOT_NEW}\" /q ext4 defaults 0 0\r\n\
             \t  # UUID={ROOT} /old ext4 defaults 0 0\r\n\
             LABEL=root / ext4 defaults 0 1\r\n\
             UUID={ROOT_NEW} /mixed ext4 defaults 0 0"
        );
        let ch = check(FileKind::Fstab, &before, &after, 5);
        assert_eq!(ch[1].old, up);
        assert_eq!(ch[4].line, 6);
    }

    #[test]
    fn no_false_positives() {
        // Identifiers that are not in the map, a UUID outside any reference context, UUIDs
        // that are longer or glued to other words, keys that are parts of other keys.
        let text = format!(
            "UUID={ROOT}0 /a ext4 defaults 0 0\n\
             UUID=x{ROOT} /b ext4 defaults 0 0\n\
             /dev/mapper/luks-{ROOT} /c ext4 defaults 0 0\n\
             /srv/{ROOT} /d none bind 0 0\n\
             tmpfs /tmp tmpfs size=50%,MYUUID={ROOT} 0 0\n\
             GRUB_DEVICE_UUID={ROOT}\n\
             UUID=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee / ext4 defaults 0 1\n\
             /dev/sda1 {ESP}x vfat defaults 0 0\n"
        );
        for kind in [
            FileKind::Fstab,
            FileKind::Crypttab,
            FileKind::KernelCmdline,
            FileKind::GrubCfg,
            FileKind::DefaultGrub,
        ] {
            let (got, ch) = rewrite(kind, &text, &map());
            assert_eq!(got, text, "{kind:?}");
            assert!(ch.is_empty(), "{kind:?}: {ch:?}");
        }
        // PARTUUID= is not also UUID=, PARTLABEL= not also LABEL=.
        let r = find_refs(
            FileKind::Fstab,
            &format!("PARTUUID={PART} / ext4 0 0\nPARTLABEL=data /d ext4 0 0\n"),
        );
        assert_eq!(
            r.iter()
                .map(|r| (r.kind, r.context.as_str()))
                .collect::<Vec<_>>(),
            [
                (RefKind::PartUuid, "PARTUUID="),
                (RefKind::PartLabel, "PARTLABEL=")
            ]
        );
    }

    #[test]
    fn serial_shaped_hex_elsewhere_is_left_alone() {
        // An NTFS serial (16 hex digits) that is also part of a WWN, a machine-id path and a
        // menu title; a FAT serial inside a longer word. Only the real references change.
        let ntfs = "5000C500A1B2C3D4";
        let m: BTreeMap<String, String> = [(ntfs, "0123456789ABCDEF"), (ESP, ESP_NEW)]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let m = IdMap::new(&m).unwrap();
        let fstab = format!(
            "/dev/disk/by-id/wwn-0x{ntfs}-part1 /win ntfs-3g defaults 0 0\n\
             UUID={} /data ntfs-3g defaults 0 0\n\
             /dev/disk/by-label/{ESP} /x vfat defaults 0 0\n\
             UUID=X{ESP} /y vfat defaults 0 0\n",
            ntfs.to_lowercase()
        );
        let (got, ch) = rewrite(FileKind::Fstab, &fstab, &m);
        assert_eq!(ch.len(), 1, "{ch:?}");
        assert_eq!(got, fstab.replace(&ntfs.to_lowercase(), "0123456789ABCDEF"));
        let entry =
            format!("title Windows {ntfs}\nlinux /{ntfs}/6.1.0/linux\noptions quiet id={ntfs}\n");
        let (got, ch) = rewrite(FileKind::LoaderEntry, &entry, &m);
        assert_eq!(got, entry);
        assert!(ch.is_empty());
    }

    #[test]
    fn crypttab() {
        let before = format!(
            "# <target name> <source device> <key file> <options>\n\
             sda3_crypt UUID={LUKS} none luks,discard\n\
             luks-{LUKS} UUID={LUKS} none discard,header=/dev/disk/by-partuuid/{PART}\n\
             swap PARTUUID={PART} /dev/urandom swap,cipher=aes-xts-plain64,size=256\n"
        );
        let after = format!(
            "# <target name> <source device> <key file> <options>\n\
             sda3_crypt UUID={LUKS_NEW} none luks,discard\n\
             luks-{LUKS} UUID={LUKS_NEW} none discard,header=/dev/disk/by-partuuid/{PART_NEW}\n\
             swap PARTUUID={PART_NEW} /dev/urandom swap,cipher=aes-xts-plain64,size=256\n"
        );
        // The mapper name `luks-<uuid>` is a name, not a reference: it stays.
        check(FileKind::Crypttab, &before, &after, 4);
    }

    #[test]
    fn loader_entry() {
        let before = format!(
            "# Boot Loader Specification type#1 entry\n\
             title      Debian GNU/Linux 12 (bookworm)\n\
             version    6.1.0-13-amd64\n\
             machine-id 0123456789abcdef0123456789abcdef\n\
             sort-key   debian\n\
             options    root=UUID={ROOT} ro resume=UUID={SWAP} rd.luks.uuid=luks-{LUKS} rd.luks.name={LUKS}=cryptroot rd.luks.options={LUKS}=discard rd.luks.options=timeout=0 quiet\n\
             linux      /0123456789abcdef0123456789abcdef/6.1.0-13-amd64/linux\n\
             initrd     /0123456789abcdef0123456789abcdef/6.1.0-13-amd64/initrd.img-6.1.0-13-amd64\n"
        );
        let after = before
            .replace(ROOT, ROOT_NEW)
            .replace(SWAP, SWAP_NEW)
            .replace(LUKS, LUKS_NEW);
        let ch = check(FileKind::LoaderEntry, &before, &after, 5);
        assert!(ch.iter().all(|c| c.line == 6));
        assert_eq!(
            ch.iter().map(|c| c.context.as_str()).collect::<Vec<_>>(),
            [
                "UUID=",
                "UUID=",
                "rd.luks.uuid=",
                "rd.luks.name=",
                "rd.luks.options="
            ]
        );
        // Only `options` lines: a title mentioning a UUID is left alone.
        let t = format!("title root=UUID={ROOT}\noptions root=PARTUUID={PART} rw\n");
        check(
            FileKind::LoaderEntry,
            &t,
            &format!("title root=UUID={ROOT}\noptions root=PARTUUID={PART_NEW} rw\n"),
            1,
        );
        assert_eq!(
            loader_entry_files(&before),
            [
                (
                    7,
                    "linux".to_string(),
                    "/0123456789abcdef0123456789abcdef/6.1.0-13-amd64/linux".to_string()
                ),
                (
                    8,
                    "initrd".to_string(),
                    "/0123456789abcdef0123456789abcdef/6.1.0-13-amd64/initrd.img-6.1.0-13-amd64"
                        .to_string()
                )
            ]
        );
    }

    #[test]
    fn rd_luks_uuid_without_prefix_and_options_without_uuid() {
        let before = format!(
            "rd.luks.uuid={LUKS} luks.uuid=luks-{} rd.luks.options=discard\n",
            LUKS.to_uppercase()
        );
        let after =
            format!("rd.luks.uuid={LUKS_NEW} luks.uuid=luks-{LUKS_NEW} rd.luks.options=discard\n");
        check(FileKind::KernelCmdline, &before, &after, 2);
        let r = find_refs(FileKind::KernelCmdline, &before);
        assert_eq!(
            r.len(),
            2,
            "luks.uuid= inside rd.luks.uuid= is not found twice: {r:?}"
        );
    }

    const GRUB_CFG: &str = r#"#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub-mkconfig using templates
#
### BEGIN /etc/grub.d/00_header ###
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
function load_video {
  insmod all_video
}
insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root ROOT
font="/usr/share/grub/unicode.pf2"
### END /etc/grub.d/00_header ###
### BEGIN /etc/grub.d/10_linux ###
function gfxmode {
	set gfxpayload="${1}"
}
set linux_gfx_mode=
export linux_gfx_mode
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-ROOT' {
	load_video
	insmod gzio
	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	insmod part_gpt
	insmod ext2
	set root='hd0,gpt2'
	if [ x$feature_platform_search_hint = xy ]; then
	  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,gpt2 --hint-efi=hd0,gpt2 --hint-baremetal=ahci0,gpt2  ROOT
	else
	  search --no-floppy --fs-uuid --set=root ROOT
	fi
	echo	'Loading Linux 6.1.0-13-amd64 ...'
	linux	/boot/vmlinuz-6.1.0-13-amd64 root=UUID=ROOT ro  quiet resume=UUID=SWAP
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-6.1.0-13-amd64
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-ROOT' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-13-amd64' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-6.1.0-13-amd64-advanced-ROOT' {
		search --no-floppy --fs-uuid --set=root ROOT
		linux	/boot/vmlinuz-6.1.0-13-amd64 root=UUID=ROOT ro single
	}
}
### END /etc/grub.d/10_linux ###
### BEGIN /etc/grub.d/30_os-prober ###
menuentry 'Windows Boot Manager (on /dev/sda1)' --class windows --class os $menuentry_id_option 'osprober-efi-ESP' {
	insmod part_gpt
	insmod fat
	search --no-floppy --fs-uuid --set=root ESP
	chainloader /EFI/Microsoft/Boot/bootmgfw.efi
}
### END /etc/grub.d/30_os-prober ###
### BEGIN /etc/grub.d/30_uefi-firmware ###
menuentry 'UEFI Firmware Settings' $menuentry_id_option 'uefi-firmware' {
	fwsetup
}
### END /etc/grub.d/30_uefi-firmware ###
"#;

    #[test]
    fn grub_cfg_debian() {
        let before = GRUB_CFG
            .replace("ROOT", ROOT)
            .replace("SWAP", SWAP)
            .replace("ESP", ESP);
        let after = GRUB_CFG
            .replace("ROOT", ROOT_NEW)
            .replace("SWAP", SWAP_NEW)
            .replace("ESP", ESP_NEW);
        let ch = check(FileKind::GrubCfg, &before, &after, 12);
        let ctx: Vec<_> = ch.iter().map(|c| (c.line, c.context.as_str())).collect();
        assert!(ctx.contains(&(24, "search --fs-uuid")), "{ctx:?}");
        assert!(
            ctx.contains(&(33, "menu entry id")) && ctx.contains(&(58, "menu entry id")),
            "{ctx:?}"
        );
        assert!(ctx.contains(&(46, "UUID=")), "{ctx:?}");
        // The check sees the searches and the kernel command lines, not the menu ids.
        let refs = find_refs(FileKind::GrubCfg, &before);
        let resolved = refs.iter().filter(|r| r.kind != RefKind::MenuId).count();
        assert_eq!(resolved, 8);
    }

    #[test]
    fn grub_cfg_esp_stub_and_commands() {
        // Fedora/Ubuntu ESP stubs, search.fs_uuid, cryptomount without dashes, one-liners.
        let dashless = LUKS.replace('-', "");
        let before = format!(
            "search.fs_uuid {ROOT} root hd0,gpt2\n\
             set prefix=($root)'/boot/grub'\n\
             configfile $prefix/grub.cfg\n\
             search --no-floppy --fs-uuid --set=dev {}\n\
             cryptomount -u {dashless}\n\
             cryptomount -u {LUKS}\n\
             if true; then search -u {ROOT} --set=root; fi\n\
             search --no-floppy --label --set=root {ROOT}\n\
             search --file --set=root /boot/{ROOT}\n\
             search --fs-uuid --set=root {ROOT}x\n",
            ROOT.to_uppercase()
        );
        let after = format!(
            "search.fs_uuid {ROOT_NEW} root hd0,gpt2\n\
             set prefix=($root)'/boot/grub'\n\
             configfile $prefix/grub.cfg\n\
             search --no-floppy --fs-uuid --set=dev {ROOT_NEW}\n\
             cryptomount -u {}\n\
             cryptomount -u {LUKS_NEW}\n\
             if true; then search -u {ROOT_NEW} --set=root; fi\n\
             search --no-floppy --label --set=root {ROOT}\n\
             search --file --set=root /boot/{ROOT}\n\
             search --fs-uuid --set=root {ROOT}x\n",
            LUKS_NEW.replace('-', "")
        );
        check(FileKind::GrubCfg, &before, &after, 5);
        let refs = find_refs(FileKind::GrubCfg, &before);
        let labels: Vec<_> = refs
            .iter()
            .filter(|r| r.kind == RefKind::Label)
            .map(|r| r.line)
            .collect();
        assert_eq!(labels, [8]);
        assert!(refs.iter().any(|r| r.dashless && r.line == 5));
    }

    #[test]
    fn grubenv_keeps_its_size() {
        let mut env = format!("# GRUB Environment Block\nkernelopts=root=UUID={ROOT} ro resume=UUID={SWAP} rhgb quiet \nsaved_entry=gnulinux-6.1.0-advanced-{ROOT}\n");
        while env.len() < 1024 {
            env.push('#');
        }
        let (got, ch) = rewrite(FileKind::GrubEnv, &env, &map());
        assert_eq!(got.len(), 1024);
        assert_eq!(ch.len(), 3);
        assert!(got.ends_with("####"));
    }

    #[test]
    fn default_grub_and_cmdline_and_resume() {
        let before = format!(
            "GRUB_DEFAULT=\"gnulinux-advanced-{ROOT}>gnulinux-6.1.0-13-amd64-advanced-{ROOT}\"\n\
             GRUB_TIMEOUT=5\n\
             GRUB_CMDLINE_LINUX_DEFAULT=\"quiet resume=UUID={SWAP}\"\n\
             GRUB_CMDLINE_LINUX='cryptdevice=UUID={LUKS}:cryptroot root=/dev/mapper/cryptroot'\n\
             #GRUB_CMDLINE_LINUX=\"resume=UUID={SWAP}\"\n"
        );
        let after = before
            .replacen(ROOT, ROOT_NEW, 2)
            .replacen(SWAP, SWAP_NEW, 1)
            .replace(LUKS, LUKS_NEW);
        check(FileKind::DefaultGrub, &before, &after, 4);
        let cmd = format!(
            "root=PARTUUID={PART} rw # not a comment here resume=/dev/disk/by-uuid/{SWAP}\n"
        );
        let cmd_after = format!("root=PARTUUID={PART_NEW} rw # not a comment here resume=/dev/disk/by-uuid/{SWAP_NEW}\n");
        check(FileKind::KernelCmdline, &cmd, &cmd_after, 2);
        check(
            FileKind::ShellVars,
            &format!("RESUME=UUID={SWAP}\n"),
            &format!("RESUME=UUID={SWAP_NEW}\n"),
            1,
        );
    }

    #[test]
    fn labels_are_found_and_decoded_but_never_rewritten() {
        let t = "LABEL=my\\040root / ext4 defaults 0 1\n/dev/disk/by-label/EFI\\x20SYSTEM /boot/efi vfat defaults 0 2\nLABEL=\"with space\" /x ext4 0 0\n";
        let r = find_refs(FileKind::Fstab, t);
        let v: Vec<_> = r.iter().map(|r| (r.kind, r.value.as_str())).collect();
        assert_eq!(
            v,
            [
                (RefKind::Label, "my root"),
                (RefKind::Label, "EFI SYSTEM"),
                (RefKind::Label, "with space")
            ]
        );
        let (got, ch) = rewrite(FileKind::Fstab, t, &map());
        assert_eq!(got, t);
        assert!(ch.is_empty());
    }

    #[test]
    fn partuuid_with_offset_and_mbr_ids() {
        let mut m = BTreeMap::new();
        m.insert("1234abcd-02".to_string(), "cafe0001-02".to_string());
        let m = IdMap::new(&m).unwrap();
        let (got, ch) = rewrite(
            FileKind::KernelCmdline,
            "root=PARTUUID=1234ABCD-02/PARTNROFF=1 ro\n",
            &m,
        );
        assert_eq!(got, "root=PARTUUID=cafe0001-02/PARTNROFF=1 ro\n");
        assert_eq!(ch.len(), 1);
    }

    #[test]
    fn map_validation() {
        let m = |pairs: &[(&str, &str)]| {
            IdMap::new(
                &pairs
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            )
        };
        assert!(m(&[(ROOT, "bad value")]).is_err());
        assert!(m(&[(ROOT, "")]).is_err());
        assert!(m(&[(ROOT, "x\ny")]).is_err());
        assert!(m(&[(ROOT, ROOT_NEW), (&ROOT.to_uppercase(), SWAP_NEW)]).is_err());
        assert!(m(&[(ROOT, ROOT_NEW), (&ROOT.to_uppercase(), ROOT_NEW)]).is_ok());
        assert!(
            m(&[(ROOT, SWAP), (SWAP, SWAP_NEW)]).is_err(),
            "chains are refused"
        );
        assert!(m(&[]).unwrap().is_empty());
    }

    #[test]
    fn empty_map_and_odd_input_change_nothing() {
        let e = IdMap::default();
        for t in [
            "",
            "\n",
            "UUID=",
            "UUID=\"",
            "search",
            "search --fs-uuid",
            "cryptomount -u",
            "options",
            "\u{feff}UUID=é\r",
            "LABEL='",
        ] {
            for kind in [
                FileKind::Fstab,
                FileKind::GrubCfg,
                FileKind::LoaderEntry,
                FileKind::GrubEnv,
            ] {
                let (got, ch) = rewrite(kind, t, &e);
                assert_eq!(got, t);
                assert!(ch.is_empty());
                let _ = find_refs(kind, t);
                let (got, _) = rewrite(kind, t, &map());
                assert_eq!(got, t);
            }
        }
    }

    #[test]
    fn lines_naming_a_left_out_partition_are_commented_out() {
        let data = "5e6f7a8b-0000-4000-8000-000000000001";
        let fstab = format!(
            "UUID={ROOT} / ext4 defaults 0 1\r\n\
             UUID={} /data ext4 defaults 0 2\r\n\
             # UUID={data} /old ext4 defaults 0 2\n\
             PARTUUID={PART} /srv xfs defaults 0 2\n\
             LABEL=data /d2 ext4 nofail 0 2",
            data.to_uppercase()
        );
        let gone = |r: &Ref| {
            (r.kind == RefKind::Uuid && r.value.eq_ignore_ascii_case(data))
                || (r.kind == RefKind::PartUuid && r.value == PART)
        };
        let (got, ch) = comment_out(FileKind::Fstab, &fstab, gone);
        let want = format!(
            "UUID={ROOT} / ext4 defaults 0 1\r\n\
             {LEFT_OUT_MARK}UUID={} /data ext4 defaults 0 2\r\n\
             # UUID={data} /old ext4 defaults 0 2\n\
             {LEFT_OUT_MARK}PARTUUID={PART} /srv xfs defaults 0 2\n\
             LABEL=data /d2 ext4 nofail 0 2",
            data.to_uppercase()
        );
        assert_eq!(got, want);
        assert_eq!(ch.iter().map(|c| c.line).collect::<Vec<_>>(), [2, 4]);
        assert_eq!(
            ch[0].old,
            format!("UUID={} /data ext4 defaults 0 2", data.to_uppercase())
        );
        assert_eq!(
            ch[0].context,
            format!("UUID={} left out of the clone", data.to_uppercase())
        );
        // Done once: the commented lines are comments now.
        let (again, ch2) = comment_out(FileKind::Fstab, &got, gone);
        assert_eq!((again.as_str(), ch2.len()), (got.as_str(), 0));
        let crypttab =
            format!("cdata UUID={data} none luks,discard\nswap /dev/urandom swap,cipher=aes\n");
        let (got, ch) = comment_out(FileKind::Crypttab, &crypttab, gone);
        assert_eq!(got, format!("{LEFT_OUT_MARK}cdata UUID={data} none luks,discard\nswap /dev/urandom swap,cipher=aes\n"));
        assert_eq!(ch.len(), 1);
        // A kernel command line names several devices on one line: never commented out.
        let cmdline = format!("root=UUID={ROOT} resume=UUID={data} ro\n");
        assert_eq!(
            comment_out(FileKind::KernelCmdline, &cmdline, gone),
            (cmdline.clone(), Vec::new())
        );
        assert_eq!(comment_out(FileKind::GrubCfg, &cmdline, gone).1, Vec::new());
    }
}
