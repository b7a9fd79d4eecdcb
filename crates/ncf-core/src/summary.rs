//! Per-object outcomes and the per-invocation summary (printed by `replay`, logged once per
//! invocation by the Lambda).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ports::RejectedCounts;
use crate::trust::{Refusal, UploaderKind};

/// Counters for one object, or summed over an invocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Lines read (blank ones included).
    pub lines: u64,
    pub blank_lines: u64,
    /// Decompressed bytes read.
    pub bytes: u64,
    /// Events sent (an event is one line, or several for an error-log entry with continuations).
    pub events: u64,
    /// What CloudWatch Logs bills as ingested for the events it stored: UTF-8 message bytes + 26
    /// per event (rejected events are not counted).
    pub ingested_bytes: u64,
    /// Events forwarded raw because they did not parse.
    pub parse_errors: u64,
    /// Events dropped by a `FILTER_RULES` rule (without `keep`).
    pub dropped: u64,
    /// Events left out by a rule's sample (`keep`).
    pub sampled_out: u64,
    /// PutLogEvents calls that succeeded.
    pub batches: u64,
    pub rejected_too_old: u64,
    pub rejected_too_new: u64,
    pub rejected_expired: u64,
    /// Batches whose entity (`ENTITY`) CloudWatch did not take; their events were stored.
    pub entity_rejected: u64,
    /// PutLogEvents calls sent without an answer (timeout, reset or dropped connection): what
    /// CloudWatch stored was read back before anything was sent again.
    pub ambiguous_puts: u64,
    /// Of those, the checks that found events missing and sent them again.
    pub resent_after_check: u64,
    /// Deliveries that found another delivery forwarding the same object and waited for it
    /// (`LEASE_PREFIX`).
    pub lease_waits: u64,
    /// Expired leases taken over: their holder stopped without releasing them (it crashed or
    /// timed out); the object resumed from its progress record.
    pub lease_takeovers: u64,
    /// After a takeover: events the expired lease's holder had stored beyond its progress
    /// record, found by reading the stream back and not sent again.
    pub found_after_takeover: u64,
    /// NUL bytes removed from lines.
    pub nul_bytes_stripped: u64,
    /// Objects whose content did not look like text (forwarded lossily, or skipped with
    /// SKIP_BINARY=true).
    pub binary_objects: u64,
    /// Access lines of an object that names several formats (`ncf-log-formats`) parsed with a
    /// format other than their first candidate: written before nginx reloaded a changed format.
    #[serde(skip_serializing_if = "is_zero")]
    pub format_fallbacks: u64,
    /// Access lines that more than one of their candidate formats matched: parsed with the first
    /// (the newest), which may not be the one that wrote them.
    #[serde(skip_serializing_if = "is_zero")]
    pub format_ambiguous: u64,
    /// Events sent that some redaction rule changed (`ANONYMIZE_IP`, `REDACT_*`); by rule in
    /// `redacted_by_rule`.
    #[serde(skip_serializing_if = "is_zero")]
    pub lines_redacted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.lines += o.lines;
        self.blank_lines += o.blank_lines;
        self.bytes += o.bytes;
        self.events += o.events;
        self.ingested_bytes += o.ingested_bytes;
        self.parse_errors += o.parse_errors;
        self.dropped += o.dropped;
        self.sampled_out += o.sampled_out;
        self.batches += o.batches;
        self.rejected_too_old += o.rejected_too_old;
        self.rejected_too_new += o.rejected_too_new;
        self.rejected_expired += o.rejected_expired;
        self.entity_rejected += o.entity_rejected;
        self.ambiguous_puts += o.ambiguous_puts;
        self.resent_after_check += o.resent_after_check;
        self.lease_waits += o.lease_waits;
        self.lease_takeovers += o.lease_takeovers;
        self.found_after_takeover += o.found_after_takeover;
        self.nul_bytes_stripped += o.nul_bytes_stripped;
        self.binary_objects += o.binary_objects;
        self.format_fallbacks += o.format_fallbacks;
        self.format_ambiguous += o.format_ambiguous;
        self.lines_redacted += o.lines_redacted;
    }

    pub fn add_rejected(&mut self, r: RejectedCounts) {
        self.rejected_too_old += r.too_old;
        self.rejected_too_new += r.too_new;
        self.rejected_expired += r.expired;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Delivered {
        log_group: String,
        log_stream: String,
    },
    Skipped {
        reason: String,
    },
    /// An earlier delivery of this object version sent every line (progress record).
    AlreadyDelivered,
    Failed {
        error: String,
    },
    /// Not acted on: the message names another bucket or account, or a key that does not
    /// route. Nothing was read.
    Refused {
        refusal: Refusal,
        reason: String,
    },
    /// Uploaded by an instance under another instance's key (or by an uploader
    /// `UPLOADER_CHECK` does not allow): nothing of it was read or sent. The object stays in S3.
    Untrusted {
        reason: String,
        /// The instance the key routes to.
        key_instance: String,
        /// The uploader's instance, when an instance session uploaded it.
        #[serde(skip_serializing_if = "Option::is_none")]
        uploader_instance: Option<String>,
    },
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectReport {
    pub bucket: String,
    pub key: String,
    /// The SQS message that announced the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(flatten)]
    pub counters: Counters,
    /// Set when this delivery continued where an earlier one stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from_line: Option<u64>,
    /// Set when progress could not be read or recorded (this object was sent at-least-once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_error: Option<String>,
    /// Set when no lease could be taken (the object was forwarded without exclusion: a
    /// delivery racing this one may have sent it too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_error: Option<String>,
    /// Events `FILTER_RULES` took (dropped or sampled out), by rule name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub filtered_by_rule: BTreeMap<String, u64>,
    /// Events sent that each redaction rule changed, by rule name (`ip`, `query`,
    /// `pattern:NAME`, `field:KEY`): an event changed by two rules counts for both.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub redacted_by_rule: BTreeMap<String, u64>,
    /// The format object whose `log_format` the access lines were parsed with (the object's
    /// `ncf-log-format` metadata, or the first of its `ncf-log-formats`); absent:
    /// `ACCESS_LOG_FORMAT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// Every format object the object names when it names more than one (`ncf-log-formats`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log_formats: Vec<String>,
    /// Who uploaded it, as the trigger says (`userIdentity.principalId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploader: Option<String>,
    /// What kind of uploader that is (`None`: not checked, as for a backfill's listing).
    #[serde(skip)]
    pub uploader_kind: Option<UploaderKind>,
}

impl ObjectReport {
    /// The report of `obj` before anything happened to it: `outcome`, nothing counted.
    pub fn new(obj: &crate::object::ObjectRef, outcome: Outcome) -> Self {
        Self {
            bucket: obj.bucket.clone(),
            key: obj.key.clone(),
            message_id: obj.message_id.clone(),
            outcome,
            counters: Counters::default(),
            resumed_from_line: None,
            checkpoint_error: None,
            lease_error: None,
            filtered_by_rule: BTreeMap::new(),
            redacted_by_rule: BTreeMap::new(),
            log_format: None,
            log_formats: Vec::new(),
            uploader: obj.provenance.principal.clone(),
            uploader_kind: None,
        }
    }
}

/// What the checks of who uploaded and which messages are acted on found, in one invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrustCounts {
    /// Objects an instance uploaded under another instance's key (or whose uploader
    /// `UPLOADER_CHECK` does not allow): not forwarded.
    pub objects_untrusted: u64,
    /// Objects delivered that a principal other than an instance session uploaded.
    pub objects_uploader_other: u64,
    /// Objects delivered whose trigger does not say who uploaded them.
    pub objects_uploader_unknown: u64,
    /// Records not acted on, whatever the reason (the four below).
    pub records_refused: u64,
    pub refused_other_bucket: u64,
    pub refused_outside_key_pattern: u64,
    pub refused_forged_test_event: u64,
    pub refused_other_account: u64,
    /// Each refused record, with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<String>,
}

