//! Whether a document from outside the rescue image — a job file, an image's manifest — may be
//! used: minisign signatures (Ed25519) checked against trusted public keys, and SHA-256 pins.
//!
//! Signatures are minisign's format, so the `minisign` tool makes keys and signatures
//! (`minisign -G`, `minisign -Sm FILE` writes `FILE.minisig`) and the pure-Rust
//! `minisign-verify` crate checks them (prehashed signatures only, minisign's default since
//! 0.8). The rule, one for every document ([`Policy::check`]):
//! - a pin that does not match refuses the document; so does a signature that is present
//!   but not good (another key, changed bytes, not a signature);
//! - with trusted keys, a document must be signed by one of them or be pinned; with
//!   `require_signature`, only a signature counts (and without keys nothing is accepted);
//! - with neither keys nor pins, documents are used unchecked (sysclone's behaviour before
//!   signatures).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;

/// Where the rescue image keeps its trusted public keys (`image build --trust`).
pub const TRUST_DIR: &str = "/etc/sysclone/trust";
/// Its presence in the rescue image makes signatures mandatory (`image build
/// --require-signature`), as `sysclone.require_signature=1` on the command line does.
pub const REQUIRE_SIGNATURE_FILE: &str = "/etc/sysclone/require-signature";
/// What minisign appends to a file's name for its signature.
pub const SIG_SUFFIX: &str = ".minisig";
/// Larger than any minisign signature (about 300 bytes with a long trusted comment).
pub const MAX_SIG_BYTES: u64 = 4096;

/// A minisign key ID as minisign prints it: the 8 stored bytes as a little-endian number in
/// hex, without leading zeros.
fn key_id_text(id: &[u8; 8]) -> String {
    format!("{:X}", u64::from_le_bytes(*id))
}

/// The key ID in a minisign public key's or signature's base64 line (bytes 2..10).
fn key_id_of(b64: &str) -> Option<String> {
    let bin = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    Some(key_id_text(bin.get(2..10)?.try_into().ok()?))
}

/// One trusted public key.
#[derive(Clone, Debug)]
pub struct Key {
    /// minisign's key ID, e.g. `E7620F1842B4E81F`.
    pub id: String,
    /// Where it came from, for messages.
    pub origin: String,
    /// The base64 line of the key file.
    b64: String,
    key: minisign_verify::PublicKey,
}

impl Key {
    /// A `minisign.pub` file's text (an untrusted comment line, then the base64 key), or the
    /// bare base64 line.
    pub fn parse(text: &str, origin: &str) -> Result<Key> {
        let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("untrusted comment:")).ok_or_else(|| anyhow!("{origin}: no key in it"))?;
        let key = minisign_verify::PublicKey::from_base64(line).map_err(|e| anyhow!("{origin} is not a minisign public key ({e})"))?;
        let id = key_id_of(line).ok_or_else(|| anyhow!("{origin}: no key ID"))?;
        Ok(Key { id, origin: origin.to_string(), b64: line.to_string(), key })
    }

    /// The public key file's text, as minisign writes it.
    pub fn file_text(&self) -> String {
        format!("untrusted comment: minisign public key {}\n{}\n", self.id, self.b64)
    }
}

/// The keys a rescue image or a command trusts.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<Key>,
}

/// A local signature file's bytes, `None` when there is none (any other error is one).
pub fn read_signature(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!(e).context(format!("reading the signature {}", path.display()))),
    }
}

/// A good signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub key_id: String,
    /// The signature's trusted comment (minisign puts a timestamp and the file name there).
    pub trusted_comment: String,
}

impl TrustedKeys {
    pub fn new(keys: Vec<Key>) -> TrustedKeys {
        TrustedKeys { keys }
    }

    /// Public key files named on a command line (`--trust FILE`).
    pub fn from_files(paths: &[impl AsRef<Path>]) -> Result<TrustedKeys> {
        let mut keys = Vec::new();
        for p in paths {
            let p = p.as_ref();
            let text = std::fs::read_to_string(p).with_context(|| format!("reading the public key {}", p.display()))?;
            keys.push(Key::parse(&text, &p.display().to_string())?);
        }
        Ok(TrustedKeys { keys })
    }

