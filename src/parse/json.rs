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

/// True when some byte of `bytes` needs escaping in a JSON string.
fn needs_escape(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        if word_needs_escape(u64::from_le_bytes(word)) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| ESCAPE[usize::from(b)] != 0)
}

/// What each byte becomes inside a JSON string: 0 = itself, `u` = `\u00XX`, else `\` + it.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends `s` as a JSON string literal (RFC 8259 escaping). Runs of bytes that need no
/// escaping are skipped 8 bytes at a time and copied in one piece; the output is written by
/// index into room made once, so the length is not updated byte by byte. This is the hot path
/// of every message and of the `parse` command.
pub fn push_str(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    // Most values need no escaping: find out 8 bytes at a time and copy them in one piece.
    if !needs_escape(bytes) {
        out.reserve(bytes.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    // SAFETY: every byte of `s` is copied in order except ASCII bytes replaced by ASCII escape
    // sequences, and the room made below is truncated to what was written: `out` stays UTF-8.
    let buf = unsafe { out.as_mut_vec() };
    let old = buf.len();
    // At most 6 bytes per input byte (`\u00XX`), plus the quotes.
    buf.resize(old + bytes.len() * 6 + 2, 0);
    let dst = &mut buf[old..];
    dst[0] = b'"';
    let mut n = 1;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i + 8 <= bytes.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[i..i + 8]);
            if word_needs_escape(u64::from_le_bytes(word)) {
                break;
            }
            i += 8;
        }
        while i < bytes.len() && ESCAPE[usize::from(bytes[i])] == 0 {
            i += 1;
        }
        let run = i - start;
        if run <= 16 && start + 16 <= bytes.len() {
            // A fixed-size copy (two moves, no call); the bytes past the run are overwritten
            // next or cut off at the end. `dst` has room: 6 bytes per input byte.
            dst[n..n + 16].copy_from_slice(&bytes[start..start + 16]);
        } else {
            dst[n..n + run].copy_from_slice(&bytes[start..i]);
        }
        n += run;
        let Some(&b) = bytes.get(i) else { break };
        match ESCAPE[usize::from(b)] {
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                dst[n..n + 6].copy_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
                n += 6;
            }
            e => {
                dst[n] = b'\\';
                dst[n + 1] = e;
                n += 2;
            }
        }
        i += 1;
    }
    dst[n] = b'"';
    buf.truncate(old + n + 1);
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
        // Keys are nginx variable names (letters, digits, `_`): nothing to escape.
        if k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            self.buf.push('"');
            self.buf.push_str(k);
            self.buf.push('"');
        } else {
            push_str(&mut self.buf, k);
        }
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
