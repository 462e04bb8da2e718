//! The datanode's identity and its claim on the data directory: a v4 uuid created at first start
//! and kept in `<dir>/datanode.id`, and an exclusive lock on `<dir>/datanode.lock` so that two
//! datanodes never share a directory.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use ozone_common::fsync_dir;
use rustix::fs::{FlockOperation, flock};

use crate::error::DatanodeError;

const ID_FILE: &str = "datanode.id";
const LOCK_FILE: &str = "datanode.lock";

/// Holds the directory lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// Creates `dir` if needed and locks it exclusively (fails at once if another datanode holds it).
pub(crate) fn lock_dir(dir: &Path) -> Result<DirLock, DatanodeError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| DatanodeError::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| DatanodeError::io(format!("opening {}", path.display()), e))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(DatanodeError::DirLocked {
            path: dir.to_path_buf(),
        }),
        Err(e) => Err(DatanodeError::io(
            format!("locking {}", path.display()),
            e.into(),
        )),
    }
}

/// The uuid stored in `<dir>/datanode.id`, created (durably) on first start.
pub(crate) fn load_or_create_uuid(dir: &Path) -> Result<String, DatanodeError> {
    let path = dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            uuid::Uuid::parse_str(id)
                .map(|u| u.to_string())
                .map_err(|e| DatanodeError::BadFile {
                    path: path.clone(),
                    message: format!("not a uuid ({e}); refusing to invent a new identity"),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4().to_string();
            let tmp = dir.join(format!("{ID_FILE}.tmp"));
            let write = || -> std::io::Result<()> {
                let mut f = File::create(&tmp)?;
                f.write_all(format!("{id}\n").as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                fsync_dir(dir)
            };
            write().map_err(|e| DatanodeError::io(format!("writing {}", path.display()), e))?;
            tracing::info!(uuid = %id, path = %path.display(), "created datanode identity");
            Ok(id)
        }
        Err(e) => Err(DatanodeError::io(format!("reading {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_created_once_and_the_dir_is_locked() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("dn");
        let lock = lock_dir(&dir).expect("first lock");
        assert!(matches!(
            lock_dir(&dir),
            Err(DatanodeError::DirLocked { .. })
        ));
        let a = load_or_create_uuid(&dir).expect("create");
        let b = load_or_create_uuid(&dir).expect("reload");
        assert_eq!(a, b);
        drop(lock);
        lock_dir(&dir).expect("lock is released on drop");
        std::fs::write(dir.join(ID_FILE), "garbage").expect("write");
        assert!(load_or_create_uuid(&dir).is_err());
    }
}
