//! Ingress in a multi-node subnet: signed requests travel between nodes and
//! in blocks exactly as the client signed them, and every node verifies them
//! itself.
//!
//! A message in a block is `postcard(WireIngress)`: the client's CBOR
//! envelope plus the effective id from the URL (which the signature does not
//! cover, but which decides the routing of management calls). Validators run
//! [`cairn_http::validate::ingress_from_signed`] at the block's time, so a
//! block maker cannot slip in a forged or expired request.
//!
//! Verifying a signature costs tens of microseconds (milliseconds for
//! canister signatures), and a message is looked at several times (on
//! arrival, when building, when validating a proposal, when converting the
//! finalized block), so verdicts are cached by the SHA-256 of the exact
//! bytes. The only time-dependent part of a verdict is delegation expiry, so
//! a cached "valid" is reused only for times up to the earliest delegation
//! expiration: the answer is the same as recomputing it, on every node.

use cairn_consensus::{IngressInfo, IngressSource};
use cairn_http::SignedIngress;
use cairn_types::Time;
use cairn_types::messages::{Ingress, MessageId};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// An update call as it travels between nodes and in blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireIngress {
    /// The client's request body (CBOR envelope), byte for byte.
    #[serde(with = "serde_bytes")]
    pub envelope: Vec<u8>,
    pub effective_principal: cairn_types::Principal,
    pub subnet_target: bool,
}

impl WireIngress {
    /// The wire form of a request accepted over HTTP.
    pub fn from_signed(signed: SignedIngress) -> WireIngress {
        WireIngress {
            envelope: signed.envelope,
            effective_principal: signed.effective_principal,
            subnet_target: signed.subnet_target,
        }
    }

    /// The canonical encoding (what blocks carry).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("ingress serializes")
    }
}

#[derive(Clone)]
struct Verdict {
    ingress: Arc<Ingress>,
    /// The verdict holds for block times up to this one.
    valid_until: Time,
}

/// Limits on the messages waiting for a block.
#[derive(Clone, Copy, Debug)]
pub struct PendingLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

/// The node's ingress pool seen by consensus: verified messages waiting for
/// a block, and the verification cache.
pub struct SubnetIngress {
    root_key_der: Vec<u8>,
    max_payload_bytes: usize,
    verdicts: Mutex<HashMap<[u8; 32], Verdict>>,
    /// Waiting messages by id, and their arrival order.
    pending: BTreeMap<MessageId, (Arc<Vec<u8>>, Time)>,
    order: VecDeque<MessageId>,
    pending_bytes: usize,
    limits: PendingLimits,
    /// Block time of the last sweep of expired verdicts.
    swept_at: Time,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The earliest expiration of a request's delegations, for a request
/// accepted over this node's HTTP interface (already verified there).
fn delegations_valid_until(envelope: &[u8]) -> Time {
    cairn_http::envelope::decode_envelope(envelope)
        .map_or(Time::from_nanos(0), |env| cairn_http::validate::delegations_valid_until(&env))
}

impl SubnetIngress {
    /// An empty pool verifying against the network's root key.
    pub fn new(root_key_der: Vec<u8>, max_payload_bytes: usize, limits: PendingLimits) -> SubnetIngress {
        SubnetIngress {
            root_key_der,
            max_payload_bytes,
            verdicts: Mutex::new(HashMap::new()),
            pending: BTreeMap::new(),
            order: VecDeque::new(),
            pending_bytes: 0,
            limits,
            swept_at: Time::from_nanos(0),
        }
    }

    /// Verifies a block message at `time` (cached; see the module docs).
    pub fn verify(&self, bytes: &[u8], time: Time) -> Result<Arc<Ingress>, String> {
        let key = digest(bytes);
        if let Some(v) = self.verdicts.lock().get(&key)
            && time <= v.valid_until
        {
            return Ok(v.ingress.clone());
        }
        let wire: WireIngress = postcard::from_bytes(bytes).map_err(|e| format!("undecodable ingress message: {e}"))?;
        let signed = SignedIngress {
            envelope: wire.envelope,
            effective_principal: wire.effective_principal,
            subnet_target: wire.subnet_target,
        };
        let (ingress, valid_until) =
            cairn_http::validate::ingress_from_signed(&signed, time, &self.root_key_der, self.max_payload_bytes)
                .map_err(|e| e.message().to_string())?;
        let ingress = Arc::new(ingress);
        self.verdicts.lock().insert(key, Verdict { ingress: ingress.clone(), valid_until });
        Ok(ingress)
    }

