//! Registers the `ic0` System API with wasmtime, once for wasm32 modules and
//! once for wasm64 modules.
//!
//! Every function is written once, inside [`define_ic0!`], which is expanded
//! with the pointer type `u32` or `u64`; each forwards to the matching
//! [`SystemApi`] method after charging the IC's instruction cost for the call.

use crate::engine::HostState;
use crate::error::HypervisorError;
use crate::system_api::{self, SystemApi};
use cairn_types::Cycles;
use wasmtime::{Caller, Linker};

type R<T> = wasmtime::Result<T>;

/// Fixed instruction cost of most System API calls.
const BASE: u64 = 500;
/// Per-byte cost of data that leaves the canister (replies, call arguments).
const TRANSMISSION_PER_BYTE: u64 = 50;
/// Instruction cost of every newly dirtied stable memory page.
const STABLE_DIRTY_PAGE: u64 = 1_000;

/// Charges `n` instructions, trapping when the budget is exhausted.
fn charge(c: &mut Caller<'_, HostState>, n: u64) -> R<()> {
    let fuel = c.get_fuel()?;
    if fuel < n {
        c.set_fuel(0)?;
        let limit = c.data().instruction_limit;
        return Err(HypervisorError::InstructionLimitExceeded(limit).into());
    }
    c.set_fuel(fuel - n)?;
    Ok(())
}

/// The Wasm memory and the System API of the running execution.
fn parts<'a>(c: &'a mut Caller<'_, HostState>) -> (&'a mut [u8], &'a mut SystemApi) {
    match c.data().memory {
        Some(m) => {
            let (mem, state) = m.data_and_store_mut(c);
            (mem, state.api())
        }
        None => (&mut [], c.data_mut().api()),
    }
}

fn api<'a>(c: &'a mut Caller<'_, HostState>) -> &'a mut SystemApi {
    c.data_mut().api()
}

/// Updates the instruction counter visible to `performance_counter`.
fn sync_counter(c: &mut Caller<'_, HostState>) -> R<()> {
    let used = c.data().instruction_limit.saturating_sub(c.get_fuel()?);
    api(c).instructions_executed = used;
    Ok(())
}

fn write128(mem: &mut [u8], dst: u64, value: Cycles, name: &str) -> R<()> {
    system_api::write(mem, dst, &value.get().to_le_bytes(), name)?;
    Ok(())
}

fn to_u64_cycles(value: Cycles) -> R<i64> {
    u64::try_from(value.get())
        .map(|v| v as i64)
        .map_err(|_| HypervisorError::Trapped("cycles amount exceeds 64-bit representation".into()).into())
}

