//! `cairn bench`: a load tool for any IC-compatible HTTP endpoint.
//!
//! * `cairn bench setup`: creates a canister and installs a Wasm module
//!   (e.g. the counter test canister); prints the canister id.
//! * `cairn bench load`: drives queries (`/api/v3/.../query`) or synchronous
//!   updates (`/api/v4/.../call`) at a fixed rate or as fast as possible with
//!   a given concurrency, and reports throughput, latency percentiles,
//!   errors by kind, the client's own CPU cost, and — if the server runs on
//!   this machine — the server's CPU by thread and its round metrics.
//!   `--mode agent` goes through the real `ic-agent` (end to end, as users
//!   see it); `--mode raw` sends pre-signed envelopes with a light client
//!   (server capacity).
//! * `cairn bench startup`: time from spawning `cairn start --clean` to the
//!   first answered query, and the idle RSS of the node.
//!
//! The counter canister is not embedded: `cairn` must not build the test
//! canisters (`cairn-test-canisters`' build script compiles Rust and Motoko
//! canisters). Build it once with `cargo build -p cairn-test-canisters`; the
//! module is then at [`DEFAULT_WASM`].

mod agent;
mod http;
mod raw;
mod startup;
mod stats;
mod sys;

use anyhow::{Context, Result, anyhow, bail};
use candid::Principal;
use clap::{Args, Subcommand, ValueEnum};
use stats::{Boundary, Plan, Recorder};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use sys::{CpuSnapshot, MetricsSnapshot, ServerCpu};

/// Where `cargo build -p cairn-test-canisters` (or any test build that
/// needs it) leaves the counter canister, relative to the workspace root.
pub const DEFAULT_WASM: &str = "target/test-canisters/wasm32-unknown-unknown/release/counter.wasm";

/// Candid encoding of `()`.
const EMPTY_ARGS_HEX: &str = "4449444c0000";

#[derive(Args)]
#[command(
    about = "Drive load against any IC-compatible URL and measure it",
    long_about = "Drive load against any IC-compatible URL and measure it.\n\n\
        Typical use against a local network (see docs/benchmarks.md):\n\n  \
        cargo build -p cairn-test-canisters            # builds the counter canister once\n  \
        cargo run --release -- start --clean &\n  \
        ID=$(cargo run --release -- bench setup)      # creates + installs the counter\n  \
        cargo run --release -- bench load --canister $ID --mode raw --kind query -c 32\n  \
        cargo run --release -- bench load --canister $ID --mode raw --kind update -c 64\n  \
        cargo run --release -- bench load --canister $ID --mode agent --kind query -c 32\n  \
        cargo run --release -- bench startup --wasm target/test-canisters/wasm32-unknown-unknown/release/counter.wasm"
)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Create a canister (provisional API) and install a Wasm module; prints the canister id on stdout.
    Setup(SetupArgs),
    /// Send queries or synchronous (v4) updates and report throughput, latency, errors and CPU cost.
    Load(LoadArgs),
    /// Time `cairn start --clean` until it answers, and measure the idle node's RSS.
    Startup(StartupArgs),
}

/// Which endpoint to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// `POST /api/v3/canister/<id>/query`.
    Query,
    /// `POST /api/v4/canister/<id>/call` (synchronous: answers with a certificate).
    Update,
}

/// Which client sends the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// End to end through ic-agent 0.49.3: builds and signs every request, verifies query
    /// signatures and call certificates, as applications do.
    Agent,
    /// Server capacity: envelopes encoded and signed before the clock starts, sent by a light
    /// hyper client (keep-alive, one request in flight per connection); only the HTTP status
    /// and the CBOR `status` field are checked.
    Raw,
}

/// Who sends the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Identity {
    /// An Ed25519 key: every request carries `sender_pubkey` and `sender_sig` (the server verifies them).
    Ed25519,
    /// The anonymous principal: no signature.
    Anonymous,
}

#[derive(Args)]
struct SetupArgs {
    /// URL of the IC HTTP interface.
    #[arg(long, default_value = "http://127.0.0.1:4943")]
    url: String,
    /// The Wasm module to install (the counter test canister by default).
    #[arg(long, default_value = DEFAULT_WASM)]
    wasm: PathBuf,
    /// Cycles for the new canister.
    #[arg(long, default_value_t = 100_000_000_000_000)]
    cycles: u128,
}

