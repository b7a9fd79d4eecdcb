//! The read stage: open the object where the progress record says (a ranged GET for plain
//! text), decompress, and cut blocks of whole lines for the work stage; then the blocks' events
//! go to the deliver stage in input order.
//!
//! A read error in the middle of the object (a truncated gzip) is set aside: the lines read
//! before it are delivered first, then the object fails with the offset. Duplicates are
//! preferred to loss, and nothing after the damage can be read anyway.

use std::sync::Arc;

use tracing::warn;

use super::deliver::Deliver;
use super::error::ForwardError;
use super::progress::Ledger;
use super::work::{self, WorkError};
use crate::checkpoint::{ProgressRecord, Resume, State};
use crate::event::ObjectRef;
use crate::lines::{Encoding, LineReader};
use crate::ports::{
    CheckpointStore, LogSink, ObjectSource, OpenRequest, OpenedObject, SourceError,
};
use crate::summary::Counters;
use ncf_parse::LogEvent;

/// What [`open`] found.
pub(super) enum Opening {
    /// The version to deliver is fully delivered already: nothing was read (no GET when the
    /// event names the version).
    Delivered,
    Ready(Opened),
}

/// An object opened where its delivery starts.
pub(super) struct Opened {
    pub object: OpenedObject,
    /// Where reading starts: the line and its decoded byte offset ((1, 0): the beginning).
    pub start: (u64, u64),
    /// The body starts at `start` (a ranged read), not at the beginning of the object.
    pub ranged: bool,
    /// What an earlier attempt left to send, when the progress record says it was partly
    /// delivered (`start` is then its resume line).
    pub earlier: Option<Resume>,
}

