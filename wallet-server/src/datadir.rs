//! One `serve` per SQLite data dir: `<data-dir>/serve.lock`, held with `flock` for the life of
//! the process. Two servers on one SQLite file would each run the background jobs against the
//! same database with their own process-local state (wallet token counters, caches); the
//! second is refused with a message rather than left to interfere.
//!
//! The kernel drops the lock when the process ends however it ends (kill -9 included), so a
//! stale lock file never blocks a restart. One-off commands (`import-roster`, `consent tick`,
//! `report nobd`) do not take it: they coordinate with a running server through the database
//! (SQLite's write lock, outbox leases).

use anyhow::Context;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Held while the server runs; dropping it releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    pub path: PathBuf,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        let path = data_dir.join("serve.lock");
        let file = shared::private_fs::private_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        lock(&file).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => anyhow::anyhow!(
                "another `wallet-server serve` is already running on the data dir {} (it holds {}); \
                 stop it first, or give this one its own --data-dir",
                data_dir.display(),
                path.display()
            ),
            _ => anyhow::anyhow!("cannot lock {}: {e}", path.display()),
        })?;
        Ok(DataDirLock { _file: file, path })
    }
}

#[cfg(unix)]
fn lock(file: &File) -> std::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn lock(_file: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_one_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("already running"), "{err}");
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again once the holder is gone");
    }
}
