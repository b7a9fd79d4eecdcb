//! The narrow traits between the core and the AWS edges, so the forwarder and the handler can
//! be tested with fakes.

use std::future::Future;

use tokio::io::AsyncRead;

use crate::checkpoint::ProgressRecord;
pub use crate::object::ListedObject;
use crate::object::ObjectRef;
use ncf_parse::LogEvent;

/// An opened object: its body as a byte stream (possibly compressed) and what we know of it.
pub struct OpenedObject {
    pub body: Box<dyn AsyncRead + Send + Unpin>,
    /// LastModified in ms since the epoch: the time of lines that carry none.
    pub last_modified_ms: Option<i64>,
    /// The ETag of the bytes being read, without quotes.
    pub etag: Option<String>,
    /// The object's user metadata (`x-amz-meta-<name>`) by lower-case name, as GetObject
    /// returns it (no extra call): what `EXTRA_FIELDS`' `{meta:name}` reads.
    pub metadata: Vec<(String, String)>,
}

impl OpenedObject {
    /// The user metadata value `name` (lower case), if the object has it.
    pub fn metadata(&self, name: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How to open an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenRequest {
    /// Start at this byte (a ranged read, to resume plain text).
    pub from_offset: u64,
    /// Only if the object still has this ETag (else [`SourceError::Changed`]).
    pub if_match: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "s3://{bucket}/{} does not exist (deleted before this event was handled, or the wrong bucket/version)", .key.escape_debug()
    )]
    NotFound { bucket: String, key: String },
    #[error(
        "access denied to s3://{bucket}/{}: check the function's IAM policy (s3:GetObject on this prefix), the bucket policy, and KMS key permissions if the object is SSE-KMS encrypted ({detail})", .key.escape_debug()
    )]
    AccessDenied {
        bucket: String,
        key: String,
        detail: String,
    },
    #[error(
        "s3://{bucket}/{} changed since it was announced (its ETag is no longer the one expected)", .key.escape_debug()
    )]
    Changed { bucket: String, key: String },
    #[error("cannot read s3://{bucket}/{}: {detail}", .key.escape_debug())]
    Other {
        bucket: String,
        key: String,
        detail: String,
    },
}

/// Where an object's bytes come from (S3 in production).
pub trait ObjectSource: Send + Sync {
    fn open(
        &self,
        obj: &ObjectRef,
        req: &OpenRequest,
    ) -> impl Future<Output = Result<OpenedObject, SourceError>> + Send;

    /// The whole body of a small object, as stored: `None` when it holds more than `max` bytes
    /// (no more than `max` + 1 are read).
    fn read_small(
        &self,
        obj: &ObjectRef,
        max: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, SourceError>> + Send {
        async move {
            use tokio::io::AsyncReadExt;
            let opened = self.open(obj, &OpenRequest::default()).await?;
            let mut body = Vec::new();
            opened
                .body
                .take(max.saturating_add(1))
                .read_to_end(&mut body)
                .await
                .map_err(|e| SourceError::Other {
                    bucket: obj.bucket.clone(),
                    key: obj.key.clone(),
                    detail: e.to_string(),
                })?;
            Ok(u64::try_from(body.len())
                .is_ok_and(|n| n <= max)
                .then_some(body))
        }
    }
}

/// One page of a listing and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    pub next: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("bucket {bucket:?} does not exist (or is in another account or partition)")]
    NoBucket { bucket: String },
    #[error(
        "access denied listing s3://{bucket}/{prefix}: the credentials need s3:ListBucket on arn:aws:s3:::{bucket} ({detail})"
    )]
    AccessDenied {
        bucket: String,
        prefix: String,
        detail: String,
    },
    #[error("cannot list s3://{bucket}/{prefix}: {detail}")]
    Other {
        bucket: String,
        prefix: String,
        detail: String,
    },
}

/// A bucket lifecycle rule that deletes objects some days after they were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiration {
    /// The rule's ID (may be empty).
    pub rule: String,
    /// The keys it applies to (empty: the whole bucket).
    pub prefix: String,
    pub days: i32,
}

/// Lists a bucket's keys under a prefix, a page at a time, in key order (S3 in production).
pub trait ObjectLister: Send + Sync {
    fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> impl Future<Output = Result<ListPage, ListError>> + Send;

