//! Connections, per-peer queues and the tasks that move frames.

use crate::queue::SendQueue;
use crate::tls::{Membership, SERVER_NAME, node_id_of_cert, tls_configs};
use crate::{P2pError, TransportConfig};
use bytes::Bytes;
use cairn_types::NodeId;
use parking_lot::Mutex;
use quinn::{Connection, VarInt};
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Application close codes (seen in the peer's logs).
const CLOSE_SHUTDOWN: u32 = 0;
const CLOSE_REPLACED: u32 = 1;
const CLOSE_NOT_MEMBER: u32 = 2;
const CLOSE_WRONG_PEER: u32 = 3;
/// Stream stop code: the frame is larger than this node accepts.
const STOP_FRAME_TOO_LARGE: u32 = 1;
/// Bytes of the length prefix.
const PREFIX: usize = 4;
/// Streams a peer may have open towards us at once. Bounds memory per
/// connection together with the stream receive window.
const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Counters for `/metrics` and tests; all monotone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportMetrics {
    /// Frames fully handed to QUIC.
    pub messages_sent: u64,
    /// Messages delivered to the receiver.
    pub messages_received: u64,
    /// Frames dropped because a peer's send queue was full.
    pub messages_dropped: u64,
    /// Frames that failed on the wire (connection lost mid-frame, …).
    pub send_errors: u64,
    /// Received frames refused for exceeding `max_frame_size`.
    pub frames_oversized: u64,
    /// Received frames that were truncated or did not decode.
    pub frames_malformed: u64,
    /// Authenticated connections installed (both directions).
    pub connections_established: u64,
    /// Handshakes that failed, outbound or inbound (includes refused peers).
    pub handshake_failures: u64,
}

#[derive(Debug, Default)]
struct Metrics {
    messages_sent: AtomicU64,
    messages_received: AtomicU64,
    messages_dropped: AtomicU64,
    send_errors: AtomicU64,
    frames_oversized: AtomicU64,
    frames_malformed: AtomicU64,
    connections_established: AtomicU64,
    handshake_failures: AtomicU64,
}

fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    fn snapshot(&self) -> TransportMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportMetrics {
            messages_sent: get(&self.messages_sent),
            messages_received: get(&self.messages_received),
            messages_dropped: get(&self.messages_dropped),
            send_errors: get(&self.send_errors),
            frames_oversized: get(&self.frames_oversized),
            frames_malformed: get(&self.frames_malformed),
            connections_established: get(&self.connections_established),
            handshake_failures: get(&self.handshake_failures),
        }
    }
}

/// Settings copied out of the config for the tasks.
#[derive(Debug)]
struct Settings {
    max_frame_size: usize,
    link_delay: Duration,
    peer_link_delay: BTreeMap<NodeId, Duration>,
    send_queue_capacity: usize,
    receive_queue_capacity: usize,
    backoff_initial: Duration,
    backoff_max: Duration,
    connect_timeout: Duration,
}

/// One remote node: its send queue and its current connection, if any.
#[derive(Debug)]
struct Peer {
    id: NodeId,
    queue: SendQueue,
    conn: watch::Sender<Option<Connection>>,
}

impl Peer {
    fn live_connection(&self) -> Option<Connection> {
        self.conn.borrow().clone().filter(|c| c.close_reason().is_none())
    }
}

struct Inner<M> {
    own_id: NodeId,
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    members: Arc<Membership>,
    peers: Mutex<BTreeMap<NodeId, Arc<Peer>>>,
    /// Peers this node dials (those with a larger id), by address; a dialer
    /// whose entry is gone or changed stops.
    dialing: Mutex<BTreeMap<NodeId, SocketAddr>>,
    settings: Settings,
    metrics: Metrics,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    deliver: mpsc::Sender<(NodeId, M)>,
}

/// Messages received from peers, with the authenticated sender. Dropping it
/// makes the transport discard what arrives.
pub type Inbound<M> = mpsc::Receiver<(NodeId, M)>;

