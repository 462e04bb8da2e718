//! Volumes: the leader's preparation (create, delete, info, list, the S3 volume at start)
//! and the apply of [`VolumeCommand`]s.

use ozone_common::now_ms;
use ozone_proto::om::{self, OmStatus};
use redb::ReadableTable;

use crate::apply::{Writer, has_prefix, reject};
use crate::command::{CreateVolume, DeleteVolume, OmResponse, VolumeCommand};
use crate::config::S3_VOLUME_OWNER;
use crate::error::OmError;
use crate::manager::{OzoneManager, unexpected};
use crate::model::{VolumeRecord, validate_resource_name};
use crate::store::volume_key;

impl OzoneManager {
    /// Creates the S3 volume (owner `admin`) unless it exists.
    pub async fn ensure_s3_volume(&self) -> Result<(), OmError> {
        let volume = self.config.s3_volume.clone();
        let v = volume.clone();
        if self.read(move |s| s.volume(&v)).await?.is_some() {
            return Ok(());
        }
        let cmd = CreateVolume {
            volume: volume.clone(),
            owner: S3_VOLUME_OWNER.to_string(),
            now_ms: now_ms(),
        };
        match self.submit(cmd).await {
            Ok(_) => {
                tracing::info!(volume = %volume, "created the S3 volume");
                Ok(())
            }
            Err(e) if e.status() == OmStatus::VolumeAlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// An empty owner means `admin`.
    pub async fn create_volume(
        &self,
        req: om::CreateVolumeRequest,
    ) -> Result<om::VolumeInfo, OmError> {
        validate_resource_name("volume", &req.volume)?;
        let owner = if req.owner.is_empty() {
            S3_VOLUME_OWNER.to_string()
        } else {
            req.owner
        };
        let cmd = CreateVolume {
            volume: req.volume,
            owner,
            now_ms: now_ms(),
        };
        match self.submit(cmd).await? {
            OmResponse::Volume(v) => Ok((&v).into()),
            other => Err(unexpected("CreateVolume", other)),
        }
    }

    pub async fn info_volume(&self, req: om::VolumeRef) -> Result<om::VolumeInfo, OmError> {
        self.read(move |s| s.require_volume(&req.volume).map(|v| (&v).into()))
            .await
    }

    pub async fn list_volumes(
        &self,
        req: om::ListVolumesRequest,
    ) -> Result<om::ListVolumesResponse, OmError> {
        self.read(move |s| {
            let vols = s.list_volumes(&req.prefix, &req.start_after, req.max)?;
            Ok(om::ListVolumesResponse {
                volumes: vols.iter().map(Into::into).collect(),
            })
        })
        .await
    }

    pub async fn delete_volume(&self, req: om::VolumeRef) -> Result<om::Empty, OmError> {
        self.submit(DeleteVolume { volume: req.volume }).await?;
        Ok(om::Empty {})
    }
}

impl Writer<'_> {
    pub(crate) fn apply_volume(&mut self, cmd: &VolumeCommand) -> Result<OmResponse, OmError> {
        match cmd {
            VolumeCommand::Create(c) => self.create_volume(&c.volume, &c.owner, c.now_ms),
            VolumeCommand::Delete(c) => self.delete_volume(&c.volume),
        }
    }

    fn create_volume(
        &mut self,
        volume: &str,
        owner: &str,
        now_ms: u64,
    ) -> Result<OmResponse, OmError> {
        validate_resource_name("volume", volume)?;
        let k = volume_key(volume);
        if self.volumes.get(k.as_slice())?.is_some() {
            return reject(
                OmStatus::VolumeAlreadyExists,
                format!("volume {volume} already exists"),
            );
        }
        let rec = VolumeRecord {
            name: volume.to_string(),
            owner: owner.to_string(),
            creation_time_ms: now_ms,
        };
        Self::put(&mut self.volumes, &k, &rec)?;
        Ok(OmResponse::Volume(rec))
    }

    fn delete_volume(&mut self, volume: &str) -> Result<OmResponse, OmError> {
        let k = volume_key(volume);
        if self.volumes.get(k.as_slice())?.is_none() {
            return reject(
                OmStatus::VolumeNotFound,
                format!("volume {volume} not found"),
            );
        }
        let prefix = format!("/{volume}/").into_bytes();
        if has_prefix(&self.buckets, &prefix)? {
            return reject(
                OmStatus::VolumeNotEmpty,
                format!("volume {volume} still has buckets"),
            );
        }
        self.volumes.remove(k.as_slice())?;
        Ok(OmResponse::Done)
    }
}
