//! SCM's durable state in one redb file (`<db dir>/scm.db`): datanodes, pipelines,
//! containers, the deleted-block log and the id sequences. Only the state actor's `ScmState`
//! uses it.
//!
//! Records are JSON values keyed by uuid / pipeline id / container id. Every write is one
//! transaction committed with immediate durability, so a commit that returned is on disk.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ScmError;
use crate::model::{ContainerRecord, DeleteTx, DoneMark, NodeRecord, PipelineRecord};

const DATANODES: TableDefinition<&str, &[u8]> = TableDefinition::new("datanodes");
const PIPELINES: TableDefinition<&str, &[u8]> = TableDefinition::new("pipelines");
const CONTAINERS: TableDefinition<u64, &[u8]> = TableDefinition::new("containers");
const SEQUENCES: TableDefinition<&str, u64> = TableDefinition::new("sequences");
/// The deleted-block log: transaction id -> JSON [`StoredTx`] (a [`DeleteTx`], with a
/// [`DoneMark`] once every holder carried it out).
const DELETE_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("deleted_blocks");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// A row of the deleted-block log (rows written before done marks existed read as not done).
#[derive(Serialize, Deserialize)]
struct StoredTx {
    #[serde(flatten)]
    tx: DeleteTx,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    done: Option<DoneMark>,
}

/// Sequence: the next container id to hand out.
pub const SEQ_CONTAINER_ID: &str = "next_container_id";
/// Sequence: block local ids below this value may have been handed out; a restarted SCM
/// continues from here.
pub const SEQ_LOCAL_ID_LIMIT: &str = "local_id_reserved_until";
/// Sequence: the next deleted-block transaction id.
pub const SEQ_DELETE_TX: &str = "next_delete_tx";
const META_CLUSTER_ID: &str = "cluster_id";

/// Everything the database holds, read at start.
#[derive(Debug, Default)]
pub struct Loaded {
    pub cluster_id: String,
    pub datanodes: Vec<NodeRecord>,
    pub pipelines: Vec<PipelineRecord>,
    pub containers: Vec<ContainerRecord>,
    pub next_container_id: u64,
    pub local_id_limit: u64,
    pub delete_log: Vec<DeleteTx>,
    /// Transactions every holder carried out, kept for holders that show up later.
    pub delete_done: Vec<(DeleteTx, DoneMark)>,
    pub next_delete_tx: u64,
}

/// Changes to write in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    pub datanodes: Vec<NodeRecord>,
    pub pipelines: Vec<PipelineRecord>,
    pub removed_pipelines: Vec<String>,
    pub containers: Vec<ContainerRecord>,
    pub sequences: Vec<(&'static str, u64)>,
    pub delete_txs: Vec<DeleteTx>,
    /// Transactions now done (rewritten with their mark).
    pub done_delete_txs: Vec<(DeleteTx, DoneMark)>,
    pub removed_delete_txs: Vec<u64>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.delete_txs.is_empty()
            && self.done_delete_txs.is_empty()
            && self.removed_delete_txs.is_empty()
            && self.datanodes.is_empty()
            && self.pipelines.is_empty()
            && self.removed_pipelines.is_empty()
            && self.containers.is_empty()
            && self.sequences.is_empty()
    }
}

/// The open SCM database. [`Store::close`] releases the file (a later open in the same
/// process would otherwise fail).
pub struct Store {
    db: Option<Database>,
}

/// redb page cache of `scm.db` (containers, their replicas, the deleted-block log).
const DB_CACHE_BYTES: usize = 64 * 1024 * 1024;

impl Store {
    /// Opens (creating if needed) `<dir>/scm.db` and reads all of it. A new database gets a
    /// fresh cluster id.
    pub fn open(dir: &Path) -> Result<(Store, Loaded), ScmError> {
        std::fs::create_dir_all(dir).map_err(|source| ScmError::Io {
            what: format!("creating SCM db dir {}", dir.display()),
            source,
        })?;
        let path = dir.join("scm.db");
        let db =
            ozone_common::db::create_with_cache(&path, DB_CACHE_BYTES).map_err(ScmError::db)?;
        let store = Store { db: Some(db) };
        let mut loaded = store.load()?;
        if loaded.cluster_id.is_empty() {
            loaded.cluster_id = format!("CID-{}", uuid::Uuid::new_v4());
            let db = store.db()?;
            let tx = db.begin_write().map_err(ScmError::db)?;
            {
                let mut meta = tx.open_table(META).map_err(ScmError::db)?;
                meta.insert(META_CLUSTER_ID, loaded.cluster_id.as_str())
                    .map_err(ScmError::db)?;
            }
            tx.commit().map_err(ScmError::db)?;
            tracing::info!(cluster_id = %loaded.cluster_id, path = %path.display(), "created SCM database");
        }
        Ok((store, loaded))
    }

