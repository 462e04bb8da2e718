//! The aws CLI with its default settings: mb, cp of a 100 MiB file up and back, ls, rm, rb;
//! `aws s3api` for every operation of the object and bucket API (and `aws s3 presign`);
//! and every block replicated on 3 different datanodes.

use std::collections::HashSet;

use ozone_common::config::keys;
use ozone_tests::{Cluster, ClusterOpts, ok, same_file, write_random_file};

#[test]
fn aws_cli_round_trip_and_replicas() {
    // 16 MiB blocks: the 100 MiB upload's 8 MiB parts and the object span many blocks.
    let c = Cluster::start(ClusterOpts {
        set: vec![(keys::OZONE_SCM_BLOCK_SIZE.name().into(), "16MB".into())],
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big.bin");
    let back = work.path().join("back.bin");
    write_random_file(&src, 100 << 20, 42);

    ok(c.aws(&["s3", "mb", "s3://cli-bucket"]));
    let ls = ok(c.aws(&["s3", "ls"]));
    assert!(ls.contains("cli-bucket"), "bucket missing from ls: {ls}");

    ok(c.aws(&[
        "s3",
        "cp",
        src.to_str().unwrap(),
        "s3://cli-bucket/dir/big.bin",
    ]));
    let ls = ok(c.aws(&["s3", "ls", "s3://cli-bucket/dir/"]));
    assert!(
        ls.contains("104857600 big.bin"),
        "object missing from ls: {ls}"
    );
    ok(c.aws(&[
        "s3",
        "cp",
        "s3://cli-bucket/dir/big.bin",
        back.to_str().unwrap(),
    ]));
    assert!(same_file(&src, &back), "downloaded bytes differ");

    // A small object through a single PUT too.
    let small = work.path().join("small.txt");
    std::fs::write(&small, b"hello ozone").unwrap();
    ok(c.aws(&[
        "s3",
        "cp",
        small.to_str().unwrap(),
        "s3://cli-bucket/small.txt",
    ]));
    let out = ok(c.aws(&["s3", "cp", "s3://cli-bucket/small.txt", "-"]));
    assert_eq!(out, "hello ozone");

    // Every container holding data has 3 replicas on 3 different datanodes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let list: serde_json::Value =
            serde_json::from_str(&ok(c.ozone(&["admin", "container", "list", "--json"]))).unwrap();
        let mut all_ok = true;
        let mut checked = 0;
        for container in list.as_array().expect("container list is an array") {
            let id = container["id"].as_u64().expect("container id");
            let info: serde_json::Value = serde_json::from_str(&ok(c.ozone(&[
                "admin",
                "container",
                "info",
                &id.to_string(),
                "--json",
            ])))
            .unwrap();
            let replicas = info["replicas"].as_array().cloned().unwrap_or_default();
            let nodes: HashSet<String> = replicas
                .iter()
                .filter_map(|r| r["datanode"]["uuid"].as_str().map(str::to_string))
                .collect();
            if replicas
                .iter()
                .any(|r| r["block_count"].as_u64().unwrap_or(0) > 0)
            {
                checked += 1;
                if nodes.len() != 3 || replicas.len() != 3 {
                    all_ok = false;
                }
            }
        }
        if all_ok && checked > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "containers without 3 replicas on 3 datanodes: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    ok(c.aws(&["s3", "rm", "s3://cli-bucket/dir/big.bin"]));
    ok(c.aws(&["s3", "rm", "s3://cli-bucket/small.txt"]));
    let ls = ok(c.aws(&["s3", "ls", "s3://cli-bucket/"]));
    assert!(ls.trim().is_empty(), "bucket not empty after rm: {ls}");
    ok(c.aws(&["s3", "rb", "s3://cli-bucket"]));
    let ls = ok(c.aws(&["s3", "ls"]));
    assert!(
        !ls.contains("cli-bucket"),
        "bucket still listed after rb: {ls}"
    );
}

/// The MD5 of `data` in hex (coreutils' md5sum).
fn md5_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Runs `aws s3api ...` (JSON output) and parses what it printed (`{}` when nothing).
fn s3api(c: &Cluster, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["s3api", "--output", "json"];
    all.extend_from_slice(args);
    let out = ok(c.aws(&all));
    if out.trim().is_empty() {
        return serde_json::json!({});
    }
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed {out:?}: {e}"))
}

/// Runs `aws s3api ...` that must fail with S3 error `code`.
#[track_caller]
fn s3api_fails(c: &Cluster, args: &[&str], code: &str) {
    let mut all = vec!["s3api"];
    all.extend_from_slice(args);
    let out = c.aws(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(stderr.contains(&format!("({code})")), "{args:?}: {stderr}");
}

#[test]
fn aws_s3api_every_operation() {
    let c = Cluster::shared();
    let work = tempfile::tempdir().unwrap();
    let path = |name: &str| work.path().join(name).to_str().unwrap().to_string();
    let b = "api-cli";
    std::fs::write(path("small"), b"hello s3api").unwrap();
    write_random_file(&work.path().join("part1"), 5 << 20, 9);
    let md5 = |p: &str| format!("\"{}\"", md5_hex(&std::fs::read(p).unwrap()));

    // Buckets
    s3api(&c, &["create-bucket", "--bucket", b]);
    s3api(&c, &["head-bucket", "--bucket", b]);
    let list = s3api(&c, &["list-buckets"]);
    assert!(
        list["Buckets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["Name"] == b),
        "{list}"
    );
    assert_eq!(list["Owner"]["ID"], "testuser", "{list}");
    let loc = s3api(&c, &["get-bucket-location", "--bucket", b]);
    assert!(loc["LocationConstraint"].is_null(), "{loc}");
    let ver = s3api(&c, &["get-bucket-versioning", "--bucket", b]);
    assert!(ver.get("Status").is_none(), "{ver}");

    // Objects
    let put = s3api(
        &c,
        &[
            "put-object",
            "--bucket",
            b,
            "--key",
            "obj",
            "--body",
            &path("small"),
            "--content-type",
            "text/plain",
            "--metadata",
            "color=blue",
            "--tagging",
            "a=1&b=2",
        ],
    );
    assert_eq!(put["ETag"], md5(&path("small")), "{put}");
    s3api_fails(
        &c,
        &[
            "put-object",
            "--bucket",
            b,
            "--key",
            "obj",
            "--body",
            &path("small"),
            "--if-none-match",
            "*",
        ],
        "PreconditionFailed",
    );
    let cond = s3api(
        &c,
        &[
            "put-object",
            "--bucket",
            b,
            "--key",
            "fresh",
            "--body",
            &path("small"),
            "--if-none-match",
            "*",
        ],
    );
    assert_eq!(cond["ETag"], put["ETag"], "{cond}");
    let head = s3api(&c, &["head-object", "--bucket", b, "--key", "obj"]);
    assert_eq!(head["ContentLength"], 11, "{head}");
    assert_eq!(head["ContentType"], "text/plain", "{head}");
    assert_eq!(head["Metadata"]["color"], "blue", "{head}");
    let get = s3api(
        &c,
        &["get-object", "--bucket", b, "--key", "obj", &path("got")],
    );
    assert_eq!(get["TagCount"], 2, "{get}");
    assert_eq!(std::fs::read(path("got")).unwrap(), b"hello s3api");
    let attrs = s3api(
        &c,
        &[
            "get-object-attributes",
            "--bucket",
            b,
            "--key",
            "obj",
            "--object-attributes",
            "ETag",
            "ObjectSize",
        ],
    );
    assert_eq!(attrs["ObjectSize"], 11, "{attrs}");
    assert_eq!(
        format!("\"{}\"", attrs["ETag"].as_str().unwrap()),
        md5(&path("small"))
    );
    let copy = s3api(
        &c,
        &[
            "copy-object",
            "--bucket",
            b,
            "--key",
            "obj-copy",
            "--copy-source",
            &format!("{b}/obj"),
        ],
    );
    assert_eq!(copy["CopyObjectResult"]["ETag"], put["ETag"], "{copy}");
    let v1 = s3api(&c, &["list-objects", "--bucket", b]);
    let keys: Vec<&str> = v1["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["fresh", "obj", "obj-copy"], "{v1}");
    let v2 = s3api(
        &c,
        &[
            "list-objects-v2",
            "--bucket",
            b,
            "--prefix",
            "obj",
            "--no-paginate",
        ],
    );
    assert_eq!(v2["KeyCount"], 2, "{v2}");
    assert_eq!(v2["Contents"].as_array().unwrap().len(), 2, "{v2}");

    // Object tagging
    let tags = s3api(
        &c,
        &["get-object-tagging", "--bucket", b, "--key", "obj-copy"],
    );
    assert_eq!(
        tags["TagSet"].as_array().unwrap().len(),
        2,
        "copied tags: {tags}"
    );
    s3api(
        &c,
        &[
            "put-object-tagging",
            "--bucket",
            b,
            "--key",
            "obj",
            "--tagging",
            "TagSet=[{Key=x,Value=y}]",
        ],
    );
    let tags = s3api(&c, &["get-object-tagging", "--bucket", b, "--key", "obj"]);
    assert_eq!(
        tags["TagSet"],
        serde_json::json!([{"Key": "x", "Value": "y"}]),
        "{tags}"
    );
    s3api_fails(
        &c,
        &[
            "put-object-tagging",
            "--bucket",
            b,
            "--key",
            "obj",
            "--tagging",
            "TagSet=[{Key=d,Value=1},{Key=d,Value=2}]",
        ],
        "InvalidTag",
    );
    s3api(
        &c,
        &["delete-object-tagging", "--bucket", b, "--key", "obj"],
    );
    let tags = s3api(&c, &["get-object-tagging", "--bucket", b, "--key", "obj"]);
    assert_eq!(tags["TagSet"], serde_json::json!([]), "{tags}");

    // Bucket tagging
    s3api_fails(&c, &["get-bucket-tagging", "--bucket", b], "NoSuchTagSet");
    s3api(
        &c,
        &[
            "put-bucket-tagging",
            "--bucket",
            b,
            "--tagging",
            "TagSet=[{Key=team,Value=storage}]",
        ],
    );
    let tags = s3api(&c, &["get-bucket-tagging", "--bucket", b]);
    assert_eq!(
        tags["TagSet"],
        serde_json::json!([{"Key": "team", "Value": "storage"}]),
        "{tags}"
    );
    s3api(&c, &["delete-bucket-tagging", "--bucket", b]);
    s3api_fails(&c, &["get-bucket-tagging", "--bucket", b], "NoSuchTagSet");

    // Multipart: create, upload-part, upload-part-copy, list-parts, list-multipart-uploads,
    // complete (twice: the same answer), abort
    let up = s3api(
        &c,
        &[
            "create-multipart-upload",
            "--bucket",
            b,
            "--key",
            "mp",
            "--tagging",
            "m=1",
        ],
    );
    let uid = up["UploadId"].as_str().unwrap().to_string();
    let p1 = s3api(
        &c,
        &[
            "upload-part",
            "--bucket",
            b,
            "--key",
            "mp",
            "--upload-id",
            &uid,
            "--part-number",
            "1",
            "--body",
            &path("part1"),
        ],
    );
    assert_eq!(p1["ETag"], md5(&path("part1")), "{p1}");
    let p2 = s3api(
        &c,
        &[
            "upload-part-copy",
            "--bucket",
            b,
            "--key",
            "mp",
            "--upload-id",
            &uid,
            "--part-number",
            "2",
            "--copy-source",
            &format!("{b}/obj"),
            "--copy-source-range",
            "bytes=0-4",
        ],
    );
    let e2 = p2["CopyPartResult"]["ETag"].as_str().unwrap().to_string();
    assert_eq!(e2, format!("\"{}\"", md5_hex(b"hello")), "{p2}");
    let parts = s3api(
        &c,
        &[
            "list-parts",
            "--bucket",
            b,
            "--key",
            "mp",
            "--upload-id",
            &uid,
        ],
    );
    let sizes: Vec<u64> = parts["Parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [5 << 20, 5], "{parts}");
    let other = s3api(
        &c,
        &[
            "create-multipart-upload",
            "--bucket",
            b,
            "--key",
            "dir/other",
        ],
    );
    let other_id = other["UploadId"].as_str().unwrap().to_string();
    let ups = s3api(&c, &["list-multipart-uploads", "--bucket", b]);
    assert_eq!(ups["Uploads"].as_array().unwrap().len(), 2, "{ups}");
    let ups = s3api(
        &c,
        &["list-multipart-uploads", "--bucket", b, "--delimiter", "/"],
    );
    assert_eq!(
        ups["CommonPrefixes"],
        serde_json::json!([{"Prefix": "dir/"}]),
        "{ups}"
    );
    assert_eq!(ups["Uploads"][0]["Key"], "mp", "{ups}");
    let layout = serde_json::json!({"Parts": [
        {"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": e2}]});
    std::fs::write(path("parts.json"), layout.to_string()).unwrap();
    let parts_arg = format!("file://{}", path("parts.json"));
    let complete = [
        "complete-multipart-upload",
        "--bucket",
        b,
        "--key",
        "mp",
        "--upload-id",
        &uid,
        "--multipart-upload",
        &parts_arg,
    ];
    let done = s3api(&c, &complete);
    assert!(done["ETag"].as_str().unwrap().ends_with("-2\""), "{done}");
    // Completing a completed upload again answers the same key.
    let again = s3api(&c, &complete);
    assert_eq!(again["ETag"], done["ETag"], "{again}");
    let tags = s3api(&c, &["get-object-tagging", "--bucket", b, "--key", "mp"]);
    assert_eq!(
        tags["TagSet"],
        serde_json::json!([{"Key": "m", "Value": "1"}]),
        "{tags}"
    );
    s3api(
        &c,
        &[
            "abort-multipart-upload",
            "--bucket",
            b,
            "--key",
            "dir/other",
            "--upload-id",
            &other_id,
        ],
    );
    s3api_fails(
        &c,
        &[
            "abort-multipart-upload",
            "--bucket",
            b,
            "--key",
            "dir/other",
            "--upload-id",
            &other_id,
        ],
        "NoSuchUpload",
    );
    let ups = s3api(&c, &["list-multipart-uploads", "--bucket", b]);
    assert!(ups.get("Uploads").is_none(), "{ups}");

    // Presigned URLs (SigV4 query auth: the CLI's s3 config asks for it), and one that expired
    std::fs::write(
        path("aws-config"),
        "[default]\ns3 =\n  signature_version = s3v4\n",
    )
    .unwrap();
    let presign = |expires: &str| {
        let mut cmd = c.client("aws");
        cmd.env("AWS_CONFIG_FILE", path("aws-config"))
            .args(["--endpoint-url", &c.endpoint, "s3", "presign"])
            .arg(format!("s3://{b}/obj"))
            .args(["--expires-in", expires]);
        let url = ok(cmd.output().unwrap());
        assert!(url.contains("X-Amz-Signature="), "{url}");
        url.trim()
            .splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{p}"))
            .unwrap()
    };
    let get = |path_q: &str| {
        let r = ozone_common::probe::get(&c.s3_addr(), path_q).unwrap();
        (r.status, r.body)
    };
    let (st, body) = get(&presign("300"));
    assert_eq!((st, body.as_slice()), (200, b"hello s3api".as_slice()));
    let expired = presign("1");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (st, body) = get(&expired);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(st, 403, "{text}");
    assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");

    // Deletes
    s3api(&c, &["delete-object", "--bucket", b, "--key", "fresh"]);
    let del = s3api(
        &c,
        &[
            "delete-objects",
            "--bucket",
            b,
            "--delete",
            "Objects=[{Key=obj},{Key=obj-copy},{Key=mp}]",
        ],
    );
    assert_eq!(del["Deleted"].as_array().unwrap().len(), 3, "{del}");
    let v2 = s3api(&c, &["list-objects-v2", "--bucket", b, "--no-paginate"]);
    assert_eq!(v2["KeyCount"], 0, "{v2}");
    s3api(&c, &["delete-bucket", "--bucket", b]);
    s3api_fails(&c, &["head-bucket", "--bucket", b], "404");
}
