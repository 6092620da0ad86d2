//! The management canister: lifecycle, settings, chunked code, logs, snapshots.

use super::*;
use cairn_execution::management::types::*;
use cairn_state_machine::StateMachine;
use cairn_test_canisters as tc;
use candid::{Decode, Encode};
use sha2::{Digest, Sha256};

fn settings(
    sm: &mut StateMachine,
    sender: Principal,
    id: CanisterId,
    s: CanisterSettingsArgs,
) -> Result<Vec<u8>, CallError> {
    sm.management(
        sender,
        "update_settings",
        &UpdateSettingsArgs { canister_id: cp(id), settings: s, sender_canister_version: None },
    )
}

fn status(sm: &mut StateMachine, id: CanisterId) -> CanisterStatusResult {
    let bytes = sm.management_on(user(), "canister_status", id).unwrap();
    Decode!(&bytes, CanisterStatusResult).unwrap()
}

#[test]
fn first_canister_gets_the_familiar_local_id() {
    let mut sm = StateMachine::new();
    let id = sm.create_canister(user(), CYCLES, None).unwrap();
    assert_eq!(id.to_string(), "bkyz2-fmaaa-aaaaa-qaaaq-cai");
    let id2 = sm.create_canister(user(), CYCLES, None).unwrap();
    assert_eq!(id2.to_string(), "bd3sg-teaaa-aaaaa-qaaba-cai");
}

#[test]
fn controllers_and_settings() {
    let mut sm = StateMachine::new();
    let id = install(&mut sm, tc::COUNTER);
    let other = Principal::self_authenticating(b"other");
    let err = sm.management_on(other, "stop_canister", id).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterInvalidController));
    assert!(err.to_string().contains("Only the controllers of the canister"), "{err}");
    settings(
        &mut sm,
        user(),
        id,
        CanisterSettingsArgs {
            controllers: Some(vec![candid::Principal::from_slice(other.as_slice())]),
            freezing_threshold: Some(Nat::from(1_000u64)),
            ..Default::default()
        },
    )
    .unwrap();
    // The old controller lost control; the new one has it.
    assert_eq!(code(sm.management_on(user(), "canister_status", id)), ErrorCode::CanisterInvalidController);
    let bytes = sm.management_on(other, "canister_status", id).unwrap();
    let s = Decode!(&bytes, CanisterStatusResult).unwrap();
    assert_eq!(s.settings.freezing_threshold, Nat::from(1_000u64));
    assert_eq!(s.settings.controllers, vec![candid::Principal::from_slice(other.as_slice())]);
    assert_eq!(s.status, CanisterStatusType::Running);
    assert!(s.module_hash.is_some());
    // Too many controllers are refused.
    let many: Vec<_> = (0..11u8).map(|i| candid::Principal::from_slice(&[i])).collect();
    let err = settings(&mut sm, other, id, CanisterSettingsArgs { controllers: Some(many), ..Default::default() })
        .unwrap_err();
    assert!(err.to_string().contains("'controllers' length exceeds maximum size allowed of 10"), "{err}");
}

#[test]
fn install_modes_and_history() {
    let mut sm = StateMachine::new();
    let id = install(&mut sm, tc::COUNTER);
    let err = sm.install_code(user(), id, tc::COUNTER, args(()), InstallModeArg::Install).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterNonEmpty));
    sm.update(user(), id, "inc", args(())).unwrap();
    sm.upgrade(user(), id, tc::COUNTER, args(()), false).unwrap();
    sm.install_code(user(), id, tc::COUNTER, args(()), InstallModeArg::Reinstall).unwrap();
    let (v,): (u64,) = sm.query_candid(user(), id, "get", ()).unwrap();
    assert_eq!(v, 0, "reinstall starts from scratch");
    // canister_info is for canisters: ask through an `inter` canister.
    let asker = install(&mut sm, tc::INTER);
    let info_arg = Encode!(&CanisterInfoArgs { canister_id: cp(id), num_requested_changes: Some(10) }).unwrap();
    let ForwardResult::Ok(bytes) = forward(&mut sm, asker, CanisterId::MANAGEMENT, "canister_info", info_arg, 0, None)
    else {
        panic!()
    };
    let info = Decode!(&bytes, CanisterInfoResult).unwrap();
    assert_eq!(info.total_num_changes, 4, "creation, install, upgrade, reinstall");
    assert!(matches!(info.recent_changes[0].details, ChangeDetailsArg::Creation(_)));
    assert!(
        matches!(&info.recent_changes[3].details, ChangeDetailsArg::CodeDeployment(d) if matches!(d.mode, CodeDeploymentMode::Reinstall))
    );
    assert_eq!(info.module_hash.unwrap().as_slice(), Sha256::digest(tc::COUNTER).as_slice());
    // Users may not call canister-only methods.
    let err = sm
        .management(user(), "canister_info", &CanisterInfoArgs { canister_id: cp(id), num_requested_changes: None })
        .unwrap_err();
    assert!(err.to_string().contains("Only canisters can call"), "{err}");
}

