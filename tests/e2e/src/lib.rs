//! Test harness: starts real `cairn` processes and connects real clients.
//!
//! The `cairn` binary is the one `cargo test --workspace` builds next to
//! the test executables (`target/<profile>/cairn`); if it is missing it is
//! built with `cargo build -p cairn-cli` first.

use anyhow::{Context, Result, bail};
use ic_agent::Agent;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of the `cairn` binary of this build profile, built (or brought up to
/// date) once per test process so a test never runs a stale binary.
pub fn cairn_binary() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| build_cairn().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow::anyhow!(e))
}

fn build_cairn() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> → target/<profile>/cairn
    let profile_dir = exe.parent().and_then(Path::parent).context("unexpected test executable location")?;
    let bin = profile_dir.join("cairn");
    {
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "cairn-cli"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().context("running cargo build -p cairn-cli")?;
        if !status.success() || !bin.exists() {
            bail!("could not build the cairn binary at {}", bin.display());
        }
    }
    Ok(bin)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A running local network (one `cairn start` process).
pub struct LocalNetwork {
    pub port: u16,
    pub data_dir: PathBuf,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl LocalNetwork {
    /// Starts a fresh network in a temporary directory and waits until it is healthy.
    pub fn start() -> Result<Self> {
        let tmp = tempfile::tempdir()?;
        let data_dir = tmp.path().join("data");
        let mut net = LocalNetwork { port: free_port(), data_dir, child: None, _tmp: Some(tmp) };
        net.spawn(&[])?;
        Ok(net)
    }

    /// The HTTP URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again) on the same data directory.
    pub fn spawn(&mut self, extra: &[&str]) -> Result<()> {
        let mut cmd = Command::new(cairn_binary()?);
        cmd.arg("start")
            .args(["--port", &self.port.to_string(), "--data-dir"])
            .arg(&self.data_dir)
            .args(["--log-level", "warn"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        self.child = Some(cmd.spawn().context("starting cairn")?);
        self.wait_healthy(Duration::from_secs(30))
    }

    fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("cairn did not start listening on port {} within {timeout:?}", self.port)
    }

    /// Kills the process with SIGKILL (a crash: no final checkpoint).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process with SIGTERM and waits (a clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// An ic-agent connected to this network (root key fetched, query signatures verified).
    pub async fn agent(&self, identity: Option<Box<dyn ic_agent::Identity>>) -> Result<Agent> {
        let mut builder = Agent::builder().with_url(self.url());
        if let Some(id) = identity {
            builder = builder.with_boxed_identity(id);
        }
        let agent = builder.build()?;
        agent.fetch_root_key().await?;
        Ok(agent)
    }
}

impl Drop for LocalNetwork {
    fn drop(&mut self) {
        self.kill();
    }
}
