//! A multi-node subnet of real `cairn node` processes, each started,
//! crashed and restarted on its own.
//!
//! [`LocalSubnet::init`] runs `cairn init` (registry, keys, one config file
//! per node); [`LocalSubnet::spawn`] starts node `i` as
//! `cairn node --config <dir>/node-<i>/node.json`, logging to
//! `<dir>/node-<i>/node.log` (printed by [`LocalSubnet::dump_logs`] when a
//! test fails).

use anyhow::{Context, Result, bail};
use ic_agent::Agent;
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Consensus timing for tests: fast rounds.
pub const TEST_UNIT_DELAY_MS: u64 = 200;
/// Initial notary delay for tests.
pub const TEST_NOTARY_DELAY_MS: u64 = 30;

/// A subnet of `n` node processes on one data directory.
pub struct LocalSubnet {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    /// Each node's HTTP address.
    pub http: Vec<(IpAddr, u16)>,
    children: Vec<Option<Child>>,
    /// Wraps every node command (e.g. `ip netns exec <ns>`).
    wrappers: Vec<Vec<String>>,
    _tmp: tempfile::TempDir,
}

/// A base port `p` such that `p..p+n` (TCP) and `p+1000..p+1000+n` (UDP)
/// are free on loopback right now.
pub fn free_port_block(n: usize) -> u16 {
    for _ in 0..200 {
        let base = crate::free_port();
        if !(1024..=60_000).contains(&base) {
            continue;
        }
        // Every port of the block is claimed, so blocks (and single ports)
        // handed out in this process never overlap.
        let ok = (0..n as u16).all(|i| {
            (i == 0 || crate::claim_port(base + i))
                && crate::claim_port(base + 1000 + i)
                && TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && UdpSocket::bind(("127.0.0.1", base + 1000 + i)).is_ok()
        });
        if ok {
            return base;
        }
    }
    panic!("no block of {n} free ports")
}

impl LocalSubnet {
    /// Creates (but does not start) a subnet of `n` nodes on loopback.
    pub fn init(binary: impl AsRef<Path>, n: usize) -> Result<LocalSubnet> {
        let port = free_port_block(n);
        Self::init_with(binary, n, port, &[])
    }

    /// Creates a subnet whose node `i` listens on `hosts[i]` (HTTP `port`,
    /// QUIC `port + 1000`), or on loopback ports `port + i` if `hosts` is empty.
    pub fn init_with(binary: impl AsRef<Path>, n: usize, port: u16, hosts: &[IpAddr]) -> Result<LocalSubnet> {
        Self::init_full(binary, n, port, hosts, &[])
    }

    /// Creates a subnet on loopback with extra `cairn init` arguments
    /// (e.g. `--interval-length 20`).
    pub fn init_with_args(binary: impl AsRef<Path>, n: usize, args: &[&str]) -> Result<LocalSubnet> {
        Self::init_full(binary, n, free_port_block(n), &[], args)
    }

    fn init_full(
        binary: impl AsRef<Path>,
        n: usize,
        port: u16,
        hosts: &[IpAddr],
        extra: &[&str],
    ) -> Result<LocalSubnet> {
        let tmp = tempfile::tempdir()?;
        let data_dir = tmp.path().join("net");
        let binary = binary.as_ref().to_path_buf();
        let mut cmd = Command::new(&binary);
        cmd.arg("init")
            .args(["--nodes", &n.to_string(), "--port", &port.to_string(), "--data-dir"])
            .arg(&data_dir)
            .args(["--unit-delay-ms", &TEST_UNIT_DELAY_MS.to_string()])
            .args(["--notary-delay-ms", &TEST_NOTARY_DELAY_MS.to_string()])
            .args(extra)
            .stdout(Stdio::null());
        if !hosts.is_empty() {
            let list: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
            cmd.args(["--hosts", &list.join(",")]);
        }
        let status = cmd.status().context("running cairn init")?;
        if !status.success() {
            bail!("cairn init failed: {status}");
        }
        let http = (0..n)
            .map(|i| match hosts.get(i) {
                Some(h) => (*h, port),
                None => ("127.0.0.1".parse().unwrap(), port + i as u16),
            })
            .collect();
        Ok(LocalSubnet {
            binary,
            data_dir,
            http,
            children: (0..n).map(|_| None).collect(),
            wrappers: vec![Vec::new(); n],
            _tmp: tmp,
        })
    }

