use super::*;
use crate::bls;
use crate::certificate::{Certificate, tests::delegated_certificate};
use crate::der::{self, oid};
use crate::labeled_tree::LabeledTree;
use crate::request_id::leb128;
use crate::sha256;
use cairn_types::{CanisterId, CanisterIdRange, SubnetId};
use ciborium::Value as Cbor;
use p256::ecdsa::signature::Signer as _;

/// An in-test identity of any scheme: its DER key and a signing function.
enum Identity {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    K256(k256::ecdsa::SigningKey),
    WebAuthnP256(p256::ecdsa::SigningKey),
    WebAuthnEd25519(ed25519_dalek::SigningKey),
    WebAuthnRsa(Box<rsa::RsaPrivateKey>),
    Canister(CanisterSigner),
}

/// A subnet delegation for a canister signer: (subnet key, subnet id,
/// ranges, sharded range encoding, subnet type).
type SubnetSetup = (bls::SecretKey, SubnetId, Vec<CanisterIdRange>, bool, Option<&'static str>);

/// One delegation link: (expiration, targets, permissions).
type Link<'a> = (u64, Option<Vec<Principal>>, Option<&'a str>);

/// A canister that signs by certifying `["sig", H(seed), H(msg)]`.
struct CanisterSigner {
    canister: CanisterId,
    seed: Vec<u8>,
    root: bls::SecretKey,
    /// With a subnet delegation: (subnet key, subnet id, ranges, sharded, type).
    delegation: Option<SubnetSetup>,
}

impl CanisterSigner {
    fn new(canister: u64, seed: &[u8], root: bls::SecretKey) -> CanisterSigner {
        CanisterSigner { canister: CanisterId::from_u64(canister), seed: seed.to_vec(), root, delegation: None }
    }

    fn der(&self) -> Vec<u8> {
        canister_sig_public_key_der(&self.canister, &self.seed)
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        // The canister's own signature tree, with an unrelated neighbour.
        let mut sigs = LabeledTree::new();
        sigs.insert_path(&[sha256(&self.seed).as_slice(), &sha256(msg)], LabeledTree::leaf("")).unwrap();
        sigs.insert_path(&[sha256(b"other").as_slice(), &sha256(b"x")], LabeledTree::leaf("")).unwrap();
        let sig_tree = LabeledTree::from_children([("sig", sigs)]);
        let witness = sig_tree.witness(&[vec![b"sig".to_vec(), sha256(&self.seed).to_vec(), sha256(msg).to_vec()]]);
        // The subnet's state tree certifying the canister's certified data.
        let mut state = LabeledTree::new();
        state
            .insert_path(
                &[b"canister".as_slice(), self.canister.as_slice(), b"certified_data"],
                LabeledTree::leaf(sig_tree.root_hash().to_vec()),
            )
            .unwrap();
        state
            .insert_path(
                &[b"canister".as_slice(), CanisterId::from_u64(999).as_slice(), b"certified_data"],
                LabeledTree::leaf(vec![0; 32]),
            )
            .unwrap();
        state.insert("time", LabeledTree::leaf(leb128(1_700_000_000_000_000_000)));
        let path = vec![b"canister".to_vec(), self.canister.as_slice().to_vec(), b"certified_data".to_vec()];
        let pruned = state.witness(&[path, vec![b"time".to_vec()]]);
        let cert = match &self.delegation {
            None => Certificate::sign(pruned, &self.root, None),
            Some((subnet_key, subnet, ranges, sharded, subnet_type)) => {
                let mut c =
                    delegated_certificate(state, subnet_key, &self.root, *subnet, ranges, *sharded, *subnet_type);
                c.tree = pruned;
                c.signature =
                    subnet_key.sign(&crate::certificate::state_root_message(&c.tree.digest())).to_bytes().to_vec();
                c
            }
        };
        crate::cbor::encode_tagged(Cbor::Map(vec![
            (Cbor::Text("certificate".into()), Cbor::Bytes(cert.to_cbor())),
            (Cbor::Text("tree".into()), witness.to_cbor_value()),
        ]))
    }
}

fn cose_der(entries: Vec<(i64, Cbor)>) -> Vec<u8> {
    let map = Cbor::Map(entries.into_iter().map(|(k, v)| (Cbor::Integer(k.into()), v)).collect());
    der::encode_spki(oid::WEBAUTHN_COSE, None, &crate::cbor::encode(&map))
}