    /// Adds a request this node accepted over HTTP (already verified there at
    /// `now`): seeds the cache and queues it. Returns its wire bytes to gossip,
    /// or `None` if it is already known or the pool is full.
    pub fn add_local(&mut self, ingress: Ingress, wire: &WireIngress) -> Option<Arc<Vec<u8>>> {
        let bytes = Arc::new(wire.encode());
        let valid_until = delegations_valid_until(&wire.envelope);
        let expiry = ingress.expiry_time;
        let id = ingress.message_id;
        self.verdicts.lock().insert(digest(&bytes), Verdict { ingress: Arc::new(ingress), valid_until });
        self.enqueue(id, bytes.clone(), expiry).then_some(bytes)
    }

    /// Adds a request gossiped by a peer after verifying it at `now`.
    pub fn add_from_peer(&mut self, bytes: Vec<u8>, now: Time) -> Result<bool, String> {
        let ingress = self.verify(&bytes, now)?;
        if ingress.expiry_time < now {
            return Err(format!("request {} expired", ingress.message_id));
        }
        Ok(self.enqueue(ingress.message_id, Arc::new(bytes), ingress.expiry_time))
    }

    fn enqueue(&mut self, id: MessageId, bytes: Arc<Vec<u8>>, expiry: Time) -> bool {
        if self.pending.contains_key(&id)
            || self.pending.len() >= self.limits.max_messages
            || self.pending_bytes + bytes.len() > self.limits.max_bytes
        {
            return false;
        }
        self.pending_bytes += bytes.len();
        self.pending.insert(id, (bytes, expiry));
        self.order.push_back(id);
        true
    }

    fn remove(&mut self, id: &MessageId) {
        if let Some((bytes, _)) = self.pending.remove(id) {
            self.pending_bytes -= bytes.len();
        }
    }

    /// Number of waiting messages.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The ingress of a finalized block, in block order. Messages that do not
    /// verify (possible only if a dishonest majority notarized the block)
    /// are skipped, identically on every node.
    pub fn finalized_ingress(&self, messages: &[Vec<u8>], time: Time) -> Vec<Ingress> {
        messages
            .iter()
            .filter_map(|m| match self.verify(m, time) {
                Ok(i) => Some((*i).clone()),
                Err(e) => {
                    tracing::error!("a finalized block carries an invalid request; it is skipped: {e}");
                    None
                }
            })
            .collect()
    }

    /// Forgets cached verdicts of requests that expired before `time`. The
    /// sweep visits every verdict, so it runs at most once per second of
    /// block time, not after every block.
    pub fn forget_expired(&mut self, time: Time) {
        if time < self.swept_at.saturating_add(std::time::Duration::from_secs(1)) {
            return;
        }
        self.swept_at = time;
        self.verdicts.lock().retain(|_, v| v.ingress.expiry_time >= time);
    }
}

impl IngressSource for SubnetIngress {
    fn inspect(&self, message: &[u8], time: Time) -> Result<IngressInfo, String> {
        let ingress = self.verify(message, time)?;
        Ok(IngressInfo { id: ingress.message_id, expiry: ingress.expiry_time })
    }

    fn candidates(&mut self, time: Time) -> Vec<Arc<Vec<u8>>> {
        // Drop expired messages, offer the rest in arrival order; the
        // payload handler applies the subnet's block limits.
        let mut out = Vec::with_capacity(self.order.len());
        let mut kept = VecDeque::with_capacity(self.order.len());
        while let Some(id) = self.order.pop_front() {
            let Some((m, expiry)) = self.pending.get(&id) else { continue };
            if *expiry < time {
                self.remove(&id);
                continue;
            }
            out.push(Arc::clone(m));
            kept.push_back(id);
        }
        self.order = kept;
        out
    }

    fn on_delivered(&mut self, ids: &[MessageId]) {
        for id in ids {
            self.remove(id);
        }
    }
}
