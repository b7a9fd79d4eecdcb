//! Who may have their uploads forwarded into which stream, and which messages are acted on.
//! Pure: decisions on what a trigger says ([`Provenance`]) and where a key routes; the handler
//! applies them before anything is read.
//!
//! - An upload made with an EC2 instance profile's credentials carries
//!   `userIdentity.principalId` `AWS:<role id>:<instance id>` (IAM's `aws:userid` of an
//!   instance profile session, "Principal key values":
//!   <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html#principaltable>).
//!   When the key names another instance (or, in the `ROLEID:i-…` layout, another role),
//!   nothing of the object goes anywhere ([`Verdict::Untrusted`]).
//! - Whoever calls AssumeRole chooses the session name, so `AROA…:i-…` is also what a
//!   look-alike session looks like. Only the role ID tells them apart: a deployment that names
//!   its instance roles (`role/AROA…`) counts any other role's `…:i-…` session as another
//!   principal, not an instance.
//! - A message naming a bucket other than `SOURCE_BUCKET`, an EventBridge event from another
//!   account than `SOURCE_ACCOUNT` (or an upload it says another account made), or an
//!   `s3:TestEvent` that is not S3's, is refused ([`Refusal`]).

use serde::Serialize;

use crate::event::TestEvent;
use crate::object::{ObjectRef, Provenance};
use crate::route::{is_instance_id, is_role_id, is_unique_id};

/// How uploads are checked against the stream their key names (`UPLOADER_CHECK`'s mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CheckMode {
    /// Instance sessions only for their own instance; other uploaders (operators, emulators,
    /// triggers that carry none) are forwarded and counted.
    #[default]
    Instance,
    /// As `Instance`, and every other uploader is refused unless named as trusted.
    InstanceOnly,
    /// No uploader check (the uploader is still counted).
    Off,
}

/// `UPLOADER_CHECK`: `MODE[,ENTRY…]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploaderCheck {
    pub mode: CheckMode,
    /// `role/AROA…` entries: only sessions of these roles are instance sessions (none: any
    /// role's `ROLEID:i-…` session is).
    pub instance_roles: Vec<String>,
    /// `AROA…`, `AROA…:NAME` and `AIDA…` entries: uploaders that may upload for any instance.
    pub trusted: Vec<String>,
}

impl UploaderCheck {
    /// Reads `MODE[,ENTRY…]` (spaces around commas ignored); the error names the bad token.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut tokens = text.split(',').map(str::trim);
        let mode = match tokens.next().unwrap_or_default() {
            "" | "instance" => CheckMode::Instance,
            "instance-only" => CheckMode::InstanceOnly,
            "off" => CheckMode::Off,
            other => {
                return Err(format!(
                    "mode {other:?} is none of instance, instance-only, off"
                ));
            }
        };
        let mut check = Self {
            mode,
            ..Self::default()
        };
        for token in tokens {
            if let Some(role) = token.strip_prefix("role/") {
                if !is_role_id(role) {
                    return Err(format!(
                        "{token:?}: an instance role is role/ + a role ID (AROA…)"
                    ));
                }
                check.instance_roles.push(role.to_string());
            } else if is_trusted_entry(token) {
                check.trusted.push(token.to_string());
            } else {
                return Err(format!(
                    "{token:?} is none of role/AROA…, AROA…, AROA…:NAME, AIDA…"
                ));
            }
        }
        Ok(check)
    }
}

/// `AROA…` (a role), `AROA…:NAME` (one session of it) or `AIDA…` (an IAM user).
fn is_trusted_entry(token: &str) -> bool {
    match token.split_once(':') {
        Some((role, name)) => is_role_id(role) && !name.is_empty(),
        None => is_role_id(token) || is_unique_id(token, "AIDA"),
    }
}

/// Which messages are acted on and whose uploads are forwarded where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustSettings {
    /// `UPLOADER_CHECK`.
    pub uploaders: UploaderCheck,
    /// `SOURCE_BUCKET` (comma-separated): empty, every bucket.
    pub buckets: Vec<String>,
    /// `SOURCE_ACCOUNT`: `None`, EventBridge events of any account.
    pub account: Option<String>,
}

