//! The read stage: open the object where the progress record says (a ranged GET for plain
//! text), decompress, and cut blocks of whole lines for the work stage; then the blocks' events
//! go to the deliver stage in input order.
//!
//! A read error in the middle of the object (a truncated gzip) is set aside: the lines read
//! before it are delivered first, then the object fails with the offset. Duplicates are
//! preferred to loss, and nothing after the damage can be read anyway.

use tracing::warn;

use super::deliver::Deliver;
use super::error::ForwardError;
use super::progress::Ledger;
use super::work::{self, WorkError};
use crate::checkpoint::{Progress, Resume, State};
use crate::event::ObjectRef;
use crate::lines::{Encoding, LineReader};
use crate::parse::LogEvent;
use crate::ports::{
    CheckpointStore, LogSink, ObjectSource, OpenRequest, OpenedObject, SourceError,
};
use crate::summary::Counters;

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

/// Opens the object where the progress record says to resume, unless the record says the
/// version is delivered. The record applies only to the version actually opened: when the
/// event names the version, that is known before the GET.
pub(super) async fn open<S: ObjectSource>(
    source: &S,
    obj: &ObjectRef,
    progress: Option<&Progress>,
) -> Result<Opening, SourceError> {
    if obj.etag.is_some() && is_done(progress) {
        return Ok(Opening::Delivered);
    }
    let (object, applies, ranged) = open_at_resume(source, obj, progress).await?;
    if is_done(applies.as_ref()) {
        return Ok(Opening::Delivered);
    }
    let (start, earlier) = match applies {
        Some(Progress {
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
    Ok(Opening::Ready(Opened {
        object,
        start,
        ranged,
        earlier,
    }))
}

fn is_done(progress: Option<&Progress>) -> bool {
    matches!(
        progress,
        Some(Progress {
            state: State::Done { .. },
            ..
        })
    )
}

/// Opens the object, with a ranged GET from the resume offset when that can be used; returns
/// the progress that applies to the bytes actually opened, and whether they start at the
/// resume offset (a ranged read) rather than at the beginning.
async fn open_at_resume<S: ObjectSource>(
    source: &S,
    obj: &ObjectRef,
    progress: Option<&Progress>,
) -> Result<(OpenedObject, Option<Progress>, bool), SourceError> {
    let ranged = match progress {
        Some(
            p @ Progress {
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
            Ok(o) => return Ok((o, Some(p.clone()), true)),
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
    Ok((opened, applies, false))
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
    let (start_line, start_offset) = start;
    let reader = match ranged {
        // The body starts at the resume line.
        true => LineReader::open_at(body, start_line, start_offset).await,
        false => LineReader::open(body).await,
    }
    .map_err(|source| ForwardError::Read {
        offset: 0,
        line: 1,
        source,
    })?;
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
    // The object's own settings (its extra fields): the joiner finishes events with them too.
    let settings = job.settings.clone();
    let plan = work::Plan {
        block_bytes: work::FORWARD_BLOCK_BYTES,
        ..work::Plan::default()
    };
    let mut blocks = work::ordered(reader, plan, move |block| work::parse_block(&job, block));
    let mut joiner = work::Joiner::new(fallback_ts);
    let mut events: Vec<LogEvent> = Vec::new();
    let mut read_error = None;
    while let Some(next) = blocks.next().await {
        let done = match next {
            Ok(done) => done,
            Err(WorkError::Read {
                offset,
                line,
                source,
            }) => {
                // Deliver what was decoded before the damage, then fail this object.
                read_error = Some(ForwardError::Read {
                    offset,
                    line,
                    source,
                });
                break;
            }
            Err(e @ WorkError::Worker { .. }) => {
                read_error = Some(ForwardError::Task(e.to_string()));
                break;
            }
        };
        let parsed = done.output;
        counters.lines += parsed.pieces;
        counters.blank_lines += parsed.blank_lines;
        counters.nul_bytes_stripped += parsed.nul_bytes;
        counters.format_fallbacks += parsed.format_fallbacks;
        counters.format_ambiguous += parsed.format_ambiguous;
        counters.bytes = done.end_offset;
        at = (done.end_line, done.end_offset);
        joiner.join(&settings, parsed, &mut events);
        deliver.absorb(&mut events, ledger);
        let (line, offset) = joiner.held().unwrap_or(at);
        ledger.read_to(line, offset);
        deliver.send_ready(ledger).await?;
    }
    drop(blocks);
    joiner.finish(&settings, &mut events);
    deliver.absorb(&mut events, ledger);
    ledger.read_to(at.0, at.1);
    deliver.finish(ledger).await?;
    read_error.map_or(Ok(()), Err)
}
