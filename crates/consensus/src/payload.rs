//! Payloads: the seam between consensus and what blocks carry.
//!
//! Consensus asks a [`PayloadHandler`] (supplied by the node) to build the
//! payload of a new block and to validate the payload of a proposal. The
//! handler sees the new block's context and its *undelivered* ancestors;
//! everything below them is finalized and was handed to
//! [`PayloadHandler::on_delivered`] before (as in the IC, where payloads
//! above the certified height come from the chain and older ones from the
//! state), so a handler that remembers delivered payloads (or consults the
//! node's ingress history) sees the whole chain.
//!
//! [`IngressPayloadHandler`] implements the IC's ingress rules on top of a
//! small [`IngressSource`] (decoding and candidate selection): at most 1000
//! messages and 4 MiB per block, every message unexpired at the block time
//! and not too far in the future, and no message twice within its expiry
//! window.

use crate::hash::CryptoHash;
use crate::types::{Batch, Block, BlockContext, Payload};
use cairn_types::messages::MessageId;
use cairn_types::{Height, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// An ancestor of the block being built or validated.
#[derive(Clone, Copy, Debug)]
pub struct PastBlock<'a> {
    /// The ancestor's hash.
    pub hash: CryptoHash,
    /// The ancestor.
    pub block: &'a Block,
}

/// What a payload handler knows about the block being built or validated.
#[derive(Clone, Copy, Debug)]
pub struct PayloadContext<'a> {
    /// Height of the new block.
    pub height: Height,
    /// Context of the new block (its time is the payload's reference time).
    pub context: &'a BlockContext,
    /// Undelivered ancestors, parent first, contiguous by height.
    /// Everything below the last one is finalized and was passed to
    /// `on_delivered`.
    pub past: &'a [PastBlock<'a>],
}

/// Why a payload was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The payload breaks a rule; the proposal is invalid.
    #[error("invalid payload: {0}")]
    Invalid(String),
    /// The payload can't be judged yet (missing local data); retry later.
    #[error("payload can't be validated yet: {0}")]
    NotYet(String),
}

/// Builds and validates block payloads; supplied by the node.
///
/// Validation must be deterministic: every honest node must reach the same
/// verdict on the same payload and chain.
pub trait PayloadHandler {
    /// The payload of a block this node proposes.
    fn build(&mut self, ctx: &PayloadContext<'_>) -> Payload;
    /// Checks a proposed payload.
    fn validate(&mut self, ctx: &PayloadContext<'_>, payload: &Payload) -> Result<(), PayloadError>;
    /// A block was finalized and delivered (in height order).
    fn on_delivered(&mut self, _batch: &Batch) {}
}

/// A handler for blocks that carry nothing (tests, idle subnets).
#[derive(Clone, Copy, Debug, Default)]
pub struct EmptyPayloadHandler;

impl PayloadHandler for EmptyPayloadHandler {
    fn build(&mut self, _ctx: &PayloadContext<'_>) -> Payload {
        Payload::default()
    }
    fn validate(&mut self, _ctx: &PayloadContext<'_>, payload: &Payload) -> Result<(), PayloadError> {
        if payload.is_empty() { Ok(()) } else { Err(PayloadError::Invalid("expected an empty payload".into())) }
    }
}

/// Limits on ingress in blocks (IC defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressLimits {
    /// Messages per block.
    pub max_messages: usize,
    /// Total message bytes per block.
    pub max_bytes: u64,
    /// Longest time-to-live a client may give a message.
    pub max_ttl: Duration,
    /// Clock drift allowed on top of the TTL when building.
    pub permitted_drift: Duration,
    /// Extra slack validators allow on top of that (makers' clocks differ).
    pub validator_slack: Duration,
}

impl Default for IngressLimits {
    fn default() -> Self {
        IngressLimits {
            max_messages: 1000,
            max_bytes: 4 * 1024 * 1024,
            max_ttl: Duration::from_secs(300),
            permitted_drift: Duration::from_secs(60),
            validator_slack: Duration::from_secs(30),
        }
    }
}

impl IngressLimits {
    fn build_horizon(&self) -> Duration {
        self.max_ttl + self.permitted_drift
    }
    fn validate_horizon(&self) -> Duration {
        self.max_ttl + self.permitted_drift + self.validator_slack
    }
}

/// What consensus needs to know about one ingress message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IngressInfo {
    /// The message id (request id).
    pub id: MessageId,
    /// When the message expires.
    pub expiry: Time,
}

