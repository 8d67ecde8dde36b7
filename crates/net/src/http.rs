//! HTTP(S) for the rescue system and the CLI: fetch a job, a manifest or a byte range of an
//! image, post a report. TLS through rustls, trusting Mozilla's roots (webpki-roots) — or,
//! when a lab CA is given, that CA plus the CA bundle shipped in the image. Connection
//! failures are retried; HTTP errors are not (a 404 will not fix itself).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// Where the image keeps the CA bundle of the host it was built on.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Whether `s` names something on a web server.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// An HTTP(S) client.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    attempts: u32,
    lab_ca: bool,
}

fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<Certificate<'static>>> {
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| anyhow!("{what}: {e}"))? {
            out.push(c);
        }
    }
    if out.is_empty() {
        bail!("{what} holds no PEM certificate");
    }
    Ok(out)
}

impl Client {
    /// A client trusting Mozilla's roots, or with `lab_ca` (PEM) that CA plus `bundle` (PEM,
    /// when it exists).
    pub fn new(lab_ca: Option<&[u8]>, bundle: Option<&std::path::Path>) -> Result<Client> {
        let roots = match lab_ca {
            None => RootCerts::WebPki,
            Some(pem) => {
                let mut certs = certs_from_pem(pem, "the lab CA (sysclone.ca=)")?;
                if let Some(b) = bundle.and_then(|b| std::fs::read(b).ok()) {
                    certs.extend(certs_from_pem(&b, "the CA bundle").unwrap_or_default());
                }
                RootCerts::new_with_certs(&certs)
            }
        };
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build();
        Ok(Client { agent: config.into(), attempts: 4, lab_ca: lab_ca.is_some() })
    }

    /// A client trusting the lab CA named by the `SYSCLONE_CA` environment variable (a PEM
    /// file; the rescue system sets it from `sysclone.ca=`), if any, besides the CA bundle.
    pub fn from_env() -> Result<Client> {
        match std::env::var_os("SYSCLONE_CA") {
            Some(p) => {
                let pem = std::fs::read(&p).with_context(|| format!("reading the lab CA {} (SYSCLONE_CA)", p.to_string_lossy()))?;
                Client::new(Some(&pem), Some(std::path::Path::new(CA_BUNDLE)))
            }
            None => Client::new(None, None),
        }
    }

    /// How many times a connection failure is tried (default 4).
    pub fn attempts(mut self, n: u32) -> Client {
        self.attempts = n.max(1);
        self
    }

    fn explain(&self, e: ureq::Error) -> anyhow::Error {
        let text = e.to_string();
        match e {
            ureq::Error::StatusCode(code) => anyhow!("the server answered HTTP {code}"),
            _ if text.contains("disconnected") || text.contains("ended after") => anyhow!("the connection ended before the whole body arrived ({text})"),
            _ if text.contains("UnknownIssuer") || text.contains("certificate") => {
                let hint = if self.lab_ca { "" } else { " (a lab CA? give it with sysclone.ca= or --ca)" };
                anyhow!("TLS: the server's certificate is not trusted: {text}{hint}")
            }
            _ => anyhow!(text),
        }
    }

    fn retryable(e: &ureq::Error) -> bool {
        matches!(e, ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound)
    }

    /// Do `call` up to `attempts` times while it fails to connect.
    fn with_retries<T>(&self, what: &str, mut call: impl FnMut() -> Result<T, ureq::Error>) -> Result<T> {
        let mut pause = Duration::from_millis(500);
        for n in 1..=self.attempts {
            match call() {
                Ok(v) => return Ok(v),
                Err(e) if n < self.attempts && Self::retryable(&e) => {
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                Err(e) => return Err(self.explain(e)).with_context(|| format!("{what} (attempt {n} of {})", self.attempts)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// GET the whole body (at most `limit` bytes).
    pub fn get(&self, url: &str, limit: u64) -> Result<Vec<u8>> {
        self.get_opt_inner(url, limit, false).map(|b| b.expect("a 404 is an error here"))
    }

    /// Like [`Client::get`], but a 404 is `None`.
    pub fn get_opt(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        self.get_opt_inner(url, limit, true)
    }

    fn get_opt_inner(&self, url: &str, limit: u64, missing_ok: bool) -> Result<Option<Vec<u8>>> {
        self.with_retries(&format!("GET {url}"), || {
            let mut r = match self.agent.get(url).call() {
                Err(ureq::Error::StatusCode(404)) if missing_ok => return Ok(None),
                r => r?,
            };
            let declared = r.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let body = r.body_mut().with_config().limit(limit).read_to_vec()?;
            match declared {
                Some(n) if n != body.len() as u64 => Err(ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("the body ended after {} of {n} bytes", body.len())))),
                _ => Ok(Some(body)),
            }
        })
    }

    /// The size of `url` (HEAD, Content-Length).
    pub fn size(&self, url: &str) -> Result<u64> {
        self.with_retries(&format!("HEAD {url}"), || {
            let r = self.agent.head(url).call()?;
            r.headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .ok_or_else(|| ureq::Error::Other("the server gave no Content-Length".into()))
        })
    }

    /// GET bytes `off..off+len` (a range request; the server must honour it).
    pub fn get_range(&self, url: &str, off: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let body = self.with_retries(&format!("GET {url} bytes {off}+{len}"), || {
            let mut r = self.agent.get(url).header("Range", format!("bytes={off}-{}", off + len - 1)).call()?;
            if r.status().as_u16() != 206 {
                return Err(ureq::Error::Other(format!("the server ignored the range request (HTTP {})", r.status().as_u16()).into()));
            }
            let b = r.body_mut().with_config().limit(len).read_to_vec()?;
            if b.len() as u64 != len {
                return Err(ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("got {} of {len} bytes", b.len()))));
            }
            Ok(b)
        })?;
        Ok(body)
    }

    /// POST a JSON document.
    pub fn post_json(&self, url: &str, json: &str) -> Result<()> {
        self.with_retries(&format!("POST {url}"), || self.agent.post(url).header("Content-Type", "application/json").send(json.as_bytes()).map(|_| ()))
    }

    /// GET `url` and, with a pin, check its SHA-256 before anyone sees the bytes.
    pub fn get_pinned(&self, url: &str, limit: u64, sha256: Option<&str>) -> Result<Vec<u8>> {
        let body = self.get(url, limit)?;
        if let Some(want) = sha256 {
            let got = sha256_hex(&body);
            if !got.eq_ignore_ascii_case(want.trim()) {
                bail!("{url} has sha256 {got}, but {want} is pinned: refused");
            }
        }
        Ok(body)
    }
}
