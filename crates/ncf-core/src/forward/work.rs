//! The work stage: blocks of whole lines parsed on every core, the results in input order. The
//! Lambda path and the `parse` command both run it ([`ordered`]) with one engine,
//! [`parse_block`] (then [`Joiner`] in input order): it decides what each line is (parsed,
//! not parsed, filtered, before the block's first time, an error-log continuation). Only how
//! the access events are held differs ([`Sink`]): events for the batcher, or `parse`'s output
//! lines, written straight into its output text.
//!
//! Order comes from structure: the reading task spawns each block's work as a task of its own
//! and queues its join handle in a channel of [`Plan::threads`] places; the consumer awaits
//! the handles in that order. A block whose work panicked is reported, in order, as
//! [`WorkError::Worker`] by its join handle. Memory stays bounded: a block is read only once it
//! has a place in the queue, so at most [`QUEUE_PER_WORKER`] × [`Plan::threads`] blocks (read,
//! being parsed or parsed) and the one being consumed are held.
//!
//! Block edges: a block ends after a `\n` (or inside a line longer than the cap, where line by
//! line would cut it too), so access lines never straddle two blocks. Two things need the
//! block before: an unparsable access line before the block's first time takes the time of the
//! event before it (`Parsed::untimed`), and error-log lines before the block's first line
//! with a timestamp continue the previous block's last event ([`Parsed`]'s `leading` fragment,
//! joined to it by [`Joiner`], which holds each block's last event open until the next block
//! shows whether lines continue it).

use std::borrow::Cow;
use std::io;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::batch::{MAX_EVENT_MESSAGE_BYTES, fitting_parts};
use crate::lines::{LineReader, line_pieces};
use crate::route::LogKind;
use crate::spare::Spare;
use ncf_parse::access::{self, LineOutcome};
use ncf_parse::error::{self, Pending};
use ncf_parse::json::{CLOSE_EVENT, InArena, open_event};
use ncf_parse::object_format::{self, Candidate, Part};
use ncf_parse::{
    LineParser, LogEvent, LogFormat, Message, ObjectParse, OutputFormat, ParseSettings, Parsing,
};

/// Input handed to a worker at a time by the `parse` command: big enough that hand-offs cost
/// nothing.
pub const BLOCK_BYTES: usize = 1 << 20;
/// Input handed to a worker at a time by the Lambda: a block's events (about 2.5 times its
/// bytes) wait in memory until the ordered stage takes them, for each of the
/// [`Plan::threads`] blocks in flight, so blocks are smaller here; a hand-off still costs a few
/// microseconds against about a millisecond of parsing.
pub const FORWARD_BLOCK_BYTES: usize = 256 << 10;

/// Places in the queue between reading and the ordered consumer, per worker: a worker that
/// finishes finds the next block already read.
pub const QUEUE_PER_WORKER: usize = 2;

/// How the work is spread; the defaults suit production, tests make blocks tiny.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Workers; the queue between reading and the ordered consumer holds
    /// [`QUEUE_PER_WORKER`] blocks per worker.
    pub threads: usize,
    pub block_bytes: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            block_bytes: BLOCK_BYTES,
        }
    }
}

/// A block of whole lines (from [`LineReader::next_block`]) and where it sits in the decoded
/// object.
#[derive(Debug)]
pub struct Block {
    pub bytes: Vec<u8>,
    /// The number of the block's first line (a piece of a long line keeps its line's number).
    pub first_line: u64,
    /// Decoded byte offset of the block's first byte.
    pub first_offset: u64,
    /// The reader's cap on a line piece (see [`crate::lines::pieces`]).
    pub max_line: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error("read failed after {offset} decompressed bytes (line {line}): {source}")]
    Read {
        offset: u64,
        line: u64,
        source: io::Error,
    },
    #[error("the work on block {index} of the input failed: {detail}")]
    Worker { index: u64, detail: String },
}

