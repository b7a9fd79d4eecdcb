//! A tiny JSON object writer: fields in insertion order, no intermediate `Value` tree.

/// Appends `s` as a JSON string literal (RFC 8259 escaping).
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// True when `s` is a JSON number literal that means the same as nginx's text.
pub fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let (int, frac) = match memchr::memchr(b'.', b) {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    };
    let int_ok = match int {
        [] => false,
        [b'0'] => true,
        [first, rest @ ..] => {
            first.is_ascii_digit() && *first != b'0' && rest.iter().all(u8::is_ascii_digit)
        }
    };
    int_ok
        && int.len() <= 15
        && frac.is_none_or(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit))
}

pub struct ObjectWriter {
    buf: String,
}

impl ObjectWriter {
    pub fn with_capacity(n: usize) -> Self {
        let mut buf = String::with_capacity(n);
        buf.push('{');
        Self { buf }
    }

    fn key(&mut self, k: &str) {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
        push_str(&mut self.buf, k);
        self.buf.push(':');
    }

    pub fn str_field(&mut self, k: &str, v: &str) {
        self.key(k);
        push_str(&mut self.buf, v);
    }

    /// Writes `v` as a number when it is one, else as a string.
    pub fn num_field(&mut self, k: &str, v: &str) {
        self.key(k);
        if is_json_number(v) {
            self.buf.push_str(v);
        } else {
            push_str(&mut self.buf, v);
        }
    }

    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_through_serde_json() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "nl\nx\r\t",
            "\u{1}\u{1f}",
            "ü✓\u{fffd}",
            "\\x22",
            "",
        ] {
            let mut out = String::new();
            push_str(&mut out, s);
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn numbers() {
        for (s, want) in [
            ("0", true),
            ("200", true),
            ("0.002", true),
            ("12.5", true),
            ("007", false),
            ("-", false),
            ("", false),
            ("1.", false),
            (".5", false),
            ("0.002, 0.004", false),
            ("1e5", false),
            ("12a", false),
            ("1234567890123456", false),
        ] {
            assert_eq!(is_json_number(s), want, "{s:?}");
        }
    }

    #[test]
    fn writer_keeps_order_and_types() {
        let mut w = ObjectWriter::with_capacity(0);
        w.str_field("b", "x");
        w.num_field("a", "200");
        w.num_field("c", "0.1, 0.2");
        assert_eq!(w.finish(), r#"{"b":"x","a":200,"c":"0.1, 0.2"}"#);
    }
}