    fn db(&self) -> Result<&Database, ScmError> {
        self.db.as_ref().ok_or(ScmError::Stopped)
    }

    fn load(&self) -> Result<Loaded, ScmError> {
        let db = self.db()?;
        // Create every table so a fresh database reads as empty.
        let tx = db.begin_write().map_err(ScmError::db)?;
        {
            tx.open_table(DATANODES).map_err(ScmError::db)?;
            tx.open_table(PIPELINES).map_err(ScmError::db)?;
            tx.open_table(CONTAINERS).map_err(ScmError::db)?;
            tx.open_table(SEQUENCES).map_err(ScmError::db)?;
            tx.open_table(META).map_err(ScmError::db)?;
            tx.open_table(DELETE_LOG).map_err(ScmError::db)?;
        }
        tx.commit().map_err(ScmError::db)?;

        let tx = db.begin_read().map_err(ScmError::db)?;
        let mut loaded = Loaded::default();
        {
            let t = tx.open_table(DATANODES).map_err(ScmError::db)?;
            for row in t.iter().map_err(ScmError::db)? {
                let (k, v) = row.map_err(ScmError::db)?;
                loaded
                    .datanodes
                    .push(decode(&format!("datanode {}", k.value()), v.value())?);
            }
            let t = tx.open_table(PIPELINES).map_err(ScmError::db)?;
            for row in t.iter().map_err(ScmError::db)? {
                let (k, v) = row.map_err(ScmError::db)?;
                loaded
                    .pipelines
                    .push(decode(&format!("pipeline {}", k.value()), v.value())?);
            }
            let t = tx.open_table(CONTAINERS).map_err(ScmError::db)?;
            for row in t.iter().map_err(ScmError::db)? {
                let (k, v) = row.map_err(ScmError::db)?;
                loaded
                    .containers
                    .push(decode(&format!("container {}", k.value()), v.value())?);
            }
            let t = tx.open_table(SEQUENCES).map_err(ScmError::db)?;
            let seq = |name: &str| -> Result<Option<u64>, ScmError> {
                Ok(t.get(name).map_err(ScmError::db)?.map(|v| v.value()))
            };
            loaded.next_container_id = seq(SEQ_CONTAINER_ID)?.unwrap_or(1);
            loaded.local_id_limit = seq(SEQ_LOCAL_ID_LIMIT)?.unwrap_or(1);
            loaded.next_delete_tx = seq(SEQ_DELETE_TX)?.unwrap_or(1);
            let t = tx.open_table(DELETE_LOG).map_err(ScmError::db)?;
            for row in t.iter().map_err(ScmError::db)? {
                let (k, v) = row.map_err(ScmError::db)?;
                let row: StoredTx = decode(&format!("deleted-block tx {}", k.value()), v.value())?;
                match row.done {
                    None => loaded.delete_log.push(row.tx),
                    Some(mark) => loaded.delete_done.push((row.tx, mark)),
                }
            }
            let t = tx.open_table(META).map_err(ScmError::db)?;
            loaded.cluster_id = t
                .get(META_CLUSTER_ID)
                .map_err(ScmError::db)?
                .map(|v| v.value().to_string())
                .unwrap_or_default();
        }
        // A container id at or above the sequence would be handed out twice.
        if let Some(max) = loaded.containers.iter().map(|c| c.id).max()
            && max >= loaded.next_container_id
        {
            return Err(ScmError::Corrupt(format!(
                "container {max} exists but the container id sequence is at {}",
                loaded.next_container_id
            )));
        }
        Ok(loaded)
    }

