//! The deliver stage, in input order: window filter → [`Batcher`] (which splits a message too
//! big for one event first, [`crate::batch::fitting_parts`]) → puts in flight (bounded by the
//! invocation's `puts` semaphore) → accounting. What each finished put confirms goes to the
//! progress stage ([`Ledger`]) as a value; this stage never writes progress itself.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::task::JoinSet;
use tracing::warn;

use super::error::ForwardError;
use super::lease::Lease;
use super::progress::Ledger;
use super::shared::Shared;
use crate::batch::{Batch, Batcher, Window, event_size, window};
use crate::checkpoint::LineRun;
use crate::config::EntityKind;
use crate::event::ObjectRef;
use crate::ports::{CheckpointStore, Entity, LogSink, PutReport, RejectedCounts, SinkError};
use crate::route::Route;
use crate::summary::Counters;
use ncf_parse::{LogEvent, OutputFormat};

/// How many lines per object and reason are logged by line number (the rest are counted).
const LOG_SAMPLE: u64 = 5;

/// A finished put: its ticket with the progress stage, how many events it carried, the first
/// line among them (the messages are gone with the request), and what CloudWatch rejected.
type PutResult = Result<(Sent, PutReport), SinkError>;

/// What is kept of a batch while its put is in flight.
#[derive(Debug, Clone)]
struct Sent {
    ticket: u64,
    events: usize,
    first_line: u64,
    /// Each event's size as CloudWatch bills it, in order: what the stored ones cost is known
    /// only once the answer says which were rejected.
    sizes: Vec<u32>,
    /// Each event's redaction bits ([`LogEvent::redacted`]), in order; empty when no rule
    /// changed any event of the batch.
    redacted: Vec<u32>,
}

impl Sent {
    /// The events CloudWatch stored, by index: all but the rejected ones, which are the first
    /// and the last of a sorted batch.
    fn stored(&self, rejected: RejectedCounts) -> std::ops::Range<usize> {
        let first = usize::try_from(rejected.too_old + rejected.expired).unwrap_or(usize::MAX);
        let end = self
            .events
            .saturating_sub(usize::try_from(rejected.too_new).unwrap_or(usize::MAX));
        first.min(end)..end
    }

    /// Bytes billed for the events CloudWatch stored.
    fn ingested_bytes(&self, rejected: RejectedCounts) -> u64 {
        self.sizes
            .get(self.stored(rejected))
            .map_or(0, |s| s.iter().map(|&b| u64::from(b)).sum())
    }

    /// The redaction bits of the events CloudWatch stored.
    fn stored_redacted(&self, rejected: RejectedCounts) -> &[u32] {
        self.redacted.get(self.stored(rejected)).unwrap_or_default()
    }
}

/// The deliver stage's part of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivering {
    /// `OUTPUT_FORMAT`: how a message too big for one event is split.
    pub output: OutputFormat,
    /// `ENTITY`: what each put names as the source of its events.
    pub entity: EntityKind,
    /// `MAX_CONCURRENT_PUTS`: after taking over an expired lease, how many batches its dead
    /// holder may have had in flight.
    pub max_concurrent_puts: usize,
    /// `RETENTION_DAYS`: events older than the retention are not sent.
    pub retention_days: Option<i32>,
}

pub(super) struct Deliver<'a, K, C> {
    shared: &'a Shared<K, C>,
    settings: &'a Delivering,
    route: &'a Route,
    obj: &'a ObjectRef,
    /// What was sent, stored and rejected (the reading counters are the read stage's).
    pub(super) counters: Counters,
    /// Events each `FILTER_RULES` rule took, by rule index.
    pub(super) by_rule: Vec<u64>,
    /// Events stored that each redaction rule changed, by rule index (bit of
    /// [`LogEvent::redacted`]): counted as their put is confirmed, as `events` is, so that a
    /// resume counts only what it sends.
    pub(super) redacted_by_rule: Vec<u64>,
    batcher: Batcher,
    /// Batches the batcher completed, waiting to be put.
    ready: Vec<Batch>,
    in_flight: JoinSet<PutResult>,
    /// The time the window filter judges by (fixed per object).
    now: i64,
    /// Sent with every put of the object (`ENTITY`).
    entity: Option<Arc<Entity>>,
    /// Set when the object's lease was lost: no batch is started after that.
    lease_lost: Option<Arc<AtomicBool>>,
    /// After taking over an expired lease: each batch is first looked for in the stream (its
    /// dead holder may have stored it without recording so), until this many batches in a row
    /// were entirely missing (as many as the holder could have had in flight).
    verify: Option<usize>,
}