    /// Starts a fresh subnet of `n` nodes and waits until every node serves
    /// a certified state.
    pub fn start(binary: impl AsRef<Path>, n: usize) -> Result<LocalSubnet> {
        let mut subnet = Self::init(binary, n)?;
        subnet.spawn_all()?;
        subnet.wait_all_healthy(Duration::from_secs(60))?;
        Ok(subnet)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether the subnet has no nodes.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Runs node `i`'s command through `wrapper` (e.g. `["ip", "netns", "exec", "ns0"]`).
    pub fn set_wrapper(&mut self, i: usize, wrapper: &[&str]) {
        self.wrappers[i] = wrapper.iter().map(|s| s.to_string()).collect();
    }

    /// Node `i`'s directory (its `node.json`, `node.log` and state).
    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.data_dir.join(format!("node-{i}"))
    }

    /// Sets a field of node `i`'s config file (takes effect at its next start).
    pub fn set_config(&self, i: usize, key: &str, value: serde_json::Value) -> Result<()> {
        let path = self.node_dir(i).join("node.json");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        config[key] = value;
        std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
        Ok(())
    }

    /// Starts node `i` (again).
    pub fn spawn(&mut self, i: usize) -> Result<()> {
        if self.children[i].is_some() {
            bail!("node {i} is already running");
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.node_dir(i).join("node.log"))?;
        let wrapper = &self.wrappers[i];
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        cmd.arg("node")
            .arg("--config")
            .arg(self.node_dir(i).join("node.json"))
            .args(["--log-level", "info"])
            .stdout(Stdio::null())
            .stderr(log);
        self.children[i] = Some(cmd.spawn().with_context(|| format!("starting node {i}"))?);
        Ok(())
    }

    /// Adds a node to the subnet with `cairn add-node` (a new registry
    /// version the running nodes pick up); returns its index. Start it with
    /// [`LocalSubnet::spawn`].
    pub fn add_node(&mut self) -> Result<usize> {
        let (http, p2p) = (crate::free_port(), crate::free_port());
        let status = Command::new(&self.binary)
            .arg("add-node")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--host", "127.0.0.1", "--http-port", &http.to_string(), "--p2p-port", &p2p.to_string()])
            .stdout(Stdio::null())
            .status()
            .context("running cairn add-node")?;
        if !status.success() {
            bail!("cairn add-node failed: {status}");
        }
        self.http.push(("127.0.0.1".parse().unwrap(), http));
        self.children.push(None);
        self.wrappers.push(Vec::new());
        Ok(self.children.len() - 1)
    }

    /// Removes node `i` from the subnet with `cairn remove-node` (a new
    /// registry version; the process keeps running until stopped).
    pub fn remove_node(&mut self, i: usize) -> Result<()> {
        let status = Command::new(&self.binary)
            .arg("remove-node")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--node", &i.to_string()])
            .stdout(Stdio::null())
            .status()
            .context("running cairn remove-node")?;
        if !status.success() {
            bail!("cairn remove-node failed: {status}");
        }
        Ok(())
    }

