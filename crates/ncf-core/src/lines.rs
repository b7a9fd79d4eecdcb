//! Object bytes → lines: gzip or zstd (any number of members or frames) detected by magic
//! bytes, plain text otherwise; split on `\n`, a trailing `\r` dropped; NUL bytes stripped; invalid UTF-8
//! replaced by U+FFFD. A line longer than [`MAX_LINE_BYTES`] comes out in pieces (with the same
//! line number) so that memory stays bounded whatever the input.

use std::borrow::Cow;
use std::io;
use std::ops::Range;

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};

/// The gzip magic number (RFC 1952 §2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The zstd frame magic number (RFC 8878 §3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const READ_BUFFER: usize = 256 * 1024;
/// Longest line held in memory at once; longer lines are read in pieces of this size.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// How much of the decoded start of an object is looked at to tell text from binary.
const SNIFF_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Gzip,
    Zstd,
}

/// Reads lines from a (possibly compressed) byte stream, reusing one buffer.
pub struct LineReader {
    inner: Box<dyn AsyncBufRead + Send + Unpin>,
    buf: Vec<u8>,
    line_no: u64,
    bytes: u64,
    line_start: u64,
    encoding: Encoding,
    binary: bool,
    /// The last piece returned ended at the length cap: the next one continues its line.
    continuing: bool,
    nul_bytes: u64,
    /// Longest line piece: [`MAX_LINE_BYTES`], smaller in tests.
    max_line: usize,
    /// Bytes read past the last block [`LineReader::next_block`] returned.
    carry: Vec<u8>,
    /// A read error met while filling a block, returned by the next call (the block before it
    /// goes out first).
    deferred: Option<io::Error>,
}

impl LineReader {
    /// Peeks at the first bytes to choose the decoder.
    pub async fn open(body: Box<dyn AsyncRead + Send + Unpin>) -> io::Result<Self> {
        Self::open_at(body, 1, 0).await
    }

    /// Like [`LineReader::open`] for a body that starts at line `first_line`, byte `first_offset`
    /// of the object (a ranged read resuming plain text).
    pub async fn open_at(
        body: Box<dyn AsyncRead + Send + Unpin>,
        first_line: u64,
        first_offset: u64,
    ) -> io::Result<Self> {
        let mut raw = BufReader::with_capacity(READ_BUFFER, body);
        let head = raw.fill_buf().await?;
        let (mut inner, encoding): (Box<dyn AsyncBufRead + Send + Unpin>, _) =
            if head.starts_with(&GZIP_MAGIC) {
                let mut gz = GzipDecoder::new(raw);
                gz.multiple_members(true);
                (
                    Box::new(BufReader::with_capacity(READ_BUFFER, gz)),
                    Encoding::Gzip,
                )
            } else if head.starts_with(&ZSTD_MAGIC) {
                let mut zst = ZstdDecoder::new(raw);
                zst.multiple_members(true);
                (
                    Box::new(BufReader::with_capacity(READ_BUFFER, zst)),
                    Encoding::Zstd,
                )
            } else {
                (Box::new(raw), Encoding::Plain)
            };
        // A damaged stream fails here too; the caller reports it like any read error.
        let decoded = inner.fill_buf().await?;
        let binary = looks_binary(&decoded[..decoded.len().min(SNIFF_BYTES)]);
        Ok(Self {
            inner,
            buf: Vec::with_capacity(4096),
            line_no: first_line.saturating_sub(1),
            bytes: first_offset,
            line_start: first_offset,
            encoding,
            binary,
            continuing: false,
            nul_bytes: 0,
            max_line: MAX_LINE_BYTES,
            carry: Vec::new(),
            deferred: None,
        })
    }

    /// Cuts lines longer than `n` bytes (instead of [`MAX_LINE_BYTES`]) into pieces: lets tests
    /// reach the cap with small inputs.
    pub fn with_max_line(mut self, n: usize) -> Self {
        self.max_line = n.max(1);
        self
    }

