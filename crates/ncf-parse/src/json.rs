//! A tiny JSON object writer: fields in insertion order, no intermediate `Value` tree.

use std::borrow::BorrowMut;
use std::sync::Arc;

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

/// Appends `s` as a JSON string literal (RFC 8259 escaping). This is the hot path of every
/// message and of the `parse` command.
pub fn push_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    push_escaped(out, s);
    out.push('"');
}

/// Appends the escaped contents of a JSON string literal for `s`, without the quotes. Runs of
/// bytes that need no escaping are skipped 8 bytes at a time and copied in one piece; the output
/// is written by index into room made once, so the length is not updated byte by byte.
pub fn push_escaped(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    // Most values need no escaping: find out 8 bytes at a time and copy them in one piece.
    if !needs_escape(bytes) {
        out.push_str(s);
        return;
    }
    // SAFETY: every byte of `s` is copied in order except ASCII bytes replaced by ASCII escape
    // sequences, and the room made below is truncated to what was written: `out` stays UTF-8.
    let buf = unsafe { out.as_mut_vec() };
    let old = buf.len();
    // At most 6 bytes per input byte (`\u00XX`).
    buf.resize(old + bytes.len() * 6, 0);
    let dst = &mut buf[old..];
    let mut n = 0;
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
            // next or cut off at the end. `dst` has room: n ≤ 6·start and start + 16 ≤ len.
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
    buf.truncate(old + n);
}

/// Appends `s` as a JSON string literal that is itself inside a JSON string: the quotes and
/// escapes of the inner literal are escaped once more (`a"b` → `\"a\\\"b\"`). What
/// [`ObjectWriter::nested`] writes for a string value. Returns the length of the inner literal
/// (what the value adds to the message once the outer string is read).
pub fn push_str_nested(out: &mut String, s: &str) -> usize {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 4);
        out.push_str("\\\"");
        out.push_str(s);
        out.push_str("\\\"");
        return s.len() + 2;
    }
    // Rare (values with quotes, backslashes or control bytes): escape once, then again.
    let mut once = String::with_capacity(s.len() + 8);
    push_str(&mut once, s);
    push_escaped(out, &once);
    once.len()
}

/// Appends `n` in decimal (a JSON number).
pub fn push_i64(text: &mut String, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        text.push('-');
    }
    // ASCII digits: always UTF-8.
    text.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
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

/// An object key quoted ahead of time, for both kinds of writer: the hot path copies it instead
/// of checking and quoting a name for every field of every line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    name: Box<str>,
    /// `"name":`
    plain: Box<str>,
    /// `\"name\":`
    nested: Box<str>,
}