impl<'a, K: LogSink + 'static, C: CheckpointStore + 'static> Deliver<'a, K, C> {
    pub(super) fn new(
        shared: &'a Shared<K, C>,
        settings: &'a Delivering,
        route: &'a Route,
        obj: &'a ObjectRef,
        lease: Option<&Lease>,
    ) -> Self {
        Self {
            verify: lease.is_some_and(|l| l.took_over.is_some()).then_some(0),
            lease_lost: lease.map(|l| l.lost.clone()),
            shared,
            settings,
            route,
            obj,
            counters: Counters::default(),
            by_rule: Vec::new(),
            redacted_by_rule: Vec::new(),
            batcher: Batcher::new(settings.output),
            ready: Vec::new(),
            in_flight: JoinSet::new(),
            now: (shared.clock)(),
            entity: match settings.entity {
                EntityKind::Ec2Instance => Some(Arc::new(Entity::ec2_instance(&route.instance_id))),
                EntityKind::None => None,
            },
        }
    }

    /// The end of the object: sends what the batcher still holds.
    pub(super) async fn finish(
        &mut self,
        ledger: &mut Ledger<'_, K, C>,
    ) -> Result<(), ForwardError> {
        self.batcher.finish(&mut self.ready);
        self.send_ready(ledger).await
    }

    /// Takes events in input order: counts and filters them, then hands them to the batcher
    /// (the batches that fill up wait for [`Deliver::send_ready`]).
    pub(super) fn absorb(&mut self, events: &mut Vec<LogEvent>, ledger: &mut Ledger<'_, K, C>) {
        let (now, retention) = (self.now, self.settings.retention_days);
        for ev in events.drain(..) {
            if !ledger.wanted(ev.line) {
                continue; // delivered by an earlier run
            }
            if let Some(f) = ev.filtered {
                if f.sampled {
                    self.counters.sampled_out += 1;
                } else {
                    self.counters.dropped += 1;
                }
                let i = usize::from(f.rule);
                if self.by_rule.len() <= i {
                    self.by_rule.resize(i + 1, 0);
                }
                self.by_rule[i] += 1;
                continue; // counted, never sent
            }
            if ev.parse_failed {
                self.counters.parse_errors += 1;
                if self.counters.parse_errors <= LOG_SAMPLE {
                    warn!(bucket = %self.obj.bucket, key = %self.obj.key.escape_debug(), line = ev.line,
                          "line did not parse; forwarded raw");
                }
            }
            let verdict = window(ev.timestamp, now, retention);
            let count = match verdict {
                Window::Accepted => {
                    // (Split into parts first if too big for one event.)
                    self.batcher.push(ev, &mut self.ready);
                    continue;
                }
                Window::TooOld => &mut self.counters.rejected_too_old,
                Window::TooNew => &mut self.counters.rejected_too_new,
                Window::Expired => &mut self.counters.rejected_expired,
            };
            *count += 1;
            if *count <= LOG_SAMPLE {
                warn!(bucket = %self.obj.bucket, key = %self.obj.key.escape_debug(), line = ev.line,
                      timestamp = ev.timestamp, "event not sent: CloudWatch Logs would reject it ({verdict:?})");
            }
        }
    }

