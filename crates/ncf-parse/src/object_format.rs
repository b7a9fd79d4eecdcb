//! The `log_format` an object names: its `ncf-log-format` metadata holds the key of a *format
//! object* in the same bucket, `<prefix><instance-id>/formats/<sha256 of the body>`, whose body
//! is the format as `ACCESS_LOG_FORMAT` takes it (`escape=json '…'`). The name is the content's
//! hash, so a format object never changes: it is checked against its body here, and a
//! compiled format can be kept for as long as the process lives.

use sha2::Digest;

use super::{FieldNames, FormatError, LogFormat};

/// The object metadata (`x-amz-meta-ncf-log-format`) the follower writes: the key of the
/// format object of the `log_format` that wrote the object, percent-encoded (every byte outside
/// `!`..`~`, and `%` itself, as `%XX`).
pub const META_LOG_FORMAT: &str = "ncf-log-format";

/// The object metadata (`x-amz-meta-ncf-log-formats`) of an object whose lines may be in more
/// than one format: the keys of their format objects, space-separated, each percent-encoded as
/// [`META_LOG_FORMAT`]'s value is. Written instead of (never beside) [`META_LOG_FORMAT`].
pub const META_LOG_FORMATS: &str = "ncf-log-formats";

/// The object metadata (`x-amz-meta-ncf-parts`) that says which formats each run of lines may be
/// in: space-separated parts in body order, `<bytes>:<candidates>`, where `<bytes>` counts
/// uncompressed bytes (whole lines) and `<candidates>` is `.`-separated 0-based indexes into
/// [`META_LOG_FORMATS`] in preference order, `-` standing for the deployment's
/// `ACCESS_LOG_FORMAT`. Without it every line takes every format of [`META_LOG_FORMATS`], in
/// order.
pub const META_PARTS: &str = "ncf-parts";

/// The most formats one object may name in [`META_LOG_FORMATS`]. S3 user metadata is 2 KB in
/// all (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html>) and a format
/// key runs to about 100 bytes; the follower splits its objects beyond this.
pub const MAX_OBJECT_FORMATS: usize = 8;

/// The folder a format object lies in, under its host's prefix.
pub const FORMATS_DIR: &str = "formats";

/// The length of a SHA-256 digest in lower-case hex: a format object's name.
pub const HASH_HEX_LEN: usize = 64;

/// The largest format object read: a `log_format` is a line of configuration (nginx's own
/// limit on one is its 4 KiB configuration buffer per token, and a format is rarely longer
/// than a few hundred bytes); anything larger is not one.
pub const MAX_FORMAT_OBJECT_BYTES: u64 = 64 * 1024;

/// Why an object's format cannot be used.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ObjectFormatError {
    #[error("its {META_LOG_FORMAT} metadata {0:?} is not percent-encoded UTF-8")]
    BadMetadata(String),
    #[error(
        "its {META_LOG_FORMAT} metadata names {0:?}, which is not a format object key (…/{FORMATS_DIR}/ and {HASH_HEX_LEN} lower-case hex digits)"
    )]
    NotAFormatKey(String),
    #[error("the format object {key:?} is larger than {MAX_FORMAT_OBJECT_BYTES} bytes")]
    TooLarge { key: String },
    #[error(
        "the format object {key:?} does not hold what its name says: its body's SHA-256 is {actual}"
    )]
    HashMismatch { key: String, actual: String },
    #[error("the format object {key:?} is not UTF-8 text")]
    NotText { key: String },
    #[error("the format object {key:?} does not compile: {reason}")]
    DoesNotCompile { key: String, reason: FormatError },
    #[error(
        "the format object {key:?} has the key {name:?}, which EXTRA_FIELDS adds to every message"
    )]
    KeyTaken { key: String, name: String },
    #[error(
        "its {META_LOG_FORMATS} metadata names {0} formats; at most {MAX_OBJECT_FORMATS} are read"
    )]
    TooManyFormats(usize),
    #[error("its {META_PARTS} metadata {value:?} is not `<bytes>:<candidates>` parts: {why}")]
    BadParts { value: String, why: String },
}

/// Which format a line may be in: one of the object's ([`META_LOG_FORMATS`], by index), or the
/// deployment's `ACCESS_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    Named(usize),
    Default,
}

/// A run of lines and the formats they may be in, in preference order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Where the part ends: the offset (in the uncompressed body) just after its last byte.
    pub end: u64,
    pub candidates: Vec<Candidate>,
}