    /// The bucket's enabled expiration rules by age that apply to every object under a prefix
    /// (rules filtered on tags or sizes are left out), or why they could not be read.
    fn expirations(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Vec<Expiration>, String>> + Send;
}

/// One message of a batch to send, with its ID within the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub id: String,
    pub body: String,
}

/// A message the queue did not take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotQueued {
    pub id: String,
    pub reason: String,
    /// The queue says the fault is ours (the message itself is wrong): sending it again fails
    /// the same way.
    pub sender_fault: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "queue {queue} does not exist (check the stack outputs NotificationQueueUrl, DeadLetterQueueUrl, NotificationDeadLetterQueueUrl and the region)"
    )]
    NoQueue { queue: String },
    #[error("access denied to {queue}: the credentials need {action} on it ({detail})")]
    AccessDenied {
        queue: String,
        /// The IAM action refused (`sqs:SendMessage` …).
        action: &'static str,
        detail: String,
    },
    #[error("{action} on {queue} failed: {detail}")]
    Other {
        queue: String,
        action: &'static str,
        detail: String,
    },
}

/// Sends messages to a queue in batches (SQS `SendMessageBatch` in production).
pub trait MessageQueue: Send + Sync {
    /// Sends up to [`crate::backfill::SQS_MAX_BATCH`] messages; the ones not taken come back.
    fn send_batch(
        &self,
        queue: &str,
        messages: &[QueueMessage],
    ) -> impl Future<Output = Result<Vec<NotQueued>, QueueError>> + Send;
}

/// A message taken off a queue: hidden from other receivers until it is deleted or released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub id: String,
    /// What deleting or releasing it names (valid for this receipt only).
    pub receipt_handle: String,
    pub body: String,
}

/// A message the queue did not delete or release, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotDone {
    pub id: String,
    pub reason: String,
}

/// Takes messages off a queue and settles them (SQS `ReceiveMessage`, `DeleteMessageBatch`,
/// `ChangeMessageVisibilityBatch` in production): `replay --queue` on a dead-letter queue.
pub trait QueueReader: Send + Sync {
    /// Up to `max` messages (at most [`crate::backfill::SQS_MAX_BATCH`]), each hidden from
    /// other receivers for `hidden_for`; none when the queue has nothing visible.
    fn receive(
        &self,
        queue: &str,
        max: usize,
        hidden_for: std::time::Duration,
    ) -> impl Future<Output = Result<Vec<ReceivedMessage>, QueueError>> + Send;
    /// Deletes up to [`crate::backfill::SQS_MAX_BATCH`] messages; the ones not deleted come back.
    fn delete(
        &self,
        queue: &str,
        messages: &[ReceivedMessage],
    ) -> impl Future<Output = Result<Vec<NotDone>, QueueError>> + Send;
    /// Makes up to [`crate::backfill::SQS_MAX_BATCH`] messages visible again at once; the ones
    /// not released come back (they reappear when their time is up).
    fn release(
        &self,
        queue: &str,
        messages: &[ReceivedMessage],
    ) -> impl Future<Output = Result<Vec<NotDone>, QueueError>> + Send;
}

/// What the checkpoint store holds for an object: our progress record, and any other tags the
/// object carries (kept as they are when ours is written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub progress: Option<ProgressRecord>,
    pub other_tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "cannot read or write the progress tag of s3://{bucket}/{}: access denied; grant s3:GetObjectTagging and s3:PutObjectTagging on the prefix ({detail})", .key.escape_debug()
    )]
    Denied {
        bucket: String,
        key: String,
        detail: String,
    },
    #[error(
        "s3://{bucket}/{} already has 10 tags, the most S3 allows: no room for the progress tag", .key.escape_debug()
    )]
    Full { bucket: String, key: String },
    #[error("s3://{bucket}/{} does not exist", .key.escape_debug())]
    NotFound { bucket: String, key: String },
    #[error("progress tag of s3://{bucket}/{}: {detail}", .key.escape_debug())]
    Other {
        bucket: String,
        key: String,
        detail: String,
    },
}

