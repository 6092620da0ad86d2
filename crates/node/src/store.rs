//! The durable block log (redb): every finalized block is written, and
//! synced, before it is executed. With the latest checkpoint it is enough to
//! rebuild the exact state after a crash: execution is deterministic.

use crate::block::Block;
use cairn_types::Height;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");

/// Why the block log failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("block store: {0}")]
    Db(String),
    #[error(
        "block {0} in the store cannot be read ({1}): the log is damaged or was written by an older Cairn whose block format differed; start a fresh network (`--clean`)"
    )]
    Corrupt(u64, String),
}

fn db_err<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

/// Finalized blocks by height.
pub struct BlockStore {
    db: Database,
}

impl BlockStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(BLOCKS).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(BlockStore { db })
    }

    /// Appends a block durably (the commit is synced to disk).
    pub fn append(&self, block: &Block) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(BLOCKS).map_err(db_err)?;
            table.insert(block.height.0, block.encode().as_slice()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Blocks with height above `after`, in order.
    pub fn blocks_after(&self, after: Height) -> Result<Vec<Block>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(BLOCKS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.range(after.0 + 1..).map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            out.push(Block::decode(v.value()).map_err(|e| StoreError::Corrupt(k.value(), e.to_string()))?);
        }
        Ok(out)
    }

    /// The highest stored block's height.
    pub fn last_height(&self) -> Result<Option<Height>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(BLOCKS).map_err(db_err)?;
        Ok(table.last().map_err(db_err)?.map(|(k, _)| Height(k.value())))
    }

    /// Deletes blocks at or below `height` (they are covered by a checkpoint).
    pub fn purge_up_to(&self, height: Height) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(BLOCKS).map_err(db_err)?;
            table.retain_in(..=height.0, |_, _| false).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_types::Time;

    fn block(h: u64) -> Block {
        Block {
            height: Height(h),
            parent_hash: [0; 32],
            time: Time::from_secs(h),
            randomness: [1; 32],
            ingress: vec![],
            registry_version: cairn_types::RegistryVersion(1),
        }
    }

    #[test]
    fn append_read_purge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks.redb");
        {
            let s = BlockStore::open(&path).unwrap();
            for h in 1..=5 {
                s.append(&block(h)).unwrap();
            }
        }
        let s = BlockStore::open(&path).unwrap();
        assert_eq!(s.last_height().unwrap(), Some(Height(5)));
        assert_eq!(s.blocks_after(Height(3)).unwrap(), vec![block(4), block(5)]);
        s.purge_up_to(Height(4)).unwrap();
        assert_eq!(s.blocks_after(Height(0)).unwrap(), vec![block(5)]);
    }
}
