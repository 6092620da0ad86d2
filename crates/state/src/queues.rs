//! Input queues of a canister.
//!
//! Requests from other canisters share one FIFO, so two requests from the same
//! sender are always delivered in the order they were sent (the pairwise
//! ordering guarantee). Ingress, requests and responses are served
//! round-robin so no source starves another.

use cairn_types::CanisterId;
use cairn_types::messages::{Ingress, Request, Response};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Maximum number of requests from one sender waiting in one receiver's queue.
pub const MAX_REQUESTS_PER_SENDER: usize = 500;

/// One message waiting to be executed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CanisterInput {
    Ingress(Ingress),
    Request(Request),
    Response(Response),
}

/// A system task the scheduler queued for a canister.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SystemTask {
    Heartbeat,
    GlobalTimer,
    OnLowWasmMemory,
}

/// Why a message could not be enqueued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue from {sender} to {receiver} is full ({MAX_REQUESTS_PER_SENDER} requests)")]
    Full { sender: CanisterId, receiver: CanisterId },
}

/// The waiting messages of one canister (or of the management canister).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanisterQueues {
    ingress: VecDeque<Ingress>,
    requests: VecDeque<Request>,
    responses: VecDeque<Response>,
    tasks: VecDeque<SystemTask>,
    /// Which of ingress (0), requests (1), responses (2) is served next.
    next_source: u8,
}

impl CanisterQueues {
    /// Appends an ingress message.
    pub fn push_ingress(&mut self, ingress: Ingress) {
        self.ingress.push_back(ingress);
    }

    /// Appends a request, refusing it if the sender already has too many waiting.
    pub fn push_request(&mut self, request: Request) -> Result<(), QueueError> {
        if self.requests_from(&request.sender) >= MAX_REQUESTS_PER_SENDER {
            return Err(QueueError::Full { sender: request.sender, receiver: request.receiver });
        }
        self.requests.push_back(request);
        Ok(())
    }

    /// Appends a response; responses are never refused, so every call gets exactly one.
    pub fn push_response(&mut self, response: Response) {
        self.responses.push_back(response);
    }

    /// Queues a system task unless the same task is already queued.
    pub fn push_task(&mut self, task: SystemTask) {
        if !self.tasks.contains(&task) {
            self.tasks.push_back(task);
        }
    }

    /// Takes the next system task.
    pub fn pop_task(&mut self) -> Option<SystemTask> {
        self.tasks.pop_front()
    }

    /// Whether a task is queued.
    pub fn has_task(&self, task: SystemTask) -> bool {
        self.tasks.contains(&task)
    }

    /// Number of requests from `sender` waiting here.
    pub fn requests_from(&self, sender: &CanisterId) -> usize {
        self.requests.iter().filter(|r| r.sender == *sender).count()
    }

    /// Takes the next input, rotating between sources.
    pub fn pop_input(&mut self) -> Option<CanisterInput> {
        for _ in 0..3 {
            let source = self.next_source;
            self.next_source = (self.next_source + 1) % 3;
            let input = match source {
                0 => self.ingress.pop_front().map(CanisterInput::Ingress),
                1 => self.requests.pop_front().map(CanisterInput::Request),
                _ => self.responses.pop_front().map(CanisterInput::Response),
            };
            if input.is_some() {
                return input;
            }
        }
        None
    }

    /// Takes the next response only (a stopping canister still processes responses).
    pub fn pop_response(&mut self) -> Option<Response> {
        self.responses.pop_front()
    }

    /// Whether any input (not counting tasks) is waiting.
    pub fn has_input(&self) -> bool {
        !(self.ingress.is_empty() && self.requests.is_empty() && self.responses.is_empty())
    }

    /// Whether any response is waiting.
    pub fn has_response(&self) -> bool {
        !self.responses.is_empty()
    }

    /// Number of waiting inputs.
    pub fn len(&self) -> usize {
        self.ingress.len() + self.requests.len() + self.responses.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.tasks.is_empty()
    }

    /// Removes every waiting ingress message and request (e.g. when the canister
    /// is stopped or deleted) so they can be rejected; responses stay.
    pub fn drain_ingress_and_requests(&mut self) -> (Vec<Ingress>, Vec<Request>) {
        (self.ingress.drain(..).collect(), self.requests.drain(..).collect())
    }

    /// Removes ingress messages whose expiry is before `now`.
    pub fn take_expired_ingress(&mut self, now: cairn_types::Time) -> Vec<Ingress> {
        let (expired, keep): (Vec<_>, Vec<_>) = self.ingress.drain(..).partition(|i| i.expiry_time < now);
        self.ingress = keep.into();
        expired
    }

    /// Removes bounded-wait requests whose deadline passed: they are dropped silently
    /// (the caller's own callback deadline produces its `SYS_UNKNOWN`).
    pub fn drop_expired_requests(&mut self, now: cairn_types::Time) -> Vec<Request> {
        let (expired, keep): (Vec<_>, Vec<_>) =
            self.requests.drain(..).partition(|r| r.deadline.is_some_and(|d| d < now));
        self.requests = keep.into();
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_types::Cycles;
    use cairn_types::messages::CallbackId;

    fn req(sender: u64, n: u8) -> Request {
        Request {
            receiver: CanisterId::from_u64(99),
            sender: CanisterId::from_u64(sender),
            sender_reply_callback: CallbackId(n as u64),
            payment: Cycles::ZERO,
            method_name: "m".into(),
            method_payload: vec![n],
            deadline: None,
        }
    }

    #[test]
    fn requests_keep_order_and_limit() {
        let mut q = CanisterQueues::default();
        for n in 0..3 {
            q.push_request(req(1, n)).unwrap();
        }
        let mut seen = vec![];
        while let Some(CanisterInput::Request(r)) = q.pop_input() {
            seen.push(r.method_payload[0]);
        }
        assert_eq!(seen, vec![0, 1, 2]);
        for _ in 0..MAX_REQUESTS_PER_SENDER {
            q.push_request(req(1, 0)).unwrap();
        }
        assert!(q.push_request(req(1, 0)).is_err());
        assert!(q.push_request(req(2, 0)).is_ok());
    }
}