/// The format-object keys an `ncf-log-formats` value names, in order.
pub fn decode_formats(value: &str) -> Result<Vec<String>, ObjectFormatError> {
    let keys = value
        .split(' ')
        .filter(|k| !k.is_empty())
        .map(decode_meta)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.len() > MAX_OBJECT_FORMATS {
        return Err(ObjectFormatError::TooManyFormats(keys.len()));
    }
    if keys.is_empty() {
        return Err(ObjectFormatError::NotAFormatKey(value.to_string()));
    }
    Ok(keys)
}

/// The parts an `ncf-parts` value describes, for an object that names `formats` formats: each
/// candidate must be one of them (or `-`), each part at least one byte and one candidate.
pub fn decode_parts(value: &str, formats: usize) -> Result<Vec<Part>, ObjectFormatError> {
    let bad = |why: String| ObjectFormatError::BadParts {
        value: value.to_string(),
        why,
    };
    let mut parts = Vec::new();
    let mut end: u64 = 0;
    for part in value.split(' ').filter(|p| !p.is_empty()) {
        let (bytes, candidates) = part
            .split_once(':')
            .ok_or_else(|| bad(format!("{part:?} has no `:`")))?;
        let bytes: u64 = bytes
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(format!("{bytes:?} is not a byte count")))?;
        let candidates = candidates
            .split('.')
            .map(|c| match c {
                "-" => Ok(Candidate::Default),
                _ => c
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < formats)
                    .map(Candidate::Named)
                    .ok_or_else(|| bad(format!("{c:?} is not one of its {formats} formats"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        end = end
            .checked_add(bytes)
            .ok_or_else(|| bad("the lengths overflow".into()))?;
        parts.push(Part { end, candidates });
    }
    if parts.is_empty() {
        return Err(bad("no part".into()));
    }
    Ok(parts)
}

/// The candidates of the line at `offset`: its part's, or, past the last part (the metadata
/// does not cover the body) and without parts, every named format in order, then the default.
pub fn candidates_at(parts: &[Part], formats: usize, offset: u64) -> Vec<Candidate> {
    let i = parts.partition_point(|p| p.end <= offset);
    match parts.get(i) {
        Some(p) => p.candidates.clone(),
        None => (0..formats)
            .map(Candidate::Named)
            .chain([Candidate::Default])
            .collect(),
    }
}

/// The format-object key an object's `ncf-log-format` metadata value names (percent-decoded).
pub fn decode_meta(value: &str) -> Result<String, ObjectFormatError> {
    let key = percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map_err(|_| ObjectFormatError::BadMetadata(value.to_string()))?;
    if hash_of_key(&key).is_none() {
        return Err(ObjectFormatError::NotAFormatKey(key.into_owned()));
    }
    Ok(key.into_owned())
}

/// The content hash a format object's key names: its last component, when the last two are
/// `formats/<64 lower-case hex digits>`; `None` for any other key.
pub fn hash_of_key(key: &str) -> Option<&str> {
    let (rest, hash) = key.rsplit_once('/')?;
    let dir = rest.rsplit('/').next()?;
    let hex = hash.len() == HASH_HEX_LEN
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (dir == FORMATS_DIR && hex).then_some(hash)
}

/// Whether `key` is a format object's (never a log: skipped when announced).
pub fn is_format_key(key: &str) -> bool {
    hash_of_key(key).is_some()
}

/// Where the format object of `format` (its text as `ACCESS_LOG_FORMAT` takes it) goes for the
/// host `instance_id` under `prefix` (empty or ending in `/`):
/// `<prefix><instance-id>/formats/<sha256 of the text>`; under the shippers' `userid` key
/// layout `instance_id` is `<role-id>:<instance-id>`, the host's `aws:userid`.
pub fn format_object_key(prefix: &str, instance_id: &str, format: &str) -> String {
    format!(
        "{prefix}{instance_id}/{FORMATS_DIR}/{}",
        sha256_hex(format.as_bytes())
    )
}

/// SHA-256 of `body`, in lower-case hex.
pub fn sha256_hex(body: &[u8]) -> String {
    sha2::Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The format object `key`'s `body`, checked against the hash its key names and compiled with
/// the deployment's field `names`; none of its keys may be one of `extra` (`EXTRA_FIELDS`).
pub fn compile(
    key: &str,
    body: &[u8],
    names: FieldNames,
    extra: &[&str],
) -> Result<LogFormat, ObjectFormatError> {
    let Some(expected) = hash_of_key(key) else {
        return Err(ObjectFormatError::NotAFormatKey(key.to_string()));
    };
    if u64::try_from(body.len()).map_or(true, |n| n > MAX_FORMAT_OBJECT_BYTES) {
        return Err(ObjectFormatError::TooLarge { key: key.into() });
    }
    let actual = sha256_hex(body);
    if actual != expected {
        return Err(ObjectFormatError::HashMismatch {
            key: key.into(),
            actual,
        });
    }
    let text =
        std::str::from_utf8(body).map_err(|_| ObjectFormatError::NotText { key: key.into() })?;
    let format = LogFormat::parse_config(text)
        .map_err(|reason| ObjectFormatError::DoesNotCompile {
            key: key.into(),
            reason,
        })?
        .with_names(names);
    let keys = format
        .vars()
        .iter()
        .map(|v| &v.key)
        .chain(format.derived_keys())
        .chain([format.tail_key()])
        .map(|k| k.name());
    for name in keys {
        if extra.contains(&name) {
            return Err(ObjectFormatError::KeyTaken {
                key: key.into(),
                name: name.to_string(),
            });
        }
    }
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: &str =
        "'$remote_addr [$time_local] \"$request\" $status $request_time $upstream_response_time'";

    fn key_for(body: &str) -> String {
        format_object_key("nginx/", "i-0123456789abcdef0", body)
    }

    #[test]
    fn sha256_is_the_standard_one() {
        // FIPS 180-2's "abc" example.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn format_keys() {
        let hash = sha256_hex(b"x");
        let rows: [(&str, bool); 12] = [
            (&format!("nginx/i-0123456789abcdef0/formats/{hash}"), true),
            // The userid key layout: `<prefix><role-id>:<instance-id>/formats/<sha256>`.
            (
                &format!("nginx/AROA3XFRBF535EXAMPLE1:i-0123456789abcdef0/formats/{hash}"),
                true,
            ),
            (&format!("AROAX:i-01234567/formats/{hash}"), true),
            (
                &format!("nginx/AROAX:i-0123456789abcdef0/formats/{hash}:"),
                false,
            ),
            (&format!("formats/{hash}"), true),
            (&format!("a/b/c/formats/{hash}"), true),
            (&format!("nginx/i-0123/format/{hash}"), false),
            (
                &format!("nginx/i-0123/formats/{}", hash.to_uppercase()),
                false,
            ),
            (&format!("nginx/i-0123/formats/{}", &hash[1..]), false),
            (&format!("nginx/i-0123/formats/{hash}0"), false),
            (&format!("nginx/i-0123/formats/{hash}/"), false),
            ("nginx/i-0123456789abcdef0/access/formats", false),
        ];
        for (key, is) in rows {
            assert_eq!(is_format_key(key), is, "{key}");
        }
        assert_eq!(
            hash_of_key(&format!("p/formats/{hash}")),
            Some(hash.as_str())
        );
        let key = format_object_key("nginx/", "i-0123456789abcdef0", "x");
        assert_eq!(key, format!("nginx/i-0123456789abcdef0/formats/{hash}"));
        assert!(is_format_key(&key));
        let key = format_object_key("nginx/", "AROAX:i-0123456789abcdef0", "x");
        assert_eq!(
            key,
            format!("nginx/AROAX:i-0123456789abcdef0/formats/{hash}")
        );
        assert!(is_format_key(&key));
    }

    #[test]
    fn metadata_is_percent_decoded() {
        let hash = sha256_hex(b"x");
        // What the follower's meta_value writes for a prefix with a space and a non-ASCII letter.
        let encoded = format!("logs%20d%C3%A9j%C3%A0/i-0123456789abcdef0/formats/{hash}");
        assert_eq!(
            decode_meta(&encoded),
            Ok(format!("logs déjà/i-0123456789abcdef0/formats/{hash}"))
        );
        assert_eq!(
            decode_meta(&format!("100%25/formats/{hash}")),
            Ok(format!("100%/formats/{hash}"))
        );
        assert_eq!(
            decode_meta("a%FF/formats/x"),
            Err(ObjectFormatError::BadMetadata("a%FF/formats/x".into()))
        );
        assert_eq!(
            decode_meta("nginx/i-0123456789abcdef0/access/x.log"),
            Err(ObjectFormatError::NotAFormatKey(
                "nginx/i-0123456789abcdef0/access/x.log".into()
            ))
        );
    }

    #[test]
    fn several_formats_and_their_parts() {
        let a = key_for("'$status'");
        let b = key_for("'$status $request_time'");
        assert_eq!(decode_formats(&format!("{a} {b}")), Ok(vec![a.clone(), b]));
        let nine = [a.as_str(); MAX_OBJECT_FORMATS + 1].join(" ");
        assert_eq!(
            decode_formats(&nine),
            Err(ObjectFormatError::TooManyFormats(MAX_OBJECT_FORMATS + 1))
        );
        assert!(decode_formats(" ").is_err());
        assert!(decode_formats(&format!("{a} x/y")).is_err());

        use Candidate::{Default as D, Named as N};
        let parts = decode_parts("100:1.0 20:- 5:0.-", 2).unwrap();
        assert_eq!(
            parts,
            vec![
                Part {
                    end: 100,
                    candidates: vec![N(1), N(0)]
                },
                Part {
                    end: 120,
                    candidates: vec![D]
                },
                Part {
                    end: 125,
                    candidates: vec![N(0), D]
                },
            ]
        );
        let rows: [(u64, &[Candidate]); 6] = [
            (0, &[N(1), N(0)]),
            (99, &[N(1), N(0)]),
            (100, &[D]),
            (119, &[D]),
            (124, &[N(0), D]),
            // Past the parts: every format, then the default.
            (125, &[N(0), N(1), D]),
        ];
        for (offset, want) in rows {
            assert_eq!(candidates_at(&parts, 2, offset), want, "{offset}");
        }
        for bad in [
            "", "100", "x:0", "0:0", "10:2", "10:0..1", "10:", "10:0 5:a",
        ] {
            assert!(decode_parts(bad, 2).is_err(), "{bad:?}");
        }
        assert!(decode_parts("18446744073709551615:0 1:0", 1).is_err());
    }

    #[test]
    fn a_format_object_compiles_when_its_name_is_its_hash() {
        let key = key_for(TIMING);
        let f = compile(&key, TIMING.as_bytes(), FieldNames::Nginx, &[]).unwrap();
        assert_eq!(f, LogFormat::parse_config(TIMING).unwrap());
        let json = "escape=json '{\"status\":\"$status\",\"uri\":\"$request_uri\"}'";
        let f = compile(&key_for(json), json.as_bytes(), FieldNames::Fluentd, &[]).unwrap();
        assert_eq!(
            f,
            LogFormat::parse_config(json)
                .unwrap()
                .with_names(FieldNames::Fluentd)
        );
    }

    #[test]
    fn a_format_object_that_is_not_what_its_name_says_is_refused() {
        let key = key_for(TIMING);
        let other = "'$remote_addr $status'";
        assert_eq!(
            compile(&key, other.as_bytes(), FieldNames::Nginx, &[]),
            Err(ObjectFormatError::HashMismatch {
                key: key.clone(),
                actual: sha256_hex(other.as_bytes())
            })
        );
        let big = vec![b'a'; usize::try_from(MAX_FORMAT_OBJECT_BYTES).unwrap() + 1];
        let big_key = format!("p/formats/{}", sha256_hex(&big));
        assert_eq!(
            compile(&big_key, &big, FieldNames::Nginx, &[]),
            Err(ObjectFormatError::TooLarge { key: big_key })
        );
        let bad = "'$remote_addr";
        assert_eq!(
            compile(&key_for(bad), bad.as_bytes(), FieldNames::Nginx, &[]),
            Err(ObjectFormatError::DoesNotCompile {
                key: key_for(bad),
                reason: FormatError::Unterminated
            })
        );
        let latin1 = b"'$status \xe9'";
        let latin1_key = format!("p/formats/{}", sha256_hex(latin1));
        assert_eq!(
            compile(&latin1_key, latin1, FieldNames::Nginx, &[]),
            Err(ObjectFormatError::NotText { key: latin1_key })
        );
        assert_eq!(
            compile(
                &key,
                TIMING.as_bytes(),
                FieldNames::Nginx,
                &["region", "status"]
            ),
            Err(ObjectFormatError::KeyTaken {
                key,
                name: "status".into()
            })
        );
    }
}