    /// Starts every node that is not running.
    pub fn spawn_all(&mut self) -> Result<()> {
        for i in 0..self.len() {
            if self.children[i].is_none() {
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// Crashes node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops node `i` cleanly (SIGTERM, then SIGKILL after 20 s).
    pub fn stop(&mut self, i: usize) {
        let Some(mut c) = self.children[i].take() else { return };
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Whether node `i`'s process is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.children[i].as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Node `i`'s URL.
    pub fn url(&self, i: usize) -> String {
        let (host, port) = self.http[i];
        format!("http://{host}:{port}")
    }

    /// `GET <path>` on node `i` (raw HTTP/1.1), or `None` if it does not answer.
    pub fn get(&self, i: usize, path: &str) -> Option<crate::RawResponse> {
        let (host, port) = self.http[i];
        crate::raw_request_to(host, port, "GET", path, &[]).ok()
    }

    /// The value of a Prometheus metric (without labels) on node `i`.
    pub fn metric(&self, i: usize, name: &str) -> Option<f64> {
        let text = self.get(i, "/metrics")?.text();
        text.lines().find_map(|l| {
            let (key, value) = l.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
    }

    /// Whether node `i` reports a certified state (`replica_health_status: healthy`).
    pub fn is_healthy(&self, i: usize) -> bool {
        self.get(i, "/api/v2/status").is_some_and(|r| r.status == 200 && r.text().contains("healthy"))
    }

    /// Waits until every running node is healthy.
    pub fn wait_all_healthy(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for i in 0..self.len() {
            while !self.is_healthy(i) {
                if self.children[i].is_some() && !self.is_running(i) {
                    self.dump_logs();
                    bail!("node {i} exited");
                }
                if Instant::now() > deadline {
                    self.dump_logs();
                    bail!("node {i} not healthy within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Waits until `cond` holds, polling every 100 ms.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut(&Self) -> bool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            if Instant::now() > deadline {
                self.dump_logs();
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// An ic-agent talking to node `i` (root key fetched from it).
    pub async fn agent(&self, i: usize) -> Result<Agent> {
        let agent = Agent::builder().with_url(self.url(i)).build()?;
        agent.fetch_root_key().await?;
        Ok(agent)
    }

    /// Prints the last lines of every node's log (for failing tests).
    pub fn dump_logs(&self) {
        for i in 0..self.len() {
            let log = std::fs::read_to_string(self.node_dir(i).join("node.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("----- node {i} log (last 40 lines) -----");
            for l in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for LocalSubnet {
    fn drop(&mut self) {
        for i in 0..self.len() {
            self.kill(i);
        }
    }
}

/// The counter test canister (`inc` / `get`) driven through ic-agent, as the
/// multi-node tests use it.
pub mod counter {
    use crate::mgmt::{self, InstallMode};
    use candid::{Decode, Encode, Principal};
    use ic_agent::{Agent, AgentError};

    /// Cycles each test canister is created with.
    pub const CYCLES: u128 = 100_000_000_000_000;

    /// An agent for node `i` of `subnet` with a fixed Ed25519 identity (the
    /// same principal on every node, so it controls what it installed anywhere).
    pub async fn agent(subnet: &super::LocalSubnet, i: usize) -> Agent {
        let mut agent = subnet.agent(i).await.unwrap();
        agent.set_identity(ic_agent::identity::BasicIdentity::from_raw_key(&[5; 32]));
        agent
    }

    /// Creates a canister and installs `wasm` (the counter) into it.
    pub async fn install(agent: &Agent, wasm: &[u8]) -> Principal {
        let id = mgmt::create_canister(agent, CYCLES, None).await.unwrap();
        mgmt::install_code(agent, id, InstallMode::Install, wasm, &Encode!().unwrap()).await.unwrap();
        id
    }

    /// The counter's value (query `get`).
    pub async fn read(agent: &Agent, id: Principal) -> u64 {
        Decode!(&agent.query(&id, "get").with_arg(Encode!().unwrap()).await.unwrap(), u64).unwrap()
    }

    /// One update `inc`; the new value.
    pub async fn inc(agent: &Agent, id: Principal) -> Result<u64, AgentError> {
        let reply = agent.update(&id, "inc").with_arg(Encode!().unwrap()).await?;
        Ok(Decode!(&reply, u64).unwrap())
    }
}
