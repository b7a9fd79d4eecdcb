//! The read stage: open the object where the progress record says (a ranged GET for plain
//! text), decompress, and cut lines.
//!
//! A read error in the middle of the object (a truncated gzip) is set aside: the lines read
//! before it are delivered first, then the object fails with the offset. Duplicates are
//! preferred to loss, and nothing after the damage can be read anyway.

use tracing::warn;

use super::ForwardError;
use super::deliver::Deliver;
use super::progress::Ledger;
use crate::checkpoint::{Progress, State};
use crate::config::Config;
use crate::event::ObjectRef;
use crate::lines::{Encoding, LineReader};
use crate::parse::{LineParser, LogEvent};
use crate::ports::{
    CheckpointStore, LogSink, ObjectSource, OpenRequest, OpenedObject, SourceError,
};
use crate::route::Route;
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

/// Reads the object line by line, parses each line and hands the events to `deliver` in input
/// order, telling `ledger` how far reading got. The reading counters go to `counters`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn read_all<K: LogSink + 'static, C: CheckpointStore + 'static>(
    body: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    start: (u64, u64),
    ranged: bool,
    fallback_ts: i64,
    route: &Route,
    config: &Config,
    obj: &ObjectRef,
    deliver: &mut Deliver<'_, K, C>,
    ledger: &mut Ledger<'_, K, C>,
    counters: &mut Counters,
) -> Result<(), ForwardError> {
    let (start_line, start_offset) = start;
    let mut reader = match ranged {
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
        if config.skip_binary {
            return Err(ForwardError::Binary);
        }
        warn!(bucket = %obj.bucket, key = %obj.key.escape_debug(),
              "content does not look like text; forwarding its lines lossily decoded (SKIP_BINARY=true skips such objects)");
    }
    let mut parser = LineParser::new(&config.parse, route.kind, fallback_ts);
    let mut events: Vec<LogEvent> = Vec::new();
    let mut read_error = None;
    loop {
        match reader.next_line_at().await {
            Ok(Some((line_no, line_start, line))) => {
                counters.lines += 1;
                if line_no < start_line {
                    // Delivered by an earlier run (a gzip resume decompresses from the start).
                } else if line.trim().is_empty() {
                    counters.blank_lines += 1;
                } else {
                    parser.push_at(&line, line_no, line_start, &mut events);
                }
            }
            Ok(None) => break,
            Err(source) => {
                // Deliver what was decoded before the damage, then fail this object.
                let (offset, line) = (reader.bytes(), reader.next_line_no());
                read_error = Some(ForwardError::Read {
                    offset,
                    line,
                    source,
                });
                break;
            }
        }
        counters.bytes = reader.bytes();
        deliver.absorb(&mut events, ledger);
        let (line, offset) = parser
            .held()
            .unwrap_or((reader.next_line_no(), reader.bytes()));
        ledger.read_to(line, offset);
        deliver.send_ready(ledger).await?;
    }
    counters.bytes = reader.bytes();
    counters.nul_bytes_stripped = reader.nul_bytes();
    parser.finish(&mut events);
    deliver.absorb(&mut events, ledger);
    ledger.read_to(reader.next_line_no(), reader.bytes());
    deliver.finish(ledger).await?;
    read_error.map_or(Ok(()), Err)
}