/// A WebAuthn assertion over `msg`, as a browser + authenticator would produce.
fn webauthn_envelope(msg: &[u8], sign: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut authenticator_data = sha256(b"example.org").to_vec();
    authenticator_data.extend_from_slice(&[0x05, 0, 0, 0, 7]);
    let client_data_json = format!(
        r#"{{"type":"webauthn.get","challenge":"{}","origin":"https://example.org","crossOrigin":false}}"#,
        data_encoding::BASE64URL_NOPAD.encode(msg)
    );
    let mut signed = authenticator_data.clone();
    signed.extend_from_slice(&sha256(client_data_json.as_bytes()));
    crate::cbor::encode_tagged(Cbor::Map(vec![
        (Cbor::Text("authenticator_data".into()), Cbor::Bytes(authenticator_data)),
        // The JS agent sends client_data_json as text.
        (Cbor::Text("client_data_json".into()), Cbor::Text(client_data_json)),
        (Cbor::Text("signature".into()), Cbor::Bytes(sign(&signed))),
    ]))
}

impl Identity {
    fn der(&self) -> Vec<u8> {
        match self {
            Identity::Ed25519(k) => crate::node_key::ed25519_der_encode(&k.verifying_key().to_bytes()).to_vec(),
            Identity::P256(k) => der::encode_spki(
                oid::EC_PUBLIC_KEY,
                Some(oid::SECP256R1),
                k.verifying_key().to_encoded_point(false).as_bytes(),
            ),
            Identity::K256(k) => der::encode_spki(
                oid::EC_PUBLIC_KEY,
                Some(oid::SECP256K1),
                k.verifying_key().to_encoded_point(false).as_bytes(),
            ),
            Identity::WebAuthnP256(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                cose_der(vec![
                    (1, Cbor::Integer(2.into())),
                    (3, Cbor::Integer((-7).into())),
                    (-1, Cbor::Integer(1.into())),
                    (-2, Cbor::Bytes(p.x().unwrap().to_vec())),
                    (-3, Cbor::Bytes(p.y().unwrap().to_vec())),
                ])
            }
            Identity::WebAuthnEd25519(k) => cose_der(vec![
                (1, Cbor::Integer(1.into())),
                (3, Cbor::Integer((-8).into())),
                (-1, Cbor::Integer(6.into())),
                (-2, Cbor::Bytes(k.verifying_key().to_bytes().to_vec())),
            ]),
            Identity::WebAuthnRsa(k) => {
                use rsa::traits::PublicKeyParts;
                cose_der(vec![
                    (1, Cbor::Integer(3.into())),
                    (3, Cbor::Integer((-257).into())),
                    (-1, Cbor::Bytes(k.n().to_bytes_be())),
                    (-2, Cbor::Bytes(k.e().to_bytes_be())),
                ])
            }
            Identity::Canister(c) => c.der(),
        }
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            Identity::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
            Identity::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(msg);
                sig.to_bytes().to_vec()
            }
            Identity::K256(k) => {
                let sig: k256::ecdsa::Signature = k.sign(msg);
                sig.to_bytes().to_vec()
            }
            Identity::WebAuthnP256(k) => webauthn_envelope(msg, |m| {
                let sig: p256::ecdsa::Signature = k.sign(m);
                sig.to_der().as_bytes().to_vec()
            }),
            Identity::WebAuthnEd25519(k) => webauthn_envelope(msg, |m| k.sign(m).to_bytes().to_vec()),
            Identity::WebAuthnRsa(k) => webauthn_envelope(msg, |m| {
                use rsa::signature::SignatureEncoding as _;
                let sk = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new((**k).clone());
                sk.sign(m).to_vec()
            }),
            Identity::Canister(c) => c.sign(msg),
        }
    }

    fn principal(&self) -> Principal {
        Principal::self_authenticating(&self.der())
    }
}

fn root_key() -> bls::SecretKey {
    bls::SecretKey::from_seed([42; 32])
}

fn rsa_key() -> rsa::RsaPrivateKey {
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([11; 32]);
    rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap()
}

fn all_identities() -> Vec<(&'static str, Identity)> {
    vec![
        ("ed25519", Identity::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[1; 32]))),
        ("p256", Identity::P256(p256::ecdsa::SigningKey::from_bytes(&[2; 32].into()).unwrap())),
        ("k256", Identity::K256(k256::ecdsa::SigningKey::from_bytes(&[3; 32].into()).unwrap())),
        ("webauthn-p256", Identity::WebAuthnP256(p256::ecdsa::SigningKey::from_bytes(&[4; 32].into()).unwrap())),
        ("webauthn-ed25519", Identity::WebAuthnEd25519(ed25519_dalek::SigningKey::from_bytes(&[5; 32]))),
        ("webauthn-rsa", Identity::WebAuthnRsa(Box::new(rsa_key()))),
        ("canister", Identity::Canister(CanisterSigner::new(7, b"user seed", root_key()))),
    ]
}

