//! Recovery from the dead-letter queues, end to end against moto: an object fails because
//! CloudWatch Logs refuses its puts (the strict local endpoint answering AccessDeniedException,
//! as for a role without logs:PutLogEvents), its announcement reaches a dead-letter queue the
//! way the stack's would, and the runbook's command in docs/operations.md (`replay --queue`, once
//! the cause is fixed, taken from the alarm's text in template.yaml) delivers it exactly once; run
//! again, it delivers nothing.
//!
//! - Queue trigger (UseQueue=true): moto's own S3 notification on a queue whose redrive policy
//!   moves a message to the dead-letter queue after `maxReceiveCount` receives (moto applies it).
//!   Lambda's SQS poller is played by this test: it receives, runs the handler on the SQS event
//!   (`replay --event`), deletes what the handler did not report in `batchItemFailures` and
//!   lets the rest become visible again.
//! - Direct trigger (UseQueue=false): moto cannot run the function, so the test plays Lambda's
//!   asynchronous invocation: three attempts (1 + `MaximumRetryAttempts` 2, as template.yaml
//!   sets), then the on-failure destination's invocation record sent to the dead-letter queue,
//!   built as Lambda documents it.
//!
//! (A test binary of its own: REFUSE_AFTER is process-wide, and every test here wants every put
//! to the strict endpoint refused.)

mod common;

use std::sync::atomic::Ordering;

use common::iam::cli_output;
use common::moto::{Moto, forwarder_command, read_stream, replay, replay_result};
use common::notify::{NotifyingBucket, create_function, sqs_lambda_event};
use common::strict_logs::{Faults, REFUSE_AFTER, StrictLogs};
use common::{numbered_log, uri_counts};
use serde_json::{Value, json};

const INSTANCE: &str = "i-0123456789abcdef0";
const LINES: usize = 40;
/// Receives before the queue moves a message to its dead-letter queue (template.yaml: 5; fewer
/// here to keep the test short, the rule is the same).
const MAX_RECEIVE_COUNT: usize = 2;

/// The environment of a run while the cause is not fixed: S3 and SQS on moto, CloudWatch Logs
/// on the endpoint refusing every put.
fn refused_env(moto: &Moto, strict: &StrictLogs) -> Vec<(&'static str, String)> {
    let mut env = moto.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL_S3", moto.endpoint.clone()));
    env.push(("AWS_ENDPOINT_URL_SQS", moto.endpoint.clone()));
    env.push(("AWS_ENDPOINT_URL_LAMBDA", moto.endpoint.clone()));
    env.push(("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", strict.endpoint.clone()));
    env
}

fn refusing_endpoint() -> StrictLogs {
    REFUSE_AFTER.store(0, Ordering::SeqCst);
    StrictLogs::start(Faults::default())
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("a queue URL");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("a queue ARN");
    (url, arn)
}

/// Messages in the queue: (visible, hidden).
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    let n = |a: A| {
        attrs
            .get(&a)
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    (
        n(A::ApproximateNumberOfMessages),
        n(A::ApproximateNumberOfMessagesNotVisible),
    )
}

/// The stack's function as moto keeps it: the alarms' commands read its settings (the defaults
/// here, as in every run of this file).
const FUNCTION: &str = "nginx-logs-forwarder";

