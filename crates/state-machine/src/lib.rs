//! A whole subnet in one process, driven synchronously.
//!
//! [`StateMachine`] owns a replicated state and an execution environment and
//! plays the part of consensus: each [`StateMachine::tick`] executes one
//! batch holding the ingress submitted since the last tick, at a time that
//! only moves when told to. Tests and benchmarks drive canisters through it
//! without HTTP or networking; the node uses the same execution layer with
//! batches from real consensus.

use cairn_execution::management::types::{
    CanisterIdRecord, CanisterIdResult, CanisterSettingsArgs, InstallCodeArgs, InstallModeArg,
    ProvisionalCreateCanisterArgs, ProvisionalTopUpArgs, UpgradeOptions, WasmMemoryPersistence,
};
use cairn_execution::{Batch, ExecutionConfig, ExecutionEnvironment, Query, RoundStats};
use cairn_state::{CanisterState, ReplicatedState, SubnetType, SystemMetadata};
use cairn_types::messages::{Ingress, IngressState, MessageId, WasmResult};
use cairn_types::{CanisterId, Cycles, ErrorCode, Height, Principal, SubnetId, Time, UserError};
use candid::{CandidType, Decode, Encode, Nat};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long ingress messages submitted here stay valid.
pub const INGRESS_TTL: Duration = Duration::from_secs(5 * 60);

/// Configures a [`StateMachine`].
#[derive(Clone, Debug)]
pub struct StateMachineBuilder {
    config: ExecutionConfig,
    subnet_type: SubnetType,
    cost_subnet_size: u32,
    start_time: Time,
    subnet_admins: Vec<Principal>,
    root_key: Vec<u8>,
}

impl Default for StateMachineBuilder {
    fn default() -> Self {
        StateMachineBuilder {
            config: ExecutionConfig::default(),
            subnet_type: SubnetType::Application,
            cost_subnet_size: cairn_types::fees::REFERENCE_SUBNET_SIZE,
            start_time: Time::from_secs(1_750_000_000),
            subnet_admins: Vec::new(),
            root_key: Vec::new(),
        }
    }
}

impl StateMachineBuilder {
    /// Execution limits to use (tests lower them to make hostile code fail fast).
    pub fn with_config(mut self, config: ExecutionConfig) -> Self {
        self.config = config;
        self
    }

    /// Number of nodes fees are computed for.
    pub fn with_cost_subnet_size(mut self, n: u32) -> Self {
        self.cost_subnet_size = n;
        self
    }

    /// The initial block time.
    pub fn with_time(mut self, time: Time) -> Self {
        self.start_time = time;
        self
    }

    /// Principals allowed to create canisters by ingress.
    pub fn with_subnet_admins(mut self, admins: Vec<Principal>) -> Self {
        self.subnet_admins = admins;
        self
    }

    /// The root key canisters read with `ic0.root_key_copy`.
    pub fn with_root_key(mut self, key: Vec<u8>) -> Self {
        self.root_key = key;
        self
    }

    /// Builds the state machine.
    pub fn build(self) -> StateMachine {
        let subnet = SubnetId(Principal::self_authenticating(b"cairn-state-machine-subnet"));
        let mut meta = SystemMetadata::single_subnet(subnet, self.subnet_type, self.cost_subnet_size, self.root_key);
        meta.subnet_admins = self.subnet_admins;
        meta.batch_time = self.start_time;
        StateMachine {
            state: ReplicatedState::new(meta),
            env: ExecutionEnvironment::new(self.config).expect("the Wasm engine starts"),
            time: self.start_time,
            height: Height(0),
            pending: Vec::new(),
            nonce: 0,
        }
    }
}

/// A subnet in a box.
pub struct StateMachine {
    state: ReplicatedState,
    env: ExecutionEnvironment,
    time: Time,
    height: Height,
    pending: Vec<Ingress>,
    nonce: u64,
}

impl Default for StateMachine {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a helper call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Rejected(UserError),
    #[error("the canister rejected the call: {0}")]
    CanisterReject(String),
    #[error("the reply could not be decoded: {0}")]
    Decode(String),
    #[error("the message did not complete within {0} rounds")]
    Timeout(usize),
}

impl CallError {
    /// The IC error code, if the system rejected the call.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            CallError::Rejected(e) => Some(e.code),
            CallError::CanisterReject(_) => Some(ErrorCode::CanisterRejectedMessage),
            _ => None,
        }
    }
}

fn reply(result: Result<WasmResult, UserError>) -> Result<Vec<u8>, CallError> {
    match result {
        Ok(WasmResult::Reply(bytes)) => Ok(bytes),
        Ok(WasmResult::Reject(msg)) => Err(CallError::CanisterReject(msg)),
        Err(e) => Err(CallError::Rejected(e)),
    }
}

impl StateMachine {
    /// A state machine with IC defaults.
    pub fn new() -> Self {
        StateMachineBuilder::default().build()
    }

    /// A builder to configure one.
    pub fn builder() -> StateMachineBuilder {
        StateMachineBuilder::default()
    }

    /// The current replicated state.
    pub fn state(&self) -> &ReplicatedState {
        &self.state
    }

