//! nginx as the oracle of what each variable held: an `escape=json` log of the variables (the
//! truth) read back byte for byte, nginx's default escaping, and a JSON reader that refuses a
//! repeated key. Shared by the tests that compare the forwarder's fields with nginx's own values
//! (tests/nginx_oracle.rs, tests/nginx_formats.rs).

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

/// An `escape=json` `log_format` (as `log_format NAME …` and `ACCESS_LOG_FORMAT` take it)
/// writing each of `vars` as a quoted string under its own name: the truth log.
pub fn truth_format(vars: &[&str]) -> String {
    let body: Vec<String> = vars.iter().map(|v| format!(r#""{v}":"${v}""#)).collect();
    format!("escape=json '{{{}}}'", body.join(","))
}

/// A JSON reader that rejects a repeated key (serde_json keeps the last one silently).
pub struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON without repeated keys")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.contains_key(&k) {
                return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
            }
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

pub fn strict_parse(text: &str) -> Result<Value, String> {
    serde_json::from_str::<Strict>(text)
        .map(|s| s.0)
        .map_err(|e| e.to_string())
}

/// nginx's `escape=default` (ngx_http_log_escape): `"`, `\`, bytes < 0x20 and >= 0x7f as `\xHH`.
pub fn nginx_default_escape(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b as char);
        }
    }
    out
}

/// One line of the `escape=json` log → variable → raw bytes. nginx writes bytes >= 0x80 as they
/// are (so the line need not be UTF-8) and escapes `"`, `\` and control bytes (ngx_escape_json).
pub fn parse_truth_line(line: &[u8]) -> Result<HashMap<String, Vec<u8>>, String> {
    let mut out = HashMap::new();
    let mut i = 0;
    let expect = |i: &mut usize, c: u8| -> Result<(), String> {
        if line.get(*i) == Some(&c) {
            *i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", c as char, *i))
        }
    };
    let string = |i: &mut usize| -> Result<Vec<u8>, String> {
        expect(i, b'"')?;
        let mut v = Vec::new();
        loop {
            let b = *line.get(*i).ok_or("unterminated string")?;
            *i += 1;
            match b {
                b'"' => return Ok(v),
                b'\\' => {
                    let e = *line.get(*i).ok_or("dangling backslash")?;
                    *i += 1;
                    match e {
                        b'n' => v.push(b'\n'),
                        b'r' => v.push(b'\r'),
                        b't' => v.push(b'\t'),
                        b'b' => v.push(8),
                        b'f' => v.push(12),
                        b'"' | b'\\' | b'/' => v.push(e),
                        b'u' => {
                            let hex = line.get(*i..*i + 4).ok_or("short \\u")?;
                            *i += 4;
                            let n =
                                u32::from_str_radix(std::str::from_utf8(hex).unwrap_or("x"), 16)
                                    .map_err(|e| format!("bad \\u: {e}"))?;
                            let c = char::from_u32(n).ok_or("bad \\u code point")?;
                            let mut buf = [0; 4];
                            v.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        other => return Err(format!("unknown escape \\{}", other as char)),
                    }
                }
                _ => v.push(b),
            }
        }
    };
    expect(&mut i, b'{')?;
    loop {
        let k = string(&mut i)?;
        expect(&mut i, b':')?;
        let v = string(&mut i)?;
        let k = String::from_utf8(k).map_err(|e| e.to_string())?;
        if out.insert(k.clone(), v).is_some() {
            return Err(format!("truth line repeats {k}"));
        }
        match line.get(i) {
            Some(b',') => i += 1,
            Some(b'}') if i + 1 == line.len() => return Ok(out),
            _ => return Err(format!("bad JSON at byte {i}")),
        }
    }
}

pub fn lines_of(data: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

/// Whether nginx's text is one plain decimal number (what a JSON number must equal).
pub fn is_plain_number(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1
        && !s.starts_with('.')
        && !s.ends_with('.')
}

/// The variables of a format string, in order.
pub fn format_vars(fmt: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = fmt.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let s = i + 1;
            let mut e = s;
            while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
                e += 1;
            }
            out.push(fmt[s..e].to_string());
            i = e;
        } else {
            i += 1;
        }
    }
    out
}

/// `1795514401.123` → milliseconds.
pub fn msec_to_ms(msec: &str) -> i64 {
    let (s, ms) = msec.split_once('.').unwrap_or((msec, "0"));
    s.parse::<i64>().expect("msec seconds") * 1000 + ms.parse::<i64>().expect("msec millis")
}
