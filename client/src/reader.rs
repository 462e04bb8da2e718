//! Reading a key: the blocks overlapping the range are streamed in order, each verified and
//! failed over by the datanode client between the replicas recorded with the key; when none of
//! them can serve it, SCM is asked once where the container's replicas are now (re-replication
//! may have moved them) and the read goes on there.
//!
//! A block OM recorded a checksum for is read only from replicas whose chunk checksums match
//! it (`datanode_client::read_block_checked`); keys committed before OM kept them are read as
//! before. The stream never ends short: if the blocks yield fewer bytes than the range (a
//! read cut by a delete), it ends with an error.

use bytes::Bytes;
use datanode_client::{BlockRecord, DatanodeClientError, DatanodeClients};
use futures::{Stream, StreamExt};
use ozone_proto::hdds::{BlockId, DatanodeDetails};
use ozone_proto::om::KeyInfo;
use ozone_proto::scm::ContainerReplica;
use scm_client::ScmClient;

/// Streams bytes `[start, end)` of a key from its blocks.
pub fn read_key(
    dn: &DatanodeClients,
    scm: Option<ScmClient>,
    info: &KeyInfo,
    start: u64,
    end: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + 'static {
    let mut segments = Vec::new();
    for loc in &info.locations {
        let (lo, hi) = (loc.offset, loc.offset + loc.length);
        if hi <= start || lo >= end || loc.length == 0 {
            continue;
        }
        let from = start.max(lo) - lo;
        let to = end.min(hi) - lo;
        let nodes = loc
            .pipeline
            .as_ref()
            .map(|p| p.nodes.clone())
            .unwrap_or_default();
        let record = (!loc.block_checksum.is_empty()).then(|| BlockRecord {
            length: loc.length,
            digest: loc.block_checksum.clone(),
        });
        if let Some(block_id) = loc.block_id {
            let token = Bytes::from(loc.token.clone());
            segments.push((nodes, (block_id, token), from, to - from, record));
        }
    }
    let dn = dn.clone();
    let blocks = futures::stream::iter(segments)
        .map(move |(nodes, block, offset, len, record)| {
            read_segment(dn.clone(), scm.clone(), nodes, block, offset, len, record)
        })
        .flatten();
    never_short(blocks, end.saturating_sub(start))
}

/// `inner`, ending with an error instead of quietly when it yields fewer than `expected` bytes.
fn never_short<S>(inner: S, expected: u64) -> impl Stream<Item = Result<Bytes, std::io::Error>>
where
    S: Stream<Item = Result<Bytes, std::io::Error>>,
{
    let inner = Box::pin(inner);
    futures::stream::unfold(
        (inner, 0u64, false),
        move |(mut inner, got, done)| async move {
            if done {
                return None;
            }
            match inner.next().await {
                Some(Ok(bytes)) => {
                    let got = got + bytes.len() as u64;
                    Some((Ok(bytes), (inner, got, false)))
                }
                Some(Err(e)) => Some((Err(e), (inner, got, true))),
                None if got < expected => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the key's blocks gave {got} bytes of {expected}"),
                    )),
                    (inner, got, true),
                )),
                None => None,
            }
        },
    )
}

type BlockStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, DatanodeClientError>> + Send>>;

/// One block's part of a read.
struct Segment {
    dn: DatanodeClients,
    scm: Option<ScmClient>,
    nodes: Vec<DatanodeDetails>,
    block_id: BlockId,
    /// The block token OM gave with the location (security on).
    token: Bytes,
    pos: u64,
    end: u64,
    inner: Option<BlockStream>,
    refreshed: bool,
    record: Option<BlockRecord>,
}