/// Where per-object progress is kept (S3 object tags in production).
pub trait CheckpointStore: Send + Sync {
    fn load(&self, obj: &ObjectRef)
    -> impl Future<Output = Result<Stored, CheckpointError>> + Send;
    fn save(
        &self,
        obj: &ObjectRef,
        other_tags: &[(String, String)],
        progress: &ProgressRecord,
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send;
}

/// No checkpoints (`CHECKPOINT_STORE=none`): every delivery forwards the whole object.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCheckpoints;

impl CheckpointStore for NoCheckpoints {
    async fn load(&self, _obj: &ObjectRef) -> Result<Stored, CheckpointError> {
        Ok(Stored::default())
    }

    async fn save(
        &self,
        _obj: &ObjectRef,
        _other: &[(String, String)],
        _p: &ProgressRecord,
    ) -> Result<(), CheckpointError> {
        Ok(())
    }
}

/// A lease on one object: who holds it and until when (ms since the epoch, the holder's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub holder: String,
    pub expires_ms: i64,
}

/// Which write of a lease record a conditional write or delete must find (S3: its ETag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseVersion(pub String);

#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "cannot take a lease on s3://{bucket}/{}: access denied to the lease object {lease_key}; grant s3:PutObject, s3:GetObject and s3:DeleteObject on the lease prefix (LEASE_PREFIX) ({detail})", .key.escape_debug()
    )]
    Denied {
        bucket: String,
        key: String,
        lease_key: String,
        detail: String,
    },
    #[error("lease on s3://{bucket}/{}: {detail}", .key.escape_debug())]
    Other {
        bucket: String,
        key: String,
        detail: String,
    },
}

/// A boxed future (the lease store is used as a trait object).
pub type LeaseFuture<'a, T> = futures_util::future::BoxFuture<'a, Result<T, LeaseError>>;

/// Where leases live (small S3 objects written with conditional requests in production): who
/// may forward an object right now. Every write is conditional, so two deliveries never both
/// hold a lease.
pub trait LeaseStore: Send + Sync {
    /// Writes a lease for `obj` unless one exists (`If-None-Match: *`): its version, or `None`
    /// when one exists.
    fn create<'a>(
        &'a self,
        obj: &'a ObjectRef,
        terms: &'a LeaseRecord,
    ) -> LeaseFuture<'a, Option<LeaseVersion>>;
    /// The lease that exists now, if any.
    fn read<'a>(
        &'a self,
        obj: &'a ObjectRef,
    ) -> LeaseFuture<'a, Option<(LeaseVersion, LeaseRecord)>>;
    /// Overwrites the lease only if it is still at `version` (`If-Match`): the new version, or
    /// `None` when it changed or is gone.
    fn replace<'a>(
        &'a self,
        obj: &'a ObjectRef,
        version: &'a LeaseVersion,
        terms: &'a LeaseRecord,
    ) -> LeaseFuture<'a, Option<LeaseVersion>>;
    /// Deletes the lease only if it is still at `version` (changed or gone: nothing to do).
    fn release<'a>(&'a self, obj: &'a ObjectRef, version: &'a LeaseVersion) -> LeaseFuture<'a, ()>;
    /// Whether `key` is one of this store's lease objects (announced like any upload when it
    /// lies under the trigger's prefix): never forwarded.
    fn is_lease_key(&self, key: &str) -> bool;
}

/// Events CloudWatch accepted the call for but refused to store, as index ranges into the batch
/// (`rejectedLogEventsInfo`).
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_RejectedLogEventsInfo.html>
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    /// Events before this index are too old.
    pub too_old_end: Option<usize>,
    /// Events from this index on are too far in the future.
    pub too_new_start: Option<usize>,
    /// Events before this index are older than the group's retention.
    pub expired_end: Option<usize>,
    /// CloudWatch did not take the batch's entity (`rejectedEntityInfo`); its events still
    /// count as delivered.
    pub entity_rejected: bool,
}

