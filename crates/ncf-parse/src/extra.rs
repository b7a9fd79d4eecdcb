//! `EXTRA_FIELDS`: fields about an event's source, added to every JSON message of an object
//! (td-agent's `<record> instance_id ${instance_id}; hostname ${tagset_name} </record>`).
//!
//! Configured once as `name=template,name=template,…`; a template is literal text with
//! placeholders: `{group}`, a named group of `KEY_PATTERN`, and `{meta:name}`, the object's S3
//! user metadata `x-amz-meta-name` (percent-decoded: the shippers percent-encode what a header
//! cannot carry). Rendered once per object ([`ExtraFields::render`]); a field one of whose
//! placeholders has no value is left out, never written with the placeholder in it.

use super::json::{Key, ObjectWriter};
use std::borrow::BorrowMut;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Group(String),
    Meta(String),
}

/// The configured fields, compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraFields {
    fields: Vec<(String, Vec<Piece>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtraFieldsError {
    #[error("{0:?} is not name=template")]
    NotAPair(String),
    #[error("field name {0:?}: use letters, digits, `_`, `-`, `.` or `@`")]
    BadName(String),
    #[error("field {0:?} is named twice")]
    Twice(String),
    #[error("field {field:?}: unclosed or empty placeholder in {template:?}")]
    BadPlaceholder { field: String, template: String },
    #[error("field {field:?}: {{{group}}} is not a named group of KEY_PATTERN")]
    UnknownGroup { field: String, group: String },
    #[error("field {0:?} is also a field of the messages: name it differently")]
    Taken(String),
}

/// The rendered fields of one object: what every message of it gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra(Vec<(Key, String)>);

impl Extra {
    /// No fields.
    pub const NONE: Self = Self(Vec::new());

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends the fields to a message being written.
    pub fn write_to<B: BorrowMut<String>>(&self, w: &mut ObjectWriter<B>) {
        for (key, value) in &self.0 {
            w.str_field_at(key, value);
        }
    }
}

impl ExtraFields {
    /// Parses `name=template,…` (empty: no fields). `groups` are the named groups of
    /// `KEY_PATTERN`; `taken` the names messages already use (a field may not repeat one).
    pub fn parse(text: &str, groups: &[&str], taken: &[&str]) -> Result<Self, ExtraFieldsError> {
        let mut fields: Vec<(String, Vec<Piece>)> = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, template) = pair
                .split_once('=')
                .ok_or_else(|| ExtraFieldsError::NotAPair(pair.to_string()))?;
            let name = name.trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b))
            {
                return Err(ExtraFieldsError::BadName(name.to_string()));
            }
            if fields.iter().any(|(n, _)| n == name) {
                return Err(ExtraFieldsError::Twice(name.to_string()));
            }
            if taken.contains(&name) {
                return Err(ExtraFieldsError::Taken(name.to_string()));
            }
            let bad = || ExtraFieldsError::BadPlaceholder {
                field: name.to_string(),
                template: template.to_string(),
            };
            let mut pieces = Vec::new();
            let mut rest = template.trim();
            while !rest.is_empty() {
                match rest.find('{') {
                    Some(0) => {
                        let close = rest.find('}').ok_or_else(bad)?;
                        let inner = &rest[1..close];
                        let piece = match inner.strip_prefix("meta:") {
                            Some(m) if !m.is_empty() => Piece::Meta(m.to_ascii_lowercase()),
                            Some(_) => return Err(bad()),
                            None if inner.is_empty() || inner.contains('{') => return Err(bad()),
                            None if !groups.contains(&inner) => {
                                return Err(ExtraFieldsError::UnknownGroup {
                                    field: name.to_string(),
                                    group: inner.to_string(),
                                });
                            }
                            None => Piece::Group(inner.to_string()),
                        };
                        pieces.push(piece);
                        rest = &rest[close + 1..];
                    }
                    Some(i) => {
                        pieces.push(Piece::Lit(rest[..i].to_string()));
                        rest = &rest[i..];
                    }
                    None if rest.contains('}') => return Err(bad()),
                    None => {
                        pieces.push(Piece::Lit(rest.to_string()));
                        rest = "";
                    }
                }
            }
            fields.push((name.to_string(), pieces));
        }
        Ok(Self { fields })
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields' names (keys no access format may also have).
    pub fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The fields of one object: `group` gives a named group of its key's `KEY_PATTERN` match,
    /// `meta` its user metadata by lower-case name (as S3 returns it). A field with a
    /// placeholder that has no value (or an empty one) is left out.
    pub fn render<'a>(
        &self,
        group: impl Fn(&str) -> Option<&'a str>,
        meta: impl Fn(&str) -> Option<&'a str>,
    ) -> Extra {
        let mut out = Vec::with_capacity(self.fields.len());
        'field: for (name, pieces) in &self.fields {
            let mut value = String::new();
            for p in pieces {
                match p {
                    Piece::Lit(s) => value.push_str(s),
                    Piece::Group(g) => match group(g) {
                        Some(v) if !v.is_empty() => value.push_str(v),
                        _ => continue 'field,
                    },
                    Piece::Meta(m) => match meta(m) {
                        Some(v) if !v.is_empty() => value.push_str(&percent_decode(v)),
                        _ => continue 'field,
                    },
                }
            }
            out.push((Key::new(name), value));
        }
        Extra(out)
    }
}

