//! The deployed function's settings: its environment, read with GetFunctionConfiguration, so that
//! `backfill` and `replay` run elsewhere write as the function does (`--function`).

use std::collections::HashMap;

/// Why the function's settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error(
        "function {function:?} not found (the stack's function is <stack>-forwarder; check AWS_REGION and the account)"
    )]
    NotFound { function: String },
    #[error(
        "reading function {function:?}'s configuration was refused: the caller needs lambda:GetFunctionConfiguration on it ({detail})"
    )]
    AccessDenied { function: String, detail: String },
    #[error("reading function {function:?}'s configuration failed: {detail}")]
    Other { function: String, detail: String },
}

/// The function's environment variables (all of them; the caller takes the forwarder's).
/// `function` is a name, a name with a version or alias, or an ARN.
/// <https://docs.aws.amazon.com/lambda/latest/api/API_GetFunctionConfiguration.html>
pub async fn function_environment(
    client: &aws_sdk_lambda::Client,
    function: &str,
) -> Result<HashMap<String, String>, FunctionError> {
    let out = client
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .map_err(|e| {
            let (code, status, detail) = crate::sdk_error::error_facts(&e);
            let function = function.to_string();
            match code.as_str() {
                "ResourceNotFoundException" => FunctionError::NotFound { function },
                "AccessDeniedException" => FunctionError::AccessDenied { function, detail },
                _ if status == Some(403) => FunctionError::AccessDenied { function, detail },
                _ => FunctionError::Other { function, detail },
            }
        })?;
    let Some(env) = out.environment else {
        return Ok(HashMap::new());
    };
    // Variables Lambda could not decrypt come back as an error, not as an empty set: taking
    // the defaults then would write otherwise than the function.
    if let Some(e) = env.error {
        return Err(FunctionError::Other {
            function: function.to_string(),
            detail: format!(
                "its environment could not be read: {} {}",
                e.error_code.unwrap_or_default(),
                e.message.unwrap_or_default()
            ),
        });
    }
    Ok(env.variables.unwrap_or_default())
}