impl TrustCounts {
    /// Counts one refused record.
    pub fn refuse(&mut self, refusal: Refusal, reason: String) {
        self.records_refused += 1;
        *match refusal {
            Refusal::OtherBucket => &mut self.refused_other_bucket,
            Refusal::OutsideKeyPattern => &mut self.refused_outside_key_pattern,
            Refusal::ForgedTestEvent => &mut self.refused_forged_test_event,
            Refusal::OtherAccount => &mut self.refused_other_account,
        } += 1;
        self.refusals.push(reason);
    }

    fn add(&mut self, o: TrustCounts) {
        self.objects_untrusted += o.objects_untrusted;
        self.objects_uploader_other += o.objects_uploader_other;
        self.objects_uploader_unknown += o.objects_uploader_unknown;
        self.records_refused += o.records_refused;
        self.refused_other_bucket += o.refused_other_bucket;
        self.refused_outside_key_pattern += o.refused_outside_key_pattern;
        self.refused_forged_test_event += o.refused_forged_test_event;
        self.refused_other_account += o.refused_other_account;
        self.refusals.extend(o.refusals);
    }
}

pub const EXACTLY_ONCE: &str = "exactly-once";
pub const AT_LEAST_ONCE: &str = "at-least-once";

/// One invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub objects_delivered: u64,
    pub objects_skipped: u64,
    /// Objects skipped because an earlier delivery sent them completely.
    pub already_delivered: u64,
    pub objects_failed: u64,
    /// `exactly-once`, or `at-least-once` when progress could not be read or recorded for some
    /// object (then it may have been sent again; see each object's `checkpoint_error`).
    pub delivery: &'static str,
    /// Records acknowledged and ignored (test events, deletions), with the reason.
    pub records_ignored: Vec<String>,
    /// Records that could not be understood (they count as failures).
    pub records_invalid: Vec<String>,
    /// Who uploaded, and the records not acted on.
    #[serde(flatten)]
    pub trust: TrustCounts,
    /// SQS message IDs to retry (`batchItemFailures`): messages with a failed object or that
    /// could not be understood.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_messages: Vec<String>,
    /// The payload was an SQS batch: Lambda gets `batchItemFailures`, not an error.
    #[serde(skip)]
    pub from_sqs: bool,
    #[serde(flatten)]
    pub totals: Counters,
    /// Events `FILTER_RULES` took (dropped or sampled out), by rule name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub filtered_by_rule: BTreeMap<String, u64>,
    /// Events sent that each redaction rule changed, by rule name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub redacted_by_rule: BTreeMap<String, u64>,
    pub duration_ms: u64,
    pub objects: Vec<ObjectReport>,
}