impl Key {
    pub fn new(name: &str) -> Self {
        let mut plain = String::with_capacity(name.len() + 3);
        push_str(&mut plain, name);
        plain.push(':');
        let mut nested = String::with_capacity(plain.len() + 2);
        push_escaped(&mut nested, &plain);
        Self {
            name: name.into(),
            plain: plain.into(),
            nested: nested.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Writes one JSON object, fields in insertion order. It owns its text
/// ([`ObjectWriter::with_capacity`], or [`ObjectWriter::message`] for an event's message) or
/// appends to a caller's buffer, either plainly ([`ObjectWriter::append_to`]) or escaped once
/// more as the contents of an enclosing JSON string ([`ObjectWriter::nested`]). Messages are
/// written the second way: both sinks put each message inside a JSON string (the PutLogEvents
/// body, the `parse` command's output line), and writing it so in one pass saves escaping the
/// whole message a second time.
pub struct ObjectWriter<B: BorrowMut<String> = String> {
    buf: B,
    nested: bool,
    empty: bool,
    /// The length of the object written so far as plain JSON (for a nested writer: once the
    /// enclosing string is read).
    len: usize,
}

impl ObjectWriter<String> {
    pub fn with_capacity(n: usize) -> Self {
        Self::start(String::with_capacity(n), false)
    }

    /// A writer for a message of about `n` bytes: [`ObjectWriter::finish_message`] gives it
    /// back as a [`Message`].
    pub fn message(n: usize) -> Self {
        // Room for the escaped quotes around keys and values too.
        Self::start(String::with_capacity(n + n / 8), true)
    }

    /// Closes the object and gives it back as a message.
    pub fn finish_message(mut self) -> Message {
        debug_assert!(self.nested, "a message is written by ObjectWriter::message");
        self.buf.push('}');
        Message {
            text: Text::Own(self.buf),
            len: self.len + 1,
        }
    }
}

impl<'b> ObjectWriter<&'b mut String> {
    /// An object appended to `buf`.
    pub fn append_to(buf: &'b mut String) -> Self {
        Self::start(buf, false)
    }

    /// An object appended to `buf`, which is inside a JSON string literal: the object's own
    /// quotes and escapes are escaped again.
    pub fn nested(buf: &'b mut String) -> Self {
        Self::start(buf, true)
    }

    /// A message written into a block's arena (`arena`'s end when the writer started there):
    /// closes the object and says where the message is ([`Message::in_arena`]).
    pub fn finish_in_arena(self, start: usize) -> InArena {
        debug_assert!(self.nested, "a message is written by ObjectWriter::nested");
        let len = self.len + 1;
        let buf = self.finish();
        InArena {
            range: start..buf.len(),
            len,
            frame: None,
        }
    }
}

impl<B: BorrowMut<String>> ObjectWriter<B> {
    fn start(mut buf: B, nested: bool) -> Self {
        buf.borrow_mut().push('{');
        Self {
            buf,
            nested,
            empty: true,
            len: 1,
        }
    }

    /// Starts a field: the comma before every field but the first.
    #[inline]
    fn next_field(&mut self) -> &mut String {
        let buf = self.buf.borrow_mut();
        if !self.empty {
            buf.push(',');
            self.len += 1;
        }
        self.empty = false;
        buf
    }

    fn key(&mut self, k: &str) {
        // Keys are nginx variable names (letters, digits, `_`): nothing to escape.
        if k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            let quote = if self.nested { "\\\"" } else { "\"" };
            let buf = self.next_field();
            buf.reserve(k.len() + 2 * quote.len() + 1);
            buf.push_str(quote);
            buf.push_str(k);
            buf.push_str(quote);
            self.len += k.len() + 2;
        } else {
            self.next_field();
            self.string(k);
        }
        self.buf.borrow_mut().push(':');
        self.len += 1;
    }

    #[inline]
    fn key_at(&mut self, k: &Key) {
        let text = if self.nested { &k.nested } else { &k.plain };
        let buf = self.next_field();
        buf.push_str(text);
        self.len += k.plain.len();
    }

    #[inline]
    fn string(&mut self, v: &str) {
        let buf = self.buf.borrow_mut();
        if self.nested {
            self.len += push_str_nested(buf, v);
        } else {
            let before = buf.len();
            push_str(buf, v);
            self.len += buf.len() - before;
        }
    }

    /// Text that is the same plain and nested (no quotes, backslashes or control bytes).
    #[inline]
    fn bare(&mut self, v: &str) {
        self.buf.borrow_mut().push_str(v);
        self.len += v.len();
    }

    pub fn str_field(&mut self, k: &str, v: &str) {
        self.key(k);
        self.string(v);
    }

    /// Writes `v` as a number when it is one, else as a string.
    pub fn num_field(&mut self, k: &str, v: &str) {
        self.key(k);
        self.number(v);
    }

    /// `v` as a number when it is one, else as a string.
    #[inline]
    fn number(&mut self, v: &str) {
        if is_json_number(v) {
            self.bare(v);
        } else {
            self.string(v);
        }
    }

    /// Writes `true` or `false`.
    pub fn bool_field(&mut self, k: &str, v: bool) {
        self.key(k);
        self.bare(if v { "true" } else { "false" });
    }

    /// [`ObjectWriter::str_field`] with a key quoted ahead of time.
    #[inline]
    pub fn str_field_at(&mut self, k: &Key, v: &str) {
        self.key_at(k);
        self.string(v);
    }

    /// [`ObjectWriter::num_field`] with a key quoted ahead of time.
    #[inline]
    pub fn num_field_at(&mut self, k: &Key, v: &str) {
        self.key_at(k);
        self.number(v);
    }

    /// Closes the object and gives back the buffer (the text, for an owned writer).
    pub fn finish(mut self) -> B {
        self.buf.borrow_mut().push('}');
        self.buf
    }
}

/// An event's message as both sinks write it: the contents of a JSON string literal (escaped,
/// without the quotes), written once by the parser's worker, and the length of the message
/// itself, the UTF-8 bytes CloudWatch Logs counts against its limits.
///
/// The text is either the message's own or a range of its block's arena: the worker writes
/// the messages of a block of access lines one after another into one buffer
/// ([`Message::in_arena`]), so that an event costs no allocation of its own and no free on
/// another thread when its batch is sent.
#[derive(Debug, Clone)]
pub struct Message {
    text: Text,
    len: usize,
}

#[derive(Debug, Clone)]
enum Text {
    Own(String),
    /// (Offsets as `u32`: events move through the batcher by value, and a block's arena is a
    /// few MiB at most; [`Message::in_arena`] copies the text out should one not fit.)
    Arena {
        arena: Arc<String>,
        start: u32,
        end: u32,
        /// Where the event object around the message starts ([`open_event`]; `u32::MAX`: the
        /// worker wrote none) and the timestamp written there.
        frame: u32,
        frame_timestamp: i64,
    },
}

/// The start of one event of a PutLogEvents request body, up to the message's opening quote:
/// `{"timestamp":T,"message":"`; [`CLOSE_EVENT`] ends it. A worker writes each message of a
/// block inside one ([`Message::frame`]), so that a request body copies runs of consecutive
/// events at once.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_InputLogEvent.html>
pub fn open_event(out: &mut String, timestamp: i64) {
    out.push_str("{\"timestamp\":");
    push_i64(out, timestamp);
    out.push_str(",\"message\":\"");
}

/// The end of an event begun by [`open_event`].
pub const CLOSE_EVENT: &str = "\"}";

/// Where an event's whole object ([`open_event`] … [`CLOSE_EVENT`]) sits in its arena.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    pub arena: &'a Arc<String>,
    pub range: std::ops::Range<usize>,
    /// The timestamp written in it: the frame is the event's only while the event keeps it.
    pub timestamp: i64,
}

impl Default for Message {
    fn default() -> Self {
        Self {
            text: Text::Own(String::new()),
            len: 0,
        }
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.escaped() == other.escaped()
    }
}

impl Eq for Message {}

impl Message {
    /// The message whose text is `text` (escaped here, in one pass).
    pub fn new(text: &str) -> Self {
        let mut escaped = String::with_capacity(text.len() + text.len() / 16 + 8);
        push_escaped(&mut escaped, text);
        Self {
            text: Text::Own(escaped),
            len: text.len(),
        }
    }

