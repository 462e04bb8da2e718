//! SCM's durable state in one redb file (`<db dir>/scm.db`): datanodes, pipelines,
//! containers, the deleted-block log, the id sequences and the cluster id, plus the last raft
//! entry applied to them.
//!
//! Records are JSON values keyed by uuid / pipeline id / container id. Changes arrive as
//! [`Batch`]es: on an SCM of a raft group (every SCM, also a single one) only the state
//! machine (`ha`) writes, applying the batches of committed entries in order; `ScmState`
//! reads the store when it takes over as leader (and, in unit tests, writes its batches
//! directly). Every write is one transaction committed with immediate durability.
//!
//! A snapshot ([`Store::export`], [`Store::install`]) is every row as one JSON line
//! `[table, key, value]`, the first line the applied raft state.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ScmError;
use crate::model::{ContainerRecord, DeleteTx, DoneMark, NodeRecord, PipelineRecord};
use ozone_common::token::SecretKey;
use ozone_raft::state_machine::Applied;

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
/// Prefix of the META rows holding SCM's secret keys (`secret_key/<id>` -> JSON
/// [`SecretKey`]), so snapshots carry them with the rest of META.
const META_SECRET_KEY_PREFIX: &str = "secret_key/";
/// The last applied raft log id and membership ([`Applied`], JSON).
const META_RAFT_APPLIED: &str = "raft_applied";

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
    /// The secret keys for block and container tokens.
    pub secret_keys: Vec<SecretKey>,
}

/// Changes to write in one transaction: the payload of SCM's replicated command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Set once, by the first leader of a new SCM service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub datanodes: Vec<NodeRecord>,
    pub pipelines: Vec<PipelineRecord>,
    pub removed_pipelines: Vec<String>,
    pub containers: Vec<ContainerRecord>,
    /// (sequence name, value); a sequence never moves back.
    pub sequences: Vec<(String, u64)>,
    pub delete_txs: Vec<DeleteTx>,
    /// Transactions now done (rewritten with their mark).
    pub done_delete_txs: Vec<(DeleteTx, DoneMark)>,
    pub removed_delete_txs: Vec<u64>,
    /// Secret keys made (security on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_keys: Vec<SecretKey>,
    /// Ids of expired secret keys to drop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_secret_keys: Vec<String>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.cluster_id.is_none()
            && self.delete_txs.is_empty()
            && self.done_delete_txs.is_empty()
            && self.removed_delete_txs.is_empty()
            && self.datanodes.is_empty()
            && self.pipelines.is_empty()
            && self.removed_pipelines.is_empty()
            && self.containers.is_empty()
            && self.sequences.is_empty()
            && self.secret_keys.is_empty()
            && self.removed_secret_keys.is_empty()
    }
}

/// The open SCM database.
pub struct Store {
    db: Database,
}

/// redb page cache of `scm.db` (containers, their replicas, the deleted-block log).
const DB_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Longest line of a snapshot (one row).
const MAX_SNAPSHOT_LINE: u64 = 64 << 20;

/// Tables in snapshot order.
const TABLE_NAMES: [&str; 6] = [
    "meta",
    "sequences",
    "datanodes",
    "pipelines",
    "containers",
    "deleted_blocks",
];

impl Store {
    /// Opens (creating if needed) `<dir>/scm.db` with every table.
    pub fn open(dir: &Path) -> Result<Store, ScmError> {
        std::fs::create_dir_all(dir).map_err(|source| ScmError::Io {
            what: format!("creating SCM db dir {}", dir.display()),
            source,
        })?;
        let path = dir.join("scm.db");
        let db =
            ozone_common::db::create_with_cache(&path, DB_CACHE_BYTES).map_err(ScmError::db)?;
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
        Ok(Store { db })
    }

    /// Reads all of the state (an empty cluster id: none set yet).
    pub fn load(&self) -> Result<Loaded, ScmError> {
        let tx = self.db.begin_read().map_err(ScmError::db)?;
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
            for row in t.range(META_SECRET_KEY_PREFIX..).map_err(ScmError::db)? {
                let (k, v) = row.map_err(ScmError::db)?;
                if !k.value().starts_with(META_SECRET_KEY_PREFIX) {
                    break;
                }
                loaded
                    .secret_keys
                    .push(decode(k.value(), v.value().as_bytes())?);
            }
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
        let tx = self.db.begin_write().map_err(ScmError::db)?;
        write_batch(&tx, batch)?;
        tx.commit().map_err(ScmError::db)?;
        Ok(())
    }