    /// Every `*.pub` in `dir` (none when it does not exist). A file that is not a key is an
    /// error: a rescue image with a broken trust store must not quietly trust nothing.
    pub fn from_dir(dir: &Path) -> Result<TrustedKeys> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TrustedKeys::default()),
            Err(e) => return Err(anyhow!(e).context(format!("reading {}", dir.display()))),
        };
        let mut paths: Vec<_> = rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pub")).collect();
        paths.sort();
        TrustedKeys::from_files(&paths)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    fn ids(&self) -> String {
        self.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// Check `sig` (a `.minisig` file's text) over `data`: which trusted key made it, or why
    /// it is not good.
    pub fn verify(&self, data: &[u8], sig: &[u8]) -> Result<Signed> {
        let text = std::str::from_utf8(sig).map_err(|_| anyhow!("the signature file is not text"))?;
        let s = minisign_verify::Signature::decode(text).map_err(|e| anyhow!("the signature file is not a minisign signature ({e})"))?;
        let id = text.lines().nth(1).and_then(key_id_of).unwrap_or_default();
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| anyhow!("it is signed by key {id}, which is not trusted (trusted: {})", if self.keys.is_empty() { "none".into() } else { self.ids() }))?;
        key.key.verify(data, &s, false).map_err(|e| match e {
            minisign_verify::Error::InvalidSignature => anyhow!("the signature by key {id} does not match its bytes: it was changed after signing"),
            minisign_verify::Error::UnexpectedAlgorithm => anyhow!("the signature by key {id} is minisign's legacy kind (not prehashed); sign again with minisign 0.8 or later"),
            e => anyhow!("the signature by key {id} is not good ({e})"),
        })?;
        Ok(Signed { key_id: id, trusted_comment: s.trusted_comment().to_string() })
    }
}

/// A SHA-256 a document must have, and who says so (`sysclone.job.sha256=`, the job's
/// `image.sha256`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub by: String,
    pub sha256: String,
}

/// What a document must satisfy before it is used.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub keys: TrustedKeys,
    pub pins: Vec<Pin>,
    /// Only a signature counts; without trusted keys nothing is accepted.
    pub require_signature: bool,
}

/// How a document passed [`Policy::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub signed: Option<Signed>,
    /// Pins it matched (who pinned it).
    pub pinned: Vec<String>,
    pub sha256: String,
}

impl Checked {
    /// Neither signed nor pinned.
    pub fn unchecked(&self) -> bool {
        self.signed.is_none() && self.pinned.is_empty()
    }
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(s) = &self.signed {
            parts.push(format!("signature good, by trusted key {} ({})", s.key_id, s.trusted_comment));
        }
        if !self.pinned.is_empty() {
            parts.push(format!("sha256 {} matches {}", &self.sha256[..16], self.pinned.join(" and ")));
        }
        if parts.is_empty() {
            return write!(f, "not signed or pinned (no trusted keys, no pin): used unchecked");
        }
        write!(f, "{}", parts.join("; "))
    }
}

impl Policy {
    /// The rescue image's policy: its trusted keys (`TRUST_DIR`), and signatures required
    /// when the image says so or `require` (from `sysclone.require_signature=`).
    pub fn of_rescue_image(root: &Path, require: bool) -> Result<Policy> {
        let rel = |p: &str| root.join(p.trim_start_matches('/'));
        let keys = TrustedKeys::from_dir(&rel(TRUST_DIR)).context("the rescue image's trusted keys")?;
        Ok(Policy { keys, pins: Vec::new(), require_signature: require || rel(REQUIRE_SIGNATURE_FILE).exists() })
    }

    /// The same policy with one more pin.
    pub fn pinned(&self, by: &str, sha256: Option<&str>) -> Policy {
        let mut p = self.clone();
        if let Some(h) = sha256 {
            p.pins.push(Pin { by: by.to_string(), sha256: h.trim().to_ascii_lowercase() });
        }
        p
    }

    /// Whether a signature must be looked for (fetching one is pointless otherwise).
    pub fn wants_signature(&self) -> bool {
        !self.keys.is_empty() || self.require_signature
    }

