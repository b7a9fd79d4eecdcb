//! Exclusion: one delivery at a time forwards an object. Before it reads, a delivery takes a
//! lease on the object with a conditional write ([`LeaseStore`]); a second delivery that finds a
//! live lease waits for it to end (the holder releases it when its progress record is written),
//! then reads that record like any later delivery: the object is delivered, or it resumes. A
//! lease whose holder crashed expires and is taken over (again a conditional write, so two
//! deliveries never both take it). The holder renews its lease while it works; a lease never
//! outlasts its holder's Lambda deadline.
//!
//! The lease is only for exclusion; progress stays in the object's tag ([`crate::checkpoint`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::clock::{Clock, rfc3339};
use super::stop::Stop;
use crate::event::ObjectRef;
use crate::ports::{LeaseError, LeaseRecord, LeaseStore, LeaseVersion};

/// A lease is taken over this long after it expired by the holder's clock, for clocks that
/// differ a little (Lambda's are NTP-synchronised).
pub const CLOCK_GRACE: Duration = Duration::from_secs(2);
/// A waiting delivery looks at the lease this often (a HEAD request), to start as soon as the
/// holder releases it.
pub const POLL: Duration = Duration::from_secs(1);

/// What leases are taken with.
#[derive(Clone)]
pub struct Leases {
    pub store: Arc<dyn LeaseStore>,
    /// How long a lease lasts from each write (`LEASE_SECONDS`); renewed every third of it.
    pub term: Duration,
}

/// Who holds a lease: the Lambda execution environment's log stream (where its logs are) or
/// the host and process, and a number unique in the process.
fn holder() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let place = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| format!("lambda log stream {s}"))
        .unwrap_or_else(|| format!("pid {}", std::process::id()));
    format!("{place} #{n}")
}

/// Why no lease was taken.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    #[error(
        "another delivery is forwarding this object ({holder}, lease until {}): this one stopped waiting (to end within its own time limit, or interrupted); a later attempt finds the object delivered or resumes it",
        rfc3339(*.expires_ms)
    )]
    Busy { holder: String, expires_ms: i64 },
    #[error(transparent)]
    Store(#[from] LeaseError),
}

/// A lease this delivery holds, and how it was taken: renewed in the background until
/// released.
pub struct Lease {
    /// This delivery waited for another one's lease to end.
    pub waited: bool,
    /// The holder of the expired lease this delivery took over: what its progress record does
    /// not list may be stored already.
    pub took_over: Option<String>,
    /// Set when a renewal found the lease taken (it had expired): stop sending.
    pub lost: Arc<AtomicBool>,
    keeper: Arc<Renewer>,
    renewing: JoinHandle<()>,
}

/// What renews a lease: shared by the [`Lease`] and its renewing task.
struct Renewer {
    leasing: Leases,
    obj: ObjectRef,
    /// The Lambda's deadline, if any: no renewal outlasts it.
    deadline: Option<Instant>,
    clock: Clock,
    /// The lease's current version (a renewal in flight holds it, so a release names the last).
    version: tokio::sync::Mutex<LeaseVersion>,
    lost: Arc<AtomicBool>,
    /// Tells the renewing task to end.
    stop: Notify,
}

/// The end of a lease taken or renewed at `now` (ms since the epoch): `deadline` (the
/// Lambda's, if any) caps `term` from now.
fn expiry(term: Duration, deadline: Option<Instant>, now: i64) -> i64 {
    let by_term = now.saturating_add(i64::try_from(term.as_millis()).unwrap_or(i64::MAX));
    match deadline {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            by_term.min(now.saturating_add(i64::try_from(left.as_millis()).unwrap_or(i64::MAX)))
        }
        None => by_term,
    }
}