/// The command an alarm of template.yaml gives (between backquotes in its folded
/// `AlarmDescription`), with the queue's URL for `${queue_ref}` and [`FUNCTION`] for
/// `${ForwarderFunction}`; without the program name.
fn alarm_command(alarm: &str, queue_ref: &str, url: &str) -> Vec<String> {
    let template = std::fs::read_to_string(format!("{}/template.yaml", common::MANIFEST_DIR))
        .expect("read template.yaml");
    let resource = template
        .find(&format!("\n  {alarm}:\n"))
        .map(|i| &template[i..])
        .unwrap_or_else(|| panic!("no {alarm} in template.yaml"));
    let description = resource
        .find("AlarmDescription:")
        .map(|i| &resource[i..])
        .expect("an AlarmDescription");
    let end = description
        .find("\n      Namespace:")
        .expect("Namespace after it");
    let folded = description[..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let start = folded
        .find("`nginx-cloudwatch-forwarder ")
        .unwrap_or_else(|| panic!("{alarm} names no command: {folded}"));
    let command = &folded[start + 1..];
    let command = &command[..command.find('`').expect("a closing backquote")];
    let command = command
        .replace(&format!("${{{queue_ref}}}"), url)
        .replace("${ForwarderFunction}", FUNCTION);
    assert!(!command.contains("${"), "{alarm}: {command}");
    command
        .split_whitespace()
        .skip(1)
        .map(String::from)
        .collect()
}

/// The alarm's command (`replay --queue URL`); its exit code and summary.
fn runbook(command: &[String], env: &[(&str, String)]) -> (Option<i32>, Value) {
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    assert_eq!(args.first(), Some(&"replay"), "{args:?}");
    let out = forwarder_command(&args, env)
        .output()
        .expect("run the binary");
    replay_result(&out)
}

/// The access stream as CloudWatch holds it: how often each request URI arrived.
async fn delivered(moto: &Moto) -> std::collections::BTreeMap<String, usize> {
    let (_, logs) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
    let group_exists = !logs
        .describe_log_groups()
        .log_group_name_prefix("nginx-access")
        .send()
        .await
        .expect("describe log groups")
        .log_groups()
        .is_empty();
    if !group_exists {
        return Default::default();
    }
    uri_counts(&read_stream(&logs, "nginx-access", INSTANCE).await)
}

fn assert_each_line_once(got: &std::collections::BTreeMap<String, usize>, tag: &str) {
    assert_eq!(got.len(), LINES, "every line arrived: {got:?}");
    assert!(got.values().all(|c| *c == 1), "no line twice: {got:?}");
    assert!(
        got.keys().all(|k| k.starts_with(&format!("/{tag}/"))),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_queued_object_that_failed_reaches_the_dead_letter_queue_and_the_runbook_delivers_it_once()
 {
    let moto = Moto::start();
    create_function(&moto, FUNCTION, &[]);
    let strict = refusing_endpoint();
    let bucket = NotifyingBucket::create(&moto, "nginx-logs-queued").await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config());
    let (dlq, dlq_arn) = create_queue(&sqs, "nginx-logs-queued-dlq").await;
    let redrive =
        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT.to_string()});
    sqs.set_queue_attributes()
        .queue_url(&bucket.queue_url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            redrive.to_string(),
        )
        .send()
        .await
        .expect("set the redrive policy");
    let key = format!("nginx/{INSTANCE}/access/2026/12/05/access.log-queued");
    bucket
        .put(&key, numbered_log(LINES, "queued").into_bytes())
        .await;

    // Lambda's poller, while the role cannot write to CloudWatch Logs.
    let env = refused_env(&moto, &strict);
    let mut failed_attempts = 0;
    for _ in 0..10 {
        let got = sqs
            .receive_message()
            .queue_url(&bucket.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .expect("receive");
        let messages = got.messages();
        if messages.is_empty() {
            break;
        }
        let (code, summary) = replay(&sqs_lambda_event(messages, &bucket.queue_arn), &env);
        let failed: Vec<&str> = summary["failed_messages"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if summary["objects_failed"] == 1 {
            failed_attempts += 1;
            assert_eq!(code, Some(1), "{summary:#}");
            assert!(
                summary.to_string().contains("AccessDeniedException"),
                "{summary:#}"
            );
        }
        for m in messages {
            let (id, receipt) = (
                m.message_id().unwrap_or_default(),
                m.receipt_handle().unwrap_or_default(),
            );
            if failed.contains(&id) {
                // batchItemFailures: visible again once its visibility timeout ends.
                sqs.change_message_visibility()
                    .queue_url(&bucket.queue_url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .expect("make visible");
            } else {
                sqs.delete_message()
                    .queue_url(&bucket.queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
    assert_eq!(failed_attempts, MAX_RECEIVE_COUNT);
    assert_eq!(depth(&sqs, &bucket.queue_url).await, (0, 0));
    assert_eq!(depth(&sqs, &dlq).await, (1, 0), "the message is in the DLQ");
    assert!(delivered(&moto).await.is_empty(), "nothing reached moto");

    // The alarm's command, cause not fixed: the message stays (visible again), nothing is lost.
    let command = alarm_command(
        "NotificationDeadLetterQueueAlarm",
        "NotificationDeadLetterQueue",
        &dlq,
    );
    let (code, summary) = runbook(&command, &env);
    assert_eq!(code, Some(1), "{summary:#}");
    assert_eq!(summary["queue"]["received"], 1, "{summary:#}");
    assert_eq!(summary["queue"]["deleted"], 0, "{summary:#}");
    assert_eq!(summary["queue"]["kept"].as_array().map(Vec::len), Some(1));
    assert_eq!(depth(&sqs, &dlq).await, (1, 0));

    // The alarm's command once the cause is fixed (CloudWatch Logs accepts the puts).
    let (code, summary) = runbook(&command, &moto.env());
    assert_eq!(code, Some(0), "{summary:#}");
    assert_eq!(summary["objects_delivered"], 1, "{summary:#}");
    assert_eq!(summary["queue"]["deleted"], 1, "{summary:#}");
    assert_eq!(depth(&sqs, &dlq).await, (0, 0), "the DLQ is empty");
    assert_each_line_once(&delivered(&moto).await, "queued");

    // Run again: nothing to receive, nothing sent.
    let (code, summary) = runbook(&command, &moto.env());
    assert_eq!(code, Some(0), "{summary:#}");
    assert_eq!(summary["queue"]["received"], 0, "{summary:#}");
    assert_each_line_once(&delivered(&moto).await, "queued");
}

/// A direct (asynchronous) invocation that failed: the object `tag` uploaded to `bucket`
/// (moto's own S3 notification is the event S3 would hand the function), three refused
/// attempts, then Lambda's invocation record in a new dead-letter queue. The record and the
/// queue's URL.
async fn failed_direct_invocation(
    moto: &Moto,
    strict: &StrictLogs,
    sqs: &aws_sdk_sqs::Client,
    bucket: &str,
    tag: &str,
) -> (Value, String) {
    let bucket = NotifyingBucket::create(moto, bucket).await;
    let key = format!("nginx/{INSTANCE}/access/2026/12/05/access.log-{tag}");
    bucket
        .put(&key, numbered_log(LINES, tag).into_bytes())
        .await;
    let notifications = bucket.lambda_event().await;
    let event: Value = notifications["Records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(r["body"].as_str()?).ok())
        .find(|b| b.get("Records").is_some())
        .expect("moto announced the upload");

    // Lambda's asynchronous invocation: the first attempt and MaximumRetryAttempts (2) more.
    let env = refused_env(moto, strict);
    let mut error = String::new();
    for _ in 0..3 {
        let (code, summary) = replay(&event, &env);
        assert_eq!(code, Some(1), "{summary:#}");
        assert_eq!(summary["objects_failed"], 1, "{summary:#}");
        error = summary["objects"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    assert!(error.contains("AccessDeniedException"), "{error}");
    // Then the on-failure destination's record, as Lambda sends it to an SQS destination.
    // <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html>
    let record = json!({
        "version": "1.0",
        "timestamp": "2026-12-05T10:04:41.517Z",
        "requestContext": {
            "requestId": "3f1c2a8e-5b7d-4e90-9a61-0c2d4b8e7f13",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:nginx-logs-forwarder:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "ObjectsFailed", "errorMessage": format!("1 of 1 objects failed: {error}")}
    });
    let (dlq, _) = create_queue(sqs, &format!("{}-DeadLetterQueue", bucket.bucket)).await;
    sqs.send_message()
        .queue_url(&dlq)
        .message_body(record.to_string())
        .send()
        .await
        .expect("send the record");
    assert!(delivered(moto).await.is_empty(), "nothing reached moto");
    (record, dlq)
}

#[tokio::test]
async fn a_direct_invocation_that_failed_is_recorded_in_the_dead_letter_queue_and_the_runbook_delivers_it_once()
 {
    let moto = Moto::start();
    create_function(&moto, FUNCTION, &[]);
    let strict = refusing_endpoint();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config());
    let (record, dlq) =
        failed_direct_invocation(&moto, &strict, &sqs, "nginx-logs-direct", "direct").await;

    // The alarm's command once the cause is fixed.
    let command = alarm_command("DeadLetterQueueAlarm", "DeadLetterQueue", &dlq);
    let (code, summary) = runbook(&command, &moto.env());
    assert_eq!(code, Some(0), "{summary:#}");
    assert_eq!(summary["objects_delivered"], 1, "{summary:#}");
    assert_eq!(summary["queue"]["received"], 1, "{summary:#}");
    assert_eq!(summary["queue"]["deleted"], 1, "{summary:#}");
    assert_eq!(depth(&sqs, &dlq).await, (0, 0), "the DLQ is empty");
    assert_each_line_once(&delivered(&moto).await, "direct");

    // Again: the queue is empty; and the record itself replayed from a file finds the object
    // delivered.
    let (code, summary) = runbook(&command, &moto.env());
    assert_eq!((code, &summary["queue"]["received"]), (Some(0), &json!(0)));
    let (code, summary) = replay(&record, &moto.env());
    assert_eq!(code, Some(0), "{summary:#}");
    assert_eq!(summary["already_delivered"], 1, "{summary:#}");
    assert_each_line_once(&delivered(&moto).await, "direct");
}

/// Runs the AWS CLI against moto; its standard output.
#[tokio::test]
async fn one_dead_letter_by_hand_with_the_aws_cli_and_replay_event() {
    let moto = Moto::start();
    let strict = refusing_endpoint();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config());
    let (_, dlq) =
        failed_direct_invocation(&moto, &strict, &sqs, "nginx-logs-by-hand", "by-hand").await;

    // The runbook's way by hand (docs/operations.md): the CLI's answer saved as it is, replayed,
    // then the message deleted.
    let answer = cli_output(&moto, &["sqs", "receive-message", "--queue-url", &dlq]);
    let file = std::env::temp_dir().join(format!("ncf-dead-letter-{}.json", std::process::id()));
    std::fs::write(&file, &answer).expect("write message.json");
    let file_arg = file.to_string_lossy().into_owned();
    let out = forwarder_command(&["replay", "--event", &file_arg], &moto.env())
        .output()
        .expect("run the binary");
    let _ = std::fs::remove_file(&file);
    let (code, summary) = replay_result(&out);
    assert_eq!(code, Some(0), "{summary:#}");
    assert_eq!(summary["objects_delivered"], 1, "{summary:#}");
    assert_each_line_once(&delivered(&moto).await, "by-hand");
    let answer: Value = serde_json::from_slice(&answer).expect("JSON");
    let receipt = answer["Messages"][0]["ReceiptHandle"]
        .as_str()
        .expect("a receipt handle");
    cli_output(
        &moto,
        &[
            "sqs",
            "delete-message",
            "--queue-url",
            &dlq,
            "--receipt-handle",
            receipt,
        ],
    );
    assert_eq!(depth(&sqs, &dlq).await, (0, 0), "the DLQ is empty");
}