#[derive(Args)]
struct LoadArgs {
    /// URL of the IC HTTP interface.
    #[arg(long, default_value = "http://127.0.0.1:4943")]
    url: String,
    /// The canister to call (text form), e.g. from `cairn bench setup`.
    #[arg(long)]
    canister: String,
    /// `agent`: end to end through ic-agent; `raw`: pre-signed requests, light client (server capacity).
    #[arg(long, value_enum, default_value_t = Mode::Raw)]
    mode: Mode,
    /// `query` (v3 query) or `update` (v4 synchronous call).
    #[arg(long, value_enum, default_value_t = Kind::Query)]
    kind: Kind,
    /// Method to call [default: `get` for queries, `inc` for updates: the counter canister].
    #[arg(long)]
    method: Option<String>,
    /// Candid argument, hex-encoded (default: `()`).
    #[arg(long, default_value = EMPTY_ARGS_HEX)]
    arg_hex: String,
    /// Target requests per second over all connections; 0 = as fast as the connections allow.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Concurrent connections (raw) or concurrent callers (agent), each with one request in flight.
    #[arg(long, short = 'c', default_value_t = 32)]
    concurrency: usize,
    /// Length of each measurement window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up before the first window, in seconds (not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measurement windows, back to back under continuous load; the report shows each and their median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Client runtime threads [default: 1 for raw, 2 for agent].
    #[arg(long)]
    threads: Option<usize>,
    /// Sender of the requests.
    #[arg(long, value_enum, default_value_t = Identity::Ed25519)]
    identity: Identity,
    /// Raw updates: how many distinct calls to sign up front [default: rate × time, or 10,000/s × time].
    #[arg(long)]
    prepare: Option<usize>,
    /// The server's process id, for its CPU use [default: the process listening on the URL's port, if local].
    #[arg(long)]
    server_pid: Option<u32>,
    /// Do not read the server's CPU use or `/metrics`.
    #[arg(long)]
    no_server_stats: bool,
}

#[derive(Args)]
pub struct StartupArgs {
    /// The `cairn` binary to start [default: this binary].
    #[arg(long)]
    cairn: Option<PathBuf>,
    /// Also create a canister, install this module and query it (e.g. the counter canister).
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// Query method of the installed module (also used for the first, rejected, query).
    #[arg(long, default_value = "get")]
    method: String,
    /// Number of fresh starts.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// How long to let the node idle before reading its RSS, in seconds.
    #[arg(long, default_value_t = 5.0)]
    idle_secs: f64,
    #[arg(skip)]
    pub(crate) resolved_cairn: PathBuf,
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Setup(a) => runtime(2)?.block_on(setup(a)),
        BenchCommand::Load(a) => {
            let threads = a.threads.unwrap_or(match a.mode {
                Mode::Raw => 1,
                Mode::Agent => 2,
            });
            runtime(threads)?.block_on(load(a, threads))
        }
        BenchCommand::Startup(mut a) => {
            a.resolved_cairn = match &a.cairn {
                Some(p) => p.clone(),
                None => std::env::current_exe()?,
            };
            runtime(2)?.block_on(startup::run(a))
        }
    }
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()?)
}

