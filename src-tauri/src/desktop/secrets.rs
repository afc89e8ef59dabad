//! Where the desktop app keeps a peer's cluster secret: the OS keyring when one is usable,
//! else (stated plainly to the user) a file readable only by them, `<folder>/secret`.

use std::path::{Path, PathBuf};

/// The secret could not be read or stored where it belongs.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct SecretError(pub String);

impl From<SecretError> for crate::error::Error {
    fn from(e: SecretError) -> Self {
        crate::error::Error::Internal(e.0)
    }
}

fn secret_error(e: impl std::fmt::Display) -> SecretError {
    SecretError(e.to_string())
}

/// A place for one peer's secret.
pub trait SecretStore: Send + Sync + 'static {
    fn get(&self) -> Result<Option<String>, SecretError>;
    fn set(&self, secret: &str) -> Result<(), SecretError>;
    /// Shown to the user: where the secret is.
    fn describe(&self) -> String;
}

/// The fallback: a 0600 file next to `service.json`.
pub struct FileStore {
    pub path: PathBuf,
}

impl FileStore {
    pub fn in_folder(folder: &Path) -> FileStore {
        FileStore {
            path: folder.join("secret"),
        }
    }
}

impl SecretStore for FileStore {
    fn get(&self) -> Result<Option<String>, SecretError> {
        match std::fs::read_to_string(&self.path) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(secret_error(format!("{}: {e}", self.path.display()))),
        }
    }

    fn set(&self, secret: &str) -> Result<(), SecretError> {
        crate::config::write_private(&self.path, secret.as_bytes())
            .map_err(|e| secret_error(format!("{}: {e}", self.path.display())))
    }

    fn describe(&self) -> String {
        format!(
            "in {} (no OS keyring was usable; the file is readable by you only)",
            self.path.display()
        )
    }
}

/// The OS keyring (Secret Service or the kernel keyring on Linux), one entry per folder.
#[cfg(feature = "desktop")]
pub struct KeyringStore {
    entry: keyring::Entry,
}

#[cfg(feature = "desktop")]
impl KeyringStore {
    pub const SERVICE: &'static str = "ipfs-cluster-desktop";

    /// Opens the entry and checks the keyring answers at all.
    pub fn open(folder: &Path) -> Result<KeyringStore, SecretError> {
        let entry =
            keyring::Entry::new(Self::SERVICE, &folder.to_string_lossy()).map_err(secret_error)?;
        match entry.get_password() {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(KeyringStore { entry }),
            Err(e) => Err(secret_error(e)),
        }
    }
}

#[cfg(feature = "desktop")]
impl SecretStore for KeyringStore {
    fn get(&self) -> Result<Option<String>, SecretError> {
        match self.entry.get_password() {
            Ok(s) => Ok(Some(s)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(secret_error(format!("OS keyring: {e}"))),
        }
    }

    fn set(&self, secret: &str) -> Result<(), SecretError> {
        self.entry
            .set_password(secret)
            .map_err(|e| secret_error(format!("OS keyring: {e}")))
    }

    fn describe(&self) -> String {
        "in the OS keyring".into()
    }
}

/// The keyring if usable, else the file, for the peer in `folder`. An existing secret file
/// wins, so a peer made without a keyring keeps working when one appears.
pub fn for_folder(folder: &Path) -> Box<dyn SecretStore> {
    let file = FileStore::in_folder(folder);
    if file.path.exists() {
        return Box::new(file);
    }
    #[cfg(feature = "desktop")]
    match KeyringStore::open(folder) {
        Ok(k) => return Box::new(k),
        Err(e) => tracing::warn!("no usable OS keyring ({e}): keeping the secret in a file"),
    }
    Box::new(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::in_folder(dir.path());
        assert_eq!(s.get().unwrap(), None);
        s.set("abc").unwrap();
        assert_eq!(s.get().unwrap().as_deref(), Some("abc"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&s.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(for_folder(dir.path()).describe().contains("secret"));
    }
}
