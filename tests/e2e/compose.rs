//! The docker-compose cluster (`compose/ozone`): builds the `FROM scratch` image from the binary
//! under test and runs `compose/ozone/test.sh` (up with 3 datanodes, aws CLI round trip,
//! down/up keeps every object, a killed datanode loses nothing, scaling to 4, teardown) wherever
//! a Docker Engine and Docker Compose (the `docker compose` plugin, else `docker-compose`)
//! answer; and the three-OM cluster (`compose/ozone-ha`, `test.sh`: the OM leader killed, writes
//! go on). Without a Docker Engine it prints that it skipped and why. An Engine without Compose
//! is a skip too, except under `CI=true`, where it fails the test (CI must run it).

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

/// Why no Docker Engine can be used here, if none can.
fn docker_missing() -> Option<String> {
    match run_limited(30, "docker", &["info", "--format", "{{.ServerVersion}}"]) {
        Err(e) => Some(e),
        Ok(out) if !out.status.success() => Some(format!(
            "no Docker Engine answers (`docker info`: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// The Docker Compose command: the `docker compose` plugin, else `docker-compose`; or why
/// neither runs.
fn compose_command() -> Result<Vec<&'static str>, String> {
    let mut why = Vec::new();
    for cmd in [&["docker", "compose"][..], &["docker-compose"]] {
        let mut args = cmd[1..].to_vec();
        args.extend(["version", "--short"]);
        match run_limited(30, cmd[0], &args) {
            Ok(out) if out.status.success() => return Ok(cmd.to_vec()),
            Ok(out) => why.push(format!(
                "`{}` does not run: {}",
                cmd.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

/// Whether this is a CI run (`CI=true`), where a missing tool is a failure, not a skip.
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Removes the project's containers, network and volumes, and the image tag, when dropped
/// (test.sh removes the project too; this covers test.sh dying before its trap runs).
struct Teardown<'a> {
    compose: Vec<&'static str>,
    dir: &'a Path,
    project: String,
    image: String,
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.compose[0])
            .args(&self.compose[1..])
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
fn compose_secure_cluster_issues_certificates_and_refuses_strangers() {
    run_compose_test("ozone-secure", "ozonesece2e");
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
    let compose = match compose_command() {
        Ok(c) => c,
        Err(why) if under_ci() => {
            panic!("CI=true and a Docker Engine answers, but no Docker Compose: {why}")
        }
        Err(why) => {
            println!("SKIPPED compose test (compose/{dir_name}/test.sh): {why}");
            return;
        }
    };
    let root = workspace();
    // A tag of this run's own: test runs of other checkouts may share the engine.
    let project = format!("{prefix}{}", std::process::id());
    let image = format!("ozone-rs:{project}");
    let dir = root.join("compose").join(dir_name);
    let _teardown = Teardown {
        compose: compose.clone(),
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
        .env("OZONE_COMPOSE", compose.join(" "))
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
