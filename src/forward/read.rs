//! The read stage: open the object where the progress record says (a ranged GET for plain
//! text), decompress, and cut blocks of whole lines for the work stage; then the blocks' events
//! go to the deliver stage in input order.
//!
//! A read error in the middle of the object (a truncated gzip) is set aside: the lines read
//! before it are delivered first, then the object fails with the offset. Duplicates are
//! preferred to loss, and nothing after the damage can be read anyway.

use tracing::warn;

use super::ForwardError;
use super::deliver::Deliver;
use super::progress::Ledger;
use super::work::{self, WorkError};
use crate::checkpoint::{Progress, State};
use crate::config::Config;
use crate::event::ObjectRef;
use crate::lines::{Encoding, LineReader};
use crate::parse::LogEvent;
use crate::ports::{
    CheckpointStore, LogSink, ObjectSource, OpenRequest, OpenedObject, SourceError,
};
use crate::summary::Counters;

/// Opens the object where the progress record says to resume; returns the progress that
/// applies to the bytes actually opened, and whether they start at the resume offset (a ranged
/// read) rather than at the beginning.
pub(super) async fn open<S: ObjectSource>(
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

/// Reads the object in blocks of whole lines, has them parsed on every core ([`work`]) and
/// hands the events to `deliver` in input order, telling `ledger` how far reading got. The
/// reading counters go to `counters`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn read_all<K: LogSink + 'static, C: CheckpointStore + 'static>(
    body: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    start: (u64, u64),
    ranged: bool,
    fallback_ts: i64,
    job: work::Job,
    config: &Config,
    obj: &ObjectRef,
    deliver: &mut Deliver<'_, K, C>,
    ledger: &mut Ledger<'_, K, C>,
    counters: &mut Counters,
) -> Result<(), ForwardError> {
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
        if config.objects.skip_binary {
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