/// Takes the lease on `obj`, waiting while another delivery holds it, but not once `stop` says
/// to stop (past its `by`, or interrupted). Expiries are judged by `clock`.
pub async fn acquire(
    leasing: &Leases,
    obj: &ObjectRef,
    stop: &Stop,
    clock: &Clock,
) -> Result<Lease, AcquireError> {
    let store = &leasing.store;
    let holder = holder();
    let mut waited = false;
    let mut first = true;
    loop {
        if !first {
            let pause = stop.by.map_or(POLL, |s| {
                POLL.min(s.saturating_duration_since(Instant::now()))
            });
            tokio::time::sleep(pause).await;
        }
        first = false;
        let terms = LeaseRecord {
            holder: holder.clone(),
            expires_ms: expiry(leasing.term, stop.deadline, clock()),
        };
        let keeper = |version| Renewer {
            leasing: leasing.clone(),
            obj: obj.clone(),
            deadline: stop.deadline,
            clock: clock.clone(),
            version: tokio::sync::Mutex::new(version),
            lost: Arc::new(AtomicBool::new(false)),
            stop: Notify::new(),
        };
        if let Some(v) = store.create(obj, &terms).await? {
            return Ok(Lease::keep(keeper(v), terms, waited, None));
        }
        let Some((version, current)) = store.read(obj).await? else {
            continue; // released in between: try again
        };
        let grace = i64::try_from(CLOCK_GRACE.as_millis()).unwrap_or(0);
        if current.expires_ms.saturating_add(grace) <= clock() {
            if let Some(v) = store.replace(obj, &version, &terms).await? {
                warn!(bucket = %obj.bucket, key = %obj.key.escape_debug(), holder = %current.holder,
                      expired = %rfc3339(current.expires_ms),
                      "took over an expired lease (its holder stopped without releasing it): resuming from the progress record");
                return Ok(Lease::keep(keeper(v), terms, waited, Some(current.holder)));
            }
            continue; // another delivery took it over first
        }
        if stop.reason(None).is_some() {
            return Err(AcquireError::Busy {
                holder: current.holder,
                expires_ms: current.expires_ms,
            });
        }
        if !waited {
            info!(bucket = %obj.bucket, key = %obj.key.escape_debug(), holder = %current.holder,
                  until = %rfc3339(current.expires_ms),
                  "another delivery is forwarding this object: waiting for it to finish");
            waited = true;
        }
    }
}

impl Lease {
    /// A lease just taken with `terms`, renewed from now on.
    fn keep(keeper: Renewer, terms: LeaseRecord, waited: bool, took_over: Option<String>) -> Self {
        let keeper = Arc::new(keeper);
        Self {
            waited,
            took_over,
            lost: keeper.lost.clone(),
            renewing: tokio::spawn(keeper.clone().renew(terms)),
            keeper,
        }
    }

    /// Stops renewing and deletes the lease (if it is still ours): the next delivery may start.
    pub async fn release(self) {
        let k = &self.keeper;
        k.stop.notify_one();
        let _ = self.renewing.await;
        let v = k.version.lock().await;
        if let Err(e) = k.leasing.store.release(&k.obj, &v).await {
            warn!(bucket = %k.obj.bucket, key = %k.obj.key.escape_debug(),
                  "cannot release the lease (it expires by itself): {e}");
        }
    }
}

