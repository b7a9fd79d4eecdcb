//! The progress stage: what is confirmed delivered, when to save it, and where a later attempt
//! resumes (the record format is [`crate::checkpoint`]'s).
//!
//! It learns three things from the other stages: how far reading got ([`Ledger::read_to`]),
//! which lines went into batches ([`Ledger::sent`]) and which batches CloudWatch confirmed
//! ([`Ledger::confirmed`]). From those it writes the record in the background, one write in
//! flight at a time, and a last one at the end.

use futures_util::FutureExt;
use tokio::task::{JoinError, JoinHandle};

use super::error::{ForwardError, Stopped};
use super::shared::Shared;
use super::stop::StopReason;
use crate::checkpoint::{LineRun, LineRuns, ProgressRecord, Resume, State, Tracker};
use crate::event::ObjectRef;
use crate::ports::{CheckpointError, CheckpointStore, Stored};

/// Where the object's progress record is written; `None` in [`Ledger`] when there is no ETag or
/// no usable store.
struct Checkpointing {
    etag: String,
    other_tags: Vec<(String, String)>,
    saving: Option<JoinHandle<Result<(), CheckpointError>>>,
    last_saved: Option<State>,
}

/// The progress of one object's delivery.
pub(super) struct Ledger<'a, K, C> {
    shared: &'a Shared<K, C>,
    obj: &'a ObjectRef,
    ckpt: Option<Checkpointing>,
    pub(super) checkpoint_error: Option<CheckpointError>,
    tracker: Tracker,
    /// What an earlier attempt left to send.
    earlier: Resume,
    /// Where the reader stands: every line before it has been handed over (line, offset).
    position: (u64, u64),
    /// The stream is compressed (a resume decompresses from the start and skips).
    gzip: bool,
    /// No batch is sent any more: what is left is waiting for the puts in flight, then
    /// [`Ledger::finish`].
    sending_done: bool,
}

/// What a [`Ledger`] starts from.
pub(super) struct Starting {
    /// The version opened (`None`: no progress record can be written).
    pub etag: Option<String>,
    /// The object's tags as loaded (`None`: no usable progress store).
    pub stored: Option<Stored>,
    /// What an earlier attempt left to send.
    pub earlier: Resume,
    /// Where reading starts (line, decoded byte offset).
    pub position: (u64, u64),
}