    /// The longest line piece this reader cuts (what [`pieces`] must be given for its blocks).
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Reads a block of whole lines, for callers that split it themselves with [`pieces`] (the
    /// `parse` command hands blocks to several threads). `block` gets at least `target` bytes
    /// (fewer only at the end), ending after a `\n`, or inside a line longer than the cap at a
    /// multiple of it (where [`LineReader::next_line`] would cut it too), or at the end of the
    /// object; bytes read past that wait for the next call. False when nothing is left. NUL
    /// bytes and invalid UTF-8 are left to the caller. Not to be mixed with
    /// [`LineReader::next_line`] on one reader.
    ///
    /// A read error (a truncated gzip) comes after the whole lines read before it: those are
    /// returned first as a block, and the error by the next call, as [`LineReader::next_line`]
    /// would give them line by line. [`LineReader::bytes`] then counts the bytes before it.
    pub async fn next_block(&mut self, block: &mut Vec<u8>, target: usize) -> io::Result<bool> {
        block.clear();
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        block.append(&mut self.carry);
        loop {
            if block.len() >= target
                && let Some(cut) = block_end(block, self.max_line)
            {
                self.carry.extend_from_slice(&block[cut..]);
                block.truncate(cut);
                break;
            }
            let available = match self.inner.fill_buf().await {
                Ok(available) => available,
                Err(e) => match block_end(block, self.max_line) {
                    Some(cut) => {
                        // A partial line at the damage is lost, as line by line.
                        block.truncate(cut);
                        self.deferred = Some(e);
                        break;
                    }
                    None => return Err(e),
                },
            };
            if available.is_empty() {
                break;
            }
            let n = available.len();
            block.extend_from_slice(available);
            self.inner.consume(n);
        }
        self.bytes += block.len() as u64;
        Ok(!block.is_empty())
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// True when the start of the decoded object does not look like text.
    pub fn is_binary(&self) -> bool {
        self.binary
    }

    /// NUL bytes removed so far.
    pub fn nul_bytes(&self) -> u64 {
        self.nul_bytes
    }

    /// Decoded bytes read so far (the offset of the next line).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Number the next line will have.
    pub fn next_line_no(&self) -> u64 {
        if self.continuing {
            self.line_no
        } else {
            self.line_no + 1
        }
    }

    /// The next line and its 1-based number, or `None` at the end. Blank lines are returned too
    /// (as empty strings) so that line numbers stay true.
    pub async fn next_line(&mut self) -> io::Result<Option<(u64, Cow<'_, str>)>> {
        Ok(self.next_line_at().await?.map(|(n, _, l)| (n, l)))
    }

    /// [`LineReader::next_line`] with the byte offset where the line (or piece) starts.
    pub async fn next_line_at(&mut self) -> io::Result<Option<(u64, u64, Cow<'_, str>)>> {
        self.buf.clear();
        let mut complete = false;
        while !complete && self.buf.len() < self.max_line {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                break;
            }
            let room = self.max_line - self.buf.len();
            let (take, found) = match memchr::memchr(b'\n', &available[..available.len().min(room)])
            {
                Some(i) => (i + 1, true),
                None => (available.len().min(room), false),
            };
            self.buf.extend_from_slice(&available[..take]);
            self.inner.consume(take);
            complete = found;
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let n = self.buf.len();
        self.line_start = self.bytes;
        self.bytes += n as u64;
        if !self.continuing {
            self.line_no += 1;
        }
        // Cut at the length cap, not at a newline (nor at the end): the line goes on.
        self.continuing = !complete && n >= self.max_line;
        let mut end = n;
        if complete {
            end -= 1;
            if end > 0 && self.buf[end - 1] == b'\r' {
                end -= 1;
            }
        }
        self.buf.truncate(end);
        if memchr::memchr(0, &self.buf).is_some() {
            let before = self.buf.len();
            self.buf.retain(|&b| b != 0);
            self.nul_bytes += (before - self.buf.len()) as u64;
        }
        Ok(Some((
            self.line_no,
            self.line_start,
            String::from_utf8_lossy(&self.buf),
        )))
    }
}

/// Where a block read so far may end: after its last `\n`, or, when it holds none and is at
/// least one cap long (one long line), at the last multiple of the cap.
fn block_end(block: &[u8], max_line: usize) -> Option<usize> {
    match memchr::memrchr(b'\n', block) {
        Some(i) => Some(i + 1),
        None if block.len() >= max_line => Some(block.len() / max_line * max_line),
        None => None,
    }
}

/// The lines of a block from [`LineReader::next_block`], as byte ranges of it, cut exactly as
/// [`LineReader::next_line`] cuts them: at `\n` (a trailing `\r` dropped), and into pieces of
/// `max_line` bytes when longer. Blank lines are included; NUL bytes and invalid UTF-8 are left
/// in.
pub fn pieces(block: &[u8], max_line: usize) -> impl Iterator<Item = Range<usize>> {
    line_pieces(block, max_line).map(|(piece, _)| piece)
}

/// [`pieces`], each with whether it ends its line (at a `\n`): the next piece then has the next
/// line number. A piece cut at the cap (or the unterminated end of the block) does not.
pub fn line_pieces(block: &[u8], max_line: usize) -> impl Iterator<Item = (Range<usize>, bool)> {
    let max_line = max_line.max(1);
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = &block[at..];
        if rest.is_empty() {
            return None;
        }
        let limit = rest.len().min(max_line);
        let (len, next, ends) = match memchr::memchr(b'\n', &rest[..limit]) {
            Some(i) if i > 0 && rest[i - 1] == b'\r' => (i - 1, i + 1, true),
            Some(i) => (i, i + 1, true),
            None => (limit, limit, false),
        };
        let piece = at..at + len;
        at += next;
        Some((piece, ends))
    })
}