const NOW: Time = Time::from_secs(1_700_000_000);
const LATER: u64 = 1_800_000_000_000_000_000;

fn rid() -> MessageId {
    MessageId(sha256(b"some request"))
}

fn request_message(rid: &MessageId) -> Vec<u8> {
    domain::with_separator(domain::REQUEST, rid.as_bytes())
}

/// Flips one bit in the middle of a byte string.
fn tamper(mut bytes: Vec<u8>) -> Vec<u8> {
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    bytes
}

#[test]
fn every_scheme_signs_and_rejects_tampering() {
    let root = root_key().public_key().to_der();
    for (name, id) in all_identities() {
        let der = id.der();
        let key = UserPublicKey::from_der(&der).unwrap_or_else(|e| panic!("{name}: {e}"));
        let msg = request_message(&rid());
        let sig = id.sign(&msg);
        key.verify(&msg, &sig, &root).unwrap_or_else(|e| panic!("{name}: {e}"));
        verify_user_signature(&der, &msg, &sig, &root).unwrap();
        // Another message, a tampered signature: rejected.
        assert!(key.verify(&tamper(msg.clone()), &sig, &root).is_err(), "{name}");
        assert!(key.verify(&msg, &tamper(sig.clone()), &root).is_err(), "{name}");
        // Through the entry point.
        let auth = EnvelopeAuth { sender_pubkey: Some(&der), sender_sig: Some(&sig), ..Default::default() };
        let outcome =
            authenticate(&auth, &rid(), &id.principal(), NOW, &root).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outcome, AuthOutcome::unrestricted());
        let err = authenticate(&auth, &MessageId([0; 32]), &id.principal(), NOW, &root).unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidSenderSignature { signer: KeyRole::SenderPubkey, .. }),
            "{name}: {err}"
        );
    }
}

#[test]
fn ecdsa_details() {
    let root = root_key().public_key().to_der();
    // secp256k1: a high-S twin of a valid signature is accepted as well.
    let id = Identity::K256(k256::ecdsa::SigningKey::from_bytes(&[3; 32].into()).unwrap());
    let msg = request_message(&rid());
    let sig = k256::ecdsa::Signature::from_slice(&id.sign(&msg)).unwrap();
    let (r, s) = sig.split_scalars();
    let high = k256::ecdsa::Signature::from_scalars(r, -s).unwrap();
    assert!(high.normalize_s().is_some(), "the twin has a high s");
    UserPublicKey::from_der(&id.der()).unwrap().verify(&msg, &high.to_bytes(), &root).unwrap();
    // DER-encoded ECDSA is not accepted for plain ECDSA keys (raw r‖s only).
    let id = Identity::P256(p256::ecdsa::SigningKey::from_bytes(&[2; 32].into()).unwrap());
    let sig = p256::ecdsa::Signature::from_slice(&id.sign(&msg)).unwrap();
    assert!(matches!(
        UserPublicKey::from_der(&id.der()).unwrap().verify(&msg, sig.to_der().as_bytes(), &root),
        Err(SignatureError::Length { expected: 64, .. })
    ));
}

#[test]
fn webauthn_challenge_must_match() {
    let root = root_key().public_key().to_der();
    let k = p256::ecdsa::SigningKey::from_bytes(&[4; 32].into()).unwrap();
    let id = Identity::WebAuthnP256(k.clone());
    let key = UserPublicKey::from_der(&id.der()).unwrap();
    let msg = request_message(&rid());
    // A valid assertion, but over a different challenge.
    let other = webauthn_envelope(b"something else", |m| {
        let sig: p256::ecdsa::Signature = k.sign(m);
        sig.to_der().as_bytes().to_vec()
    });
    assert!(matches!(key.verify(&msg, &other, &root), Err(SignatureError::ChallengeMismatch { .. })));
    assert!(matches!(key.verify(&msg, b"\x01\x02", &root), Err(SignatureError::WebAuthn(_))));
    // A COSE key with the wrong algorithm is refused at parse time.
    let p = k.verifying_key().to_encoded_point(false);
    let wrong_alg = cose_der(vec![
        (1, Cbor::Integer(2.into())),
        (3, Cbor::Integer((-35).into())),
        (-1, Cbor::Integer(1.into())),
        (-2, Cbor::Bytes(p.x().unwrap().to_vec())),
        (-3, Cbor::Bytes(p.y().unwrap().to_vec())),
    ]);
    assert!(matches!(UserPublicKey::from_der(&wrong_alg), Err(PublicKeyError::Cose(_))));
}

