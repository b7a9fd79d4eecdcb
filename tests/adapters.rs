//! Adapter tests: the S3 and CloudWatch Logs adapters against mocked SDK clients
//! (aws-smithy-mocks), for the error paths an emulator does not produce on demand.

use aws_sdk_cloudwatchlogs::Client as LogsClient;
use aws_sdk_cloudwatchlogs::operation::create_log_group::{
    CreateLogGroupError, CreateLogGroupOutput,
};
use aws_sdk_cloudwatchlogs::operation::create_log_stream::{
    CreateLogStreamError, CreateLogStreamOutput,
};
use aws_sdk_cloudwatchlogs::operation::put_log_events::{PutLogEventsError, PutLogEventsOutput};
use aws_sdk_cloudwatchlogs::operation::put_retention_policy::PutRetentionPolicyOutput;
use aws_sdk_cloudwatchlogs::types::error::{
    InvalidParameterException, ResourceAlreadyExistsException, ResourceNotFoundException,
};
use aws_sdk_cloudwatchlogs::types::{
    EntityRejectionErrorType, RejectedEntityInfo, RejectedLogEventsInfo,
};
use aws_sdk_s3::Client as S3Client;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::types::error::NoSuchKey;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use nginx_cloudwatch_forwarder::aws::{cloudwatch::CloudWatchSink, s3::S3Source};
use nginx_cloudwatch_forwarder::event::ObjectRef;
use nginx_cloudwatch_forwarder::parse::{LogEvent, Message};
use nginx_cloudwatch_forwarder::ports::{
    Entity, LogSink, ObjectSource, OpenRequest, PutReport, Rejected, SinkError, SourceError,
};

fn events(n: usize) -> Vec<LogEvent> {
    (0..n)
        .map(|i| LogEvent {
            timestamp: 1_000 + i as i64,
            message: Message::new(&format!("m{i}")),
            line: i as u64 + 1,
            offset: 0,
            parse_failed: false,
            filtered: None,
            redacted: 0,
        })
        .collect()
}

fn not_found() -> PutLogEventsError {
    PutLogEventsError::ResourceNotFoundException(
        ResourceNotFoundException::builder()
            .message("The specified log group does not exist.")
            .build(),
    )
}

#[tokio::test]
async fn missing_group_is_created_with_retention_then_the_put_is_repeated() {
    // The events travel in a body the sink writes itself (checked against the API syntax in
    // aws::cloudwatch's tests and by the moto and strict-endpoint tests), not in the input.
    let put = mock!(LogsClient::put_log_events)
        .match_requests(|r| {
            r.log_group_name() == Some("nginx-access") && r.log_stream_name() == Some("i-1")
        })
        .sequence()
        .error(not_found)
        .output(|| PutLogEventsOutput::builder().build())
        .build();
    let group = mock!(LogsClient::create_log_group)
        .match_requests(|r| r.log_group_name() == Some("nginx-access"))
        .then_output(|| CreateLogGroupOutput::builder().build());
    let retention = mock!(LogsClient::put_retention_policy)
        .match_requests(|r| r.retention_in_days() == Some(14))
        .then_output(|| PutRetentionPolicyOutput::builder().build());
    let stream = mock!(LogsClient::create_log_stream)
        .match_requests(|r| r.log_stream_name() == Some("i-1"))
        .then_error(|| {
            CreateLogStreamError::ResourceAlreadyExistsException(
                ResourceAlreadyExistsException::builder().build(),
            )
        });
    let client = mock_client!(
        aws_sdk_cloudwatchlogs,
        RuleMode::MatchAny,
        [&put, &group, &retention, &stream]
    );

    let sink = CloudWatchSink::new(client, Some(14));
    let got = sink
        .put("nginx-access", "i-1", None, events(3))
        .await
        .expect("delivered after create");
    assert_eq!(got, PutReport::default());
    assert_eq!(
        (
            put.num_calls(),
            group.num_calls(),
            retention.num_calls(),
            stream.num_calls()
        ),
        (2, 1, 1, 1)
    );
}

#[tokio::test]
async fn log_group_class_infrequent_access_creates_groups_of_that_class() {
    use aws_sdk_cloudwatchlogs::types::LogGroupClass as Class;
    use nginx_cloudwatch_forwarder::config::LogGroupClass;
    for (class, sent) in [
        (
            LogGroupClass::InfrequentAccess,
            Some(Class::InfrequentAccess),
        ),
        // STANDARD is CloudWatch's default: the parameter is left out, as before.
        (LogGroupClass::Standard, None),
    ] {
        let put = mock!(LogsClient::put_log_events)
            .sequence()
            .error(not_found)
            .output(|| PutLogEventsOutput::builder().build())
            .build();
        let want = sent.clone();
        let group = mock!(LogsClient::create_log_group)
            .match_requests(move |r| r.log_group_class() == want.as_ref())
            .then_output(|| CreateLogGroupOutput::builder().build());
        let stream = mock!(LogsClient::create_log_stream)
            .then_output(|| CreateLogStreamOutput::builder().build());
        let client = mock_client!(
            aws_sdk_cloudwatchlogs,
            RuleMode::MatchAny,
            [&put, &group, &stream]
        );
        let sink = CloudWatchSink::new(client, None).with_group_class(class);
        sink.put("nginx-access", "i-1", None, events(1))
            .await
            .expect("delivered after create");
        assert_eq!(group.num_calls(), 1, "{class:?}");
    }
}

