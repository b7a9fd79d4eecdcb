//! What the objects of one run (an invocation, a backfill) share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Semaphore;
use tracing::warn;

use super::clock::Clock;
use super::format::FormatCache;
use super::lease::{AcquireError, Leases};
use super::stop::Stop;
use crate::ports::CheckpointError;

/// What an invocation shares between its objects.
pub struct Shared<K, C> {
    pub(crate) sink: Arc<K>,
    pub(crate) checkpoints: Arc<C>,
    /// Permits for PutLogEvents calls in flight, across all objects of the invocation.
    pub(crate) puts: Arc<Semaphore>,
    /// The one clock (the window filter, fallback timestamps, leases).
    pub(crate) clock: Clock,
    /// When to stop starting batches.
    pub(crate) stop: Stop,
    /// Leases that keep two deliveries of one object from forwarding it at the same time
    /// (`None`: no exclusion).
    pub(crate) leasing: Option<Leases>,
    /// The formats objects named, compiled (kept across the invocations of a warm process).
    pub(crate) formats: Arc<FormatCache>,
    /// Troubles already warned about in this run (warn once, not per object).
    pub(crate) warned: Warned,
}

/// A store that failed once in a run is warned about once.
#[derive(Default)]
pub(crate) struct Warned {
    checkpoints: AtomicBool,
    leases: AtomicBool,
}

impl<K, C> Shared<K, C> {
    /// The checkpoint store failed: the run goes on without progress records for this object.
    pub(super) fn checkpoint_trouble(&self, e: &CheckpointError) {
        if !self.warned.checkpoints.swap(true, Ordering::Relaxed) {
            warn!(
                "{e}; forwarding without progress records in this invocation (at-least-once: a redelivered object is sent again)"
            );
        }
    }

    /// The lease store failed: the object is forwarded without a lease.
    pub(super) fn lease_trouble(&self, e: &AcquireError) {
        if !self.warned.leases.swap(true, Ordering::Relaxed) {
            warn!(
                "{e}; forwarding without leases in this invocation (two deliveries of one object at the same time may both send it)"
            );
        }
    }
}
