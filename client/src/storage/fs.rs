//! Opening the sled database and the home directory on disk.

use std::path::Path;

use super::StorageError;

/// How long [`open_sled`] waits for another handle to release the store.
pub(super) const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the sled database at `path`. sled allows one open handle per
/// directory (a file lock); a handle just dropped in this process can hold
/// the lock a moment longer, until sled's background threads let go of it.
/// So a lock conflict is retried for up to [`LOCK_WAIT`] before it is
/// reported as [`StorageError::Locked`].
pub(super) fn open_sled(path: &Path) -> Result<sled::Db, StorageError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match sled::open(path) {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(StorageError::Locked { path: path.to_path_buf() });
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Creates `dir` (and parents) if missing; on unix makes it 0700.
pub(super) fn create_private_dir(dir: &Path) -> Result<(), StorageError> {
    let err = |source| StorageError::Dir { path: dir.to_path_buf(), source };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
        let meta = std::fs::metadata(dir).map_err(err)?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    Ok(())
}
