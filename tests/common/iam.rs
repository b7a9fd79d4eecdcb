//! IAM on moto ([`Moto::start_iam`]): a host role, the stack's host policy read from
//! template.yaml and rendered for one session, and that session (AssumeRole with the instance
//! ID as its name, which moto cannot tell from EC2's own instance-profile session). Set up with
//! the AWS CLI before [`Moto::enforce_iam`]; nothing here is checked by moto until then.

use std::path::Path;
use std::process::Command;

use super::moto::Moto;
use super::notify::aws_cli;

/// Temporary credentials of an assumed-role session, and its `aws:userid`
/// (`<role-id>:<session name>`, STS's `AssumedRoleId`).
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub key: String,
    pub secret: String,
    pub token: String,
}

impl Session {
    /// The session's credentials as the AWS SDKs and the CLI read them (they replace
    /// [`Moto::env`]'s).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_SESSION_TOKEN", self.token.clone()),
        ]
    }

    /// The role ID part of [`Session::user_id`] (`AROA…`).
    pub fn role_id(&self) -> &str {
        self.user_id.split_once(':').map_or("", |(r, _)| r)
    }
}

/// `aws ARGS… --output json` against `moto` as its default (unchecked) principal; the parsed
/// answer (`null` when it printed nothing).
pub fn cli(moto: &Moto, args: &[&str]) -> serde_json::Value {
    let out = cli_output(moto, args);
    if out.iter().all(u8::is_ascii_whitespace) {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&out).expect("the CLI's JSON answer")
}

/// [`cli`]'s standard output as the CLI printed it (to save it as a user would).
pub fn cli_output(moto: &Moto, args: &[&str]) -> Vec<u8> {
    let mut cmd = Command::new(aws_cli());
    // The endpoint given as a flag too: the CLI's SQS commands do not take AWS_ENDPOINT_URL.
    cmd.args(args)
        .args(["--output", "json", "--endpoint-url", &moto.endpoint]);
    let out = against_moto(&mut cmd, moto, std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run the AWS CLI");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `cmd` with only `PATH` and what the AWS CLI needs to talk to `moto`: its endpoint and
/// credentials, the region, and no file of the caller's (`~/.aws` stays unread).
pub fn against_moto<'c>(
    cmd: &'c mut Command,
    moto: &Moto,
    path: std::ffi::OsString,
) -> &'c mut Command {
    let scratch = std::env::temp_dir();
    cmd.env_clear()
        .env("PATH", path)
        .env("HOME", &scratch)
        .env("AWS_CONFIG_FILE", scratch.join("ncf-no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            scratch.join("ncf-no-aws-credentials"),
        )
        .envs(moto.env())
        // The CLI (v1) reads its region from AWS_DEFAULT_REGION, not AWS_REGION.
        .env("AWS_DEFAULT_REGION", "us-east-1")
}

/// Creates the role `name` (trusted by EC2, as an instance role is); its ARN.
pub fn create_host_role(moto: &Moto, name: &str) -> String {
    create_role(moto, name, "ec2.amazonaws.com")
}

/// Creates the role `name` that `service` (`ec2.amazonaws.com`, `lambda.amazonaws.com`) may
/// assume; its ARN.
pub fn create_role(moto: &Moto, name: &str, service: &str) -> String {
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole"
        }]
    });
    let role = cli(
        moto,
        &[
            "iam",
            "create-role",
            "--role-name",
            name,
            "--assume-role-policy-document",
            &trust.to_string(),
        ],
    );
    role["Role"]["Arn"]
        .as_str()
        .expect("the role's ARN")
        .to_string()
}

/// A session of `role_arn` named `name` (an instance ID: what EC2 names its sessions).
pub fn assume(moto: &Moto, role_arn: &str, name: &str) -> Session {
    let out = cli(
        moto,
        &[
            "sts",
            "assume-role",
            "--role-arn",
            role_arn,
            "--role-session-name",
            name,
        ],
    );
    let field = |v: &serde_json::Value| v.as_str().expect("a string").to_string();
    Session {
        user_id: field(&out["AssumedRoleUser"]["AssumedRoleId"]),
        key: field(&out["Credentials"]["AccessKeyId"]),
        secret: field(&out["Credentials"]["SecretAccessKey"]),
        token: field(&out["Credentials"]["SessionToken"]),
    }
}

/// Creates the managed policy `document` and attaches it to the role `role`.
pub fn attach_policy(moto: &Moto, role: &str, name: &str, document: &serde_json::Value) {
    let policy = cli(
        moto,
        &[
            "iam",
            "create-policy",
            "--policy-name",
            name,
            "--policy-document",
            &document.to_string(),
        ],
    );
    let arn = policy["Policy"]["Arn"].as_str().expect("the policy's ARN");
    cli(
        moto,
        &[
            "iam",
            "attach-role-policy",
            "--role-name",
            role,
            "--policy-arn",
            arn,
        ],
    );
}

/// The `PolicyDocument` of template.yaml's resource `resource`, as CloudFormation reads the
/// YAML (its short-form tags become `Fn::Sub`, `Fn::If`, …): read with cfn-lint's own loader
/// from the virtual environment moto runs in.
pub fn template_policy(resource: &str) -> serde_json::Value {
    let template = Path::new(super::MANIFEST_DIR).join("template.yaml");
    super::moto::python_json(
        "import json, sys\n\
         from cfnlint.decode.cfn_yaml import load\n\
         r = load(sys.argv[1])['Resources'][sys.argv[2]]\n\
         print(json.dumps({'Type': r['Type'], 'PolicyDocument': r['Properties']['PolicyDocument']}))",
        &[template.as_os_str(), resource.as_ref()],
    )
}

/// What the policy says for one principal with the stack's `bucket` and `key_prefix`:
/// each `Fn::Sub` filled (`AWS::Partition` = `aws`, `Bucket`, `KeyPrefix`) and the IAM variable
/// `${aws:userid}` replaced by `user_id`, since moto does not substitute policy variables.
/// Any other variable or intrinsic function fails the test: the rendering must know it.
pub fn render(
    value: &serde_json::Value,
    bucket: &str,
    key_prefix: &str,
    user_id: &str,
) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render(v, bucket, key_prefix, user_id))
                .collect(),
        ),
        Value::Object(map) => {
            if let Some(sub) = map.get("Fn::Sub") {
                let text = match sub {
                    Value::String(t) => t,
                    Value::Array(parts) => parts[0].as_str().expect("Fn::Sub's template"),
                    other => panic!("Fn::Sub of {other}"),
                };
                return Value::String(fill(text, bucket, key_prefix, user_id));
            }
            assert!(
                !map.keys().any(|k| k.starts_with("Fn::") || k == "Ref"),
                "an intrinsic function the rendering does not know: {value}"
            );
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), render(v, bucket, key_prefix, user_id)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

fn fill(text: &str, bucket: &str, key_prefix: &str, user_id: &str) -> String {
    let filled = text
        .replace("${AWS::Partition}", "aws")
        .replace("${Bucket}", bucket)
        .replace("${KeyPrefix}", key_prefix)
        .replace("${!aws:userid}", user_id);
    assert!(
        !filled.contains("${"),
        "a variable the rendering does not fill: {text}"
    );
    filled
}