/// One block's result, with where the input stands after it.
#[derive(Debug)]
pub struct Done<T> {
    /// The number the line after the block will have.
    pub end_line: u64,
    /// Decoded bytes up to the end of the block.
    pub end_offset: u64,
    pub output: T,
}

enum Queued<T> {
    Block {
        index: u64,
        end_line: u64,
        end_offset: u64,
        task: JoinHandle<T>,
    },
    Failed(WorkError),
}

/// The results of [`ordered`], in input order.
pub struct Ordered<T> {
    queue: mpsc::Receiver<Queued<T>>,
    reading: JoinHandle<()>,
}

/// Reads `reader` in blocks and runs `work` on each on up to `plan.threads` workers; the
/// results come out of [`Ordered::next`] in input order. A read error comes after the results
/// of the blocks before it.
pub fn ordered<T, F>(reader: LineReader, plan: Plan, work: F) -> Ordered<T>
where
    T: Send + 'static,
    F: Fn(&Block) -> T + Send + Sync + 'static,
{
    let places = plan.threads.max(1) * QUEUE_PER_WORKER;
    let (tx, queue) = mpsc::channel(places);
    let spare = Arc::new(Spare::new(places + 1));
    // Blocks parsed at once: one per core (more measured no faster); reading (decompression)
    // and the puts share the runtime's workers with them.
    let workers = Arc::new(Semaphore::new(plan.threads.max(1)));
    let reading = tokio::spawn(read_blocks(
        reader,
        plan.block_bytes,
        tx,
        Arc::new(work),
        (spare, workers),
    ));
    Ordered { queue, reading }
}

async fn read_blocks<T, F>(
    mut reader: LineReader,
    block_bytes: usize,
    tx: mpsc::Sender<Queued<T>>,
    work: Arc<F>,
    (spare, workers): (Arc<Spare<Vec<u8>>>, Arc<Semaphore>),
) where
    T: Send + 'static,
    F: Fn(&Block) -> T + Send + Sync + 'static,
{
    let max_line = reader.max_line();
    let mut line = reader.next_line_no();
    for index in 0.. {
        // A place in the queue first: no block is read, and no work spawned, before the
        // consumer has room for it.
        let Ok(place) = tx.reserve().await else {
            return; // the consumer stopped
        };
        let first_offset = reader.bytes();
        let mut bytes = spare.take().unwrap_or_default();
        match reader.next_block(&mut bytes, block_bytes).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(source) => {
                place.send(Queued::Failed(WorkError::Read {
                    offset: reader.bytes(),
                    line,
                    source,
                }));
                return;
            }
        }
        // Each `\n` ends one line; a block ending inside a long line leaves its number open.
        let newlines = memchr::memchr_iter(b'\n', &bytes).count() as u64;
        let block = Block {
            bytes,
            first_line: line,
            first_offset,
            max_line,
        };
        line += newlines;
        let Ok(worker) = Arc::clone(&workers).acquire_owned().await else {
            return; // never closed
        };
        let (work, spare) = (Arc::clone(&work), Arc::clone(&spare));
        place.send(Queued::Block {
            index,
            end_line: line,
            end_offset: reader.bytes(),
            // A task on the runtime's workers, not `spawn_blocking`: a block is about a
            // millisecond of parsing, and handing it to a thread of the blocking pool (and its
            // result back) left the cores idle between blocks. Measured on 2 cores, 3 M lines:
            // `parse` 540 -> 760 MB/s, e2e-plain 305 -> 325 MB/s.
            task: tokio::task::spawn(async move {
                let output = work(&block);
                drop(worker);
                spare.give(block.bytes);
                output
            }),
        });
    }
}

