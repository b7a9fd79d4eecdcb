//! The commands' exit codes besides success (0) and failure (1).

/// Bad usage or configuration (sysexits' EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// After ctrl-c (128 + SIGINT), once what was confirmed is recorded.
pub const EXIT_INTERRUPTED: u8 = 130;
