//! S3 as an [`ObjectSource`]: a streaming GET (the body is never held whole).

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;

use crate::event::ObjectRef;
use crate::ports::{ObjectSource, OpenedObject, SourceError};

pub struct S3Source {
    client: Client,
}

impl S3Source {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl ObjectSource for S3Source {
    async fn open(&self, obj: &ObjectRef) -> Result<OpenedObject, SourceError> {
        let out = self
            .client
            .get_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .send()
            .await
            .map_err(|e| map_error(obj, e))?;
        let last_modified_ms = out.last_modified.and_then(|t| t.to_millis().ok());
        Ok(OpenedObject {
            body: Box::new(out.body.into_async_read()),
            last_modified_ms,
        })
    }
}

fn map_error(obj: &ObjectRef, e: SdkError<GetObjectError>) -> SourceError {
    let (bucket, key) = (obj.bucket.clone(), obj.key.clone());
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .unwrap_or_default()
        .to_string();
    match (e.as_service_error(), code.as_str()) {
        (Some(GetObjectError::NoSuchKey(_)), _)
        | (_, "NoSuchKey" | "NoSuchBucket" | "NoSuchVersion") => {
            SourceError::NotFound { bucket, key }
        }
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
