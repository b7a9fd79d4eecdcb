//! S3 as an [`ObjectSource`] (a streaming GET, ranged to resume), as a [`CheckpointStore`]
//! (the progress record in an object tag) and as an [`ObjectLister`] (ListObjectsV2, for
//! backfill).

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::types::{Tag, Tagging};

use ncf_core::checkpoint::{MAX_TAGS, ProgressRecord, TAG_KEY};
use ncf_core::event::ObjectRef;
use ncf_core::ports::{
    CheckpointError, CheckpointStore, Expiration, ListError, ListPage, ListedObject, ObjectLister,
    ObjectSource, OpenRequest, OpenedObject, SourceError, Stored,
};

#[derive(Clone)]
pub struct S3Source {
    client: Client,
}

impl S3Source {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The client (shared: clones are cheap).
    pub fn client(&self) -> Client {
        self.client.clone()
    }
}

impl ObjectSource for S3Source {
    async fn open(&self, obj: &ObjectRef, req: &OpenRequest) -> Result<OpenedObject, SourceError> {
        let mut out = self
            .client
            .get_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .set_if_match(req.if_match.as_ref().map(|e| format!("\"{e}\"")))
            .set_range((req.from_offset > 0).then(|| format!("bytes={}-", req.from_offset)))
            .send()
            .await
            .map_err(|e| map_error(obj, e))?;
        let last_modified_ms = out.last_modified.and_then(|t| t.to_millis().ok());
        let etag = out.e_tag.as_deref().map(unquote);
        let metadata = out
            .metadata
            .take()
            .map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect()
            })
            .unwrap_or_default();
        Ok(OpenedObject {
            body: Box::new(out.body.into_async_read()),
            last_modified_ms,
            etag,
            metadata,
        })
    }
}

impl ObjectLister for S3Source {
    /// One ListObjectsV2 page (up to 1,000 keys, S3's maximum).
    /// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html>
    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        continuation: Option<String>,
    ) -> Result<ListPage, ListError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(continuation)
            .send()
            .await
            .map_err(|e| {
                let (code, status, detail) = crate::sdk_error::error_facts(&e);
                let (bucket, prefix) = (bucket.to_string(), prefix.to_string());
                match code.as_str() {
                    "NoSuchBucket" => ListError::NoBucket { bucket },
                    "AccessDenied" => ListError::AccessDenied {
                        bucket,
                        prefix,
                        detail,
                    },
                    _ if status == Some(403) => ListError::AccessDenied {
                        bucket,
                        prefix,
                        detail,
                    },
                    _ => ListError::Other {
                        bucket,
                        prefix,
                        detail,
                    },
                }
            })?;
        let objects = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ListedObject {
                    key: o.key()?.to_string(),
                    size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    last_modified_ms: o.last_modified().and_then(|t| t.to_millis().ok()),
                    etag: o.e_tag().map(unquote),
                })
            })
            .collect();
        let next = out
            .is_truncated()
            .unwrap_or(false)
            .then(|| out.next_continuation_token().map(str::to_string))
            .flatten();
        Ok(ListPage { objects, next })
    }

    /// GetBucketLifecycleConfiguration; no configuration is no rule.
    /// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLifecycleConfiguration.html>
    async fn expirations(&self, bucket: &str) -> Result<Vec<Expiration>, String> {
        let out = match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let (code, _, detail) = crate::sdk_error::error_facts(&e);
                return match code.as_str() {
                    "NoSuchLifecycleConfiguration" => Ok(Vec::new()),
                    "AccessDenied" => Err(format!(
                        "the credentials need s3:GetLifecycleConfiguration on arn:aws:s3:::{bucket} ({detail})"
                    )),
                    _ => Err(detail),
                };
            }
        };
        Ok(out
            .rules
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.status == aws_sdk_s3::types::ExpirationStatus::Enabled)
            .filter_map(|r| {
                let days = r.expiration.as_ref()?.days?;
                #[allow(deprecated)] // The rule-level Prefix: older rules still carry it.
                let prefix = match &r.filter {
                    Some(f) if f.tag.is_some() || f.and.is_some() => return None,
                    Some(f) if f.object_size_greater_than.is_some() => return None,
                    Some(f) if f.object_size_less_than.is_some() => return None,
                    Some(f) => f.prefix.clone().unwrap_or_default(),
                    None => r.prefix.clone().unwrap_or_default(),
                };
                Some(Expiration {
                    rule: r.id.unwrap_or_default(),
                    prefix,
                    days,
                })
            })
            .collect())
    }
}

