//! `cairn`: run a local Internet Computer network.

mod bench;
mod network;

use anyhow::{Context, Result, bail};
use cairn_node::{Node, NodeConfig};
use cairn_registry::{NodeSecrets, Registry};
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
    /// Create a network's registry, keys and node configs without starting it.
    Init(InitArgs),
    /// Run one replica from its config file (what `start --nodes N` runs N times).
    Node(NodeArgs),
    /// Add a node to the network's subnet: a new registry version that running
    /// nodes pick up; the node takes part from an interval boundary on, with
    /// key shares it receives by resharing. Then run it with `cairn node`.
    AddNode(AddNodeArgs),
    /// Remove a node from its subnet: a new registry version; its key shares
    /// stop counting from an interval boundary on.
    RemoveNode(RemoveNodeArgs),
    /// Drive load against any IC-compatible URL and measure it (see `cairn bench --help`).
    Bench(bench::BenchArgs),
}

#[derive(clap::Args, Clone)]
struct SubnetArgs {
    /// Consensus unit delay (ms): how long a block maker of rank r waits (r × unit).
    /// Applies when the network is created.
    #[arg(long, default_value_t = 300)]
    unit_delay_ms: u64,
    /// Initial notary delay (ms): how long notaries wait for the leader's block.
    /// Applies when the network is created.
    #[arg(long, default_value_t = 50)]
    notary_delay_ms: u64,
    /// Heights per interval: every interval start is checkpointed and
    /// certified by a catch-up package (nodes that fell behind resume from
    /// it). Applies when the network is created.
    #[arg(long, default_value_t = 500)]
    interval_length: u64,
}

#[derive(clap::Args)]
struct StartArgs {
    /// Port of the HTTP interface (of node 0; node i listens on port + i).
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
    /// Nodes in the subnet (each a separate `cairn node` process when > 1).
    /// Defaults to the existing network's size, or 1 for a new network.
    #[arg(long)]
    nodes: Option<usize>,
    #[command(flatten)]
    subnet: SubnetArgs,
    /// Test/bench setting: one-way delay (ms) added to every message between nodes.
    #[arg(long, default_value_t = 0)]
    link_delay_ms: u64,
    /// Log filter, e.g. `info`, `debug`, `cairn_node=debug`.
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[derive(clap::Args)]
struct AddNodeArgs {
    /// The network's directory (as given to `cairn init` or `cairn start`).
    #[arg(long)]
    data_dir: PathBuf,
    /// The new node's address (default: node 0's host).
    #[arg(long)]
    host: Option<IpAddr>,
    /// Its HTTP port (default: one above the highest HTTP port in use).
    #[arg(long)]
    http_port: Option<u16>,
    /// Its QUIC port (default: one above the highest QUIC port in use).
    #[arg(long)]
    p2p_port: Option<u16>,
}

#[derive(clap::Args)]
struct RemoveNodeArgs {
    /// The network's directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// The node: its index in the data directory (`node-<i>`) or its id.
    #[arg(long)]
    node: String,
}

#[derive(clap::Args)]
struct InitArgs {
    /// Nodes in the subnet.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Where to create the network.
    #[arg(long)]
    data_dir: PathBuf,
    /// HTTP port (of node 0; node i gets port + i unless --hosts is given).
    #[arg(long, default_value_t = 4943)]
    port: u16,
    /// Address of every node.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// One address per node, comma-separated (e.g. one network namespace
    /// each); every node then listens on --port (HTTP) and --port + 1000 (QUIC).
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<IpAddr>,
    #[command(flatten)]
    subnet: SubnetArgs,
}

#[derive(clap::Args)]
struct NodeArgs {
    /// The node's config file (see `cairn init`).
    #[arg(long)]
    config: PathBuf,
    /// Overrides the config's link delay (ms), a test/bench setting.
    #[arg(long)]
    link_delay_ms: Option<u64>,
    /// Log filter.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn init_logging(filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr).init();
}

fn spec(nodes: usize, host: IpAddr, port: u16, hosts: Vec<IpAddr>, subnet: &SubnetArgs) -> network::NetworkSpec {
    network::NetworkSpec {
        nodes,
        host,
        port,
        hosts,
        unit_delay_ms: subnet.unit_delay_ms,
        initial_notary_delay_ms: subnet.notary_delay_ms,
        // Key generation needs room: dealings in the first half of an
        // interval, complaints about them after.
        interval_length: subnet.interval_length.max(4),
    }
}

fn init(args: InitArgs) -> Result<()> {
    let spec = spec(args.nodes, args.host, args.port, args.hosts, &args.subnet);
    let registry = network::create(&args.data_dir, &spec)?;
    println!("Created a network of {} node(s) in {}", args.nodes, args.data_dir.display());
    println!("Root key: {}", hex::encode(registry.root_key_der()));
    for i in 0..args.nodes {
        println!("Run node {i} with: cairn node --config {}", network::node_file_path(&args.data_dir, i).display());
    }
    Ok(())
}

fn start(args: StartArgs) -> Result<()> {
    let started = Instant::now();
    init_logging(&args.log_level);
    if args.clean && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir).with_context(|| format!("removing {}", args.data_dir.display()))?;
    }
    let registry_path = network::registry_path(&args.data_dir);
    let registry = if registry_path.exists() {
        Registry::load(&registry_path)?
    } else {
        let spec = spec(args.nodes.unwrap_or(1), args.host, args.port, Vec::new(), &args.subnet);
        let registry = network::create(&args.data_dir, &spec)?;
        tracing::info!(path = %args.data_dir.display(), "created a new network");
        registry
    };
    let members = registry.subnets[&registry.root_subnet].members.len();
    if let Some(n) = args.nodes
        && n != members
    {
        bail!(
            "{} holds a network of {members} node(s), not {n}; start it without --nodes, or add --clean for a new one",
            args.data_dir.display()
        );
    }
    if members > 1 {
        return supervise(&args, &registry, members);
    }
    let secrets = NodeSecrets::load(&network::node_dir(&args.data_dir, 0).join("secrets.json"))?;
    let root_key = hex::encode(registry.root_key_der());
    let node_dir = network::node_dir(&args.data_dir, 0);
    let node = Node::start(NodeConfig::new(node_dir, registry, secrets)).context("starting the node")?;
    let addr = SocketAddr::new(args.host, args.port);
    serve(node, addr, || {
        println!("Cairn local network is running at http://{addr}");
        println!("Root key: {root_key}");
        println!("Data directory: {}", args.data_dir.display());
        tracing::info!(ms = started.elapsed().as_millis() as u64, "ready");
    })
}

