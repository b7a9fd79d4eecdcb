//! Secrets Manager: the value of the secret `REDACT_HASH_KEY_SECRET` names (the key of hashed
//! fields), read once at cold start, before the configuration is built. The core gets its text
//! ([`ncf_core::config::HashKeySecret`]) and never sees the SDK.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use ncf_core::config::HashKeySecret;

/// Why the secret could not be read. The function does not start without it: it would send
/// what it must hash.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "REDACT_HASH_KEY_SECRET: secret {secret} not found (give its ARN or name, in this region) ({detail})"
    )]
    NotFound { secret: String, detail: String },
    #[error(
        "REDACT_HASH_KEY_SECRET: reading secret {secret} was refused: the role needs \
         secretsmanager:GetSecretValue on it (and kms:Decrypt when a customer-managed KMS key \
         encrypts it) ({detail})"
    )]
    AccessDenied { secret: String, detail: String },
    #[error(
        "REDACT_HASH_KEY_SECRET: secret {secret} has no text value (SecretString): store the key as text"
    )]
    NotText { secret: String },
    #[error("REDACT_HASH_KEY_SECRET: reading secret {secret} failed: {detail}")]
    Other { secret: String, detail: String },
}

/// [`hash_key_secret`] with a client from `sdk`, or from [`crate::shared_config`] when no
/// configuration is loaded yet (the commands that otherwise need none, such as `parse`).
pub async fn read_hash_key(
    secret: &str,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<HashKeySecret, SecretError> {
    let client = match sdk {
        Some(sdk) => aws_sdk_secretsmanager::Client::new(sdk),
        None => aws_sdk_secretsmanager::Client::new(&crate::shared_config().await),
    };
    hash_key_secret(&client, secret).await
}

/// The current value (`AWSCURRENT`) of `secret` (an ARN or a name) as text.
/// <https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html>
pub async fn hash_key_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret: &str,
) -> Result<HashKeySecret, SecretError> {
    let name = || secret.to_string();
    let out = client
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| {
            let (code, status, full) = crate::sdk_error::error_facts(&e);
            // The service's own words when it answered (`Code: message`), else everything.
            let message = e.as_service_error().and_then(|s| s.message());
            let detail = match message {
                Some(m) if !code.is_empty() => format!("{code}: {m}"),
                _ => full,
            };
            match code.as_str() {
                "ResourceNotFoundException" => SecretError::NotFound {
                    secret: name(),
                    detail,
                },
                "AccessDeniedException" => SecretError::AccessDenied {
                    secret: name(),
                    detail,
                },
                _ if status == Some(403) => SecretError::AccessDenied {
                    secret: name(),
                    detail,
                },
                _ => SecretError::Other {
                    secret: name(),
                    detail,
                },
            }
        })?;
    let text = out
        .secret_string
        .ok_or_else(|| SecretError::NotText { secret: name() })?;
    Ok(HashKeySecret {
        secret: name(),
        text,
    })
}
