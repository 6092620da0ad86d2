//! Messages that flow between users, canisters and subnets.
//!
//! These are the plain values handed from one layer to the next: ingress
//! messages from the HTTP layer into blocks, requests and responses between
//! canisters, and the status of ingress messages that clients read back.

use crate::cycles::Cycles;
use crate::error::{ErrorCode, RejectCode, UserError};
use crate::ids::CanisterId;
use crate::principal::Principal;
use crate::time::Time;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The id of an ingress message: its request id (representation-independent hash).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The 32 bytes of the id.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Identifies a registered reply/reject callback of a canister.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize, Default)]
pub struct CallbackId(pub u64);

/// Identifies an open call context of a canister.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize, Default)]
pub struct CallContextId(pub u64);

/// Information about the caller attached to ingress from canister-signature identities.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SenderInfo {
    /// Arbitrary info signed by the signer canister.
    pub info: Vec<u8>,
    /// The canister that signed it.
    pub signer: Principal,
}

/// A message sent by a user to a canister (or to the management canister).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Ingress {
    /// The sender (a user principal, possibly anonymous).
    pub source: Principal,
    /// The canister called; `aaaaa-aa` for the management canister.
    pub receiver: CanisterId,
    /// The effective canister id from the URL; decides routing of management calls.
    pub effective_canister_id: CanisterId,
    pub method_name: String,
    pub method_payload: Vec<u8>,
    pub message_id: MessageId,
    /// The message must not start executing after this time.
    pub expiry_time: Time,
    /// Optional caller info (see `ic0.msg_caller_info_*`).
    pub sender_info: Option<SenderInfo>,
}

/// A call from one canister to another.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Request {
    pub receiver: CanisterId,
    pub sender: CanisterId,
    /// The sender's callback that receives the response.
    pub sender_reply_callback: CallbackId,
    /// Cycles attached to the call.
    pub payment: Cycles,
    pub method_name: String,
    pub method_payload: Vec<u8>,
    /// Set for bounded-wait (best-effort) calls: the response is not guaranteed after this.
    pub deadline: Option<Time>,
}

impl Request {
    /// Bytes counted against payload limits and fees (method name plus argument).
    pub fn payload_size_bytes(&self) -> u64 {
        (self.method_name.len() + self.method_payload.len()) as u64
    }
}

/// Why a call was rejected, as a calling canister sees it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RejectContext {
    pub code: RejectCode,
    pub message: String,
}

impl RejectContext {
    /// A reject with a code and message.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        RejectContext { code, message: message.into() }
    }
}

impl From<&UserError> for RejectContext {
    fn from(e: &UserError) -> Self {
        RejectContext { code: e.reject_code(), message: e.description.clone() }
    }
}

/// The content of a response: a reply or a reject.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Payload {
    Data(Vec<u8>),
    Reject(RejectContext),
}

impl Payload {
    /// Bytes counted against fees.
    pub fn size_bytes(&self) -> u64 {
        match self {
            Payload::Data(d) => d.len() as u64,
            Payload::Reject(r) => r.message.len() as u64,
        }
    }
}

/// The answer to a [`Request`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Response {
    /// The canister that made the call.
    pub originator: CanisterId,
    /// The canister that answered.
    pub respondent: CanisterId,
    pub originator_reply_callback: CallbackId,
    /// Cycles returned to the caller.
    pub refund: Cycles,
    pub response_payload: Payload,
    pub deadline: Option<Time>,
}

/// The successful or canister-rejected result of an ingress message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum WasmResult {
    /// The canister replied with these bytes.
    Reply(Vec<u8>),
    /// The canister rejected with this message (reject code 4).
    Reject(String),
}

/// Where an ingress message is in its lifecycle.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum IngressState {
    Received,
    Processing,
    /// The call finished with a reply or a canister reject.
    Completed(WasmResult),
    /// The system (or a trap) rejected the call.
    Failed(UserError),
    /// The result was dropped to save space; only the fact that it ran is kept.
    Done,
}

impl IngressState {
    /// The status text as it appears under `/request_status/<id>/status`.
    pub fn status_text(&self) -> &'static str {
        match self {
            IngressState::Received => "received",
            IngressState::Processing => "processing",
            IngressState::Completed(WasmResult::Reply(_)) => "replied",
            IngressState::Completed(WasmResult::Reject(_)) | IngressState::Failed(_) => "rejected",
            IngressState::Done => "done",
        }
    }

    /// Whether the message reached a final state.
    pub fn is_terminal(&self) -> bool {
        matches!(self, IngressState::Completed(_) | IngressState::Failed(_) | IngressState::Done)
    }

    /// The reject (code, message, error code) of a rejected message.
    pub fn reject(&self) -> Option<(RejectCode, String, ErrorCode)> {
        match self {
            IngressState::Completed(WasmResult::Reject(m)) => {
                Some((RejectCode::CanisterReject, m.clone(), ErrorCode::CanisterRejectedMessage))
            }
            IngressState::Failed(e) => Some((e.reject_code(), e.description.clone(), e.code)),
            _ => None,
        }
    }
}

/// The status of an ingress message as kept in the replicated state.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct IngressStatus {
    pub receiver: CanisterId,
    /// The effective canister id the request was sent to (decides who may read the status).
    pub effective_canister_id: CanisterId,
    pub user: Principal,
    /// When the status last changed (block time).
    pub time: Time,
    pub state: IngressState,
    /// The status is kept at least until this time.
    pub expiry_time: Time,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_texts() {
        assert_eq!(IngressState::Completed(WasmResult::Reply(vec![])).status_text(), "replied");
        assert_eq!(IngressState::Completed(WasmResult::Reject("no".into())).status_text(), "rejected");
        let failed = IngressState::Failed(UserError::new(ErrorCode::CanisterCalledTrap, "boom"));
        assert_eq!(failed.status_text(), "rejected");
        assert_eq!(failed.reject().unwrap().0, RejectCode::CanisterError);
        assert!(!IngressState::Processing.is_terminal());
        assert_eq!(MessageId([0xab; 32]).to_string().len(), 66);
    }
}
