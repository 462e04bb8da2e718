//! The `ozone` binary: a thin shell that parses arguments, loads configuration, sets up tracing
//! and calls into the role crates (`ozone om|scm|datanode|s3g`), runs a local cluster
//! (`ozone cluster up`), the admin tools (`ozone admin ...`), the shell (`ozone sh ...`), S3
//! secrets (`ozone s3 getsecret|revokesecret`), the load generator (`ozone freon`) and a health
//! check for containers (`ozone health`).

mod admin;
mod admin_cert;
mod admin_leaks;
mod admin_raft;
mod cluster;
mod freon;
mod health;
mod s3;
mod security;
mod shell;
mod verify_etags;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ozone_common::OzoneConfig;
use ozone_common::config::{ConfigError, KeyBuf};

#[derive(Parser)]
#[command(
    name = "ozone",
    version,
    about = "Ozone-RS: an S3-compatible replicated object store"
)]
struct Cli {
    /// Directory holding ozone-site.xml (default: $OZONE_CONF_DIR).
    #[arg(long, global = true)]
    conf_dir: Option<PathBuf>,
    /// Sets a configuration key over ozone-site.xml and the environment (repeatable), for any
    /// command; for `cluster up`, a setting of the new cluster.
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    set: Vec<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the Ozone Manager (namespace).
    Om,
    /// Runs the Storage Container Manager.
    Scm,
    /// Runs a datanode.
    Datanode,
    /// Runs the S3 gateway.
    S3g,
    /// A whole local cluster as child processes.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Cluster administration over gRPC.
    Admin {
        #[command(subcommand)]
        cmd: admin::AdminCmd,
    },
    /// Volumes, buckets, bucket links and keys (`ozone sh key put /vol/bucket/key file`).
    #[command(alias = "shell")]
    Sh {
        #[command(subcommand)]
        cmd: shell::ShellCmd,
    },
    /// Load generators and benchmarks.
    Freon {
        #[command(subcommand)]
        cmd: freon::FreonCmd,
    },
    /// S3 secrets (security on): `getsecret`, `revokesecret`.
    S3 {
        #[command(subcommand)]
        cmd: s3::S3Cmd,
    },
    /// Exits 0 when a role's http page answers (for container health checks).
    Health(health::HealthArgs),
    /// Prints configuration values.
    Getconf {
        /// `confKey <key>` prints one key's value.
        #[arg(value_name = "confKey")]
        what: String,
        key: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The shell prints OM's status as Ozone's does (`BUCKET_NOT_EMPTY ...`), without a prefix.
    let prefix = if matches!(cli.cmd, Cmd::Sh { .. }) {
        ""
    } else {
        "ozone: "
    };
    let default_log = match cli.cmd {
        // openraft logs every vote and election at info.
        Cmd::Om | Cmd::Scm | Cmd::Datanode | Cmd::S3g | Cmd::Cluster { .. } => "info,openraft=warn",
        _ => "warn",
    };
    if matches!(
        cli.cmd,
        Cmd::Om | Cmd::Scm | Cmd::Datanode | Cmd::S3g | Cmd::Cluster { .. }
    ) {
        // Every database, raft log, snapshot, key and log file a role creates is its own
        // alone: files 0600, directories 0700 (`cluster up`'s children inherit it).
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    }
    ozone_common::telemetry::init(default_log);
    if matches!(
        cli.cmd,
        Cmd::Om | Cmd::Scm | Cmd::Datanode | Cmd::S3g | Cmd::Cluster { .. }
    ) {
        ozone_common::raise_nofile_limit();
    }
    if matches!(cli.cmd, Cmd::Om | Cmd::Scm | Cmd::Datanode | Cmd::S3g) {
        // With security on, the role gets a certificate and speaks mutual TLS.
        ozone_common::tls::enable_mutual_tls();
    }
    let cfg = match load_config(cli.conf_dir.as_deref(), &cli.set) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ozone: {e}");
            return ExitCode::from(2);
        }
    };
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("the tokio runtime can be built")
    });
    let result: Result<(), Box<dyn std::error::Error>> = system.block_on(async move {
        let shutdown = ozone_common::shutdown_signal();
        if matches!(
            cli.cmd,
            Cmd::Admin { .. } | Cmd::Sh { .. } | Cmd::Freon { .. } | Cmd::S3 { .. }
        ) {
            security::prepare_tool(&cfg, std::time::Duration::from_secs(10)).await?;
        }
        match cli.cmd {
            Cmd::Om => ozone_om::run(cfg, shutdown).await.map_err(Into::into),
            Cmd::Scm => ozone_scm::run(cfg, shutdown).await.map_err(Into::into),
            Cmd::Datanode => ozone_datanode::run(cfg, shutdown).await.map_err(Into::into),
            Cmd::S3g => ozone_s3g::server::run(cfg, shutdown)
                .await
                .map_err(Into::into),
            Cmd::Cluster { cmd } => cluster::run(cmd, &cli.set).await,
            Cmd::Admin { cmd } => admin::run(&cfg, cmd).await,
            Cmd::Sh { cmd } => shell::run(&cfg, cmd).await.map_err(Into::into),
            Cmd::Freon { cmd } => freon::run(&cfg, cmd).await,
            Cmd::S3 { cmd } => s3::run(&cfg, cmd).await,
            Cmd::Health(args) => health::check(&args)
                .await
                .map(|ok| println!("{ok}"))
                .map_err(Into::into),
            Cmd::Getconf { what, key } => {
                if what != "confKey" {
                    return Err(format!("unknown getconf command {what} (try confKey)").into());
                }
                println!("{}", cfg.get(KeyBuf::unchecked(key)));
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{prefix}{e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration every command runs with: `ozone-site.xml` of `conf_dir` (else
/// `$OZONE_CONF_DIR`), then `OZONE-SITE.XML_<key>` environment variables, then `--set`.
fn load_config(
    conf_dir: Option<&std::path::Path>,
    set: &[String],
) -> Result<OzoneConfig, ConfigError> {
    let mut cfg = OzoneConfig::load(conf_dir)?;
    cfg.apply_sets(set)?;
    Ok(cfg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use ozone_common::config::keys;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn set_is_global_and_applied_over_the_loaded_config() {
        for args in [
            &[
                "ozone",
                "--set",
                "ozone.s3g.volume.name=v1",
                "getconf",
                "confKey",
                "x",
            ][..],
            &[
                "ozone",
                "getconf",
                "--set",
                "ozone.s3g.volume.name=v1",
                "confKey",
                "x",
            ],
            &[
                "ozone",
                "sh",
                "volume",
                "list",
                "--set",
                "ozone.s3g.volume.name = v1",
            ],
            &[
                "ozone",
                "cluster",
                "up",
                "--set",
                "ozone.s3g.volume.name=v1",
            ],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let cfg = load_config(Some(dir.path()), &cli.set).unwrap();
            assert_eq!(cfg.get(keys::OZONE_S3G_VOLUME_NAME), "v1", "{args:?}");
        }
        // Repeated: the last one wins; a value may hold '='.
        let cli = Cli::try_parse_from([
            "ozone",
            "--set",
            "ozone.s3g.volume.name=a",
            "--set",
            "ozone.s3g.volume.name=b=c",
            "om",
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = load_config(Some(dir.path()), &cli.set).unwrap();
        assert_eq!(cfg.get(keys::OZONE_S3G_VOLUME_NAME), "b=c");
        // --set overrides the file.
        std::fs::write(
            dir.path().join("ozone-site.xml"),
            "<configuration><property><name>ozone.s3g.volume.name</name>\
             <value>file</value></property></configuration>",
        )
        .unwrap();
        let cfg = load_config(Some(dir.path()), &[]).unwrap();
        assert_eq!(cfg.get(keys::OZONE_S3G_VOLUME_NAME), "file");
        let cfg = load_config(Some(dir.path()), &cli.set).unwrap();
        assert_eq!(cfg.get(keys::OZONE_S3G_VOLUME_NAME), "b=c");
        // Without '=' it is an error.
        assert!(
            load_config(
                Some(dir.path()),
                &[keys::OZONE_S3G_VOLUME_NAME.name().into()]
            )
            .is_err()
        );
    }
}