/// Closes the endpoint and stops the background tasks when the last
/// [`Transport`] handle goes away (tasks hold the shared state, not this).
struct Guard {
    endpoint: quinn::Endpoint,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Guard {
    fn close(&self) {
        self.endpoint.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.close();
    }
}

/// A running transport. Cheap to clone; the network shuts down when the last
/// clone is dropped or on [`Transport::shutdown`].
pub struct Transport<M> {
    inner: Arc<Inner<M>>,
    guard: Arc<Guard>,
}

impl<M> Clone for Transport<M> {
    fn clone(&self) -> Self {
        Transport { inner: self.inner.clone(), guard: self.guard.clone() }
    }
}

impl<M> std::fmt::Debug for Transport<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("node_id", &self.inner.own_id).finish_non_exhaustive()
    }
}

impl<M> Transport<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    /// Binds the endpoint, starts dialing the peers with larger ids and
    /// accepting the others, and returns the handle and the receiver of
    /// `(sender, message)` pairs.
    ///
    /// Must be called inside a Tokio runtime, whose tasks then run the
    /// network. Fails if the address cannot be bound or the configuration is
    /// inconsistent; it never waits for peers.
    pub fn start(config: TransportConfig) -> Result<(Transport<M>, Inbound<M>), P2pError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(P2pError::NoRuntime);
        }
        if config.max_frame_size > u32::MAX as usize {
            return Err(P2pError::Config("max_frame_size must fit in u32".into()));
        }
        if config.keep_alive >= config.idle_timeout {
            return Err(P2pError::Config("keep_alive must be shorter than idle_timeout".into()));
        }
        const MAX_LINK_DELAY: Duration = Duration::from_secs(3600);
        if config.peer_link_delay.values().chain([&config.link_delay]).any(|d| *d > MAX_LINK_DELAY) {
            return Err(P2pError::Config("link delays are test settings of at most an hour".into()));
        }
        let own_id = config.key.node_id();
        let members = Arc::new(Membership::new(config.members.clone()));
        let (server_tls, client_tls) = tls_configs(&config.key, members.clone())?;

        let mut transport = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(config.idle_timeout).map_err(|e| P2pError::Config(e.to_string()))?;
        transport
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(Some(config.keep_alive))
            .max_concurrent_uni_streams(VarInt::from_u32(MAX_CONCURRENT_STREAMS))
            .max_concurrent_bidi_streams(VarInt::from_u32(0))
            // Subnet nodes are at most a few hundred ms apart; a lower first
            // guess makes the first retransmission (e.g. to a restarting
            // peer) come sooner than the RFC's 333 ms.
            .initial_rtt(Duration::from_millis(100));
        let transport = Arc::new(transport);

        let server_crypto =
            quinn::crypto::rustls::QuicServerConfig::try_from(server_tls).map_err(|e| P2pError::Tls(e.to_string()))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server_config.transport_config(transport.clone());
        let client_crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).map_err(|e| P2pError::Tls(e.to_string()))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
        client_config.transport_config(transport);

        let endpoint = quinn::Endpoint::server(server_config, config.listen_addr)?;
        let local_addr = endpoint.local_addr()?;
        tracing::info!(node = %own_id, %local_addr, peers = config.peers.len(), "p2p transport listening");

        let (deliver, receiver) = mpsc::channel(config.receive_queue_capacity.max(1));
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let inner = Arc::new(Inner {
            own_id,
            endpoint: endpoint.clone(),
            client_config,
            members,
            peers: Mutex::new(BTreeMap::new()),
            dialing: Mutex::new(BTreeMap::new()),
            settings: Settings {
                max_frame_size: config.max_frame_size,
                link_delay: config.link_delay,
                peer_link_delay: config.peer_link_delay,
                send_queue_capacity: config.send_queue_capacity,
                receive_queue_capacity: config.receive_queue_capacity.max(1),
                backoff_initial: config.backoff_initial.max(Duration::from_millis(1)),
                backoff_max: config.backoff_max.max(config.backoff_initial),
                connect_timeout: config.connect_timeout,
            },
            metrics: Metrics::default(),
            tasks: tasks.clone(),
            deliver,
        });
        let guard = Arc::new(Guard { endpoint, tasks });

        inner.add_peers(&config.peers);
        inner.spawn_tracked(acceptor(inner.clone()));
        Ok((Transport { inner, guard }, receiver))
    }

    /// Replaces the peers and the member set (a registry change, e.g. a node
    /// joins or leaves the subnet): new peers get a send queue and, if their
    /// id is larger, a dialer; peers no longer listed are not dialed any
    /// more; connections to nodes that are no longer members close.
    pub fn set_peers(&self, peers: BTreeMap<NodeId, SocketAddr>, members: BTreeSet<NodeId>) {
        self.set_members(members);
        self.inner.dialing.lock().retain(|id, addr| peers.get(id) == Some(addr));
        self.inner.add_peers(&peers);
    }

    /// Queues `msg` for `peer`. Returns at once; delivery is best effort
    /// (the frame may be dropped if the peer's queue overflows).
    pub fn send(&self, peer: NodeId, msg: &M) -> Result<(), P2pError> {
        if !self.inner.members.contains(&peer) {
            return Err(P2pError::NotAMember(peer));
        }
        let frame = encode(msg, self.inner.settings.max_frame_size)?;
        let target = self.inner.peers.lock().get(&peer).cloned().ok_or(P2pError::UnknownPeer(peer))?;
        self.inner.enqueue(&target, frame);
        Ok(())
    }

    /// Queues `msg` for every known member peer, encoding it once. Returns
    /// the number of peers it was queued for.
    pub fn broadcast(&self, msg: &M) -> Result<usize, P2pError> {
        let frame = encode(msg, self.inner.settings.max_frame_size)?;
        let targets: Vec<Arc<Peer>> = self.inner.peers.lock().values().cloned().collect();
        let mut queued = 0;
        for peer in targets.iter().filter(|p| self.inner.members.contains(&p.id)) {
            self.inner.enqueue(peer, frame.clone());
            queued += 1;
        }
        Ok(queued)
    }
}

