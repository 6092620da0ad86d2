use cairn_e2e::LocalNetwork;
use candid::{Decode, Encode, Principal};

#[derive(candid::CandidType, candid::Deserialize)]
struct CreateArgs {
    amount: Option<candid::Nat>,
}

#[derive(candid::CandidType, candid::Deserialize)]
struct CreateResult {
    canister_id: Principal,
}

#[derive(candid::CandidType, candid::Deserialize)]
struct InstallArgs {
    mode: InstallMode,
    canister_id: Principal,
    #[serde(with = "serde_bytes")]
    wasm_module: Vec<u8>,
    #[serde(with = "serde_bytes")]
    arg: Vec<u8>,
}

#[derive(candid::CandidType, candid::Deserialize)]
enum InstallMode {
    #[serde(rename = "install")]
    Install,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ic_agent_creates_installs_updates_and_queries() {
    let net = LocalNetwork::start(env!("CARGO_BIN_EXE_cairn")).unwrap();
    let agent = net.agent(None).await.unwrap();
    let mgmt = Principal::management_canister();
    let any = Principal::from_text("bkyz2-fmaaa-aaaaa-qaaaq-cai").unwrap();
    let bytes = agent
        .update(&mgmt, "provisional_create_canister_with_cycles")
        .with_effective_canister_id(any)
        .with_arg(Encode!(&CreateArgs { amount: Some(candid::Nat::from(100_000_000_000_000u128)) }).unwrap())
        .await
        .unwrap();
    let id = Decode!(&bytes, CreateResult).unwrap().canister_id;
    let install = InstallArgs {
        mode: InstallMode::Install,
        canister_id: id,
        wasm_module: cairn_test_canisters::COUNTER.to_vec(),
        arg: Encode!().unwrap(),
    };
    agent
        .update(&mgmt, "install_code")
        .with_effective_canister_id(id)
        .with_arg(Encode!(&install).unwrap())
        .await
        .unwrap();
    for i in 1..=3u64 {
        let r = agent.update(&id, "inc").with_arg(Encode!().unwrap()).await.unwrap();
        assert_eq!(Decode!(&r, u64).unwrap(), i);
    }
    let r = agent.query(&id, "get").with_arg(Encode!().unwrap()).await.unwrap();
    assert_eq!(Decode!(&r, u64).unwrap(), 3);
}