#[test]
fn chunked_install_from_the_chunk_store() {
    let mut sm = StateMachine::new();
    let id = sm.create_canister(user(), CYCLES, None).unwrap();
    let mut hashes = Vec::new();
    for chunk in tc::COUNTER.chunks(200_000) {
        let bytes = sm
            .management(
                user(),
                "upload_chunk",
                &UploadChunkArgs { canister_id: cp(id), chunk: ByteBuf::from(chunk.to_vec()) },
            )
            .unwrap();
        hashes.push(Decode!(&bytes, ChunkHash).unwrap());
    }
    let stored = Decode!(&sm.management_on(user(), "stored_chunks", id).unwrap(), Vec<ChunkHash>).unwrap();
    assert_eq!(stored.len(), hashes.len());
    let wrong = InstallChunkedCodeArgs {
        mode: InstallModeArg::Install,
        target_canister: cp(id),
        store_canister: None,
        chunk_hashes_list: hashes.clone(),
        wasm_module_hash: ByteBuf::from(vec![0; 32]),
        arg: ByteBuf::from(args(())),
        sender_canister_version: None,
    };
    let err = sm.management(user(), "install_chunked_code", &wrong).unwrap_err();
    assert!(err.to_string().contains("does not match given hash"), "{err}");
    let ok = InstallChunkedCodeArgs { wasm_module_hash: ByteBuf::from(Sha256::digest(tc::COUNTER).to_vec()), ..wrong };
    sm.management(user(), "install_chunked_code", &ok).unwrap();
    let (v,): (u64,) = sm.update_candid(user(), id, "inc", ()).unwrap();
    assert_eq!(v, 1);
    sm.management_on(user(), "clear_chunk_store", id).unwrap();
    assert!(Decode!(&sm.management_on(user(), "stored_chunks", id).unwrap(), Vec<ChunkHash>).unwrap().is_empty());
}

#[test]
fn gzipped_modules_install() {
    let mut sm = StateMachine::new();
    let id = sm.create_canister(user(), CYCLES, None).unwrap();
    sm.install_code(user(), id, &tc::gzipped(tc::COUNTER), args(()), InstallModeArg::Install).unwrap();
    let (v,): (u64,) = sm.update_candid(user(), id, "inc", ()).unwrap();
    assert_eq!(v, 1);
}

#[test]
fn stop_start_uninstall_delete() {
    let mut sm = StateMachine::new();
    let id = install(&mut sm, tc::COUNTER);
    sm.management_on(user(), "stop_canister", id).unwrap();
    assert_eq!(status(&mut sm, id).status, CanisterStatusType::Stopped);
    assert_eq!(code(sm.update(user(), id, "inc", args(()))), ErrorCode::CanisterStopped);
    assert_eq!(code(sm.query(user(), id, "get", args(()))), ErrorCode::CanisterStopped);
    sm.management_on(user(), "start_canister", id).unwrap();
    sm.update(user(), id, "inc", args(())).unwrap();
    sm.management_on(user(), "uninstall_code", id).unwrap();
    assert_eq!(code(sm.update(user(), id, "inc", args(()))), ErrorCode::CanisterWasmModuleNotFound);
    assert!(status(&mut sm, id).module_hash.is_none());
    assert_eq!(code(sm.management_on(user(), "delete_canister", id)), ErrorCode::CanisterNotStopped);
    sm.management_on(user(), "stop_canister", id).unwrap();
    sm.management_on(user(), "delete_canister", id).unwrap();
    assert_eq!(code(sm.management_on(user(), "canister_status", id)), ErrorCode::CanisterNotFound);
    // Ids are never reused.
    let next = sm.create_canister(user(), CYCLES, None).unwrap();
    assert_ne!(next, id);
}

/// Adds a canister to its own controllers.
pub fn make_self_controlled(sm: &mut StateMachine, b: CanisterId) {
    settings(
        sm,
        user(),
        b,
        CanisterSettingsArgs {
            controllers: Some(vec![cp(b), candid::Principal::from_slice(user().as_slice())]),
            ..Default::default()
        },
    )
    .unwrap();
}

