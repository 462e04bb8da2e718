//! The bucket browser in headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
//! Selenium from the test virtualenv): 1,200 objects in folders listed, navigated, paged and one
//! downloaded with matching bytes. The screenshot is kept under `target/test-artifacts/`.
//! Without Chromium the test fails (`.ci/setup.sh` installs it); it never skips.

use ozone_tests::{Cluster, ClusterOpts, ok, workspace};

#[test]
fn bucket_browser_in_headless_chromium() {
    let c = Cluster::start(ClusterOpts::default());
    let artifacts = workspace().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("bucket-browser.png");
    let _ = std::fs::remove_file(&shot);
    let out = ok(c.python("browser.py", &[shot.to_str().unwrap()]));
    assert!(out.contains("browser OK"), "{out}");
    let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(len > 10_000, "no screenshot at {}", shot.display());
    println!("bucket browser screenshot: {}", shot.display());
}