impl<M> Transport<M> {
    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.own_id
    }

    /// The bound UDP address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, P2pError> {
        Ok(self.inner.endpoint.local_addr()?)
    }

    /// Peers with a live authenticated connection.
    pub fn connected_peers(&self) -> BTreeSet<NodeId> {
        self.inner.peers.lock().values().filter(|p| p.live_connection().is_some()).map(|p| p.id).collect()
    }

    /// Replaces the member set (e.g. at a new registry version). Later
    /// handshakes use it, and live connections to nodes that are no longer
    /// members are closed at once.
    pub fn set_members(&self, members: BTreeSet<NodeId>) {
        self.inner.members.set(members);
        let peers: Vec<Arc<Peer>> = self.inner.peers.lock().values().cloned().collect();
        for peer in peers.iter().filter(|p| !self.inner.members.contains(&p.id)) {
            if let Some(conn) = peer.live_connection() {
                tracing::info!(peer = %peer.id, "closing connection to a node that left the subnet");
                conn.close(VarInt::from_u32(CLOSE_NOT_MEMBER), b"not a member");
            }
        }
    }

    /// Current counters.
    pub fn metrics(&self) -> TransportMetrics {
        self.inner.metrics.snapshot()
    }

    /// Closes every connection (peers see a clean close and start
    /// reconnecting at once), stops all tasks and waits briefly for the close
    /// to reach the peers. Affects every clone of this handle.
    pub async fn shutdown(self) {
        self.guard.close();
        for peer in self.inner.peers.lock().values() {
            peer.conn.send_replace(None);
        }
        // The close frames leave at once; waiting for the whole draining
        // period (3 PTOs) would only slow restarts down.
        let _ = tokio::time::timeout(Duration::from_millis(200), self.inner.endpoint.wait_idle()).await;
        tracing::info!(node = %self.inner.own_id, "p2p transport shut down");
    }
}

