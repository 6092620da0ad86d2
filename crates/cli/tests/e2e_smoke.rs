use cairn_e2e::{LocalNetwork, mgmt};
use candid::{Decode, Encode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ic_agent_creates_installs_updates_and_queries() {
    let net = LocalNetwork::start(env!("CARGO_BIN_EXE_cairn")).unwrap();
    let agent = net.agent(None).await.unwrap();
    let id = mgmt::create_canister(&agent, 100_000_000_000_000, None).await.unwrap();
    mgmt::install_code(&agent, id, mgmt::InstallMode::Install, cairn_test_canisters::COUNTER, &Encode!().unwrap())
        .await
        .unwrap();
    for i in 1..=3u64 {
        let r = agent.update(&id, "inc").with_arg(Encode!().unwrap()).await.unwrap();
        assert_eq!(Decode!(&r, u64).unwrap(), i);
    }
    let r = agent.query(&id, "get").with_arg(Encode!().unwrap()).await.unwrap();
    assert_eq!(Decode!(&r, u64).unwrap(), 3);
}
