//! What `ipfs-cluster-service state …` does to a stopped peer's Raft data: export, import,
//! and cleanup with a rotating backup (`consensus.raft.backups_rotate`), so that cleaning
//! state (by hand or before a bootstrap) never silently loses a pinset. A CRDT peer's
//! (`crdt::offline`) are built of the same parts, on its own database.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;

use super::store::{self, db_path};
use crate::components::{ConsensusError, Pinset};
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

/// Writes the applied pinset of a stopped peer as newline-delimited JSON, one pin at a time
/// (nothing when it never ran). Returns how many pins it wrote.
pub async fn export(folder: &Path, out: impl Write) -> Result<u64, ConsensusError> {
    export_db(&db_path(folder), out).await
}

/// [`export`] of the pinset in database `db`.
pub(crate) async fn export_db(db: &Path, mut out: impl Write) -> Result<u64, ConsensusError> {
    let db = db.to_path_buf();
    if !db.exists() {
        return Ok(0);
    }
    let pool = store::open(&db).await?;
    let mut pins = store::PinsTable::new(pool.clone()).stream();
    let mut count = 0;
    let written: Result<u64, ConsensusError> = async {
        while let Some(pin) = pins.try_next().await? {
            crate::state::export_one(&pin, &mut out).map_err(|e| io_error(&db, e))?;
            count += 1;
        }
        out.flush().map_err(|e| io_error(&db, e))?;
        Ok(count)
    }
    .await;
    drop(pins);
    pool.close().await;
    written
}

/// An import into a stopped peer: staged first (streaming, all or nothing), so that the
/// caller can confirm with the count before anything changes.
pub struct StagedImport {
    pool: sqlx::SqlitePool,
    pub count: u64,
    /// How the staged pins become the pinset when it is not Raft's way (a CRDT peer's).
    commit: Option<CommitStaged>,
}

/// A commit of staged pins other than Raft's, given the database's pool.
pub(crate) type CommitStaged = Box<
    dyn FnOnce(sqlx::SqlitePool) -> futures::future::BoxFuture<'static, Result<(), ConsensusError>>
        + Send,
>;

/// Stages `pins` for import; a bad line is an error naming it and changes nothing.
pub async fn stage_import(
    folder: &Path,
    pins: impl IntoIterator<Item = Result<Pin, crate::state::ImportError>>,
) -> Result<StagedImport, ConsensusError> {
    stage_import_db(&db_path(folder), pins, None).await
}

/// [`stage_import`] into database `db`, committed by `commit` when given.
pub(crate) async fn stage_import_db(
    db: &Path,
    pins: impl IntoIterator<Item = Result<Pin, crate::state::ImportError>>,
    commit: Option<CommitStaged>,
) -> Result<StagedImport, ConsensusError> {
    let db = db.to_path_buf();
    crate::config::create_private_dir(db.parent().expect("db has a folder"))
        .map_err(|e| io_error(&db, e))?;
    let pool = store::open(&db).await?;
    let pins = pins
        .into_iter()
        .map(|p| p.map_err(|e| ConsensusError::BadInput(e.to_string())));
    match store::stage_pins(&pool, pins).await {
        Ok(count) => Ok(StagedImport {
            pool,
            count,
            commit,
        }),
        Err(e) => {
            pool.close().await;
            Err(e)
        }
    }
}

impl StagedImport {
    /// Replaces the peer's pinset with the staged one.
    pub async fn commit(self) -> Result<(), ConsensusError> {
        let r = match self.commit {
            None => store::commit_staged(&self.pool).await,
            Some(commit) => commit(self.pool.clone()).await,
        };
        self.pool.close().await;
        r
    }

    /// Drops the staged pins; the pinset is unchanged.
    pub async fn discard(self) {
        store::discard_staged(&self.pool).await;
        self.pool.close().await;
    }
}

