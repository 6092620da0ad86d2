//! A bounded per-peer send queue that drops its oldest frame when full.
//!
//! Gossip must never wait on one peer: `send`/`broadcast` only push here and
//! return. When a peer is slow or unreachable its queue fills and the oldest
//! frames go first; consensus artifacts are superseded by newer ones (a
//! later height, a newer share), so the newest are the ones worth keeping.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::Notify;

#[derive(Debug)]
pub(crate) struct SendQueue {
    frames: Mutex<VecDeque<Bytes>>,
    capacity: usize,
    ready: Notify,
}

impl SendQueue {
    pub(crate) fn new(capacity: usize) -> SendQueue {
        SendQueue { frames: Mutex::new(VecDeque::new()), capacity: capacity.max(1), ready: Notify::new() }
    }

    /// Appends `frame`; returns whether an older frame was dropped for it.
    pub(crate) fn push(&self, frame: Bytes) -> bool {
        let dropped = {
            let mut frames = self.frames.lock();
            let dropped = frames.len() >= self.capacity && frames.pop_front().is_some();
            frames.push_back(frame);
            dropped
        };
        self.ready.notify_one();
        dropped
    }

    /// Puts back a frame that could not be sent (its connection failed before
    /// any byte of it left), unless the queue has filled up meanwhile.
    pub(crate) fn push_front(&self, frame: Bytes) {
        let mut frames = self.frames.lock();
        if frames.len() < self.capacity {
            frames.push_front(frame);
        }
        drop(frames);
        self.ready.notify_one();
    }

    /// Waits for the next frame.
    pub(crate) async fn pop(&self) -> Bytes {
        loop {
            // Register interest before checking, so a push between the check
            // and the wait is not missed.
            let notified = self.ready.notified();
            if let Some(frame) = self.frames.lock().pop_front() {
                return frame;
            }
            notified.await;
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.frames.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drops_oldest_when_full() {
        let q = SendQueue::new(2);
        assert!(!q.push(Bytes::from_static(b"a")));
        assert!(!q.push(Bytes::from_static(b"b")));
        assert!(q.push(Bytes::from_static(b"c")));
        assert_eq!(q.len(), 2);
        assert_eq!(&q.pop().await[..], b"b");
        q.push_front(Bytes::from_static(b"b"));
        assert_eq!(&q.pop().await[..], b"b");
        assert_eq!(&q.pop().await[..], b"c");
    }

    #[tokio::test]
    async fn pop_waits_for_push() {
        let q = std::sync::Arc::new(SendQueue::new(4));
        let q2 = q.clone();
        let popper = tokio::spawn(async move { q2.pop().await });
        tokio::task::yield_now().await;
        q.push(Bytes::from_static(b"x"));
        assert_eq!(&popper.await.unwrap()[..], b"x");
    }
}
