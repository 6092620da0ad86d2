//! Test harness: starts real `cairn` processes and connects real clients.
//!
//! The tests live in `crates/cli/tests/` so that Cargo builds the `cairn`
//! binary for them with the very dependency build the tests use (no second
//! build of the workspace) and hands its path over as
//! `env!("CARGO_BIN_EXE_cairn")`; tests pass that path to [`LocalNetwork::start`].
//!
//! * [`LocalNetwork`]: one `cairn start` process on a temporary data
//!   directory; crash it ([`LocalNetwork::kill`]), stop it cleanly
//!   ([`LocalNetwork::stop`]) and start it again on the same directory
//!   ([`LocalNetwork::spawn`]).
//! * [`LocalNetwork::agent`]: a real `ic-agent` connected to it.
//! * [`LocalNetwork::post`] / [`LocalNetwork::get`]: raw HTTP/1.1, for the
//!   inputs `ic-agent` refuses to produce (malformed CBOR, a request type the
//!   endpoint does not take, a body over the server's limit).
//! * [`mgmt`]: the management canister's Candid types and calls through `ic-agent`.

pub mod subnet;

use anyhow::{Context, Result, bail};
use ic_agent::Agent;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback, never the same one twice in this process.
///
/// The port is free when it is chosen but the node binds it only later;
/// tests of one binary run in parallel, and the kernel may hand the same
/// just-released port to two of them. The second node would then fail to
/// bind while its test, connecting to the first node's port, believes it
/// is up. Remembering the ports handed out rules that out.
pub fn free_port() -> u16 {
    loop {
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        if claim_port(port) {
            return port;
        }
    }
}

/// Marks `port` as handed out in this process; false if it already was.
pub fn claim_port(port: u16) -> bool {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port)
}

/// A running local network (one `cairn start` process).
pub struct LocalNetwork {
    /// The `cairn` executable this network runs.
    pub binary: PathBuf,
    pub port: u16,
    pub data_dir: PathBuf,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl LocalNetwork {
    /// Starts a fresh network in a temporary directory and waits until it is healthy.
    pub fn start(binary: impl AsRef<Path>) -> Result<Self> {
        let tmp = tempfile::tempdir()?;
        let data_dir = tmp.path().join("data");
        let binary = binary.as_ref().to_path_buf();
        let mut net = LocalNetwork { binary, port: free_port(), data_dir, child: None, _tmp: Some(tmp) };
        net.spawn(&[])?;
        Ok(net)
    }

    /// The HTTP URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again) on the same data directory and port, and
    /// waits until it listens (`cairn start` binds its port only once the
    /// node has recovered and certified its state).
    pub fn spawn(&mut self, extra: &[&str]) -> Result<()> {
        if self.child.is_some() {
            bail!("cairn is already running on port {}", self.port);
        }
        let mut cmd = Command::new(&self.binary);
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

    fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!("cairn exited before it was ready ({status}); see its log above");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("cairn did not start listening on port {} within {timeout:?}", self.port)
    }

    /// The process id of the running `cairn`, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL (a crash: no final checkpoint).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process with SIGTERM and waits for it to exit (a clean
    /// shutdown). Returns its exit status; a process that does not exit
    /// within 20 s is killed and `None` is returned.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
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

    /// `POST <path>` with a CBOR body, over a fresh HTTP/1.1 connection.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> Result<RawResponse> {
        let (port, path) = (self.port, path.to_string());
        tokio::task::spawn_blocking(move || raw_request(port, "POST", &path, &body)).await?
    }

    /// `GET <path>`, over a fresh HTTP/1.1 connection.
    pub async fn get(&self, path: &str) -> Result<RawResponse> {
        let (port, path) = (self.port, path.to_string());
        tokio::task::spawn_blocking(move || raw_request(port, "GET", &path, &[])).await?
    }
}

