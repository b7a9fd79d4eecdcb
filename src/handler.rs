//! One invocation: trigger payload → object refs → forward each (bounded concurrency) → summary.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::config::Config;
use crate::event::{EventError, announced_objects};
use crate::forward::{Clock, Shared, forward_object, system_clock};
use crate::ports::{LogSink, ObjectSource};
use crate::summary::Summary;

/// Built once per cold start; serves every invocation of a warm Lambda.
pub struct Handler<S, K> {
    pub source: S,
    pub sink: Arc<K>,
    pub config: Config,
    clock: Clock,
}

impl<S: ObjectSource, K: LogSink + 'static> Handler<S, K> {
    pub fn new(source: S, sink: K, config: Config) -> Self {
        Self {
            source,
            sink: Arc::new(sink),
            config,
            clock: system_clock(),
        }
    }

    /// The same handler with a fixed notion of "now" (tests of the time window).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Handles one trigger payload. Each object succeeds or fails on its own; the summary says
    /// which. Only a payload of unknown shape is an error as a whole.
    pub async fn handle(&self, payload: &Value) -> Result<Summary, EventError> {
        let started = Instant::now();
        let announced = announced_objects(payload)?;
        for bad in &announced.invalid {
            warn!("invalid record: {bad}");
        }
        let shared = Shared {
            sink: self.sink.clone(),
            puts: Arc::new(Semaphore::new(self.config.max_concurrent_puts)),
            clock: self.clock.clone(),
        };
        let reports: Vec<_> = futures_util::stream::iter(announced.objects.iter())
            .map(|obj| forward_object(&self.source, &shared, &self.config, obj))
            .buffered(self.config.max_concurrent_objects)
            .collect()
            .await;
        let mut summary = Summary {
            records_ignored: announced.ignored,
            records_invalid: announced.invalid,
            ..Summary::default()
        };
        for r in reports {
            summary.push(r);
        }
        summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(summary)
    }
}