impl Summary {
    /// No object yet, delivery `exactly-once` until an object says otherwise.
    pub fn new() -> Self {
        Self {
            delivery: EXACTLY_ONCE,
            ..Self::default()
        }
    }

    pub fn push(&mut self, r: ObjectReport) {
        match &r.outcome {
            Outcome::Delivered { .. } => self.objects_delivered += 1,
            Outcome::Skipped { .. } => self.objects_skipped += 1,
            Outcome::AlreadyDelivered => self.already_delivered += 1,
            Outcome::Failed { .. } => self.objects_failed += 1,
            Outcome::Refused { refusal, reason } => self.trust.refuse(
                *refusal,
                format!("s3://{}/{}: {reason}", r.bucket, r.key.escape_debug()),
            ),
            Outcome::Untrusted { .. } => self.trust.objects_untrusted += 1,
        }
        if matches!(r.outcome, Outcome::Delivered { .. }) {
            match r.uploader_kind {
                Some(UploaderKind::Other) => self.trust.objects_uploader_other += 1,
                Some(UploaderKind::Unknown) => self.trust.objects_uploader_unknown += 1,
                _ => {}
            }
        }
        self.totals.add(&r.counters);
        for (rule, n) in &r.filtered_by_rule {
            *self.filtered_by_rule.entry(rule.clone()).or_default() += n;
        }
        for (rule, n) in &r.redacted_by_rule {
            *self.redacted_by_rule.entry(rule.clone()).or_default() += n;
        }
        if r.checkpoint_error.is_some() || r.lease_error.is_some() {
            self.delivery = AT_LEAST_ONCE;
        }
        self.objects.push(r);
    }

    /// Adds another run's summary to this one (`replay --queue` runs the handler once per
    /// batch of messages and reports them as one).
    pub fn absorb(&mut self, other: Summary) {
        self.records_ignored.extend(other.records_ignored);
        self.records_invalid.extend(other.records_invalid);
        for id in other.failed_messages {
            if !self.failed_messages.contains(&id) {
                self.failed_messages.push(id);
            }
        }
        self.duration_ms += other.duration_ms;
        // `other`'s counts include refusals that are not objects (test events): add them as
        // they are, not again from the objects.
        let mut trust = std::mem::take(&mut self.trust);
        for r in other.objects {
            self.push(r);
        }
        trust.add(other.trust);
        self.trust = trust;
        if other.delivery == AT_LEAST_ONCE {
            self.delivery = AT_LEAST_ONCE;
        }
    }

    /// True when a retry of this invocation could achieve more (something failed).
    pub fn has_failures(&self) -> bool {
        self.objects_failed > 0 || !self.records_invalid.is_empty()
    }

    /// A one-line description of what failed, for the error returned to Lambda.
    pub fn failure_text(&self) -> String {
        let mut parts: Vec<String> = self
            .objects
            .iter()
            .filter_map(|o| match &o.outcome {
                Outcome::Failed { error } => Some(error.clone()),
                _ => None,
            })
            .collect();
        parts.extend(self.records_invalid.iter().cloned());
        format!(
            "{} of {} objects failed: {}",
            parts.len(),
            self.objects.len() + self.records_invalid.len(),
            parts.join("; ")
        )
    }
}

/// The CloudWatch namespace of the forwarder's metrics.
pub const METRICS_NAMESPACE: &str = "NginxCloudWatchForwarder";

