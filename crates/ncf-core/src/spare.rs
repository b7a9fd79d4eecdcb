//! Buffers kept for reuse across threads: a big buffer (a block of lines, a rendered block, a
//! PutLogEvents body of about 1 MiB) is allocated once and refilled, instead of allocated for
//! each use. A fresh allocation of that size comes from the kernel zeroed, a page fault for
//! every 4 KiB written into it.

/// Buffers kept for the next users (at most `keep`).
#[derive(Debug)]
pub struct Spare<T> {
    keep: usize,
    buffers: std::sync::Mutex<Vec<T>>,
}

impl<T> Spare<T> {
    pub fn new(keep: usize) -> Self {
        Self {
            keep,
            buffers: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A kept buffer, if any.
    pub fn take(&self) -> Option<T> {
        self.buffers.lock().ok().and_then(|mut b| b.pop())
    }

    /// Keeps `buffer` for reuse, unless enough are kept already.
    pub fn give(&self, buffer: T) {
        if let Ok(mut b) = self.buffers.lock()
            && b.len() < self.keep
        {
            b.push(buffer);
        }
    }
}
