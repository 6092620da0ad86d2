//! Cost of resharing the subnet key once per interval, per node, for
//! 4, 7 and 13 nodes (the same committee before and after):
//!
//! * deal: one resharing dealing of this node's share (n ciphertexts);
//! * verify: the public checks of the n − f dealings that make the key;
//! * open: decrypting and checking this node's share of each of them;
//! * combine: the new public coefficients and this node's new share.
//!
//! ```text
//! cargo bench -p cairn-crypto --bench resharing -- [runs=5]
//! ```

use cairn_crypto::bls::{self, NodeIndex, PublicKey, SecretKey};
use cairn_crypto::dkg::{
    Combination, Dealing, DealingContext, combine_commitments, combine_shares, deal, open_share, verify_dealing,
};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    println!("| nodes | threshold | deal | verify all | open all | combine | per node per interval | dealing bytes |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in [4usize, 7, 13] {
        let f = (n - 1) / 3;
        let t = n - f;
        let (current, shares) = bls::generate_threshold_keys([n as u8; 32], t, n).unwrap();
        let enc_secrets: Vec<SecretKey> = (0..n).map(|i| SecretKey::from_seed([i as u8 + 100; 32])).collect();
        let receivers: Vec<PublicKey> = enc_secrets.iter().map(SecretKey::public_key).collect();
        let tag = b"bench/interval/high";
        let (mut d_t, mut v_t, mut o_t, mut c_t) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut size = 0;
        for run in 0..runs {
            let ctx = |dealer: NodeIndex| DealingContext { tag, dealer, receivers: &receivers, threshold: t };
            let started = Instant::now();
            let dealings: Vec<(NodeIndex, Dealing)> = (0..t as NodeIndex)
                .map(|i| {
                    (
                        i,
                        deal(
                            &ctx(i),
                            Some(&shares[i as usize]),
                            [run as u8, i as u8, 1, 1].repeat(8).try_into().unwrap(),
                        )
                        .unwrap(),
                    )
                })
                .collect();
            d_t.push(started.elapsed().as_secs_f64() / t as f64);
            size = postcard_len(&dealings[0].1);
            let started = Instant::now();
            for (i, d) in &dealings {
                verify_dealing(&ctx(*i), d, Some(&current)).unwrap();
            }
            v_t.push(started.elapsed().as_secs_f64());
            let started = Instant::now();
            let mine: Vec<(NodeIndex, SecretKey)> = dealings
                .iter()
                .map(|(i, d)| (*i, open_share(&ctx(*i), d, 0, &enc_secrets[0], [7; 32]).unwrap()))
                .collect();
            o_t.push(started.elapsed().as_secs_f64());
            let started = Instant::now();
            let how = Combination::Resharing { current_threshold: t };
            let refs: Vec<(NodeIndex, &Dealing)> = dealings.iter().map(|(i, d)| (*i, d)).collect();
            let key = combine_commitments(&refs, how).unwrap();
            let share = combine_shares(&mine, how).unwrap();
            c_t.push(started.elapsed().as_secs_f64());
            assert_eq!(key.group_public_key(), current.group_public_key());
            assert_eq!(share.public_key(), key.public_share(0));
        }
        let (d, v, o, c) = (median(d_t), median(v_t), median(o_t), median(c_t));
        println!(
            "| {n} | {t} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {size} |",
            d * 1e3,
            v * 1e3,
            o * 1e3,
            c * 1e3,
            (d + v + o + c) * 1e3
        );
    }
}

fn postcard_len(d: &Dealing) -> usize {
    d.commitments.len() + d.ciphertexts.iter().map(|c| c.ephemeral.len() + 32).sum::<usize>()
}
