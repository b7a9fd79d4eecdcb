//! One invocation: trigger payload → object refs → forward each (bounded concurrency) → summary.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::config::Config;
use crate::event::{EventError, announced_objects};
use crate::forward::{Clock, Shared, forward_object, stop_by, system_clock};
use crate::ports::{CheckpointStore, LogSink, NoCheckpoints, ObjectSource};
use crate::summary::{EXACTLY_ONCE, Outcome, Summary};

/// Built once per cold start; serves every invocation of a warm Lambda.
pub struct Handler<S, K, C = NoCheckpoints> {
    pub source: S,
    pub sink: Arc<K>,
    pub checkpoints: Arc<C>,
    pub config: Config,
    clock: Clock,
}

impl<S: ObjectSource, K: LogSink + 'static> Handler<S, K, NoCheckpoints> {
    /// A handler without progress records (see [`Handler::with_checkpoints`]).
    pub fn new(source: S, sink: K, config: Config) -> Self {
        Self {
            source,
            sink: Arc::new(sink),
            checkpoints: Arc::new(NoCheckpoints),
            config,
            clock: system_clock(),
        }
    }
}

impl<S: ObjectSource, K: LogSink + 'static, C: CheckpointStore + 'static> Handler<S, K, C> {
    /// The same handler keeping per-object progress in `store`.
    pub fn with_checkpoints<C2: CheckpointStore + 'static>(self, store: C2) -> Handler<S, K, C2> {
        Handler {
            source: self.source,
            sink: self.sink,
            checkpoints: Arc::new(store),
            config: self.config,
            clock: self.clock,
        }
    }

    /// The same handler with a fixed notion of "now" (tests of the time window).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Handles one trigger payload with no deadline (local commands, tests).
    pub async fn handle(&self, payload: &Value) -> Result<Summary, EventError> {
        self.handle_until(payload, None).await
    }

    /// Handles one trigger payload. Each object succeeds or fails on its own; the summary says
    /// which. Only a payload of unknown shape is an error as a whole. With a `deadline` (the
    /// Lambda's), objects stop in time and record where the next attempt resumes.
    pub async fn handle_until(
        &self,
        payload: &Value,
        deadline: Option<Instant>,
    ) -> Result<Summary, EventError> {
        let started = Instant::now();
        let announced = announced_objects(payload)?;
        for bad in &announced.invalid {
            warn!("invalid record: {bad}");
        }
        let shared = Shared {
            sink: self.sink.clone(),
            checkpoints: self.checkpoints.clone(),
            puts: Arc::new(Semaphore::new(self.config.max_concurrent_puts)),
            clock: self.clock.clone(),
            stop_by: deadline.map(|d| stop_by(d, Instant::now())),
            checkpoint_warned: Arc::new(AtomicBool::new(false)),
        };
        let reports: Vec<_> = futures_util::stream::iter(announced.objects.iter())
            .map(|obj| forward_object(&self.source, &shared, &self.config, obj))
            .buffered(self.config.max_concurrent_objects)
            .collect()
            .await;
        let mut summary = Summary {
            delivery: EXACTLY_ONCE,
            records_ignored: announced.ignored,
            records_invalid: announced.invalid,
            failed_messages: announced.invalid_messages,
            from_sqs: announced.from_sqs,
            ..Summary::default()
        };
        for r in reports {
            if let (Outcome::Failed { .. }, Some(id)) = (&r.outcome, &r.message_id)
                && !summary.failed_messages.contains(id)
            {
                summary.failed_messages.push(id.clone());
            }
            summary.push(r);
        }
        summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(summary)
    }
}
