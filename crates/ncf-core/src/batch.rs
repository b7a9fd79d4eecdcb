//! Events → PutLogEvents batches that obey every documented limit.
//!
//! Limits from the PutLogEvents API reference:
//! <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::checkpoint::{LineRun, LineRuns};
use ncf_parse::json::{ObjectWriter, push_str};
use ncf_parse::{LogEvent, Message, OutputFormat};

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

/// Events older than 14 days are rejected (reported in `rejectedLogEventsInfo`).
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>
pub const MAX_EVENT_AGE_MS: i64 = 14 * 24 * 60 * 60 * 1000;
/// Events more than 2 hours in the future are rejected.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>
pub const MAX_EVENT_FUTURE_MS: i64 = 2 * 60 * 60 * 1000;

/// Whether CloudWatch Logs would store an event with this timestamp now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Accepted,
    /// Older than 14 days.
    TooOld,
    /// More than 2 hours in the future.
    TooNew,
    /// Older than the log group's retention (when shorter than 14 days).
    Expired,
}

/// Classifies `ts` against the PutLogEvents time window at `now` (both ms since the epoch).
/// `retention_days` is the retention the forwarder sets on the groups it creates.
pub fn window(ts: i64, now: i64, retention_days: Option<i32>) -> Window {
    if ts > now + MAX_EVENT_FUTURE_MS {
        Window::TooNew
    } else if ts < now - MAX_EVENT_AGE_MS {
        Window::TooOld
    } else if retention_days.is_some_and(|d| ts < now - i64::from(d) * 24 * 60 * 60 * 1000) {
        Window::Expired
    } else {
        Window::Accepted
    }
}

/// One PutLogEvents call's worth of events, sorted by timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub events: Vec<LogEvent>,
    /// Bytes as CloudWatch counts them (message bytes + 26 per event).
    pub bytes: usize,
    /// The lines the events start at, as runs (what progress accounting needs once the events
    /// are gone with the request).
    pub lines: LineRuns,
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

/// Events held back at most (bytes as CloudWatch counts them) across all open day buckets;
/// beyond it the fullest bucket is sent early. Bounds memory for objects spanning many days.
pub const MAX_PENDING_BYTES: usize = 4 * MAX_BATCH_BYTES;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Default)]
struct Bucket {
    events: Vec<LogEvent>,
    bytes: usize,
    lines: LineRuns,
    /// Bytes of the arenas its events' messages keep alive ([`ncf_parse::Message::arena`]),
    /// each counted once when an event of a new arena joins, and the last such arena.
    pinned: usize,
    last_arena: usize,
}

/// A bucket keeps at most this many bytes of arenas alive per byte of its own events (plus two
/// arenas, the ones at its edges); an event that would keep more has its message copied out.
/// Events in input order keep about one byte per byte: the limit is reached only by a day whose
/// events are scattered thinly over many blocks, which would otherwise keep every one of those
/// blocks' messages in memory while the bucket fills.
const MAX_PINNED_PER_BYTE: usize = 4;

/// Fills batches as full as the limits allow, whatever the order of the events.
///
/// Events are held in one bucket per UTC day (so a batch never spans 24 h, however the lines
/// are ordered); a bucket is sent, sorted by time, when the next event would break the count or
/// byte limit. Holding several days at once keeps out-of-order input from fragmenting batches;
/// [`MAX_PENDING_BYTES`] bounds what is held.
#[derive(Debug, Default)]
pub struct Batcher {
    buckets: std::collections::BTreeMap<i64, Bucket>,
    pending_bytes: usize,
    output: OutputFormat,
}

impl Batcher {
    pub fn new(output: OutputFormat) -> Self {
        Self {
            output,
            ..Self::default()
        }
    }

    /// Adds one event; completed batches are pushed onto `out`.
    pub fn push(&mut self, ev: LogEvent, out: &mut Vec<Batch>) {
        for part in fitting_parts(ev, self.output) {
            self.push_fitting(part, out);
        }
    }