    /// Starts the puts of the batches that filled up.
    pub(super) async fn send_ready(
        &mut self,
        ledger: &mut Ledger<'_, K, C>,
    ) -> Result<(), ForwardError> {
        let mut ready = std::mem::take(&mut self.ready);
        // Each batch gets its ticket before any put starts: a batch never sent (out of time, a
        // failed put before it) stays not delivered.
        let tickets: Vec<u64> = ready
            .iter_mut()
            .map(|b| ledger.sent(std::mem::take(&mut b.lines)))
            .collect();
        for (batch, ticket) in ready.drain(..).zip(tickets) {
            self.send(batch, ticket, ledger).await?;
        }
        // Keep the allocation for the next round.
        self.ready = ready;
        Ok(())
    }

    /// Starts a put once a slot is free; collects finished puts on the way.
    async fn send(
        &mut self,
        batch: Batch,
        ticket: u64,
        ledger: &mut Ledger<'_, K, C>,
    ) -> Result<(), ForwardError> {
        if let Some(reason) = self.shared.stop.reason(self.lease_lost.as_deref()) {
            return Err(ledger.stopped(reason, self.batcher.held_lines()));
        }
        let Some(batch) = self.unless_stored(batch).await else {
            // The dead holder stored all of it.
            ledger.confirmed(ticket, self.batcher.held_lines());
            return Ok(());
        };
        let permit = self
            .shared
            .puts
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ForwardError::Task(e.to_string()))?;
        while let Some(done) = self.in_flight.try_join_next() {
            self.account(done, ledger)?;
        }
        let sink = self.shared.sink.clone();
        let (group, stream) = (self.route.log_group.clone(), self.route.log_stream.clone());
        let entity = self.entity.clone();
        let sent = Sent {
            ticket,
            events: batch.events.len(),
            first_line: batch.events.iter().map(|e| e.line).min().unwrap_or(0),
            sizes: batch
                .events
                .iter()
                .map(|e| u32::try_from(event_size(e)).unwrap_or(u32::MAX))
                .collect(),
            redacted: if batch.events.iter().any(|e| e.redacted != 0) {
                batch.events.iter().map(|e| e.redacted).collect()
            } else {
                Vec::new()
            },
        };
        self.in_flight.spawn(async move {
            let result = sink
                .put(&group, &stream, entity.as_deref(), batch.events)
                .await;
            drop(permit);
            result.map(|rejected| (sent, rejected))
        });
        Ok(())
    }

    /// After a takeover, what of `batch` the stream does not hold yet (`None`: nothing).
    async fn unless_stored(&mut self, mut batch: Batch) -> Option<Batch> {
        let Some(in_a_row) = self.verify else {
            return Some(batch);
        };
        let sent: Vec<(i64, String)> = batch
            .events
            .iter()
            .map(|e| (e.timestamp, e.message.text()))
            .collect();
        let (group, stream) = (&self.route.log_group, &self.route.log_stream);
        let missing = match self.shared.sink.find_missing(group, stream, &sent).await {
            Ok(m) => m,
            Err(e) => {
                warn!(bucket = %self.obj.bucket, key = %self.obj.key.escape_debug(),
                      "after taking over an expired lease, cannot check what its holder stored ({e}): sending the rest without checking");
                self.verify = None;
                return Some(batch);
            }
        };
        let found = sent.len() - missing.len();
        self.counters.found_after_takeover += found as u64;
        let in_a_row = if found == 0 { in_a_row + 1 } else { 0 };
        // The holder had at most this many puts in flight: past that many batches in a row
        // that it did not store, it stored nothing later either.
        self.verify = (in_a_row < self.settings.max_concurrent_puts).then_some(in_a_row);
        if missing.is_empty() {
            return None;
        }
        if found > 0 {
            let mut keep = missing.into_iter().peekable();
            let mut i = 0;
            batch.events.retain(|_| {
                let k = keep.next_if_eq(&i).is_some();
                i += 1;
                k
            });
        }
        Some(batch)
    }

    /// The lines of the events held for batching (not yet in any batch).
    pub(super) fn held_lines(&self) -> Vec<LineRun> {
        self.batcher.held_lines().copied().collect()
    }

    /// Waits for every put in flight.
    pub(super) async fn drain(
        &mut self,
        ledger: &mut Ledger<'_, K, C>,
    ) -> Result<(), ForwardError> {
        let mut first_error = Ok(());
        while let Some(done) = self.in_flight.join_next().await {
            if let Err(e) = self.account(done, ledger) {
                first_error = first_error.and(Err(e));
            }
        }
        first_error
    }

    fn account(
        &mut self,
        done: Result<PutResult, tokio::task::JoinError>,
        ledger: &mut Ledger<'_, K, C>,
    ) -> Result<(), ForwardError> {
        let (sent, report) = done.map_err(|e| ForwardError::Task(e.to_string()))??;
        let rejected = report.rejected;
        let counts = rejected.counts(sent.events);
        let c = &mut self.counters;
        c.batches += 1;
        c.events += sent.events as u64 - counts.too_old - counts.too_new - counts.expired;
        c.ingested_bytes += sent.ingested_bytes(counts);
        for &bits in sent.stored_redacted(counts) {
            count_bits(&mut self.redacted_by_rule, bits);
            c.lines_redacted += u64::from(bits != 0);
        }
        c.add_rejected(counts);
        c.entity_rejected += u64::from(rejected.entity_rejected);
        c.ambiguous_puts += report.ambiguous;
        c.resent_after_check += report.resent_after_check;
        if counts.too_old + counts.too_new + counts.expired > 0 {
            warn!(bucket = %self.obj.bucket, key = %self.obj.key.escape_debug(), too_old = counts.too_old,
                  too_new = counts.too_new, expired = counts.expired,
                  first_line = sent.first_line,
                  "CloudWatch Logs rejected events of this batch (outside its time window)");
        }
        ledger.confirmed(sent.ticket, self.batcher.held_lines());
        Ok(())
    }
}