    /// The execution environment (engine statistics).
    pub fn environment(&self) -> &ExecutionEnvironment {
        &self.env
    }

    /// A canister's state.
    pub fn canister(&self, id: &CanisterId) -> Option<&CanisterState> {
        self.state.canisters.get(id)
    }

    /// A canister's cycles balance.
    pub fn cycle_balance(&self, id: &CanisterId) -> Cycles {
        self.canister(id).map_or(Cycles::ZERO, |c| c.system_state.cycles_balance)
    }

    /// The hash of the whole state, memories included.
    pub fn state_hash(&self) -> [u8; 32] {
        self.state.state_hash()
    }

    /// The time the next round will execute at.
    pub fn time(&self) -> Time {
        self.time
    }

    /// Moves time forward (it never goes back).
    pub fn advance_time(&mut self, by: Duration) {
        self.time = self.time.saturating_add(by);
    }

    /// Executes one round with all ingress submitted since the last one.
    pub fn tick(&mut self) -> RoundStats {
        self.height = self.height.increment();
        // Rounds are at least one nanosecond apart, like blocks.
        self.time = self.time.max(self.state.metadata.batch_time).saturating_add(Duration::from_nanos(1));
        let mut randomness = [0u8; 32];
        randomness[..8].copy_from_slice(&self.height.0.to_be_bytes());
        let randomness: [u8; 32] = Sha256::digest(randomness).into();
        let batch =
            Batch { height: self.height, time: self.time, randomness, ingress: std::mem::take(&mut self.pending) };
        self.env.execute_round(&mut self.state, batch)
    }

    /// Submits an ingress message for the next round and returns its id.
    pub fn submit_ingress(&mut self, sender: Principal, canister: CanisterId, method: &str, arg: Vec<u8>) -> MessageId {
        self.nonce += 1;
        let expiry_time = self.time.saturating_add(INGRESS_TTL);
        let mut h = Sha256::new();
        h.update(sender.as_slice());
        h.update(canister.as_slice());
        h.update(method.as_bytes());
        h.update(&arg);
        h.update(self.nonce.to_be_bytes());
        let message_id = MessageId(h.finalize().into());
        let effective_canister_id = if canister.is_management() {
            cairn_execution::management::effective_canister_id(method, &arg).unwrap_or(CanisterId::MANAGEMENT)
        } else {
            canister
        };
        self.pending.push(Ingress {
            source: sender,
            receiver: canister,
            effective_canister_id,
            method_name: method.to_string(),
            method_payload: arg,
            message_id,
            expiry_time,
            sender_info: None,
        });
        message_id
    }

