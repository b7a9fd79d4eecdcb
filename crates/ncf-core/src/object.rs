//! The S3 objects the pipeline speaks of: one a trigger announced ([`ObjectRef`]) and one a
//! listing found ([`ListedObject`]). Pure data, shared by `event` (which reads triggers and
//! writes notifications) and `ports` (whose traits load, list and lease them); neither owns it.

/// One S3 object version announced by a trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The key as S3 stores it (decoded).
    pub key: String,
    /// The key exactly as the trigger carried it (URL-encoded in S3 notifications).
    pub raw_key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    /// S3's ordering key for events on one key (hex, longer is later at equal length).
    pub sequencer: Option<String>,
    /// The SQS message that announced it, for `batchItemFailures`.
    pub message_id: Option<String>,
    /// What the trigger says about who uploaded it and from where.
    pub provenance: Provenance,
}

/// What a trigger says about an object's upload: who made it (S3 records) or which account's
/// event announced it (EventBridge). All absent for listings and emulators' notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// `userIdentity.principalId` of an S3 event record, as written (`AWS:ROLEID:session`,
    /// `AWS:AIDA…`, an account's canonical ID …).
    pub principal: Option<String>,
    /// EventBridge: the event's `account` (the bucket owner's).
    pub account: Option<String>,
    /// EventBridge: `detail.requester` (an account ID or a service principal).
    pub requester: Option<String>,
}

impl ObjectRef {
    /// An object known by bucket and key only (no size, ETag, version or message), its key
    /// as given.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        let key = key.into();
        Self {
            bucket: bucket.into(),
            raw_key: key.clone(),
            key,
            size: None,
            etag: None,
            version_id: None,
            sequencer: None,
            message_id: None,
            provenance: Provenance::default(),
        }
    }
}

/// One object a listing found (ListObjectsV2's `Contents`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    /// Bytes as stored (compressed where the object is).
    pub size: u64,
    pub last_modified_ms: Option<i64>,
    /// Without quotes.
    pub etag: Option<String>,
}