/// Who uploaded an object, as far as the trigger says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploaderKind {
    /// An instance profile session (`ROLEID:i-…`, of a pinned role if roles are pinned).
    Instance,
    /// Named in `UPLOADER_CHECK` as allowed to upload for any instance.
    Trusted,
    /// Any other principal (an operator's role or user, a look-alike session).
    Other,
    /// The trigger names none (EventBridge, emulators, listings, hand-made events).
    Unknown,
}

/// Why a message is not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The record names a bucket other than `SOURCE_BUCKET`.
    OtherBucket,
    /// The key does not route (outside `KEY_PATTERN`, or it names two instances).
    OutsideKeyPattern,
    /// An `s3:TestEvent` S3 did not send (another bucket, or it carries records).
    ForgedTestEvent,
    /// An EventBridge event of another account, or about an upload another account made.
    OtherAccount,
}

/// What to do with an object whose key routes to `key_instance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Forward(UploaderKind),
    /// Nothing of it is read or sent.
    Untrusted {
        reason: String,
        /// The instance of the principal, when it is an instance session.
        uploader_instance: Option<String>,
    },
}

/// The instance a key routes to, and the role its `ROLEID:` segment names (if any).
#[derive(Debug, Clone, Copy)]
pub struct KeyOwner<'a> {
    pub instance: &'a str,
    pub role: Option<&'a str>,
}

/// Whether `principal` (the record's `userIdentity.principalId`) may have an object forwarded
/// to the stream of `owner`.
pub fn check_uploader(
    principal: Option<&str>,
    owner: KeyOwner<'_>,
    check: &UploaderCheck,
) -> Verdict {
    let id = principal.map(|p| p.strip_prefix("AWS:").unwrap_or(p));
    let kind = classify(id, check);
    let untrusted = |reason: String, uploader_instance: Option<&str>| Verdict::Untrusted {
        reason,
        uploader_instance: uploader_instance.map(str::to_string),
    };
    let who = principal.unwrap_or_default();
    match (kind, check.mode) {
        (_, CheckMode::Off) => Verdict::Forward(kind),
        (UploaderKind::Instance, _) => {
            let (role, instance) = id.and_then(instance_session).unwrap_or_default();
            let same_role = owner.role.is_none_or(|r| r == role);
            if instance == owner.instance && same_role {
                Verdict::Forward(kind)
            } else {
                let key = owner.role.map_or(owner.instance.to_string(), |r| {
                    format!("{r}:{}", owner.instance)
                });
                untrusted(
                    format!(
                        "uploaded by instance {instance} ({who}) under the key of {key}: an instance may write only its own stream"
                    ),
                    Some(instance),
                )
            }
        }
        (UploaderKind::Trusted, _) | (_, CheckMode::Instance) => Verdict::Forward(kind),
        (UploaderKind::Other, CheckMode::InstanceOnly) => untrusted(
            format!(
                "uploaded by {who}, not an instance session nor a principal UPLOADER_CHECK trusts (instance-only)"
            ),
            None,
        ),
        (UploaderKind::Unknown, CheckMode::InstanceOnly) => untrusted(
            "the trigger does not say who uploaded it (instance-only requires an instance session)"
                .into(),
            None,
        ),
    }
}

/// The kind of uploader `id` (a principal ID without `AWS:`) is.
fn classify(id: Option<&str>, check: &UploaderCheck) -> UploaderKind {
    let Some(id) = id.filter(|id| !id.is_empty()) else {
        return UploaderKind::Unknown;
    };
    let trusted = check.trusted.iter().any(|t| {
        id == t
            || (!t.contains(':')
                && id
                    .strip_prefix(t.as_str())
                    .is_some_and(|r| r.starts_with(':')))
    });
    if trusted {
        return UploaderKind::Trusted;
    }
    match instance_session(id) {
        Some((role, _))
            if check.instance_roles.is_empty()
                || check.instance_roles.iter().any(|r| r == role) =>
        {
            UploaderKind::Instance
        }
        _ => UploaderKind::Other,
    }
}