/// The node's ingress pool, seen from consensus.
pub trait IngressSource {
    /// Decodes a message: its id and expiry, or why it is unacceptable in a
    /// block at `time` (malformed, bad signature, expired delegation). Must
    /// be deterministic: the same bytes and time always give the same answer.
    fn inspect(&self, message: &[u8], time: Time) -> Result<IngressInfo, String>;
    /// Every message the pool could offer for a block at `time`, best
    /// first (shared, so offering them costs no copies). The handler skips
    /// those already in undelivered ancestors and truncates the rest to the
    /// subnet's limits; the pool must not truncate, or messages already in
    /// the parent could crowd new ones out of a full block.
    fn candidates(&mut self, time: Time) -> Vec<Arc<Vec<u8>>>;
    /// These messages were finalized; the pool can drop them.
    fn on_delivered(&mut self, _ids: &[MessageId]) {}
}

/// The IC's ingress payload rules on top of an [`IngressSource`].
///
/// Remembers the ids of finalized messages until they expire, so duplicates
/// older than the ancestors shown by consensus are still caught. After a
/// restart, seed it with [`IngressPayloadHandler::remember_finalized`] from
/// the node's ingress history.
#[derive(Debug)]
pub struct IngressPayloadHandler<S> {
    source: S,
    limits: IngressLimits,
    finalized: BTreeMap<MessageId, Time>,
    by_expiry: BTreeSet<(Time, MessageId)>,
    /// Parsed ids of recent blocks, so ancestors aren't decoded again and again.
    parsed: BTreeMap<(Height, CryptoHash), Vec<IngressInfo>>,
}

fn horizon_from(time: Time, d: Duration) -> Time {
    time.saturating_add(d)
}

impl<S: IngressSource> IngressPayloadHandler<S> {
    /// A handler with these limits.
    pub fn new(source: S, limits: IngressLimits) -> Self {
        IngressPayloadHandler {
            source,
            limits,
            finalized: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
            parsed: BTreeMap::new(),
        }
    }

    /// The ingress source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The ingress source, mutably (to add messages).
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// The limits.
    pub fn limits(&self) -> &IngressLimits {
        &self.limits
    }

    /// Records a finalized message (delivery, or history after a restart).
    pub fn remember_finalized(&mut self, info: IngressInfo) {
        if self.finalized.insert(info.id, info.expiry).is_none() {
            self.by_expiry.insert((info.expiry, info.id));
        }
    }

    /// Forgets finalized messages that expired before `time`: no block at or
    /// after `time` may carry them anyway.
    fn forget_expired(&mut self, time: Time) {
        while let Some(&(exp, id)) = self.by_expiry.first() {
            if exp >= time {
                break;
            }
            self.by_expiry.pop_first();
            self.finalized.remove(&id);
        }
    }

    fn infos(&mut self, height: Height, hash: CryptoHash, block: &Block) -> Vec<IngressInfo> {
        if let Some(v) = self.parsed.get(&(height, hash)) {
            return v.clone();
        }
        // Ancestors were validated, so every message decodes.
        let time = block.context.time;
        let v: Vec<IngressInfo> =
            block.payload.messages.iter().filter_map(|m| self.source.inspect(m, time).ok()).collect();
        self.parsed.insert((height, hash), v.clone());
        v
    }

