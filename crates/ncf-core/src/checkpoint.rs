//! Per-object delivery progress, so that a redelivered or retried object is neither sent twice
//! nor started over. Pure: the encoding, and the tracker that knows which lines are delivered
//! (by batch: each batch carries the runs of lines it holds, [`LineRuns`]).
//!
//! A progress record belongs to one object version (its ETag). "Partial" says: every line before
//! `next_line` is delivered except those in `pending` (ranges of lines whose events were not yet
//! confirmed when the record was written); lines from `next_line` on are not. Reading resumes at
//! the first undelivered line (`resume_line`, at byte `resume_offset` of the decoded stream).

use std::collections::BTreeMap;

/// The object tag that holds the progress record.
pub const TAG_KEY: &str = "ncf-progress";
/// S3 tag values are at most 256 characters.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-tagging.html>
pub const MAX_TAG_VALUE: usize = 256;
/// S3 allows at most 10 tags per object.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-tagging.html>
pub const MAX_TAGS: usize = 10;
const VERSION: &str = "1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Done {
        lines: u64,
    },
    Partial {
        /// The stream was compressed, gzip or zstd (resume by decompressing from the start and
        /// skipping).
        gzip: bool,
        next_line: u64,
        next_offset: u64,
        resume_line: u64,
        resume_offset: u64,
        /// Inclusive line ranges below `next_line` still to be sent, ascending.
        pending: Vec<(u64, u64)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressRecord {
    pub etag: String,
    pub state: State,
}

impl ProgressRecord {
    /// The tag value: `1/<etag>/done/<lines>` or
    /// `1/<etag>/<gz|plain>/<next_line>/<next_offset>/<resume_line>/<resume_offset>/<a-b+c-d|->`.
    /// Only characters S3 allows in tag values are used.
    pub fn encode(&self) -> String {
        match &self.state {
            State::Done { lines } => format!("{VERSION}/{}/done/{lines}", self.etag),
            State::Partial {
                gzip,
                next_line,
                next_offset,
                resume_line,
                resume_offset,
                pending,
            } => {
                let mut ranges: Vec<String> =
                    pending.iter().map(|(a, b)| format!("{a}-{b}")).collect();
                let head = format!(
                    "{VERSION}/{}/{}/{next_line}/{next_offset}/{resume_line}/{resume_offset}/",
                    self.etag,
                    if *gzip { "gz" } else { "plain" }
                );
                // Too many ranges for one tag: merge the closest neighbours (re-sending the
                // lines between them is the price; it never loses any).
                let mut merged = pending.clone();
                while head.len() + ranges.join("+").len().max(1) > MAX_TAG_VALUE && merged.len() > 1
                {
                    let i = (0..merged.len() - 1)
                        .min_by_key(|&i| merged[i + 1].0 - merged[i].1)
                        .unwrap_or(0);
                    merged[i].1 = merged[i + 1].1;
                    merged.remove(i + 1);
                    ranges = merged.iter().map(|(a, b)| format!("{a}-{b}")).collect();
                }
                if ranges.is_empty() {
                    format!("{head}-")
                } else {
                    format!("{head}{}", ranges.join("+"))
                }
            }
        }
    }

    pub fn decode(value: &str) -> Option<Self> {
        let parts: Vec<&str> = value.split('/').collect();
        let num = |s: &str| s.parse::<u64>().ok();
        match parts.as_slice() {
            [VERSION, etag, "done", lines] => Some(Self {
                etag: etag.to_string(),
                state: State::Done { lines: num(lines)? },
            }),
            [VERSION, etag, enc, nl, no, rl, ro, ranges] => {
                let gzip = match *enc {
                    "gz" => true,
                    "plain" => false,
                    _ => return None,
                };
                let pending = if *ranges == "-" {
                    Vec::new()
                } else {
                    ranges
                        .split('+')
                        .map(|r| {
                            r.split_once('-')
                                .and_then(|(a, b)| Some((num(a)?, num(b)?)))
                        })
                        .collect::<Option<Vec<_>>>()?
                };
                Some(Self {
                    etag: etag.to_string(),
                    state: State::Partial {
                        gzip,
                        next_line: num(nl)?,
                        next_offset: num(no)?,
                        resume_line: num(rl)?,
                        resume_offset: num(ro)?,
                        pending,
                    },
                })
            }
            _ => None,
        }
    }
}

/// What an earlier run left: which lines of the object must still be sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resume {
    pub next_line: u64,
    pub next_offset: u64,
    pub pending: Vec<(u64, u64)>,
}