/// Reads `len` bytes of a block at `offset` from the replicas recorded with the key (the
/// datanode client verifies and fails over between them); if none of them can serve it (they
/// died, or their replicas were replaced), asks SCM once where the container's replicas are now
/// and goes on from there, at the first byte not yet returned.
fn read_segment(
    dn: DatanodeClients,
    scm: Option<ScmClient>,
    nodes: Vec<DatanodeDetails>,
    (block_id, token): (BlockId, Bytes),
    offset: u64,
    len: u64,
    record: Option<BlockRecord>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + 'static {
    let st = Segment {
        token,
        dn,
        scm,
        nodes,
        block_id,
        pos: offset,
        end: offset.saturating_add(len),
        inner: None,
        refreshed: false,
        record,
    };
    futures::stream::unfold(st, |mut st| async move {
        loop {
            if st.pos >= st.end {
                return None;
            }
            if st.inner.is_none() {
                st.inner = Some(Box::pin(datanode_client::read_block_checked(
                    &st.dn,
                    &st.nodes,
                    st.block_id,
                    st.pos,
                    st.end - st.pos,
                    st.record.clone(),
                    st.token.clone(),
                )));
            }
            let next = match st.inner.as_mut() {
                Some(inner) => inner.next().await,
                None => None,
            };
            match next {
                Some(Ok(bytes)) => {
                    st.pos += bytes.len() as u64;
                    return Some((Ok(bytes), st));
                }
                None => return None,
                Some(Err(e)) => {
                    let fresh = match (&st.scm, st.refreshed) {
                        (Some(scm), false) => current_replicas(scm, &st.nodes, st.block_id).await,
                        _ => Vec::new(),
                    };
                    st.refreshed = true;
                    if fresh.is_empty() {
                        st.pos = st.end;
                        return Some((Err(std::io::Error::other(e)), st));
                    }
                    tracing::info!(block = %st.block_id, error = %e, replicas = fresh.len(),
                        "recorded replicas failed; reading from the container's current replicas");
                    st.nodes = fresh;
                    st.inner = None;
                }
            }
        }
    })
}

/// Datanodes SCM says hold a replica of the block's container, other than `tried`, healthy
/// first (see [`healthy_first`]).
async fn current_replicas(
    scm: &ScmClient,
    tried: &[DatanodeDetails],
    block_id: BlockId,
) -> Vec<DatanodeDetails> {
    match scm.get_container(block_id.container_id).await {
        Ok(info) => healthy_first(info.replicas, tried),
        Err(e) => {
            tracing::warn!(block = %block_id, error = %e, "cannot ask SCM for the container's replicas");
            Vec::new()
        }
    }
}

/// The datanodes of `replicas` other than `tried`: the healthy ones (CLOSED, OPEN) first, the
/// others (UNHEALTHY: read as a last resort, every piece still verified) last; SCM's order
/// within each group.
fn healthy_first(
    replicas: Vec<ContainerReplica>,
    tried: &[DatanodeDetails],
) -> Vec<DatanodeDetails> {
    let mut replicas: Vec<ContainerReplica> = replicas
        .into_iter()
        .filter(|r| {
            r.datanode
                .as_ref()
                .is_some_and(|d| !tried.iter().any(|t| t.uuid == d.uuid))
        })
        .collect();
    // Lagging replicas (missing committed blocks) go with the UNHEALTHY ones.
    replicas.sort_by_key(|r| !((r.state == "CLOSED" || r.state == "OPEN") && !r.lagging));
    replicas.into_iter().filter_map(|r| r.datanode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(n: u16, state: &str) -> ContainerReplica {
        ContainerReplica {
            datanode: Some(DatanodeDetails {
                uuid: format!("dn-{n}"),
                host: "127.0.0.1".into(),
                port: 9000 + u32::from(n),
                http_port: 0,
            }),
            state: state.into(),
            used_bytes: 0,
            block_count: 0,
            bcsid: 0,
            lagging: false,
        }
    }

    #[test]
    fn unhealthy_replicas_are_read_last_and_tried_ones_not_again() {
        let replicas = vec![
            replica(1, "UNHEALTHY"),
            replica(2, "CLOSED"),
            replica(3, "CLOSED"),
            replica(4, "UNHEALTHY"),
        ];
        let tried = vec![replica(3, "CLOSED").datanode.unwrap_or_default()];
        let order: Vec<String> = healthy_first(replicas, &tried)
            .into_iter()
            .map(|d| d.uuid)
            .collect();
        assert_eq!(order, vec!["dn-2", "dn-1", "dn-4"]);
    }
}
