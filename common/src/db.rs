//! Opening the embedded redb databases every role keeps.

use std::time::{Duration, Instant};

/// How long a role waits for a database another process still holds.
const LOCK_WAIT: Duration = Duration::from_secs(15);

/// Runs `open` (a redb create/open), retrying for up to 15 s while the file is still locked by
/// another process. A process that was just killed drops its lock only once its last thread
/// has exited (one may still be finishing an fsync), so a role restarted at once can find the
/// lock held for a moment; a second live instance on the same directory still fails.
pub fn open_waiting<T>(
    mut open: impl FnMut() -> Result<T, redb::DatabaseError>,
) -> Result<T, redb::DatabaseError> {
    let deadline = Instant::now() + LOCK_WAIT;
    let mut logged = false;
    loop {
        match open() {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                if !logged {
                    tracing::warn!("database locked by another process; waiting for it to exit");
                    logged = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Creates (or opens) the redb database at `path` with a page cache of `cache_bytes`, waiting
/// as [`open_waiting`] does. redb's default cache is 1 GiB, which a role fills as its database
/// grows (a namespace of millions of keys, a raft log written for hours); every role bounds it
/// and leaves the rest to the operating system's page cache.
pub fn create_with_cache(
    path: &std::path::Path,
    cache_bytes: usize,
) -> Result<redb::Database, redb::DatabaseError> {
    open_waiting(|| {
        redb::Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_database_opens_at_once_and_errors_pass_through() {
        let dir = std::env::temp_dir().join(format!("ozone-db-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.redb");
        let db = open_waiting(|| redb::Database::create(&path)).expect("opens");
        drop(db);
        let missing = open_waiting(|| redb::Database::open(dir.join("missing.redb")));
        assert!(missing.is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
