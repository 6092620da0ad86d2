//! Node certificates and the rustls configuration that pins peers by key.
//!
//! Every node presents a self-signed X.509 certificate for its Ed25519 node
//! key (subject CN = its node id, as on the IC). Nobody checks a CA chain:
//! a certificate is accepted exactly when its Ed25519 public key is the key
//! of a current subnet member, i.e. when `self_authenticating(DER(key))` is in
//! the membership set. The TLS handshake signature is then checked with that
//! same key, so a peer is authenticated as the member whose key it holds.
//!
//! Only TLS 1.3, only the Ed25519 signature scheme and only the ring
//! provider are enabled; both sides must present a certificate.

use crate::P2pError;
use cairn_crypto::NodeSigningKey;
use cairn_crypto::node_key::{ed25519_der_decode, ed25519_der_encode, verify_ed25519};
use cairn_types::{NodeId, Principal};
use parking_lot::RwLock;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SigningKey, SingleCertAndKey};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureAlgorithm, SignatureScheme};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::sync::Arc;

/// ALPN protocol id of the Cairn node-to-node protocol; bumping it makes
/// incompatible nodes fail the handshake instead of misparsing frames.
pub const ALPN: &[u8] = b"cairn-p2p/1";

/// The server name the dialer puts into its ClientHello. Peers are not
/// identified by name (the verifier ignores it); the dialer checks the node
/// id of the authenticated certificate after the handshake instead.
pub(crate) const SERVER_NAME: &str = "cairn-node";

/// The set of node ids this node accepts as peers, shared by the TLS
/// verifiers and the transport so that an update takes effect for every
/// later handshake at once.
#[derive(Debug, Default)]
pub struct Membership(RwLock<BTreeSet<NodeId>>);

impl Membership {
    /// A membership set with these members.
    pub fn new(members: BTreeSet<NodeId>) -> Membership {
        Membership(RwLock::new(members))
    }

    /// Whether `id` is currently a member.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.0.read().contains(id)
    }

    /// Replaces the member set.
    pub fn set(&self, members: BTreeSet<NodeId>) {
        *self.0.write() = members;
    }

    /// A copy of the current member set.
    pub fn snapshot(&self) -> BTreeSet<NodeId> {
        self.0.read().clone()
    }
}

/// The node id of a raw Ed25519 public key: the self-authenticating
/// principal of its 44-byte DER encoding (as `NodeSigningKey::node_id`).
pub fn node_id_of_key(key: &[u8; 32]) -> NodeId {
    NodeId(Principal::self_authenticating(&ed25519_der_encode(key)))
}

/// The raw Ed25519 public key inside a certificate, or why there is none.
///
/// The certificate is only parsed, not validated: its self-signature and
/// validity period carry no trust here, the pinned key does.
pub fn ed25519_key_of_cert(cert: &CertificateDer<'_>) -> Result<[u8; 32], rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    let spki = parsed.subject_public_key_info();
    ed25519_der_decode(spki.as_ref()).map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
}

/// The node id a certificate authenticates (no membership check).
pub fn node_id_of_cert(cert: &CertificateDer<'_>) -> Result<NodeId, rustls::Error> {
    ed25519_key_of_cert(cert).map(|k| node_id_of_key(&k))
}

/// Builds the self-signed X.509 certificate of a node key.
///
/// The certificate is signed by `key` itself through rcgen's external-signer
/// interface, so the secret never leaves [`NodeSigningKey`]. Serial number and
/// key identifier are derived from the public key, which makes the
/// certificate a deterministic function of the key (handy for pinning its
/// bytes in the registry later).
pub fn node_certificate(key: &NodeSigningKey) -> Result<CertificateDer<'static>, P2pError> {
    struct RcgenSigner<'a> {
        key: &'a NodeSigningKey,
        public: [u8; 32],
    }
    impl rcgen::PublicKeyData for RcgenSigner<'_> {
        fn der_bytes(&self) -> &[u8] {
            &self.public
        }
        fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
            &rcgen::PKCS_ED25519
        }
    }
    impl rcgen::SigningKey for RcgenSigner<'_> {
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
            Ok(self.key.sign(msg).to_vec())
        }
    }

    let public = key.public_key_bytes();
    let digest = Sha256::digest(key.public_key_der());
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, key.node_id().to_string());
    // Positive 16-byte serial (top bit cleared).
    let mut serial = digest[..16].to_vec();
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(digest[..20].to_vec());
    let cert = params.self_signed(&RcgenSigner { key, public }).map_err(|e| P2pError::Certificate(e.to_string()))?;
    Ok(cert.der().clone())
}

/// The node key as a rustls signing key: TLS 1.3 CertificateVerify with
/// Ed25519 signs the transcript message directly, which is exactly what
/// [`NodeSigningKey::sign`] does.
#[derive(Debug, Clone)]
struct NodeTlsKey(NodeSigningKey);

impl SigningKey for NodeTlsKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        offered.contains(&SignatureScheme::ED25519).then(|| Box::new(self.clone()) as Box<dyn rustls::sign::Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.0.public_key_der().to_vec()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ED25519
    }
}