    /// The last applied raft log id and membership (default: nothing applied yet, which is
    /// also what a database from before SCM replication reads as).
    pub fn applied(&self) -> Result<Applied, ScmError> {
        let tx = self.db.begin_read().map_err(ScmError::db)?;
        let t = tx.open_table(META).map_err(ScmError::db)?;
        match t.get(META_RAFT_APPLIED).map_err(ScmError::db)? {
            Some(v) => decode("raft applied state", v.value().as_bytes()),
            None => Ok(Applied::default()),
        }
    }

    /// Applies the batches of committed entries in one durable transaction and records
    /// `applied` with them.
    pub fn apply(&self, batches: &[&Batch], applied: &Applied) -> Result<(), ScmError> {
        let tx = self.db.begin_write().map_err(ScmError::db)?;
        for b in batches {
            write_batch(&tx, b)?;
        }
        set_applied(&tx, applied)?;
        tx.commit().map_err(ScmError::db)?;
        Ok(())
    }

    /// Writes every row to `out` (see the module doc) from one read transaction; answers
    /// the applied state of that cut and the bytes written.
    pub fn export(&self, out: &mut dyn Write) -> Result<(Applied, u64), ScmError> {
        let tx = self.db.begin_read().map_err(ScmError::db)?;
        let applied: Applied = match tx
            .open_table(META)
            .map_err(ScmError::db)?
            .get(META_RAFT_APPLIED)
            .map_err(ScmError::db)?
        {
            Some(v) => decode("raft applied state", v.value().as_bytes())?,
            None => Applied::default(),
        };
        let mut n = 0u64;
        let mut line = |row: &serde_json::Value| -> Result<(), ScmError> {
            let mut bytes = encode(row);
            bytes.push(b'\n');
            out.write_all(&bytes).map_err(|source| ScmError::Io {
                what: "writing an SCM snapshot".into(),
                source,
            })?;
            n += bytes.len() as u64;
            Ok(())
        };
        line(&serde_json::to_value(&applied).map_err(corrupt_json)?)?;
        let raw = |v: &[u8]| -> Result<serde_json::Value, ScmError> {
            serde_json::from_slice(v).map_err(corrupt_json)
        };
        let t = tx.open_table(META).map_err(ScmError::db)?;
        for row in t.iter().map_err(ScmError::db)? {
            let (k, v) = row.map_err(ScmError::db)?;
            if k.value() != META_RAFT_APPLIED {
                line(&serde_json::json!(["meta", k.value(), v.value()]))?;
            }
        }
        let t = tx.open_table(SEQUENCES).map_err(ScmError::db)?;
        for row in t.iter().map_err(ScmError::db)? {
            let (k, v) = row.map_err(ScmError::db)?;
            line(&serde_json::json!(["sequences", k.value(), v.value()]))?;
        }
        for (name, def) in [("datanodes", DATANODES), ("pipelines", PIPELINES)] {
            let t = tx.open_table(def).map_err(ScmError::db)?;
            for row in t.iter().map_err(ScmError::db)? {
                let (k, v) = row.map_err(ScmError::db)?;
                line(&serde_json::json!([name, k.value(), raw(v.value())?]))?;
            }
        }
        for (name, def) in [("containers", CONTAINERS), ("deleted_blocks", DELETE_LOG)] {
            let t = tx.open_table(def).map_err(ScmError::db)?;
            for row in t.iter().map_err(ScmError::db)? {
                let (k, v) = row.map_err(ScmError::db)?;
                line(&serde_json::json!([name, k.value(), raw(v.value())?]))?;
            }
        }
        Ok((applied, n))
    }

