//! `cairn`: run a local Internet Computer network.

mod bench;

use anyhow::{Context, Result};
use cairn_node::{Node, NodeConfig};
use cairn_registry::{ConsensusParams, GenesisConfig, NodeSecrets, Registry};
use cairn_state::SubnetType;
use clap::{Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "cairn", version, about = "An independent implementation of the Internet Computer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local network and serve the IC HTTP interface until Ctrl-C.
    Start(StartArgs),
    /// Drive load against any IC-compatible URL and measure it (see `cairn bench --help`).
    Bench(bench::BenchArgs),
}

#[derive(clap::Args)]
struct StartArgs {
    /// Port of the HTTP interface.
    #[arg(long, default_value_t = 4943)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Where the network keeps its state (created if missing).
    #[arg(long, default_value = ".cairn/local")]
    data_dir: PathBuf,
    /// Delete the data directory first and start a fresh network.
    #[arg(long)]
    clean: bool,
    /// Log filter, e.g. `info`, `debug`, `cairn_node=debug`.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn init_logging(filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
}

/// Loads the network in `data_dir`, or creates one (genesis) if there is none.
fn load_or_create_network(args: &StartArgs) -> Result<(Registry, NodeSecrets)> {
    let registry_path = args.data_dir.join("registry.json");
    let secrets_path = args.data_dir.join("node-0").join("secrets.json");
    if registry_path.exists() && secrets_path.exists() {
        let registry = Registry::load(&registry_path)?;
        let secrets = NodeSecrets::load(&secrets_path)?;
        return Ok((registry, secrets));
    }
    std::fs::create_dir_all(secrets_path.parent().expect("has a parent")).context("creating the data directory")?;
    let config = GenesisConfig {
        nodes: 1,
        subnet_type: SubnetType::Application,
        cost_subnet_size: cairn_types::fees::REFERENCE_SUBNET_SIZE,
        consensus: ConsensusParams::default(),
        http_host: args.host,
        http_port: args.port,
        p2p_port: args.port.wrapping_add(1000),
        admins: Vec::new(),
    };
    let (registry, mut secrets) = cairn_registry::genesis(&config, rand::random());
    registry.save(&registry_path)?;
    let secrets = secrets.remove(0);
    secrets.save(&secrets_path)?;
    tracing::info!(path = %args.data_dir.display(), "created a new network");
    Ok((registry, secrets))
}

fn start(args: StartArgs) -> Result<()> {
    let started = Instant::now();
    init_logging(&args.log_level);
    if args.clean && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir).with_context(|| format!("removing {}", args.data_dir.display()))?;
    }
    let (registry, secrets) = load_or_create_network(&args)?;
    let root_key = hex::encode(registry.root_key_der());
    let node_dir = args.data_dir.join("node-0");
    let node = Node::start(NodeConfig::new(node_dir, registry, secrets)).context("starting the node")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let addr = SocketAddr::new(args.host, args.port);
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        let mut metrics = cairn_http::Metrics::new();
        node.metrics().register(metrics.registry_mut());
        let app = cairn_http::router(node.api(), cairn_http::HttpConfig::default(), metrics);
        println!("Cairn local network is running at http://{addr}");
        println!("Root key: {root_key}");
        println!("Data directory: {}", args.data_dir.display());
        tracing::info!(ms = started.elapsed().as_millis() as u64, "ready");
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("serving HTTP")
    });
    tracing::info!("shutting down");
    node.shutdown();
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Start(args) => start(args),
        Command::Bench(args) => bench::run(args),
    }
}