#[test]
fn canister_signature_checks() {
    let root_sk = root_key();
    let root = root_sk.public_key().to_der();
    let msg = request_message(&rid());
    let signer = CanisterSigner::new(7, b"seed", root_key());
    let key = UserPublicKey::from_der(&signer.der()).unwrap();
    let sig = signer.sign(&msg);
    key.verify(&msg, &sig, &root).unwrap();
    // Another seed (same canister) did not sign it.
    let other_seed = UserPublicKey::from_der(&canister_sig_public_key_der(&signer.canister, b"other seed")).unwrap();
    assert!(matches!(other_seed.verify(&msg, &sig, &root), Err(SignatureError::NotSigned { .. })));
    // Another canister's key: its certified data is not in the certificate.
    let other_canister =
        UserPublicKey::from_der(&canister_sig_public_key_der(&CanisterId::from_u64(8), b"seed")).unwrap();
    assert!(matches!(other_canister.verify(&msg, &sig, &root), Err(SignatureError::CanisterSignature(_))));
    // Another root key.
    let wrong_root = bls::SecretKey::from_seed([1; 32]).public_key().to_der();
    assert!(matches!(key.verify(&msg, &sig, &wrong_root), Err(SignatureError::Certificate(_))));
    // A tree that does not match the certified data.
    let value = crate::cbor::decode(&sig).unwrap();
    let mut map = crate::cbor::as_map(&value).unwrap().to_vec();
    map[1].1 = LabeledTree::from_children([("sig", LabeledTree::new())]).to_hash_tree().to_cbor_value();
    let forged = crate::cbor::encode_tagged(Cbor::Map(map));
    assert!(matches!(key.verify(&msg, &forged, &root), Err(SignatureError::CertifiedDataMismatch { .. })));

    // With a subnet delegation: the canister must be in the delegated ranges
    // (both range encodings), and cloud-engine subnets are refused.
    let subnet_key = bls::SecretKey::from_seed([9; 32]);
    let subnet = SubnetId(Principal::self_authenticating(&subnet_key.public_key().to_der()));
    for (ranges, sharded, subnet_type, ok) in [
        ((5, 10), false, None, true),
        ((5, 10), true, Some("application"), true),
        ((8, 10), false, None, false),
        ((8, 10), true, None, false),
        ((5, 10), false, Some("cloud_engine"), false),
    ] {
        let mut signer = CanisterSigner::new(7, b"seed", root_key());
        signer.delegation = Some((
            subnet_key.clone(),
            subnet,
            vec![CanisterIdRange { start: CanisterId::from_u64(ranges.0), end: CanisterId::from_u64(ranges.1) }],
            sharded,
            subnet_type,
        ));
        let result = key.verify(&msg, &signer.sign(&msg), &root);
        assert_eq!(result.is_ok(), ok, "{ranges:?} sharded={sharded} {subnet_type:?}: {result:?}");
    }
}

