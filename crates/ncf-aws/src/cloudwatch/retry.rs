//! What a failed PutLogEvents call means for its batch ([`classify`]), and the SDK retry
//! classifier that keeps the SDK from sending again a put whose outcome is unknown
//! ([`OutcomeUnknownIsNotRetried`]). Both are pure: the tests build the errors, no network.

use aws_sdk_cloudwatchlogs::config::interceptors::InterceptorContext;
use aws_sdk_cloudwatchlogs::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_cloudwatchlogs::error::{ConnectorError, SdkError};
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;

/// What the sink does after a PutLogEvents call failed (after the SDK's own retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PutVerdict {
    /// The group or the stream does not exist (`ResourceNotFoundException`): create them, then
    /// put again.
    CreateThenPut,
    /// The request went out and no answer came back: the batch may be stored. Read the stream
    /// back before sending anything again.
    CheckStored,
    /// CloudWatch answered and refused the batch (any other service error, throttling and
    /// `ServiceUnavailableException` included once the SDK's retries are spent): give up,
    /// [`SinkError::Rejected`](ncf_core::ports::SinkError::Rejected).
    Refused,
    /// No answer, and the request was never sent (a refused connection, a request that could
    /// not be built), the SDK's retries spent: give up,
    /// [`SinkError::Failed`](ncf_core::ports::SinkError::Failed).
    GiveUp,
}

/// One arm per kind of error the SDK returns, and per named exception that changes what we do.
pub(super) fn classify(e: &SdkError<PutLogEventsError>) -> PutVerdict {
    match e {
        SdkError::ServiceError(s) => match s.err() {
            PutLogEventsError::ResourceNotFoundException(_) => PutVerdict::CreateThenPut,
            _ => PutVerdict::Refused,
        },
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => PutVerdict::CheckStored,
        SdkError::DispatchFailure(d) if d.as_connector_error().is_some_and(maybe_sent) => {
            PutVerdict::CheckStored
        }
        _ => PutVerdict::GiveUp,
    }
}

/// Whether a connection failure may have happened after the request went out: anything but
/// the caller's own mistake or a refused connection.
fn maybe_sent(e: &ConnectorError) -> bool {
    if e.is_user() {
        return false;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return false;
        }
        cause = c.source();
    }
    true
}

/// Forbids the SDK's retry of a PutLogEvents attempt whose outcome is unknown (see
/// [`PutVerdict::CheckStored`]): the sink checks what was stored instead. Throttling, 5xx
/// answers and refused connections are left to the standard classifiers, which retry them.
#[derive(Debug)]
pub(super) struct OutcomeUnknownIsNotRetried;

impl ClassifyRetry for OutcomeUnknownIsNotRetried {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(e))
                if e.is_timeout_error()
                    || e.is_response_error()
                    || e.as_connector_error().is_some_and(maybe_sent) =>
            {
                RetryAction::RetryForbidden
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "PutLogEventsOutcomeUnknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatchlogs::config::http::HttpResponse;
    use aws_sdk_cloudwatchlogs::types::error::{
        InvalidParameterException, ResourceNotFoundException, ServiceUnavailableException,
    };
    use aws_smithy_runtime_api::client::interceptors::context::{Error, Input};
    use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use std::io::{Error as IoError, ErrorKind};

    fn answer(status: u16) -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(status).expect("a status"),
            SdkBody::empty(),
        )
    }

    fn io(kind: ErrorKind) -> ConnectorError {
        ConnectorError::io(Box::new(IoError::from(kind)))
    }

    /// Every kind of failure the SDK returns, built here, and what the sink does with it.
    #[test]
    fn each_failure_has_its_verdict() {
        use PutVerdict::*;
        let service = |e: PutLogEventsError, status| SdkError::service_error(e, answer(status));
        let cases: Vec<(&str, SdkError<PutLogEventsError>, PutVerdict)> = vec![
            (
                "missing group or stream",
                service(
                    PutLogEventsError::ResourceNotFoundException(
                        ResourceNotFoundException::builder().build(),
                    ),
                    400,
                ),
                CreateThenPut,
            ),
            (
                "invalid parameter",
                service(
                    PutLogEventsError::InvalidParameterException(
                        InvalidParameterException::builder().build(),
                    ),
                    400,
                ),
                Refused,
            ),
            (
                "service unavailable after the SDK's retries",
                service(
                    PutLogEventsError::ServiceUnavailableException(
                        ServiceUnavailableException::builder().build(),
                    ),
                    503,
                ),
                Refused,
            ),
            (
                "attempt timed out",
                SdkError::timeout_error("30 s"),
                CheckStored,
            ),
            (
                "unreadable answer",
                SdkError::response_error("truncated", answer(200)),
                CheckStored,
            ),
            (
                "connection reset",
                SdkError::dispatch_failure(io(ErrorKind::ConnectionReset)),
                CheckStored,
            ),
            (
                "read timed out",
                SdkError::dispatch_failure(ConnectorError::timeout("read".into())),
                CheckStored,
            ),
            (
                "connection refused",
                SdkError::dispatch_failure(io(ErrorKind::ConnectionRefused)),
                GiveUp,
            ),
            (
                "the caller's mistake",
                SdkError::dispatch_failure(ConnectorError::user("bad uri".into())),
                GiveUp,
            ),
            (
                "request not built",
                SdkError::construction_failure("no region"),
                GiveUp,
            ),
        ];
        for (what, e, want) in cases {
            assert_eq!(classify(&e), want, "{what}");
        }
    }

    /// The SDK retries what never reached CloudWatch, and never what may have been stored.
    #[test]
    fn the_sdk_does_not_retry_an_unknown_outcome() {
        let cases: Vec<(&str, OrchestratorError<Error>, RetryAction)> = vec![
            (
                "timeout",
                OrchestratorError::timeout("30 s".into()),
                RetryAction::RetryForbidden,
            ),
            (
                "unreadable answer",
                OrchestratorError::response("truncated".into()),
                RetryAction::RetryForbidden,
            ),
            (
                "connection reset",
                OrchestratorError::connector(io(ErrorKind::ConnectionReset)),
                RetryAction::RetryForbidden,
            ),
            (
                "connection refused",
                OrchestratorError::connector(io(ErrorKind::ConnectionRefused)),
                RetryAction::NoActionIndicated,
            ),
        ];
        for (what, e, want) in cases {
            let mut ctx = InterceptorContext::new(Input::erase(()));
            ctx.set_output_or_error(Err(e));
            assert_eq!(
                OutcomeUnknownIsNotRetried.classify_retry(&ctx),
                want,
                "{what}"
            );
        }
    }
}