#[tokio::test]
async fn group_created_by_someone_else_counts_as_success_and_keeps_their_retention() {
    let put = mock!(LogsClient::put_log_events)
        .sequence()
        .error(not_found)
        .output(|| PutLogEventsOutput::builder().build())
        .build();
    let group = mock!(LogsClient::create_log_group).then_error(|| {
        CreateLogGroupError::ResourceAlreadyExistsException(
            ResourceAlreadyExistsException::builder().build(),
        )
    });
    let retention = mock!(LogsClient::put_retention_policy)
        .then_output(|| PutRetentionPolicyOutput::builder().build());
    let stream = mock!(LogsClient::create_log_stream)
        .then_output(|| CreateLogStreamOutput::builder().build());
    let client = mock_client!(
        aws_sdk_cloudwatchlogs,
        RuleMode::MatchAny,
        [&put, &group, &retention, &stream]
    );

    CloudWatchSink::new(client, Some(14))
        .put("g", "s", None, events(1))
        .await
        .expect("delivered");
    assert_eq!(
        (
            put.num_calls(),
            group.num_calls(),
            retention.num_calls(),
            stream.num_calls()
        ),
        (2, 1, 0, 1)
    );
}

#[tokio::test]
async fn rejected_events_info_is_mapped_to_index_ranges() {
    let put = mock!(LogsClient::put_log_events).then_output(|| {
        PutLogEventsOutput::builder()
            .rejected_log_events_info(
                RejectedLogEventsInfo::builder()
                    .too_old_log_event_end_index(1)
                    .too_new_log_event_start_index(4)
                    .build(),
            )
            .build()
    });
    let client = mock_client!(aws_sdk_cloudwatchlogs, [&put]);
    let got = CloudWatchSink::new(client, None)
        .put("g", "s", None, events(6))
        .await
        .unwrap()
        .rejected;
    assert_eq!(
        got,
        Rejected {
            too_old_end: Some(2),
            too_new_start: Some(4),
            expired_end: None,
            entity_rejected: false,
        }
    );
    let counts = got.counts(6);
    assert_eq!((counts.too_old, counts.too_new, counts.expired), (2, 2, 0));
}

#[tokio::test]
async fn a_rejected_entity_is_reported_and_the_events_count_as_stored() {
    let put = mock!(LogsClient::put_log_events).then_output(|| {
        PutLogEventsOutput::builder()
            .rejected_entity_info(
                RejectedEntityInfo::builder()
                    .error_type(EntityRejectionErrorType::InvalidKeyAttribute)
                    .build()
                    .expect("error type set"),
            )
            .build()
    });
    let client = mock_client!(aws_sdk_cloudwatchlogs, [&put]);
    let entity = Entity::ec2_instance("i-0abc");
    let got = CloudWatchSink::new(client, None)
        .put("g", "s", Some(&entity), events(3))
        .await
        .unwrap()
        .rejected;
    assert!(got.entity_rejected);
    let counts = got.counts(3);
    assert_eq!((counts.too_old, counts.too_new, counts.expired), (0, 0, 0));
}

#[tokio::test]
async fn invalid_parameter_fails_without_creating_anything() {
    let put = mock!(LogsClient::put_log_events).then_error(|| {
        PutLogEventsError::InvalidParameterException(
            InvalidParameterException::builder()
                .message("bad batch")
                .build(),
        )
    });
    let group =
        mock!(LogsClient::create_log_group).then_output(|| CreateLogGroupOutput::builder().build());
    let client = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&put, &group]);
    let err = CloudWatchSink::new(client, None)
        .put("g", "s", None, events(1))
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("g/s"), "{err}");
    assert_eq!(group.num_calls(), 0);
}

fn obj(key: &str) -> ObjectRef {
    ObjectRef::new("b", key)
}

#[tokio::test]
async fn s3_missing_object_and_access_denied_are_explained() {
    let missing = mock!(S3Client::get_object)
        .match_requests(|r| r.key() == Some("gone.log"))
        .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
    let denied = mock!(S3Client::get_object).match_requests(|r| r.key() == Some("secret.log")).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(403).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
            ),
        )
    });
    let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&missing, &denied]);
    let source = S3Source::new(client);

    let err = source
        .open(&obj("gone.log"), &OpenRequest::default())
        .await
        .err()
        .expect("missing object fails");
    assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("s3://b/gone.log"), "{err}");

    let err = source
        .open(&obj("secret.log"), &OpenRequest::default())
        .await
        .err()
        .expect("denied object fails");
    assert!(matches!(err, SourceError::AccessDenied { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("s3://b/secret.log") && text.contains("IAM") && text.contains("KMS"),
        "{text}"
    );
}
