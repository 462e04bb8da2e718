//! The block-deleting service hands released blocks to SCM, then purges exactly those records.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ozone_om::deletion;
use ozone_om::scm::ScmBlocks;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_blocks_go_to_scm_then_leave_the_table() {
    let c = cluster().await;
    let om = &c.client;
    create_bucket(om, "gone", "alice").await;
    let k1 = put_key(om, "gone", "a", 3 * MIB / 2, "e1").await;
    let k2 = put_key(om, "gone", "b", MIB, "e2").await;
    om.delete_key(VOL, "gone", "a").await.expect("delete");
    // Overwriting releases the old version's blocks too.
    put_key(om, "gone", "b", MIB, "e3").await;
    let mut released: Vec<u64> = local_ids(&k1).into_iter().chain(local_ids(&k2)).collect();
    released.sort();
    let before = deleted_blocks(&c.om);
    assert!(released.iter().all(|b| before.contains(b)), "{before:?}");

    let scm = ScmBlocks::new(
        &[c.scm.addr.to_string()],
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
    .expect("scm client");
    // SCM refusing: nothing is purged.
    c.scm.scm.safe_mode.store(true, Ordering::SeqCst);
    assert!(deletion::round(c.om.manager(), &scm, 1000).await.is_err());
    assert_eq!(deleted_blocks(&c.om), before);
    c.scm.scm.safe_mode.store(false, Ordering::SeqCst);

    // One record per round with limit 1; then the rest.
    assert_eq!(
        deletion::round(c.om.manager(), &scm, 1)
            .await
            .expect("round"),
        1
    );
    assert!(
        deletion::round(c.om.manager(), &scm, 1000)
            .await
            .expect("round")
            >= 1
    );
    assert!(deleted_blocks(&c.om).is_empty());
    let mut sent: Vec<u64> = c
        .scm
        .scm
        .deleted
        .lock()
        .expect("lock")
        .iter()
        .flat_map(|(_, ids)| ids.clone())
        .collect();
    sent.sort();
    assert_eq!(sent, before);
    assert_eq!(
        deletion::round(c.om.manager(), &scm, 1000)
            .await
            .expect("idle"),
        0
    );
}