/// A real Internet Identity delegation (mainnet, canister fgte5-ciaaa-aaaad-aaatq-cai),
/// from dfinity/internet-identity `src/sig-verifier-js/src/lib.rs` tests.
#[test]
fn real_internet_identity_canister_signature() {
    const PUBLIC_KEY: &str = "303c300c060a2b0601040183b8430102032c000a00000000006000270101f3ffab2278616508ad5ebfa0cb79a21e08dbb7132f6875b95f81e72067f31302";
    const SESSION_KEY: &str = "e7875e69ce7beda6fc7b6dfbd9b75be1c6f6d5debae3ae1ed7c7f873de1b6f9f75e9e7dcddcf37efaddcdf6f7b69a7b57377b5ddaef87dee386ddd75e39e9cd39d7d77debc79df1b7b469df36eb8e7cef47b4d5cefa7f5df67dbefc73debdf5c";
    const SIGNATURE: &str = "d9d9f7a26b6365727469666963617465590547d9d9f7a3647472656583018301830183024863616e697374657283018301830183018301830182045820640c48458731be868c750243066312f4e06b2bfde48309a3cfd0617ee3c8f3448301820458204042fb2844db206e1724a248eef393f5cb1d22280f298d948fc18e0a408533438301820458208d3dbc5b1ac807eb4f313b91712db94fdf4a50068207719f1cba37771b2ac8ef83024a000000000060002701018301830183024e6365727469666965645f6461746182035820a61cee2397ab0f006060d4a7bf4a9bef463d5b2381c502a6c66a26b6d088b64d820458206ccd6bb31a54761d4a56e9cfd8cba384d5b8fb47184e8ca13cb70e04f2209ace82045820c64354fe1474e905acdcf09f6569cfb29c305d0b06806908f2da5ee9404726bf820458203de781de0811f5a8469166c594f9433d966f686f4f4065ad9395e30bfac153e282045820cb2a94057004ae336fb52ba39117cf90aaadefe02ddfe9205bcc13c8f6150a0282045820bc1f9b4c54f66eb8fc25381e90641ae59ef87c590186355162a52cb4875242cb8204582001f9f57686d9eb1af846b6ee42c48b02289fe9cf134f84d527a000e65e4d7443820458201c1f10e2904ed9819f3cf7e051c473151700ea5b8038bf1413ba894b3afac4608204582045c96fb30bf784be7d9da2f7e41a2fa93f728bf07829da23acad05006286c269820458204ffce0d4d1e2124180daef5447fe496bbec7ef22b53786138b4acf523453fa75830182045820d5523abdfb2963caffc236cfe5a7f30a832b152c2f827d6acdf79ed5bb9a690e83024474696d65820349a1fa9b83afaae6da17697369676e6174757265583092eaf174a665a296e8968d910ab5a6130fb7deca606a68f5903d8e6a4b64a0fc609b7b7f6a68146e6c51b35e367deb8b6a64656c65676174696f6ea2697375626e65745f6964581d2c55b347ecf2686c83781d6c59d1b43e7b4cba8deb6c1b376107f2cd026b636572746966696361746559026ed9d9f7a2647472656583018204582075d2df1ca388b2596be5564ca726dbcadf77bbc535811734b704a8846153be1383018302467375626e657483018301830183018204582035bc207266aa1f9a1b4eea393efe91ae33ed4ce77069ed8e881d86716adf7b6b830182045820f8c3eae0377ee00859223bf1c6202f5885c4dcdc8fd13b1d48c3c838688919bc83018302581d2c55b347ecf2686c83781d6c59d1b43e7b4cba8deb6c1b376107f2cd02830183024f63616e69737465725f72616e67657382035832d9d9f782824a000000000060000001014a00000000006000ae0101824a00000000006000b001014a00000000006fffff010183024a7075626c69635f6b657982035885308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c0503020103610090075120778eb21a530a02bcc763e7f4a192933506966af7b54c10a4d2b24de6a86b200e3440bae6267bf4c488d9a11d0472c38c1b6221198f98e4e6882ba38a5a4e3aa5afce899b7f825ed95adfa12629688073556f2747527213e8d73e40ce8204582036f3cd257d90fb38e42597f193a5e031dbd585b6292793bb04db4794803ce06e82045820028fc5e5f70868254e7215e7fc630dbd29eefc3619af17ce231909e1faf97e9582045820ef8995c410ed405731c9b913f67879e3b6a6b4d659d2746db9a6b47d7e70d3d582045820f9a6810df003d2188a807e8370076bd94a996877ec8bd11aa2c4e1358c01c6ab83024474696d65820349e2c9c9e480f6edd917697369676e61747572655830833724e450e6e1c8848118e82b04c5db3964f0869b6fb52af9bdbf3876435a19c798c03b41d5eb5fd39535c4ab24e70464747265658301820458209a7cc9ffcec2242e2e15b45a4e1fb9983c87c5b7e8badb7b92a891b40382f73683024373696783025820c9f3b4b781360e36240c549029e4b0857a6cc31e7230a680e551cab71aae0df38301820458203e26edaf16f66c93c238503a3d2077176e9ce6f0438940679b22cb31a636bfee83025820f49c0d7056981c0f2fdfaf02d219db038e2c448193bbf19642fbf118a8f4739a820340";
    // The mainnet root key (as hard-coded in ic-agent).
    const MAINNET_ROOT_KEY: &str = "308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100814c0e6ec71fab583b08bd81373c255c3c371b2e84863c98a4f1e08b74235d14fb5d9c0cd546d9685f913a0c0b2cc5341583bf4b4392e467db96d65b9bb4cb717112f8472e0d5a4d14505ffd7484b01291091c5f87b98883463f98091a0baaae";

    let der = hex::decode(PUBLIC_KEY).unwrap();
    let key = UserPublicKey::from_der(&der).unwrap();
    let UserPublicKey::CanisterSignature { canister_id, .. } = &key else { panic!("not a canister key") };
    assert_eq!(canister_id.to_string(), "fgte5-ciaaa-aaaad-aaatq-cai");
    assert_eq!(
        Principal::self_authenticating(&der).to_string(),
        "hf7wk-a35mp-bc6eb-ntvr2-aeu3d-naglw-n6ea3-qn5ps-jcanu-p2vro-5ae"
    );
    let delegation = Delegation {
        pubkey: hex::decode(SESSION_KEY).unwrap(),
        expiration: 1_708_469_015_156_620_577,
        targets: None,
        permissions: None,
    };
    let root = hex::decode(MAINNET_ROOT_KEY).unwrap();
    let signature = hex::decode(SIGNATURE).unwrap();
    key.verify(&delegation.signed_bytes(), &signature, &root).unwrap();
    // One changed bit in the delegation, or another root key: refused.
    let mut later = delegation.clone();
    later.expiration += 1;
    assert!(matches!(key.verify(&later.signed_bytes(), &signature, &root), Err(SignatureError::NotSigned { .. })));
    let mut wrong_root = root.clone();
    wrong_root[100] ^= 1;
    assert!(key.verify(&delegation.signed_bytes(), &signature, &wrong_root).is_err());
}