/// Serves the HTTP interface of `node` on `addr` until Ctrl-C or SIGTERM,
/// then shuts the node down cleanly.
fn serve(node: Node, addr: SocketAddr, on_ready: impl FnOnce()) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        let mut metrics = cairn_http::Metrics::new();
        node.metrics().register(metrics.registry_mut());
        let app = cairn_http::router(node.api(), cairn_http::HttpConfig::default(), metrics);
        on_ready();
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("serving HTTP")
    });
    tracing::info!("shutting down");
    node.shutdown();
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

/// `cairn node --config`: one replica of a (multi-node) subnet.
fn run_node(args: NodeArgs) -> Result<()> {
    init_logging(&args.log_level);
    let file = network::NodeFile::load(&args.config)?;
    let (registry, secrets) = network::load_node(&file)?;
    let record = registry.nodes.get(&secrets.node_id).context("the node is not in the registry")?.clone();
    let mut config = NodeConfig::new(file.data_dir.clone(), registry, secrets);
    config.subnet.p2p_listen = file.p2p_listen;
    config.subnet.link_delay = std::time::Duration::from_millis(args.link_delay_ms.unwrap_or(file.link_delay_ms));
    config.subnet.wrong_state_hash_from = file.wrong_state_hash_from.map(cairn_types::Height);
    config.subnet.wrong_state_hash_until = file.wrong_state_hash_until.map(cairn_types::Height);
    // Registry changes (nodes joining and leaving) arrive through this file.
    config.subnet.registry_path = Some(file.registry.clone());
    if let Some(interval) = file.checkpoint_interval {
        config.replica.checkpoint_interval = interval.max(1);
    }
    let node_id = config.secrets.node_id;
    let node = Node::start(config).context("starting the node")?;
    let addr = file.http_listen.unwrap_or(record.http_addr);
    serve(node, addr, || {
        println!("Cairn node {node_id} serves http://{addr} (peers: QUIC on {})", record.p2p_addr);
        tracing::info!(%node_id, %addr, "node ready");
    })
}

/// `cairn start` with several nodes: one `cairn node` process per node,
/// stopped together on Ctrl-C.
fn supervise(args: &StartArgs, registry: &Registry, members: usize) -> Result<()> {
    let exe = std::env::current_exe().context("locating the cairn executable")?;
    let mut children = Vec::with_capacity(members);
    // The node directories of the current members (nodes may have joined
    // or left since `init`).
    let nodes = network::member_indices(&args.data_dir, registry)?;
    for &(i, _) in &nodes {
        let dir = network::node_dir(&args.data_dir, i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))
            .with_context(|| format!("opening {}/node.log", dir.display()))?;
        let child = std::process::Command::new(&exe)
            .arg("node")
            .arg("--config")
            .arg(network::node_file_path(&args.data_dir, i))
            .args(["--log-level", &args.log_level, "--link-delay-ms", &args.link_delay_ms.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {i}"))?;
        children.push(child);
    }
    println!("Cairn local network of {members} nodes (one subnet):");
    for (i, node) in &nodes {
        let url = format!("http://{}", registry.nodes[node].http_addr);
        println!("  node {i}: {url}  (log: {}/node.log)", network::node_dir(&args.data_dir, *i).display());
    }
    println!("Root key: {}", hex::encode(registry.root_key_der()));
    println!("Data directory: {}", args.data_dir.display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        tokio::select! {
            _ = shutdown_signal() => {},
            _ = watch_children(&mut children) => {},
        }
    });
    println!("Stopping {members} nodes...");
    for child in &children {
        // SAFETY: plain syscall on a pid we own.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(15);
    for (i, child) in children.iter_mut().enumerate() {
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(50)),
                _ => {
                    tracing::warn!("node {i} did not stop in time; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Reports nodes that exit on their own; returns only when all have.
async fn watch_children(children: &mut [std::process::Child]) {
    let mut reported = vec![false; children.len()];
    loop {
        for (i, child) in children.iter_mut().enumerate() {
            if !reported[i]
                && let Ok(Some(status)) = child.try_wait()
            {
                reported[i] = true;
                eprintln!("node {i} exited ({status}); see its node.log");
            }
        }
        if reported.iter().all(|r| *r) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
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
        Command::Init(args) => init(args),
        Command::Node(args) => run_node(args),
        Command::AddNode(args) => {
            let (i, id, path) = network::add_node(&args.data_dir, args.host, args.http_port, args.p2p_port)?;
            println!("Added node {i} ({id}); run it with: cairn node --config {}", path.display());
            Ok(())
        }
        Command::RemoveNode(args) => {
            let (id, version) = network::remove_node(&args.data_dir, &args.node)?;
            println!("Removed node {id} from its subnet (registry version {})", version.0);
            Ok(())
        }
        Command::Bench(args) => bench::run(args),
    }
}
