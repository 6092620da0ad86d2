//! `cairn bench startup`: how fast a fresh local network answers, and how
//! much memory it holds when idle.
//!
//! Each run spawns `<cairn> start --clean` on a fresh data directory and a
//! free port, and times, from just before the spawn:
//!
//! * **listening**: the HTTP port accepts TCP connections;
//! * **healthy**: `/api/v2/status` reports `replica_health_status = healthy`;
//! * **first query**: a new `ic-agent` (root key fetched, query signatures
//!   verified) gets a node-signed answer to a query. A fresh network has no
//!   canister, so the query goes to an id that does not exist yet and the
//!   answer is the signed rejection `IC0301` (canister not found);
//! * with `--wasm`: **created** (`provisional_create_canister_with_cycles`
//!   certified), **installed** (`install_code` certified; compiles the
//!   module) and **first reply** (a query of `--method` replied).
//!
//! Then it waits `--idle-secs` and reads `VmRSS`/`VmHWM` of the process and
//! the CPU it used while idle, and stops it with SIGTERM.

use super::agent;
use super::http::{Endpoint, get};
use super::stats::median;
use super::sys::{ServerCpu, rss_kib};
use super::{Identity, StartupArgs};
use anyhow::{Context, Result, bail};
use candid::{Encode, Principal};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Milliseconds since `t0`.
fn since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3
}

#[derive(Default, Clone)]
struct RunResult {
    listening_ms: f64,
    healthy_ms: f64,
    first_query_ms: f64,
    created_ms: Option<f64>,
    installed_ms: Option<f64>,
    first_reply_ms: Option<f64>,
    rss_ready_mib: f64,
    rss_idle_mib: f64,
    hwm_mib: f64,
    idle_cores: f64,
}

/// Kills the child with SIGTERM (then SIGKILL) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn healthy(body: &[u8]) -> bool {
    let Ok(value) = ciborium::from_reader::<ciborium::Value, _>(body) else { return false };
    let mut v = &value;
    while let ciborium::Value::Tag(_, inner) = v {
        v = inner;
    }
    v.as_map().is_some_and(|m| {
        m.iter().any(|(k, v)| k.as_text() == Some("replica_health_status") && v.as_text() == Some("healthy"))
    })
}

async fn one_run(args: &StartupArgs, wasm: Option<&[u8]>) -> Result<RunResult> {
    let tmp = tempfile::tempdir()?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let endpoint = Endpoint::parse(&url)?;
    let mut cmd = Command::new(&args.resolved_cairn);
    cmd.arg("start")
        .arg("--clean")
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(tmp.path().join("data"))
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t0 = Instant::now();
    let child = Guard(cmd.spawn().with_context(|| format!("spawning {}", args.resolved_cairn.display()))?);
    let pid = child.0.id();
    let deadline = t0 + Duration::from_secs(60);
    let mut r = RunResult::default();

    while tokio::net::TcpStream::connect(endpoint.addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("cairn did not listen on port {port} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    r.listening_ms = since(t0);
    loop {
        if let Ok(body) = get(&endpoint, "/api/v2/status").await
            && healthy(&body)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("cairn did not become healthy within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    r.healthy_ms = since(t0);

    let agent = agent::connect(&url, Identity::Anonymous, [0; 32], 4).await?;
    // An id in the subnet's range that no canister has yet.
    let absent = Principal::from_slice(&[0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 1, 1]);
    match agent.query(&absent, &args.method).with_arg(Encode!()?).call().await {
        Ok(_) | Err(ic_agent::AgentError::UncertifiedReject { .. }) => {}
        Err(e) => bail!("the first query was not answered: {e}"),
    }
    r.first_query_ms = since(t0);
    r.rss_ready_mib = rss_kib(pid)?.0 as f64 / 1024.0;

    if let Some(wasm) = wasm {
        let canister = agent::create_canister(&agent, 100_000_000_000_000).await?;
        r.created_ms = Some(since(t0));
        agent::install(&agent, canister, wasm.to_vec()).await?;
        r.installed_ms = Some(since(t0));
        agent.query(&canister, &args.method).with_arg(Encode!()?).call().await.context("first query")?;
        r.first_reply_ms = Some(since(t0));
    }

    let cpu_before = ServerCpu::read(pid).map(|c| c.total).unwrap_or_default();
    let idle_start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.idle_secs)).await;
    let cpu_after = ServerCpu::read(pid).map(|c| c.total).unwrap_or_default();
    r.idle_cores = cpu_after.saturating_sub(cpu_before).as_secs_f64() / idle_start.elapsed().as_secs_f64();
    let (rss, hwm) = rss_kib(pid)?;
    r.rss_idle_mib = rss as f64 / 1024.0;
    r.hwm_mib = hwm as f64 / 1024.0;
    drop(child);
    Ok(r)
}

pub async fn run(args: StartupArgs) -> Result<()> {
    let wasm = match &args.wasm {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let size = std::fs::metadata(&args.resolved_cairn).map(|m| m.len()).unwrap_or(0);
    println!(
        "startup of `{} start --clean` ({:.1} MiB binary), {} runs, idle {} s{}",
        args.resolved_cairn.display(),
        size as f64 / (1 << 20) as f64,
        args.runs,
        args.idle_secs,
        if wasm.is_some() { ", with the counter installed" } else { ", no canister" }
    );
    println!(
        "\n| run | listening ms | healthy ms | first query ms | created ms | installed ms | first reply ms | \
         RSS ready MiB | RSS idle MiB | peak RSS MiB | idle CPU cores |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let fmt = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |x| format!("{x:.0}"));
    let row = |name: &str, r: &RunResult| {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.3} |",
            r.listening_ms,
            r.healthy_ms,
            r.first_query_ms,
            fmt(r.created_ms),
            fmt(r.installed_ms),
            fmt(r.first_reply_ms),
            r.rss_ready_mib,
            r.rss_idle_mib,
            r.hwm_mib,
            r.idle_cores
        )
    };
    let mut results = Vec::new();
    for k in 0..args.runs {
        let r = one_run(&args, wasm.as_deref()).await.with_context(|| format!("run {}", k + 1))?;
        row(&(k + 1).to_string(), &r);
        results.push(r);
    }
    let m = |f: &dyn Fn(&RunResult) -> f64| median(&results.iter().map(f).collect::<Vec<_>>());
    let mo = |f: &dyn Fn(&RunResult) -> Option<f64>| {
        let v: Vec<f64> = results.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(&v))
    };
    let med = RunResult {
        listening_ms: m(&|r| r.listening_ms),
        healthy_ms: m(&|r| r.healthy_ms),
        first_query_ms: m(&|r| r.first_query_ms),
        created_ms: mo(&|r| r.created_ms),
        installed_ms: mo(&|r| r.installed_ms),
        first_reply_ms: mo(&|r| r.first_reply_ms),
        rss_ready_mib: m(&|r| r.rss_ready_mib),
        rss_idle_mib: m(&|r| r.rss_idle_mib),
        hwm_mib: m(&|r| r.hwm_mib),
        idle_cores: m(&|r| r.idle_cores),
    };
    row("**median**", &med);
    Ok(())
}
