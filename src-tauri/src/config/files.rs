//! Where a peer's files live, and how they are written.

use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "service.json";
pub const IDENTITY_FILE: &str = "identity.json";
pub const DEFAULT_FOLDER: &str = ".ipfs-cluster";

/// The cluster folder: `--config DIR`, else `$IPFS_CLUSTER_PATH`, else `~/.ipfs-cluster`.
pub fn folder(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("IPFS_CLUSTER_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    dirs::home_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(DEFAULT_FOLDER)
}

/// Creates `path` (and missing parents) as folders only their owner can enter: a peer's
/// folder holds its identity, its secret and its pinset.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

/// Creates an empty owner-only file at `path` unless something is there already (for files
/// another library then opens, such as SQLite's, which would create them readable by all).
pub fn create_private_if_missing(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// An exclusive lock on a peer's folder, held while a process runs its peer (daemon,
/// desktop app) or changes its state offline; released when dropped (or the process ends).
#[derive(Debug)]
pub struct FolderLock {
    _file: std::fs::File,
}

/// Locks `folder` (its `.lock` file) so two processes never run one peer; an error that
/// says so when another holds it.
pub fn lock_folder(folder: &Path) -> Result<FolderLock, crate::error::Error> {
    use crate::error::Error;
    let path = folder.join(".lock");
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts
        .open(&path)
        .map_err(|e| Error::BadInput(format!("{}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(FolderLock { _file: file }),
        Err(_) => Err(Error::Unavailable(format!(
            "{} is in use by another ipfs-cluster-service or the desktop app: stop it first",
            folder.display()
        ))),
    }
}

/// Creates (or truncates) a file readable by its owner only.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Writes a file readable by its owner only: both files hold secrets.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = create_private(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