async fn setup(args: SetupArgs) -> Result<()> {
    let wasm = std::fs::read(&args.wasm).with_context(|| {
        format!(
            "reading {} (build the counter canister with `cargo build -p cairn-test-canisters`, or pass --wasm)",
            args.wasm.display()
        )
    })?;
    let agent = agent::connect(&args.url, Identity::Anonymous, [0; 32], 4).await?;
    let started = Instant::now();
    let canister = agent::create_canister(&agent, args.cycles).await?;
    eprintln!("created {canister} in {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
    let started = Instant::now();
    agent::install(&agent, canister, wasm).await?;
    eprintln!("installed {} in {:.0} ms", args.wasm.display(), started.elapsed().as_secs_f64() * 1e3);
    println!("{canister}");
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Takes resource readings at every window boundary.
async fn sample_boundaries(plan: Plan, server_pid: Option<u32>, metrics: Option<http::Endpoint>) -> Vec<Boundary> {
    let mut out = Vec::new();
    for k in 0..=plan.runs {
        tokio::time::sleep_until(plan.boundary(k).into()).await;
        let at = Instant::now();
        let client = CpuSnapshot::now();
        let server = server_pid.and_then(ServerCpu::read);
        let metrics = match &metrics {
            Some(e) => {
                http::get(e, "/metrics").await.ok().map(|b| MetricsSnapshot::parse(&String::from_utf8_lossy(&b)))
            }
            None => None,
        };
        out.push(Boundary { at, client, server, metrics });
    }
    out
}

async fn load(args: LoadArgs, threads: usize) -> Result<()> {
    if args.runs == 0 || args.duration <= 0.0 || args.concurrency == 0 {
        bail!("--runs, --duration and --concurrency must be positive");
    }
    let canister = Principal::from_text(&args.canister).map_err(|e| anyhow!("--canister {}: {e}", args.canister))?;
    let arg = hex::decode(&args.arg_hex).context("--arg-hex")?;
    let method = args.method.clone().unwrap_or_else(|| {
        match args.kind {
            Kind::Query => "get",
            Kind::Update => "inc",
        }
        .to_string()
    });
    let endpoint = http::Endpoint::parse(&args.url)?;
    let server_pid = if args.no_server_stats {
        None
    } else {
        args.server_pid
            .or_else(|| endpoint.addr.ip().is_loopback().then(|| sys::pid_listening_on(endpoint.addr.port())).flatten())
    };
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(b"cairn-bn");
    let mut plan = Plan {
        start: Instant::now(),
        warmup: Duration::from_secs_f64(args.warmup),
        window: Duration::from_secs_f64(args.duration),
        runs: args.runs,
        rate: (args.rate > 0.0).then_some(args.rate),
    };
    let (path, route) = match args.kind {
        Kind::Query => (format!("/api/v3/canister/{canister}/query"), "/api/v3/canister/{ecid}/query"),
        Kind::Update => (format!("/api/v4/canister/{canister}/call"), "/api/v4/canister/{ecid}/call"),
    };

    println!(
        "cairn bench load: mode {:?}, kind {:?} ({method}), {} connections, rate {}, client threads {threads}, \
         identity {:?}",
        args.mode,
        args.kind,
        args.concurrency,
        plan.rate.map_or_else(|| "unlimited".to_string(), |r| format!("{r}/s")),
        args.identity
    );
    println!(
        "url {} canister {canister}; warm-up {} s, {} windows of {} s; server pid {}; load average {}",
        args.url,
        args.warmup,
        args.runs,
        args.duration,
        server_pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
        loadavg()
    );

    let mut recorder = Recorder::new(args.runs);
    let mut exhausted_after_ms = 0;
    let boundaries;
    match args.mode {
        Mode::Raw => {
            let spec = raw::RequestSpec {
                kind: args.kind,
                canister: canister.as_slice(),
                method: &method,
                arg: &arg,
                identity: args.identity,
                seed,
            };
            let count = match args.prepare {
                Some(n) => n,
                None => raw::default_update_count(&plan, args.concurrency)?,
            };
            let prepared = raw::prepare(&spec, count);
            println!(
                "prepared {} signed request(s) in {:.2} s ({:.1} µs each)",
                prepared.bodies.len(),
                prepared.took.as_secs_f64(),
                prepared.took.as_secs_f64() * 1e6 / prepared.bodies.len() as f64
            );
            let shared = Arc::new(raw::Shared {
                endpoint: endpoint.clone(),
                path,
                kind: args.kind,
                prepared,
                next: AtomicU64::new(0),
                exhausted: AtomicU64::new(0),
            });
            plan.start = Instant::now() + Duration::from_millis(20);
            let metrics = (!args.no_server_stats).then(|| endpoint.clone());
            let sampler = tokio::spawn(sample_boundaries(plan, server_pid, metrics));
            let workers: Vec<_> =
                (0..args.concurrency).map(|_| tokio::spawn(raw::worker(shared.clone(), plan))).collect();
            for w in workers {
                recorder.merge(w.await?);
            }
            boundaries = sampler.await?;
            exhausted_after_ms = shared.exhausted.load(std::sync::atomic::Ordering::Relaxed);
        }
        Mode::Agent => {
            let agent = agent::connect(&args.url, args.identity, seed, args.concurrency).await?;
            let target = Arc::new(agent::Target { agent, canister, method: method.clone(), arg, kind: args.kind });
            let next = Arc::new(AtomicU64::new(0));
            plan.start = Instant::now() + Duration::from_millis(20);
            let metrics = (!args.no_server_stats).then(|| endpoint.clone());
            let sampler = tokio::spawn(sample_boundaries(plan, server_pid, metrics));
            let workers: Vec<_> = (0..args.concurrency)
                .map(|_| tokio::spawn(agent::worker(target.clone(), next.clone(), plan)))
                .collect();
            for w in workers {
                recorder.merge(w.await?);
            }
            boundaries = sampler.await?;
        }
    }
    if exhausted_after_ms > 0 {
        println!(
            "WARNING: the prepared requests ran out {:.1} s after the start; windows after that are empty \
             (raise --prepare)",
            exhausted_after_ms as f64 / 1e3
        );
    }
    let reports = stats::window_reports(&mut recorder, &boundaries, &plan, route);
    let title = format!(
        "{:?} {:?}, c={}, rate {} (load average at the end: {})",
        args.mode,
        args.kind,
        args.concurrency,
        plan.rate.map_or_else(|| "unlimited".to_string(), |r| format!("{r}/s")),
        loadavg()
    );
    stats::print_report(&title, &reports, &recorder);
    Ok(())
}
