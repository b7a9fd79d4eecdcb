//! `nginx -T`'s text → files of directives: the dump cut at its headers, and nginx's own
//! tokeniser (`ngx_conf_read_token` in src/core/ngx_conf_file.c, the same from 1.18 to 1.30).

use super::error::{ConfError, FILE_HEADER, MAX_DEPTH, Origin};

/// One directive: its name, its arguments (quotes and escapes removed), its block if it opens
/// one, and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Directive {
    pub(super) name: String,
    pub(super) args: Vec<String>,
    pub(super) line: usize,
    pub(super) block: Option<Vec<Directive>>,
}

/// One file of the dump: its path as nginx printed it and its directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConfFile {
    pub(super) path: String,
    pub(super) body: Vec<Directive>,
}

/// The dump's files: (path, contents).
pub(super) fn split_dump(text: &str) -> Result<Vec<(String, &str)>, ConfError> {
    let header = |line: &str| {
        line.strip_prefix(FILE_HEADER)
            .and_then(|l| l.strip_suffix(':'))
            .filter(|p| p.starts_with('/'))
            .map(str::to_string)
    };
    let mut files: Vec<(String, usize, usize)> = Vec::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if let Some(path) = header(line.trim_end_matches('\n')) {
            if let Some(last) = files.last_mut() {
                last.2 = pos;
            }
            files.push((path, pos + line.len(), text.len()));
        } else if files.is_empty() && !line.trim().is_empty() {
            return Err(ConfError::NotADump);
        }
        pos += line.len();
    }
    if files.is_empty() {
        return Err(ConfError::NotADump);
    }
    Ok(files
        .into_iter()
        .map(|(path, start, end)| {
            // The newline nginx prints after each file's bytes.
            let body = &text[start..end];
            (path, body.strip_suffix('\n').unwrap_or(body))
        })
        .collect())
}

/// What one call of the tokeniser read (`ngx_conf_read_token`'s return values).
enum Token {
    /// Arguments ended by `;`.
    Simple(Vec<String>, usize),
    /// Arguments ended by `{`.
    BlockStart(Vec<String>, usize),
    BlockDone,
    FileDone,
}

/// nginx's configuration tokeniser, state for state (src/core/ngx_conf_file.c,
/// `ngx_conf_read_token`): words end at whitespace, `;` or `{`; a quoted word must be followed
/// by one of those; `#` starts a comment only where a word could start; a backslash protects
/// the next character; `${` does not end a word.
pub(super) struct Lexer<'t> {
    file: &'t str,
    text: &'t [u8],
    pos: usize,
    line: usize,
}