    /// Replaces the whole state with a snapshot of `len` bytes that [`Self::export`] wrote,
    /// and records `applied`: one transaction, so a damaged snapshot changes nothing.
    pub fn install(
        &self,
        applied: &Applied,
        input: &mut dyn BufRead,
        len: u64,
    ) -> Result<(), ScmError> {
        let bad = |m: String| ScmError::Corrupt(format!("SCM snapshot: {m}"));
        let tx = self.db.begin_write().map_err(ScmError::db)?;
        {
            let mut meta = tx.open_table(META).map_err(ScmError::db)?;
            meta.retain(|_, _| false).map_err(ScmError::db)?;
            let mut seqs = tx.open_table(SEQUENCES).map_err(ScmError::db)?;
            seqs.retain(|_, _| false).map_err(ScmError::db)?;
            let mut dns = tx.open_table(DATANODES).map_err(ScmError::db)?;
            dns.retain(|_, _| false).map_err(ScmError::db)?;
            let mut pls = tx.open_table(PIPELINES).map_err(ScmError::db)?;
            pls.retain(|_, _| false).map_err(ScmError::db)?;
            let mut cts = tx.open_table(CONTAINERS).map_err(ScmError::db)?;
            cts.retain(|_, _| false).map_err(ScmError::db)?;
            let mut dels = tx.open_table(DELETE_LOG).map_err(ScmError::db)?;
            dels.retain(|_, _| false).map_err(ScmError::db)?;

            let mut left = len;
            let mut buf = Vec::new();
            let mut first = true;
            while left > 0 {
                buf.clear();
                let n = Read::take(&mut *input, left.min(MAX_SNAPSHOT_LINE))
                    .read_until(b'\n', &mut buf)
                    .map_err(|source| ScmError::Io {
                        what: "reading an SCM snapshot".into(),
                        source,
                    })?;
                if n == 0 || buf.last() != Some(&b'\n') {
                    return Err(bad(format!(
                        "truncated or over-long line with {left} bytes left"
                    )));
                }
                left -= n as u64;
                if first {
                    // The exporter's own applied state; the caller's `applied` is recorded.
                    first = false;
                    continue;
                }
                let (table, key, value): (String, serde_json::Value, serde_json::Value) =
                    serde_json::from_slice(&buf).map_err(|e| bad(e.to_string()))?;
                let key_str = || {
                    key.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("{table}: key {key} is not a string")))
                };
                let key_u64 = || {
                    key.as_u64()
                        .ok_or_else(|| bad(format!("{table}: key {key} is not a number")))
                };
                match table.as_str() {
                    "meta" => {
                        let v = value.as_str().ok_or_else(|| bad("meta value".into()))?;
                        meta.insert(key_str()?.as_str(), v).map_err(ScmError::db)?;
                    }
                    "sequences" => {
                        let v = value.as_u64().ok_or_else(|| bad("sequence value".into()))?;
                        seqs.insert(key_str()?.as_str(), v).map_err(ScmError::db)?;
                    }
                    "datanodes" => {
                        dns.insert(key_str()?.as_str(), encode(&value).as_slice())
                            .map_err(ScmError::db)?;
                    }
                    "pipelines" => {
                        pls.insert(key_str()?.as_str(), encode(&value).as_slice())
                            .map_err(ScmError::db)?;
                    }
                    "containers" => {
                        cts.insert(key_u64()?, encode(&value).as_slice())
                            .map_err(ScmError::db)?;
                    }
                    "deleted_blocks" => {
                        dels.insert(key_u64()?, encode(&value).as_slice())
                            .map_err(ScmError::db)?;
                    }
                    other => {
                        return Err(bad(format!(
                            "unknown table {other} (known: {TABLE_NAMES:?})"
                        )));
                    }
                }
            }
            if first {
                return Err(bad("empty".into()));
            }
        }
        set_applied(&tx, applied)?;
        tx.commit().map_err(ScmError::db)?;
        Ok(())
    }
}

fn corrupt_json(e: serde_json::Error) -> ScmError {
    ScmError::Corrupt(format!("SCM record: {e}"))
}

fn set_applied(tx: &redb::WriteTransaction, applied: &Applied) -> Result<(), ScmError> {
    let json = String::from_utf8(encode(applied)).map_err(|e| ScmError::Corrupt(e.to_string()))?;
    tx.open_table(META)
        .map_err(ScmError::db)?
        .insert(META_RAFT_APPLIED, json.as_str())
        .map_err(ScmError::db)?;
    Ok(())
}