impl Drop for LocalNetwork {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP response as received.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request with `Connection: close`. The body is written by a second
/// thread while the response is read, so a server that answers before it
/// has read the whole body (413) is heard even if it then resets the
/// connection.
fn raw_request(port: u16, method: &str, path: &str, body: &[u8]) -> Result<RawResponse> {
    raw_request_to("127.0.0.1".parse().expect("an address"), port, method, path, body)
}

/// [`raw_request`] to any host.
pub fn raw_request_to(host: std::net::IpAddr, port: u16, method: &str, path: &str, body: &[u8]) -> Result<RawResponse> {
    let mut stream = TcpStream::connect_timeout(&(host, port).into(), Duration::from_secs(5)).context("connecting")?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/cbor\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = stream.try_clone()?;
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let sender = std::thread::spawn(move || {
        // The server may stop reading (and reset) once it has answered.
        let _ = writer.write_all(&request);
        let _ = writer.flush();
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the response was received: keep what we have.
            Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e).context("reading the response"),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<RawResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of the response head")?;
    let head = std::str::from_utf8(&raw[..end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("no status line")?;
    let status: u16 =
        status_line.split(' ').nth(1).context("no status code")?.parse().context("status code is not a number")?;
    let mut content_type = None;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-type" => content_type = Some(value.to_string()),
            "content-length" => content_length = Some(value.parse::<usize>()?),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = content_length {
        if rest.len() < len {
            bail!("the response body has {} bytes, Content-Length says {len}", rest.len());
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(RawResponse { status, content_type, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").context("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// The management canister (`aaaaa-aa`): Candid types (spec `ic.did`) and
/// calls made through `ic-agent`, each returning the agent's own error so
/// tests can check reject codes.
pub mod mgmt {
    use candid::{CandidType, Decode, Deserialize, Encode, Nat, Principal};
    use ic_agent::{Agent, AgentError};
    use serde_bytes::Bytes;

    /// The first user canister id of a local network: any id on the subnet
    /// serves as the effective canister id of a creation call.
    pub const ANY_ECID: &str = "bkyz2-fmaaa-aaaaa-qaaaq-cai";

    #[derive(CandidType, Deserialize, Clone, Debug, Default)]
    pub struct CanisterSettings {
        pub controllers: Option<Vec<Principal>>,
        pub compute_allocation: Option<Nat>,
        pub memory_allocation: Option<Nat>,
        pub freezing_threshold: Option<Nat>,
    }

    #[derive(CandidType)]
    struct ProvisionalCreateArgs {
        amount: Option<Nat>,
        settings: Option<CanisterSettings>,
    }

    #[derive(CandidType, Deserialize)]
    struct CanisterIdRecord {
        canister_id: Principal,
    }

    #[derive(CandidType, Deserialize, Clone, Copy, Debug, Default)]
    pub struct UpgradeFlags {
        pub skip_pre_upgrade: Option<bool>,
    }

    #[derive(CandidType, Deserialize, Clone, Copy, Debug)]
    pub enum InstallMode {
        #[serde(rename = "install")]
        Install,
        #[serde(rename = "reinstall")]
        Reinstall,
        #[serde(rename = "upgrade")]
        Upgrade(Option<UpgradeFlags>),
    }

    #[derive(CandidType)]
    struct InstallCodeArgs<'a> {
        mode: InstallMode,
        canister_id: Principal,
        wasm_module: &'a Bytes,
        arg: &'a Bytes,
    }

    #[derive(CandidType)]
    struct UploadChunkArgs<'a> {
        canister_id: Principal,
        chunk: &'a Bytes,
    }

    #[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
    pub struct ChunkHash {
        #[serde(with = "serde_bytes")]
        pub hash: Vec<u8>,
    }

    #[derive(CandidType)]
    struct InstallChunkedCodeArgs<'a> {
        mode: InstallMode,
        target_canister: Principal,
        store_canister: Option<Principal>,
        chunk_hashes_list: Vec<ChunkHash>,
        wasm_module_hash: &'a Bytes,
        arg: &'a Bytes,
    }

    #[derive(CandidType)]
    struct UpdateSettingsArgs {
        canister_id: Principal,
        settings: CanisterSettings,
    }

    /// `canister_status`'s result, the fields the tests read.
    #[derive(CandidType, Deserialize, Clone, Debug)]
    pub struct CanisterStatus {
        pub status: RunningStatus,
        pub module_hash: Option<serde_bytes::ByteBuf>,
        pub cycles: Nat,
        pub settings: DefiniteSettings,
    }

    #[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
    pub enum RunningStatus {
        #[serde(rename = "running")]
        Running,
        #[serde(rename = "stopping")]
        Stopping,
        #[serde(rename = "stopped")]
        Stopped,
    }

    #[derive(CandidType, Deserialize, Clone, Debug)]
    pub struct DefiniteSettings {
        pub controllers: Vec<Principal>,
        pub freezing_threshold: Nat,
    }

    fn decode_err(e: candid::Error) -> AgentError {
        AgentError::CandidError(Box::new(e))
    }

    fn any_ecid() -> Principal {
        Principal::from_text(ANY_ECID).expect("a valid principal")
    }

    async fn call(agent: &Agent, method: &str, ecid: Principal, arg: Vec<u8>) -> Result<Vec<u8>, AgentError> {
        agent.update(&Principal::management_canister(), method).with_effective_canister_id(ecid).with_arg(arg).await
    }

    /// `provisional_create_canister_with_cycles` with `cycles` and optional settings.
    pub async fn create_canister(
        agent: &Agent,
        cycles: u128,
        settings: Option<CanisterSettings>,
    ) -> Result<Principal, AgentError> {
        let arg = Encode!(&ProvisionalCreateArgs { amount: Some(Nat::from(cycles)), settings }).map_err(decode_err)?;
        let reply = call(agent, "provisional_create_canister_with_cycles", any_ecid(), arg).await?;
        Ok(Decode!(&reply, CanisterIdRecord).map_err(decode_err)?.canister_id)
    }

    /// `install_code`.
    pub async fn install_code(
        agent: &Agent,
        canister_id: Principal,
        mode: InstallMode,
        wasm_module: &[u8],
        arg: &[u8],
    ) -> Result<(), AgentError> {
        let arg =
            Encode!(&InstallCodeArgs { mode, canister_id, wasm_module: Bytes::new(wasm_module), arg: Bytes::new(arg) })
                .map_err(decode_err)?;
        call(agent, "install_code", canister_id, arg).await.map(drop)
    }

    /// `upload_chunk`; returns the chunk's hash.
    pub async fn upload_chunk(agent: &Agent, canister_id: Principal, chunk: &[u8]) -> Result<Vec<u8>, AgentError> {
        let arg = Encode!(&UploadChunkArgs { canister_id, chunk: Bytes::new(chunk) }).map_err(decode_err)?;
        let reply = call(agent, "upload_chunk", canister_id, arg).await?;
        Ok(Decode!(&reply, ChunkHash).map_err(decode_err)?.hash)
    }

    /// `stored_chunks` (an update through ingress, as the agent sends it).
    pub async fn stored_chunks(agent: &Agent, canister_id: Principal) -> Result<Vec<Vec<u8>>, AgentError> {
        let arg = Encode!(&CanisterIdRecord { canister_id }).map_err(decode_err)?;
        let reply = call(agent, "stored_chunks", canister_id, arg).await?;
        Ok(Decode!(&reply, Vec<ChunkHash>).map_err(decode_err)?.into_iter().map(|c| c.hash).collect())
    }

    /// `install_chunked_code` from the target's own chunk store.
    pub async fn install_chunked_code(
        agent: &Agent,
        canister_id: Principal,
        mode: InstallMode,
        chunk_hashes: &[Vec<u8>],
        wasm_module_hash: &[u8],
        arg: &[u8],
    ) -> Result<(), AgentError> {
        let args = InstallChunkedCodeArgs {
            mode,
            target_canister: canister_id,
            store_canister: None,
            chunk_hashes_list: chunk_hashes.iter().map(|h| ChunkHash { hash: h.clone() }).collect(),
            wasm_module_hash: Bytes::new(wasm_module_hash),
            arg: Bytes::new(arg),
        };
        let arg = Encode!(&args).map_err(decode_err)?;
        call(agent, "install_chunked_code", canister_id, arg).await.map(drop)
    }

    /// `update_settings`.
    pub async fn update_settings(
        agent: &Agent,
        canister_id: Principal,
        settings: CanisterSettings,
    ) -> Result<(), AgentError> {
        let arg = Encode!(&UpdateSettingsArgs { canister_id, settings }).map_err(decode_err)?;
        call(agent, "update_settings", canister_id, arg).await.map(drop)
    }

    /// A method whose argument is `record { canister_id }` and whose result is empty:
    /// `stop_canister`, `start_canister`, `uninstall_code`, `delete_canister`, ...
    pub async fn canister_call(agent: &Agent, method: &str, canister_id: Principal) -> Result<(), AgentError> {
        let arg = Encode!(&CanisterIdRecord { canister_id }).map_err(decode_err)?;
        call(agent, method, canister_id, arg).await.map(drop)
    }

    /// `canister_status` (as an update call).
    pub async fn canister_status(agent: &Agent, canister_id: Principal) -> Result<CanisterStatus, AgentError> {
        let arg = Encode!(&CanisterIdRecord { canister_id }).map_err(decode_err)?;
        let reply = call(agent, "canister_status", canister_id, arg).await?;
        Decode!(&reply, CanisterStatus).map_err(decode_err)
    }
}

/// Taking apart the outcome of an `ic-agent` call.
pub mod outcome {
    use ic_agent::AgentError;
    use ic_agent::agent::RejectResponse;
    use ic_agent::agent_error::HttpErrorPayload;
    use std::fmt::Debug;

    /// Whether a reject came in a certificate (it went through consensus:
    /// `CertifiedReject`) or straight from the node (a sync call's
    /// `non_replicated_rejection` or a query's `rejected` answer, both HTTP 200:
    /// `UncertifiedReject`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Rejection {
        Certified,
        Uncertified,
    }

    /// The reject a call ended with; panics (showing `what`) on anything else.
    pub fn rejection<T: Debug>(what: &str, result: Result<T, AgentError>) -> (Rejection, RejectResponse) {
        match result {
            Err(AgentError::CertifiedReject { reject, .. }) => (Rejection::Certified, reject),
            Err(AgentError::UncertifiedReject { reject, .. }) => (Rejection::Uncertified, reject),
            other => panic!("{what}: expected a reject, got {other:?}"),
        }
    }

    /// The HTTP error a call ended with; panics (showing `what`) on anything else.
    pub fn http_error<T: Debug>(what: &str, result: Result<T, AgentError>) -> HttpErrorPayload {
        match result {
            Err(AgentError::HttpError(payload)) => payload,
            other => panic!("{what}: expected an HTTP error, got {other:?}"),
        }
    }
}