impl Resume {
    /// True when the event starting at `line` was not delivered by an earlier run.
    pub fn wanted(&self, line: u64) -> bool {
        line >= self.next_line || self.pending.iter().any(|(a, b)| (*a..=*b).contains(&line))
    }
}

/// A run of consecutive lines whose events went to one batch, with the decoded byte offset of
/// its first line (where a resumed read would start). An event counts by its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRun {
    pub first: u64,
    pub offset: u64,
    pub last: u64,
}

/// The lines a batch carries, as a short list of runs. A batch is one UTC day's events, so it
/// may skip lines (other days, blank or rejected lines): each gap starts a new run. The parts of
/// an oversize line are one line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineRuns(Vec<LineRun>);

impl LineRuns {
    /// Adds the event starting at `line` (byte `offset`); events come in line order, so this
    /// extends the last run or starts a new one.
    pub fn push(&mut self, line: u64, offset: u64) {
        match self.0.last_mut() {
            Some(run) if run.first <= line && line <= run.last + 1 => {
                run.last = run.last.max(line);
            }
            _ => self.0.push(LineRun {
                first: line,
                offset,
                last: line,
            }),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &LineRun> {
        self.0.iter()
    }

    pub fn first_line(&self) -> Option<u64> {
        self.0.iter().map(|r| r.first).min()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Which batches were handed to the sink but not yet confirmed, each with the line runs it
/// carries: one entry per batch, not per event.
#[derive(Debug, Default)]
pub struct Tracker {
    outstanding: BTreeMap<u64, LineRuns>,
    next_ticket: u64,
}

impl Tracker {
    /// A batch with these lines is on its way; the ticket confirms it.
    pub fn sent(&mut self, lines: LineRuns) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if !lines.is_empty() {
            self.outstanding.insert(ticket, lines);
        }
        ticket
    }

    pub fn confirmed(&mut self, ticket: u64) {
        self.outstanding.remove(&ticket);
    }

    pub fn is_idle(&self) -> bool {
        self.outstanding.is_empty()
    }

    /// The progress record, given where this run stands: every line before `next_line` (at byte
    /// `next_offset` of the decoded stream) has been handed over or skipped, and the events of
    /// the `unsent` runs (held for batching) are not yet in any batch. `earlier` is what a
    /// previous run left (default when starting fresh).
    pub fn snapshot<'r>(
        &self,
        gzip: bool,
        next_line: u64,
        next_offset: u64,
        earlier: &Resume,
        unsent: impl IntoIterator<Item = &'r LineRun>,
    ) -> State {
        let mut runs: Vec<LineRun> = self
            .outstanding
            .values()
            .flat_map(LineRuns::iter)
            .copied()
            .chain(unsent.into_iter().copied())
            .collect();
        runs.sort_unstable_by_key(|r| (r.first, r.last));
        // The first line still to be sent, and where it starts.
        let own_first = runs.first().map(|r| (r.first, r.offset));
        let mut ranges: Vec<(u64, u64)> = runs.iter().map(|r| (r.first, r.last)).collect();
        let (record_line, record_offset) = if next_line < earlier.next_line {
            // Not yet back where the earlier run got to: its pending ranges from here on are
            // still pending, and the lines between them it delivered.
            ranges.extend(
                earlier
                    .pending
                    .iter()
                    .filter(|(_, b)| *b >= next_line)
                    .map(|&(a, b)| (a.max(next_line), b)),
            );
            ranges.sort_unstable();
            (earlier.next_line, earlier.next_offset)
        } else {
            (next_line, next_offset)
        };
        let mut pending: Vec<(u64, u64)> = Vec::new();
        for (a, b) in ranges {
            match pending.last_mut() {
                Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
                _ => pending.push((a, b)),
            }
        }
        let (resume_line, resume_offset) = match own_first {
            Some(first) => first,
            // Only an earlier run's ranges are left: they start at or after where we are.
            None if !pending.is_empty() => (next_line, next_offset),
            None => (record_line, record_offset),
        };
        State::Partial {
            gzip,
            next_line: record_line,
            next_offset: record_offset,
            resume_line,
            resume_offset,
            pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let cases = [
            ProgressRecord {
                etag: "9b2cf535f27731c974343645a3985328".into(),
                state: State::Done { lines: 60_000 },
            },
            ProgressRecord {
                etag: "d41d8cd98f00b204e9800998ecf8427e-12".into(),
                state: State::Partial {
                    gzip: true,
                    next_line: 5000,
                    next_offset: 812_345,
                    resume_line: 4100,
                    resume_offset: 700_001,
                    pending: vec![(4100, 4200), (4800, 4999)],
                },
            },
            ProgressRecord {
                etag: "e".into(),
                state: State::Partial {
                    gzip: false,
                    next_line: 1,
                    next_offset: 0,
                    resume_line: 1,
                    resume_offset: 0,
                    pending: vec![],
                },
            },
        ];
        for p in cases {
            let v = p.encode();
            assert!(v.len() <= MAX_TAG_VALUE);
            assert!(
                v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-=._:/@ ".contains(c)),
                "{v}"
            );
            assert_eq!(ProgressRecord::decode(&v), Some(p));
        }
        for bad in [
            "",
            "2/e/done/1",
            "1/e/done/x",
            "1/e/zip/1/2/3/4/-",
            "1/e/gz/1/2/3/4/5",
            "1/e/gz/1/2/3/4/5-",
        ] {
            assert_eq!(ProgressRecord::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn too_many_ranges_are_merged_to_fit_a_tag() {
        let pending: Vec<(u64, u64)> = (0..100)
            .map(|i| (i * 1000 + 1_000_000, i * 1000 + 1_000_010 + (i % 7) * 50))
            .collect();
        let p = ProgressRecord {
            etag: "9b2cf535f27731c974343645a3985328".into(),
            state: State::Partial {
                gzip: true,
                next_line: 2_000_000,
                next_offset: 1,
                resume_line: 1_000_000,
                resume_offset: 0,
                pending: pending.clone(),
            },
        };
        let v = p.encode();
        assert!(v.len() <= MAX_TAG_VALUE, "{}", v.len());
        let Some(ProgressRecord {
            state: State::Partial {
                pending: merged, ..
            },
            ..
        }) = ProgressRecord::decode(&v)
        else {
            panic!("{v}")
        };
        // Every originally pending line is still pending after merging.
        for (a, b) in pending {
            assert!(
                merged.iter().any(|(x, y)| *x <= a && b <= *y),
                "{a}-{b} lost"
            );
        }
    }

    fn runs(lines: &[(u64, u64)]) -> LineRuns {
        let mut r = LineRuns::default();
        for &(line, offset) in lines {
            r.push(line, offset);
        }
        r
    }

    #[test]
    fn line_runs_grow_with_consecutive_lines_only() {
        let r = runs(&[
            (1, 0),
            (2, 10),
            (3, 20),
            (3, 20),
            (7, 60),
            (8, 70),
            (10, 90),
        ]);
        let got: Vec<(u64, u64, u64)> = r.iter().map(|r| (r.first, r.offset, r.last)).collect();
        assert_eq!(got, [(1, 0, 3), (7, 60, 8), (10, 90, 10)]);
        assert_eq!(r.first_line(), Some(1));
        assert!(LineRuns::default().is_empty());
    }

    #[test]
    fn tracker_snapshot() {
        let mut t = Tracker::default();
        // Two batches: lines 1 and 3 (a day) and lines 2, 3 and 7 (another; line 3's parts
        // straddle both batches).
        let a = t.sent(runs(&[(1, 0), (3, 20)]));
        let b = t.sent(runs(&[(2, 10), (3, 20), (7, 60)]));
        t.confirmed(a);
        let s = t.snapshot(false, 10, 100, &Resume::default(), []);
        assert_eq!(
            s,
            State::Partial {
                gzip: false,
                next_line: 10,
                next_offset: 100,
                resume_line: 2,
                resume_offset: 10,
                pending: vec![(2, 3), (7, 7)]
            }
        );
        // Held for batching counts as not delivered.
        let held = runs(&[(8, 70), (9, 80)]);
        let s = t.snapshot(false, 10, 100, &Resume::default(), held.iter());
        assert!(
            matches!(&s, State::Partial { resume_line: 2, pending, .. } if *pending == [(2, 3), (7, 9)]),
            "{s:?}"
        );
        t.confirmed(b);
        assert!(t.is_idle());
        let s = t.snapshot(true, 10, 100, &Resume::default(), []);
        assert_eq!(
            s,
            State::Partial {
                gzip: true,
                next_line: 10,
                next_offset: 100,
                resume_line: 10,
                resume_offset: 100,
                pending: vec![]
            }
        );
    }

    #[test]
    fn batches_confirmed_out_of_order_leave_holes() {
        let mut t = Tracker::default();
        let tickets: Vec<u64> = (0..4)
            .map(|i| {
                t.sent(runs(&[
                    (i * 10 + 1, i * 1000),
                    (i * 10 + 2, i * 1000 + 100),
                ]))
            })
            .collect();
        t.confirmed(tickets[3]);
        t.confirmed(tickets[1]);
        let s = t.snapshot(false, 50, 5000, &Resume::default(), []);
        assert_eq!(
            s,
            State::Partial {
                gzip: false,
                next_line: 50,
                next_offset: 5000,
                resume_line: 1,
                resume_offset: 0,
                pending: vec![(1, 2), (21, 22)]
            }
        );
        t.confirmed(tickets[0]);
        let s = t.snapshot(false, 50, 5000, &Resume::default(), []);
        assert!(
            matches!(&s, State::Partial { resume_line: 21, resume_offset: 2000, pending, .. } if *pending == [(21, 22)]),
            "{s:?}"
        );
    }

    #[test]
    fn a_resumed_run_keeps_what_the_earlier_run_left_pending() {
        // The earlier run got to line 100 with lines 20–30 and 60–70 unconfirmed.
        let earlier = Resume {
            next_line: 100,
            next_offset: 5000,
            pending: vec![(20, 30), (60, 70)],
        };
        let mut t = Tracker::default();
        // This run re-read from line 20 up to line 65 and has line 62 in flight.
        let ticket = t.sent(runs(&[(62, 3100)]));
        let s = t.snapshot(false, 65, 3200, &earlier, []);
        assert_eq!(
            s,
            State::Partial {
                gzip: false,
                next_line: 100,
                next_offset: 5000,
                resume_line: 62,
                resume_offset: 3100,
                pending: vec![(62, 62), (65, 70)]
            }
        );
        t.confirmed(ticket);
        let s = t.snapshot(false, 65, 3200, &earlier, []);
        assert_eq!(
            s,
            State::Partial {
                gzip: false,
                next_line: 100,
                next_offset: 5000,
                resume_line: 65,
                resume_offset: 3200,
                pending: vec![(65, 70)]
            }
        );
        // Past the earlier run's end, only this run's own progress counts.
        let s = t.snapshot(false, 120, 6000, &earlier, []);
        assert_eq!(
            s,
            State::Partial {
                gzip: false,
                next_line: 120,
                next_offset: 6000,
                resume_line: 120,
                resume_offset: 6000,
                pending: vec![]
            }
        );
    }

    #[test]
    fn resume_wants_pending_and_new_lines_only() {
        let r = Resume {
            next_line: 100,
            next_offset: 0,
            pending: vec![(10, 12), (50, 50)],
        };
        let wanted: Vec<u64> = (1..=101).filter(|&l| r.wanted(l)).collect();
        assert_eq!(wanted, [10, 11, 12, 50, 100, 101]);
    }
}
