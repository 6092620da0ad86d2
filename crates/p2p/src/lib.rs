//! QUIC transport between the nodes of one subnet.
//!
//! Consensus artifacts are gossiped among a subnet's nodes over QUIC (quinn),
//! secured by TLS 1.3 (rustls, ring provider) with mutual authentication:
//! every node presents a self-signed certificate for its Ed25519 node key,
//! and a peer is accepted exactly when that key belongs to a current member
//! of the subnet (see [`tls`]). There is no CA: the registry pins the keys.
//!
//! # Model
//!
//! [`Transport::start`] binds a UDP socket and returns a handle plus a
//! receiver of `(sender, message)` pairs. The handle [`send`s](Transport::send)
//! to one peer or [`broadcast`s](Transport::broadcast) to all; both only
//! enqueue and never wait on the network.
//!
//! * **One connection per pair of nodes.** The node with the smaller id dials,
//!   the other accepts, so two nodes never race two connections against each
//!   other. A newer connection from the same peer replaces an older one (the
//!   peer restarted). The dialer reconnects with exponential backoff.
//! * **One unidirectional stream per message.** Each frame is
//!   `u32 big-endian length · postcard(message)` on its own QUIC stream. QUIC
//!   multiplexes streams, so a 4 MiB block proposal does not hold back the
//!   small notarization shares queued behind it (no head-of-line blocking),
//!   a bad frame spoils only its own stream (the connection survives), and
//!   the peer's stream limit gives natural backpressure. The price is a few
//!   bytes of stream framing per message and **no ordering guarantee**:
//!   consensus artifacts are idempotent pool entries, so order does not
//!   matter. (The IC's transport also uses a stream per message.)
//! * **Bounded everywhere.** Each peer has its own send queue that drops its
//!   oldest frame when full (counted in [`TransportMetrics`]); each peer has
//!   its own writer task, so a slow or dead peer delays nobody else. Frames
//!   above `max_frame_size` are refused by the sender and by the receiver,
//!   which stops the stream after reading only the length prefix.
//! * **Link delay** ([`TransportConfig::link_delay`]): a test/bench setting
//!   that holds every received message for a fixed time before delivery, to
//!   imitate WAN latency on loopback (the machine's kernel has no `netem`).

pub mod tls;

mod queue;
mod transport;

pub use tls::{Membership, node_certificate, node_id_of_cert};
pub use transport::{Inbound, Transport, TransportMetrics};

use cairn_crypto::NodeSigningKey;
use cairn_types::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

/// Default largest frame: a block may carry 4 MiB of ingress, plus headers.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 8 << 20;

/// Everything a node needs to join its subnet's network.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// UDP address to listen on (port 0 picks an ephemeral port; see
    /// [`Transport::local_addr`]).
    pub listen_addr: SocketAddr,
    /// This node's key; its certificate is made from it.
    pub key: NodeSigningKey,
    /// Where to reach the other nodes. Only peers with a larger id than this
    /// node are dialed (they in turn wait for this node), but every listed
    /// peer gets a send queue at once, so messages sent before the connection
    /// exists are delivered when it comes up.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Node ids allowed to connect (in either direction). Usually the subnet's
    /// members from the registry; may include this node itself.
    pub members: BTreeSet<NodeId>,
    /// Test/bench setting: one-way delay added to every received message
    /// before delivery (zero in production).
    pub link_delay: Duration,
    /// Test/bench setting: per-peer overrides of `link_delay` (messages *from*
    /// that peer), to imitate nodes at different distances.
    pub peer_link_delay: BTreeMap<NodeId, Duration>,
    /// Largest accepted encoded message, in bytes (at most `u32::MAX`).
    pub max_frame_size: usize,
    /// Frames queued per peer before the oldest is dropped.
    pub send_queue_capacity: usize,
    /// Messages buffered towards the receiver returned by `start`; when it is
    /// full, reading from peers pauses (QUIC flow control pushes back).
    pub receive_queue_capacity: usize,
    /// First reconnection delay; doubles on each failure up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest reconnection delay.
    pub backoff_max: Duration,
    /// Give up a connection attempt after this long.
    pub connect_timeout: Duration,
    /// A connection with no traffic for this long is dead (a crashed peer is
    /// detected after at most this time).
    pub idle_timeout: Duration,
    /// Keep-alive interval; must be well below `idle_timeout`.
    pub keep_alive: Duration,
}

impl TransportConfig {
    /// A configuration with production defaults and no link delay.
    pub fn new(
        listen_addr: SocketAddr,
        key: NodeSigningKey,
        peers: BTreeMap<NodeId, SocketAddr>,
        members: BTreeSet<NodeId>,
    ) -> TransportConfig {
        TransportConfig {
            listen_addr,
            key,
            peers,
            members,
            link_delay: Duration::ZERO,
            peer_link_delay: BTreeMap::new(),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            send_queue_capacity: 4096,
            receive_queue_capacity: 8192,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(1),
        }
    }
}

/// Why the transport could not start or a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("cannot bind or run the QUIC endpoint: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    #[error("cannot build the node certificate: {0}")]
    Certificate(String),
    #[error("invalid transport configuration: {0}")]
    Config(String),
    #[error("the transport must be started inside a Tokio runtime")]
    NoRuntime,
    #[error("cannot encode message: {0}")]
    Encode(#[from] postcard::Error),
    #[error("message of {len} bytes exceeds the frame limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("unknown peer {0}: not in the address book and not connected")]
    UnknownPeer(NodeId),
    #[error("peer {0} is not a member of the subnet")]
    NotAMember(NodeId),
}
