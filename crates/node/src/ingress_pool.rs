//! The ingress pool: validated messages waiting to be put into a block.
//!
//! Node-local (not replicated): messages arrive over HTTP in any order on
//! any node. The pool deduplicates by message id, bounds its size, and hands
//! out block payloads in arrival order.

use cairn_types::Time;
use cairn_types::messages::{Ingress, MessageId};
use std::collections::{HashMap, VecDeque};

/// Limits of the pool.
#[derive(Clone, Copy, Debug)]
pub struct PoolLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits { max_messages: 100_000, max_bytes: 512 << 20 }
    }
}

/// Validated ingress messages not yet in a block.
#[derive(Default)]
pub struct IngressPool {
    messages: HashMap<MessageId, Ingress>,
    order: VecDeque<MessageId>,
    bytes: usize,
    limits: PoolLimits,
}

/// The pool is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFull;

fn size(i: &Ingress) -> usize {
    i.method_payload.len() + i.method_name.len() + 128
}

impl IngressPool {
    /// An empty pool.
    pub fn new(limits: PoolLimits) -> Self {
        IngressPool { limits, ..Default::default() }
    }

    /// Adds a message; a duplicate id is accepted and ignored.
    pub fn insert(&mut self, ingress: Ingress) -> Result<(), PoolFull> {
        if self.messages.contains_key(&ingress.message_id) {
            return Ok(());
        }
        let bytes = size(&ingress);
        if self.messages.len() >= self.limits.max_messages || self.bytes + bytes > self.limits.max_bytes {
            return Err(PoolFull);
        }
        self.bytes += bytes;
        self.order.push_back(ingress.message_id);
        self.messages.insert(ingress.message_id, ingress);
        Ok(())
    }

    /// Number of messages waiting.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Whether the pool holds `id`.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.messages.contains_key(id)
    }

    /// Takes up to `max_messages` / `max_bytes` of messages in arrival order,
    /// dropping those that expired before `now` or that `already_known`.
    pub fn take_payload(
        &mut self,
        max_messages: usize,
        max_bytes: usize,
        now: Time,
        already_known: impl Fn(&MessageId) -> bool,
    ) -> Vec<Ingress> {
        let mut payload = Vec::new();
        let mut bytes = 0;
        while let Some(id) = self.order.front().copied() {
            let Some(msg) = self.messages.get(&id) else {
                self.order.pop_front();
                continue;
            };
            if msg.expiry_time < now || already_known(&id) {
                self.remove_front();
                continue;
            }
            let n = size(msg);
            if payload.len() >= max_messages || (bytes + n > max_bytes && !payload.is_empty()) {
                break;
            }
            bytes += n;
            payload.push(self.remove_front());
        }
        payload.into_iter().flatten().collect()
    }

    fn remove_front(&mut self) -> Option<Ingress> {
        let id = self.order.pop_front()?;
        let msg = self.messages.remove(&id)?;
        self.bytes -= size(&msg);
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_types::{CanisterId, Principal};

    fn msg(n: u8, expiry: u64) -> Ingress {
        Ingress {
            source: Principal::ANONYMOUS,
            receiver: CanisterId::from_u64(1),
            effective_canister_id: CanisterId::from_u64(1),
            method_name: "m".into(),
            method_payload: vec![0; 100],
            message_id: MessageId([n; 32]),
            expiry_time: Time::from_secs(expiry),
            sender_info: None,
        }
    }

    #[test]
    fn dedups_orders_expires_and_limits() {
        let mut p = IngressPool::new(PoolLimits { max_messages: 3, max_bytes: 10_000 });
        p.insert(msg(1, 100)).unwrap();
        p.insert(msg(1, 100)).unwrap();
        p.insert(msg(2, 5)).unwrap();
        p.insert(msg(3, 100)).unwrap();
        assert_eq!(p.insert(msg(4, 100)), Err(PoolFull));
        let known = |id: &MessageId| *id == MessageId([3; 32]);
        let payload = p.take_payload(10, 1 << 20, Time::from_secs(10), known);
        assert_eq!(payload.iter().map(|m| m.message_id.0[0]).collect::<Vec<_>>(), vec![1]);
        assert!(p.is_empty());
    }
}