impl<T> Ordered<T> {
    /// The next block's result in input order; `None` after the last.
    pub async fn next(&mut self) -> Option<Result<Done<T>, WorkError>> {
        Some(match self.queue.recv().await? {
            Queued::Failed(e) => Err(e),
            Queued::Block {
                index,
                end_line,
                end_offset,
                task,
            } => match task.await {
                Ok(output) => Ok(Done {
                    end_line,
                    end_offset,
                    output,
                }),
                Err(e) => Err(WorkError::Worker {
                    index,
                    detail: e.to_string(),
                }),
            },
        })
    }
}

impl<T> Drop for Ordered<T> {
    fn drop(&mut self) {
        // The consumer stopped early (an error): no more reading. Work already spawned finishes
        // on its own and is dropped.
        self.reading.abort();
    }
}

/// What every block of one object is parsed with.
#[derive(Debug, Clone)]
pub struct Job {
    /// The deployment's settings, shared by every object (not copied).
    pub shared: Arc<ParseSettings>,
    /// What this object adds to them.
    pub object: Arc<ObjectParse>,
    pub kind: LogKind,
    /// The timestamp of every access line when the format has no time variable.
    pub fixed_ts: Option<i64>,
    /// Lines before this one were delivered by an earlier attempt: counted, not parsed.
    pub skip_before: u64,
    /// The object's time for lines whose format has no time variable.
    pub fallback_ts: i64,
    /// An object whose lines may be in several formats ([`Job::with_formats`]); `None`: every
    /// line is in the object's format ([`Job::parsing`]).
    pub formats: Option<Arc<Formats>>,
    /// What the access events become: events (the Lambda), or output lines (`parse`).
    pub sink: Sink,
}

/// What a block's access events become ([`Job::sink`]). Either way [`parse_block`] decides
/// each line's fate (parsed, unparsed, filtered, before the block's first time); only how the
/// result is held differs.
#[derive(Debug, Clone, Default)]
pub enum Sink {
    /// Events whose messages sit in the block's arena ([`Message::in_arena`]), for the batcher.
    #[default]
    Events,
    /// The `parse` command's output: one event object a line ([`write_line`]), written into
    /// [`Parsed::lines`], a buffer taken from these spare ones (the caller gives it back once
    /// it is written out). No event is built for them: the message is written once, in its
    /// line. Lines before the block's first time stay events ([`Parsed::events`]): only
    /// [`Joiner`] knows their time, and they come before the block's lines.
    Lines(Arc<Spare<String>>),
}

/// The formats an object's access lines may be in, and which ones each run of lines may be in
/// (its `ncf-log-formats` and `ncf-parts` metadata).
#[derive(Debug)]
pub struct Formats {
    /// One per named format, in the metadata's order (the deployment's, `-`, is the job's).
    formats: Vec<LogFormat>,
    parts: Vec<Part>,
}

impl Formats {
    /// The format of each candidate of the line at `offset`, in preference order;
    /// `deployment`'s for `-`.
    fn candidates_at<'f>(
        &'f self,
        offset: u64,
        deployment: &'f LogFormat,
    ) -> impl Iterator<Item = &'f LogFormat> {
        let named = self.formats.len();
        object_format::candidates_at(&self.parts, named, offset)
            .into_iter()
            .map(move |c| match c {
                Candidate::Named(i) => self.formats.get(i).unwrap_or(deployment),
                Candidate::Default => deployment,
            })
    }
}

impl Job {
    pub fn new(
        shared: Arc<ParseSettings>,
        object: ObjectParse,
        kind: LogKind,
        fallback_ts: i64,
        skip_before: u64,
    ) -> Self {
        let fixed_ts = Parsing::new(&shared, &object)
            .access_format
            .time_var()
            .is_none()
            .then_some(fallback_ts);
        Self {
            shared,
            object: Arc::new(object),
            kind,
            fixed_ts,
            skip_before,
            fallback_ts,
            formats: None,
            sink: Sink::Events,
        }
    }