/// Adds one to `counts[i]` for each bit `i` set in `bits` (growing `counts` as needed).
fn count_bits(counts: &mut Vec<u64>, mut bits: u32) {
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        if counts.len() <= i {
            counts.resize(i + 1, 0);
        }
        counts[i] += 1;
        bits &= bits - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One event hit by two rules counts once for each; an event no rule changed, for none.
    #[test]
    fn each_rule_that_changed_an_event_counts_it_once() {
        let mut counts = Vec::new();
        for bits in [0b101, 0, 0b1, 1 << 31] {
            count_bits(&mut counts, bits);
        }
        let mut want = vec![0; 32];
        (want[0], want[2], want[31]) = (2, 1, 1);
        assert_eq!(counts, want);
        let mut none = Vec::new();
        count_bits(&mut none, 0);
        assert!(none.is_empty());
    }

    #[test]
    fn only_the_stored_events_are_billed() {
        let sent = Sent {
            ticket: 0,
            events: 5,
            first_line: 0,
            sizes: vec![100, 200, 300, 400, 500],
            redacted: vec![0b1, 0, 0b11, 0, 0b10],
        };
        let r = |too_old, expired, too_new| RejectedCounts {
            too_old,
            too_new,
            expired,
        };
        assert_eq!(sent.ingested_bytes(r(0, 0, 0)), 1500);
        assert_eq!(sent.ingested_bytes(r(1, 1, 1)), 300 + 400);
        assert_eq!(sent.ingested_bytes(r(0, 0, 5)), 0);
        assert_eq!(sent.ingested_bytes(r(3, 2, 0)), 0);
        assert_eq!(sent.ingested_bytes(r(4, 0, 4)), 0);
        // The redactions counted are those of the stored events alone.
        assert_eq!(sent.stored_redacted(r(0, 0, 0)), [0b1, 0, 0b11, 0, 0b10]);
        assert_eq!(sent.stored_redacted(r(1, 1, 1)), [0b11, 0]);
        assert!(sent.stored_redacted(r(4, 0, 4)).is_empty());
        let none = Sent {
            redacted: Vec::new(),
            ..sent
        };
        assert!(none.stored_redacted(r(1, 0, 0)).is_empty());
    }
}