    /// Ids in ancestors that could still collide with a block at `time`:
    /// a message in an ancestor at time `t` expires by `t + horizon`, so
    /// older ancestors can't hold an unexpired message.
    fn ids_in_past(&mut self, ctx: &PayloadContext<'_>) -> BTreeSet<MessageId> {
        let horizon = self.limits.validate_horizon();
        let mut ids = BTreeSet::new();
        for p in ctx.past {
            if horizon_from(p.block.context.time, horizon) < ctx.context.time {
                break;
            }
            for i in self.infos(p.block.height, p.hash, p.block) {
                ids.insert(i.id);
            }
        }
        ids
    }
}

impl<S: IngressSource> PayloadHandler for IngressPayloadHandler<S> {
    fn build(&mut self, ctx: &PayloadContext<'_>) -> Payload {
        let time = ctx.context.time;
        let horizon = horizon_from(time, self.limits.build_horizon());
        let mut seen = self.ids_in_past(ctx);
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for m in self.source.candidates(time) {
            if out.len() >= self.limits.max_messages {
                break;
            }
            if bytes + m.len() as u64 > self.limits.max_bytes {
                continue;
            }
            let Ok(info) = self.source.inspect(&m, time) else { continue };
            if info.expiry < time || info.expiry > horizon || self.finalized.contains_key(&info.id) {
                continue;
            }
            if !seen.insert(info.id) {
                continue;
            }
            bytes += m.len() as u64;
            out.push(m.as_ref().clone());
        }
        Payload::new(out)
    }

    fn validate(&mut self, ctx: &PayloadContext<'_>, payload: &Payload) -> Result<(), PayloadError> {
        if payload.len() > self.limits.max_messages {
            return Err(PayloadError::Invalid(format!(
                "{} messages, at most {} allowed",
                payload.len(),
                self.limits.max_messages
            )));
        }
        if payload.byte_size() > self.limits.max_bytes {
            return Err(PayloadError::Invalid(format!(
                "{} bytes of messages, at most {} allowed",
                payload.byte_size(),
                self.limits.max_bytes
            )));
        }
        let time = ctx.context.time;
        let horizon = horizon_from(time, self.limits.validate_horizon());
        let past = self.ids_in_past(ctx);
        let mut here = BTreeSet::new();
        for m in &payload.messages {
            let info = self.source.inspect(m, time).map_err(PayloadError::Invalid)?;
            if info.expiry < time {
                return Err(PayloadError::Invalid(format!("message {} expired", info.id)));
            }
            if info.expiry > horizon {
                return Err(PayloadError::Invalid(format!("message {} expires too far in the future", info.id)));
            }
            if !here.insert(info.id) {
                return Err(PayloadError::Invalid(format!("message {} appears twice", info.id)));
            }
            if past.contains(&info.id) || self.finalized.contains_key(&info.id) {
                return Err(PayloadError::Invalid(format!("message {} was already included", info.id)));
            }
        }
        Ok(())
    }