    /// What the object's lines are parsed with: the deployment's settings, the object's part
    /// and its format.
    pub fn parsing(&self) -> Parsing<'_> {
        Parsing::new(&self.shared, &self.object)
    }

    /// The job for an object whose lines may be in any of `formats` (or the deployment's, for
    /// the `-` candidate), by `parts`: each line is parsed with the first of its candidates it
    /// matches.
    pub fn with_formats(mut self, formats: Vec<LogFormat>, parts: Vec<Part>) -> Self {
        // Lines whose format has no time take the object's time; the others their own.
        self.fixed_ts = None;
        self.formats = Some(Arc::new(Formats { formats, parts }));
        self
    }

    /// What `line` (at `offset`) is parsed with: the first of its candidates that it
    /// matches to its end, else the first it matches with text left after the format (kept as
    /// the tail), else the first (the line does not parse and says why by it). Counted in
    /// `out`: a line parsed with another than its first candidate, and one that two candidates
    /// match to its end.
    fn settings_for<'j>(
        &'j self,
        line: &str,
        offset: u64,
        spans: &mut Vec<(usize, usize)>,
        out: &mut Parsed,
    ) -> Parsing<'j> {
        let parsing = self.parsing();
        let Some(formats) = &self.formats else {
            return parsing;
        };
        let mut whole: Option<(usize, Parsing<'j>)> = None;
        let mut with_tail = None;
        let mut first = None;
        let deployment = &self.shared.access_format;
        for (n, format) in formats.candidates_at(offset, deployment).enumerate() {
            let candidate = parsing.with_format(format);
            first.get_or_insert(candidate);
            match access::locate(candidate, line, spans) {
                Ok(at) if line[at.tail.min(line.len())..].trim().is_empty() => {
                    if whole.is_some() {
                        out.format_ambiguous += 1;
                        break;
                    }
                    whole = Some((n, candidate));
                }
                Ok(_) => {
                    with_tail.get_or_insert((n, candidate));
                }
                Err(_) => {}
            }
        }
        match whole.or(with_tail) {
            Some((n, chosen)) => {
                if n > 0 {
                    out.format_fallbacks += 1;
                }
                chosen
            }
            None => first.unwrap_or(parsing),
        }
    }
}

/// Error-log lines at the start of a block, before its first line with a timestamp.
#[derive(Debug)]
struct Leading {
    line: u64,
    offset: u64,
    /// The lines joined with `\n`.
    text: String,
    /// Length of the first of them.
    head_len: usize,
}

/// A block parsed into events; [`Joiner`] finishes it in input order.
#[derive(Debug, Default)]
pub struct Parsed {
    pub events: Vec<LogEvent>,
    /// [`Sink::Lines`]: the block's access events after its first time, as output lines.
    pub lines: String,
    /// The first `untimed` events are access lines that did not parse, before any line with a
    /// time in the block: they take the time of the event before the block.
    untimed: usize,
    /// The time an unparsable line after the block would take, if the block knows it.
    last_ts: Option<i64>,
    /// Error logs: lines that continue the event before the block.
    leading: Option<Leading>,
    /// Error logs: the block's last event, which lines of the next block may continue.
    open: Option<Pending>,
    /// Line pieces read (blank and skipped ones included), blank lines, NUL bytes removed.
    pub pieces: u64,
    pub blank_lines: u64,
    pub nul_bytes: u64,
    /// Access lines parsed with a format other than their first candidate ([`Formats`]).
    pub format_fallbacks: u64,
    /// Access lines that more than one of their candidates matched (the first was used).
    pub format_ambiguous: u64,
}

