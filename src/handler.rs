//! One invocation: trigger payload → object refs → forward each (bounded concurrency) → summary.

use std::time::Instant;

use futures_util::StreamExt;
use serde_json::Value;
use tracing::warn;

use crate::config::Config;
use crate::event::{EventError, announced_objects};
use crate::forward::forward_object;
use crate::ports::{LogSink, ObjectSource};
use crate::summary::Summary;

pub struct Handler<S, K> {
    pub source: S,
    pub sink: K,
    pub config: Config,
}

impl<S: ObjectSource, K: LogSink> Handler<S, K> {
    pub fn new(source: S, sink: K, config: Config) -> Self {
        Self {
            source,
            sink,
            config,
        }
    }

    /// Handles one trigger payload. Each object succeeds or fails on its own; the summary says
    /// which. Only a payload of unknown shape is an error as a whole.
    pub async fn handle(&self, payload: &Value) -> Result<Summary, EventError> {
        let started = Instant::now();
        let announced = announced_objects(payload)?;
        for bad in &announced.invalid {
            warn!("invalid record: {bad}");
        }
        let reports: Vec<_> = futures_util::stream::iter(announced.objects.iter())
            .map(|obj| forward_object(&self.source, &self.sink, &self.config, obj))
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