    fn on_delivered(&mut self, batch: &Batch) {
        let infos = self.infos(batch.height, batch.block_hash, &batch.block);
        for i in &infos {
            self.remember_finalized(*i);
        }
        self.forget_expired(batch.block.context.time);
        // Blocks far below the delivered height are never shown as ancestors
        // again (they are purged from the pool long before).
        let keep_from = Height(batch.height.0.saturating_sub(1024));
        self.parsed = self.parsed.split_off(&(keep_from, CryptoHash::ZERO));
        let ids: Vec<MessageId> = infos.iter().map(|i| i.id).collect();
        self.source.on_delivered(&ids);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Rank;
    use cairn_types::RegistryVersion;

    /// Messages are `id (1 byte) · expiry seconds (8 bytes) · padding`.
    #[derive(Default)]
    struct Src {
        pending: Vec<Vec<u8>>,
        delivered: Vec<MessageId>,
    }

    fn msg(id: u8, expiry_s: u64, pad: usize) -> Vec<u8> {
        let mut v = vec![id];
        v.extend_from_slice(&expiry_s.to_be_bytes());
        v.extend(std::iter::repeat_n(0u8, pad));
        v
    }

    impl IngressSource for Src {
        fn inspect(&self, m: &[u8], _time: Time) -> Result<IngressInfo, String> {
            if m.len() < 9 {
                return Err("short".into());
            }
            Ok(IngressInfo {
                id: MessageId([m[0]; 32]),
                expiry: Time::from_secs(u64::from_be_bytes(m[1..9].try_into().unwrap())),
            })
        }
        fn candidates(&mut self, _time: Time) -> Vec<Arc<Vec<u8>>> {
            self.pending.iter().cloned().map(Arc::new).collect()
        }
        fn on_delivered(&mut self, ids: &[MessageId]) {
            self.delivered.extend_from_slice(ids);
        }
    }

    fn block(h: u64, t: u64, msgs: Vec<Vec<u8>>) -> Block {
        Block {
            parent: CryptoHash::ZERO,
            height: Height(h),
            rank: Rank(0),
            context: BlockContext {
                time: Time::from_secs(t),
                registry_version: RegistryVersion(1),
                certified_height: Height(0),
            },
            payload: Payload::new(msgs),
            dkg: Default::default(),
        }
    }

    fn ctx_at<'a>(h: u64, c: &'a BlockContext, past: &'a [PastBlock<'a>]) -> PayloadContext<'a> {
        PayloadContext { height: Height(h), context: c, past }
    }

    fn handler() -> IngressPayloadHandler<Src> {
        IngressPayloadHandler::new(Src::default(), IngressLimits::default())
    }

    #[test]
    fn build_respects_limits_and_filters() {
        let mut h = IngressPayloadHandler::new(
            Src::default(),
            IngressLimits { max_messages: 3, max_bytes: 100, ..IngressLimits::default() },
        );
        let t = 1000;
        h.source_mut().pending = vec![
            msg(1, t + 10, 0),
            msg(1, t + 10, 0),     // duplicate
            msg(2, t - 1, 0),      // expired
            msg(3, t + 10_000, 0), // too far ahead
            vec![1, 2],            // malformed
            msg(4, t + 10, 200),   // too big
            msg(5, t + 10, 0),
            msg(6, t + 10, 0),
            msg(7, t + 10, 0), // over the count limit
        ];
        let ctx = block(2, t, vec![]).context;
        let p = h.build(&ctx_at(2, &ctx, &[]));
        let ids: Vec<u8> = p.messages.iter().map(|m| m[0]).collect();
        assert_eq!(ids, vec![1, 5, 6]);
        assert_eq!(h.validate(&ctx_at(2, &ctx, &[]), &p), Ok(()));
    }

    /// A full block's worth of pending messages that the parent (not yet
    /// delivered) already carries must not keep new ones out of the child.
    #[test]
    fn messages_in_the_parent_do_not_crowd_out_new_ones() {
        let mut h = IngressPayloadHandler::new(
            Src::default(),
            IngressLimits { max_messages: 2, max_bytes: 1000, ..IngressLimits::default() },
        );
        let t = 1000;
        h.source_mut().pending = vec![msg(1, t + 10, 0), msg(2, t + 10, 0), msg(3, t + 10, 0), msg(4, t + 10, 0)];
        let parent = block(2, t, vec![msg(1, t + 10, 0), msg(2, t + 10, 0)]);
        let past = [PastBlock { hash: CryptoHash::ZERO, block: &parent }];
        let ctx = block(3, t + 1, vec![]).context;
        let p = h.build(&ctx_at(3, &ctx, &past));
        let ids: Vec<u8> = p.messages.iter().map(|m| m[0]).collect();
        assert_eq!(ids, vec![3, 4]);
    }

    #[test]
    fn validation_rules() {
        let mut h = handler();
        let t = 1000;
        let ctx = block(3, t, vec![]).context;
        let v = |h: &mut IngressPayloadHandler<Src>, msgs: Vec<Vec<u8>>, past: &[PastBlock<'_>]| {
            h.validate(&ctx_at(3, &ctx, past), &Payload::new(msgs))
        };
        assert_eq!(v(&mut h, vec![msg(1, t + 60, 0), msg(2, t, 0)], &[]), Ok(()));
        assert!(matches!(v(&mut h, vec![msg(1, t - 1, 0)], &[]), Err(PayloadError::Invalid(_))));
        assert!(matches!(v(&mut h, vec![msg(1, t + 391, 0)], &[]), Err(PayloadError::Invalid(_))));
        assert_eq!(v(&mut h, vec![msg(1, t + 390, 0)], &[]), Ok(()));
        assert!(matches!(v(&mut h, vec![msg(1, t + 5, 0), msg(1, t + 5, 0)], &[]), Err(PayloadError::Invalid(_))));
        assert!(matches!(v(&mut h, vec![vec![0]], &[]), Err(PayloadError::Invalid(_))));
        let too_many: Vec<Vec<u8>> = (0..1001).map(|i| msg((i % 250) as u8, t + 5, 0)).collect();
        assert!(matches!(v(&mut h, too_many, &[]), Err(PayloadError::Invalid(_))));
        let too_big = vec![msg(9, t + 5, 4 * 1024 * 1024)];
        assert!(matches!(v(&mut h, too_big, &[]), Err(PayloadError::Invalid(_))));

        // Duplicates against ancestors within the window.
        let parent = block(2, t - 10, vec![msg(7, t + 30, 0)]);
        let past = [PastBlock { hash: parent.hash(), block: &parent }];
        assert!(matches!(v(&mut h, vec![msg(7, t + 30, 0)], &past), Err(PayloadError::Invalid(_))));
        assert_eq!(v(&mut h, vec![msg(8, t + 30, 0)], &past), Ok(()));
    }

    #[test]
    fn finalized_messages_are_remembered_until_they_expire() {
        let mut h = handler();
        let b = block(1, 1000, vec![msg(1, 1100, 0), msg(2, 2000, 0)]);
        h.on_delivered(&Batch { height: Height(1), block_hash: b.hash(), block: b, randomness: [0; 32] });
        assert_eq!(h.source().delivered.len(), 2);
        let ctx = block(2, 1050, vec![]).context;
        // No ancestors shown (purged), but the handler remembers.
        assert!(h.validate(&ctx_at(5, &ctx, &[]), &Payload::new(vec![msg(1, 1100, 0)])).is_err());
        assert!(h.validate(&ctx_at(5, &ctx, &[]), &Payload::new(vec![msg(2, 2000, 0)])).is_err());
        // Building skips them too.
        h.source_mut().pending = vec![msg(1, 1100, 0), msg(3, 1100, 0)];
        let p = h.build(&ctx_at(5, &ctx, &[]));
        assert_eq!(p.messages.len(), 1);
        assert_eq!(p.messages[0][0], 3);
        // Delivering a later block forgets message 1 (expired), keeps 2.
        let b2 = block(2, 1200, vec![]);
        h.on_delivered(&Batch { height: Height(2), block_hash: b2.hash(), block: b2, randomness: [0; 32] });
        assert!(!h.finalized.contains_key(&MessageId([1; 32])));
        assert!(h.finalized.contains_key(&MessageId([2; 32])));
    }

    #[test]
    fn empty_handler() {
        let mut h = EmptyPayloadHandler;
        let ctx = block(1, 1, vec![]).context;
        let c = ctx_at(1, &ctx, &[]);
        assert!(h.build(&c).is_empty());
        assert!(h.validate(&c, &Payload::new(vec![vec![1]])).is_err());
    }
}
