//! The binary in Lambda mode: a stand-in for the Lambda Runtime API on loopback hands it S3
//! events, the forwarder reads from and writes to moto, and we check what it answers.
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>

mod common;

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use common::moto::{Moto, read_stream};
use common::{combined_line, gzip, now_ms, s3_event};
use nginx_cloudwatch_forwarder::aws::clients_from;
use serde_json::Value;

/// What the function posted back for one invocation: `response` or `error`, and the body.
#[derive(Debug)]
struct Answer {
    request_id: String,
    kind: String,
    body: Value,
}

struct FakeRuntimeApi {
    addr: String,
    answers: mpsc::Receiver<Answer>,
}

impl FakeRuntimeApi {
    fn start(events: Vec<Value>) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
        let addr = listener.local_addr().expect("local addr").to_string();
        let queue = Arc::new(Mutex::new(
            events.into_iter().enumerate().collect::<VecDeque<_>>(),
        ));
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (queue, tx) = (queue.clone(), tx.clone());
                std::thread::spawn(move || serve(conn, &queue, &tx));
            }
        });
        Self { addr, answers }
    }
}

fn serve(conn: TcpStream, queue: &Mutex<VecDeque<(usize, Value)>>, tx: &mpsc::Sender<Answer>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
    let mut out = conn;
    while let Some(req) = common::http::read_request(&mut reader) {
        let (path, body) = (req.path, req.body);
        if path.ends_with("/invocation/next") {
            let next = queue.lock().expect("not poisoned").pop_front();
            let Some((i, event)) = next else {
                return; // no more work: leave the function waiting, as Lambda would
            };
            let body = event.to_string();
            let deadline = now_ms() + 120_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Lambda-Runtime-Aws-Request-Id: req-{i}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:forwarder\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1\r\n\r\n",
                body.len()
            );
            if out
                .write_all(head.as_bytes())
                .and_then(|_| out.write_all(body.as_bytes()))
                .is_err()
            {
                return;
            }
        } else {
            // /2018-06-01/runtime/invocation/<id>/response or /error
            let mut parts = path.rsplit('/');
            let kind = parts.next().unwrap_or_default().to_string();
            let request_id = parts.next().unwrap_or_default().to_string();
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let _ = tx.send(Answer {
                request_id,
                kind,
                body,
            });
            if out
                .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                .is_err()
            {
                return;
            }
        }
    }
}

/// An SQS event whose messages carry these bodies.
fn sqs_batch(messages: &[(&str, Value)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            serde_json::json!({"messageId": id, "receiptHandle": "r", "body": body.to_string(), "attributes": {},
                "messageAttributes": {}, "md5OfBody": "m", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"})
        })
        .collect();
    serde_json::json!({ "Records": records })
}

#[tokio::test]
async fn lambda_mode_answers_with_the_summary_or_an_error() {
    let moto = Moto::start();
    let (s3, logs) = clients_from(&moto.sdk_config(), true);
    s3.create_bucket()
        .bucket("lambda-mode-test")
        .send()
        .await
        .unwrap();
    let instance = "i-0123456789abcdef0";
    let text: String = (0..50)
        .map(|i| combined_line("10.0.0.1", now_ms() - 60_000 + i, &format!("/{i}"), 200) + "\n")
        .collect();
    let key = format!("nginx/{instance}/access/x.log.gz");
    s3.put_object()
        .bucket("lambda-mode-test")
        .key(&key)
        .body(ByteStream::from(gzip(text.as_bytes())))
        .send()
        .await
        .unwrap();

    let api = FakeRuntimeApi::start(vec![
        s3_event("lambda-mode-test", &[&key]),
        s3_event(
            "lambda-mode-test",
            &["nginx/i-0123456789abcdef0/access/missing.log"],
        ),
        sqs_batch(&[
            ("msg-ok", s3_event("lambda-mode-test", &[&key])),
            (
                "msg-missing",
                s3_event(
                    "lambda-mode-test",
                    &["nginx/i-0123456789abcdef0/access/gone.log"],
                ),
            ),
        ]),
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_nginx-cloudwatch-forwarder"))
        .envs(moto.env())
        .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "forwarder")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("RETENTION_DAYS", "14")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");

    let wait = Duration::from_secs(60);
    let ok = api
        .answers
        .recv_timeout(wait)
        .expect("an answer to the first invocation");
    let failed = api
        .answers
        .recv_timeout(wait)
        .expect("an answer to the second invocation");
    let batch = api
        .answers
        .recv_timeout(wait)
        .expect("an answer to the third invocation");
    child.kill().ok();
    let output = child.wait_with_output().expect("collect output");

    assert_eq!(
        (ok.request_id.as_str(), ok.kind.as_str()),
        ("req-0", "response"),
        "{ok:?}"
    );
    assert_eq!(ok.body["objects_delivered"], 1, "{:#}", ok.body);
    assert_eq!(ok.body["events"], 50);
    assert_eq!(read_stream(&logs, "nginx-access", instance).await.len(), 50);

    assert_eq!(
        (failed.request_id.as_str(), failed.kind.as_str()),
        ("req-1", "error"),
        "{failed:?}"
    );
    assert_eq!(failed.body["errorType"], "ObjectsFailed");
    let message = failed.body["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("missing.log") && message.contains("1 of 1 objects failed"),
        "{message}"
    );

    // An SQS batch is answered with the failed message only (ReportBatchItemFailures). The
    // other message's object was delivered by the first invocation: its progress tag says so.
    assert_eq!(
        (batch.request_id.as_str(), batch.kind.as_str()),
        ("req-2", "response"),
        "{batch:?}"
    );
    assert_eq!(
        batch.body,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "msg-missing"}]})
    );
    assert_eq!(
        read_stream(&logs, "nginx-access", instance).await.len(),
        50,
        "no line twice"
    );

    // The function's own logs are JSON lines (AWS_LAMBDA_LOG_FORMAT=JSON), one summary each time.
    let logs_text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Value> = logs_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summaries: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "invocation summary")
        .collect();
    assert_eq!(summaries.len(), 3, "{logs_text}");
    // Top-level numbers, for Logs Insights queries.
    assert_eq!(summaries[0]["objects_delivered"], 1);
    // Embedded Metric Format: CloudWatch turns the same line into metrics.
    assert_eq!(
        summaries[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "NginxCloudWatchForwarder"
    );
    assert_eq!(summaries[0]["FunctionName"], "forwarder");
    assert_eq!(summaries[1]["objects_failed"], 1);
}
