//! What `ipfs-cluster-service state …` does to a stopped peer's Raft data: export, import,
//! and cleanup with a rotating backup (`consensus.raft.backups_rotate`), so that cleaning
//! state (by hand or before a bootstrap) never silently loses a pinset.

use std::path::{Path, PathBuf};

use super::store::{self, db_path};
use crate::components::ConsensusError;
use crate::types::Pin;

fn io_error(path: &Path, e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Storage(format!("{}: {e}", path.display()))
}

/// Where backups go: `<folder>/raft.backups/pinset-<UTC time>.ndjson`.
pub fn backups_dir(folder: &Path) -> PathBuf {
    folder.join("raft.backups")
}

/// Whether the peer has any Raft data.
pub fn has_state(folder: &Path) -> bool {
    db_path(folder).exists()
}

/// The applied pinset of a stopped peer (empty when it never ran).
pub async fn export(folder: &Path) -> Result<Vec<Pin>, ConsensusError> {
    let db = db_path(folder);
    if !db.exists() {
        return Ok(Vec::new());
    }
    let pool = store::open(&db).await?;
    let pins = store::load_pins(&pool).await?;
    pool.close().await;
    Ok(pins.into_values().collect())
}

/// Replaces the pinset of a stopped peer.
pub async fn import(folder: &Path, pins: &[Pin]) -> Result<(), ConsensusError> {
    let db = db_path(folder);
    std::fs::create_dir_all(db.parent().expect("db has a folder")).map_err(|e| io_error(&db, e))?;
    let pool = store::open(&db).await?;
    let r = store::replace_pins(&pool, pins).await;
    pool.close().await;
    r
}

/// Writes the current pinset to a new backup file and deletes the oldest beyond `rotate`.
/// Returns the new file, or None when there was no state to back up.
pub async fn backup(folder: &Path, rotate: u32) -> Result<Option<PathBuf>, ConsensusError> {
    if !has_state(folder) {
        return Ok(None);
    }
    let pins = export(folder).await?;
    let dir = backups_dir(folder);
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let name = format!(
        "pinset-{}.ndjson",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ")
    );
    let path = dir.join(name);
    let mut buf = Vec::new();
    crate::state::export(&pins, &mut buf).map_err(|e| io_error(&path, e))?;
    crate::config::write_private(&path, &buf).map_err(|e| io_error(&path, e))?;
    rotate_backups(&dir, rotate.max(1) as usize)?;
    Ok(Some(path))
}

fn rotate_backups(dir: &Path, keep: usize) -> Result<(), ConsensusError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pinset-") && n.ends_with(".ndjson"))
        })
        .collect();
    // Names sort by time.
    files.sort();
    let excess = files.len().saturating_sub(keep);
    for f in &files[..excess] {
        std::fs::remove_file(f).map_err(|e| io_error(f, e))?;
    }
    Ok(())
}

/// Backs up, then removes all Raft data (log, vote, snapshots, pinset).
pub async fn cleanup(folder: &Path, rotate: u32) -> Result<Option<PathBuf>, ConsensusError> {
    let saved = backup(folder, rotate).await?;
    let raft_dir = db_path(folder)
        .parent()
        .expect("db has a folder")
        .to_path_buf();
    if raft_dir.exists() {
        std::fs::remove_dir_all(&raft_dir).map_err(|e| io_error(&raft_dir, e))?;
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PinOptions;

    #[tokio::test]
    async fn import_export_cleanup_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path();
        assert!(export(f).await.unwrap().is_empty());
        assert_eq!(backup(f, 2).await.unwrap(), None);
        let pin = Pin::new(
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
                .parse()
                .unwrap(),
            PinOptions::default(),
        );
        import(f, std::slice::from_ref(&pin)).await.unwrap();
        assert_eq!(export(f).await.unwrap(), vec![pin.clone()]);
        for _ in 0..3 {
            backup(f, 2).await.unwrap().unwrap();
        }
        let saved = cleanup(f, 2).await.unwrap().unwrap();
        assert!(!has_state(f));
        assert!(export(f).await.unwrap().is_empty());
        let n = std::fs::read_dir(backups_dir(f)).unwrap().count();
        assert_eq!(n, 2, "only backups_rotate backups are kept");
        let text = std::fs::read(&saved).unwrap();
        assert_eq!(crate::state::import(&text[..]).unwrap(), vec![pin]);
    }
}