impl Renewer {
    /// Renews the lease every third of its term until stopped (a renewal in flight is finished
    /// first, so the release names the lease's last version); sets `lost` when the lease was
    /// taken by another delivery (or renewals failed until it expired).
    async fn renew(self: Arc<Self>, mut terms: LeaseRecord) {
        let (leasing, obj) = (&self.leasing, &self.obj);
        loop {
            tokio::select! {
                () = tokio::time::sleep(leasing.term / 3) => {}
                () = self.stop.notified() => return,
            }
            let mut v = self.version.lock().await;
            let renewed = LeaseRecord {
                holder: terms.holder.clone(),
                expires_ms: expiry(leasing.term, self.deadline, (self.clock)()),
            };
            match leasing.store.replace(obj, &v, &renewed).await {
                Ok(Some(next)) => {
                    *v = next;
                    terms = renewed;
                }
                Ok(None) => {
                    warn!(bucket = %obj.bucket, key = %obj.key.escape_debug(),
                          "the lease was taken by another delivery (it had expired): no batch is started any more");
                    self.lost.store(true, Ordering::SeqCst);
                    return;
                }
                Err(e) => {
                    warn!(bucket = %obj.bucket, key = %obj.key.escape_debug(), "cannot renew the lease: {e}");
                    if (self.clock)() >= terms.expires_ms {
                        self.lost.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::clock::{now_ms, system_clock};
    use crate::ports::LeaseFuture;
    use futures_util::FutureExt;
    use std::sync::Mutex;

    /// One lease record with conditional writes, like S3's; a live lease by someone else may be
    /// set to go away after some reads (its holder releasing it).
    #[derive(Default)]
    struct Store {
        lease: Mutex<Option<(u64, LeaseRecord)>>,
        next: AtomicU64,
        released_after_reads: Mutex<Option<usize>>,
        calls: Mutex<Vec<&'static str>>,
    }

    impl Store {
        fn with(terms: LeaseRecord) -> Self {
            let s = Self::default();
            *s.lease.lock().unwrap() = Some((0, terms));
            s
        }
        fn version(&self) -> u64 {
            self.next.fetch_add(1, Ordering::SeqCst) + 1
        }
        fn log(&self, call: &'static str) {
            self.calls.lock().unwrap().push(call);
        }
    }

    impl LeaseStore for Store {
        fn create<'a>(
            &'a self,
            _obj: &'a ObjectRef,
            terms: &'a LeaseRecord,
        ) -> LeaseFuture<'a, Option<LeaseVersion>> {
            self.log("create");
            let mut l = self.lease.lock().unwrap();
            let out = if l.is_some() {
                None
            } else {
                let v = self.version();
                *l = Some((v, terms.clone()));
                Some(LeaseVersion(v.to_string()))
            };
            async move { Ok(out) }.boxed()
        }
        fn read<'a>(
            &'a self,
            _obj: &'a ObjectRef,
        ) -> LeaseFuture<'a, Option<(LeaseVersion, LeaseRecord)>> {
            self.log("read");
            let mut l = self.lease.lock().unwrap();
            let out = l
                .as_ref()
                .map(|(v, t)| (LeaseVersion(v.to_string()), t.clone()));
            let mut after = self.released_after_reads.lock().unwrap();
            if let Some(n) = after.as_mut() {
                if *n <= 1 {
                    *l = None;
                    *after = None;
                } else {
                    *n -= 1;
                }
            }
            async move { Ok(out) }.boxed()
        }
        fn replace<'a>(
            &'a self,
            _obj: &'a ObjectRef,
            version: &'a LeaseVersion,
            terms: &'a LeaseRecord,
        ) -> LeaseFuture<'a, Option<LeaseVersion>> {
            self.log("replace");
            let mut l = self.lease.lock().unwrap();
            let out = match l.as_ref() {
                Some((v, _)) if v.to_string() == version.0 => {
                    let v = self.version();
                    *l = Some((v, terms.clone()));
                    Some(LeaseVersion(v.to_string()))
                }
                _ => None,
            };
            async move { Ok(out) }.boxed()
        }
        fn release<'a>(
            &'a self,
            _obj: &'a ObjectRef,
            version: &'a LeaseVersion,
        ) -> LeaseFuture<'a, ()> {
            self.log("release");
            let mut l = self.lease.lock().unwrap();
            if l.as_ref().is_some_and(|(v, _)| v.to_string() == version.0) {
                *l = None;
            }
            async move { Ok(()) }.boxed()
        }
        fn is_lease_key(&self, _key: &str) -> bool {
            false
        }
    }

    fn obj() -> ObjectRef {
        ObjectRef::new("b", "nginx/i-0abc/access/a.log")
    }

    fn other(expires_in_ms: i64) -> LeaseRecord {
        LeaseRecord {
            holder: "the other delivery".into(),
            expires_ms: now_ms() + expires_in_ms,
        }
    }

    fn leasing(store: &Arc<Store>) -> Leases {
        Leases {
            store: store.clone(),
            term: Duration::from_secs(60),
        }
    }

    /// [`acquire`] on the test object, never interrupted.
    async fn take(
        store: &Arc<Store>,
        stop_by: Option<Instant>,
        deadline: Option<Instant>,
    ) -> Result<Lease, AcquireError> {
        let stop = Stop {
            by: stop_by,
            deadline,
            ..Stop::default()
        };
        acquire(&leasing(store), &obj(), &stop, &system_clock()).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_free_object_is_leased_at_once_and_released_after() {
        let store = Arc::new(Store::default());
        let held = take(&store, None, None).await.expect("taken");
        assert_eq!((held.waited, held.took_over.as_deref()), (false, None));
        let terms = store.lease.lock().unwrap().clone().expect("a lease").1;
        let term_ms = terms.expires_ms - now_ms();
        assert!((59_000..=60_000).contains(&term_ms), "{term_ms}");
        held.release().await;
        assert!(store.lease.lock().unwrap().is_none());
        assert_eq!(*store.calls.lock().unwrap(), ["create", "release"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_lease_is_waited_for_until_its_holder_releases_it() {
        let store = Arc::new(Store::with(other(60_000)));
        *store.released_after_reads.lock().unwrap() = Some(3);
        let held = take(&store, None, None).await.expect("taken");
        assert_eq!((held.waited, held.took_over.as_deref()), (true, None));
        assert_eq!(
            store
                .lease
                .lock()
                .unwrap()
                .as_ref()
                .map(|l| l.1.holder.contains('#')),
            Some(true),
            "ours now"
        );
        held.release().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_lease_past_the_stop_time_fails_busy_naming_its_holder() {
        let store = Arc::new(Store::with(other(60_000)));
        let err = take(&store, Some(Instant::now()), None)
            .await
            .err()
            .expect("busy");
        assert!(
            matches!(&err, AcquireError::Busy { holder, .. } if holder == "the other delivery")
        );
        assert!(err.to_string().contains("the other delivery"), "{err}");
        assert_eq!(
            store
                .lease
                .lock()
                .unwrap()
                .as_ref()
                .map(|l| l.1.holder.clone()),
            Some("the other delivery".to_string()),
            "not taken"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_is_taken_over_but_not_within_the_clock_grace() {
        let grace = i64::try_from(CLOCK_GRACE.as_millis()).unwrap();
        let store = Arc::new(Store::with(other(-(grace + 1_000))));
        let held = take(&store, None, None).await.expect("taken");
        assert_eq!(held.took_over.as_deref(), Some("the other delivery"));
        held.release().await;

        // Expired by less than the grace: still the other's.
        let store = Arc::new(Store::with(other(-(grace / 2))));
        let err = take(&store, Some(Instant::now()), None).await;
        assert!(matches!(err, Err(AcquireError::Busy { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn expiries_are_judged_by_the_injected_clock() {
        // Live by the system's clock, expired by the one the delivery was given.
        let store = Arc::new(Store::with(other(60_000)));
        let later: Clock = Arc::new(|| now_ms() + 3_600_000);
        // (Past its stop time: by the system's clock it would fail busy at once.)
        let stop = Stop {
            by: Some(Instant::now()),
            ..Stop::default()
        };
        let held = acquire(&leasing(&store), &obj(), &stop, &later)
            .await
            .expect("taken over");
        assert_eq!(held.took_over.as_deref(), Some("the other delivery"));
        let ours = store.lease.lock().unwrap().clone().expect("a lease").1;
        let term_ms = ours.expires_ms - now_ms() - 3_600_000;
        assert!((59_000..=60_000).contains(&term_ms), "{term_ms}");
        held.release().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_never_outlasts_the_deadline_and_is_renewed_while_held() {
        let store = Arc::new(Store::default());
        let deadline = Instant::now() + Duration::from_secs(10);
        let held = take(&store, None, Some(deadline)).await.expect("taken");
        let left = store.lease.lock().unwrap().clone().unwrap().1.expires_ms - now_ms();
        assert!((9_000..=10_000).contains(&left), "{left}");
        // Paused time jumps to each renewal (a third of the term).
        tokio::time::sleep(Duration::from_secs(45)).await;
        let renewals = store
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| **c == "replace")
            .count();
        assert_eq!(renewals, 2);
        assert!(!held.lost.load(Ordering::SeqCst));
        // Taken by someone else (it expired): the holder notices at the next renewal.
        *store.lease.lock().unwrap() = Some((999, other(60_000)));
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(held.lost.load(Ordering::SeqCst));
        held.release().await;
        assert_eq!(
            store.lease.lock().unwrap().as_ref().map(|l| l.0),
            Some(999),
            "someone else's lease is not released"
        );
    }
}