/// S3's error codes for "no such object": the key, the bucket or the version is gone.
const MISSING: [&str; 3] = ["NoSuchKey", "NoSuchBucket", "NoSuchVersion"];

pub fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

fn map_error(obj: &ObjectRef, e: SdkError<GetObjectError>) -> SourceError {
    let (bucket, key) = (obj.bucket.clone(), obj.key.clone());
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .unwrap_or_default()
        .to_string();
    match (e.as_service_error(), code.as_str()) {
        (Some(GetObjectError::NoSuchKey(_)), _) => SourceError::NotFound { bucket, key },
        (_, c) if MISSING.contains(&c) => SourceError::NotFound { bucket, key },
        (_, "PreconditionFailed") => SourceError::Changed { bucket, key },
        _ if status == Some(412) => SourceError::Changed { bucket, key },
        (_, "AccessDenied" | "KMS.AccessDeniedException" | "AllAccessDisabled") => {
            SourceError::AccessDenied {
                bucket,
                key,
                detail: DisplayErrorContext(&e).to_string(),
            }
        }
        _ => SourceError::Other {
            bucket,
            key,
            detail: DisplayErrorContext(&e).to_string(),
        },
    }
}

fn checkpoint_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    obj: &ObjectRef,
    e: SdkError<E, HttpResponse>,
) -> CheckpointError {
    let (bucket, key) = (obj.bucket.clone(), obj.key.clone());
    let code = e.as_service_error().and_then(|s| s.code());
    let status = e.raw_response().map(|r| r.status().as_u16());
    if code.is_some_and(|c| MISSING.contains(&c)) || status == Some(404) {
        return CheckpointError::NotFound { bucket, key };
    }
    let denied = code == Some("AccessDenied") || status == Some(403);
    let detail = DisplayErrorContext(&e).to_string();
    if denied {
        CheckpointError::Denied {
            bucket,
            key,
            detail,
        }
    } else {
        CheckpointError::Other {
            bucket,
            key,
            detail,
        }
    }
}

impl CheckpointStore for S3Source {
    async fn load(&self, obj: &ObjectRef) -> Result<Stored, CheckpointError> {
        let out = self
            .client
            .get_object_tagging()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .send()
            .await
            .map_err(|e| checkpoint_error(obj, e))?;
        let mut stored = Stored::default();
        for tag in out.tag_set() {
            if tag.key() == TAG_KEY {
                stored.progress = ProgressRecord::decode(tag.value());
            } else {
                stored
                    .other_tags
                    .push((tag.key().to_string(), tag.value().to_string()));
            }
        }
        Ok(stored)
    }

    async fn save(
        &self,
        obj: &ObjectRef,
        other_tags: &[(String, String)],
        progress: &ProgressRecord,
    ) -> Result<(), CheckpointError> {
        if other_tags.len() >= MAX_TAGS {
            return Err(CheckpointError::Full {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
            });
        }
        let build = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let mut tags = Vec::with_capacity(other_tags.len() + 1);
        for (k, v) in other_tags {
            tags.push(build(k, v));
        }
        tags.push(build(TAG_KEY, &progress.encode()));
        let tags = tags
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CheckpointError::Other {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
                detail: e.to_string(),
            })?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(tags))
            .build()
            .map_err(|e| CheckpointError::Other {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
                detail: e.to_string(),
            })?;
        self.client
            .put_object_tagging()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| checkpoint_error(obj, e))?;
        Ok(())
    }
}
