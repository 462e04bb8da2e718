//! ListKeys over ~2,500 keys in folders: prefix, delimiter, pagination, common-prefix skipping.

use std::collections::BTreeSet;

use om_client::OmClient;
use om_client::proto::*;

use crate::common::*;

fn all_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for d in 0..20 {
        for f in 0..100 {
            keys.push(format!("dir{d:02}/file{f:03}"));
        }
    }
    for t in 0..450 {
        keys.push(format!("top{t:03}"));
    }
    for s in 0..50 {
        keys.push(format!("dir03/sub/deep{s:02}"));
    }
    keys.sort();
    keys
}

/// What S3 returns for the whole listing: keys and common prefixes, in order.
fn expected(keys: &[String], prefix: &str, delimiter: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys.iter().filter(|k| k.starts_with(prefix)) {
        let rest = &k[prefix.len()..];
        let item = match rest.find(delimiter).filter(|_| !delimiter.is_empty()) {
            Some(i) => format!("{prefix}{}", &rest[..i + delimiter.len()]),
            None => k.clone(),
        };
        if out.last() != Some(&item) {
            out.push(item);
        }
    }
    out
}

/// Pages through a listing; returns every key and prefix in order and the page count.
async fn list_all(
    om: &OmClient,
    prefix: &str,
    delimiter: &str,
    max_keys: u32,
) -> (Vec<String>, usize) {
    let mut items = Vec::new();
    let mut start_after = String::new();
    let mut pages = 0;
    loop {
        let page = om
            .list_keys(ListKeysRequest {
                volume: VOL.into(),
                bucket: "list".into(),
                prefix: prefix.into(),
                start_after: start_after.clone(),
                delimiter: delimiter.into(),
                max_keys,
            })
            .await
            .expect("list keys");
        pages += 1;
        let n = page.keys.len() + page.common_prefixes.len();
        assert!(n <= max_keys.clamp(1, 1000) as usize || max_keys == 0);
        assert!(page.keys.iter().all(|k| k.locations.is_empty()));
        let mut merged: Vec<String> = page
            .keys
            .iter()
            .map(|k| k.key.clone())
            .chain(page.common_prefixes.iter().cloned())
            .collect();
        merged.sort();
        if let Some(last) = merged.last() {
            assert_eq!(&page.next_start_after, last);
        }
        items.extend(merged);
        if !page.truncated {
            break;
        }
        assert!(n > 0, "a truncated page returns something");
        start_after = page.next_start_after;
    }
    (items, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_keys_with_prefix_delimiter_and_pages() {
    let c = cluster().await;
    let om = &c.client;
    create_bucket(om, "list", "alice").await;
    let keys = all_keys();
    assert_eq!(keys.len(), 2500);

    // Write them with a few writers in parallel.
    let chunks: Vec<Vec<String>> = keys
        .chunks(keys.len() / 4 + 1)
        .map(|c| c.to_vec())
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let om = om.clone();
        tasks.push(tokio::spawn(async move {
            for k in chunk {
                put_key(&om, "list", &k, 1, "e").await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }

    // No delimiter: every key once, pages of 1000 (0 and >1000 mean 1000).
    for max in [0, 1000, 5000] {
        let (items, pages) = list_all(om, "", "", max).await;
        assert_eq!(items, keys);
        assert_eq!(pages, 3);
    }

    // Delimiter at the root, small pages: 20 folders + 450 keys, each exactly once.
    let want = expected(&keys, "", "/");
    assert_eq!(want.len(), 470);
    for max in [7, 20, 1000] {
        let (items, _) = list_all(om, "", "/", max).await;
        assert_eq!(items, want, "max {max}");
        let unique: BTreeSet<_> = items.iter().collect();
        assert_eq!(unique.len(), items.len());
    }

    // Inside a folder with a sub-folder.
    let (items, _) = list_all(om, "dir03/", "/", 30).await;
    assert_eq!(items, expected(&keys, "dir03/", "/"));
    assert_eq!(items.len(), 101);
    assert!(items.contains(&"dir03/sub/".to_string()));

    // A prefix that is not a folder boundary.
    let (items, _) = list_all(om, "dir1", "/", 3).await;
    assert_eq!(
        items,
        (10..20).map(|d| format!("dir{d}/")).collect::<Vec<_>>()
    );
    let (items, _) = list_all(om, "top04", "", 4).await;
    assert_eq!(items.len(), 10);

    // start_after equal to a common prefix skips every key under it.
    let page = om
        .list_keys(ListKeysRequest {
            volume: VOL.into(),
            bucket: "list".into(),
            start_after: "dir05/".into(),
            delimiter: "/".into(),
            max_keys: 2,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.common_prefixes, ["dir06/", "dir07/"]);
    assert!(page.truncated);
    assert_eq!(page.next_start_after, "dir07/");
    // Without a delimiter it is just a position.
    let page = om
        .list_keys(ListKeysRequest {
            volume: VOL.into(),
            bucket: "list".into(),
            start_after: "dir05/".into(),
            max_keys: 1,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.keys[0].key, "dir05/file000");

    // The last page is not truncated, and an empty listing is fine.
    let page = om
        .list_keys(ListKeysRequest {
            volume: VOL.into(),
            bucket: "list".into(),
            prefix: "top449".into(),
            max_keys: 1,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.keys.len(), 1);
    assert!(!page.truncated);
    let page = om
        .list_keys(ListKeysRequest {
            volume: VOL.into(),
            bucket: "list".into(),
            prefix: "zzz".into(),
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(page.keys.is_empty() && page.common_prefixes.is_empty() && !page.truncated);
    c.om.stop().await.expect("stop");
}
