//! Ingress admission: the checks a node makes before accepting an ingress
//! message into its pool, including the canister's own
//! `canister_inspect_message`. Runs on one node against a recent state and
//! commits nothing; the replicated induction repeats the checks that matter.

use crate::cycles;
use crate::environment::{ExecutionEnvironment, Run, costs};
use crate::management::{self, check_controller};
use cairn_state::ReplicatedState;
use cairn_state::canister_state::CanisterStatus;
use cairn_types::messages::Ingress;
use cairn_types::{ErrorCode, UserError};
use cairn_wasm::{ApiInputs, Context, FuncRef};

/// Management methods only controllers of the target may call. Ingress
/// from anyone else is refused before it is inducted (and charged to the
/// target canister), as the IC's ingress filter does.
const CONTROLLER_ONLY: &[&str] = &[
    "install_code",
    "install_chunked_code",
    "upload_chunk",
    "stored_chunks",
    "clear_chunk_store",
    "uninstall_code",
    "update_settings",
    "start_canister",
    "stop_canister",
    "delete_canister",
    "take_canister_snapshot",
    "load_canister_snapshot",
    "delete_canister_snapshot",
];

impl ExecutionEnvironment {
    /// Whether the subnet should accept this ingress message.
    pub fn should_accept_ingress(&mut self, state: &ReplicatedState, ingress: &Ingress) -> Result<(), UserError> {
        if ingress.receiver.is_management() {
            return self.check_management_ingress(state, ingress);
        }
        let id = ingress.receiver;
        let canister = state
            .canisters
            .get(&id)
            .ok_or_else(|| UserError::new(ErrorCode::CanisterNotFound, format!("Canister {id} not found")))?;
        let exec = canister.execution_state.as_ref().ok_or_else(|| {
            UserError::new(ErrorCode::CanisterWasmModuleNotFound, "Requested canister has no wasm module")
        })?;
        match canister.system_state.status {
            CanisterStatus::Running => {}
            CanisterStatus::Stopping { .. } => {
                return Err(UserError::new(ErrorCode::CanisterStopping, format!("Canister {id} is stopping")));
            }
            CanisterStatus::Stopped => {
                return Err(UserError::new(ErrorCode::CanisterStopped, format!("Canister {id} is stopped")));
            }
        }
        let costs = costs(&state.metadata);
        let fee = costs.ingress_induction_cost((ingress.method_name.len() + ingress.method_payload.len()) as u64);
        let liquid = cycles::liquid_balance(&costs, canister);
        if liquid < fee {
            let reveal = canister.system_state.is_controller(&ingress.source);
            return Err(UserError::new(
                ErrorCode::CanisterOutOfCycles,
                cycles::out_of_cycles_message(canister, fee, liquid, reveal),
            ));
        }
        if !exec.exports.inspect_message {
            return Ok(());
        }
        let inputs = ApiInputs {
            caller: ingress.source,
            arg: ingress.method_payload.clone(),
            method_name: ingress.method_name.clone(),
            sender_info: ingress.sender_info.clone(),
            ..Default::default()
        };
        let run = Run {
            context: Context::InspectMessage,
            inputs,
            func: FuncRef::Export("canister_inspect_message".into()),
            limit: self.config.max_instructions_per_inspect,
            commit: false,
            call_context_instructions: 0,
        };
        let out = self.run(&state.metadata, canister, canister.system_state.cycles_balance, run);
        match out.result {
            Err(e) => Err(e.into_user_error(&id)),
            Ok(()) if out.api.message_accepted => Ok(()),
            Ok(()) => Err(UserError::new(
                ErrorCode::CanisterRejectedMessage,
                format!("Error from Canister {id}: Canister rejected the message"),
            )),
        }
    }

    fn check_management_ingress(&mut self, state: &ReplicatedState, ingress: &Ingress) -> Result<(), UserError> {
        let method = ingress.method_name.as_str();
        if !management::is_ingress_method(method, state.metadata.subnet_admins.contains(&ingress.source)) {
            return Err(UserError::new(
                ErrorCode::CanisterRejectedMessage,
                format!("ic00 method {method} can not be called via ingress messages"),
            ));
        }
        if method.starts_with("provisional_create") {
            return Ok(());
        }
        let Some(target) = management::effective_canister_id(method, &ingress.method_payload) else {
            return Ok(());
        };
        let canister = state
            .canisters
            .get(&target)
            .ok_or_else(|| UserError::new(ErrorCode::CanisterNotFound, format!("Canister {target} not found")))?;
        if CONTROLLER_ONLY.contains(&method) {
            check_controller(canister, &ingress.source)?;
        }
        if method == "canister_status" {
            let s = &canister.system_state;
            let admin = state.metadata.subnet_admins.contains(&ingress.source);
            if !admin && !s.settings.status_visibility.allows(&ingress.source, &s.controllers) {
                check_controller(canister, &ingress.source)?;
            }
        }
        if method.starts_with("provisional_") {
            return Ok(());
        }
        let costs = costs(&state.metadata);
        let fee = costs.ingress_induction_cost((ingress.method_name.len() + ingress.method_payload.len()) as u64);
        let liquid = cycles::liquid_balance(&costs, canister);
        if liquid < fee {
            let reveal = canister.system_state.is_controller(&ingress.source);
            return Err(UserError::new(
                ErrorCode::CanisterOutOfCycles,
                cycles::out_of_cycles_message(canister, fee, liquid, reveal),
            ));
        }
        Ok(())
    }
}
