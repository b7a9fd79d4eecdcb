//! A tiny JSON object writer: fields in insertion order, no intermediate `Value` tree.

/// True when one of the 8 bytes of `w` needs escaping in a JSON string: `"`, `\\` or a control
/// byte below 0x20 (the classic "has zero byte" bit trick, applied three times).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (below_space | has_zero(w ^ (ONES * u64::from(b'"'))) | has_zero(w ^ (ONES * u64::from(b'\\'))))
        != 0
}

/// Appends `s` as a JSON string literal (RFC 8259 escaping). Runs of bytes that need no
/// escaping are found 8 bytes at a time and copied in one piece.
pub fn push_str(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push('"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if i + 8 <= bytes.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[i..i + 8]);
            if !word_needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(esc);
        }
        i += 1;
        start = i;
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
            "exactly8",
            "longer than eight \"bytes\" with \\ and \u{7} inside",
            "\u{7f}\u{80}é end\"",
            "12345678\"12345678\\12345678\u{0}",
        ] {
            let mut out = String::new();
            push_str(&mut out, s);
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn escapes_at_every_offset_round_trip() {
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é', ' ', '~'] {
            for len in 0..24 {
                for at in 0..=len {
                    let mut s: String = "abcdefghijklmnopqrstuvwxyz".chars().take(len).collect();
                    s.insert(at.min(s.len()), special);
                    let mut out = String::new();
                    push_str(&mut out, &s);
                    let back: String =
                        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
                    assert_eq!(back, s);
                }
            }
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
