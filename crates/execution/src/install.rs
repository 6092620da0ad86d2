//! `install_code`: install, reinstall and upgrade, as one atomic unit.
//!
//! The new execution state is assembled on a copy of the canister: memory
//! from the module's data segments (or the old heap with
//! `wasm_memory_persistence = keep`), stable memory kept on upgrade, then the
//! module's start function and `canister_init` / `canister_post_upgrade` run.
//! Only if every step succeeds does the copy replace the canister; otherwise
//! nothing changes except the cycles paid for the instructions used.

use crate::cycles::{self, execution_cost};
use crate::environment::{ExecutionEnvironment, Run, append_logs, apply_committed, costs};
use crate::management::types::{InstallModeArg, WasmMemoryPersistence};
use cairn_state::canister_state::{
    CanisterChange, ChangeDetails, ChangeOrigin, ExecutionState, InstallMode, WasmBinary,
};
use cairn_state::page_map::{Memory, PageMap};
use cairn_state::{CanisterState, ReplicatedState};
use cairn_types::{CanisterId, ErrorCode, Principal, UserError};
use cairn_wasm::{ApiInputs, Context, FuncRef, HypervisorError};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The Motoko custom section that marks enhanced orthogonal persistence.
const EOP_SECTION: &str = "enhanced-orthogonal-persistence";

/// A request to deploy code.
pub(crate) struct InstallRequest {
    pub canister_id: CanisterId,
    pub mode: InstallModeArg,
    /// The module as uploaded (raw or gzipped).
    pub wasm: Vec<u8>,
    pub arg: Vec<u8>,
    pub caller: Principal,
    pub origin: ChangeOrigin,
}

/// Upgrade options after defaults are applied.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UpgradeFlags {
    pub skip_pre_upgrade: bool,
    pub keep_memory: bool,
}

fn violation(msg: impl Into<String>) -> UserError {
    UserError::new(ErrorCode::CanisterContractViolation, msg)
}

impl ExecutionEnvironment {
    /// Deploys code; on error the canister is unchanged apart from cycles for instructions used.
    pub(crate) fn install(&mut self, state: &mut ReplicatedState, req: InstallRequest) -> Result<(), UserError> {
        let id = req.canister_id;
        let mut canister = state
            .canisters
            .remove(&id)
            .ok_or_else(|| UserError::new(ErrorCode::CanisterNotFound, format!("Canister {id} not found.")))?;
        let result = self.install_on(state, &mut canister, req);
        state.canisters.insert(id, canister);
        result
    }

