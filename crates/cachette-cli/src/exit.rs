//! Exit codes, and how an error chain maps to one.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (also: the reader of stdout went away, e.g. `cachette keys | head`) |
//! | 1 | the key does not exist (`get`, `ttl`, `expire`) |
//! | 2 | usage error: bad arguments, malformed JSON, invalid configuration |
//! | 3 | the cache failed: Redis unreachable, timeout, server error |
//! | 4 | a destructive command was not confirmed (answered no, or no terminal and no `--yes`) |

use std::fmt;

/// Success.
pub(crate) const OK: u8 = 0;
/// The key does not exist.
pub(crate) const NOT_FOUND: u8 = 1;
/// Bad arguments, malformed input, invalid configuration (clap uses 2 too).
pub(crate) const USAGE: u8 = 2;
/// The cache (Redis) failed or could not be reached.
pub(crate) const FAILURE: u8 = 3;
/// A destructive command was not confirmed.
pub(crate) const REFUSED: u8 = 4;

/// An error that carries its own exit code.
#[derive(Debug)]
pub(crate) struct Coded {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// A usage error (exit 2).
pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        code: USAGE,
        message: message.into(),
    })
}

/// A missing key (exit 1).
pub(crate) fn not_found(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        code: NOT_FOUND,
        message: message.into(),
    })
}

/// An unconfirmed destructive command (exit 4).
pub(crate) fn refused(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        code: REFUSED,
        message: message.into(),
    })
}

/// The exit code of an error: its own [`Coded`] code, 2 for configuration and invalid input
/// errors of the library, 3 for everything else.
pub(crate) fn code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(coded) = cause.downcast_ref::<Coded>() {
            return coded.code;
        }
        if let Some(e) = cause.downcast_ref::<cachette::Error>() {
            return match e.kind() {
                cachette::ErrorKind::Config | cachette::ErrorKind::InvalidInput => USAGE,
                _ => FAILURE,
            };
        }
    }
    FAILURE
}

/// Whether the error is a write to a closed pipe (stdout's reader exited): not a failure.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_chain() {
        assert_eq!(code_of(&usage("x")), USAGE);
        assert_eq!(code_of(&not_found("x").context("get")), NOT_FOUND);
        assert_eq!(code_of(&anyhow::anyhow!("other")), FAILURE);
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&pipe.context("writing")));
        assert_eq!(OK, 0);
    }
}