    /// The message written escaped at `range` of `arena` ([`InArena`]), `len` bytes once read.
    /// An out-of-range `range` is a bug of the caller: the message is then empty.
    pub fn in_arena(arena: &Arc<String>, at: InArena) -> Self {
        let Some(text) = arena.get(at.range.clone()) else {
            debug_assert!(false, "a message range outside its arena");
            return Self::default();
        };
        let frame = at.frame.filter(|&(start, _)| {
            start <= at.range.start && arena.get(start..at.range.end + CLOSE_EVENT.len()).is_some()
        });
        let offsets = (
            u32::try_from(at.range.start),
            u32::try_from(at.range.end),
            frame.map_or(Ok(u32::MAX), |(f, _)| u32::try_from(f)),
        );
        let (Ok(start), Ok(end), Ok(frame_at)) = offsets else {
            return Self {
                text: Text::Own(text.to_string()),
                len: at.len,
            };
        };
        Self {
            text: Text::Arena {
                arena: arena.clone(),
                start,
                end,
                frame: frame_at,
                frame_timestamp: frame.map_or(0, |(_, ts)| ts),
            },
            len: at.len,
        }
    }

    /// The arena the message is in, if it is in one: its identity (for comparing, while the
    /// message lives) and the bytes it holds (its capacity: what it keeps allocated).
    pub fn arena(&self) -> Option<(usize, usize)> {
        match &self.text {
            Text::Own(_) => None,
            Text::Arena { arena, .. } => Some((Arc::as_ptr(arena) as usize, arena.capacity())),
        }
    }

    /// Copies the text out of its arena, so that the message no longer keeps the arena alive.
    pub fn detach(&mut self) {
        if matches!(self.text, Text::Arena { .. }) {
            self.text = Text::Own(self.escaped().to_string());
        }
    }

    /// The event object the worker wrote around this message, if it did.
    pub fn frame(&self) -> Option<Frame<'_>> {
        match &self.text {
            Text::Arena {
                arena,
                end,
                frame,
                frame_timestamp,
                ..
            } if *frame != u32::MAX => Some(Frame {
                arena,
                range: *frame as usize..*end as usize + CLOSE_EVENT.len(),
                timestamp: *frame_timestamp,
            }),
            _ => None,
        }
    }

    /// The message's own length in bytes (UTF-8), as CloudWatch Logs counts it.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The message as the contents of a JSON string literal: what a request body or an output
    /// line copies between its quotes.
    pub fn escaped(&self) -> &str {
        match &self.text {
            Text::Own(s) => s,
            // Checked in `in_arena`: the range is inside the arena and on char boundaries.
            Text::Arena {
                arena, start, end, ..
            } => arena
                .get(*start as usize..*end as usize)
                .unwrap_or_default(),
        }
    }

    /// The message's text (unescaped: for tests, and for the rare message too big for one
    /// event, which is split).
    pub fn text(&self) -> String {
        let escaped = self.escaped();
        let mut quoted = String::with_capacity(escaped.len() + 2);
        quoted.push('"');
        quoted.push_str(escaped);
        quoted.push('"');
        // Our own escaping always reads back; should it not, the escaped form loses nothing.
        serde_json::from_str(&quoted).unwrap_or_else(|_| escaped.to_string())
    }
}