fn write_batch(tx: &redb::WriteTransaction, batch: &Batch) -> Result<(), ScmError> {
    if let Some(id) = &batch.cluster_id {
        let mut meta = tx.open_table(META).map_err(ScmError::db)?;
        // The first cluster id stays: a replayed or raced second one must not replace it.
        if meta.get(META_CLUSTER_ID).map_err(ScmError::db)?.is_none() {
            meta.insert(META_CLUSTER_ID, id.as_str())
                .map_err(ScmError::db)?;
        }
    }
    if !batch.secret_keys.is_empty() || !batch.removed_secret_keys.is_empty() {
        let mut meta = tx.open_table(META).map_err(ScmError::db)?;
        for k in &batch.secret_keys {
            let json =
                String::from_utf8(encode(k)).map_err(|e| ScmError::Corrupt(e.to_string()))?;
            meta.insert(
                format!("{META_SECRET_KEY_PREFIX}{}", k.id).as_str(),
                json.as_str(),
            )
            .map_err(ScmError::db)?;
        }
        for id in &batch.removed_secret_keys {
            meta.remove(format!("{META_SECRET_KEY_PREFIX}{id}").as_str())
                .map_err(ScmError::db)?;
        }
    }
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
        let current = t
            .get(name.as_str())
            .map_err(ScmError::db)?
            .map(|v| v.value());
        if current.is_none_or(|c| c < *value) {
            t.insert(name.as_str(), *value).map_err(ScmError::db)?;
        }
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
    Ok(())
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
        let store = Store::open(dir.path()).expect("open");
        let loaded = store.load().expect("load");
        assert!(loaded.cluster_id.is_empty(), "set by the first leader");
        assert_eq!(loaded.next_container_id, 1);
        let batch = Batch {
            cluster_id: Some("CID-1".into()),
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
            sequences: vec![
                (SEQ_CONTAINER_ID.into(), 2),
                (SEQ_LOCAL_ID_LIMIT.into(), 10_001),
            ],
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
            secret_keys: vec![ozone_common::token::SecretKey {
                id: "k1".into(),
                created_ms: 1,
                expires_ms: 2,
                key: vec![7; 32],
            }],
            removed_secret_keys: vec![],
        };
        store.write(&batch).expect("write");
        // A second cluster id does not replace the first; a sequence never moves back.
        store
            .write(&Batch {
                cluster_id: Some("CID-2".into()),
                sequences: vec![(SEQ_LOCAL_ID_LIMIT.into(), 5)],
                ..Batch::default()
            })
            .expect("write");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        let loaded = store.load().expect("load");
        assert_eq!(loaded.cluster_id, "CID-1");
        assert_eq!(loaded.secret_keys, batch.secret_keys);
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
        // A snapshot carries every row to another store, replacing what it held.
        let mut snap = Vec::new();
        let (applied, n) = store.export(&mut snap).expect("export");
        assert_eq!(n, snap.len() as u64);
        assert_eq!(applied, Applied::default());
        let other_dir = tempfile::tempdir().expect("temp dir");
        let other = Store::open(other_dir.path()).expect("open");
        other
            .write(&Batch {
                pipelines: vec![PipelineRecord {
                    id: "stale".into(),
                    ..batch.pipelines[0].clone()
                }],
                ..Batch::default()
            })
            .expect("write");
        let wanted = Applied {
            last_applied: Some(openraft::LogId::new(
                openraft::CommittedLeaderId::new(3, 1),
                42,
            )),
            ..Applied::default()
        };
        other
            .install(&wanted, &mut snap.as_slice(), n)
            .expect("install");
        assert_eq!(other.applied().expect("applied"), wanted);
        let copied = other.load().expect("load");
        assert_eq!(copied.cluster_id, "CID-1");
        assert_eq!(
            copied.secret_keys, batch.secret_keys,
            "snapshots carry the keys"
        );
        assert_eq!(copied.datanodes, loaded.datanodes);
        assert_eq!(copied.pipelines, loaded.pipelines, "the stale row is gone");
        assert_eq!(copied.containers, loaded.containers);
        assert_eq!(copied.local_id_limit, 10_001);
        assert_eq!(copied.delete_log, loaded.delete_log);
        assert_eq!(copied.delete_done, loaded.delete_done);
        // A damaged snapshot changes nothing.
        let cut = &snap[..snap.len() - 3];
        assert!(
            other
                .install(&Applied::default(), &mut &cut[..], cut.len() as u64)
                .is_err()
        );
        assert_eq!(other.applied().expect("applied"), wanted);

        store
            .write(&Batch {
                removed_pipelines: vec!["p1".into()],
                ..Batch::default()
            })
            .expect("remove");
        drop(store);
        let loaded = Store::open(dir.path())
            .expect("reopen")
            .load()
            .expect("load");
        assert!(loaded.pipelines.is_empty());
    }
}
