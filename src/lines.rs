//! Object bytes → lines: gzip (any number of members) detected by magic bytes, plain text
//! otherwise; split on `\n`, a trailing `\r` dropped; invalid UTF-8 replaced by U+FFFD.

use std::borrow::Cow;
use std::io;

use async_compression::tokio::bufread::GzipDecoder;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};

/// The gzip magic number (RFC 1952 §2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const READ_BUFFER: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Gzip,
}

/// Reads lines from a (possibly compressed) byte stream, reusing one buffer.
pub struct LineReader {
    inner: Box<dyn AsyncBufRead + Send + Unpin>,
    buf: Vec<u8>,
    line_no: u64,
    bytes: u64,
    line_start: u64,
    encoding: Encoding,
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
        let (inner, encoding): (Box<dyn AsyncBufRead + Send + Unpin>, _) =
            if head.starts_with(&GZIP_MAGIC) {
                let mut gz = GzipDecoder::new(raw);
                gz.multiple_members(true);
                (
                    Box::new(BufReader::with_capacity(READ_BUFFER, gz)),
                    Encoding::Gzip,
                )
            } else {
                (Box::new(raw), Encoding::Plain)
            };
        Ok(Self {
            inner,
            buf: Vec::with_capacity(4096),
            line_no: first_line.saturating_sub(1),
            bytes: first_offset,
            line_start: first_offset,
            encoding,
        })
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Decoded bytes read so far (the offset of the next line).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Offset of the line [`LineReader::next_line`] returned last.
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// Number the next line will have.
    pub fn next_line_no(&self) -> u64 {
        self.line_no + 1
    }

    /// The next line and its 1-based number, or `None` at the end. Blank lines are returned too
    /// (as empty strings) so that line numbers stay true.
    pub async fn next_line(&mut self) -> io::Result<Option<(u64, Cow<'_, str>)>> {
        Ok(self.next_line_at().await?.map(|(n, _, l)| (n, l)))
    }

    /// [`LineReader::next_line`] with the byte offset where the line starts.
    pub async fn next_line_at(&mut self) -> io::Result<Option<(u64, u64, Cow<'_, str>)>> {
        self.buf.clear();
        let n = self.inner.read_until(b'\n', &mut self.buf).await?;
        if n == 0 {
            return Ok(None);
        }
        self.line_start = self.bytes;
        self.bytes += n as u64;
        self.line_no += 1;
        let mut line = self.buf.as_slice();
        if let Some(l) = line.strip_suffix(b"\n") {
            line = l;
        }
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        Ok(Some((
            self.line_no,
            self.line_start,
            String::from_utf8_lossy(line),
        )))
    }
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
