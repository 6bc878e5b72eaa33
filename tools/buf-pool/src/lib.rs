//! Buffers that come back. A reader fills one, hands it on as [`Bytes`],
//! and when the last clone of those bytes is dropped (sent, or a retry's
//! copy gone) the buffer returns for the next read. A long transfer then
//! neither allocates nor faults in fresh pages per chunk, and memory stays
//! at what is in flight plus `keep` spare buffers.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

pub struct BufPool {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl BufPool {
    /// A pool that keeps at most `keep` returned buffers.
    pub fn new(keep: usize) -> Arc<BufPool> {
        Arc::new(BufPool {
            free: Mutex::new(Vec::new()),
            keep,
        })
    }

    /// An empty buffer with room for `capacity` bytes, reused if one is
    /// free. Fill it with `Read::read_to_end`, which writes into the spare
    /// capacity without zeroing it first.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        match reused {
            Some(mut b) => {
                b.reserve(capacity);
                b
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// `buf` as `Bytes`; the buffer comes back here once they are dropped.
    pub fn share(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        buf.clear();
        // A poisoned lock only loses the reuse; the buffer is freed.
        if let Ok(mut f) = self.free.lock()
            && f.len() < self.keep
        {
            f.push(buf);
        }
    }

    /// Buffers waiting to be reused.
    pub fn spare(&self) -> usize {
        self.free.lock().map_or(0, |f| f.len())
    }
}

struct Pooled {
    buf: Vec<u8>,
    pool: Arc<BufPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_returns_only_when_the_last_clone_is_dropped() {
        let pool = BufPool::new(4);
        let mut buf = pool.take(16);
        buf.extend_from_slice(b"hello");
        let ptr = buf.as_ptr();
        let a = pool.share(buf);
        let b = a.clone();
        drop(a);
        assert_eq!(pool.spare(), 0);
        assert_eq!(&b[..], b"hello");
        drop(b);
        assert_eq!(pool.spare(), 1);
        let again = pool.take(16);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr, "the same allocation is reused");
    }

    #[test]
    fn keeps_at_most_keep() {
        let pool = BufPool::new(2);
        let shared: Vec<Bytes> = (0..5).map(|_| pool.share(pool.take(8))).collect();
        drop(shared);
        assert_eq!(pool.spare(), 2);
    }
}
