//! End-to-end load (`--mode agent`) through the real `ic-agent` 0.49.3, as
//! users see it: requests are built and signed per call, query responses'
//! node signatures are verified (the agent's default), v4 call certificates
//! are verified (BLS). Also the canister setup for the other modes.

use super::stats::{Plan, Recorder};
use super::{Identity, Kind};
use anyhow::{Context, Result};
use candid::{Decode, Encode, Principal};
use ic_agent::Agent;
use ic_agent::identity::{AnonymousIdentity, BasicIdentity};
use std::sync::Arc;
use std::time::Instant;

/// An agent for `url` with the bench identity; the root key is fetched (a
/// local network is not the mainnet).
pub async fn connect(url: &str, identity: Identity, seed: [u8; 32], max_in_flight: usize) -> Result<Agent> {
    let identity: Box<dyn ic_agent::Identity> = match identity {
        Identity::Anonymous => Box::new(AnonymousIdentity),
        Identity::Ed25519 => Box::new(BasicIdentity::from_raw_key(&seed)),
    };
    let agent = Agent::builder()
        .with_url(url)
        .with_boxed_identity(identity)
        .with_max_concurrent_requests(max_in_flight.max(1))
        .build()
        .context("building the agent")?;
    agent.fetch_root_key().await.with_context(|| format!("fetching the root key from {url}"))?;
    Ok(agent)
}

#[derive(candid::CandidType, candid::Deserialize)]
struct CreateArgs {
    amount: Option<candid::Nat>,
}

#[derive(candid::CandidType, candid::Deserialize)]
struct CreateResult {
    canister_id: Principal,
}

#[derive(candid::CandidType, candid::Deserialize)]
enum InstallMode {
    #[serde(rename = "install")]
    Install,
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

/// Creates a canister with `cycles` (provisional API) and returns its id.
pub async fn create_canister(agent: &Agent, cycles: u128) -> Result<Principal> {
    // Creation takes any effective canister id on the subnet.
    let any = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    let bytes = agent
        .update(&Principal::management_canister(), "provisional_create_canister_with_cycles")
        .with_effective_canister_id(any)
        .with_arg(Encode!(&CreateArgs { amount: Some(candid::Nat::from(cycles)) })?)
        .await
        .context("provisional_create_canister_with_cycles")?;
    Ok(Decode!(&bytes, CreateResult)?.canister_id)
}

/// Installs `wasm` (with an empty init argument) on `canister`.
pub async fn install(agent: &Agent, canister: Principal, wasm: Vec<u8>) -> Result<()> {
    let args = InstallArgs { mode: InstallMode::Install, canister_id: canister, wasm_module: wasm, arg: Encode!()? };
    agent
        .update(&Principal::management_canister(), "install_code")
        .with_effective_canister_id(canister)
        .with_arg(Encode!(&args)?)
        .await
        .context("install_code")?;
    Ok(())
}

/// The variant name of an agent error (`"CertifiedReject"`, `"TransportError"`, ...).
fn error_kind(e: &ic_agent::AgentError) -> String {
    let debug = format!("{e:?}");
    let name: String = debug.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    let detail: String = e.to_string().chars().take(100).collect();
    format!("agent {name}: {detail}")
}

/// What a worker calls.
pub struct Target {
    pub agent: Agent,
    pub canister: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub kind: Kind,
}

/// One closed-loop caller: a call, then the next (or the next slot at a
/// fixed rate), until the plan ends.
pub async fn worker(target: Arc<Target>, next: Arc<std::sync::atomic::AtomicU64>, plan: Plan) -> Recorder {
    let mut rec = Recorder::new(plan.runs);
    let end = plan.end();
    loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = plan.slot(i);
        if let Some(slot) = slot {
            if slot >= end {
                break;
            }
            tokio::time::sleep_until(slot.into()).await;
        } else if Instant::now() >= end {
            break;
        }
        let sent = Instant::now();
        let result = match target.kind {
            Kind::Query => {
                target.agent.query(&target.canister, &target.method).with_arg(target.arg.clone()).call().await
            }
            Kind::Update => {
                target.agent.update(&target.canister, &target.method).with_arg(target.arg.clone()).call_and_wait().await
            }
        };
        let latency = sent.elapsed();
        if let Some(w) = plan.window_of(sent) {
            if let Some(slot) = slot {
                rec.lag(w, sent.saturating_duration_since(slot));
            }
            match result {
                Ok(_) => rec.ok(w, latency),
                Err(e) => rec.error(w, error_kind(&e)),
            }
        }
    }
    rec
}
