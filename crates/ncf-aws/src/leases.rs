//! Leases as small S3 objects written with conditional requests ([`LeaseStore`]): one lease
//! object per log object, under `LEASE_PREFIX` in the log object's own bucket. S3 checks the
//! conditions atomically and is strongly consistent, so no new infrastructure is needed:
//! - take: `PutObject` with `If-None-Match: *` (412 when a lease exists);
//! - renew or take over an expired lease: `PutObject` with `If-Match: <its ETag>`;
//! - release: `DeleteObject` with `If-Match: <our ETag>` (never someone else's lease).
//!
//! The holder and the expiry are user metadata (`x-amz-meta-holder`, `x-amz-meta-expires-ms`),
//! so reading a lease is a HEAD; the body says the same for people listing the prefix.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html>
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html>

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use futures_util::FutureExt;

use super::s3::unquote;
use ncf_core::event::ObjectRef;
use ncf_core::ports::{LeaseError, LeaseFuture, LeaseRecord, LeaseStore, LeaseVersion};

/// The configuration owns the default (`LEASE_PREFIX`); the store only uses it.
pub use ncf_core::config::DEFAULT_LEASE_PREFIX;
/// S3 keys are at most 1,024 bytes of UTF-8.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html>
const MAX_KEY_BYTES: usize = 1024;
const HOLDER: &str = "holder";
const EXPIRES_MS: &str = "expires-ms";

#[derive(Clone)]
pub struct S3Leases {
    client: Client,
    prefix: String,
}

impl S3Leases {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    /// The lease object of `obj`: the prefix and the object's key (readable when listing), or
    /// for keys too long for that, a shortened key with a hash of the whole key.
    pub fn lease_key(&self, obj: &ObjectRef) -> String {
        let whole = format!("{}{}", self.prefix, obj.key);
        if whole.len() <= MAX_KEY_BYTES {
            return whole;
        }
        let mut cut = MAX_KEY_BYTES - 40;
        while !whole.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}~{:016x}", &whole[..cut], fnv1a(obj.key.as_bytes()))
    }

    fn error<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        obj: &ObjectRef,
        e: SdkError<E, HttpResponse>,
    ) -> LeaseError {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.as_service_error().and_then(|s| s.code());
        let detail = DisplayErrorContext(&e).to_string();
        if code == Some("AccessDenied") || status == Some(403) {
            LeaseError::Denied {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
                lease_key: self.lease_key(obj),
                detail,
            }
        } else {
            LeaseError::Other {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
                detail,
            }
        }
    }

    /// Writes the lease: unconditionally new (`If-None-Match: *`) or over `version`
    /// (`If-Match`). `None` when the condition did not hold.
    async fn write(
        &self,
        obj: &ObjectRef,
        version: Option<&LeaseVersion>,
        terms: &LeaseRecord,
    ) -> Result<Option<LeaseVersion>, LeaseError> {
        let body = serde_json::json!({
            "object": format!("s3://{}/{}", obj.bucket, obj.key),
            "holder": terms.holder,
            "expires": ncf_core::forward::rfc3339(terms.expires_ms),
        })
        .to_string();
        let put = self
            .client
            .put_object()
            .bucket(&obj.bucket)
            .key(self.lease_key(obj))
            .content_type("application/json")
            .metadata(HOLDER, ascii(&terms.holder))
            .metadata(EXPIRES_MS, terms.expires_ms.to_string())
            .body(ByteStream::from(body.into_bytes()));
        let put = match version {
            None => put.if_none_match("*"),
            Some(v) => put.if_match(format!("\"{}\"", v.0)),
        };
        match put.send().await {
            Ok(out) => Ok(Some(LeaseVersion(
                out.e_tag().map(unquote).unwrap_or_default(),
            ))),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(self.error(obj, e)),
        }
    }
}

/// 412: the condition did not hold; 409: a conditional write to the same key was in progress;
/// `NoSuchKey`: the lease to overwrite or delete is gone. Each means "not now": look again. (A
/// missing bucket, `NoSuchBucket`, is an error.)
fn condition_failed<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, HttpResponse>,
) -> bool {
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.as_service_error().and_then(|s| s.code());
    matches!(status, Some(412 | 409))
        || matches!(
            code,
            Some("PreconditionFailed" | "ConditionalRequestConflict" | "NoSuchKey")
        )
}

/// User metadata travels in HTTP headers: keep it printable ASCII.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// 64-bit FNV-1a: a hash that stays the same across builds (unlike `DefaultHasher`), for
/// lease keys every version of the forwarder must agree on.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl LeaseStore for S3Leases {
    fn create<'a>(
        &'a self,
        obj: &'a ObjectRef,
        terms: &'a LeaseRecord,
    ) -> LeaseFuture<'a, Option<LeaseVersion>> {
        self.write(obj, None, terms).boxed()
    }

    fn read<'a>(
        &'a self,
        obj: &'a ObjectRef,
    ) -> LeaseFuture<'a, Option<(LeaseVersion, LeaseRecord)>> {
        async move {
            let out = match self
                .client
                .head_object()
                .bucket(&obj.bucket)
                .key(self.lease_key(obj))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                    return Ok(None);
                }
                Err(e) => return Err(self.error(obj, e)),
            };
            let meta = out.metadata();
            let get = |name: &str| meta.and_then(|m| m.get(name)).cloned();
            let terms = LeaseRecord {
                holder: get(HOLDER).unwrap_or_else(|| "an unknown holder".into()),
                // A lease without a readable expiry counts as expired.
                expires_ms: get(EXPIRES_MS).and_then(|v| v.parse().ok()).unwrap_or(0),
            };
            let version = LeaseVersion(out.e_tag().map(unquote).unwrap_or_default());
            Ok(Some((version, terms)))
        }
        .boxed()
    }

    fn replace<'a>(
        &'a self,
        obj: &'a ObjectRef,
        version: &'a LeaseVersion,
        terms: &'a LeaseRecord,
    ) -> LeaseFuture<'a, Option<LeaseVersion>> {
        self.write(obj, Some(version), terms).boxed()
    }

    fn is_lease_key(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
    }

    fn release<'a>(&'a self, obj: &'a ObjectRef, version: &'a LeaseVersion) -> LeaseFuture<'a, ()> {
        async move {
            match self
                .client
                .delete_object()
                .bucket(&obj.bucket)
                .key(self.lease_key(obj))
                .if_match(format!("\"{}\"", version.0))
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if condition_failed(&e) => Ok(()),
                Err(e) => Err(self.error(obj, e)),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str) -> ObjectRef {
        ObjectRef::new("b", key)
    }

    #[test]
    fn lease_keys_name_the_object_and_fit_s3s_limit() {
        let client = Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .build(),
        );
        let leases = S3Leases::new(client, DEFAULT_LEASE_PREFIX);
        let k = "nginx/i-0abc/access/2026/11/24/access.log-20261124T1000.gz";
        assert_eq!(
            leases.lease_key(&obj(k)),
            format!("nginx-cloudwatch-forwarder/leases/{k}")
        );
        let long_a = format!("nginx/{}a", "é".repeat(600));
        let long_b = format!("nginx/{}b", "é".repeat(600));
        let (a, b) = (
            leases.lease_key(&obj(&long_a)),
            leases.lease_key(&obj(&long_b)),
        );
        assert!(a.len() <= MAX_KEY_BYTES && b.len() <= MAX_KEY_BYTES);
        assert_ne!(
            a, b,
            "keys that differ only past the cut get different leases"
        );
        assert_eq!(a, leases.lease_key(&obj(&long_a)), "stable");
        // The hash is FNV-1a (fixed test vector), the same in every build.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