    fn push_fitting(&mut self, ev: LogEvent, out: &mut Vec<Batch>) {
        let size = event_size(&ev);
        let day = ev.timestamp.div_euclid(DAY_MS);
        let bucket = self.buckets.entry(day).or_default();
        if bucket.events.len() >= MAX_BATCH_EVENTS || bucket.bytes + size > MAX_BATCH_BYTES {
            let full = std::mem::take(bucket);
            self.pending_bytes -= full.bytes;
            out.push(seal(full));
        }
        let bucket = self.buckets.entry(day).or_default();
        let mut ev = ev;
        if let Some((arena, arena_bytes)) = ev.message.arena()
            && arena != bucket.last_arena
        {
            let allowed = MAX_PINNED_PER_BYTE * (bucket.bytes + size) + 2 * arena_bytes;
            if bucket.pinned + arena_bytes > allowed {
                ev.message.detach();
            } else {
                bucket.pinned += arena_bytes;
                bucket.last_arena = arena;
            }
        }
        bucket.bytes += size;
        bucket.lines.push(ev.line, ev.offset);
        bucket.events.push(ev);
        self.pending_bytes += size;
        if self.pending_bytes > MAX_PENDING_BYTES {
            let fullest = self
                .buckets
                .iter()
                .max_by_key(|(_, b)| b.bytes)
                .map(|(d, _)| *d);
            if let Some(b) = fullest.and_then(|d| self.buckets.remove(&d)) {
                self.pending_bytes -= b.bytes;
                out.push(seal(b));
            }
        }
    }

    /// The lines of the events held back (not yet in a batch).
    pub fn held_lines(&self) -> impl Iterator<Item = &LineRun> {
        self.buckets.values().flat_map(|b| b.lines.iter())
    }

    /// Emits everything still held, oldest day first.
    pub fn finish(&mut self, out: &mut Vec<Batch>) {
        for (_, b) in std::mem::take(&mut self.buckets) {
            if !b.events.is_empty() {
                out.push(seal(b));
            }
        }
        self.pending_bytes = 0;
    }
}

fn seal(mut b: Bucket) -> Batch {
    // Stable: events with equal timestamps (and the parts of a split line) keep their order.
    b.events.sort_by_key(|e| e.timestamp);
    Batch {
        events: b.events,
        bytes: b.bytes,
        lines: b.lines,
    }
}

/// Room left in a JSON part for the wrapper `{"part":N,"parts":N,"chunk":"…"}`.
const JSON_PART_OVERHEAD: usize = 64;

/// The events that carry `ev`: itself when its message fits in one event (no allocation), else
/// the parts of [`split_oversize`].
pub fn fitting_parts(ev: LogEvent, output: OutputFormat) -> impl Iterator<Item = LogEvent> {
    let (whole, parts) = if ev.message.len() > MAX_EVENT_MESSAGE_BYTES {
        (None, split_oversize(ev, output))
    } else {
        (Some(ev), Vec::new())
    };
    whole.into_iter().chain(parts)
}

/// Splits an event whose message exceeds [`MAX_EVENT_MESSAGE_BYTES`] into consecutive parts on
/// UTF-8 boundaries, all with the event's timestamp and line. Nothing is dropped:
/// - raw output: the parts are the message's consecutive pieces;
/// - JSON output: each part is `{"part": i, "parts": n, "chunk": "…"}` (1-based), and the chunks
///   joined in order give back the exact message that was too long to send whole.
pub fn split_oversize(ev: LogEvent, output: OutputFormat) -> Vec<LogEvent> {
    let budget = match output {
        OutputFormat::Raw => MAX_EVENT_MESSAGE_BYTES,
        OutputFormat::Json => MAX_EVENT_MESSAGE_BYTES - JSON_PART_OVERHEAD,
    };
    let text = ev.message.text();
    let mut chunks: Vec<&str> = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let cut = match output {
            OutputFormat::Raw => {
                let mut cut = rest.len().min(budget);
                while !rest.is_char_boundary(cut) {
                    cut -= 1;
                }
                cut
            }
            // The chunk is JSON-escaped inside the part: count the escaped size.
            OutputFormat::Json => escaped_prefix_len(rest, budget),
        };
        chunks.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    let parts = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let message = match output {
                OutputFormat::Raw => Message::new(chunk),
                OutputFormat::Json => {
                    let mut w = ObjectWriter::message(chunk.len() + JSON_PART_OVERHEAD);
                    w.num_field("part", &(i + 1).to_string());
                    w.num_field("parts", &parts.to_string());
                    w.str_field("chunk", chunk);
                    w.finish_message()
                }
            };
            LogEvent {
                message,
                // The redactions are counted once per event: with its first part.
                redacted: if i == 0 { ev.redacted } else { 0 },
                ..ev.clone()
            }
        })
        .collect()
}