/// `ROLEID:i-…` → (role ID, instance ID).
fn instance_session(id: &str) -> Option<(&str, &str)> {
    let (role, instance) = id.split_once(':')?;
    (is_role_id(role) && is_instance_id(instance)).then_some((role, instance))
}

/// Why the message announcing `obj` is not acted on, if it is not: it names another bucket
/// than `SOURCE_BUCKET`, or (EventBridge) another account than `SOURCE_ACCOUNT`, or says
/// another account uploaded it (unless `UPLOADER_CHECK` is `off`).
pub fn refuse_message(obj: &ObjectRef, settings: &TrustSettings) -> Option<(Refusal, String)> {
    if !settings.buckets.is_empty() && !settings.buckets.contains(&obj.bucket) {
        return Some((
            Refusal::OtherBucket,
            format!(
                "bucket {:?} is not SOURCE_BUCKET ({})",
                obj.bucket,
                settings.buckets.join(",")
            ),
        ));
    }
    let Provenance {
        account, requester, ..
    } = &obj.provenance;
    if let (Some(want), Some(got)) = (&settings.account, account)
        && want != got
    {
        return Some((
            Refusal::OtherAccount,
            format!("an event of account {got}, not SOURCE_ACCOUNT {want}"),
        ));
    }
    let expected = settings.account.as_ref().or(account.as_ref());
    if let (Some(want), Some(by)) = (expected, requester)
        && is_account_id(by)
        && by != want
        && settings.uploaders.mode != CheckMode::Off
    {
        return Some((
            Refusal::OtherAccount,
            format!("uploaded by account {by}, not {want}"),
        ));
    }
    None
}