macro_rules! define_ic0 {
    ($linker:expr, $P:ty) => {{
        let l = $linker;
        l.func_wrap("ic0", "msg_arg_data_size", |mut c: Caller<'_, HostState>| -> R<$P> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).msg_arg_data_size()? as $P)
        })?;
        l.func_wrap("ic0", "msg_arg_data_copy", |mut c: Caller<'_, HostState>, dst: $P, off: $P, size: $P| -> R<()> {
            charge(&mut c, BASE + size as u64)?;
            let (mem, api) = parts(&mut c);
            Ok(api.msg_arg_data_copy(mem, dst as u64, off as u64, size as u64)?)
        })?;
        l.func_wrap("ic0", "msg_caller_size", |mut c: Caller<'_, HostState>| -> R<$P> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).msg_caller_size()? as $P)
        })?;
        l.func_wrap("ic0", "msg_caller_copy", |mut c: Caller<'_, HostState>, dst: $P, off: $P, size: $P| -> R<()> {
            charge(&mut c, BASE + size as u64)?;
            let (mem, api) = parts(&mut c);
            Ok(api.msg_caller_copy(mem, dst as u64, off as u64, size as u64)?)
        })?;
        l.func_wrap("ic0", "msg_caller_info_data_size", |mut c: Caller<'_, HostState>| -> R<$P> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).msg_caller_info_data_size()? as $P)
        })?;
        l.func_wrap(
            "ic0",
            "msg_caller_info_data_copy",
            |mut c: Caller<'_, HostState>, dst: $P, off: $P, size: $P| -> R<()> {
                charge(&mut c, BASE + size as u64)?;
                let (mem, api) = parts(&mut c);
                Ok(api.msg_caller_info_data_copy(mem, dst as u64, off as u64, size as u64)?)
            },
        )?;
        l.func_wrap("ic0", "msg_caller_info_signer_size", |mut c: Caller<'_, HostState>| -> R<$P> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).msg_caller_info_signer_size()? as $P)
        })?;
        l.func_wrap(
            "ic0",
            "msg_caller_info_signer_copy",
            |mut c: Caller<'_, HostState>, dst: $P, off: $P, size: $P| -> R<()> {
                charge(&mut c, BASE + size as u64)?;
                let (mem, api) = parts(&mut c);
                Ok(api.msg_caller_info_signer_copy(mem, dst as u64, off as u64, size as u64)?)
            },
        )?;
        l.func_wrap("ic0", "msg_reject_code", |mut c: Caller<'_, HostState>| -> R<i32> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).msg_reject_code()? as i32)
        })?;
        l.func_wrap("ic0", "msg_reject_msg_size", |mut c: Caller<'_, HostState>| -> R<$P> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).msg_reject_msg_size()? as $P)
        })?;
        l.func_wrap(
            "ic0",
            "msg_reject_msg_copy",
            |mut c: Caller<'_, HostState>, dst: $P, off: $P, size: $P| -> R<()> {
                charge(&mut c, BASE + size as u64)?;
                let (mem, api) = parts(&mut c);
                Ok(api.msg_reject_msg_copy(mem, dst as u64, off as u64, size as u64)?)
            },
        )?;
        l.func_wrap("ic0", "msg_deadline", |mut c: Caller<'_, HostState>| -> R<i64> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).msg_deadline()? as i64)
        })?;
        l.func_wrap("ic0", "msg_reply_data_append", |mut c: Caller<'_, HostState>, src: $P, size: $P| -> R<()> {
            charge(&mut c, BASE + TRANSMISSION_PER_BYTE * size as u64)?;
            let (mem, api) = parts(&mut c);
            Ok(api.msg_reply_data_append(mem, src as u64, size as u64)?)
        })?;
        l.func_wrap("ic0", "msg_reply", |mut c: Caller<'_, HostState>| -> R<()> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).msg_reply()?)
        })?;
        l.func_wrap("ic0", "msg_reject", |mut c: Caller<'_, HostState>, src: $P, size: $P| -> R<()> {
            charge(&mut c, BASE + TRANSMISSION_PER_BYTE * size as u64)?;
            let (mem, api) = parts(&mut c);
            Ok(api.msg_reject(mem, src as u64, size as u64)?)
        })?;
        l.func_wrap("ic0", "msg_cycles_available128", |mut c: Caller<'_, HostState>, dst: $P| -> R<()> {
            charge(&mut c, BASE)?;
            let (mem, api) = parts(&mut c);
            let v = api.msg_cycles_available()?;
            write128(mem, dst as u64, v, "msg_cycles_available128")
        })?;
        l.func_wrap("ic0", "msg_cycles_refunded128", |mut c: Caller<'_, HostState>, dst: $P| -> R<()> {
            charge(&mut c, BASE)?;
            let (mem, api) = parts(&mut c);
            let v = api.msg_cycles_refunded()?;
            write128(mem, dst as u64, v, "msg_cycles_refunded128")
        })?;
        l.func_wrap(
            "ic0",
            "msg_cycles_accept128",
            |mut c: Caller<'_, HostState>, hi: i64, lo: i64, dst: $P| -> R<()> {
                charge(&mut c, BASE)?;
                let (mem, api) = parts(&mut c);
                let v = api.msg_cycles_accept(Cycles::from_parts(hi as u64, lo as u64))?;
                write128(mem, dst as u64, v, "msg_cycles_accept128")
            },
        )?;
        l.func_wrap("ic0", "cycles_burn128", |mut c: Caller<'_, HostState>, hi: i64, lo: i64, dst: $P| -> R<()> {
            charge(&mut c, BASE)?;
            let (mem, api) = parts(&mut c);
            let v = api.cycles_burn(Cycles::from_parts(hi as u64, lo as u64))?;
            write128(mem, dst as u64, v, "cycles_burn128")
        })?;
        l.func_wrap("ic0", "canister_self_size", |mut c: Caller<'_, HostState>| -> R<$P> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).canister_self_size()? as $P)
        })?;
        l.func_wrap(
            "ic0",
            "canister_self_copy",
            |mut c: Caller<'_, HostState>, dst: $P, off: $P, size: $P| -> R<()> {
                charge(&mut c, BASE + size as u64)?;
                let (mem, api) = parts(&mut c);
                Ok(api.canister_self_copy(mem, dst as u64, off as u64, size as u64)?)
            },
        )?;
        l.func_wrap("ic0", "canister_cycle_balance128", |mut c: Caller<'_, HostState>, dst: $P| -> R<()> {
            charge(&mut c, BASE)?;
            let (mem, api) = parts(&mut c);
            let v = api.canister_cycle_balance()?;
            write128(mem, dst as u64, v, "canister_cycle_balance128")
        })?;
        l.func_wrap("ic0", "canister_liquid_cycle_balance128", |mut c: Caller<'_, HostState>, dst: $P| -> R<()> {
            charge(&mut c, BASE)?;
            let (mem, api) = parts(&mut c);
            let v = api.canister_liquid_cycle_balance()?;
            write128(mem, dst as u64, v, "canister_liquid_cycle_balance128")
        })?;
        l.func_wrap("ic0", "canister_status", |mut c: Caller<'_, HostState>| -> R<i32> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).canister_status()? as i32)
        })?;
        l.func_wrap("ic0", "canister_version", |mut c: Caller<'_, HostState>| -> R<i64> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).canister_version()? as i64)
        })?;
        l.func_wrap("ic0", "subnet_self_size", |mut c: Caller<'_, HostState>| -> R<$P> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).subnet_self_size()? as $P)
        })?;
        l.func_wrap("ic0", "subnet_self_copy", |mut c: Caller<'_, HostState>, dst: $P, off: $P, size: $P| -> R<()> {
            charge(&mut c, BASE + size as u64)?;
            let (mem, api) = parts(&mut c);
            Ok(api.subnet_self_copy(mem, dst as u64, off as u64, size as u64)?)
        })?;
        l.func_wrap("ic0", "msg_method_name_size", |mut c: Caller<'_, HostState>| -> R<$P> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).msg_method_name_size()? as $P)
        })?;
        l.func_wrap(
            "ic0",
            "msg_method_name_copy",
            |mut c: Caller<'_, HostState>, dst: $P, off: $P, size: $P| -> R<()> {
                charge(&mut c, BASE + size as u64)?;
                let (mem, api) = parts(&mut c);
                Ok(api.msg_method_name_copy(mem, dst as u64, off as u64, size as u64)?)
            },
        )?;
        l.func_wrap("ic0", "accept_message", |mut c: Caller<'_, HostState>| -> R<()> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).accept_message()?)
        })?;
        l.func_wrap(
            "ic0",
            "call_new",
            |mut c: Caller<'_, HostState>,
             callee_src: $P,
             callee_size: $P,
             name_src: $P,
             name_size: $P,
             reply_fun: $P,
             reply_env: $P,
             reject_fun: $P,
             reject_env: $P|
             -> R<()> {
                charge(&mut c, 1_500 + callee_size as u64 + name_size as u64)?;
                let (mem, api) = parts(&mut c);
                Ok(api.call_new(
                    mem,
                    callee_src as u64,
                    callee_size as u64,
                    name_src as u64,
                    name_size as u64,
                    reply_fun as u64,
                    reply_env as u64,
                    reject_fun as u64,
                    reject_env as u64,
                )?)
            },
        )?;
        l.func_wrap("ic0", "call_on_cleanup", |mut c: Caller<'_, HostState>, fun: $P, env: $P| -> R<()> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).call_on_cleanup(fun as u64, env as u64)?)
        })?;
        l.func_wrap("ic0", "call_data_append", |mut c: Caller<'_, HostState>, src: $P, size: $P| -> R<()> {
            charge(&mut c, BASE + TRANSMISSION_PER_BYTE * size as u64)?;
            let (mem, api) = parts(&mut c);
            Ok(api.call_data_append(mem, src as u64, size as u64)?)
        })?;
        l.func_wrap("ic0", "call_with_best_effort_response", |mut c: Caller<'_, HostState>, timeout: i32| -> R<()> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).call_with_best_effort_response(timeout as u32)?)
        })?;
        l.func_wrap("ic0", "call_cycles_add128", |mut c: Caller<'_, HostState>, hi: i64, lo: i64| -> R<()> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).call_cycles_add(Cycles::from_parts(hi as u64, lo as u64))?)
        })?;
        l.func_wrap("ic0", "call_perform", |mut c: Caller<'_, HostState>| -> R<i32> {
            charge(&mut c, 5_000)?;
            Ok(api(&mut c).call_perform()? as i32)
        })?;
        l.func_wrap("ic0", "stable64_size", |mut c: Caller<'_, HostState>| -> R<i64> {
            charge(&mut c, 20)?;
            Ok(api(&mut c).stable64_size()? as i64)
        })?;
        l.func_wrap("ic0", "stable64_grow", |mut c: Caller<'_, HostState>, pages: i64| -> R<i64> {
            charge(&mut c, 600)?;
            Ok(api(&mut c).stable64_grow(pages as u64)? as i64)
        })?;
        l.func_wrap("ic0", "stable64_write", |mut c: Caller<'_, HostState>, off: i64, src: i64, size: i64| -> R<()> {
            charge(&mut c, 20 + size as u64)?;
            let (mem, api) = parts(&mut c);
            let new_pages = api.stable_write(mem, off as u64, src as u64, size as u64, "stable64_write", false)?;
            charge(&mut c, STABLE_DIRTY_PAGE * new_pages)
        })?;
        l.func_wrap("ic0", "stable64_read", |mut c: Caller<'_, HostState>, dst: i64, off: i64, size: i64| -> R<()> {
            charge(&mut c, 20 + size as u64)?;
            let (mem, api) = parts(&mut c);
            Ok(api.stable_read(mem, dst as u64, off as u64, size as u64, "stable64_read", false)?)
        })?;
        l.func_wrap("ic0", "root_key_size", |mut c: Caller<'_, HostState>| -> R<$P> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).root_key_size()? as $P)
        })?;
        l.func_wrap("ic0", "root_key_copy", |mut c: Caller<'_, HostState>, dst: $P, off: $P, size: $P| -> R<()> {
            charge(&mut c, BASE + size as u64)?;
            let (mem, api) = parts(&mut c);
            Ok(api.root_key_copy(mem, dst as u64, off as u64, size as u64)?)
        })?;
        l.func_wrap("ic0", "certified_data_set", |mut c: Caller<'_, HostState>, src: $P, size: $P| -> R<()> {
            charge(&mut c, BASE + size as u64)?;
            let (mem, api) = parts(&mut c);
            Ok(api.certified_data_set(mem, src as u64, size as u64)?)
        })?;
        l.func_wrap("ic0", "data_certificate_present", |mut c: Caller<'_, HostState>| -> R<i32> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).data_certificate_present()? as i32)
        })?;
        l.func_wrap("ic0", "data_certificate_size", |mut c: Caller<'_, HostState>| -> R<$P> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).data_certificate_size()? as $P)
        })?;
        l.func_wrap(
            "ic0",
            "data_certificate_copy",
            |mut c: Caller<'_, HostState>, dst: $P, off: $P, size: $P| -> R<()> {
                charge(&mut c, BASE + size as u64)?;
                let (mem, api) = parts(&mut c);
                Ok(api.data_certificate_copy(mem, dst as u64, off as u64, size as u64)?)
            },
        )?;
        l.func_wrap("ic0", "time", |mut c: Caller<'_, HostState>| -> R<i64> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).time()? as i64)
        })?;
        l.func_wrap("ic0", "global_timer_set", |mut c: Caller<'_, HostState>, ts: i64| -> R<i64> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).global_timer_set(ts as u64)? as i64)
        })?;
        l.func_wrap("ic0", "performance_counter", |mut c: Caller<'_, HostState>, kind: i32| -> R<i64> {
            charge(&mut c, 200)?;
            sync_counter(&mut c)?;
            Ok(api(&mut c).performance_counter(kind as u32)? as i64)
        })?;
        l.func_wrap("ic0", "is_controller", |mut c: Caller<'_, HostState>, src: $P, size: $P| -> R<i32> {
            charge(&mut c, 1_000 + size as u64)?;
            let (mem, api) = parts(&mut c);
            Ok(api.is_controller(mem, src as u64, size as u64)? as i32)
        })?;
        l.func_wrap("ic0", "in_replicated_execution", |mut c: Caller<'_, HostState>| -> R<i32> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).in_replicated_execution()? as i32)
        })?;
        l.func_wrap(
            "ic0",
            "cost_call",
            |mut c: Caller<'_, HostState>, name_size: i64, payload_size: i64, dst: $P| -> R<()> {
                charge(&mut c, BASE)?;
                let (mem, api) = parts(&mut c);
                let v = api.cost_call(name_size as u64, payload_size as u64)?;
                write128(mem, dst as u64, v, "cost_call")
            },
        )?;
        l.func_wrap("ic0", "cost_create_canister", |mut c: Caller<'_, HostState>, dst: $P| -> R<()> {
            charge(&mut c, BASE)?;
            let (mem, api) = parts(&mut c);
            let v = api.cost_create_canister()?;
            write128(mem, dst as u64, v, "cost_create_canister")
        })?;
        l.func_wrap(
            "ic0",
            "cost_http_request",
            |mut c: Caller<'_, HostState>, req: i64, max_res: i64, dst: $P| -> R<()> {
                charge(&mut c, BASE)?;
                let (mem, api) = parts(&mut c);
                let v = api.cost_http_request(req as u64, max_res as u64)?;
                write128(mem, dst as u64, v, "cost_http_request")
            },
        )?;
        l.func_wrap(
            "ic0",
            "cost_sign_with_ecdsa",
            |mut c: Caller<'_, HostState>, src: $P, size: $P, curve: i32, _dst: $P| -> R<i32> {
                charge(&mut c, BASE + size as u64)?;
                let (mem, api) = parts(&mut c);
                Ok(api.cost_threshold_key("cost_sign_with_ecdsa", mem, src as u64, size as u64, curve as u32, 0)?
                    as i32)
            },
        )?;
        l.func_wrap(
            "ic0",
            "cost_sign_with_schnorr",
            |mut c: Caller<'_, HostState>, src: $P, size: $P, alg: i32, _dst: $P| -> R<i32> {
                charge(&mut c, BASE + size as u64)?;
                let (mem, api) = parts(&mut c);
                Ok(api.cost_threshold_key("cost_sign_with_schnorr", mem, src as u64, size as u64, alg as u32, 1)?
                    as i32)
            },
        )?;
        l.func_wrap(
            "ic0",
            "cost_vetkd_derive_key",
            |mut c: Caller<'_, HostState>, src: $P, size: $P, curve: i32, _dst: $P| -> R<i32> {
                charge(&mut c, BASE + size as u64)?;
                let (mem, api) = parts(&mut c);
                Ok(api.cost_threshold_key("cost_vetkd_derive_key", mem, src as u64, size as u64, curve as u32, 0)?
                    as i32)
            },
        )?;
        l.func_wrap("ic0", "env_var_count", |mut c: Caller<'_, HostState>| -> R<$P> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).env_var_count()? as $P)
        })?;
        l.func_wrap("ic0", "env_var_name_size", |mut c: Caller<'_, HostState>, index: $P| -> R<$P> {
            charge(&mut c, BASE)?;
            Ok(api(&mut c).env_var_name_size(index as u64)? as $P)
        })?;
        l.func_wrap(
            "ic0",
            "env_var_name_copy",
            |mut c: Caller<'_, HostState>, index: $P, dst: $P, off: $P, size: $P| -> R<()> {
                charge(&mut c, BASE + size as u64)?;
                let (mem, api) = parts(&mut c);
                Ok(api.env_var_name_copy(mem, index as u64, dst as u64, off as u64, size as u64)?)
            },
        )?;
        l.func_wrap("ic0", "env_var_name_exists", |mut c: Caller<'_, HostState>, src: $P, size: $P| -> R<i32> {
            charge(&mut c, BASE + size as u64)?;
            let (mem, api) = parts(&mut c);
            Ok(api.env_var_name_exists(mem, src as u64, size as u64)? as i32)
        })?;
        l.func_wrap("ic0", "env_var_value_size", |mut c: Caller<'_, HostState>, src: $P, size: $P| -> R<$P> {
            charge(&mut c, BASE + size as u64)?;
            let (mem, api) = parts(&mut c);
            Ok(api.env_var_value_size(mem, src as u64, size as u64)? as $P)
        })?;
        l.func_wrap(
            "ic0",
            "env_var_value_copy",
            |mut c: Caller<'_, HostState>, src: $P, size: $P, dst: $P, off: $P, len: $P| -> R<()> {
                charge(&mut c, BASE + size as u64 + len as u64)?;
                let (mem, api) = parts(&mut c);
                Ok(api.env_var_value_copy(mem, src as u64, size as u64, dst as u64, off as u64, len as u64)?)
            },
        )?;
        l.func_wrap("ic0", "debug_print", |mut c: Caller<'_, HostState>, src: $P, size: $P| -> R<()> {
            let len = (size as u64).min(4096);
            charge(&mut c, 100 + 2 * len + TRANSMISSION_PER_BYTE * len)?;
            let (mem, api) = parts(&mut c);
            Ok(api.debug_print(mem, src as u64, size as u64)?)
        })?;
        l.func_wrap("ic0", "trap", |mut c: Caller<'_, HostState>, src: $P, size: $P| -> R<()> {
            charge(&mut c, BASE + size as u64)?;
            let (mem, api) = parts(&mut c);
            Err(api.trap(mem, src as u64, size as u64).into())
        })?;
    }};
}

