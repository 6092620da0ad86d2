//! Smoke tests with the two other real clients, run as child processes against
//! a `cairn start` network: the JS agent `@icp-sdk/core` (`tests/js/smoke.mjs`:
//! v4 sync calls, a v2 call with read_state polling, verified queries and
//! certificates) and ic-py (`tests/python/smoke.py`: v2 call, query and
//! read_state). `scripts/setup.sh` installs both (`npm ci` in `tests/js`, a venv
//! in `tests/python/.venv`); when they are missing these tests fail and say so.
//!
//! Each test installs the counter with ic-agent and sets it to [`START`], lets
//! the client run, and then checks with ic-agent that the counter moved by
//! exactly the increments the client reports.

use cairn_e2e::{LocalNetwork, mgmt};
use candid::{Decode, Encode, Principal};
use ic_agent::Agent;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The counter's value before a client runs.
const START: u64 = 1000;
/// `inc` calls `tests/js/smoke.mjs` makes (its `INCREMENTS`).
const JS_INCREMENTS: u64 = 5;
/// `inc` calls `tests/python/smoke.py` makes (its `INCREMENTS`).
const PY_INCREMENTS: u64 = 4;
/// A client run that takes longer than this fails (each script also has its own watchdog).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

const SETUP_HINT: &str = "run scripts/setup.sh (it installs the client libraries the client tests need)";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root")
}

/// Creates a canister, installs the counter and sets it to [`START`].
async fn install_counter(agent: &Agent) -> Principal {
    let id =
        mgmt::create_canister(agent, 100_000_000_000_000, None).await.expect("provisional_create_canister_with_cycles");
    mgmt::install_code(agent, id, mgmt::InstallMode::Install, cairn_test_canisters::COUNTER, &Encode!().unwrap())
        .await
        .expect("install_code");
    agent.update(&id, "set").with_arg(Encode!(&START).unwrap()).await.expect("set");
    id
}

async fn counter_value(agent: &Agent, id: &Principal) -> u64 {
    let bytes = agent.query(id, "get").with_arg(Encode!().unwrap()).await.expect("query get");
    Decode!(&bytes, u64).unwrap()
}

/// What a client run printed.
struct ClientRun {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to completion (killing it after [`CLIENT_TIMEOUT`]) and collects its output.
fn run_client(mut cmd: Command) -> ClientRun {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}; {SETUP_HINT}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let (success, status) = loop {
        match child.try_wait().expect("waiting for the client") {
            Some(st) => break (st.success(), st.to_string()),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break (false, format!("killed after {CLIENT_TIMEOUT:?}"));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    ClientRun { success, status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

/// Runs a client smoke script, prints its output, and returns the increments
/// from its final `<tag>: ok increments=<n> counter=<value>` line.
async fn run_smoke(tag: &str, cmd: Command) -> (u64, u64) {
    let run = tokio::task::spawn_blocking(move || run_client(cmd)).await.unwrap();
    println!("--- {tag} stdout ---\n{}--- {tag} stderr ---\n{}", run.stdout, run.stderr);
    assert!(
        run.success,
        "{tag} failed ({}):\n--- stdout ---\n{}--- stderr ---\n{}",
        run.status, run.stdout, run.stderr
    );
    let prefix = format!("{tag}: ok ");
    let last = run.stdout.lines().rev().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| {
        panic!("{tag} exited 0 but printed no `{prefix}increments=.. counter=..` line:\n{}", run.stdout)
    });
    let field = |name: &str| -> u64 {
        last.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{name}=<n>` in `{last}`"))
    };
    (field("increments"), field("counter"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_agent_icp_sdk_core_smoke() {
    let root = workspace_root();
    let js = root.join("tests/js");
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!("`node` is not on PATH: the JS agent smoke test needs Node.js >= 20; {SETUP_HINT}"),
    }
    let installed = js.join("node_modules/@icp-sdk/core/package.json");
    assert!(installed.is_file(), "{} is missing: the JS agent is not installed; {SETUP_HINT}", installed.display());

    let net = LocalNetwork::start(env!("CARGO_BIN_EXE_cairn")).unwrap();
    let agent = net.agent(None).await.unwrap();
    let id = install_counter(&agent).await;

    let mut cmd = Command::new("node");
    cmd.arg(js.join("smoke.mjs")).arg(net.url()).arg(id.to_text()).current_dir(&js);
    let started = Instant::now();
    let (incs, reported) = run_smoke("js-smoke", cmd).await;
    println!("js-smoke took {:?}", started.elapsed());

    assert_eq!(incs, JS_INCREMENTS, "the JS smoke test made {incs} increments, expected {JS_INCREMENTS}");
    assert_eq!(reported, START + incs, "the JS agent saw the counter at {reported}");
    assert_eq!(counter_value(&agent, &id).await, START + JS_INCREMENTS, "counter after the JS agent's calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ic_py_smoke() {
    let root = workspace_root();
    let py = root.join("tests/python");
    let python = py.join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing: the ic-py venv is not installed; {SETUP_HINT}", python.display());
    let probe = Command::new(&python).args(["-c", "import ic, cbor2"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "ic-py is not importable in {}: {}; {SETUP_HINT}",
            python.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("cannot run {}: {e}; {SETUP_HINT}", python.display()),
    }

    let net = LocalNetwork::start(env!("CARGO_BIN_EXE_cairn")).unwrap();
    let agent = net.agent(None).await.unwrap();
    let id = install_counter(&agent).await;

    let mut cmd = Command::new(&python);
    cmd.arg(py.join("smoke.py")).arg(net.url()).arg(id.to_text()).current_dir(&py);
    let started = Instant::now();
    let (incs, reported) = run_smoke("py-smoke", cmd).await;
    println!("py-smoke took {:?}", started.elapsed());

    assert_eq!(incs, PY_INCREMENTS, "the ic-py smoke test made {incs} increments, expected {PY_INCREMENTS}");
    assert_eq!(reported, START + incs, "ic-py saw the counter at {reported}");
    assert_eq!(counter_value(&agent, &id).await, START + PY_INCREMENTS, "counter after ic-py's calls");
}