    /// Runs the ingress admission checks (including `canister_inspect_message`)
    /// a node runs before accepting a message.
    pub fn check_ingress(
        &mut self,
        sender: Principal,
        canister: CanisterId,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<(), UserError> {
        let effective_canister_id = if canister.is_management() {
            cairn_execution::management::effective_canister_id(method, &arg).unwrap_or(CanisterId::MANAGEMENT)
        } else {
            canister
        };
        let ingress = Ingress {
            source: sender,
            receiver: canister,
            effective_canister_id,
            method_name: method.to_string(),
            method_payload: arg,
            message_id: MessageId([0; 32]),
            expiry_time: self.time.saturating_add(INGRESS_TTL),
            sender_info: None,
        };
        self.env.should_accept_ingress(&self.state, &ingress)
    }

    /// The state of an ingress message, if known.
    pub fn ingress_state(&self, id: &MessageId) -> Option<IngressState> {
        self.state.metadata.ingress_history.get(id).map(|s| s.state.clone())
    }

    /// Ticks until the message completes (at most `max_rounds` rounds).
    pub fn await_ingress(&mut self, id: MessageId, max_rounds: usize) -> Result<WasmResult, CallError> {
        for _ in 0..max_rounds {
            match self.ingress_state(&id) {
                Some(IngressState::Completed(r)) => return Ok(r),
                Some(IngressState::Failed(e)) => return Err(CallError::Rejected(e)),
                _ => {
                    self.tick();
                }
            }
        }
        match self.ingress_state(&id) {
            Some(IngressState::Completed(r)) => Ok(r),
            Some(IngressState::Failed(e)) => Err(CallError::Rejected(e)),
            _ => Err(CallError::Timeout(max_rounds)),
        }
    }

    /// Submits an update call and ticks until it completes.
    pub fn update_call(
        &mut self,
        sender: Principal,
        canister: CanisterId,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<WasmResult, CallError> {
        let id = self.submit_ingress(sender, canister, method, arg);
        self.await_ingress(id, 100)
    }

    /// An update call whose reply bytes are returned (a canister reject is an error).
    pub fn update(
        &mut self,
        sender: Principal,
        canister: CanisterId,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        match self.update_call(sender, canister, method, arg)? {
            WasmResult::Reply(b) => Ok(b),
            WasmResult::Reject(m) => Err(CallError::CanisterReject(m)),
        }
    }

    /// A query against the current state.
    pub fn query_call(
        &mut self,
        sender: Principal,
        canister: CanisterId,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<WasmResult, UserError> {
        let query = Query { source: sender, receiver: canister, method_name: method.to_string(), method_payload: arg };
        self.env.execute_query(&self.state, query, None)
    }

    /// A query whose reply bytes are returned.
    pub fn query(
        &mut self,
        sender: Principal,
        canister: CanisterId,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        reply(self.query_call(sender, canister, method, arg))
    }

    /// Candid-typed update: encodes `args`, decodes the reply as `R`.
    pub fn update_candid<A: candid::utils::ArgumentEncoder, R: for<'a> candid::utils::ArgumentDecoder<'a>>(
        &mut self,
        sender: Principal,
        canister: CanisterId,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        let arg = candid::encode_args(args).map_err(|e| CallError::Decode(e.to_string()))?;
        let bytes = self.update(sender, canister, method, arg)?;
        candid::decode_args(&bytes).map_err(|e| CallError::Decode(e.to_string()))
    }

    /// Candid-typed query.
    pub fn query_candid<A: candid::utils::ArgumentEncoder, R: for<'a> candid::utils::ArgumentDecoder<'a>>(
        &mut self,
        sender: Principal,
        canister: CanisterId,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        let arg = candid::encode_args(args).map_err(|e| CallError::Decode(e.to_string()))?;
        let bytes = self.query(sender, canister, method, arg)?;
        candid::decode_args(&bytes).map_err(|e| CallError::Decode(e.to_string()))
    }

    /// Calls the management canister with a Candid argument.
    pub fn management<A: CandidType>(
        &mut self,
        sender: Principal,
        method: &str,
        arg: &A,
    ) -> Result<Vec<u8>, CallError> {
        let bytes = Encode!(arg).map_err(|e| CallError::Decode(e.to_string()))?;
        self.update(sender, CanisterId::MANAGEMENT, method, bytes)
    }

    /// Creates a canister with `cycles`, controlled by `controller`.
    pub fn create_canister(
        &mut self,
        controller: Principal,
        cycles: Cycles,
        settings: Option<CanisterSettingsArgs>,
    ) -> Result<CanisterId, CallError> {
        let args = ProvisionalCreateCanisterArgs {
            amount: Some(Nat::from(cycles.get())),
            settings,
            specified_id: None,
            sender_canister_version: None,
        };
        let bytes = self.management(controller, "provisional_create_canister_with_cycles", &args)?;
        let r = Decode!(&bytes, CanisterIdResult).map_err(|e| CallError::Decode(e.to_string()))?;
        Ok(CanisterId::from(Principal::try_from_slice(r.canister_id.as_slice()).expect("valid principal")))
    }

    /// Installs code (`mode`: install, reinstall or upgrade).
    pub fn install_code(
        &mut self,
        sender: Principal,
        canister: CanisterId,
        wasm: &[u8],
        arg: Vec<u8>,
        mode: InstallModeArg,
    ) -> Result<(), CallError> {
        let args = InstallCodeArgs {
            mode,
            canister_id: candid::Principal::from_slice(canister.as_slice()),
            wasm_module: ByteBuf::from(wasm.to_vec()),
            arg: ByteBuf::from(arg),
            sender_canister_version: None,
        };
        self.management(sender, "install_code", &args).map(|_| ())
    }

    /// Upgrades code, keeping the heap when `keep_memory` (Motoko's enhanced orthogonal persistence).
    pub fn upgrade(
        &mut self,
        sender: Principal,
        canister: CanisterId,
        wasm: &[u8],
        arg: Vec<u8>,
        keep_memory: bool,
    ) -> Result<(), CallError> {
        let opts = UpgradeOptions {
            skip_pre_upgrade: None,
            wasm_memory_persistence: keep_memory.then_some(WasmMemoryPersistence::Keep),
        };
        self.install_code(sender, canister, wasm, arg, InstallModeArg::Upgrade(Some(opts)))
    }

    /// Creates a canister with `cycles` and installs `wasm` with an empty argument.
    pub fn install_new(&mut self, controller: Principal, wasm: &[u8], cycles: Cycles) -> Result<CanisterId, CallError> {
        let id = self.create_canister(controller, cycles, None)?;
        self.install_code(controller, id, wasm, candid::encode_args(()).expect("empty args"), InstallModeArg::Install)?;
        Ok(id)
    }

    /// Adds cycles to a canister (provisional top-up).
    pub fn top_up(&mut self, canister: CanisterId, amount: Cycles) -> Result<(), CallError> {
        let args = ProvisionalTopUpArgs {
            canister_id: candid::Principal::from_slice(canister.as_slice()),
            amount: Nat::from(amount.get()),
        };
        self.management(Principal::ANONYMOUS, "provisional_top_up_canister", &args).map(|_| ())
    }

    /// Calls a management method that takes just `{canister_id}`.
    pub fn management_on(
        &mut self,
        sender: Principal,
        method: &str,
        canister: CanisterId,
    ) -> Result<Vec<u8>, CallError> {
        let args = CanisterIdRecord { canister_id: candid::Principal::from_slice(canister.as_slice()) };
        self.management(sender, method, &args)
    }
}
