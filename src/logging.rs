//! Where the process's log lines go. In Lambda: the runtime's subscriber (level from
//! `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`, JSON when `AWS_LAMBDA_LOG_FORMAT` says so). Locally:
//! standard error, shared with a command's progress line ([`progress`], [`above_progress`]):
//! a log line first clears a progress line drawn there, and the next redraw puts it back below.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Logging in Lambda, as the runtime sets it up.
pub fn init_lambda() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Logging for the local commands: to stderr, so that stdout carries only the command's
/// output (and above backfill's progress line on a terminal), at `RUST_LOG`'s level (INFO by
/// default, as in the Lambda). Each line starts with its UTC time, except under systemd, whose
/// journal stamps lines itself (`JOURNAL_STREAM` is set for a unit's stderr); the Lambda's lines
/// carry none either, since CloudWatch stamps them.
pub fn init_local() {
    use lambda_runtime::tracing::subscriber::{EnvFilter, filter::LevelFilter, fmt};
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let logs = fmt()
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(|| LogWriter);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        logs.without_time().init();
    } else {
        logs.init();
    }
}

/// Set while a progress line is drawn (without a newline) on a terminal: the log writer clears
/// it before a log line, and the next redraw puts it back below.
static DRAWN: AtomicBool = AtomicBool::new(false);

/// Standard error for the local commands' log lines, clearing a progress line first.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        if DRAWN.swap(false, Ordering::SeqCst) {
            err.write_all(b"\r\x1b[2K")?;
        }
        err.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Draws `line` on standard error as the progress line: in place on a terminal (`tty`), else
/// as a plain line.
pub fn progress(line: &str, tty: bool) {
    let mut err = std::io::stderr().lock();
    let _ = if tty {
        DRAWN.store(true, Ordering::SeqCst);
        write!(err, "\r\x1b[2K{line}")
    } else {
        writeln!(err, "{line}")
    };
    let _ = err.flush();
}

/// Prints `line` on standard error as a line that stays, in place of a progress line drawn
/// there.
pub fn above_progress(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = if DRAWN.swap(false, Ordering::SeqCst) {
        writeln!(err, "\r\x1b[2K{line}")
    } else {
        writeln!(err, "{line}")
    };
}
