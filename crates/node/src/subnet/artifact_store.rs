//! The consensus artifact pool on disk (redb): every validated artifact is
//! written before it is gossiped, so a node that crashes and restarts never
//! contradicts what it already signed (a notary that lost its notarization
//! share for one block could otherwise sign a finalization share for
//! another), and resumes from the pool instead of from scratch.
//!
//! Commits that contain an artifact this node made are synced to disk;
//! commits of received artifacts are not (redb makes them durable with the
//! next synced commit): losing those costs only a re-fetch from peers.

use cairn_consensus::{ArtifactId, ConsensusMessage, PoolEvent};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const ARTIFACTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("validated_artifacts");

/// Why the artifact store failed.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactStoreError {
    #[error("artifact store: {0}")]
    Db(String),
}

fn db_err<E: std::fmt::Display>(e: E) -> ArtifactStoreError {
    ArtifactStoreError::Db(e.to_string())
}

fn key(id: &ArtifactId) -> Vec<u8> {
    postcard::to_stdvec(id).expect("artifact ids serialize")
}

/// The validated section of the consensus pool, persisted.
pub struct ArtifactStore {
    db: Database,
}

impl ArtifactStore {
    /// Opens (or creates) the store.
    pub fn open(path: &Path) -> Result<ArtifactStore, ArtifactStoreError> {
        let db = Database::create(path).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(ARTIFACTS).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(ArtifactStore { db })
    }

    /// Every stored artifact. Entries that no longer decode (a format change,
    /// a torn page redb could not repair) are skipped: peers resend them.
    pub fn load(&self) -> Result<Vec<ConsensusMessage>, ArtifactStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(ARTIFACTS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (_, v) = entry.map_err(db_err)?;
            match postcard::from_bytes::<ConsensusMessage>(v.value()) {
                Ok(m) => out.push(m),
                Err(e) => tracing::warn!("skipping an undecodable stored artifact: {e}"),
            }
        }
        Ok(out)
    }

    /// Applies the pool events of one consensus step in one transaction.
    /// Returns whether anything was written.
    pub fn apply(&self, events: &[PoolEvent]) -> Result<bool, ArtifactStoreError> {
        let relevant = events.iter().any(|e| matches!(e, PoolEvent::Validated { .. } | PoolEvent::Removed(_)));
        if !relevant {
            return Ok(false);
        }
        let own = events.iter().any(|e| matches!(e, PoolEvent::Validated { own: true, .. }));
        let mut tx = self.db.begin_write().map_err(db_err)?;
        tx.set_durability(if own { Durability::Immediate } else { Durability::None }).map_err(db_err)?;
        {
            let mut table = tx.open_table(ARTIFACTS).map_err(db_err)?;
            for event in events {
                match event {
                    PoolEvent::Validated { id, message, .. } => {
                        let value = postcard::to_stdvec(message).expect("artifacts serialize");
                        table.insert(key(id).as_slice(), value.as_slice()).map_err(db_err)?;
                    }
                    PoolEvent::Removed(id) => {
                        table.remove(key(id).as_slice()).map_err(db_err)?;
                    }
                    PoolEvent::Invalid(..) => {}
                }
            }
        }
        tx.commit().map_err(db_err)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_consensus::{RandomBeaconContent, ThresholdSignature};
    use cairn_types::Height;

    fn beacon(h: u64) -> ConsensusMessage {
        let parent = cairn_consensus::CryptoHash([h as u8; 32]);
        ConsensusMessage::RandomBeacon(ThresholdSignature {
            content: RandomBeaconContent { height: Height(h), parent },
            signature: vec![h as u8; 48],
        })
    }

    #[test]
    fn events_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.redb");
        let (a, b) = (beacon(1), beacon(2));
        {
            let store = ArtifactStore::open(&path).unwrap();
            let events = vec![
                PoolEvent::Validated { id: a.id(), message: a.clone(), own: true },
                PoolEvent::Validated { id: b.id(), message: b.clone(), own: false },
            ];
            assert!(store.apply(&events).unwrap());
            assert!(store.apply(&[PoolEvent::Removed(a.id())]).unwrap());
            assert!(!store.apply(&[]).unwrap());
        }
        let store = ArtifactStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), vec![b]);
    }
}