/// Makes B its own controller and has A wait on B, which waits on B's own
/// stop: a call that stays open until B's stop request times out (5 min).
pub fn open_call_until_stop_timeout(
    sm: &mut StateMachine,
    a: CanisterId,
    b: CanisterId,
) -> cairn_types::messages::MessageId {
    make_self_controlled(sm, b);
    let stop_self = ForwardArgs {
        callee: candid::Principal::management_canister(),
        method: "stop_canister".into(),
        arg: ByteBuf::from(args((CanisterIdRecord { canister_id: cp(b) },))),
        cycles: Nat::from(0u8),
        timeout_seconds: None,
    };
    let outer = ForwardArgs {
        callee: cp(b),
        method: "forward".into(),
        arg: ByteBuf::from(args((stop_self,))),
        cycles: Nat::from(0u8),
        timeout_seconds: None,
    };
    sm.submit_ingress(user(), a, "forward", args((outer,)))
}

#[test]
fn stopping_waits_for_open_call_contexts() {
    let mut sm = StateMachine::new();
    let a = install(&mut sm, tc::INTER);
    let b = install(&mut sm, tc::INTER);
    let call = open_call_until_stop_timeout(&mut sm, a, b);
    sm.tick();
    // B's stop (requested now) times out in 300 s; A's, requested 200 s later, does not.
    sm.advance_time(std::time::Duration::from_secs(200));
    let stop = sm.submit_ingress(
        user(),
        CanisterId::MANAGEMENT,
        "stop_canister",
        args((CanisterIdRecord { canister_id: cp(a) },)),
    );
    for _ in 0..5 {
        sm.tick();
    }
    assert_eq!(status(&mut sm, a).status, CanisterStatusType::Stopping);
    assert!(!sm.ingress_state(&stop).unwrap().is_terminal());
    // Stopping canisters refuse new calls but still process responses.
    assert_eq!(code(sm.update(user(), a, "echo", args((ByteBuf::from(vec![1]),)))), ErrorCode::CanisterStopping);
    sm.advance_time(std::time::Duration::from_secs(101));
    sm.tick();
    let reply = sm.await_ingress(call, 10).unwrap();
    let cairn_types::messages::WasmResult::Reply(bytes) = reply else { panic!() };
    let (r,): (ForwardResult,) = candid::decode_args(&bytes).unwrap();
    let ForwardResult::Ok(inner) = r else { panic!("{r:?}") };
    let (inner,): (ForwardResult,) = candid::decode_args(&inner).unwrap();
    let ForwardResult::Err(e) = inner else { panic!() };
    assert!(e.message.contains("Stop canister request timed out"), "{}", e.message);
    sm.await_ingress(stop, 10).unwrap();
    assert_eq!(status(&mut sm, a).status, CanisterStatusType::Stopped);
    // B's stop request timed out, but B kept stopping: with its call finished it is stopped now.
    assert_eq!(status(&mut sm, b).status, CanisterStatusType::Stopped);
}

#[test]
fn raw_rand_and_deposit_cycles_via_a_canister() {
    let mut sm = StateMachine::new();
    let w = install(&mut sm, tc::WALLET);
    let (r1,): (ByteBuf,) = sm.update_candid(user(), w, "raw_rand", ()).unwrap();
    let (r2,): (ByteBuf,) = sm.update_candid(user(), w, "raw_rand", ()).unwrap();
    assert_eq!(r1.len(), 32);
    assert_ne!(r1, r2);
    let target = install(&mut sm, tc::COUNTER);
    let before = sm.cycle_balance(&target);
    sm.update(user(), w, "send", args((cp(target), Nat::from(1_000_000_000u64)))).unwrap();
    assert_eq!(sm.cycle_balance(&target) - before, cairn_types::Cycles::new(1_000_000_000));
    // create_canister needs the creation fee attached.
    let err = sm.update(user(), w, "create", args((Nat::from(1_000u64),))).unwrap_err();
    assert!(err.to_string().contains("requires a fee of 500000000000"), "{err}");
    let (child,): (candid::Principal,) =
        sm.update_candid(user(), w, "create", (Nat::from(2_000_000_000_000u64),)).unwrap();
    let child = CanisterId::from(Principal::try_from_slice(child.as_slice()).unwrap());
    assert_eq!(sm.cycle_balance(&child), cairn_types::Cycles::new(1_500_000_000_000));
    assert!(sm.canister(&child).unwrap().system_state.controllers.contains(&w.get()));
}

#[test]
fn not_yet_supported_features_reject_clearly() {
    let mut sm = StateMachine::new();
    let a = install(&mut sm, tc::INTER);
    for method in ["sign_with_ecdsa", "http_request", "bitcoin_get_balance", "vetkd_derive_key"] {
        let ForwardResult::Err(e) = forward(&mut sm, a, CanisterId::MANAGEMENT, method, args(()), 0, None) else {
            panic!()
        };
        assert_eq!(e.code, 3, "{method}");
        assert!(e.message.contains("not yet supported on this subnet"), "{}", e.message);
    }
    let ForwardResult::Err(e) = forward(&mut sm, a, CanisterId::MANAGEMENT, "no_such_method", args(()), 0, None) else {
        panic!()
    };
    assert!(e.message.contains("Management canister has no method 'no_such_method'"), "{}", e.message);
}