/// Writes the current pinset to a new backup file and deletes the oldest beyond `rotate`.
/// Returns the new file, or None when there was no state to back up.
pub async fn backup(folder: &Path, rotate: u32) -> Result<Option<PathBuf>, ConsensusError> {
    backup_db(&db_path(folder), &backups_dir(folder), rotate).await
}

/// [`backup`] of database `db` into `dir`.
pub(crate) async fn backup_db(
    db: &Path,
    dir: &Path,
    rotate: u32,
) -> Result<Option<PathBuf>, ConsensusError> {
    if !db.exists() {
        return Ok(None);
    }
    let dir = dir.to_path_buf();
    crate::config::create_private_dir(&dir).map_err(|e| io_error(&dir, e))?;
    let name = format!(
        "pinset-{}.ndjson",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ")
    );
    let path = dir.join(name);
    let tmp = path.with_extension("tmp");
    let file = crate::config::create_private(&tmp).map_err(|e| io_error(&tmp, e))?;
    let mut out = std::io::BufWriter::new(file);
    export_db(db, &mut out).await?;
    let file = out.into_inner().map_err(|e| io_error(&tmp, e.error()))?;
    file.sync_all().map_err(|e| io_error(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
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
    cleanup_db(&db_path(folder), &backups_dir(folder), rotate).await
}

/// [`cleanup`] of database `db`: backed up into `backups`, then its whole folder removed.
pub(crate) async fn cleanup_db(
    db: &Path,
    backups: &Path,
    rotate: u32,
) -> Result<Option<PathBuf>, ConsensusError> {
    let saved = backup_db(db, backups, rotate).await?;
    let dir = db.parent().expect("db has a folder");
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PinOptions;

    async fn exported(f: &Path) -> Vec<Pin> {
        let mut buf = Vec::new();
        let n = export(f, &mut buf).await.unwrap();
        let pins: Vec<Pin> = crate::state::read_pins(&buf[..])
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(n as usize, pins.len());
        pins
    }

    fn pin(n: u32) -> Pin {
        let mut p = Pin::new(crate::ipfsconn::fake::test_cid(n), PinOptions::default());
        p.timestamp = chrono::DateTime::UNIX_EPOCH;
        p
    }

    #[tokio::test]
    async fn import_export_cleanup_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path();
        assert!(exported(f).await.is_empty());
        assert_eq!(backup(f, 2).await.unwrap(), None);
        let staged = stage_import(f, [Ok(pin(1))]).await.unwrap();
        assert_eq!(staged.count, 1);
        staged.commit().await.unwrap();
        assert_eq!(exported(f).await, vec![pin(1)]);
        for _ in 0..3 {
            backup(f, 2).await.unwrap().unwrap();
        }
        let saved = cleanup(f, 2).await.unwrap().unwrap();
        assert!(!has_state(f));
        assert!(exported(f).await.is_empty());
        let n = std::fs::read_dir(backups_dir(f)).unwrap().count();
        assert_eq!(n, 2, "only backups_rotate backups are kept");
        let text = std::fs::read(&saved).unwrap();
        let back: Vec<Pin> = crate::state::read_pins(&text[..])
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, vec![pin(1)]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&saved).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "backups are owner-only");
        }
    }

    #[tokio::test]
    async fn an_import_with_a_bad_line_or_declined_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path();
        stage_import(f, [Ok(pin(1))])
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
        let input = format!(
            "{}\n{}\nnot json\n",
            serde_json::to_string(&pin(2)).unwrap(),
            serde_json::to_string(&pin(3)).unwrap()
        );
        let err = stage_import(f, crate::state::read_pins(input.as_bytes()))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("line 3"), "{err}");
        assert_eq!(exported(f).await, vec![pin(1)]);
        let staged = stage_import(f, [Ok(pin(2))]).await.unwrap();
        staged.discard().await;
        assert_eq!(exported(f).await, vec![pin(1)]);
    }
}