/// Text or not: more than 10 % control characters (other than tab, newline, carriage return,
/// form feed and escape) or invalid UTF-8 in the sample. NUL bytes are ignored: log files often
/// carry NUL padding after a crash, and are still text.
pub fn looks_binary(sample: &[u8]) -> bool {
    let text: Vec<u8> = sample.iter().copied().filter(|&b| b != 0).collect();
    if text.is_empty() {
        return false;
    }
    let control = text
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b)) || b == 0x7f)
        .count();
    // A sample may end inside a UTF-8 sequence: only errors before the last 3 bytes count.
    let mut invalid = 0;
    let mut rest = &text[..];
    while let Err(e) = std::str::from_utf8(rest) {
        let Some(len) = e.error_len() else { break };
        invalid += len;
        rest = &rest[e.valid_up_to() + len..];
    }
    (control + invalid) * 10 > text.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    async fn read_all(bytes: Vec<u8>) -> (Encoding, Vec<(u64, String)>) {
        let mut r = LineReader::open(Box::new(std::io::Cursor::new(bytes)))
            .await
            .unwrap();
        let mut out = Vec::new();
        while let Some((n, l)) = r.next_line().await.unwrap() {
            out.push((n, l.into_owned()));
        }
        (r.encoding(), out)
    }

    #[tokio::test]
    async fn plain_lines_crlf_blank_and_no_trailing_newline() {
        let (enc, lines) = read_all(b"a\r\n\nb\xffc\nlast".to_vec()).await;
        assert_eq!(enc, Encoding::Plain);
        let want = [(1, "a"), (2, ""), (3, "b\u{fffd}c"), (4, "last")];
        assert_eq!(lines, want.map(|(n, s)| (n, s.to_string())));
    }

    #[tokio::test]
    async fn gzip_multi_member() {
        let mut bytes = gzip(b"one\ntwo\n");
        bytes.extend(gzip(b"three\n"));
        let (enc, lines) = read_all(bytes).await;
        assert_eq!(enc, Encoding::Gzip);
        assert_eq!(
            lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
            ["one", "two", "three"]
        );
    }

    #[tokio::test]
    async fn nul_bytes_are_stripped_and_counted() {
        let mut r = LineReader::open(Box::new(std::io::Cursor::new(b"a\0b\n\0\0\0\nc".to_vec())))
            .await
            .unwrap();
        assert!(!r.is_binary());
        let mut lines = Vec::new();
        while let Some((n, l)) = r.next_line().await.unwrap() {
            lines.push((n, l.into_owned()));
        }
        assert_eq!(
            lines,
            [
                (1, "ab".to_string()),
                (2, String::new()),
                (3, "c".to_string())
            ]
        );
        assert_eq!(r.nul_bytes(), 4);
    }

    #[tokio::test]
    async fn a_line_longer_than_the_cap_comes_in_pieces_with_one_line_number() {
        let mut data = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        data.extend_from_slice(b"\nnext\n");
        let mut r = LineReader::open(Box::new(std::io::Cursor::new(data)))
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Some((n, off, l)) = r.next_line_at().await.unwrap() {
            got.push((n, off, l.len()));
        }
        let m = MAX_LINE_BYTES as u64;
        assert_eq!(
            got,
            [
                (1, 0, MAX_LINE_BYTES),
                (1, m, MAX_LINE_BYTES),
                (1, 2 * m, 10),
                (2, 2 * m + 11, 4)
            ]
        );
    }

    /// Every line `next_line` gives, and the same from `next_block` + `pieces` (NULs stripped,
    /// lossy UTF-8 as `next_line` does), for a given cap and block size.
    async fn both_ways(data: &[u8], max_line: usize, target: usize) -> (Vec<String>, Vec<String>) {
        let open = || async {
            LineReader::open(Box::new(std::io::Cursor::new(data.to_vec())))
                .await
                .unwrap()
                .with_max_line(max_line)
        };
        let mut r = open().await;
        let mut by_line = Vec::new();
        while let Some((_, l)) = r.next_line().await.unwrap() {
            by_line.push(l.into_owned());
        }
        let mut r = open().await;
        let mut by_block = Vec::new();
        let mut block = Vec::new();
        while r.next_block(&mut block, target).await.unwrap() {
            for p in pieces(&block, max_line) {
                let p: Vec<u8> = block[p].iter().copied().filter(|&b| b != 0).collect();
                by_block.push(String::from_utf8_lossy(&p).into_owned());
            }
        }
        assert_eq!(r.bytes(), data.len() as u64);
        (by_line, by_block)
    }

    #[tokio::test]
    async fn blocks_cut_lines_exactly_like_next_line() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"a\r\n\nb\xffc\nlast",
            b"exactly8\nexactly8\n",
            b"0123456789abcdefghij\r\nshort\n0123456\r\n",
            b"1234567\r\n12345678\r\n123456789\r",
            b"\n\n\n",
            b"long line without any newline at all, cut into pieces",
            b"x\0y\n\0\0\n\xe2\x9c\x93\xe2\x9c\x93\xe2\x9c\x93\n",
        ];
        for data in inputs {
            for max_line in [1, 3, 8, 9, 64] {
                for target in [0, 1, 5, 8, 17, 1 << 20] {
                    let (want, got) = both_ways(data, max_line, target).await;
                    assert_eq!(got, want, "{data:?} cap {max_line} block {target}");
                }
            }
        }
    }

    #[test]
    fn binary_or_text() {
        let text = "93.184.216.34 - - [24/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl/8\"\n".repeat(50);
        assert!(!looks_binary(text.as_bytes()));
        assert!(!looks_binary(
            "é ü ✓ café\t\x1b[0m\n".repeat(100).as_bytes()
        ));
        let mut with_nuls = text.clone().into_bytes();
        with_nuls.extend(std::iter::repeat_n(0u8, 4000));
        assert!(!looks_binary(&with_nuls));
        let elf: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(looks_binary(&elf));
        assert!(looks_binary(&[
            0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, b'I', b'H', b'D', b'R',
            0x01, 0x02, 0x03
        ]));
        assert!(!looks_binary(b""));
    }

    #[tokio::test]
    async fn blocks_of_a_truncated_gzip_end_where_lines_do_then_fail() {
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let full = gzip(text.as_bytes());
        let cut = full[..full.len() / 2].to_vec();
        let open = || async {
            LineReader::open(Box::new(std::io::Cursor::new(cut.clone())))
                .await
                .unwrap()
        };
        let mut r = open().await;
        let mut by_line = Vec::new();
        while let Ok(Some((_, l))) = r.next_line().await {
            by_line.push(l.into_owned());
        }
        let line_bytes = r.bytes();
        let mut r = open().await;
        let (mut by_block, mut block) = (Vec::new(), Vec::new());
        let err = loop {
            match r.next_block(&mut block, 64 * 1024).await {
                Ok(true) => by_block.extend(
                    pieces(&block, MAX_LINE_BYTES)
                        .map(|p| String::from_utf8_lossy(&block[p]).into_owned()),
                ),
                Ok(false) => panic!("truncated gzip read to the end without error"),
                Err(e) => break e,
            }
        };
        assert!(!err.to_string().is_empty());
        assert!(by_line.len() > 1000, "{}", by_line.len());
        // The lines decoded before the damage come out either way, up to the same byte.
        assert_eq!(by_block, by_line);
        assert_eq!(r.bytes(), line_bytes);
    }

    #[tokio::test]
    async fn zstd_frames() {
        use async_compression::tokio::write::ZstdEncoder;
        use tokio::io::AsyncWriteExt;
        let mut bytes = Vec::new();
        for part in [&b"one\ntwo\n"[..], b"three\n"] {
            let mut enc = ZstdEncoder::new(Vec::new());
            enc.write_all(part).await.unwrap();
            enc.shutdown().await.unwrap();
            bytes.extend(enc.into_inner());
        }
        let (enc, lines) = read_all(bytes).await;
        assert_eq!(enc, Encoding::Zstd);
        assert_eq!(
            lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
            ["one", "two", "three"]
        );
    }

    #[tokio::test]
    async fn empty_object_has_no_lines() {
        assert!(read_all(Vec::new()).await.1.is_empty());
    }

    #[tokio::test]
    async fn truncated_gzip_is_an_error_after_the_good_lines() {
        let full = gzip(&b"line\n".repeat(10_000));
        let cut = full[..full.len() / 2].to_vec();
        let mut r = LineReader::open(Box::new(std::io::Cursor::new(cut)))
            .await
            .unwrap();
        let mut good = 0;
        let err = loop {
            match r.next_line().await {
                Ok(Some(_)) => good += 1,
                Ok(None) => panic!("truncated gzip read to the end without error"),
                Err(e) => break e,
            }
        };
        assert!(good > 0);
        assert!(!err.to_string().is_empty());
    }
}
