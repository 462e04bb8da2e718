//! `ozone freon` generators against the shared cluster: `omkg` (empty keys through OM),
//! `ockg` (keys with data through the Ozone client), `s3kg` (objects through S3) and
//! `list-probe`; every key they report is there (`ozone sh key list`, which pages through OM),
//! and the summary block parses.

use std::collections::BTreeMap;

use ozone_tests::{Cluster, ok};

/// The `Name: value` lines of a freon summary.
fn summary(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[track_caller]
fn check_summary(out: &str, generator: &str, n: u64) {
    let s = summary(out);
    assert_eq!(s["Generator"], generator, "{out}");
    assert_eq!(s["Successful executions"], n.to_string(), "{out}");
    assert_eq!(s["Failures"], "0", "{out}");
    let f = |k: &str| -> f64 { s[k].parse().unwrap_or_else(|e| panic!("{k}: {e}: {out}")) };
    assert!(f("Throughput (ops/s)") > 0.0, "{out}");
    let (p50, p95, p99, max) = (
        f("Latency p50 (ms)"),
        f("Latency p95 (ms)"),
        f("Latency p99 (ms)"),
        f("Latency max (ms)"),
    );
    assert!(0.0 < p50 && p50 <= p95 && p95 <= p99 && p99 <= max, "{out}");
    assert!(f("Total execution time (sec)") > 0.0, "{out}");
}

/// `ozone sh key list` of a bucket: (name, dataSize) of each key.
fn keys(c: &Cluster, bucket: &str, extra: &[&str]) -> Vec<(String, u64)> {
    let mut args = vec!["sh", "key", "list", bucket];
    args.extend_from_slice(extra);
    let out = ok(c.ozone(&args));
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["name"].as_str().unwrap().to_string(),
                k["dataSize"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn names(n: u64, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("{prefix}/{i}")).collect();
    v.sort();
    v
}

#[test]
fn omkg_writes_empty_keys_through_om_and_key_list_pages() {
    let c = Cluster::shared();
    let out = ok(c.ozone(&[
        "freon", "omkg", "-n", "50", "-t", "4", "-p", "om", "-v", "freonvol", "-b", "omkg",
    ]));
    check_summary(&out, "omkg", 50);
    let listed = keys(&c, "/freonvol/omkg", &["-l", "1000"]);
    assert_eq!(
        listed.iter().map(|k| k.0.clone()).collect::<Vec<_>>(),
        names(50, "om")
    );
    assert!(listed.iter().all(|k| k.1 == 0), "{listed:?}");
    // The default length is Ozone's 100; -l, -s and -p page.
    assert_eq!(keys(&c, "/freonvol/omkg", &[]).len(), 50);
    let first = keys(&c, "/freonvol/omkg", &["-l", "20"]);
    assert_eq!(first.len(), 20);
    let rest = keys(&c, "/freonvol/omkg", &["-l", "1000", "-s", &first[19].0]);
    assert_eq!(rest.len(), 30);
    assert_eq!(rest[0].0, names(50, "om")[20]);
    assert_eq!(keys(&c, "/freonvol/omkg", &["-p", "om/1"]).len(), 11);
    // A second run into the same volume and bucket (which now exist) adds its keys.
    let out = ok(c.ozone(&[
        "freon", "omkg", "-n", "5", "-p", "again", "-v", "freonvol", "-b", "omkg",
    ]));
    check_summary(&out, "omkg", 5);
    assert_eq!(keys(&c, "/freonvol/omkg", &["-l", "1000"]).len(), 55);
}

#[test]
fn ockg_writes_keys_with_data_through_the_ozone_client() {
    let c = Cluster::shared();
    let out = ok(c.ozone(&[
        "freon",
        "ockg",
        "-n",
        "20",
        "-t",
        "4",
        "-p",
        "oc",
        "-s",
        "4KB",
        "-v",
        "freonvol2",
        "-b",
        "ockg",
    ]));
    check_summary(&out, "ockg", 20);
    assert!(summary(&out).contains_key("Throughput (MiB/s)"), "{out}");
    let listed = keys(&c, "/freonvol2/ockg", &["-l", "1000"]);
    assert_eq!(
        listed.iter().map(|k| k.0.clone()).collect::<Vec<_>>(),
        names(20, "oc")
    );
    assert!(listed.iter().all(|k| k.1 == 4096), "{listed:?}");
    let work = tempfile::tempdir().unwrap();
    let back = work.path().join("k");
    ok(c.ozone(&[
        "sh",
        "key",
        "get",
        "/freonvol2/ockg/oc/7",
        back.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::metadata(&back).unwrap().len(), 4096);
}

#[test]
fn s3kg_writes_objects_through_s3_and_list_probe_times_pages() {
    let c = Cluster::shared();
    let endpoint = format!("http://{}", c.s3_addr());
    // With the test credentials: the S3 generators sign their requests with them.
    let out = ok(c.ozone_s3(&[
        "freon",
        "s3kg",
        "-e",
        &endpoint,
        "-n",
        "30",
        "-t",
        "4",
        "-p",
        "s3",
        "-s",
        "1KB",
        "-b",
        "freon-s3kg",
    ]));
    check_summary(&out, "s3kg", 30);
    let listed = keys(&c, "/s3v/freon-s3kg", &["-l", "1000"]);
    assert_eq!(
        listed.iter().map(|k| k.0.clone()).collect::<Vec<_>>(),
        names(30, "s3")
    );
    assert!(listed.iter().all(|k| k.1 == 1024), "{listed:?}");

    let out = ok(c.ozone_s3(&[
        "freon",
        "list-probe",
        "-e",
        &endpoint,
        "-b",
        "freon-s3kg",
        "--max-keys",
        "10",
        "--samples",
        "3",
    ]));
    let s = summary(&out);
    assert_eq!(s["Keys"], "30", "{out}");
    assert_eq!(s["Pages"], "3 (max-keys 10)", "{out}");
    let page = |kind: &str| -> (f64, f64, u64) {
        let line = s
            .get(&format!("Page {kind}"))
            .unwrap_or_else(|| panic!("no {kind} in {out}"));
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in {line}"))
                .trim_end_matches("ms")
                .to_string()
        };
        (
            field("p50=").parse().unwrap(),
            field("p95=").parse().unwrap(),
            field("entries=").parse().unwrap(),
        )
    };
    for pos in ["start", "middle", "end"] {
        let (p50, p95, entries) = page(&format!("v2-{pos}"));
        assert!(0.0 < p50 && p50 <= p95, "{out}");
        assert_eq!(entries, 10, "v2-{pos}: {out}");
        assert_eq!(page(&format!("v1-{pos}")).2, 10, "v1-{pos}: {out}");
        // Every key is `s3/<n>`: with the `/` delimiter the page is one common prefix.
        assert_eq!(page(&format!("v2-delimiter-{pos}")).2, 1, "{out}");
    }
    assert_eq!(page("uploads-start").2, 0, "{out}");
    assert!(page("buckets-start").2 >= 1, "{out}");
}