/// Parses one block of lines, cut and cleaned exactly as [`LineReader::next_line`] does (NUL
/// bytes stripped, invalid UTF-8 replaced). The one place where a line's fate is decided, for
/// the Lambda and for `parse` alike ([`Job::sink`] says only how the results are held).
pub fn parse_block(job: &Job, block: &Block) -> Parsed {
    let bytes = &block.bytes;
    // Checked once for the block; each line is then a slice of it (a piece cut inside a
    // character, at the line-length cap, is decoded on its own).
    let text = std::str::from_utf8(bytes).ok();
    let has_nul = memchr::memchr(0, bytes).is_some();
    let mut cleaned = Vec::new();
    let mut engine = Engine::new(job, bytes.len());
    let mut line_no = block.first_line;
    for (range, ends_line) in line_pieces(bytes, block.max_line) {
        let this_line = line_no;
        line_no += u64::from(ends_line);
        let offset = block.first_offset + range.start as u64;
        let nuls = if has_nul {
            memchr::memchr_iter(0, &bytes[range.clone()]).count()
        } else {
            0
        };
        let out = &mut engine.out;
        out.pieces += 1;
        out.nul_bytes += nuls as u64;
        if this_line < job.skip_before {
            continue; // delivered by an earlier attempt (a gzip resume reads from the start)
        }
        let line = piece_text(bytes, text, range, nuls > 0, &mut cleaned);
        if line.trim().is_empty() {
            out.blank_lines += 1;
            continue;
        }
        match job.kind {
            LogKind::Access => engine.access(&line, this_line, offset),
            LogKind::Error => engine.error(line, this_line, offset),
        }
    }
    engine.finish()
}

/// What [`parse_block`] carries from line to line of one block.
struct Engine<'j> {
    job: &'j Job,
    out: Parsed,
    /// The time an unparsable access line takes: the event before it's (at first the format's
    /// fixed time, if it has no time variable); `None` before the block's first time.
    last_ts: Option<i64>,
    /// Error logs: the parser, from the block's first line with a timestamp on.
    parser: Option<LineParser<'j>>,
    /// Access logs: the field ranges of the current line, and the event objects of the block,
    /// one after another, each message inside its own (see `Message::in_arena`); for
    /// [`Sink::Lines`] the output lines themselves.
    buffers: access::Buffers,
    /// [`Sink::Events`]: which event's message is where in the arena.
    placed: Vec<(usize, InArena)>,
}

impl<'j> Engine<'j> {
    fn new(job: &'j Job, block_bytes: usize) -> Self {
        let mut engine = Self {
            job,
            out: Parsed::default(),
            last_ts: job.fixed_ts,
            parser: None,
            buffers: access::Buffers::default(),
            placed: Vec::new(),
        };
        if job.kind == LogKind::Access {
            if let Sink::Lines(spare) = &job.sink {
                // Output lines run to about 2.5 times their input (JSON); a buffer handed
                // back has the room already.
                engine.buffers.arena = spare.take().unwrap_or_default();
                engine.buffers.arena.reserve(block_bytes * 5 / 2 + 64);
            } else {
                // About one event per line, and lines run to about 200 bytes.
                engine.out.events.reserve(block_bytes / 160);
                engine.placed.reserve(block_bytes / 160);
                // Growing the arena would copy it.
                let room = arena_capacity(&job.shared, block_bytes);
                engine.buffers.arena.reserve(room);
            }
        }
        engine
    }

    /// One access line: parsed with its format ([`Job::settings_for`]) into the arena, or an
    /// event of its own (a line that did not parse; filtered: counted, never sent).
    fn access(&mut self, line: &str, line_no: u64, offset: u64) {
        let job = self.job;
        let settings = job.settings_for(line, offset, &mut self.buffers.spans, &mut self.out);
        let fallback = match settings.access_format.time_var() {
            None if job.formats.is_some() => job.fallback_ts,
            _ => self.last_ts.unwrap_or(0),
        };
        let buffers = &mut self.buffers;
        let (mut ev, at) = match &job.sink {
            Sink::Events => access::parse_line_into(settings, line, line_no, fallback, buffers),
            Sink::Lines(_) => {
                let outcome = access::write_event(settings, line, line_no, fallback, buffers);
                if let LineOutcome::Written(at, _) = &outcome
                    && at.len <= MAX_EVENT_MESSAGE_BYTES
                {
                    // `parse`'s common case: the line is written; a newline ends it.
                    buffers.arena.push('\n');
                    self.last_ts = at.frame.map(|(_, ts)| ts).or(self.last_ts);
                    return;
                }
                outcome.into_event(settings, line, line_no, fallback)
            }
        };
        ev.offset = offset;
        let untimed = ev.parse_failed && self.last_ts.is_none();
        if untimed {
            self.out.untimed += 1;
        } else {
            self.last_ts = Some(ev.timestamp);
        }
        match &job.sink {
            Sink::Lines(_) if !untimed => self.write_line(ev, at),
            _ => {
                if let Some(at) = at {
                    self.placed.push((self.out.events.len(), at));
                }
                self.out.events.push(ev);
            }
        }
    }