impl<'a, K, C: CheckpointStore + 'static> Ledger<'a, K, C> {
    pub(super) fn new(shared: &'a Shared<K, C>, obj: &'a ObjectRef, starting: Starting) -> Self {
        let Starting {
            etag,
            stored,
            earlier,
            position,
        } = starting;
        let ckpt = match (etag, stored) {
            (Some(etag), Some(stored)) => Some(Checkpointing {
                etag,
                other_tags: stored.other_tags,
                saving: None,
                last_saved: None,
            }),
            _ => None,
        };
        Self {
            shared,
            obj,
            ckpt,
            checkpoint_error: None,
            tracker: Tracker::default(),
            earlier,
            position,
            gzip: false,
            sending_done: false,
        }
    }

    pub(super) fn set_compressed(&mut self, gzip: bool) {
        self.gzip = gzip;
    }

    /// True when the event starting at `line` was not delivered by an earlier attempt.
    pub(super) fn wanted(&self, line: u64) -> bool {
        self.earlier.wanted(line)
    }

    /// Every line before `line` (at decoded byte `offset`) has been handed over.
    pub(super) fn read_to(&mut self, line: u64, offset: u64) {
        self.position = (line, offset);
    }

    /// A batch with these lines is on its way to the sink; the ticket confirms it.
    pub(super) fn sent(&mut self, lines: LineRuns) -> u64 {
        self.tracker.sent(lines)
    }

    /// CloudWatch stored (or rejected for good) the batch of `ticket`; `held` are the lines of
    /// the events still held for batching.
    pub(super) fn confirmed<'r>(
        &mut self,
        ticket: u64,
        held: impl IntoIterator<Item = &'r LineRun>,
    ) {
        self.tracker.confirmed(ticket);
        self.checkpoint_soon(held);
    }

    /// Delivery stopped for `reason`, saying what is confirmed delivered so far (the lines
    /// before the line the progress record resumes at) and where the next attempt resumes.
    pub(super) fn stopped<'r>(
        &self,
        reason: StopReason,
        held: impl IntoIterator<Item = &'r LineRun>,
    ) -> ForwardError {
        ForwardError::Stopped(Stopped {
            reason,
            delivered_through: self.delivered_through(held),
            reader_at: self.position.0,
            recorded: self.ckpt.is_some(),
        })
    }

    /// Every line up to this one is confirmed delivered (`None`: no line yet).
    fn delivered_through<'r>(&self, held: impl IntoIterator<Item = &'r LineRun>) -> Option<u64> {
        let resume_line = match self.snapshot(held) {
            State::Partial { resume_line, .. } => resume_line,
            State::Done { lines } => lines + 1,
        };
        resume_line.checked_sub(1).filter(|&l| l > 0)
    }

    /// No batch will be sent after this: the puts in flight are waited for, then
    /// [`Ledger::finish`] writes the last record.
    pub(super) fn sending_done(&mut self) {
        self.sending_done = true;
    }

    /// Records progress in the background, one write at a time.
    fn checkpoint_soon<'r>(&mut self, held: impl IntoIterator<Item = &'r LineRun>) {
        if self.sending_done && self.tracker.is_idle() {
            // The last batch is confirmed (every batch carries at least one line, so an idle
            // tracker means no put in flight) and nothing else will be sent: `finish` writes the
            // record next, with nothing awaited before it but a save already in flight. It says
            // at least what this one would (done, or this same snapshot), and no later than this
            // one would have been written, so this write would only cost a PutObjectTagging (a
            // second one on every single-batch object) and a round trip before the last one.
            return;
        }
        let state = self.snapshot(held);
        let Some(ck) = self.ckpt.as_mut() else { return };
        if let Some(task) = &ck.saving
            && !task.is_finished()
        {
            return; // the next confirmed batch will try again
        }
        if let Some(task) = ck.saving.take()
            && let Some(Err(e)) = task.now_or_never().map(|done| self.saved(done))
        {
            self.checkpoint_failed(e);
            return;
        }
        let Some(ck) = self.ckpt.as_mut() else { return };
        if ck.last_saved.as_ref() == Some(&state) {
            return;
        }
        ck.last_saved = Some(state.clone());
        let store = self.shared.checkpoints.clone();
        let (obj, tags) = (self.obj.clone(), ck.other_tags.clone());
        let progress = ProgressRecord {
            etag: ck.etag.clone(),
            state,
        };
        ck.saving = Some(tokio::spawn(async move {
            store.save(&obj, &tags, &progress).await
        }));
    }

    fn snapshot<'r>(&self, held: impl IntoIterator<Item = &'r LineRun>) -> State {
        let (line, offset) = self.position;
        self.tracker
            .snapshot(self.gzip, line, offset, &self.earlier, held)
    }

    /// The outcome of a background save (a task that panicked counts as a failed save).
    fn saved(
        &self,
        done: Result<Result<(), CheckpointError>, JoinError>,
    ) -> Result<(), CheckpointError> {
        done.unwrap_or_else(|e| {
            Err(CheckpointError::Other {
                bucket: self.obj.bucket.clone(),
                key: self.obj.key.clone(),
                detail: e.to_string(),
            })
        })
    }

    fn checkpoint_failed(&mut self, e: CheckpointError) {
        self.shared.checkpoint_trouble(&e);
        self.checkpoint_error = Some(e);
        self.ckpt = None;
    }

    /// The last record: done, or where the next attempt resumes.
    pub(super) async fn finish(&mut self, complete: bool, held: Vec<LineRun>) {
        let Some(ck) = self.ckpt.as_mut() else { return };
        if let Some(task) = ck.saving.take()
            && let Err(e) = self.saved(task.await)
        {
            return self.checkpoint_failed(e);
        }
        let state = if complete {
            State::Done {
                lines: self.position.0.saturating_sub(1),
            }
        } else {
            self.snapshot(&held)
        };
        let Some(ck) = self.ckpt.as_mut() else { return };
        let progress = ProgressRecord {
            etag: ck.etag.clone(),
            state,
        };
        let (obj, tags) = (self.obj.clone(), ck.other_tags.clone());
        if let Err(e) = self.shared.checkpoints.save(&obj, &tags, &progress).await {
            self.checkpoint_failed(e);
        }
    }
}
