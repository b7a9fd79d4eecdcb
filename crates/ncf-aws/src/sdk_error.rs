//! What an SDK error says, in one form for every adapter (S3, SQS, Lambda).

/// What an SDK error says, for mapping it onto one of ours: its error code (empty when none),
/// the HTTP status (when an answer came) and its whole text with every source. (The SDKs'
/// `SdkError` is one type, re-exported by each service crate.)
pub(crate) fn error_facts<E>(e: &aws_sdk_s3::error::SdkError<E>) -> (String, Option<u16>, String)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .unwrap_or_default()
        .to_string();
    let status = e.raw_response().map(|r| r.status().as_u16());
    let detail = aws_sdk_s3::error::DisplayErrorContext(e).to_string();
    (code, status, detail)
}