/// Opens the object where the progress record says to resume (a ranged GET for plain text),
/// unless the record says the version is delivered. The record applies only to the version
/// actually opened; when the event names the version, that is known before the GET.
pub(super) async fn open<S: ObjectSource>(
    source: &S,
    obj: &ObjectRef,
    progress: Option<&ProgressRecord>,
) -> Result<Opening, SourceError> {
    if obj.etag.is_some() && is_done(progress) {
        return Ok(Opening::Delivered);
    }
    let ranged = match progress {
        Some(
            p @ ProgressRecord {
                state:
                    State::Partial {
                        gzip: false,
                        resume_offset,
                        ..
                    },
                ..
            },
        ) if *resume_offset > 0 => Some((p, *resume_offset)),
        _ => None,
    };
    if let Some((p, offset)) = ranged {
        let req = OpenRequest {
            from_offset: offset,
            if_match: Some(p.etag.clone()),
        };
        match source.open(obj, &req).await {
            Ok(o) => return Ok(opening(o, Some(p.clone()), true)),
            // The object is no longer the version the record is about: start over.
            Err(SourceError::Changed { .. }) if obj.etag.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    let req = OpenRequest {
        from_offset: 0,
        if_match: obj.etag.clone(),
    };
    let opened = source.open(obj, &req).await?;
    let applies = progress
        .filter(|p| opened.etag.as_deref() == Some(p.etag.as_str()))
        .cloned();
    Ok(opening(opened, applies, false))
}

fn is_done(progress: Option<&ProgressRecord>) -> bool {
    matches!(
        progress,
        Some(ProgressRecord {
            state: State::Done { .. },
            ..
        })
    )
}

/// The opened `object`, given the progress that `applies` to it, and whether it starts at the
/// resume offset (`ranged`) rather than at the beginning.
fn opening(object: OpenedObject, applies: Option<ProgressRecord>, ranged: bool) -> Opening {
    if is_done(applies.as_ref()) {
        return Opening::Delivered;
    }
    let (start, earlier) = match applies {
        Some(ProgressRecord {
            state:
                State::Partial {
                    next_line,
                    next_offset,
                    resume_line,
                    resume_offset,
                    pending,
                    ..
                },
            ..
        }) => {
            let earlier = Resume {
                next_line,
                next_offset,
                pending,
            };
            ((resume_line, resume_offset), Some(earlier))
        }
        _ => ((1, 0), None),
    };
    Opening::Ready(Opened {
        object,
        start,
        ranged,
        earlier,
    })
}

/// What the read stage reads, from where, and parses with.
pub(super) struct Reading {
    pub body: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    /// The line and decoded byte offset reading starts at.
    pub start: (u64, u64),
    /// `body` starts at `start` (a ranged read), not at the beginning of the object.
    pub ranged: bool,
    pub job: work::Job,
    /// `SKIP_BINARY`: an object that does not look like text is skipped.
    pub skip_binary: bool,
}

/// Reads the object in blocks of whole lines, has them parsed on every core ([`work`]) and
/// hands the events to `deliver` in input order, telling `ledger` how far reading got. The
/// reading counters go to `counters`.
pub(super) async fn read_all<K: LogSink + 'static, C: CheckpointStore + 'static>(
    reading: Reading,
    obj: &ObjectRef,
    deliver: &mut Deliver<'_, K, C>,
    ledger: &mut Ledger<'_, K, C>,
    counters: &mut Counters,
) -> Result<(), ForwardError> {
    let Reading {
        body,
        start,
        ranged,
        job,
        skip_binary,
    } = reading;
    let fallback_ts = job.fallback_ts;
    let reader = line_reader(body, start, ranged).await?;
    // Compressed (gzip or zstd): a resume decompresses from the start and skips.
    ledger.set_compressed(reader.encoding() != Encoding::Plain);
    if reader.is_binary() {
        counters.binary_objects = 1;
        if skip_binary {
            return Err(ForwardError::Binary);
        }
        warn!(bucket = %obj.bucket, key = %obj.key.escape_debug(),
              "content does not look like text; forwarding its lines lossily decoded (SKIP_BINARY=true skips such objects)");
    }
    // Where reading stands: every line before it has been parsed and handed over.
    let mut at = (reader.next_line_no(), reader.bytes());
    // The joiner finishes events with the object's settings too (its extra fields).
    let job = Arc::new(job);
    let plan = work::Plan {
        block_bytes: work::FORWARD_BLOCK_BYTES,
        ..work::Plan::default()
    };
    let worker_job = Arc::clone(&job);
    let mut blocks = work::ordered(reader, plan, move |block| {
        work::parse_block(&worker_job, block)
    });
    let mut joiner = work::Joiner::new(fallback_ts);
    let mut events: Vec<LogEvent> = Vec::new();
    let mut read_error = None;
    while let Some(next) = blocks.next().await {
        let done = match next {
            Ok(done) => done,
            Err(e) => {
                // Deliver what was decoded before the damage, then fail this object.
                read_error = Some(failure(e));
                break;
            }
        };
        let parsed = done.output;
        count(counters, &parsed, done.end_offset);
        at = (done.end_line, done.end_offset);
        joiner.join(job.parsing(), parsed, &mut events);
        deliver.absorb(&mut events, ledger);
        let (line, offset) = joiner.held().unwrap_or(at);
        ledger.read_to(line, offset);
        deliver.send_ready(ledger).await?;
    }
    drop(blocks);
    joiner.finish(job.parsing(), &mut events);
    deliver.absorb(&mut events, ledger);
    ledger.read_to(at.0, at.1);
    deliver.finish(ledger).await?;
    read_error.map_or(Ok(()), Err)
}

/// The object's lines, from the start of `body`, which begins at line and decoded offset
/// `start` when `ranged`.
async fn line_reader(
    body: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    (line, offset): (u64, u64),
    ranged: bool,
) -> Result<LineReader, ForwardError> {
    match ranged {
        // The body starts at the resume line.
        true => LineReader::open_at(body, line, offset).await,
        false => LineReader::open(body).await,
    }
    .map_err(|source| ForwardError::Read {
        offset: 0,
        line: 1,
        source,
    })
}

/// What a block that could not be read or parsed ends the object with.
fn failure(e: WorkError) -> ForwardError {
    match e {
        WorkError::Read {
            offset,
            line,
            source,
        } => ForwardError::Read {
            offset,
            line,
            source,
        },
        e @ WorkError::Worker { .. } => ForwardError::Task(e.to_string()),
    }
}

/// Counts a parsed block ending at decoded byte `end_offset`.
fn count(counters: &mut Counters, parsed: &work::Parsed, end_offset: u64) {
    counters.lines += parsed.pieces;
    counters.blank_lines += parsed.blank_lines;
    counters.nul_bytes_stripped += parsed.nul_bytes;
    counters.format_fallbacks += parsed.format_fallbacks;
    counters.format_ambiguous += parsed.format_ambiguous;
    counters.bytes = end_offset;
}