impl rustls::sign::Signer for NodeTlsKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        Ok(self.0.sign(message).to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// Accepts exactly the certificates of current members, in both roles.
#[derive(Debug)]
pub(crate) struct MemberVerifier {
    own_id: NodeId,
    members: Arc<Membership>,
}

impl MemberVerifier {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            tracing::warn!("peer presented a certificate chain; node certificates are self-signed");
            return Err(rustls::Error::InvalidCertificate(CertificateError::BadEncoding));
        }
        let id = node_id_of_cert(end_entity)?;
        if id == self.own_id {
            // A node never talks to itself; this also catches a copied key.
            tracing::warn!(peer = %id, "peer presented this node's own certificate");
            return Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure));
        }
        if !self.members.contains(&id) {
            tracing::warn!(peer = %id, "refusing a peer that is not a member of the subnet");
            return Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure));
        }
        Ok(())
    }

    fn verify_signature(
        message: &[u8],
        cert: &CertificateDer<'_>,
        scheme: SignatureScheme,
        signature: &[u8],
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if scheme != SignatureScheme::ED25519 {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        let key = ed25519_key_of_cert(cert)?;
        verify_ed25519(&key, message, signature)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))?;
        Ok(HandshakeSignatureValid::assertion())
    }
}

impl ServerCertVerifier for MemberVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::verify_signature(message, cert, dss.scheme, dss.signature())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for MemberVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates).map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::verify_signature(message, cert, dss.scheme, dss.signature())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// The ring provider restricted to TLS 1.3 AEAD suites (QUIC needs
/// TLS_AES_128_GCM_SHA256 for its initial packets).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|s| {
        matches!(
            s.suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 | rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        )
    });
    Arc::new(provider)
}

/// The rustls server and client configurations of one node.
pub(crate) fn tls_configs(
    key: &NodeSigningKey,
    members: Arc<Membership>,
) -> Result<(rustls::ServerConfig, rustls::ClientConfig), P2pError> {
    let cert = node_certificate(key)?;
    let certified = Arc::new(CertifiedKey::new(vec![cert], Arc::new(NodeTlsKey(key.clone()))));
    let verifier = Arc::new(MemberVerifier { own_id: key.node_id(), members });
    let provider = provider();

    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| P2pError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier.clone())
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified.clone())));
    server.alpn_protocols = vec![ALPN.to_vec()];
    // 0-RTT data could be replayed; nothing here needs it.
    server.max_early_data_size = 0;

    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| P2pError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    client.alpn_protocols = vec![ALPN.to_vec()];
    Ok((server, client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_carries_the_node_key() {
        let key = NodeSigningKey::from_seed([7; 32]);
        let cert = node_certificate(&key).unwrap();
        assert_eq!(ed25519_key_of_cert(&cert).unwrap(), key.public_key_bytes());
        assert_eq!(node_id_of_cert(&cert).unwrap(), key.node_id());
        // Deterministic in the key.
        assert_eq!(node_certificate(&key).unwrap(), cert);
    }

    #[test]
    fn verifier_accepts_members_only() {
        let own = NodeSigningKey::from_seed([1; 32]);
        let member = NodeSigningKey::from_seed([2; 32]);
        let stranger = NodeSigningKey::from_seed([3; 32]);
        let members = Arc::new(Membership::new([own.node_id(), member.node_id()].into()));
        let v = MemberVerifier { own_id: own.node_id(), members: members.clone() };
        let now = UnixTime::now();
        let member_cert = node_certificate(&member).unwrap();
        assert!(v.verify_client_cert(&member_cert, &[], now).is_ok());
        assert!(v.verify_client_cert(&node_certificate(&stranger).unwrap(), &[], now).is_err());
        assert!(v.verify_client_cert(&node_certificate(&own).unwrap(), &[], now).is_err());
        assert!(v.verify_client_cert(&member_cert, std::slice::from_ref(&member_cert), now).is_err());
        assert!(v.verify_client_cert(&CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]), &[], now).is_err());
        // Membership updates take effect for the next handshake.
        members.set([own.node_id()].into());
        assert!(v.verify_client_cert(&member_cert, &[], now).is_err());
    }

    #[test]
    fn handshake_signature_is_checked_with_the_pinned_key() {
        let key = NodeSigningKey::from_seed([4; 32]);
        let cert = node_certificate(&key).unwrap();
        let sig = key.sign(b"transcript");
        let ed = SignatureScheme::ED25519;
        assert!(MemberVerifier::verify_signature(b"transcript", &cert, ed, &sig).is_ok());
        assert!(MemberVerifier::verify_signature(b"other", &cert, ed, &sig).is_err());
        let other = node_certificate(&NodeSigningKey::from_seed([5; 32])).unwrap();
        assert!(MemberVerifier::verify_signature(b"transcript", &other, ed, &sig).is_err());
        let ecdsa = SignatureScheme::ECDSA_NISTP256_SHA256;
        assert!(MemberVerifier::verify_signature(b"transcript", &cert, ecdsa, &sig).is_err());
    }
}
