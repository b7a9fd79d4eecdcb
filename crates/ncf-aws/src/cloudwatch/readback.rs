//! The read-back: what a stream holds of a batch (GetLogEvents over the batch's time range),
//! after a put got no answer or for [`LogSink::find_missing`](ncf_core::ports::LogSink::find_missing).
//! Only in those cases: GetLogEvents' quota is low.

use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, SdkError};
use aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsError;
use tracing::{info, warn};

use ncf_core::batch::ReadBack;
use ncf_core::ports::{Rejected, SinkError};
use ncf_parse::{LogEvent, Message};

use super::body::sent_events;
use super::stream::StreamId;

/// GetLogEvents returns at most 10,000 events (1 MB) per call.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_GetLogEvents.html>
const GET_LOG_EVENTS_LIMIT: i32 = 10_000;
/// Pages read back for one check at most (a guard against a token that never repeats).
const MAX_READ_BACK_PAGES: usize = 1_000;

/// After a put of `body` got no answer (`lost` says how): the events of `body` that the stream
/// does not hold, looking again while CloudWatch's reads may lag (for `wait` at most). Empty
/// when the put was stored. An error when the stream cannot be read.
pub(super) async fn unstored(
    client: &Client,
    to: StreamId<'_>,
    body: &[u8],
    lost: &str,
    wait: Duration,
) -> Result<Vec<LogEvent>, SinkError> {
    let (group, stream) = (to.group, to.stream);
    warn!(group, stream, error = %lost,
          "a put got no answer: reading the stream back before sending anything again");
    let sent = sent_events(body).map_err(|e| to.failed(format!("re-reading our own body: {e}")))?;
    let missing = missing_after_lag(client, to, &sent, wait)
        .await
        .map_err(|check| to.failed(unchecked(lost, &DisplayErrorContext(&check).to_string())))?;
    if missing.is_empty() {
        info!(
            group,
            stream,
            events = sent.len(),
            "the put without an answer was stored"
        );
        return Ok(Vec::new());
    }
    warn!(
        group,
        stream,
        missing = missing.len(),
        of = sent.len(),
        "the put without an answer was not (completely) stored: sending what is missing"
    );
    Ok(missing
        .iter()
        .map(|&i| LogEvent {
            timestamp: sent[i].0,
            message: Message::new(&sent[i].1),
            line: 0,
            offset: 0,
            parse_failed: false,
            filtered: None,
            redacted: 0,
        })
        .collect())
}

/// Why a batch whose put got no answer (`lost`) is not sent again: the read-back failed too
/// (`check`).
fn unchecked(lost: &str, check: &str) -> String {
    // Such a group serves no GetLogEvents: nothing can be checked there.
    let why = if check.contains("INFREQUENT_ACCESS") {
        " (the group is of the Infrequent Access class, which serves no \
         GetLogEvents: see LOG_GROUP_CLASS in docs/user-guide.md)"
    } else {
        ""
    };
    format!(
        "a put got no answer ({lost}) and reading the stream back to see whether \
         it was stored failed too ({check}){why}; not sent again: the object fails, \
         and its next attempt sends this batch again (a duplicate if the lost put \
         was stored)"
    )
}

/// What of `sent` is missing from the stream, looking again while CloudWatch's reads may lag
/// (for `wait` at most; [`LogSink::find_missing`](ncf_core::ports::LogSink::find_missing)
/// reads once).
async fn missing_after_lag(
    client: &Client,
    to: StreamId<'_>,
    sent: &[(i64, String)],
    wait: Duration,
) -> Result<Vec<usize>, SdkError<GetLogEventsError>> {
    let until = Instant::now() + wait;
    let mut pause = wait / 16;
    loop {
        tokio::time::sleep(pause).await;
        let mut found = ReadBack::new(sent);
        read_back(client, to, &mut found).await?;
        let left = until.saturating_duration_since(Instant::now());
        if found.all_found() || left.is_zero() {
            return Ok(found.missing());
        }
        pause = (pause * 2).min(left);
    }
}

/// Reads the stream over the batch's time range (oldest first) into `found`; a stream that
/// does not exist holds nothing.
pub(super) async fn read_back(
    client: &Client,
    to: StreamId<'_>,
    found: &mut ReadBack<'_>,
) -> Result<(), SdkError<GetLogEventsError>> {
    let Some((start, end)) = found.range() else {
        return Ok(());
    };
    let mut token: Option<String> = None;
    for _ in 0..MAX_READ_BACK_PAGES {
        let page = match client
            .get_log_events()
            .log_group_name(to.group)
            .log_stream_name(to.stream)
            .start_time(start)
            .end_time(end)
            .start_from_head(true)
            .limit(GET_LOG_EVENTS_LIMIT)
            .set_next_token(token.clone())
            .send()
            .await
        {
            Ok(page) => page,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(GetLogEventsError::ResourceNotFoundException(_))
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for e in page.events() {
            found.saw(e.timestamp().unwrap_or(i64::MIN), e.message().unwrap_or(""));
        }
        // The end of the stream: the token we sent comes back.
        let next = page.next_forward_token().map(str::to_string);
        if found.all_found() || next.is_none() || next == token {
            break;
        }
        token = next;
    }
    Ok(())
}

/// Rejected ranges of a resent part (`part` events) as ranges of the whole batch (`total`)
/// with the same counts: only the counts are used.
pub(super) fn rejected_counts_over(rejected: Rejected, part: usize, total: usize) -> Rejected {
    let c = rejected.counts(part);
    let (old, expired, new) = (c.too_old as usize, c.expired as usize, c.too_new as usize);
    Rejected {
        too_old_end: (old > 0).then_some(old),
        expired_end: (expired > 0).then_some(old + expired),
        too_new_start: (new > 0).then(|| total - new),
        entity_rejected: rejected.entity_rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counts of a resent part's rejections are kept, placed where the batch's would be.
    #[test]
    fn a_resent_parts_rejections_count_over_the_batch() {
        let part = Rejected {
            too_old_end: Some(1),
            expired_end: Some(2),
            too_new_start: Some(4),
            entity_rejected: true,
        };
        let over = rejected_counts_over(part, 5, 100);
        assert_eq!(over.counts(100), part.counts(5));
        assert_eq!(
            over,
            Rejected {
                too_old_end: Some(1),
                expired_end: Some(2),
                too_new_start: Some(99),
                entity_rejected: true,
            }
        );
        assert_eq!(
            rejected_counts_over(Rejected::default(), 5, 100),
            Rejected::default()
        );
    }
}