/// `u32 BE length · postcard(msg)`, or an error if it exceeds `max`.
fn encode<M: Serialize>(msg: &M, max: usize) -> Result<Bytes, P2pError> {
    let mut buf = postcard::to_extend(msg, vec![0u8; PREFIX])?;
    let len = buf.len() - PREFIX;
    if len > max {
        return Err(P2pError::FrameTooLarge { len, max });
    }
    let prefix = u32::try_from(len).map_err(|_| P2pError::FrameTooLarge { len, max })?;
    buf[..PREFIX].copy_from_slice(&prefix.to_be_bytes());
    Ok(Bytes::from(buf))
}

/// The node id of the authenticated certificate of `conn`.
fn peer_id(conn: &Connection) -> Option<NodeId> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    node_id_of_cert(certs.first()?).ok()
}

impl<M> Inner<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    fn spawn_tracked(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut).abort_handle();
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    /// The peer slot for `id`, created (with its writer task) if new.
    /// Send queues for `peers`, and dialers for those with a larger id that
    /// are not dialed yet at that address.
    fn add_peers(self: &Arc<Self>, peers: &BTreeMap<NodeId, SocketAddr>)
    where
        M: Serialize + DeserializeOwned + Send + 'static,
    {
        for (&id, &addr) in peers {
            if id == self.own_id {
                continue;
            }
            let peer = self.peer_entry(id);
            if self.own_id < id && self.dialing.lock().insert(id, addr) != Some(addr) {
                self.spawn_tracked(dialer(self.clone(), peer, addr));
            }
        }
    }

    fn peer_entry(self: &Arc<Self>, id: NodeId) -> Arc<Peer> {
        let mut peers = self.peers.lock();
        if let Some(peer) = peers.get(&id) {
            return peer.clone();
        }
        let peer = Arc::new(Peer {
            id,
            queue: SendQueue::new(self.settings.send_queue_capacity),
            conn: watch::Sender::new(None),
        });
        peers.insert(id, peer.clone());
        drop(peers);
        self.spawn_tracked(writer(self.clone(), peer.clone()));
        peer
    }

    fn enqueue(&self, peer: &Peer, frame: Bytes) {
        if peer.queue.push(frame) {
            inc(&self.metrics.messages_dropped);
            tracing::debug!(peer = %peer.id, "send queue full: dropped the oldest frame");
        }
    }

    /// Makes `conn` the connection of `peer`, replacing (and closing) any
    /// older one, and starts reading from it.
    fn install(self: &Arc<Self>, peer: &Arc<Peer>, conn: Connection) {
        let old = peer.conn.send_replace(Some(conn.clone()));
        if let Some(old) = old.filter(|o| o.stable_id() != conn.stable_id()) {
            old.close(VarInt::from_u32(CLOSE_REPLACED), b"replaced by a newer connection");
        }
        inc(&self.metrics.connections_established);
        tracing::info!(node = %self.own_id, peer = %peer.id, remote = %conn.remote_address(), "peer connected");
        tokio::spawn(reader(self.clone(), peer.clone(), conn));
    }

    /// One outbound connection attempt, checked to reach the expected peer.
    async fn dial(&self, expected: NodeId, addr: SocketAddr) -> Result<Connection, String> {
        let connecting =
            self.endpoint.connect_with(self.client_config.clone(), addr, SERVER_NAME).map_err(|e| e.to_string())?;
        let conn = match tokio::time::timeout(self.settings.connect_timeout, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("connect timed out".into()),
        };
        match peer_id(&conn) {
            Some(id) if id == expected => Ok(conn),
            other => {
                conn.close(VarInt::from_u32(CLOSE_WRONG_PEER), b"unexpected node");
                Err(format!("reached node {other:?} instead of {expected}"))
            }
        }
    }

    async fn deliver(&self, from: NodeId, msg: M) {
        // Counted before the hand-off, so whoever receives the message sees
        // it counted; taken back if the receiver is gone (the node is
        // shutting down and the message is discarded).
        inc(&self.metrics.messages_received);
        if self.deliver.send((from, msg)).await.is_err() {
            self.metrics.messages_received.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Keeps a connection to a peer with a larger id, redialing with
/// exponential backoff.
async fn dialer<M>(inner: Arc<Inner<M>>, peer: Arc<Peer>, addr: SocketAddr)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let initial = inner.settings.backoff_initial;
    let mut backoff = initial;
    loop {
        if let Some(conn) = peer.live_connection() {
            conn.closed().await;
        }
        if inner.dialing.lock().get(&peer.id) != Some(&addr) {
            tracing::debug!(peer = %peer.id, %addr, "no longer dialing this peer");
            return;
        }
        match inner.dial(peer.id, addr).await {
            Ok(conn) => {
                let since = Instant::now();
                inner.install(&peer, conn.clone());
                let reason = conn.closed().await;
                tracing::debug!(peer = %peer.id, %reason, "outbound connection closed");
                // Reconnect at once after a connection that lasted; keep
                // backing off if the peer drops us right after the handshake
                // (e.g. it does not consider us a member).
                if since.elapsed() >= inner.settings.backoff_max {
                    backoff = initial;
                    continue;
                }
            }
            Err(error) => {
                inc(&inner.metrics.handshake_failures);
                tracing::debug!(peer = %peer.id, %addr, %error, retry_in = ?backoff, "cannot connect to peer");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(inner.settings.backoff_max);
    }
}

/// Accepts inbound connections from members.
async fn acceptor<M>(inner: Arc<Inner<M>>)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    while let Some(incoming) = inner.endpoint.accept().await {
        let inner = inner.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(conn) => conn,
                Err(error) => {
                    inc(&inner.metrics.handshake_failures);
                    tracing::debug!(%remote, %error, "inbound handshake failed");
                    return;
                }
            };
            match peer_id(&conn) {
                Some(id) if id != inner.own_id && inner.members.contains(&id) => {
                    let peer = inner.peer_entry(id);
                    inner.install(&peer, conn);
                }
                other => {
                    // The verifier already refused these; membership may have
                    // changed during the handshake.
                    inc(&inner.metrics.handshake_failures);
                    tracing::warn!(%remote, peer = ?other, "refusing inbound connection");
                    conn.close(VarInt::from_u32(CLOSE_NOT_MEMBER), b"not a member");
                }
            }
        });
    }
}

