//! Exit statuses of `sysclone` (docs/exit-codes.md): typed errors anywhere in an error's chain
//! choose the status; everything else is 1. Success is 0; usage errors exit 2 from clap itself.

use sysclone_disk::{BadSectors, Refusal, VerifyFailed};

pub const ERROR: i32 = 1;
pub const REFUSED: i32 = 3;
pub const VERIFY_FAILED: i32 = 4;
pub const BAD_SECTORS: i32 = 5;
pub const IO_ERROR: i32 = 6;

/// The table `sysclone --help` and the man page show.
pub const TABLE: &str = "\
Exit status:
  0  success
  1  error (anything not listed below)
  2  usage: unknown option, missing or bad argument
  3  refused by the write guard (boot medium, source, mounted, too small, ...)
  4  verification failed: read-back differs, or a saved image is damaged
  5  finished, but some data was unreadable (source sectors or image chunks;
     zeros written or stored in its place)
  6  I/O error reported by a disk (EIO)";

/// The exit status for an error.
pub fn code(e: &anyhow::Error) -> i32 {
    let mut io = false;
    for c in e.chain() {
        if c.is::<Refusal>() {
            return REFUSED;
        }
        if c.is::<VerifyFailed>() {
            return VERIFY_FAILED;
        }
        if c.is::<BadSectors>() {
            return BAD_SECTORS;
        }
        if c.downcast_ref::<std::io::Error>().and_then(|e| e.raw_os_error()) == Some(nix::libc::EIO) {
            io = true;
        }
    }
    if io {
        IO_ERROR
    } else {
        ERROR
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn typed_errors_choose_the_status_through_context() {
        let e = anyhow::Error::from(VerifyFailed("x".into())).context("cloning");
        assert_eq!(code(&e), VERIFY_FAILED);
        let e = anyhow::Error::from(BadSectors("x".into()));
        assert_eq!(code(&e), BAD_SECTORS);
        let e: anyhow::Error = Err::<(), _>(std::io::Error::from_raw_os_error(nix::libc::EIO)).context("reading").unwrap_err();
        assert_eq!(code(&e), IO_ERROR);
        assert_eq!(code(&anyhow::anyhow!("plain")), ERROR);
    }

    #[test]
    fn table_lines_fit_80_columns() {
        assert!(TABLE.lines().all(|l| l.chars().count() <= 80));
    }
}