/// Twelve digits.
fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `Ok`: a genuine test event, ignored (the text says so); `Err`: why it is refused.
pub fn check_test_event(event: &TestEvent, settings: &TrustSettings) -> Result<String, String> {
    let at = &event.at;
    if event.with_records {
        return Err(format!(
            "{at}s3:TestEvent carrying Records: S3's never does (its records are not read)"
        ));
    }
    let bucket = event.bucket.as_deref().unwrap_or_default();
    if !settings.buckets.is_empty() && !settings.buckets.iter().any(|b| b == bucket) {
        return Err(format!(
            "{at}s3:TestEvent for bucket {bucket:?}, not SOURCE_BUCKET ({})",
            settings.buckets.join(",")
        ));
    }
    Ok(format!("{at}s3:TestEvent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "i-0aaaaaaaaaaaaaaaa";
    const B: &str = "i-0bbbbbbbbbbbbbbbb";
    const ROLE: &str = "AROA3XFRBF535EXAMPLE1";

    fn check(text: &str) -> UploaderCheck {
        UploaderCheck::parse(text).unwrap()
    }

    #[test]
    fn uploader_check_grammar() {
        assert_eq!(check(""), UploaderCheck::default());
        assert_eq!(check("instance").mode, CheckMode::Instance);
        assert_eq!(check("off").mode, CheckMode::Off);
        let c = check("instance-only , role/AROAPINNED1, AROAOPS1,AROAOPS2:alice, AIDAUSER1");
        assert_eq!(c.mode, CheckMode::InstanceOnly);
        assert_eq!(c.instance_roles, ["AROAPINNED1"]);
        assert_eq!(c.trusted, ["AROAOPS1", "AROAOPS2:alice", "AIDAUSER1"]);
        for (bad, named) in [
            ("strict", "\"strict\""),
            ("instance,role/AIDAX", "\"role/AIDAX\""),
            ("instance,aroa1", "\"aroa1\""),
            ("instance,AROA", "\"AROA\""),
            ("instance,AROAX:", "\"AROAX:\""),
            ("instance,", "\"\""),
        ] {
            let e = UploaderCheck::parse(bad).unwrap_err();
            assert!(e.contains(named), "{bad}: {e}");
        }
        // IAM's unique IDs are at most 128 characters, users' as roles'.
        let longest = format!("AIDA{}", "X".repeat(crate::route::MAX_ROLE_ID_TAIL));
        assert!(UploaderCheck::parse(&format!("instance,{longest}")).is_ok());
        assert!(UploaderCheck::parse(&format!("instance,{longest}X")).is_err());
    }

    /// The decision table: principal × mode × key owner.
    #[test]
    fn who_may_write_which_stream() {
        use UploaderKind::*;
        let session_a = format!("AWS:{ROLE}:{A}");
        let lookalike_a = format!("AWS:AROAOTHERROLE9:{A}");
        let (bare_a, alice) = (format!("{ROLE}:{A}"), format!("AWS:{ROLE}:alice"));
        let pin = format!("instance,role/{ROLE}");
        let pin_only = format!("instance-only,role/{ROLE}");
        let old_b = KeyOwner {
            instance: B,
            role: None,
        };
        let old_a = KeyOwner {
            instance: A,
            role: None,
        };
        let new_a = KeyOwner {
            instance: A,
            role: Some(ROLE),
        };
        let new_a_other_role = KeyOwner {
            instance: A,
            role: Some("AROAOTHERROLE9"),
        };
        let fwd = |k| Some(Verdict::Forward(k));
        let cases: Vec<(&str, Option<&str>, KeyOwner, Option<Verdict>)> = vec![
            // An instance under its own key, both layouts, every mode.
            ("instance", Some(&session_a), old_a, fwd(Instance)),
            ("instance-only", Some(&session_a), new_a, fwd(Instance)),
            ("instance", Some(&bare_a), old_a, fwd(Instance)),
            // Under another's key: refused unless off.
            ("instance", Some(&session_a), old_b, None),
            ("instance-only", Some(&session_a), old_b, None),
            ("instance", Some(&session_a), new_a_other_role, None),
            ("off", Some(&session_a), old_b, fwd(Instance)),
            // Another principal: forwarded and counted, refused by instance-only.
            (
                "instance",
                Some("AWS:AIDAJ4W5SF5AANMKCKRVW"),
                old_b,
                fwd(Other),
            ),
            (
                "instance-only",
                Some("AWS:AIDAJ4W5SF5AANMKCKRVW"),
                old_b,
                None,
            ),
            ("instance", Some("A2QVTU9T5VMOU3"), old_b, fwd(Other)),
            ("instance", Some(&alice), old_b, fwd(Other)),
            ("instance", Some("AWS:AROAX:i-XYZ"), old_b, fwd(Other)),
            // No uploader.
            ("instance", None, old_b, fwd(Unknown)),
            ("instance", Some(""), old_b, fwd(Unknown)),
            ("instance-only", None, old_b, None),
            ("off", None, old_b, fwd(Unknown)),
            // Trusted principals may upload for any instance.
            (
                "instance-only,AIDAJ4W5SF5AANMKCKRVW",
                Some("AWS:AIDAJ4W5SF5AANMKCKRVW"),
                old_b,
                fwd(Trusted),
            ),
            (
                "instance-only,AROAOPS1",
                Some("AWS:AROAOPS1:bob"),
                old_b,
                fwd(Trusted),
            ),
            (
                "instance-only,AROAOPS1:alice",
                Some("AWS:AROAOPS1:bob"),
                old_b,
                None,
            ),
            (
                "instance-only,AROAOPS1:alice",
                Some("AWS:AROAOPS1:alice"),
                old_b,
                fwd(Trusted),
            ),
            (
                "instance,AROAOPS1",
                Some("AWS:AROAOPS12:bob"),
                old_b,
                fwd(Other),
            ),
            // Pinned roles: a look-alike session is another principal.
            (&pin, Some(&lookalike_a), old_a, fwd(Other)),
            (&pin_only, Some(&lookalike_a), old_a, None),
            (&pin_only, Some(&session_a), old_a, fwd(Instance)),
            ("instance", Some(&lookalike_a), old_a, fwd(Instance)),
        ];
        for (mode, principal, owner, want) in cases {
            let got = check_uploader(principal, owner, &check(mode));
            match want {
                Some(v) => assert_eq!(got, v, "{mode} {principal:?} {owner:?}"),
                None => assert!(
                    matches!(got, Verdict::Untrusted { .. }),
                    "{mode} {principal:?} {owner:?}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn an_untrusted_upload_names_both_instances() {
        let principal = format!("AWS:{ROLE}:{A}");
        let owner = KeyOwner {
            instance: B,
            role: None,
        };
        let Verdict::Untrusted {
            reason,
            uploader_instance,
        } = check_uploader(Some(&principal), owner, &check("instance"))
        else {
            panic!("refused")
        };
        assert_eq!(uploader_instance.as_deref(), Some(A));
        assert!(
            reason.contains(A) && reason.contains(B) && reason.contains(&principal),
            "{reason}"
        );
    }

    #[test]
    fn messages_not_to_act_on() {
        let settings = TrustSettings {
            buckets: vec!["logs".into(), "logs-2".into()],
            account: Some("111122223333".into()),
            ..TrustSettings::default()
        };
        let obj = |bucket: &str, account: Option<&str>, requester: Option<&str>| ObjectRef {
            provenance: Provenance {
                principal: None,
                account: account.map(str::to_string),
                requester: requester.map(str::to_string),
            },
            ..ObjectRef::new(bucket, "nginx/i-0aaaaaaa/access/x")
        };
        let cases = [
            (obj("logs", None, None), None),
            (
                obj("logs-2", Some("111122223333"), Some("111122223333")),
                None,
            ),
            (
                obj("logs", Some("111122223333"), Some("s3.amazonaws.com")),
                None,
            ),
            (obj("evil", None, None), Some(Refusal::OtherBucket)),
            (
                obj("logs", Some("999988887777"), None),
                Some(Refusal::OtherAccount),
            ),
            (
                obj("logs", Some("111122223333"), Some("999988887777")),
                Some(Refusal::OtherAccount),
            ),
        ];
        for (o, want) in cases {
            assert_eq!(refuse_message(&o, &settings).map(|(r, _)| r), want, "{o:?}");
        }
        // Unset settings check nothing but the requester against the event's own account.
        let open = TrustSettings::default();
        assert_eq!(
            refuse_message(&obj("evil", Some("999988887777"), None), &open),
            None
        );
        let (r, reason) = refuse_message(
            &obj("logs", Some("111122223333"), Some("999988887777")),
            &open,
        )
        .unwrap();
        assert_eq!(r, Refusal::OtherAccount);
        assert!(reason.contains("999988887777"), "{reason}");
        let off = TrustSettings {
            uploaders: check("off"),
            ..TrustSettings::default()
        };
        assert_eq!(
            refuse_message(
                &obj("logs", Some("111122223333"), Some("999988887777")),
                &off
            ),
            None
        );
        let (_, reason) = refuse_message(&obj("evil", None, None), &settings).unwrap();
        assert!(
            reason.contains("\"evil\"") && reason.contains("logs,logs-2"),
            "{reason}"
        );
    }

    #[test]
    fn test_events_s3_did_not_send_are_refused() {
        let settings = TrustSettings {
            buckets: vec!["logs".into()],
            ..TrustSettings::default()
        };
        let event = |bucket: &str, with_records| TestEvent {
            at: "SQS message m-1: ".into(),
            bucket: Some(bucket.into()),
            message_id: Some("m-1".into()),
            with_records,
        };
        assert_eq!(
            check_test_event(&event("logs", false), &settings),
            Ok("SQS message m-1: s3:TestEvent".into())
        );
        let e = check_test_event(&event("evil", false), &settings).unwrap_err();
        assert!(
            e.contains("\"evil\"") && e.starts_with("SQS message m-1: "),
            "{e}"
        );
        assert!(check_test_event(&event("logs", true), &settings).is_err());
        assert!(check_test_event(&event("evil", false), &TrustSettings::default()).is_ok());
    }
}
