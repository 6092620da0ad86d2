//! Call contexts and callbacks: the bookkeeping behind every open call.
//!
//! A call context exists for each incoming call (or system task) a canister
//! has not finished answering; a callback exists for each outgoing call it is
//! still waiting on. Both live in the replicated state so replies can arrive
//! rounds later.

use cairn_types::messages::{CallContextId, CallbackId, MessageId};
use cairn_types::{CanisterId, Cycles, Principal, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who started a call context, and so who must receive its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallOrigin {
    /// An ingress message from a user.
    Ingress { user: Principal, message_id: MessageId },
    /// A call from another canister (or itself), answered through the caller's callback.
    Canister { caller: CanisterId, callback: CallbackId, deadline: Option<Time> },
    /// A heartbeat, global timer or low-memory hook: nobody waits for an answer.
    SystemTask,
}

/// An incoming call that has not been fully processed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallContext {
    pub origin: CallOrigin,
    /// Whether a reply or reject was already sent.
    pub responded: bool,
    /// Set when the canister was uninstalled: callbacks are skipped.
    pub deleted: bool,
    /// Cycles attached by the caller and not yet accepted.
    pub available_cycles: Cycles,
    /// Block time when the context was created.
    pub time: Time,
    /// Instructions executed on behalf of this context so far (`performance_counter(1)`).
    pub instructions_executed: u64,
}

/// A function in the canister's table plus its environment value: how
/// `call_new` names the code to run on reply, reject and cleanup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WasmClosure {
    pub func_idx: u64,
    pub env: u64,
}

/// An outgoing call awaiting its response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    pub call_context_id: CallContextId,
    pub originator: CanisterId,
    pub respondent: CanisterId,
    /// Cycles attached to the request.
    pub cycles_sent: Cycles,
    /// Reserved to run the reply/reject callback; the unused part is refunded.
    pub prepayment_for_response_execution: Cycles,
    /// Reserved to transmit the response; the unused part is refunded.
    pub prepayment_for_response_transmission: Cycles,
    pub on_reply: WasmClosure,
    pub on_reject: WasmClosure,
    pub on_cleanup: Option<WasmClosure>,
    /// Bounded-wait calls: after this the caller gets `SYS_UNKNOWN`.
    pub deadline: Option<Time>,
}

/// All call contexts and callbacks of one canister.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallContextManager {
    next_call_context_id: u64,
    next_callback_id: u64,
    call_contexts: BTreeMap<CallContextId, CallContext>,
    callbacks: BTreeMap<CallbackId, Callback>,
}

impl CallContextManager {
    /// Opens a new call context.
    pub fn new_call_context(&mut self, origin: CallOrigin, cycles: Cycles, time: Time) -> CallContextId {
        let id = CallContextId(self.next_call_context_id);
        self.next_call_context_id += 1;
        self.call_contexts.insert(
            id,
            CallContext {
                origin,
                responded: false,
                deleted: false,
                available_cycles: cycles,
                time,
                instructions_executed: 0,
            },
        );
        id
    }

    /// Registers a callback and returns its id.
    pub fn register_callback(&mut self, callback: Callback) -> CallbackId {
        let id = CallbackId(self.next_callback_id);
        self.next_callback_id += 1;
        self.callbacks.insert(id, callback);
        id
    }

    /// The id the next registered callback will get (so requests can name it before registration).
    pub fn peek_next_callback_id(&self) -> CallbackId {
        CallbackId(self.next_callback_id)
    }

    /// A call context by id.
    pub fn call_context(&self, id: CallContextId) -> Option<&CallContext> {
        self.call_contexts.get(&id)
    }

    /// A mutable call context by id.
    pub fn call_context_mut(&mut self, id: CallContextId) -> Option<&mut CallContext> {
        self.call_contexts.get_mut(&id)
    }

    /// A callback by id.
    pub fn callback(&self, id: CallbackId) -> Option<&Callback> {
        self.callbacks.get(&id)
    }

    /// A mutable callback by id.
    pub fn callback_mut(&mut self, id: CallbackId) -> Option<&mut Callback> {
        self.callbacks.get_mut(&id)
    }