/// What CloudWatch relates a stream's events to: PutLogEvents' `entity`, key attributes that
/// identify it and attributes that describe it.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_Entity.html>
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub key_attributes: Vec<(&'static str, String)>,
    pub attributes: Vec<(&'static str, String)>,
}

impl Entity {
    /// The EC2 instance `id`, as an AWS resource (`Type` `AWS::Resource`, `ResourceType` its
    /// CloudFormation type, `Identifier` the instance ID), on the EC2 platform.
    /// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/adding-your-own-related-telemetry.html>
    pub fn ec2_instance(id: &str) -> Self {
        Self {
            key_attributes: vec![
                ("Type", "AWS::Resource".into()),
                ("ResourceType", "AWS::EC2::Instance".into()),
                ("Identifier", id.into()),
            ],
            attributes: vec![
                ("PlatformType", "AWS::EC2".into()),
                ("EC2.InstanceId", id.into()),
            ],
        }
    }
}

/// What one [`LogSink::put`] achieved: what CloudWatch rejected, and how often the outcome of a
/// call was unknown (sent, no answer) and had to be checked before anything was sent again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutReport {
    pub rejected: Rejected,
    /// Calls whose outcome was unknown: the request went out and no answer came back (a
    /// timeout, a reset or dropped connection), so CloudWatch may or may not have stored it.
    pub ambiguous: u64,
    /// Of those, the checks that found the batch (or part of it) missing, so that what was
    /// missing was sent again.
    pub resent_after_check: u64,
}

impl From<Rejected> for PutReport {
    fn from(rejected: Rejected) -> Self {
        Self {
            rejected,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectedCounts {
    pub too_old: u64,
    pub too_new: u64,
    pub expired: u64,
}

impl Rejected {
    /// Counts each rejected event once, by its first reason (too old, expired, too new).
    pub fn counts(&self, batch_len: usize) -> RejectedCounts {
        let too_old = self.too_old_end.unwrap_or(0).min(batch_len);
        let expired = self
            .expired_end
            .unwrap_or(0)
            .min(batch_len)
            .saturating_sub(too_old);
        let new_start = self
            .too_new_start
            .unwrap_or(batch_len)
            .min(batch_len)
            .max(too_old + expired);
        RejectedCounts {
            too_old: too_old as u64,
            too_new: (batch_len - new_start) as u64,
            expired: expired as u64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("CloudWatch Logs refused the batch for {group}/{stream}: {detail}")]
    Rejected {
        group: String,
        stream: String,
        detail: String,
    },
    #[error("CloudWatch Logs call failed for {group}/{stream} after retries: {detail}")]
    Failed {
        group: String,
        stream: String,
        detail: String,
    },
}

/// Where batches go (CloudWatch Logs in production). One call = one PutLogEvents. The sink takes
/// the events: once it has encoded them it can free them while the request is in flight.
pub trait LogSink: Send + Sync {
    /// Puts one batch; `entity` (when configured) is sent with it. A call whose outcome is
    /// unknown is not simply sent again: the sink finds out first what CloudWatch stored.
    fn put(
        &self,
        group: &str,
        stream: &str,
        entity: Option<&Entity>,
        events: Vec<LogEvent>,
    ) -> impl Future<Output = Result<PutReport, SinkError>> + Send;

    /// Which of `events` (timestamp, message text) the stream does not hold yet, by one read
    /// over their time range: for a delivery that took over an expired lease, whose holder may
    /// have stored batches its progress record does not list. A sink that cannot read back
    /// says all of them.
    fn find_missing(
        &self,
        group: &str,
        stream: &str,
        events: &[(i64, String)],
    ) -> impl Future<Output = Result<Vec<usize>, SinkError>> + Send {
        let _ = (group, stream);
        let all = (0..events.len()).collect();
        async move { Ok(all) }
    }
}

/// A shared store is a store (tests keep one across handlers, as S3 does across invocations).
impl<T: CheckpointStore> CheckpointStore for std::sync::Arc<T> {
    async fn load(&self, obj: &ObjectRef) -> Result<Stored, CheckpointError> {
        self.as_ref().load(obj).await
    }

    async fn save(
        &self,
        obj: &ObjectRef,
        other_tags: &[(String, String)],
        progress: &ProgressRecord,
    ) -> Result<(), CheckpointError> {
        self.as_ref().save(obj, other_tags, progress).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_counts() {
        let r = Rejected {
            too_old_end: Some(3),
            too_new_start: Some(8),
            expired_end: Some(5),
            entity_rejected: false,
        };
        assert_eq!(
            r.counts(10),
            RejectedCounts {
                too_old: 3,
                too_new: 2,
                expired: 2
            }
        );
        assert_eq!(Rejected::default().counts(10), RejectedCounts::default());
        let all_new = Rejected {
            too_new_start: Some(0),
            ..Rejected::default()
        };
        assert_eq!(all_new.counts(4).too_new, 4);
    }
}