impl<'t> Lexer<'t> {
    pub(super) fn new(file: &'t str, text: &'t str) -> Self {
        Lexer {
            file,
            text: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    fn at(&self, line: usize) -> Origin {
        Origin {
            file: self.file.to_string(),
            line,
        }
    }

    fn syntax(&self, what: impl Into<String>) -> ConfError {
        ConfError::Syntax {
            at: self.at(self.line),
            what: what.into(),
        }
    }

    /// The whole file: directives until its end.
    pub(super) fn file(mut self) -> Result<Vec<Directive>, ConfError> {
        self.block(false, 0)
    }

    fn block(&mut self, inside: bool, depth: usize) -> Result<Vec<Directive>, ConfError> {
        if depth > MAX_DEPTH {
            return Err(ConfError::TooDeep {
                at: self.at(self.line),
            });
        }
        let mut out = Vec::new();
        loop {
            let (mut args, line, block) = match self.token()? {
                Token::Simple(args, line) => (args, line, None),
                Token::BlockStart(args, line) => (args, line, Some(self.block(true, depth + 1)?)),
                Token::BlockDone if inside => return Ok(out),
                Token::BlockDone => return Err(self.syntax("unexpected \"}\"")),
                Token::FileDone if inside => {
                    return Err(self.syntax("unexpected end of file, expecting \"}\""));
                }
                Token::FileDone => return Ok(out),
            };
            if args.is_empty() {
                return Err(self.syntax("a directive without a name"));
            }
            let name = args.remove(0);
            out.push(Directive {
                name,
                args,
                line,
                block,
            });
        }
    }

    fn token(&mut self) -> Result<Token, ConfError> {
        let mut s = Scan {
            last_space: true,
            start: self.pos,
            first_line: self.line,
            ..Scan::default()
        };
        loop {
            let Some(&ch) = self.text.get(self.pos) else {
                if !s.args.is_empty() || !s.last_space {
                    return Err(self.syntax("unexpected end of file, expecting \";\" or \"}\""));
                }
                return Ok(Token::FileDone);
            };
            self.pos += 1;
            if ch == b'\n' {
                self.line += 1;
                s.sharp_comment = false;
            }
            if s.sharp_comment {
                continue;
            }
            if s.quoted {
                s.quoted = false;
                continue;
            }
            if s.need_space {
                match self.after_quote(&mut s, ch)? {
                    Step::Next => continue,
                    Step::Done(t) => return Ok(t),
                    Step::Fall => {}
                }
            }
            let step = if s.last_space {
                self.word_start(&mut s, ch)?
            } else {
                self.in_word(&mut s, ch)
            };
            if let Step::Done(t) = step {
                return Ok(t);
            }
        }
    }

    /// After a closing quote: whitespace, `;`, `{` or `)` (which starts the next word).
    fn after_quote(&self, s: &mut Scan, ch: u8) -> Result<Step, ConfError> {
        match ch {
            b' ' | b'\t' | b'\r' | b'\n' => {
                s.last_space = true;
                s.need_space = false;
                Ok(Step::Next)
            }
            b';' => Ok(Step::Done(s.end(false))),
            b'{' => Ok(Step::Done(s.end(true))),
            b')' => {
                s.last_space = true;
                s.need_space = false;
                Ok(Step::Fall)
            }
            _ => Err(self.syntax(format!("unexpected \"{}\"", ch as char))),
        }
    }

    /// Between words: the end of a directive or block, a comment, or a word's first character.
    fn word_start(&self, s: &mut Scan, ch: u8) -> Result<Step, ConfError> {
        s.start = self.pos - 1;
        if s.args.is_empty() {
            s.first_line = self.line;
        }
        match ch {
            b' ' | b'\t' | b'\r' | b'\n' => return Ok(Step::Next),
            b';' | b'{' if s.args.is_empty() => {
                return Err(self.syntax(format!("unexpected \"{}\"", ch as char)));
            }
            b';' => return Ok(Step::Done(s.end(false))),
            b'{' => return Ok(Step::Done(s.end(true))),
            b'}' if !s.args.is_empty() => return Err(self.syntax("unexpected \"}\"")),
            b'}' => return Ok(Step::Done(Token::BlockDone)),
            b'#' => {
                s.sharp_comment = true;
                return Ok(Step::Next);
            }
            b'\\' => s.quoted = true,
            b'"' => {
                s.start += 1;
                s.d_quoted = true;
            }
            b'\'' => {
                s.start += 1;
                s.s_quoted = true;
            }
            b'$' => s.variable = true,
            _ => {}
        }
        s.last_space = false;
        Ok(Step::Next)
    }

    /// Inside a word: its end (closing quote, or whitespace, `;` or `{` unquoted) pushes it.
    fn in_word(&self, s: &mut Scan, ch: u8) -> Step {
        if ch == b'{' && s.variable {
            return Step::Next;
        }
        s.variable = false;
        if ch == b'\\' {
            s.quoted = true;
            return Step::Next;
        }
        if ch == b'$' {
            s.variable = true;
            return Step::Next;
        }
        let found = if s.d_quoted || s.s_quoted {
            let close = if s.d_quoted { b'"' } else { b'\'' };
            if ch == close {
                (s.d_quoted, s.s_quoted, s.need_space) = (false, false, true);
            }
            ch == close
        } else if matches!(ch, b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{') {
            s.last_space = true;
            true
        } else {
            false
        };
        if !found {
            return Step::Next;
        }
        s.args.push(unescape(&self.text[s.start..self.pos - 1]));
        match ch {
            b';' => Step::Done(s.end(false)),
            b'{' => Step::Done(s.end(true)),
            _ => Step::Next,
        }
    }
}

/// One call of the tokeniser: the words so far and nginx's flags of the same names.
#[derive(Default)]
struct Scan {
    args: Vec<String>,
    last_space: bool,
    need_space: bool,
    sharp_comment: bool,
    quoted: bool,
    s_quoted: bool,
    d_quoted: bool,
    variable: bool,
    /// Where the current word starts (after an opening quote).
    start: usize,
    /// The line of the directive's first word.
    first_line: usize,
}

impl Scan {
    /// The directive read so far, ended by `;` or by `{`.
    fn end(&mut self, block: bool) -> Token {
        let args = std::mem::take(&mut self.args);
        if block {
            Token::BlockStart(args, self.first_line)
        } else {
            Token::Simple(args, self.first_line)
        }
    }
}

/// What one character did.
enum Step {
    Next,
    /// `)` after a quote: it starts the next word.
    Fall,
    Done(Token),
}

/// A word's text as nginx keeps it: `\"`, `\'` and `\\` lose the backslash, `\t`, `\r` and
/// `\n` become the control characters, any other backslash stays.
fn unescape(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            match raw.get(i + 1) {
                Some(b'"' | b'\'' | b'\\') => i += 1,
                Some(b't') => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                Some(b'r') => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                Some(b'n') => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
