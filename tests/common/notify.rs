//! S3 → SQS notifications that moto itself writes: a bucket whose uploads moto announces on a
//! queue, set up with the AWS CLI the way a user would, and the SQS Lambda event those messages
//! make, received with the SDK the way Lambda's poller does (a CLI process per receive costs most
//! of a CPU-second, which the real-nginx latency test would count as the forwarder's). No record here is written by us, so the forwarder meets fields (and missing
//! fields) the way an emulator produces them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::moto::Moto;

/// `AWS_CLI_BIN`, else `.venv/bin/aws` (what scripts/venv installs).
pub fn aws_cli() -> PathBuf {
    if let Some(p) = std::env::var_os("AWS_CLI_BIN") {
        return PathBuf::from(p);
    }
    let venv = Path::new(super::MANIFEST_DIR).join(".venv/bin/aws");
    assert!(
        venv.exists(),
        "no AWS CLI at {}: run scripts/test (or scripts/venv), which installs awscli into .venv, or set AWS_CLI_BIN",
        venv.display()
    );
    venv
}

/// A bucket on moto whose `ObjectCreated` events moto sends to an SQS queue.
pub struct NotifyingBucket {
    pub bucket: String,
    pub queue_url: String,
    pub queue_arn: String,
    endpoint: String,
    env: Vec<(&'static str, String)>,
    sqs: aws_sdk_sqs::Client,
    /// An AWS config file (region, path-style addressing) so nothing is read from ~/.aws.
    config_file: PathBuf,
}

impl NotifyingBucket {
    /// Creates the bucket, a queue named after it and the notification configuration.
    pub async fn create(moto: &Moto, bucket: &str) -> Self {
        let config_file = std::env::temp_dir().join(format!(
            "nginx-notify-{}-{bucket}.aws-config",
            std::process::id()
        ));
        std::fs::write(&config_file, super::AWS_CLI_CONFIG).expect("write AWS config");
        let mut b = NotifyingBucket {
            bucket: bucket.to_string(),
            queue_url: String::new(),
            queue_arn: String::new(),
            endpoint: moto.endpoint.clone(),
            env: moto.env(),
            sqs: aws_sdk_sqs::Client::new(&moto.sdk_config()),
            config_file,
        };
        b.aws(&["s3api", "create-bucket", "--bucket", bucket]);
        let queue = b.aws(&[
            "sqs",
            "create-queue",
            "--queue-name",
            &format!("{bucket}-events"),
        ]);
        b.queue_url = str_field(&queue, "QueueUrl");
        let attrs = b.aws(&[
            "sqs",
            "get-queue-attributes",
            "--queue-url",
            &b.queue_url,
            "--attribute-names",
            "QueueArn",
        ]);
        b.queue_arn = attrs["Attributes"]["QueueArn"]
            .as_str()
            .unwrap_or_else(|| panic!("no QueueArn in {attrs}"))
            .to_string();
        // As template.yaml configures it: objects created under KeyPrefix (`nginx/`), so that
        // the forwarder's own lease objects announce nothing.
        let notification = json!({"QueueConfigurations": [{
            "Id": "nginx-logs", "QueueArn": b.queue_arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "nginx/"}]}}
        }]});
        b.aws(&[
            "s3api",
            "put-bucket-notification-configuration",
            "--bucket",
            bucket,
            "--notification-configuration",
            &notification.to_string(),
        ]);
        b
    }

    /// Uploads an object (`aws s3api put-object`); moto announces it on the queue.
    pub async fn put(&self, key: &str, body: Vec<u8>) {
        self.put_with_metadata(key, body, &[]).await;
    }

    /// [`NotifyingBucket::put`] with user metadata (`--metadata name=value,…`, as the shippers
    /// upload).
    pub async fn put_with_metadata(&self, key: &str, body: Vec<u8>, metadata: &[(&str, &str)]) {
        let file = self.config_file.with_extension("body");
        std::fs::write(&file, body).expect("write object body");
        let body_arg = file.to_string_lossy().into_owned();
        let mut args = vec![
            "s3api",
            "put-object",
            "--bucket",
            &self.bucket,
            "--key",
            key,
            "--body",
            &body_arg,
        ];
        let meta: Vec<String> = metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let meta = meta.join(",");
        if !metadata.is_empty() {
            args.extend(["--metadata", &meta]);
        }
        self.aws(&args);
        let _ = std::fs::remove_file(&file);
    }

    /// The SQS messages moto has sent so far, as the SQS event Lambda would hand the function
    /// (<https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>). Each message is received
    /// once (a long visibility timeout keeps it from coming back).
    pub async fn lambda_event(&self) -> Value {
        let messages = receive_all(&self.sqs, &self.queue_url).await;
        sqs_lambda_event(&messages, &self.queue_arn)
    }

    /// Runs the AWS CLI against moto; its JSON answer (`null` for none).
    fn aws(&self, args: &[&str]) -> Value {
        let out = Command::new(aws_cli())
            .args(["--endpoint-url", &self.endpoint, "--output", "json"])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("AWS_CONFIG_FILE", &self.config_file)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .output()
            .expect("run the AWS CLI");
        assert!(
            out.status.success(),
            "aws {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "aws {}: answer is not JSON ({e}): {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

impl Drop for NotifyingBucket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config_file);
    }
}

fn str_field(v: &Value, name: &str) -> String {
    v.get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {name} in {v}"))
        .to_string()
}

/// Every message waiting on `queue_url`, each received once (a long visibility timeout keeps it
/// from coming back).
pub async fn receive_all(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(3600)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "receive from {queue_url}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                )
            });
        if got.messages().is_empty() {
            return all;
        }
        all.extend(got.messages.unwrap_or_default());
    }
}

/// The SQS event Lambda would hand the function for these messages
/// (<https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>).
pub fn sqs_lambda_event(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id().unwrap_or_default(),
                "receiptHandle": m.receipt_handle().unwrap_or_default(),
                "body": m.body().unwrap_or_default(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body().unwrap_or_default(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// A function named `name` with the environment `env`, as a stack deploys the forwarder: moto's
/// Lambda keeps its configuration (GetFunctionConfiguration answers with it) without Docker; it
/// cannot run it.
pub fn create_function(moto: &super::moto::Moto, name: &str, env: &[(&str, String)]) {
    let role = super::iam::create_role(moto, name, "lambda.amazonaws.com");
    let vars: std::collections::HashMap<&str, &str> =
        env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let environment = serde_json::json!({ "Variables": vars }).to_string();
    super::iam::cli(
        moto,
        &[
            "lambda",
            "create-function",
            "--function-name",
            name,
            "--package-type",
            "Image",
            "--code",
            "ImageUri=123456789012.dkr.ecr.us-east-1.amazonaws.com/forwarder:latest",
            "--role",
            &role,
            "--environment",
            &environment,
        ],
    );
}