fn ed(seed: u8) -> Identity {
    Identity::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
}

/// Builds a delegation chain `ids[0] → ids[1] → …` with per-link settings.
fn chain(ids: &[Identity], links: &[Link<'_>]) -> Vec<SignedDelegation> {
    ids.windows(2)
        .zip(links)
        .map(|(pair, (expiration, targets, permissions))| {
            let delegation = Delegation {
                pubkey: pair[1].der(),
                expiration: *expiration,
                targets: targets.clone(),
                permissions: permissions.map(str::to_string),
            };
            let signature = pair[0].sign(&delegation.signed_bytes());
            SignedDelegation { delegation, signature }
        })
        .collect()
}

fn run(ids: &[Identity], delegations: &[SignedDelegation]) -> Result<AuthOutcome, AuthError> {
    let der = ids[0].der();
    let sig = ids.last().unwrap().sign(&request_message(&rid()));
    let auth = EnvelopeAuth {
        sender_pubkey: Some(&der),
        sender_sig: Some(&sig),
        sender_delegation: Some(delegations),
        sender_info: None,
    };
    authenticate(&auth, &rid(), &ids[0].principal(), NOW, &root_key().public_key().to_der())
}

#[test]
fn delegation_chains() {
    let c = |n| CanisterId::from_u64(n).get();
    // Mixed schemes, with the Internet-Identity-like canister key at the root.
    let ids = vec![
        Identity::Canister(CanisterSigner::new(7, b"anchor", root_key())),
        Identity::P256(p256::ecdsa::SigningKey::from_bytes(&[2; 32].into()).unwrap()),
        ed(3),
    ];
    let links = [(LATER, Some(vec![c(1), c(2), c(3)]), None), (LATER, Some(vec![c(2), c(3), c(4)]), Some("all"))];
    let outcome = run(&ids, &chain(&ids, &links)).unwrap();
    assert_eq!(outcome.targets, Some(BTreeSet::from([c(2), c(3)])));
    assert!(!outcome.queries_only);
    outcome.check_target(&c(2), true).unwrap();
    assert_eq!(outcome.check_target(&c(1), false), Err(AuthError::TargetNotAllowed(c(1))));

    // Queries-only anywhere in the chain.
    let links = [(LATER, None, Some("queries")), (LATER, None, None)];
    let outcome = run(&ids, &chain(&ids, &links)).unwrap();
    assert!(outcome.queries_only && outcome.targets.is_none());
    assert_eq!(outcome.check_target(&c(1), true), Err(AuthError::QueriesOnly));
    outcome.check_target(&c(1), false).unwrap();

    // Invalid permissions value.
    let links = [(LATER, None, None), (LATER, None, Some("everything"))];
    assert_eq!(
        run(&ids, &chain(&ids, &links)),
        Err(AuthError::InvalidPermissions { index: 1, value: "everything".into() })
    );

    // Expired second link: the error names it.
    let links = [(LATER, None, None), (NOW.as_nanos() - 1, None, None)];
    assert_eq!(
        run(&ids, &chain(&ids, &links)),
        Err(AuthError::DelegationExpired { index: 1, expiration: NOW.as_nanos() - 1, now: NOW.as_nanos() })
    );
    // Expiring exactly now is still fine.
    let links = [(LATER, None, None), (NOW.as_nanos(), None, None)];
    run(&ids, &chain(&ids, &links)).unwrap();

    // A tampered link signature names the link and its signer.
    let links = [(LATER, None, None), (LATER, None, None)];
    let mut bad = chain(&ids, &links);
    bad[1].signature = tamper(bad[1].signature.clone());
    assert!(matches!(
        run(&ids, &bad),
        Err(AuthError::InvalidDelegationSignature { index: 1, signer: KeyRole::Delegation(0), .. })
    ));
    // Changing the delegation after signing breaks its signature.
    let mut bad = chain(&ids, &links);
    bad[0].delegation.expiration -= 1;
    assert!(matches!(
        run(&ids, &bad),
        Err(AuthError::InvalidDelegationSignature { index: 0, signer: KeyRole::SenderPubkey, .. })
    ));
    // sender_sig by a key that is not the chain's last.
    let good = chain(&ids, &links);
    run(&[ids[0].der_identity(), ed(3)], &good).unwrap();
    let err = run(&[ids[0].der_identity(), ed(4)], &good).unwrap_err();
    assert!(matches!(err, AuthError::InvalidSenderSignature { signer: KeyRole::Delegation(1), .. }), "{err}");
}

impl Identity {
    /// A second handle on the same key (test helper for the canister key).
    fn der_identity(&self) -> Identity {
        match self {
            Identity::Canister(c) => Identity::Canister(CanisterSigner::new(
                c.canister.as_u64().unwrap(),
                &c.seed,
                bls::SecretKey::from_bytes(&c.root.to_bytes()).unwrap(),
            )),
            _ => unimplemented!(),
        }
    }
}

#[test]
fn chain_limits_and_cycles() {
    // 21 links are too many, 20 are fine.
    let ids: Vec<Identity> = (1..=22).map(ed).collect();
    let links: Vec<_> = (0..21).map(|_| (LATER, None, None)).collect();
    assert_eq!(run(&ids, &chain(&ids, &links)), Err(AuthError::TooManyDelegations { count: 21 }));
    run(&ids[..21], &chain(&ids[..21], &links[..20])).unwrap();

    // A key appearing twice (a cycle back to the sender) is refused.
    let ids = vec![ed(1), ed(2), ed(1)];
    let links = [(LATER, None, None), (LATER, None, None)];
    assert_eq!(run(&ids, &chain(&ids, &links)), Err(AuthError::RepeatedKey { index: 1 }));
    // Self-delegation likewise.
    let ids = vec![ed(1), ed(1)];
    assert_eq!(run(&ids, &chain(&ids, &links[..1])), Err(AuthError::RepeatedKey { index: 0 }));

    // 1001 targets are too many.
    let ids = vec![ed(1), ed(2)];
    let targets: Vec<Principal> = (0..1001).map(|i| CanisterId::from_u64(i).get()).collect();
    assert_eq!(
        run(&ids, &chain(&ids, &[(LATER, Some(targets.clone()), None)])),
        Err(AuthError::TooManyTargets { index: 0, count: 1001 })
    );
    run(&ids, &chain(&ids, &[(LATER, Some(targets[..1000].to_vec()), None)])).unwrap();

    // A delegation to an unparseable key names it.
    let mut links = chain(&ids, &[(LATER, None, None)]);
    links[0].delegation.pubkey = vec![1, 2, 3];
    links[0].signature = ids[0].sign(&links[0].delegation.signed_bytes());
    assert!(matches!(run(&ids, &links), Err(AuthError::InvalidPublicKey { role: KeyRole::Delegation(0), .. })));
}

#[test]
fn anonymous_and_envelope_shape() {
    let root = root_key().public_key().to_der();
    let anon = Principal::ANONYMOUS;
    assert_eq!(authenticate(&EnvelopeAuth::default(), &rid(), &anon, NOW, &root), Ok(AuthOutcome::unrestricted()));
    let id = ed(1);
    let der = id.der();
    let sig = id.sign(&request_message(&rid()));
    let with_key = EnvelopeAuth { sender_pubkey: Some(&der), ..Default::default() };
    assert_eq!(
        authenticate(&with_key, &rid(), &anon, NOW, &root),
        Err(AuthError::AnonymousWithCredentials("sender_pubkey"))
    );
    assert_eq!(authenticate(&with_key, &rid(), &id.principal(), NOW, &root), Err(AuthError::MissingSignature));
    assert_eq!(
        authenticate(&EnvelopeAuth::default(), &rid(), &id.principal(), NOW, &root),
        Err(AuthError::MissingPublicKey(id.principal()))
    );
    let full = EnvelopeAuth { sender_pubkey: Some(&der), sender_sig: Some(&sig), ..Default::default() };
    let other = ed(2).principal();
    assert_eq!(
        authenticate(&full, &rid(), &other, NOW, &root),
        Err(AuthError::SenderMismatch { sender: other, derived: id.principal() })
    );
    // Error messages say what is wrong.
    let msg = AuthError::DelegationExpired { index: 2, expiration: 5, now: 6 }.to_string();
    assert_eq!(msg, "delegation 2 expired at 5 ns; now is 6 ns");
}

#[test]
fn sender_info() {
    let root = root_key().public_key().to_der();
    let signer = CanisterSigner::new(7, b"seed", root_key());
    let id = Identity::Canister(signer);
    let der = id.der();
    let sig = id.sign(&request_message(&rid()));
    let info_bytes = b"attribute: verified".to_vec();
    let info = SignedSenderInfo {
        info: info_bytes.clone(),
        signer: CanisterId::from_u64(7).get(),
        sig: id.sign(&domain::with_separator(domain::SENDER_INFO, &info_bytes)),
    };
    let auth = EnvelopeAuth {
        sender_pubkey: Some(&der),
        sender_sig: Some(&sig),
        sender_delegation: None,
        sender_info: Some(&info),
    };
    let outcome = authenticate(&auth, &rid(), &id.principal(), NOW, &root).unwrap();
    assert_eq!(
        outcome.sender_info,
        Some(SenderInfo { info: info_bytes.clone(), signer: CanisterId::from_u64(7).get() })
    );
    // Wrong signer, bad signature, non-canister sender key.
    let wrong_signer = SignedSenderInfo { signer: CanisterId::from_u64(8).get(), ..info.clone() };
    assert!(matches!(
        authenticate(&EnvelopeAuth { sender_info: Some(&wrong_signer), ..auth }, &rid(), &id.principal(), NOW, &root),
        Err(AuthError::SenderInfoSignerMismatch { .. })
    ));
    let bad_sig = SignedSenderInfo { info: b"attribute: admin".to_vec(), ..info.clone() };
    assert!(matches!(
        authenticate(&EnvelopeAuth { sender_info: Some(&bad_sig), ..auth }, &rid(), &id.principal(), NOW, &root),
        Err(AuthError::InvalidSenderInfoSignature(_))
    ));
    let plain = ed(1);
    let plain_der = plain.der();
    let plain_sig = plain.sign(&request_message(&rid()));
    let plain_auth = EnvelopeAuth {
        sender_pubkey: Some(&plain_der),
        sender_sig: Some(&plain_sig),
        sender_delegation: None,
        sender_info: Some(&info),
    };
    assert_eq!(
        authenticate(&plain_auth, &rid(), &plain.principal(), NOW, &root),
        Err(AuthError::SenderInfoNeedsCanisterKey { scheme: "Ed25519" })
    );
}

#[test]
fn delegation_cbor_roundtrip_and_hash() {
    // Decoding a delegation from CBOR (as the HTTP layer will) keeps the
    // hashed fields, including optional ones, exactly.
    let d = Delegation {
        pubkey: vec![1, 2, 3],
        expiration: 1_234,
        targets: Some(vec![CanisterId::from_u64(1).get()]),
        permissions: Some("queries".into()),
    };
    let signed = SignedDelegation { delegation: d.clone(), signature: vec![9; 64] };
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&signed, &mut bytes).unwrap();
    let back: SignedDelegation = ciborium::de::from_reader(bytes.as_slice()).unwrap();
    assert_eq!(back, signed);
    // Targets travel as CBOR byte strings, as clients send them.
    let raw: Cbor = ciborium::de::from_reader(bytes.as_slice()).unwrap();
    let delegation = crate::cbor::field(crate::cbor::as_map(&raw).unwrap(), "delegation").unwrap();
    let targets = crate::cbor::field(crate::cbor::as_map(delegation).unwrap(), "targets").unwrap();
    assert_eq!(targets, &Cbor::Array(vec![Cbor::Bytes(CanisterId::from_u64(1).as_slice().to_vec())]));
    // hash_of_map over {pubkey, expiration, targets, permissions}.
    let expected = crate::request_id::hash_value(&Value::map([
        ("pubkey", Value::blob([1, 2, 3])),
        ("expiration", Value::Nat(1_234)),
        ("targets", Value::Array(vec![Value::blob(CanisterId::from_u64(1).as_slice())])),
        ("permissions", Value::text("queries")),
    ]));
    assert_eq!(d.hash(), expected);
    let minimal = Delegation { targets: None, permissions: None, ..d };
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&minimal, &mut bytes).unwrap();
    // Only two fields on the wire when the optional ones are absent.
    assert_eq!(bytes[0], 0xa2);
}