/// The longest prefix of `s` (on a char boundary, at least one char) whose JSON-escaped form
/// takes at most `budget` bytes.
fn escaped_prefix_len(s: &str, budget: usize) -> usize {
    let mut used = 0;
    let mut one = String::new();
    for (i, c) in s.char_indices() {
        one.clear();
        push_str(&mut one, c.encode_utf8(&mut [0; 4]));
        let cost = one.len() - 2; // without the quotes
        if used + cost > budget && i > 0 {
            return i;
        }
        used += cost;
    }
    s.len()
}

/// A batch whose put got no answer, matched against what reading its stream back finds, to
/// tell what CloudWatch stored from what it did not. Each event read back matches at most one
/// sent event with the same timestamp and message, so `n` identical lines need `n` copies in the
/// stream to count as stored.
pub struct ReadBack<'a> {
    sent: &'a [(i64, String)],
    /// Unmatched sent events by (timestamp, hash of the message).
    unmatched: HashMap<(i64, u64), Vec<usize>>,
    left: usize,
}

impl<'a> ReadBack<'a> {
    pub fn new(sent: &'a [(i64, String)]) -> Self {
        let mut unmatched: HashMap<(i64, u64), Vec<usize>> = HashMap::new();
        for (i, (ts, message)) in sent.iter().enumerate() {
            unmatched.entry((*ts, hash(message))).or_default().push(i);
        }
        Self {
            sent,
            unmatched,
            left: sent.len(),
        }
    }

    /// The time range to read: from the first event's timestamp up to, not including, the
    /// millisecond after the last one (GetLogEvents' `endTime` is exclusive).
    pub fn range(&self) -> Option<(i64, i64)> {
        let first = self.sent.iter().map(|e| e.0).min()?;
        let last = self.sent.iter().map(|e| e.0).max()?;
        Some((first, last.saturating_add(1)))
    }

    /// An event read back from the stream.
    pub fn saw(&mut self, timestamp: i64, message: &str) {
        let Some(waiting) = self.unmatched.get_mut(&(timestamp, hash(message))) else {
            return;
        };
        if let Some(at) = waiting.iter().position(|&i| self.sent[i].1 == message) {
            waiting.swap_remove(at);
            self.left -= 1;
        }
    }

    pub fn all_found(&self) -> bool {
        self.left == 0
    }

    /// The indexes of the sent events not found, in order.
    pub fn missing(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self.unmatched.values().flatten().copied().collect();
        out.sort_unstable();
        out
    }
}