    /// [`Sink::Lines`]: an event that is not one line as written (a message too big for one
    /// event, taken back out of the arena and written in parts as the batcher would send it; a
    /// line that did not parse), as its output line(s).
    fn write_line(&mut self, ev: LogEvent, at: Option<InArena>) {
        let (output, arena) = (self.job.shared.output, &mut self.buffers.arena);
        match at {
            Some(at) => {
                let frame = at.frame.map_or(at.range.start, |(start, _)| start);
                let object = Arc::new(arena.split_off(frame));
                let at = InArena {
                    range: at.range.start - frame..at.range.end - frame,
                    frame: None,
                    ..at
                };
                let message = Message::in_arena(&object, at);
                write_line(arena, LogEvent { message, ..ev }, output);
            }
            None if ev.filtered.is_some() => {}
            None => write_line(arena, ev, output),
        }
    }

    /// One error-log line: a record's first line or a continuation of the record before it;
    /// before the block's first record, a continuation of the block before
    /// ([`Parsed::leading`], which [`Joiner`] joins).
    fn error(&mut self, line: Cow<'_, str>, line_no: u64, offset: u64) {
        let job = self.job;
        match self.parser.as_mut() {
            Some(p) => p.push_at(&line, line_no, offset, &mut self.out.events),
            None if error::line_time(&line, &job.shared).is_some() => {
                let mut p = LineParser::new(job.parsing(), LogKind::Error, 0);
                p.push_at(&line, line_no, offset, &mut self.out.events);
                self.parser = Some(p);
            }
            None => match self.out.leading.as_mut() {
                Some(lead) => {
                    lead.text.push('\n');
                    lead.text.push_str(&line);
                }
                None => {
                    self.out.leading = Some(Leading {
                        line: line_no,
                        offset,
                        head_len: line.len(),
                        text: line.into_owned(),
                    });
                }
            },
        }
    }

    fn finish(mut self) -> Parsed {
        if matches!(self.job.sink, Sink::Lines(_)) {
            self.out.lines = self.buffers.arena;
        } else if !self.placed.is_empty() {
            let arena = Arc::new(self.buffers.arena);
            for (i, at) in self.placed {
                if let Some(ev) = self.out.events.get_mut(i) {
                    ev.message = Message::in_arena(&arena, at);
                }
            }
        }
        self.out.open = self.parser.as_mut().and_then(LineParser::take_open);
        self.out.last_ts = self.last_ts;
        self.out
    }
}

/// One line of the `parse` command's output: the event's object as PutLogEvents takes it
/// (`{"timestamp":…,"message":"…"}`), in parts first if its message is too big for one event.
pub fn write_line(text: &mut String, ev: LogEvent, output: OutputFormat) {
    for part in fitting_parts(ev, output) {
        open_event(text, part.timestamp);
        text.push_str(part.message.escaped());
        text.push_str(CLOSE_EVENT);
        text.push('\n');
    }
}

