//! Errors that carry their own exit status (docs/exit-codes.md). The CLI's `main` finds them
//! anywhere in an error's chain; everything else exits 1.

macro_rules! message_error {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(pub String);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::error::Error for $name {}
    };
}

message_error!(
    /// A read-back after writing found bytes that differ from what was written, or a saved
    /// image failed its check (exit status 4).
    VerifyFailed
);

message_error!(
    /// The copy finished, but parts of the source could not be read and were written as zeros
    /// (exit status 5). Raised by the CLI after it printed the report.
    BadSectors
);
