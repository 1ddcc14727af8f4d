//! Files that hold personal data, codes or secrets, created readable by their owner only: files
//! 0600 in folders 0700, whatever the process umask. Both binaries create their databases, keys,
//! credentials and outboxes through these.
//!
//! The mode is given at creation (so the file is never readable by others, not even for a
//! moment) and set again afterwards, because a umask can only remove bits: it cannot widen 0600,
//! but an unusual umask such as 0277 would narrow it below what the owner needs.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parents as 0700 folders, and makes `dir` itself 0700 even when
/// it already existed (it is the folder the private files go in). Parents that existed before
/// are left as they are: they belong to whoever made them.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Options that create a file with mode 0600 (on unix); add `read`/`write`/`append` as needed.
pub fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options
}

/// Makes an open file 0600.
pub fn restrict(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Opens `path` for appending, creating it (and its folder) private if it does not exist.
pub fn open_private_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        create_private_dir_all(dir)?;
    }
    let file = private_options().create(true).append(true).open(path)?;
    restrict(&file)?;
    Ok(file)
}

/// Creates an empty 0600 file at `path` unless something already exists there. SQLite gives
/// the `-wal` and `-shm` files the mode of the database file, so creating the database this way
/// before SQLite opens it makes all three private.
pub fn precreate_private_file(path: &Path) -> io::Result<()> {
    match private_options().write(true).create_new(true).open(path) {
        Ok(file) => restrict(&file),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn folders_0700_and_files_0600() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_private_dir_all(&dir).unwrap();
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let f = dir.join("x.jsonl");
        open_private_append(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        let db = dir.join("t.db");
        precreate_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::write(&db, b"keep").unwrap();
        precreate_private_file(&db).unwrap();
        assert_eq!(
            std::fs::read(&db).unwrap(),
            b"keep",
            "an existing file is left alone"
        );
        // A folder that existed with wider bits is narrowed: the private files go in it.
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir_all(&open).unwrap();
        assert_eq!(mode(&open), 0o700);
    }
}
