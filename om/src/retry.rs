//! The retry cache: a write is applied once even when its client sends it again.
//!
//! As in Ozone, a client names each write with a request id: its client id (one per client
//! instance) and a call id it never reuses, sent in the gRPC metadata keys
//! [`CLIENT_ID_HEADER`] and [`CALL_ID_HEADER`]; a retry of the call (after an unreachable OM, a
//! NOT_LEADER, an OM_UNAVAILABLE) sends the same id. The service puts the id in a task-local
//! ([`scope`]) for the RPC's duration; [`crate::manager::OzoneManager::submit`] wraps the
//! command it replicates in a [`Tracked`] with it.
//!
//! Unlike Ozone's in-memory cache, this one is replicated state: applying a [`Tracked`]
//! command looks the id up in the `retry_cache` table; the first time, the command is applied
//! and its result (success or rejection) recorded under the id in the same transaction; a
//! later time, the recorded result is answered and nothing else changes (blocks a retried
//! OpenKey or AllocateBlock brought from SCM are released). So a CommitKey whose answer was
//! lost when its leader died, retried through the new leader, answers the key it committed
//! rather than KEY_NOT_FOUND. Results are forgotten after
//! `ozone.om.ratis.server.retrycache.timeout`: the leader writes the cutoff into each
//! command, and each recording removes a few results older than it (oldest first, through an
//! index by time), so the table stays bounded by the writes of one timeout.

use std::future::Future;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::command::{OmResponse, RequestId, Tracked};
use crate::error::{OmError, Rejection};
use crate::store::{self, RETRY_CACHE, RETRY_CACHE_TIMES};
use ozone_proto::om::OmStatus;

/// gRPC metadata key of the client id of a write (printable ASCII, at most
/// [`MAX_CLIENT_ID_LEN`] bytes).
pub const CLIENT_ID_HEADER: &str = "x-om-client-id";
/// gRPC metadata key of the call id of a write (decimal u64).
pub const CALL_ID_HEADER: &str = "x-om-call-id";
/// Longest client id accepted.
pub const MAX_CLIENT_ID_LEN: usize = 64;
/// Expired results one recording removes, at most (more than one: the table shrinks after a
/// burst of writes).
const PURGE_PER_RECORD: usize = 4;

tokio::task_local! {
    static REQUEST: RequestId;
}

/// The request id a call carries in its metadata: `None` without one; INVALID_REQUEST when
/// one is malformed.
pub fn from_metadata(md: &tonic::metadata::MetadataMap) -> Result<Option<RequestId>, OmError> {
    let (client, call) = match (md.get(CLIENT_ID_HEADER), md.get(CALL_ID_HEADER)) {
        (None, None) => return Ok(None),
        (Some(a), Some(b)) => (a, b),
        _ => {
            return Err(OmError::invalid(format!(
                "{CLIENT_ID_HEADER} and {CALL_ID_HEADER} go together"
            )));
        }
    };
    let client_id = client
        .to_str()
        .ok()
        .filter(|c| !c.is_empty() && c.len() <= MAX_CLIENT_ID_LEN)
        .ok_or_else(|| {
            OmError::invalid(format!(
                "{CLIENT_ID_HEADER} must be 1 to {MAX_CLIENT_ID_LEN} printable characters"
            ))
        })?;
    let call_id = call
        .to_str()
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or_else(|| OmError::invalid(format!("{CALL_ID_HEADER} must be a number")))?;
    Ok(Some(RequestId {
        client_id: client_id.to_string(),
        call_id,
    }))
}

/// Runs `f` (one RPC) with `id` as the request id its write is submitted under.
pub async fn scope<F: Future>(id: Option<RequestId>, f: F) -> F::Output {
    match id {
        Some(id) => REQUEST.scope(id, f).await,
        None => f.await,
    }
}

/// The request id of the RPC this task serves, if it has one.
pub(crate) fn current() -> Option<RequestId> {
    REQUEST.try_with(Clone::clone).ok()
}

/// A recorded result.
#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    /// The command's name: the same id on another operation is refused.
    op: String,
    time_ms: u64,
    response: OmResponse,
}

fn cache_key(id: &RequestId) -> Vec<u8> {
    [
        id.client_id.as_bytes(),
        b"\0",
        id.call_id.to_be_bytes().as_slice(),
    ]
    .concat()
}

fn time_key(time_ms: u64, cache_key: &[u8]) -> Vec<u8> {
    [time_ms.to_be_bytes().as_slice(), cache_key].concat()
}

/// The result recorded for `t`'s request id, if any (a rejection when the id was used for
/// another operation).
pub(crate) fn lookup(txn: &WriteTransaction, t: &Tracked) -> Result<Option<OmResponse>, OmError> {
    let table = txn.open_table(RETRY_CACHE)?;
    let Some(rec) = store::get::<Recorded>(&table, "retry_cache", &cache_key(&t.request))? else {
        return Ok(None);
    };
    let op = t.command.name();
    if rec.op != op {
        return Ok(Some(OmResponse::Rejected(Rejection::new(
            OmStatus::InvalidRequest,
            format!(
                "request id {}/{} was used for {} before, not {op}",
                t.request.client_id, t.request.call_id, rec.op
            ),
        ))));
    }
    Ok(Some(rec.response))
}

/// Records `response` as the result of `t`'s request and forgets a few results older than
/// its cutoff.
pub(crate) fn record(
    txn: &WriteTransaction,
    t: &Tracked,
    response: &OmResponse,
) -> Result<(), OmError> {
    let mut cache = txn.open_table(RETRY_CACHE)?;
    let mut times = txn.open_table(RETRY_CACHE_TIMES)?;
    let mut expired = Vec::new();
    for item in times.iter()?.take(PURGE_PER_RECORD) {
        let (k, _) = item?;
        let k = k.value();
        let time = k
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| OmError::Corrupt {
                table: "retry_cache_by_time",
                message: "key shorter than 8 bytes".into(),
            })?;
        if time >= t.expire_before_ms {
            break;
        }
        expired.push(k.to_vec());
    }
    for k in expired {
        times.remove(k.as_slice())?;
        cache.remove(&k[8..])?;
    }
    let key = cache_key(&t.request);
    let rec = Recorded {
        op: t.command.name().to_string(),
        time_ms: t.now_ms,
        response: response.clone(),
    };
    // Not there: the state machine looked it up first in the same transaction.
    cache.insert(key.as_slice(), store::encode(&rec).as_slice())?;
    times.insert(time_key(t.now_ms, &key).as_slice(), [].as_slice())?;
    Ok(())
}
