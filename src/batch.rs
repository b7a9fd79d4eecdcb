//! Events → PutLogEvents batches that obey every documented limit.
//!
//! Limits from the PutLogEvents API reference:
//! <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>

use crate::parse::LogEvent;

/// At most 10,000 events per call.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// At most 1,048,576 bytes per call, counted as UTF-8 message bytes + 26 per event.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// The per-event overhead counted against [`MAX_BATCH_BYTES`].
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// The events of one call may not span more than 24 hours; we keep them strictly under.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;
/// One event may be at most 1 MiB including its overhead (raised from 256 KB in 2025), so a
/// message may carry this many bytes; longer lines are split into parts.
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html>
pub const MAX_EVENT_MESSAGE_BYTES: usize = 1_048_576 - EVENT_OVERHEAD_BYTES;

/// One PutLogEvents call's worth of events, sorted by timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub events: Vec<LogEvent>,
    /// Bytes as CloudWatch counts them (message bytes + 26 per event).
    pub bytes: usize,
}

impl Batch {
    pub fn span_ms(&self) -> i64 {
        match (self.events.first(), self.events.last()) {
            (Some(a), Some(b)) => b.timestamp - a.timestamp,
            _ => 0,
        }
    }
}

pub fn event_size(ev: &LogEvent) -> usize {
    ev.message.len() + EVENT_OVERHEAD_BYTES
}

/// Fills batches as full as the limits allow. Events may arrive in any order: they are held
/// until the batch is full by count or bytes, then sorted and cut where the span would exceed
/// 24 h; the last, unfinished piece is kept to be filled further.
#[derive(Debug, Default)]
pub struct Batcher {
    pending: Vec<LogEvent>,
    bytes: usize,
}

impl Batcher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one event; completed batches are pushed onto `out`.
    pub fn push(&mut self, ev: LogEvent, out: &mut Vec<Batch>) {
        if ev.message.len() > MAX_EVENT_MESSAGE_BYTES {
            for part in split_oversize(ev) {
                self.push_fitting(part, out);
            }
        } else {
            self.push_fitting(ev, out);
        }
    }

    fn push_fitting(&mut self, ev: LogEvent, out: &mut Vec<Batch>) {
        let size = event_size(&ev);
        if !self.fits(size) {
            self.seal(out, true);
            if !self.fits(size) {
                self.seal(out, false);
            }
        }
        self.bytes += size;
        self.pending.push(ev);
    }

    fn fits(&self, size: usize) -> bool {
        self.pending.len() < MAX_BATCH_EVENTS && self.bytes + size <= MAX_BATCH_BYTES
    }

    /// Emits everything still held.
    pub fn finish(&mut self, out: &mut Vec<Batch>) {
        self.seal(out, false);
    }

    fn seal(&mut self, out: &mut Vec<Batch>, keep_tail: bool) {
        if self.pending.is_empty() {
            return;
        }
        let mut events = std::mem::take(&mut self.pending);
        self.bytes = 0;
        // Stable: events with equal timestamps keep their line order.
        events.sort_by_key(|e| e.timestamp);
        let mut groups: Vec<Batch> = Vec::new();
        let mut current = Batch::default();
        for ev in events {
            if let Some(first) = current.events.first()
                && ev.timestamp - first.timestamp >= MAX_BATCH_SPAN_MS
            {
                groups.push(std::mem::take(&mut current));
            }
            current.bytes += event_size(&ev);
            current.events.push(ev);
        }
        groups.push(current);
        if keep_tail && let Some(tail) = groups.pop() {
            self.bytes = tail.bytes;
            self.pending = tail.events;
        }
        out.extend(groups);
    }
}