/// Sends the peer's queued frames over whatever connection it has, one
/// stream per frame.
async fn writer<M>(inner: Arc<Inner<M>>, peer: Arc<Peer>)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let mut conn_rx = peer.conn.subscribe();
    loop {
        // Wait for a live connection.
        let conn = loop {
            let current = conn_rx.borrow_and_update().clone();
            if let Some(conn) = current.filter(|c| c.close_reason().is_none()) {
                break conn;
            }
            if conn_rx.changed().await.is_err() {
                return;
            }
        };
        let frame = tokio::select! {
            frame = peer.queue.pop() => frame,
            _ = conn.closed() => continue,
        };
        match conn.open_uni().await {
            Ok(mut stream) => {
                let inner = inner.clone();
                let peer_id = peer.id;
                // Writing may wait for flow control; do it beside the loop so
                // a large frame does not hold back the next ones.
                tokio::spawn(async move {
                    let result = match stream.write_chunk(frame).await {
                        Ok(()) => stream.finish().map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match result {
                        Ok(()) => inc(&inner.metrics.messages_sent),
                        Err(error) => {
                            inc(&inner.metrics.send_errors);
                            tracing::debug!(peer = %peer_id, %error, "frame lost");
                        }
                    }
                });
            }
            Err(error) => {
                // Nothing of the frame was sent: keep it for the next connection.
                tracing::debug!(peer = %peer.id, %error, "cannot open stream");
                peer.queue.push_front(frame);
                if conn_rx.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Accepts the peer's streams until the connection ends, then clears the
/// peer's slot if it still holds this connection.
async fn reader<M>(inner: Arc<Inner<M>>, peer: Arc<Peer>, conn: Connection)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let delay = inner.settings.peer_link_delay.get(&peer.id).copied().unwrap_or(inner.settings.link_delay);
    // Messages wait in a FIFO "delay line" so that the streams themselves are
    // released at once (holding them would throttle the peer to
    // MAX_CONCURRENT_STREAMS per delay).
    let delay_line = (!delay.is_zero()).then(|| {
        let (tx, rx) = mpsc::channel(inner.settings.receive_queue_capacity);
        tokio::spawn(delay_line(inner.clone(), peer.id, rx));
        (tx, delay)
    });
    let reason = loop {
        match conn.accept_uni().await {
            Ok(stream) => {
                tokio::spawn(read_frame(inner.clone(), peer.id, stream, delay_line.clone()));
            }
            Err(reason) => break reason,
        }
    };
    tracing::info!(node = %inner.own_id, peer = %peer.id, %reason, "peer connection closed");
    peer.conn.send_if_modified(|current| {
        if current.as_ref().is_some_and(|c| c.stable_id() == conn.stable_id()) {
            *current = None;
            true
        } else {
            false
        }
    });
}

type DelayLine<M> = Option<(mpsc::Sender<(Instant, M)>, Duration)>;

/// Reads one frame from its stream, decodes it and passes it on.
async fn read_frame<M>(inner: Arc<Inner<M>>, from: NodeId, mut stream: quinn::RecvStream, delay_line: DelayLine<M>)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let mut prefix = [0u8; PREFIX];
    if let Err(error) = stream.read_exact(&mut prefix).await {
        inc(&inner.metrics.frames_malformed);
        tracing::debug!(peer = %from, %error, "stream ended before a frame header");
        return;
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > inner.settings.max_frame_size {
        inc(&inner.metrics.frames_oversized);
        tracing::warn!(peer = %from, len, max = inner.settings.max_frame_size, "refusing oversized frame");
        let _ = stream.stop(VarInt::from_u32(STOP_FRAME_TOO_LARGE));
        return;
    }
    // `read_to_end` grows the buffer as data arrives, so a lying prefix
    // cannot make us allocate `len` bytes up front.
    let body = match stream.read_to_end(len).await {
        Ok(body) if body.len() == len => body,
        Ok(body) => {
            inc(&inner.metrics.frames_malformed);
            tracing::warn!(peer = %from, len, got = body.len(), "truncated frame");
            return;
        }
        Err(error) => {
            inc(&inner.metrics.frames_malformed);
            tracing::debug!(peer = %from, %error, "cannot read frame");
            let _ = stream.stop(VarInt::from_u32(STOP_FRAME_TOO_LARGE));
            return;
        }
    };
    drop(stream);
    let msg: M = match postcard::from_bytes(&body) {
        Ok(msg) => msg,
        Err(error) => {
            inc(&inner.metrics.frames_malformed);
            tracing::warn!(peer = %from, %error, "undecodable frame");
            return;
        }
    };
    match delay_line {
        None => inner.deliver(from, msg).await,
        Some((tx, delay)) => {
            let _ = tx.send((Instant::now() + delay, msg)).await;
        }
    }
}

/// Delivers each message at its due time. Due times increase in arrival
/// order (the delay is constant per link), so a FIFO suffices.
async fn delay_line<M>(inner: Arc<Inner<M>>, from: NodeId, mut rx: mpsc::Receiver<(Instant, M)>)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    while let Some((due, msg)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        inner.deliver(from, msg).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_length_prefixed_and_limited() {
        let frame = encode(&(7u32, "hi".to_string()), 100).unwrap();
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        let back: (u32, String) = postcard::from_bytes(&frame[4..]).unwrap();
        assert_eq!(back, (7, "hi".to_string()));
        assert!(matches!(encode(&vec![0u8; 200], 100), Err(P2pError::FrameTooLarge { max: 100, .. })));
    }
}