    fn install_on(
        &mut self,
        state: &mut ReplicatedState,
        canister: &mut CanisterState,
        req: InstallRequest,
    ) -> Result<(), UserError> {
        let id = canister.id();
        let meta = &mut state.metadata;
        let costs = costs(meta);
        let now = meta.batch_time;
        let hash: [u8; 32] = Sha256::digest(&req.wasm).into();
        let module = self.engine.compile(&req.wasm, hash).map_err(|e| e.into_user_error(&id))?;
        let wasm64 = module.memory64();
        let (mode, flags) = match req.mode {
            InstallModeArg::Install => (InstallMode::Install, UpgradeFlags::default()),
            InstallModeArg::Reinstall => (InstallMode::Reinstall, UpgradeFlags::default()),
            InstallModeArg::Upgrade(opts) => {
                let opts = opts.unwrap_or_default();
                let old_eop = canister.execution_state.as_ref().is_some_and(|e| e.metadata.contains_key(EOP_SECTION));
                let new_eop = module.metadata().contains_key(EOP_SECTION);
                let keep = match opts.wasm_memory_persistence {
                    Some(WasmMemoryPersistence::Keep) if !new_eop => {
                        return Err(violation(
                            "Invalid upgrade option: The `wasm_memory_persistence: opt Keep` upgrade option requires that the new canister module supports enhanced orthogonal persistence.",
                        ));
                    }
                    Some(WasmMemoryPersistence::Keep) => true,
                    Some(WasmMemoryPersistence::Replace) => false,
                    None if old_eop => {
                        return Err(violation(
                            "Missing upgrade option: Enhanced orthogonal persistence requires the `wasm_memory_persistence` upgrade option.",
                        ));
                    }
                    None => false,
                };
                (
                    InstallMode::Upgrade,
                    UpgradeFlags { skip_pre_upgrade: opts.skip_pre_upgrade.unwrap_or(false), keep_memory: keep },
                )
            }
        };
        match (mode, &canister.execution_state) {
            (InstallMode::Install, Some(_)) => {
                return Err(UserError::new(
                    ErrorCode::CanisterNonEmpty,
                    format!(
                        "Canister {id} cannot be installed because the canister is not empty. Try installing with mode='reinstall' instead."
                    ),
                ));
            }
            (InstallMode::Upgrade, None) => {
                return Err(HypervisorError::WasmModuleNotFound.into_user_error(&id));
            }
            _ => {}
        }
        let limit = self.config.max_instructions_per_install;
        let prepay = execution_cost(&costs, limit, wasm64);
        let liquid = cycles::liquid_balance(&costs, canister);
        if liquid < prepay {
            let reveal = canister.system_state.is_controller(&req.caller);
            let inner = cycles::out_of_cycles_message(canister, prepay, liquid, reveal);
            return Err(UserError::new(
                ErrorCode::CanisterOutOfCycles,
                format!("Canister installation failed with `{inner}`."),
            ));
        }
        canister.system_state.cycles_balance -= prepay;
        let mut balance = canister.system_state.cycles_balance;
        let mut used = 0u64;
        let fail = |canister: &mut CanisterState, meta: &mut cairn_state::SystemMetadata, used: u64, err: UserError| {
            let cost = execution_cost(&costs, used, wasm64).min(prepay);
            canister.system_state.cycles_balance += prepay - cost;
            canister.system_state.consumed_cycles.instructions += cost;
            meta.consumed_cycles_total += cost;
            Err(err)
        };

        // 1. pre_upgrade on the old code.
        let (mut heap, mut stable) = match &canister.execution_state {
            Some(e) if mode == InstallMode::Upgrade => (e.wasm_memory.clone(), e.stable_memory.clone()),
            _ => (Memory::default(), Memory::default()),
        };
        let run_pre = mode == InstallMode::Upgrade
            && !flags.skip_pre_upgrade
            && canister.execution_state.as_ref().is_some_and(|e| e.exports.pre_upgrade);
        if run_pre {
            let inputs = ApiInputs { caller: req.caller, ..Default::default() };
            let run = Run {
                context: Context::PreUpgrade,
                inputs,
                func: FuncRef::Export("canister_pre_upgrade".into()),
                limit,
                commit: true,
                call_context_instructions: 0,
            };
            let out = self.run(meta, canister, balance, run);
            used += out.instructions;
            append_logs(canister, now, &out.api, out.result.as_ref().err());
            if let Err(e) = out.result {
                return fail(canister, meta, used, e.into_user_error(&id));
            }
            balance = out.api.balance;
            let committed = out.committed.expect("commit requested");
            heap = committed.wasm_memory;
            stable = committed.stable_memory;
        }

        // 2. The new execution state.
        let wasm_memory = if flags.keep_memory {
            heap
        } else {
            let mut page_map = PageMap::new();
            for (offset, bytes) in &module.instrumented.data_segments {
                page_map.write(*offset, bytes);
            }
            Memory { page_map, size_wasm_pages: module.info.memory.map_or(0, |m| m.initial_pages) }
        };
        let mut new = canister.clone();
        new.execution_state = Some(ExecutionState {
            wasm_binary: Arc::new(WasmBinary { bytes: req.wasm, hash }),
            wasm_memory,
            stable_memory: if mode == InstallMode::Upgrade { stable } else { Memory::default() },
            exported_globals: module.initial_globals.clone(),
            exports: module.exported_methods(),
            metadata: module.metadata(),
            memory64: wasm64,
        });
        let s = &mut new.system_state;
        s.canister_version += 1;
        s.global_timer = None;
        if mode != InstallMode::Upgrade {
            s.certified_data.clear();
            s.log.clear();
        }

        // 3. start, then canister_init / canister_post_upgrade.
        let mut steps = Vec::new();
        if module.instrumented.has_start {
            steps.push((Context::Start, FuncRef::Start, Vec::new()));
        }
        let exports = module.exported_methods();
        match mode {
            InstallMode::Upgrade if exports.post_upgrade => {
                steps.push((Context::PostUpgrade, FuncRef::Export("canister_post_upgrade".into()), req.arg))
            }
            InstallMode::Install | InstallMode::Reinstall if exports.init => {
                steps.push((Context::Init, FuncRef::Export("canister_init".into()), req.arg))
            }
            _ => {}
        }
        for (context, func, arg) in steps {
            let inputs = ApiInputs { caller: req.caller, arg, ..Default::default() };
            let run = Run {
                context,
                inputs,
                func,
                limit: limit.saturating_sub(used),
                commit: true,
                call_context_instructions: 0,
            };
            let out = self.run(meta, &new, balance, run);
            used += out.instructions;
            append_logs(canister, now, &out.api, out.result.as_ref().err());
            append_logs(&mut new, now, &out.api, out.result.as_ref().err());
            if let Err(e) = out.result {
                if matches!(e, HypervisorError::InstructionLimitExceeded(_)) {
                    return fail(
                        canister,
                        meta,
                        used,
                        HypervisorError::InstructionLimitExceeded(limit).into_user_error(&id),
                    );
                }
                return fail(canister, meta, used, e.into_user_error(&id));
            }
            balance = out.api.balance;
            if let Some(data) = out.api.certified_data {
                new.system_state.certified_data = data;
            }
            if out.api.global_timer_changed {
                new.system_state.global_timer = out.api.global_timer;
            }
            apply_committed(&mut new, out.committed.expect("commit requested"));
        }

        // 4. Commit.
        let cost = execution_cost(&costs, used, wasm64).min(prepay);
        let s = &mut new.system_state;
        s.cycles_balance = balance + (prepay - cost);
        s.consumed_cycles.instructions += cost;
        meta.consumed_cycles_total += cost;
        s.last_install_time = Some(now);
        s.history.add(CanisterChange {
            timestamp_nanos: now.as_nanos(),
            canister_version: s.canister_version,
            origin: req.origin,
            details: ChangeDetails::CodeDeployment { mode, module_hash: hash },
        });
        *canister = new;
        Ok(())
    }
}