    /// Writes `batch` in one durable transaction.
    pub fn write(&self, batch: &Batch) -> Result<(), ScmError> {
        if batch.is_empty() {
            return Ok(());
        }
        let db = self.db()?;
        let tx = db.begin_write().map_err(ScmError::db)?;
        {
            let mut t = tx.open_table(DATANODES).map_err(ScmError::db)?;
            for n in &batch.datanodes {
                t.insert(n.details.uuid.as_str(), encode(n).as_slice())
                    .map_err(ScmError::db)?;
            }
            let mut t = tx.open_table(PIPELINES).map_err(ScmError::db)?;
            for p in &batch.pipelines {
                t.insert(p.id.as_str(), encode(p).as_slice())
                    .map_err(ScmError::db)?;
            }
            for id in &batch.removed_pipelines {
                t.remove(id.as_str()).map_err(ScmError::db)?;
            }
            let mut t = tx.open_table(CONTAINERS).map_err(ScmError::db)?;
            for c in &batch.containers {
                t.insert(c.id, encode(c).as_slice()).map_err(ScmError::db)?;
            }
            let mut t = tx.open_table(SEQUENCES).map_err(ScmError::db)?;
            for (name, value) in &batch.sequences {
                t.insert(*name, *value).map_err(ScmError::db)?;
            }
            let mut t = tx.open_table(DELETE_LOG).map_err(ScmError::db)?;
            for d in &batch.delete_txs {
                let row = StoredTx {
                    tx: d.clone(),
                    done: None,
                };
                t.insert(d.tx_id, encode(&row).as_slice())
                    .map_err(ScmError::db)?;
            }
            for (d, mark) in &batch.done_delete_txs {
                let row = StoredTx {
                    tx: d.clone(),
                    done: Some(mark.clone()),
                };
                t.insert(d.tx_id, encode(&row).as_slice())
                    .map_err(ScmError::db)?;
            }
            for id in &batch.removed_delete_txs {
                t.remove(*id).map_err(ScmError::db)?;
            }
        }
        tx.commit().map_err(ScmError::db)?;
        Ok(())
    }

    /// Releases the database file; later writes fail with [`ScmError::Stopped`].
    pub fn close(&mut self) {
        self.db = None;
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("SCM records contain only strings, numbers and enums")
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, ScmError> {
    serde_json::from_slice(bytes).map_err(|e| ScmError::Corrupt(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factor::Factor;
    use crate::model::{ContainerState, DatanodeDetails, PipelineState};

    #[test]
    fn round_trips_records_and_sequences() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, loaded) = Store::open(dir.path()).expect("open");
        assert!(loaded.cluster_id.starts_with("CID-"));
        assert_eq!(loaded.next_container_id, 1);
        let batch = Batch {
            datanodes: vec![NodeRecord {
                details: DatanodeDetails {
                    uuid: "dn1".into(),
                    host: "h".into(),
                    port: 1,
                    http_port: 2,
                },
                registered_ms: 5,
                op_state: Default::default(),
            }],
            pipelines: vec![PipelineRecord {
                id: "p1".into(),
                factor: Factor::One,
                nodes: vec!["dn1".into()],
                state: PipelineState::Open,
                created_ms: 6,
            }],
            removed_pipelines: vec![],
            containers: vec![ContainerRecord {
                id: 1,
                pipeline_id: "p1".into(),
                factor: Factor::One,
                state: ContainerState::Open,
                allocated_bytes: 7,
                created_ms: 8,
                bcsid: 3,
                missed: ["dn1".to_string()].into(),
            }],
            sequences: vec![(SEQ_CONTAINER_ID, 2), (SEQ_LOCAL_ID_LIMIT, 10_001)],
            delete_txs: vec![DeleteTx {
                tx_id: 1,
                container_id: 1,
                local_ids: vec![4, 5],
            }],
            done_delete_txs: vec![(
                DeleteTx {
                    tx_id: 2,
                    container_id: 1,
                    local_ids: vec![6],
                },
                DoneMark {
                    done_ms: 9,
                    acked: vec!["dn1".into()],
                },
            )],
            removed_delete_txs: vec![],
        };
        store.write(&batch).expect("write");
        let cluster = loaded.cluster_id;
        drop(store);
        let (mut store, loaded) = Store::open(dir.path()).expect("reopen");
        assert_eq!(loaded.cluster_id, cluster);
        assert_eq!(loaded.datanodes.len(), 1);
        assert_eq!(loaded.pipelines[0].nodes, vec!["dn1".to_string()]);
        assert_eq!(loaded.containers[0].allocated_bytes, 7);
        assert_eq!(loaded.next_container_id, 2);
        assert_eq!(loaded.local_id_limit, 10_001);
        assert_eq!(loaded.delete_log.len(), 1);
        assert_eq!(loaded.delete_log[0].local_ids, vec![4, 5]);
        assert_eq!(loaded.delete_done.len(), 1);
        assert_eq!(loaded.delete_done[0].0.local_ids, vec![6]);
        assert_eq!(loaded.delete_done[0].1.acked, vec!["dn1".to_string()]);
        store
            .write(&Batch {
                removed_pipelines: vec!["p1".into()],
                ..Batch::default()
            })
            .expect("remove");
        store.close();
        assert!(matches!(
            store.write(&Batch {
                sequences: vec![(SEQ_CONTAINER_ID, 3)],
                ..Batch::default()
            }),
            Err(ScmError::Stopped)
        ));
        let (_store, loaded) = Store::open(dir.path()).expect("reopen");
        assert!(loaded.pipelines.is_empty());
    }
}