#[test]
fn logs_respect_visibility() {
    let mut sm = StateMachine::new();
    let h = install(&mut sm, tc::HOSTILE);
    let _ = sm.update(user(), h, "write_then_trap", args(()));
    let arg = args((CanisterIdRecord { canister_id: cp(h) },));
    let bytes = sm.query(user(), CanisterId::MANAGEMENT, "fetch_canister_logs", arg.clone()).unwrap();
    let logs = Decode!(&bytes, FetchCanisterLogsResult).unwrap();
    assert!(logs.canister_log_records.iter().any(|r| String::from_utf8_lossy(&r.content).contains("[TRAP]")));
    let stranger = Principal::self_authenticating(b"stranger");
    assert!(sm.query(stranger, CanisterId::MANAGEMENT, "fetch_canister_logs", arg.clone()).is_err());
    settings(
        &mut sm,
        user(),
        h,
        CanisterSettingsArgs { log_visibility: Some(VisibilityArg::Public), ..Default::default() },
    )
    .unwrap();
    sm.query(stranger, CanisterId::MANAGEMENT, "fetch_canister_logs", arg.clone()).unwrap();
    // Not available through an update call.
    assert!(sm.update(user(), CanisterId::MANAGEMENT, "fetch_canister_logs", arg).is_err());
}

#[test]
fn snapshots_restore_state() {
    let mut sm = StateMachine::new();
    let s = install(&mut sm, tc::STABLE);
    sm.update(user(), s, "put", args((1u64, ByteBuf::from(b"before".to_vec())))).unwrap();
    sm.update(user(), s, "bump_heap", args(())).unwrap();
    let take = TakeCanisterSnapshotArgs {
        canister_id: cp(s),
        replace_snapshot: None,
        uninstall_code: None,
        sender_canister_version: None,
    };
    let snap = Decode!(&sm.management(user(), "take_canister_snapshot", &take).unwrap(), SnapshotResult).unwrap();
    assert!(snap.total_size > 0);
    sm.update(user(), s, "put", args((1u64, ByteBuf::from(b"after".to_vec())))).unwrap();
    sm.update(user(), s, "bump_heap", args(())).unwrap();
    let listed =
        Decode!(&sm.management_on(user(), "list_canister_snapshots", s).unwrap(), Vec<SnapshotResult>).unwrap();
    assert_eq!(listed.len(), 1);
    sm.management(
        user(),
        "load_canister_snapshot",
        &LoadCanisterSnapshotArgs { canister_id: cp(s), snapshot_id: snap.id.clone(), sender_canister_version: None },
    )
    .unwrap();
    let (v,): (Option<ByteBuf>,) = sm.query_candid(user(), s, "get", (1u64,)).unwrap();
    assert_eq!(v.unwrap().as_slice(), b"before");
    let (heap,): (u64,) = sm.query_candid(user(), s, "heap_counter", ()).unwrap();
    assert_eq!(heap, 1);
    sm.management(
        user(),
        "delete_canister_snapshot",
        &DeleteCanisterSnapshotArgs { canister_id: cp(s), snapshot_id: snap.id.clone() },
    )
    .unwrap();
    let err = sm
        .management(
            user(),
            "load_canister_snapshot",
            &LoadCanisterSnapshotArgs { canister_id: cp(s), snapshot_id: snap.id, sender_canister_version: None },
        )
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterSnapshotNotFound));
}

#[test]
fn provisional_specified_ids_and_top_up() {
    let mut sm = StateMachine::new();
    let cmc = "rkp4c-7iaaa-aaaaa-aaaca-cai".parse::<Principal>().unwrap();
    let args_ = ProvisionalCreateCanisterArgs {
        amount: None,
        settings: None,
        specified_id: Some(candid::Principal::from_slice(cmc.as_slice())),
        sender_canister_version: None,
    };
    let r =
        Decode!(&sm.management(user(), "provisional_create_canister_with_cycles", &args_).unwrap(), CanisterIdResult)
            .unwrap();
    assert_eq!(r.canister_id.as_slice(), cmc.as_slice());
    let id = CanisterId::from(cmc);
    assert_eq!(sm.cycle_balance(&id), cairn_types::Cycles::new(100_000_000_000_000), "100 T by default");
    assert_eq!(
        code(sm.management(user(), "provisional_create_canister_with_cycles", &args_)),
        ErrorCode::CanisterAlreadyInstalled
    );
    sm.top_up(id, cairn_types::Cycles::new(5)).unwrap();
    assert_eq!(sm.cycle_balance(&id), cairn_types::Cycles::new(100_000_000_000_005));
}
