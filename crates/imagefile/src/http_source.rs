//! An image on a web server (any static server or S3-compatible store that answers range
//! requests): the manifest by GET, chunks by byte ranges. A connection that drops is
//! reconnected and the range asked for again (the client's retries), so a restore resumes
//! where it was, chunk by chunk; every chunk's hash is still checked before it is written.

use std::sync::Arc;

use anyhow::{bail, Result};
use sysclone_net::Client;

use crate::source::{check_relative, Source};

#[derive(Clone)]
pub struct HttpSource {
    /// The image's URL, ending in `/`.
    base: String,
    client: Client,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpSource({})", self.base)
    }
}

/// `base` joined with a relative location (`..` steps go up one path segment).
pub fn join_url(base: &str, rel: &str) -> Result<String> {
    let (origin, path) = match base.find("://").and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j)) {
        Some(k) => (&base[..k], &base[k..]),
        None => (base, "/"),
    };
    let mut segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if segs.pop().is_none() {
                    bail!("{rel:?} goes above the server's root from {base}");
                }
            }
            p => segs.push(p),
        }
    }
    Ok(if segs.is_empty() { format!("{origin}/") } else { format!("{origin}/{}/", segs.join("/")) })
}

impl HttpSource {
    pub fn new(url: &str, client: Client) -> Arc<HttpSource> {
        let base = if url.ends_with('/') { url.to_string() } else { format!("{url}/") };
        Arc::new(HttpSource { base, client })
    }

    fn url(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }
}

impl Source for HttpSource {
    fn location(&self) -> String {
        self.base.clone()
    }

    fn read_small(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        self.client.get_opt(&self.url(name), limit)
    }

    fn size(&self, name: &str) -> Result<u64> {
        self.client.size(&self.url(name))
    }

    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let data = self.client.get_range(&self.url(name), offset, buf.len() as u64)?;
        buf.copy_from_slice(&data);
        Ok(())
    }

    fn relative(&self, rel: &str) -> Result<Arc<dyn Source>> {
        check_relative(rel)?;
        Ok(HttpSource::new(&join_url(&self.base, rel)?, self.client.clone()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn relative_urls() {
        let j = |b, r| super::join_url(b, r).unwrap();
        assert_eq!(j("http://srv/images/tue/", "../mon"), "http://srv/images/mon/");
        assert_eq!(j("https://srv:8443/a/b/c/", "../../x/./y"), "https://srv:8443/a/x/y/");
        assert_eq!(j("http://srv/", "base"), "http://srv/base/");
        assert!(super::join_url("http://srv/a/", "../../x").is_err());
    }
}