/// Where a worker wrote a message into its block's arena: the escaped text's range and the
/// message's own length ([`Message::in_arena`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InArena {
    pub range: std::ops::Range<usize>,
    pub len: usize,
    /// The start of the event object around it and its timestamp ([`Message::frame`]).
    pub frame: Option<(usize, i64)>,
}

/// Appends `text`'s message escaped to `arena` (as [`Message::new`] writes it).
pub fn push_message(arena: &mut String, text: &str) -> InArena {
    let start = arena.len();
    push_escaped(arena, text);
    InArena {
        range: start..arena.len(),
        len: text.len(),
        frame: None,
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
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
    fn integers() {
        for n in [0, 7, -7, 1_795_514_401_123, i64::MIN, i64::MAX] {
            let mut s = String::new();
            push_i64(&mut s, n);
            assert_eq!(s, n.to_string());
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
    fn nested_writer_is_the_plain_text_escaped_once_more() {
        for (k, v) in [
            ("plain", "value"),
            ("agent", "Mozilla \\x22quoted\\x22"),
            ("q", "say \"hi\"\n\t\u{1}é✓"),
            ("odd key\"", "x"),
            ("empty", ""),
        ] {
            let mut plain = ObjectWriter::with_capacity(0);
            plain.str_field(k, v);
            plain.num_field("status", "200");
            plain.num_field("list", "0.1, \"0.2");
            let plain = plain.finish();
            let mut want = String::from("x");
            push_str(&mut want, &plain);
            let mut got = String::from("x\"");
            let mut w = ObjectWriter::nested(&mut got);
            w.str_field(k, v);
            w.num_field("status", "200");
            w.num_field("list", "0.1, \"0.2");
            w.finish().push('"');
            assert_eq!(got, want, "{k:?} {v:?}");
            // Keys quoted ahead of time write the same text, plain and nested.
            let (key, status) = (Key::new(k), Key::new("status"));
            let mut keyed = ObjectWriter::with_capacity(0);
            keyed.str_field_at(&key, v);
            keyed.num_field_at(&status, "200");
            keyed.num_field_at(&Key::new("list"), "0.1, \"0.2");
            assert_eq!(keyed.finish(), plain);
            let mut got = String::from("x\"");
            let mut w = ObjectWriter::nested(&mut got);
            w.str_field_at(&key, v);
            w.num_field_at(&status, "200");
            w.num_field_at(&Key::new("list"), "0.1, \"0.2");
            w.finish().push('"');
            assert_eq!(got, want, "{k:?} {v:?}");
        }
    }

    #[test]
    fn writer_keeps_order_and_types() {
        let mut w = ObjectWriter::with_capacity(0);
        w.str_field("b", "x");
        w.num_field("a", "200");
        w.num_field("c", "0.1, 0.2");
        w.bool_field("t", true);
        w.bool_field("f", false);
        assert_eq!(
            w.finish(),
            r#"{"b":"x","a":200,"c":"0.1, 0.2","t":true,"f":false}"#
        );
        let mut got = String::new();
        let mut w = ObjectWriter::nested(&mut got);
        w.bool_field("t", true);
        w.finish();
        assert_eq!(got, r#"{\"t\":true}"#);
    }

    #[test]
    fn a_message_is_its_text_escaped_with_the_texts_length() {
        for text in [
            "",
            "plain",
            "q\"uote back\\slash nl\n tab\t nul\u{0} \u{1f} é ✓ \u{1F600}",
            "12345678\"12345678\\12345678\u{0}",
        ] {
            let m = Message::new(text);
            assert_eq!(m.len(), text.len());
            assert_eq!(m.text(), text);
            assert_eq!(m.to_string(), text);
            let mut quoted = String::new();
            push_str(&mut quoted, text);
            assert_eq!(format!("\"{}\"", m.escaped()), quoted);
        }
    }

    #[test]
    fn a_written_message_counts_the_bytes_of_its_plain_json() {
        let values = ["value", "Mozilla \\x22q\\x22", "say \"hi\"\n\t\u{1}é✓", ""];
        for (i, v) in values.iter().enumerate() {
            let key = Key::new(&format!("k{i}"));
            let mut plain = ObjectWriter::with_capacity(0);
            let mut message = ObjectWriter::message(0);
            for w in [&mut plain, &mut message] {
                w.str_field("odd key\"", v);
                w.str_field_at(&key, v);
                w.num_field("status", "200");
                w.num_field("list", "0.1, \"0.2");
                w.bool_field("t", i % 2 == 0);
            }
            let (plain, message) = (plain.finish(), message.finish_message());
            assert_eq!(message, Message::new(&plain), "{v:?}");
            assert_eq!(message.len(), plain.len());
        }
    }
}