    /// Decide on `data` (named `what` in messages) with its signature file `sig`, if one
    /// was found. An error says why it is refused.
    pub fn check(&self, what: &str, data: &[u8], sig: Option<&[u8]>) -> Result<Checked> {
        let sha256 = crate::http::sha256_hex(data);
        let mut pinned = Vec::new();
        for p in &self.pins {
            if p.sha256 != sha256 {
                bail!("{what} has sha256 {sha256}, but {} pins {}: refused", p.by, p.sha256);
            }
            pinned.push(p.by.clone());
        }
        if self.require_signature && self.keys.is_empty() {
            bail!("{what}: refused: signatures are required, but no public key is trusted (image build --trust KEY.pub)");
        }
        let signed = match sig {
            Some(s) if self.wants_signature() => Some(self.keys.verify(data, s).map_err(|e| anyhow!("{what}: refused: {e:#}"))?),
            _ => None,
        };
        if signed.is_none() {
            if self.require_signature {
                bail!("{what}: refused: it has no signature ({SIG_SUFFIX} file), and signatures are required");
            }
            if !self.keys.is_empty() && pinned.is_empty() {
                bail!("{what}: refused: it has no signature ({SIG_SUFFIX} file) and no sha256 pin, and this system trusts signing keys ({})", self.keys.ids());
            }
        }
        Ok(Checked { signed, pinned, sha256 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two key pairs made by minisign 0.11 (`minisign -G -W`), and signatures of DOC by each
    // (`minisign -S -m doc -t "test document"`), one legacy (`-l`) by A.
    const A_PUB: &str = "untrusted comment: minisign public key BFE9F7B5E1E998C3\nRWTDmOnhtffpv3hvE+6nqx7U89nNA6+MPx7aQoC7zfIBNfM2uI2PXk6M\n";
    const B_PUB: &str = "untrusted comment: minisign public key 2B69737ECB4EE38\nRWQ47rTsN5e2Arumy0gcrBjwffUAEeSwKjfKtETAmw/hVbH4+Lu2Iq3M\n";
    const DOC: &[u8] = b"operation = \"clone\"\n";
    const SIG_A: &str = "untrusted comment: signature from minisign secret key\nRUTDmOnhtffpv0iaZfQVA+/I4j00CKBEupuukKtgN3uQPHcv5Phx3JzUATaQbaC/p1ZZnGu4Q7s9WNA/wZJTf45R53IbtJqSJwg=\ntrusted comment: test document\nfZISsBVAOci8bbnEwnIfp2o1OkhUIqPhpmYGLExHDQS9dfH+jWjsTiwrmSWxi0giC4Gd0AUwMU7tPowPkWyaAw==\n";
    const SIG_B: &str = "untrusted comment: signature from minisign secret key\nRUQ47rTsN5e2ArwksfAhI1gy7vypdvJLRbLB9UNzsmN9L3UUHHjrmfBGtTH73X3wUVZ0mqudlwNgxUO0QOH8OLzZeC4eDmlBhww=\ntrusted comment: test document\nA5WXXpsNmQMs35NfZ/9t5tJiy8BM4VPFuAHTrM5RPZKTtVnDUcjSAa5LQcb9N3k46z8du1F8i7WO/zmqDZnLAA==\n";
    const SIG_A_LEGACY: &str = "untrusted comment: signature from minisign secret key\nRWTDmOnhtffpv2UgZnoIQDUZGTfHQaTvINVL9KV8zgTwcWaOlfv6oGjMuST5r6fCs8ys/NLpRDqCppqJLK1our1WtdIuByKHtQE=\ntrusted comment: timestamp:1795570710\tfile:doc\nGju/M6r8m9ZF8rHM4N6E02QkCRPYg7S8uHaQxF7XZLur9wxEkhZwrjWOBMf+DWzUiOm65QRiGcnbscmbnOEXAg==\n";

    fn keys(pubs: &[&str]) -> TrustedKeys {
        TrustedKeys::new(pubs.iter().map(|p| Key::parse(p, "test").unwrap()).collect())
    }

    fn err(r: Result<impl std::fmt::Debug>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn keys_and_their_ids() {
        let a = Key::parse(A_PUB, "a.pub").unwrap();
        assert_eq!(a.id, "BFE9F7B5E1E998C3");
        assert_eq!(a.file_text(), A_PUB);
        // minisign prints IDs without leading zeros; so do we.
        assert_eq!(Key::parse(B_PUB, "b.pub").unwrap().id, "2B69737ECB4EE38");
        assert_eq!(Key::parse(A_PUB.lines().nth(1).unwrap(), "bare").unwrap().id, "BFE9F7B5E1E998C3");
        assert!(err(Key::parse("untrusted comment: x\nnot base64!\n", "k.pub")).contains("k.pub is not a minisign public key"));
        assert!(err(Key::parse("", "k.pub")).contains("no key"));
        let d = tempfile::tempdir().unwrap();
        assert!(TrustedKeys::from_dir(&d.path().join("none")).unwrap().is_empty());
        std::fs::write(d.path().join("a.pub"), A_PUB).unwrap();
        std::fs::write(d.path().join("notes.txt"), "ignored").unwrap();
        assert_eq!(TrustedKeys::from_dir(d.path()).unwrap().keys().len(), 1);
        std::fs::write(d.path().join("broken.pub"), "junk").unwrap();
        assert!(TrustedKeys::from_dir(d.path()).is_err(), "a broken key in the trust store is an error");
    }

    #[test]
    fn signatures() {
        let k = keys(&[A_PUB]);
        let s = k.verify(DOC, SIG_A.as_bytes()).unwrap();
        assert_eq!(s, Signed { key_id: "BFE9F7B5E1E998C3".into(), trusted_comment: "test document".into() });
        assert!(err(k.verify(DOC, SIG_B.as_bytes())).contains("signed by key 2B69737ECB4EE38, which is not trusted (trusted: BFE9F7B5E1E998C3)"));
        assert_eq!(keys(&[B_PUB, A_PUB]).verify(DOC, SIG_B.as_bytes()).unwrap().key_id, "2B69737ECB4EE38");
        assert!(err(k.verify(b"operation = \"clone\"\n\n", SIG_A.as_bytes())).contains("changed after signing"));
        // A changed trusted comment breaks the global signature.
        assert!(err(k.verify(DOC, SIG_A.replace("test document", "test documenT").as_bytes())).contains("changed after signing"));
        assert!(err(k.verify(DOC, SIG_A_LEGACY.as_bytes())).contains("legacy"));
        assert!(err(k.verify(DOC, b"hello")).contains("not a minisign signature"));
        assert!(err(k.verify(DOC, &[0xff, 0xfe])).contains("not text"));
    }

    #[test]
    fn policy() {
        let sha = crate::http::sha256_hex(DOC);
        let none = Policy::default();
        let c = none.check("job j", DOC, None).unwrap();
        assert!(c.unchecked() && c.to_string().contains("unchecked"));
        // Without keys a signature is not looked at.
        assert!(none.check("job j", DOC, Some(b"junk")).unwrap().unchecked());
        let pinned = none.pinned("sysclone.job.sha256=", Some(&sha.to_uppercase()));
        assert_eq!(pinned.check("job j", DOC, None).unwrap().pinned, vec!["sysclone.job.sha256=".to_string()]);
        let e = err(none.pinned("sysclone.job.sha256=", Some(&"0".repeat(64))).check("job j", DOC, None));
        assert!(e.contains(&sha) && e.contains("sysclone.job.sha256= pins 000") && e.contains("refused"), "{e}");

        let trusting = Policy { keys: keys(&[A_PUB]), ..Default::default() };
        let c = trusting.check("job j", DOC, Some(SIG_A.as_bytes())).unwrap();
        assert!(c.to_string().contains("by trusted key BFE9F7B5E1E998C3"), "{c}");
        assert!(err(trusting.check("job j", DOC, None)).contains("job j: refused: it has no signature"));
        assert!(err(trusting.check("job j", DOC, Some(SIG_B.as_bytes()))).contains("not trusted"));
        assert!(err(trusting.check("job j", b"operation = \"migrate\"\n", Some(SIG_A.as_bytes()))).contains("changed after signing"));
        // A pin stands in for a signature, but a bad signature is never ignored.
        let t_pinned = trusting.pinned("the job's image.sha256", Some(&sha));
        assert!(t_pinned.check("image i", DOC, None).unwrap().signed.is_none());
        assert!(err(t_pinned.check("image i", DOC, Some(SIG_B.as_bytes()))).contains("not trusted"));

        let strict = Policy { require_signature: true, ..trusting.clone() };
        assert!(strict.check("job j", DOC, Some(SIG_A.as_bytes())).is_ok());
        assert!(err(strict.pinned("p", Some(&sha)).check("job j", DOC, None)).contains("signatures are required"));
        let keyless = Policy { require_signature: true, ..Default::default() };
        assert!(err(keyless.check("job j", DOC, Some(SIG_A.as_bytes()))).contains("no public key is trusted"));
    }

    #[test]
    fn rescue_image_policy() {
        let d = tempfile::tempdir().unwrap();
        let p = Policy::of_rescue_image(d.path(), false).unwrap();
        assert!(!p.wants_signature());
        std::fs::create_dir_all(d.path().join("etc/sysclone/trust")).unwrap();
        std::fs::write(d.path().join("etc/sysclone/trust/BFE9F7B5E1E998C3.pub"), A_PUB).unwrap();
        let p = Policy::of_rescue_image(d.path(), false).unwrap();
        assert!(p.wants_signature() && !p.require_signature && p.keys.keys().len() == 1);
        assert!(Policy::of_rescue_image(d.path(), true).unwrap().require_signature);
        std::fs::write(d.path().join("etc/sysclone/require-signature"), "").unwrap();
        assert!(Policy::of_rescue_image(d.path(), false).unwrap().require_signature);
    }
}