fn hash(message: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    message.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: i64, len: usize, line: u64) -> LogEvent {
        LogEvent {
            timestamp: ts,
            message: Message::new(&"x".repeat(len)),
            line,
            offset: 0,
            parse_failed: false,
            filtered: None,
            redacted: 0,
        }
    }

    fn run(events: Vec<LogEvent>) -> Vec<Batch> {
        run_as(events, OutputFormat::Raw)
    }

    fn run_as(events: Vec<LogEvent>, output: OutputFormat) -> Vec<Batch> {
        let mut b = Batcher::new(output);
        let mut out = Vec::new();
        for e in events {
            b.push(e, &mut out);
        }
        b.finish(&mut out);
        out
    }

    /// A day whose events are scattered one per block over many blocks keeps only a bounded
    /// amount of those blocks' arenas alive: the rest of its events own their messages. Events
    /// in input order share their arenas. Nothing is lost either way.
    #[test]
    fn a_thinly_scattered_day_does_not_keep_every_blocks_arena() {
        use ncf_parse::json::{InArena, push_message};
        use std::collections::HashSet;
        use std::sync::Arc;
        const BLOCK: usize = 64 << 10;
        let day = 86_400_000;
        let mut b = Batcher::new(OutputFormat::Raw);
        let mut out = Vec::new();
        let mut line = 0;
        let mut arenas = Vec::new();
        for block in 0..300 {
            // One event of yesterday, then today's events filling the block.
            let mut arena = String::new();
            let mut placed: Vec<(i64, InArena)> = Vec::new();
            placed.push((
                day - 1000,
                push_message(&mut arena, &format!("old {block}")),
            ));
            while arena.len() < BLOCK {
                placed.push((2 * day, push_message(&mut arena, &"n".repeat(200))));
            }
            let arena = Arc::new(arena);
            for (ts, at) in placed {
                line += 1;
                b.push(
                    LogEvent {
                        timestamp: ts,
                        message: Message::in_arena(&arena, at),
                        line,
                        offset: 0,
                        parse_failed: false,
                        filtered: None,
                        redacted: 0,
                    },
                    &mut out,
                );
            }
            arenas.push(Arc::downgrade(&arena));
        }
        let old = &b.buckets[&0];
        assert_eq!(old.events.len(), 300, "yesterday's events are all held");
        let arena_ids = |events: &[LogEvent]| -> HashSet<usize> {
            events
                .iter()
                .filter_map(|e| e.message.arena().map(|(id, _)| id))
                .collect()
        };
        let kept = arena_ids(&old.events);
        // 300 small events (about 10 KB as CloudWatch counts them) keep a few blocks, not 300.
        assert!(
            kept.len() * BLOCK <= 4 * old.bytes + 2 * 2 * BLOCK && kept.len() < 10,
            "{} arenas of {BLOCK} bytes kept for {} bytes of events",
            kept.len(),
            old.bytes
        );
        assert!(kept.len() >= 2, "the first ones are kept as they are");
        let texts: Vec<String> = old.events.iter().map(|e| e.message.text()).collect();
        assert_eq!(
            texts,
            (0..300).map(|i| format!("old {i}")).collect::<Vec<_>>()
        );
        // Today's sent batches share arenas: each keeps about as much as it holds.
        for batch in &out {
            let ids = arena_ids(&batch.events);
            assert!(
                ids.len() * BLOCK <= 2 * batch.bytes + 2 * 2 * BLOCK,
                "{}",
                ids.len()
            );
            assert!(batch.events.iter().all(|e| e.message.arena().is_some()));
        }
        b.finish(&mut out);
        // Once the batches are gone, no arena is left.
        drop(b);
        drop(out);
        assert!(arenas.iter().all(|a| a.upgrade().is_none()));
    }

    fn check_limits(batches: &[Batch]) {
        for b in batches {
            // The runs name exactly the lines the events start at.
            let mut want: Vec<u64> = b.events.iter().map(|e| e.line).collect();
            want.sort_unstable();
            want.dedup();
            let mut got: Vec<u64> = b.lines.iter().flat_map(|r| r.first..=r.last).collect();
            got.sort_unstable();
            got.dedup();
            assert_eq!(got, want, "line runs {:?}", b.lines);
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
        let out = run(vec![ev(0, 1, 1), ev(day + 1, 1, 2)]);
        assert_eq!(out.len(), 2);
        check_limits(&out);
        // Day buckets are UTC-aligned: a minute apart across midnight is two batches.
        let out = run(vec![
            ev(day - 30_000, 1, 1),
            ev(day + 30_000, 1, 2),
            ev(day - 1, 1, 3),
        ]);
        assert_eq!(
            out.iter().map(|b| b.events.len()).collect::<Vec<_>>(),
            [2, 1]
        );
        check_limits(&out);
    }

    #[test]
    fn many_days_hold_bounded_memory() {
        // 40 days of interleaved events: the fullest bucket is sent before too much is held.
        let mut b = Batcher::new(OutputFormat::Raw);
        let mut out = Vec::new();
        for i in 0..40_000u64 {
            b.push(ev((i % 40) as i64 * MAX_BATCH_SPAN_MS, 1000, i), &mut out);
            assert!(b.pending_bytes <= MAX_PENDING_BYTES);
        }
        b.finish(&mut out);
        check_limits(&out);
        assert_eq!(out.iter().map(|b| b.events.len()).sum::<usize>(), 40_000);
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
            message: Message::new(&msg),
            line: 9,
            offset: 0,
            parse_failed: false,
            filtered: None,
            redacted: 0,
        };
        let out = run(vec![e]);
        check_limits(&out);
        let joined: String = out
            .iter()
            .flat_map(|b| b.events.iter().map(|e| e.message.text()))
            .collect();
        assert_eq!(joined, msg);
        assert!(
            out.iter()
                .all(|b| b.events.iter().all(|e| e.timestamp == 5 && e.line == 9))
        );
        assert_eq!(out.iter().map(|b| b.events.len()).sum::<usize>(), 4);
    }

    #[test]
    fn oversize_json_message_becomes_joinable_parts() {
        // A JSON message with many characters that need escaping, 3 MiB long.
        let raw_line = "q\"\\é".repeat(3 * 1024 * 1024 / 5);
        let mut w = ObjectWriter::with_capacity(0);
        w.str_field("raw", &raw_line);
        let msg = w.finish();
        let e = LogEvent {
            timestamp: 5,
            message: Message::new(&msg),
            line: 9,
            offset: 0,
            parse_failed: false,
            filtered: None,
            redacted: 0,
        };
        let out = run_as(vec![e], OutputFormat::Json);
        check_limits(&out);
        let parts: Vec<serde_json::Value> = out
            .iter()
            .flat_map(|b| {
                b.events
                    .iter()
                    .map(|e| serde_json::from_str(&e.message.text()).unwrap())
            })
            .collect();
        let n = parts.len();
        assert!(n >= 4, "{n} parts");
        let mut joined = String::new();
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(
                (p["part"].as_u64(), p["parts"].as_u64()),
                (Some(i as u64 + 1), Some(n as u64))
            );
            joined.push_str(p["chunk"].as_str().unwrap());
        }
        assert_eq!(joined, msg);
        let back: serde_json::Value = serde_json::from_str(&joined).unwrap();
        assert_eq!(back["raw"], raw_line);
    }

    #[test]
    fn time_window_boundaries() {
        let now = 1_800_000_000_000;
        let s = 1000;
        let cases = [
            (now, None, Window::Accepted),
            (now - MAX_EVENT_AGE_MS + s, None, Window::Accepted),
            (now - MAX_EVENT_AGE_MS, None, Window::Accepted),
            (now - MAX_EVENT_AGE_MS - s, None, Window::TooOld),
            (now + MAX_EVENT_FUTURE_MS, None, Window::Accepted),
            (now + MAX_EVENT_FUTURE_MS + 1, None, Window::TooNew),
            (now - 3 * 86_400_000 + s, Some(3), Window::Accepted),
            (now - 3 * 86_400_000 - s, Some(3), Window::Expired),
            (now - MAX_EVENT_AGE_MS - s, Some(30), Window::TooOld),
        ];
        for (ts, retention, want) in cases {
            assert_eq!(
                window(ts, now, retention),
                want,
                "{} ms from now, retention {retention:?}",
                ts - now
            );
        }
    }

    #[test]
    fn read_back_matches_each_event_once_and_names_what_is_missing() {
        let ev = |ts, m: &str| (ts, m.to_string());
        let sent = [
            ev(10, "GET /health"),
            ev(10, "GET /health"),
            ev(10, "GET /a"),
            ev(12, "GET /b"),
        ];
        // (what the stream holds over the range, the indexes of the batch still missing)
        type Case<'a> = (&'a [(i64, &'a str)], &'a [usize]);
        let cases: [Case; 6] = [
            (&[], &[0, 1, 2, 3]),
            (
                &[
                    (10, "GET /health"),
                    (10, "GET /a"),
                    (12, "GET /b"),
                    (10, "GET /health"),
                ],
                &[],
            ),
            // one copy of a line sent twice is one of them, not both
            (&[(10, "GET /health"), (10, "GET /a"), (12, "GET /b")], &[1]),
            // same message at another time, or another message at the same time: not ours
            (
                &[(11, "GET /a"), (12, "GET /a"), (10, "GET /c")],
                &[0, 1, 2, 3],
            ),
            // other events of the stream in the range do not disturb the match
            (
                &[
                    (10, "x"),
                    (10, "GET /a"),
                    (11, "y"),
                    (12, "GET /b"),
                    (12, "GET /b"),
                ],
                &[0, 1],
            ),
            (&[(10, "GET /health"); 5], &[2, 3]),
        ];
        for (stream, missing) in cases {
            let mut rb = ReadBack::new(&sent);
            assert_eq!(rb.range(), Some((10, 13)));
            for (ts, m) in stream {
                rb.saw(*ts, m);
            }
            assert_eq!(rb.missing(), missing, "{stream:?}");
            assert_eq!(rb.all_found(), missing.is_empty());
        }
        assert_eq!(ReadBack::new(&[]).range(), None);
        assert!(ReadBack::new(&[]).all_found());
    }
}