/// Counters published as metrics, with their CloudWatch unit.
const METRICS: [(&str, &str); 34] = [
    ("objects_delivered", "Count"),
    ("objects_skipped", "Count"),
    ("already_delivered", "Count"),
    ("objects_failed", "Count"),
    ("lines", "Count"),
    ("bytes", "Bytes"),
    ("events", "Count"),
    ("ingested_bytes", "Bytes"),
    ("batches", "Count"),
    ("parse_errors", "Count"),
    ("format_fallbacks", "Count"),
    ("format_ambiguous", "Count"),
    ("dropped", "Count"),
    ("sampled_out", "Count"),
    ("lines_redacted", "Count"),
    ("rejected_too_old", "Count"),
    ("rejected_too_new", "Count"),
    ("rejected_expired", "Count"),
    ("rejected", "Count"),
    ("entity_rejected", "Count"),
    ("ambiguous_puts", "Count"),
    ("resent_after_check", "Count"),
    ("lease_waits", "Count"),
    ("lease_takeovers", "Count"),
    ("found_after_takeover", "Count"),
    ("objects_untrusted", "Count"),
    ("objects_uploader_other", "Count"),
    ("objects_uploader_unknown", "Count"),
    ("records_refused", "Count"),
    ("refused_other_bucket", "Count"),
    ("refused_outside_key_pattern", "Count"),
    ("refused_forged_test_event", "Count"),
    ("refused_other_account", "Count"),
    ("duration_ms", "Milliseconds"),
];

impl Summary {
    /// The summary as one JSON log line in CloudWatch Embedded Metric Format: its counters at
    /// the top level (Logs Insights can query them) and declared as metrics under
    /// [`METRICS_NAMESPACE`], dimension `FunctionName`. No PutMetricData call is needed.
    /// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>
    pub fn emf_line(&self, function_name: &str, now_ms: i64) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let serde_json::Value::Object(fields) = &mut v {
            let t = &self.totals;
            let rejected = t.rejected_too_old + t.rejected_too_new + t.rejected_expired;
            fields.insert("rejected".into(), rejected.into());
            // Left out of the summary when zero; a metric is sent every time.
            fields.insert("format_fallbacks".into(), t.format_fallbacks.into());
            fields.insert("format_ambiguous".into(), t.format_ambiguous.into());
            fields.insert("lines_redacted".into(), t.lines_redacted.into());
            fields.insert("level".into(), "INFO".into());
            fields.insert("message".into(), "invocation summary".into());
            fields.insert("FunctionName".into(), function_name.into());
            let metrics: Vec<serde_json::Value> = METRICS
                .iter()
                .map(|(name, unit)| serde_json::json!({"Name": name, "Unit": unit}))
                .collect();
            fields.insert(
                "_aws".into(),
                serde_json::json!({
                    "Timestamp": now_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": METRICS_NAMESPACE,
                        "Dimensions": [["FunctionName"]],
                        "Metrics": metrics,
                    }]
                }),
            );
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_once_when_summaries_are_combined() {
        let obj = crate::object::ObjectRef::new("evil", "k");
        let mut one = Summary::new();
        one.trust
            .refuse(Refusal::ForgedTestEvent, "s3:TestEvent for \"evil\"".into());
        one.push(ObjectReport::new(
            &obj,
            Outcome::Refused {
                refusal: Refusal::OtherBucket,
                reason: "bucket \"evil\"".into(),
            },
        ));
        let mut delivered = ObjectReport::new(
            &obj,
            Outcome::Delivered {
                log_group: "g".into(),
                log_stream: "s".into(),
            },
        );
        delivered.uploader_kind = Some(UploaderKind::Unknown);
        one.push(delivered);
        let mut all = Summary::new();
        all.absorb(one.clone());
        all.absorb(one);
        let t = &all.trust;
        assert_eq!(
            (
                t.records_refused,
                t.refused_forged_test_event,
                t.refused_other_bucket,
                t.objects_uploader_unknown,
                t.refusals.len()
            ),
            (4, 2, 2, 2, 4)
        );
        assert!(!all.has_failures());
    }

    #[test]
    fn emf_line_declares_every_metric_it_carries() {
        let mut s = Summary {
            delivery: EXACTLY_ONCE,
            ..Summary::default()
        };
        s.totals.rejected_too_old = 2;
        s.totals.rejected_too_new = 1;
        let v = s.emf_line("fwd", 1_795_514_401_000);
        let decl = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(decl["Namespace"], METRICS_NAMESPACE);
        assert_eq!(decl["Dimensions"], serde_json::json!([["FunctionName"]]));
        assert_eq!(v["FunctionName"], "fwd");
        assert_eq!(v["rejected"], 3);
        for m in decl["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(
                v[name].is_number(),
                "metric {name} has no numeric value in the line"
            );
        }
    }
}