/// `%XX` sequences decoded as bytes, the result read as UTF-8 (invalid sequences become
/// U+FFFD); a `%` not followed by two hex digits is kept.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUPS: &[&str] = &["instance_id", "log_type", "env"];

    fn render(spec: &str, meta: &[(&str, &str)]) -> Vec<(String, String)> {
        let fields = ExtraFields::parse(spec, GROUPS, &["status"]).unwrap();
        let extra = fields.render(
            |g| match g {
                "instance_id" => Some("i-0abc"),
                "env" => Some(""),
                _ => None,
            },
            |m| meta.iter().find(|(k, _)| *k == m).map(|(_, v)| *v),
        );
        let mut w = ObjectWriter::with_capacity(0);
        extra.write_to(&mut w);
        let v: serde_json::Value = serde_json::from_str(&w.finish()).unwrap();
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect()
    }

    #[test]
    fn placeholders_render_and_fields_without_a_value_are_left_out() {
        let got = render(
            "instance_id={instance_id}, hostname={meta:hostname},env={env},team=web-{meta:team},site=shop,v={meta:Nginx-Version}",
            &[
                ("hostname", "web%2001%20caf%C3%A9"),
                ("nginx-version", "1.22.1"),
            ],
        );
        assert_eq!(
            got,
            [
                ("instance_id", "i-0abc"),
                ("hostname", "web 01 café"),
                ("site", "shop"),
                ("v", "1.22.1"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert!(render("", &[]).is_empty());
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, want) in [
            ("hostname", ExtraFieldsError::NotAPair("hostname".into())),
            ("a b=x", ExtraFieldsError::BadName("a b".into())),
            ("a=x,a=y", ExtraFieldsError::Twice("a".into())),
            (
                "status={instance_id}",
                ExtraFieldsError::Taken("status".into()),
            ),
            (
                "a={nope}",
                ExtraFieldsError::UnknownGroup {
                    field: "a".into(),
                    group: "nope".into(),
                },
            ),
            (
                "a={meta:}",
                ExtraFieldsError::BadPlaceholder {
                    field: "a".into(),
                    template: "{meta:}".into(),
                },
            ),
            (
                "a=x{instance_id",
                ExtraFieldsError::BadPlaceholder {
                    field: "a".into(),
                    template: "x{instance_id".into(),
                },
            ),
            (
                "a=x}",
                ExtraFieldsError::BadPlaceholder {
                    field: "a".into(),
                    template: "x}".into(),
                },
            ),
        ] {
            assert_eq!(
                ExtraFields::parse(spec, GROUPS, &["status"]),
                Err(want),
                "{spec}"
            );
        }
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
        assert_eq!(percent_decode("%C3%A9%FF"), "é\u{fffd}");
    }
}
