//! `ozone s3 getsecret|revokesecret`: manage users' S3 secrets (security on). Both calls carry
//! the admin credential, read from `$OZONE_ADMIN_SECRET` or the file named by
//! `ozone.om.admin.secret.file` (which `ozone cluster up` writes into `DIR/conf`).

use clap::Subcommand;
use ozone_common::OzoneConfig;
use ozone_common::config::keys;
use ozone_proto::om::S3SecretRequest;

type BoxError = Box<dyn std::error::Error>;

#[derive(Subcommand)]
pub enum S3Cmd {
    /// Creates (or shows) a user's S3 secret: prints awsAccessKey=... and awsSecret=...
    Getsecret {
        /// The user (default: $USER).
        #[arg(short = 'u', long = "user")]
        user: Option<String>,
    },
    /// Revokes a user's S3 secret: requests signed with it fail at once.
    Revokesecret {
        /// The user (default: $USER).
        #[arg(short = 'u', long = "user")]
        user: Option<String>,
    },
}

/// The admin credential: `$OZONE_ADMIN_SECRET`, else the configured file's content.
pub fn admin_token(cfg: &OzoneConfig) -> Result<String, BoxError> {
    if let Ok(t) = std::env::var("OZONE_ADMIN_SECRET")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    match cfg.get_opt(keys::OZONE_OM_ADMIN_SECRET_FILE) {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(s) => Ok(s.trim().to_string()),
            Err(e) => Err(format!("reading the admin credential {path}: {e}").into()),
        },
        None => Ok(String::new()),
    }
}

fn user_or_current(user: Option<String>) -> Result<String, BoxError> {
    match user.or_else(|| std::env::var("USER").ok()) {
        Some(u) if !u.is_empty() => Ok(u),
        _ => Err("no user: pass -u USER".into()),
    }
}

pub async fn run(cfg: &OzoneConfig, cmd: S3Cmd) -> Result<(), BoxError> {
    let om = om_client::OmClient::connect(cfg.om_addresses())?;
    let admin_token = admin_token(cfg)?;
    match cmd {
        S3Cmd::Getsecret { user } => {
            let s = om
                .get_s3_secret(S3SecretRequest {
                    user: user_or_current(user)?,
                    admin_token,
                    create: true,
                })
                .await?;
            println!("awsAccessKey={}", s.access_key);
            println!("awsSecret={}", s.secret);
        }
        S3Cmd::Revokesecret { user } => {
            let user = user_or_current(user)?;
            om.revoke_s3_secret(S3SecretRequest {
                user: user.clone(),
                admin_token,
                create: false,
            })
            .await?;
            println!("S3 secret revoked for {user}");
        }
    }
    Ok(())
}