/// The deprecated functions that exist only for wasm32 modules.
fn add_deprecated(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap("ic0", "msg_cycles_available", |mut c: Caller<'_, HostState>| -> R<i64> {
        charge(&mut c, BASE)?;
        to_u64_cycles(api(&mut c).msg_cycles_available()?)
    })?;
    l.func_wrap("ic0", "msg_cycles_refunded", |mut c: Caller<'_, HostState>| -> R<i64> {
        charge(&mut c, BASE)?;
        to_u64_cycles(api(&mut c).msg_cycles_refunded()?)
    })?;
    l.func_wrap("ic0", "msg_cycles_accept", |mut c: Caller<'_, HostState>, max: i64| -> R<i64> {
        charge(&mut c, BASE)?;
        to_u64_cycles(api(&mut c).msg_cycles_accept(Cycles::new(max as u64 as u128))?)
    })?;
    l.func_wrap("ic0", "canister_cycle_balance", |mut c: Caller<'_, HostState>| -> R<i64> {
        charge(&mut c, BASE)?;
        to_u64_cycles(api(&mut c).canister_cycle_balance()?)
    })?;
    l.func_wrap("ic0", "call_cycles_add", |mut c: Caller<'_, HostState>, amount: i64| -> R<()> {
        charge(&mut c, BASE)?;
        Ok(api(&mut c).call_cycles_add(Cycles::new(amount as u64 as u128))?)
    })?;
    l.func_wrap("ic0", "stable_size", |mut c: Caller<'_, HostState>| -> R<i32> {
        charge(&mut c, 20)?;
        Ok(api(&mut c).stable_size()? as i32)
    })?;
    l.func_wrap("ic0", "stable_grow", |mut c: Caller<'_, HostState>, pages: i32| -> R<i32> {
        charge(&mut c, 600)?;
        Ok(api(&mut c).stable_grow(pages as u32)?)
    })?;
    l.func_wrap("ic0", "stable_write", |mut c: Caller<'_, HostState>, off: i32, src: i32, size: i32| -> R<()> {
        charge(&mut c, 20 + size as u32 as u64)?;
        let (mem, api) = parts(&mut c);
        let new_pages =
            api.stable_write(mem, off as u32 as u64, src as u32 as u64, size as u32 as u64, "stable_write", true)?;
        charge(&mut c, STABLE_DIRTY_PAGE * new_pages)
    })?;
    l.func_wrap("ic0", "stable_read", |mut c: Caller<'_, HostState>, dst: i32, off: i32, size: i32| -> R<()> {
        charge(&mut c, 20 + size as u32 as u64)?;
        let (mem, api) = parts(&mut c);
        Ok(api.stable_read(mem, dst as u32 as u64, off as u32 as u64, size as u32 as u64, "stable_read", true)?)
    })?;
    Ok(())
}

/// Adds every `ic0` function for one pointer width to `linker`.
pub(crate) fn add_system_api(linker: &mut Linker<HostState>, memory64: bool) -> wasmtime::Result<()> {
    if memory64 {
        define_ic0!(&mut *linker, u64);
    } else {
        define_ic0!(&mut *linker, u32);
        add_deprecated(linker)?;
    }
    Ok(())
}