/// Splits an event whose message exceeds [`MAX_EVENT_MESSAGE_BYTES`] into consecutive parts on
/// UTF-8 boundaries, all with the event's timestamp. Nothing is dropped.
pub fn split_oversize(ev: LogEvent) -> Vec<LogEvent> {
    let mut parts = Vec::new();
    let mut rest = ev.message.as_str();
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_EVENT_MESSAGE_BYTES);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        parts.push(LogEvent {
            message: rest[..cut].to_string(),
            ..ev.clone()
        });
        rest = &rest[cut..];
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: i64, len: usize, line: u64) -> LogEvent {
        LogEvent {
            timestamp: ts,
            message: "x".repeat(len),
            line,
            parse_failed: false,
        }
    }

    fn run(events: Vec<LogEvent>) -> Vec<Batch> {
        let mut b = Batcher::new();
        let mut out = Vec::new();
        for e in events {
            b.push(e, &mut out);
        }
        b.finish(&mut out);
        out
    }

    fn check_limits(batches: &[Batch]) {
        for b in batches {
            assert!(!b.events.is_empty());
            assert!(b.events.len() <= MAX_BATCH_EVENTS);
            assert!(b.bytes <= MAX_BATCH_BYTES);
            assert_eq!(b.bytes, b.events.iter().map(event_size).sum::<usize>());
            assert!(b.span_ms() < MAX_BATCH_SPAN_MS);
            assert!(
                b.events
                    .windows(2)
                    .all(|w| w[0].timestamp <= w[1].timestamp)
            );
            assert!(
                b.events
                    .iter()
                    .all(|e| e.message.len() <= MAX_EVENT_MESSAGE_BYTES)
            );
        }
    }

    #[test]
    fn count_limit_exactly() {
        let out = run((0..MAX_BATCH_EVENTS as u64)
            .map(|i| ev(1000, 1, i))
            .collect());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].events.len(), MAX_BATCH_EVENTS);
        let out = run((0..=MAX_BATCH_EVENTS as u64)
            .map(|i| ev(1000, 1, i))
            .collect());
        assert_eq!(
            out.iter().map(|b| b.events.len()).collect::<Vec<_>>(),
            [MAX_BATCH_EVENTS, 1]
        );
        check_limits(&out);
    }

    #[test]
    fn byte_limit_exactly() {
        // 4 events of exactly a quarter of the limit fill one batch to the byte.
        let quarter = MAX_BATCH_BYTES / 4 - EVENT_OVERHEAD_BYTES;
        let out = run((0..4).map(|i| ev(1000, quarter, i)).collect());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, MAX_BATCH_BYTES);
        let out = run((0..4)
            .map(|i| ev(1000, quarter + usize::from(i == 3), i))
            .collect());
        assert_eq!(out.len(), 2);
        check_limits(&out);
    }

    #[test]
    fn span_limit_at_24h() {
        let day = MAX_BATCH_SPAN_MS;
        let out = run(vec![ev(0, 1, 1), ev(day - 1, 1, 2)]);
        assert_eq!(out.len(), 1);
        let out = run(vec![ev(0, 1, 1), ev(day, 1, 2)]);
        assert_eq!(out.len(), 2);
        check_limits(&out);
    }

    #[test]
    fn out_of_order_input_is_sorted_and_stable() {
        let out = run(vec![ev(30, 1, 1), ev(10, 1, 2), ev(20, 1, 3), ev(10, 1, 4)]);
        assert_eq!(out.len(), 1);
        let lines: Vec<u64> = out[0].events.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 4, 3, 1]);
    }

    #[test]
    fn many_events_over_30h_fill_batches_and_lose_nothing() {
        let hour = 3_600_000;
        // Interleave two far-apart periods so that span cuts happen inside full chunks.
        let events: Vec<LogEvent> = (0..60_000u64)
            .map(|i| {
                ev(
                    ((i * 7919) % 30) as i64 * hour + i as i64,
                    100 + (i % 50) as usize,
                    i,
                )
            })
            .collect();
        let out = run(events);
        check_limits(&out);
        let mut lines: Vec<u64> = out
            .iter()
            .flat_map(|b| b.events.iter().map(|e| e.line))
            .collect();
        lines.sort_unstable();
        assert_eq!(lines, (0..60_000).collect::<Vec<_>>());
    }

    #[test]
    fn oversize_line_is_split_on_char_boundaries() {
        let msg = "é".repeat(3 * 1024 * 1024 / 2) + "x"; // ~3 MiB of 2-byte chars
        let e = LogEvent {
            timestamp: 5,
            message: msg.clone(),
            line: 9,
            parse_failed: false,
        };
        let out = run(vec![e]);
        check_limits(&out);
        let joined: String = out
            .iter()
            .flat_map(|b| b.events.iter().map(|e| e.message.as_str()))
            .collect();
        assert_eq!(joined, msg);
        assert!(
            out.iter()
                .all(|b| b.events.iter().all(|e| e.timestamp == 5 && e.line == 9))
        );
        assert_eq!(out.iter().map(|b| b.events.len()).sum::<usize>(), 4);
    }
}
