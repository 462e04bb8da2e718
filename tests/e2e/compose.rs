//! The docker-compose cluster (`compose/ozone`): builds the `FROM scratch` image from the binary
//! under test and runs `compose/ozone/test.sh` (up with 3 datanodes, aws CLI round trip,
//! down/up keeps every object, a killed datanode loses nothing, scaling to 4, teardown) wherever
//! a Docker Engine and docker-compose answer; and the three-OM cluster (`compose/ozone-ha`,
//! `test.sh`: the OM leader killed, writes go on). Elsewhere it prints that it skipped and why.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use ozone_tests::{ozone_bin, tool, workspace};

/// Runs a command with a time limit (a wedged Docker daemon must not hang the suite).
fn run_limited(secs: u32, program: &str, args: &[&str]) -> Result<Output, String> {
    Command::new("timeout")
        .arg(secs.to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))
}

/// Why the compose test cannot run here, if it cannot.
fn docker_missing() -> Option<String> {
    match run_limited(30, "docker", &["info", "--format", "{{.ServerVersion}}"]) {
        Err(e) => return Some(e),
        Ok(out) if !out.status.success() => {
            return Some(format!(
                "no Docker Engine answers (`docker info`: {})",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(_) => {}
    }
    match run_limited(30, "docker-compose", &["version", "--short"]) {
        Err(e) => Some(e),
        Ok(out) if !out.status.success() => Some(format!(
            "docker-compose does not run: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// Removes the project's containers, network and volumes, and the image tag, when dropped
/// (test.sh removes the project too; this covers test.sh dying before its trap runs).
struct Teardown<'a> {
    dir: &'a Path,
    project: String,
    image: String,
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .args(["down", "-v", "--remove-orphans", "-t", "1"])
            .current_dir(self.dir)
            .env("COMPOSE_PROJECT_NAME", &self.project)
            .env("OZONE_IMAGE", &self.image)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Only the tag: the layers stay cached for the next run.
        let _ = Command::new("docker")
            .args(["rmi", &self.image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn compose_cluster_scales_survives_down_up_and_datanode_loss() {
    run_compose_test("ozone", "ozonee2e");
}

#[test]
fn compose_ha_cluster_survives_om_leader_loss() {
    run_compose_test("ozone-ha", "ozonehae2e");
}

/// Builds this run's image and runs `compose/<dir>/test.sh` against it.
fn run_compose_test(dir_name: &str, prefix: &str) {
    if let Some(why) = docker_missing() {
        println!("SKIPPED compose test (compose/{dir_name}/test.sh): {why}");
        return;
    }
    let root = workspace();
    // A tag of this run's own: test runs of other checkouts may share the engine.
    let project = format!("{prefix}{}", std::process::id());
    let image = format!("ozone-rs:{project}");
    let dir = root.join("compose").join(dir_name);
    let _teardown = Teardown {
        dir: &dir,
        project: project.clone(),
        image: image.clone(),
    };
    let bin = ozone_bin();
    let built = Command::new("bash")
        .arg(root.join("compose/build.sh"))
        .arg("--image-only")
        .env("OZONE_BIN", &bin)
        .env("OZONE_IMAGE", &image)
        .status()
        .expect("run compose/build.sh");
    assert!(
        built.success(),
        "compose/build.sh --image-only failed for {} (the image needs the static build: \
         `bash compose/build.sh --binary-only`, as .ci/run does)",
        bin.display()
    );

    let status = Command::new("bash")
        .arg(dir.join("test.sh"))
        .current_dir(&dir)
        .env("COMPOSE_PROJECT_NAME", &project)
        .env("OZONE_IMAGE", &image)
        // Docker picks the host ports (test.sh reads them back): a port chosen here and bound
        // later could be taken meanwhile by another test or the other compose project.
        .env("OZONE_S3G_PORT", "127.0.0.1:")
        .env("OZONE_S3G_WEBADMIN_PORT", "127.0.0.1:")
        .env("AWS", tool("aws"))
        .env("PYTHON", tool("python3"))
        .stdin(Stdio::null())
        .status()
        .expect("run compose test.sh");
    assert!(
        status.success(),
        "compose/{dir_name}/test.sh failed: {status}"
    );
}
