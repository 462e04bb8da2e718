//! Administrator listings of what writes left behind: open keys (writes never committed,
//! which [`crate::expiry`] removes after `ozone.om.open.key.expire.threshold`) and incomplete
//! multipart uploads of every bucket (an admin aborts one with AbortMultipartUpload). Both are
//! paged reads with a bounded cost per page: open keys come from their index by creation
//! time, uploads from a range of the uploads table. With security on they need the admin
//! credential.

use ozone_common::now_ms;
use ozone_proto::om::{self, OmStatus};

use crate::error::OmError;
use crate::manager::{OzoneManager, check_bucket_ref};
use crate::model::{page_size, validate_resource_name};

/// Most uploads one page of the admin listing looks at (an age filter may skip most).
const UPLOAD_SCAN_LIMIT: usize = 10_000;

impl OzoneManager {
    /// With security on, `token` must be the admin credential.
    fn check_admin_listing(&self, token: &str) -> Result<(), OmError> {
        match &self.config().admin {
            None => Ok(()),
            Some(admin) if admin.verify(token) => Ok(()),
            Some(_) => Err(OmError::reject(
                OmStatus::PermissionDenied,
                "the admin credential is required",
            )),
        }
    }

    pub async fn admin_list_open_keys(
        &self,
        req: om::AdminListOpenKeysRequest,
    ) -> Result<om::AdminListOpenKeysResponse, OmError> {
        self.check_admin_listing(&req.admin_token)?;
        let before = now_ms().saturating_sub(req.older_than_ms);
        let limit = page_size(req.max);
        self.read(move |s| {
            let (open, next) = s.open_keys_by_time(before, &req.start_after, limit)?;
            Ok(om::AdminListOpenKeysResponse {
                open_keys: open
                    .into_iter()
                    .map(|o| om::AdminOpenKey {
                        blocks: o.locations.len() as u32,
                        upload_id: o
                            .part
                            .as_ref()
                            .map(|p| p.upload_id.clone())
                            .unwrap_or_default(),
                        part_number: o.part.as_ref().map_or(0, |p| p.part_number),
                        volume: o.volume,
                        bucket: o.bucket,
                        key: o.key,
                        client_id: o.client_id,
                        creation_time_ms: o.creation_time_ms,
                        owner: o.owner,
                    })
                    .collect(),
                next_token: next,
            })
        })
        .await
    }

    pub async fn admin_list_multipart_uploads(
        &self,
        req: om::AdminListMultipartUploadsRequest,
    ) -> Result<om::AdminListMultipartUploadsResponse, OmError> {
        self.check_admin_listing(&req.admin_token)?;
        match (req.volume.is_empty(), req.bucket.is_empty()) {
            (true, true) => {}
            (true, false) => return Err(OmError::invalid("a bucket needs its volume")),
            (false, true) => validate_resource_name("volume", &req.volume)?,
            (false, false) => check_bucket_ref(&req.volume, &req.bucket)?,
        }
        let before = now_ms().saturating_sub(req.older_than_ms);
        let limit = page_size(req.max);
        self.read(move |s| {
            let (uploads, next) = s.admin_uploads(
                &req.volume,
                &req.bucket,
                before,
                &req.start_after,
                limit,
                UPLOAD_SCAN_LIMIT,
            )?;
            Ok(om::AdminListMultipartUploadsResponse {
                uploads: uploads.iter().map(Into::into).collect(),
                next_token: next,
            })
        })
        .await
    }
}