    /// Removes and returns a callback (its response arrived or it expired).
    pub fn take_callback(&mut self, id: CallbackId) -> Option<Callback> {
        self.callbacks.remove(&id)
    }

    /// Every open call context.
    pub fn call_contexts(&self) -> &BTreeMap<CallContextId, CallContext> {
        &self.call_contexts
    }

    /// Every pending callback.
    pub fn callbacks(&self) -> &BTreeMap<CallbackId, Callback> {
        &self.callbacks
    }

    /// Number of callbacks still referencing a call context.
    pub fn outstanding_callbacks(&self, id: CallContextId) -> usize {
        self.callbacks.values().filter(|c| c.call_context_id == id).count()
    }

    /// Closes a call context if it was answered and nothing refers to it any
    /// more. Returns the context if it was closed *without* an answer (the
    /// caller must then be told the canister did not reply).
    pub fn close_if_finished(&mut self, id: CallContextId) -> Option<CallContext> {
        self.call_contexts.get(&id)?;
        if self.outstanding_callbacks(id) > 0 {
            return None;
        }
        let ctx = self.call_contexts.remove(&id).expect("present");
        if ctx.responded || ctx.deleted || ctx.origin == CallOrigin::SystemTask { None } else { Some(ctx) }
    }

    /// Removes a call context unconditionally.
    pub fn remove_call_context(&mut self, id: CallContextId) -> Option<CallContext> {
        self.call_contexts.remove(&id)
    }

    /// Whether any call context is open (a canister is only *stopped* when none is).
    pub fn has_open_contexts(&self) -> bool {
        !self.call_contexts.is_empty()
    }

    /// Callbacks whose bounded-wait deadline is at or before `now`, in id order.
    pub fn expired_callbacks(&self, now: Time) -> Vec<CallbackId> {
        self.callbacks.iter().filter(|(_, c)| c.deadline.is_some_and(|d| d <= now)).map(|(id, _)| *id).collect()
    }

    /// Marks every context deleted (uninstall) and returns those still owing
    /// an answer, so the caller can reject them; also drops all callbacks and
    /// returns them, so their reservations can be refunded.
    pub fn delete_all(&mut self) -> (Vec<CallContext>, Vec<Callback>) {
        let callbacks: Vec<Callback> = std::mem::take(&mut self.callbacks).into_values().collect();
        let contexts: Vec<CallContext> = std::mem::take(&mut self.call_contexts)
            .into_values()
            .filter(|c| !c.responded && !matches!(c.origin, CallOrigin::SystemTask))
            .collect();
        (contexts, callbacks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closure() -> WasmClosure {
        WasmClosure { func_idx: 1, env: 2 }
    }

    #[test]
    fn context_lifecycle() {
        let mut m = CallContextManager::default();
        let origin = CallOrigin::Ingress { user: Principal::ANONYMOUS, message_id: MessageId([0; 32]) };
        let ctx = m.new_call_context(origin, Cycles::ZERO, Time::EPOCH);
        let cb = m.register_callback(Callback {
            call_context_id: ctx,
            originator: CanisterId::from_u64(1),
            respondent: CanisterId::from_u64(2),
            cycles_sent: Cycles::ZERO,
            prepayment_for_response_execution: Cycles::ZERO,
            prepayment_for_response_transmission: Cycles::ZERO,
            on_reply: closure(),
            on_reject: closure(),
            on_cleanup: None,
            deadline: Some(Time::from_secs(10)),
        });
        assert_eq!(m.close_if_finished(ctx), None);
        assert!(m.call_context(ctx).is_some());
        assert_eq!(m.expired_callbacks(Time::from_secs(9)), vec![]);
        assert_eq!(m.expired_callbacks(Time::from_secs(10)), vec![cb]);
        m.take_callback(cb).unwrap();
        // Never answered, no callbacks left: closing reports it.
        assert!(m.close_if_finished(ctx).is_some());
        assert!(!m.has_open_contexts());
    }
}
