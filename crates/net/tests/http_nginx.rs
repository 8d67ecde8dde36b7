//! The HTTP(S) client against a real nginx on loopback (HTTP and HTTPS with a lab CA made by
//! openssl), and against a server that cuts a download short.

use std::io::{Read, Write};

use sysclone_net::http::{sha256_hex, Client};
use sysclone_testutil::{free_port, Nginx};

#[test]
fn fetch_pin_range_post_and_every_failure_named() {
    let n = Nginx::start();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(n.www().join("job.toml"), b"operation = \"clone\"\n").unwrap();
    std::fs::write(n.www().join("blob"), &data).unwrap();
    let c = Client::new(None, None).unwrap().attempts(2);
    let base = format!("http://127.0.0.1:{}", n.http);

    // A job, pinned by its SHA-256; a wrong pin is refused.
    let job = c.get_pinned(&format!("{base}/job.toml"), 1 << 20, Some(&sha256_hex(b"operation = \"clone\"\n"))).unwrap();
    assert_eq!(job, b"operation = \"clone\"\n");
    let e = format!("{:#}", c.get_pinned(&format!("{base}/job.toml"), 1 << 20, Some(&"0".repeat(64))).unwrap_err());
    assert!(e.contains("is pinned: refused"), "{e}");

    // Byte ranges of an image.
    assert_eq!(c.get_range(&format!("{base}/blob"), 123_456, 100_000).unwrap(), &data[123_456..223_456]);
    assert_eq!(c.get(&format!("{base}/blob"), 1 << 20).unwrap(), data);
    let e = format!("{:#}", c.get(&format!("{base}/blob"), 1000).unwrap_err());
    assert!(e.contains("GET"), "a body over the limit: {e}");

    // 404, and a server that is not there.
    let e = format!("{:#}", c.get(&format!("{base}/nope.toml"), 1 << 20).unwrap_err());
    assert!(e.contains("HTTP 404") && e.contains("nope.toml"), "{e}");
    let e = format!("{:#}", c.get(&format!("http://127.0.0.1:{}/job.toml", free_port()), 1 << 20).unwrap_err());
    assert!(e.contains("attempt 2 of 2") && e.to_lowercase().contains("connect"), "{e}");

    // HTTPS with a lab CA: refused without it (with a hint), accepted with it.
    let tls = format!("https://127.0.0.1:{}/job.toml", n.https);
    let e = format!("{:#}", c.get(&tls, 1 << 20).unwrap_err());
    assert!(e.contains("not trusted") && e.contains("sysclone.ca="), "{e}");
    let ca = std::fs::read(n.dir.path().join("ca.pem")).unwrap();
    let lab = Client::new(Some(&ca), None).unwrap();
    assert_eq!(lab.get(&tls, 1 << 20).unwrap(), b"operation = \"clone\"\n");
    assert!(Client::new(Some(b"not a certificate"), None).is_err());

    // A report, received by the nginx recipe.
    c.post_json(&format!("{base}/report"), r#"{"result":"ok","machine":"lab07"}"#).unwrap();
    let log = n.reports();
    assert!(log.contains("lab07"), "{log}");
}

/// A server that promises 1000 bytes and closes after 500: the download is an error, never
/// a short file taken for the whole.
#[test]
fn a_truncated_download_is_an_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(2) {
            let mut s = s.unwrap();
            let mut req = [0u8; 2048];
            let _ = s.read(&mut req);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n");
            let _ = s.write_all(&[7u8; 500]);
        }
    });
    let c = Client::new(None, None).unwrap().attempts(2);
    let e = format!("{:#}", c.get(&format!("http://127.0.0.1:{port}/image"), 1 << 20).unwrap_err());
    assert!(e.contains("GET") && e.contains("before the whole body arrived"), "{e}");
}