/// Room for the messages of `block_bytes` of access lines: JSON messages run to about 2.3×
/// their line once escaped (the keys, the request split out), raw ones a little over 1×.
fn arena_capacity(settings: &ParseSettings, block_bytes: usize) -> usize {
    match settings.output {
        OutputFormat::Json => block_bytes.saturating_mul(3),
        OutputFormat::Raw => block_bytes + block_bytes / 8,
    }
}

/// The text of the line piece `range` of `block`, cleaned as [`LineReader::next_line`] cleans a
/// line: NUL bytes stripped (`has_nul`: the piece has some), invalid UTF-8 replaced. `text` is
/// the whole block when it is valid UTF-8 (checked once per block), so that most lines are a
/// slice of it; `cleaned` is a buffer reused from piece to piece.
pub fn piece_text<'b>(
    block: &'b [u8],
    text: Option<&'b str>,
    range: std::ops::Range<usize>,
    has_nul: bool,
    cleaned: &mut Vec<u8>,
) -> Cow<'b, str> {
    let piece = &block[range.clone()];
    if has_nul {
        cleaned.clear();
        cleaned.extend(piece.iter().copied().filter(|&b| b != 0));
        Cow::Owned(String::from_utf8_lossy(cleaned).into_owned())
    } else if let Some(line) = text.and_then(|t| t.get(range)) {
        Cow::Borrowed(line)
    } else {
        String::from_utf8_lossy(piece)
    }
}

/// Finishes parsed blocks in input order: gives untimed access lines the time before their
/// block, joins error-log continuation lines across block edges, and holds the last error-log
/// event until the next block shows whether it goes on.
#[derive(Debug)]
pub struct Joiner {
    /// The time of the last event handed out (at first the object's fallback time).
    before: i64,
    /// The error-log event still open for continuation lines.
    carry: Option<Pending>,
}

impl Joiner {
    pub fn new(fallback_ts: i64) -> Self {
        Self {
            before: fallback_ts,
            carry: None,
        }
    }

    /// Appends the finished events of the next block to `out`, in input order.
    /// `settings`: the object's [`Parsing`] ([`Job::parsing`]), or the deployment's
    /// [`ParseSettings`] alone.
    pub fn join<'a>(
        &mut self,
        settings: impl Into<Parsing<'a>>,
        mut parsed: Parsed,
        out: &mut Vec<LogEvent>,
    ) {
        let settings = settings.into();
        if let Some(lead) = parsed.leading.take() {
            match self.carry.as_mut() {
                Some(open) => open.continue_with(&lead.text),
                // Nothing to continue (the start of the object): an event of its own.
                None => {
                    self.carry = Some(Pending::unparsed(
                        lead.text,
                        lead.head_len,
                        lead.line,
                        lead.offset,
                        self.before,
                    ));
                }
            }
        }
        if parsed.open.is_some() || !parsed.events.is_empty() {
            // The block starts an event of its own: the one carried is complete.
            if let Some(done) = self.carry.take() {
                let ev = done.into_event(settings);
                self.before = ev.timestamp;
                out.push(ev);
            }
        }
        for ev in parsed.events.iter_mut().take(parsed.untimed) {
            ev.timestamp = self.before;
        }
        if let Some(ts) = parsed.last_ts.or(parsed.events.last().map(|e| e.timestamp)) {
            self.before = ts;
        }
        out.append(&mut parsed.events);
        if let Some(open) = parsed.open.take() {
            self.carry = Some(open);
        }
    }

    /// The first line (and its offset) of an event read but not yet handed out.
    pub fn held(&self) -> Option<(u64, u64)> {
        self.carry
            .as_ref()
            .map(|p| (p.first_line(), p.first_offset()))
    }

    /// Hands out the event still open, at the end of the input.
    pub fn finish<'a>(&mut self, settings: impl Into<Parsing<'a>>, out: &mut Vec<LogEvent>) {
        if let Some(done) = self.carry.take() {
            out.push(done.into_event(settings));
        }
    }
}
