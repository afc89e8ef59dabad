//! The app's Add: files and folders from disk, streamed into this peer's IPFS as one DAG, then
//! pinned with the name and copies the user chose.
//!
//! Nothing is read whole: each file goes in chunks straight into the body of one Kubo `add`
//! request (the same path as the REST API's `/add`), so the app's memory stays flat whatever
//! the size. A dropped folder is one directory CID; several dropped items are wrapped in one
//! directory, as `ipfs add -w`; one file is its own CID. Progress is the bytes and files sent so
//! far, against the totals the walk found; a cancel ends the body with an error, which aborts
//! the add before anything is pinned.
//!
//! Inside a dropped folder, links are not followed (not to a secret outside it, not in a loop)
//! and hidden files and folders (`.git`, `.env`) are left out, as `ipfs add -r` does; both
//! are counted and told. A dropped link or hidden item itself is what the user chose: it is
//! added, under its own name. The walk is bounded ([`MAX_ENTRIES`]) and can be cancelled.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::io_error;
use crate::components::ByteStream;
use crate::error::{Error, Result};

/// What one read of a file puts into the request at most.
const CHUNK: usize = 256 * 1024;

/// One item of the upload, by its path in the DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        name: String,
    },
    File {
        path: PathBuf,
        name: String,
        size: u64,
    },
}

/// Files and folders one add takes at most: dropping a home folder by mistake is refused
/// rather than walked for minutes (the walk keeps each entry's path).
pub const MAX_ENTRIES: usize = 200_000;

/// What an add will send: every folder and file under the dropped paths, found before
/// anything is sent (so progress has totals).
#[derive(Debug, Clone)]
pub struct Plan {
    pub entries: Vec<Entry>,
    pub files: u64,
    pub bytes: u64,
    /// Several items: wrapped in one directory.
    pub wrap: bool,
    /// The name a pin gets when the user gives none.
    pub default_name: String,
    /// Left out inside dropped folders: hidden files and folders, and links.
    pub skipped_hidden: u64,
    pub skipped_links: u64,
}

/// Walks `paths` (blocking: file system metadata) into a [`Plan`]; stops with an error once
/// `cancel` fires.
pub fn plan(paths: &[PathBuf], cancel: &CancellationToken) -> Result<Plan> {
    if paths.is_empty() {
        return Err(Error::BadInput("nothing to add".into()));
    }
    let mut p = Plan {
        entries: Vec::new(),
        files: 0,
        bytes: 0,
        wrap: paths.len() > 1,
        default_name: String::new(),
        skipped_hidden: 0,
        skipped_links: 0,
    };
    let mut tops: Vec<String> = Vec::new();
    for path in paths {
        // A dropped link is named as the user sees it, and read where it points.
        let top = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::BadInput(format!("{}: not a file or folder", path.display())))?;
        if tops.contains(&top) {
            return Err(Error::BadInput(format!(
                "two of the items are named {top:?}: add them one at a time"
            )));
        }
        let real = std::fs::canonicalize(path).map_err(|e| io_error(path, e))?;
        let meta = std::fs::metadata(&real).map_err(|e| io_error(&real, e))?;
        walk(&real, meta, top.clone(), &mut p, cancel)?;
        tops.push(top);
    }
    if p.files == 0 {
        return Err(Error::BadInput(format!(
            "{}: no files to add",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    p.default_name = match tops.as_slice() {
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
        [] => unreachable!("paths is not empty"),
    };
    Ok(p)
}

fn walk(
    path: &Path,
    meta: std::fs::Metadata,
    name: String,
    p: &mut Plan,
    cancel: &CancellationToken,
) -> Result<()> {
    if cancel.is_cancelled() {
        return Err(cancelled());
    }
    if p.entries.len() >= MAX_ENTRIES {
        return Err(Error::BadInput(format!(
            "more than {MAX_ENTRIES} files and folders: add fewer at once"
        )));
    }
    if meta.is_file() {
        p.files += 1;
        p.bytes += meta.len();
        p.entries.push(Entry::File {
            path: path.to_path_buf(),
            name,
            size: meta.len(),
        });
    } else if meta.is_dir() {
        p.entries.push(Entry::Dir { name: name.clone() });
        let mut children: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| io_error(path, e))?
            .flatten()
            .map(|e| e.path())
            .collect();
        children.sort();
        for c in children {
            let file_name = c
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            // Not followed: a link is neither a file nor a folder here.
            let meta = std::fs::symlink_metadata(&c).map_err(|e| io_error(&c, e))?;
            if meta.file_type().is_symlink() {
                p.skipped_links += 1;
                continue;
            }
            if file_name.starts_with('.') {
                p.skipped_hidden += 1;
                continue;
            }
            walk(&c, meta, format!("{name}/{file_name}"), p, cancel)?;
        }
    }
    Ok(())
}

/// How a cancelled add ends, whenever the cancel came.
pub(super) fn cancelled() -> Error {
    Error::BadInput("the add was cancelled: nothing was pinned".into())
}

/// How far an add has gone, as the window shows it. Totals are 0 while the walk runs.
#[derive(Serialize, Clone, Debug, Default, PartialEq, ts_rs::TS)]
pub struct AddProgress {
    pub name: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files_done: u64,
    pub files_total: u64,
}

/// The running counts of an add, shared by its body and whoever shows its progress.
#[derive(Default)]
pub struct Counters {
    bytes: AtomicU64,
    files: AtomicU64,
    bytes_total: AtomicU64,
    files_total: AtomicU64,
}

impl Counters {
    /// The totals, once the walk found them.
    pub fn set_totals(&self, plan: &Plan) {
        self.bytes_total.store(plan.bytes, Ordering::Relaxed);
        self.files_total.store(plan.files, Ordering::Relaxed);
    }

    pub fn progress(&self, name: &str) -> AddProgress {
        AddProgress {
            name: name.to_string(),
            bytes_done: self.bytes.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            files_done: self.files.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
        }
    }
}

/// The add running now: what the window's progress bar and its Cancel button reach.
pub struct Running {
    pub name: String,
    pub counters: Arc<Counters>,
    pub cancel: CancellationToken,
}

impl Running {
    pub fn progress(&self) -> AddProgress {
        self.counters.progress(&self.name)
    }
}

/// What an add made: the pin, and what it left out of the dropped folders.
#[derive(Serialize, Clone, Debug, PartialEq, ts_rs::TS)]
pub struct Added {
    pub pin: crate::types::Pin,
    pub skipped_hidden: u64,
    pub skipped_links: u64,
}

/// The boundary of the multipart body: random, so no file's bytes can end a part early.
pub fn boundary() -> String {
    format!(
        "------------ipfs-cluster-desktop-{:032x}",
        rand::random::<u128>()
    )
}

/// A part's file name as Kubo reads it (query-unescaped): everything but unreserved
/// characters and `/` escaped.
fn escape(name: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(name, SET).to_string()
}

fn part_head(boundary: &str, name: &str, content_type: &str) -> Bytes {
    Bytes::from(format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
         Content-Type: {content_type}\r\n\r\n",
        escape(name)
    ))
}

/// Opens a file of the walk for reading, refusing what is no longer a regular file (swapped
/// for a link or a FIFO since: `O_NOFOLLOW`, and `O_NONBLOCK` so a FIFO cannot block the open).
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    Ok(f)
}

/// The multipart body of `plan` in Kubo's `add` form, read from disk a chunk at a time as the
/// request sends it; `counters` follow it. Once `cancel` fires, the next chunk is an error.
pub fn body(
    plan: Plan,
    boundary: String,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) -> ByteStream {
    async_stream::try_stream! {
        for entry in plan.entries {
            if cancel.is_cancelled() {
                Err(std::io::Error::other("the add was cancelled"))?;
            }
            match entry {
                Entry::Dir { name } => {
                    yield part_head(&boundary, &name, "application/x-directory");
                    yield Bytes::from_static(b"\r\n");
                }
                Entry::File { path, name, .. } => {
                    yield part_head(&boundary, &name, "application/octet-stream");
                    let file = tokio::task::spawn_blocking(move || open_regular(&path))
                        .await
                        .map_err(std::io::Error::other)??;
                    let mut chunks =
                        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), CHUNK);
                    while let Some(chunk) = chunks.next().await {
                        if cancel.is_cancelled() {
                            Err(std::io::Error::other("the add was cancelled"))?;
                        }
                        let chunk = chunk?;
                        counters.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        yield chunk;
                    }
                    counters.files.fetch_add(1, Ordering::Relaxed);
                    yield Bytes::from_static(b"\r\n");
                }
            }
        }
        yield Bytes::from(format!("--{boundary}--\r\n"));
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    #[test]
    fn a_walk_finds_folders_and_files_in_order_and_follows_no_link_inside() {
        let dir = tempfile::tempdir().unwrap();
        let album = dir.path().join("album");
        std::fs::create_dir_all(album.join("sub")).unwrap();
        std::fs::write(album.join("b.txt"), b"beta").unwrap();
        std::fs::write(album.join("sub/c.txt"), b"gamma!").unwrap();
        std::fs::write(dir.path().join("secret"), b"PRIVATE").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), album.join("x")).unwrap();
        std::os::unix::fs::symlink(".", album.join("loop")).unwrap();
        std::fs::write(album.join(".env"), b"TOKEN=1").unwrap();
        std::fs::create_dir(album.join(".git")).unwrap();
        std::fs::write(album.join(".git/config"), b"x").unwrap();
        let go = CancellationToken::new();
        let p = plan(std::slice::from_ref(&album), &go).unwrap();
        let names: Vec<String> = p
            .entries
            .iter()
            .map(|e| match e {
                Entry::Dir { name } => format!("{name}/"),
                Entry::File { name, .. } => name.clone(),
            })
            .collect();
        assert_eq!(
            names,
            ["album/", "album/b.txt", "album/sub/", "album/sub/c.txt"]
        );
        assert_eq!((p.files, p.bytes, p.wrap), (2, 10, false));
        assert_eq!(p.default_name, "album");
        assert_eq!(
            (p.skipped_hidden, p.skipped_links),
            (2, 2),
            "hidden items and links told"
        );
        // A hidden item or a link dropped itself is what the user chose, under its own name.
        let env = plan(&[album.join(".env")], &go).unwrap();
        assert_eq!((env.files, env.default_name.as_str()), (1, ".env"));
        let link = plan(&[album.join("x")], &go).unwrap();
        assert_eq!(
            (link.files, link.bytes, link.default_name.as_str()),
            (1, 7, "x")
        );

        let two = plan(&[album.join("b.txt"), album.join("sub")], &go).unwrap();
        assert!(two.wrap, "several items are wrapped in one directory");
        assert_eq!(two.default_name, "b.txt and 1 more");
        let err = plan(&[album.join("b.txt"), album.join("b.txt")], &go).unwrap_err();
        assert!(err.to_string().contains("named \"b.txt\""), "{err}");
        assert!(plan(&[dir.path().join("missing")], &go).is_err());
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(plan(std::slice::from_ref(&empty), &go)
            .unwrap_err()
            .to_string()
            .contains("no files"));
        // A walk stops when cancelled.
        let stop = CancellationToken::new();
        stop.cancel();
        let err = plan(&[album], &stop).unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{err}");
    }

    #[tokio::test]
    async fn the_body_is_kubos_multipart_form_counted_as_it_goes_and_stops_when_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let album = dir.path().join("my album");
        std::fs::create_dir(&album).unwrap();
        let big = vec![7u8; 3 * CHUNK + 5];
        std::fs::write(album.join("big+file.bin"), &big).unwrap();
        let p = plan(&[album], &CancellationToken::new()).unwrap();
        let counters = Arc::new(Counters::default());
        counters.set_totals(&p);
        let b = "BOUNDARY".to_string();
        let all: Vec<Bytes> = body(
            p.clone(),
            b.clone(),
            counters.clone(),
            CancellationToken::new(),
        )
        .try_collect()
        .await
        .unwrap();
        let text = all.concat();
        let head = "--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"my%20album\"\r\nContent-Type: application/x-directory\r\n\r\n\r\n\
                    --BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"my%20album/big%2Bfile.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n";
        assert!(text.starts_with(head.as_bytes()));
        assert_eq!(&text[head.len()..head.len() + big.len()], &big[..]);
        assert_eq!(&text[head.len() + big.len()..], b"\r\n--BOUNDARY--\r\n");
        assert!(
            all.iter().all(|c| c.len() <= CHUNK),
            "read a chunk at a time"
        );
        assert_eq!(
            counters.progress("n"),
            AddProgress {
                name: "n".into(),
                bytes_done: big.len() as u64,
                bytes_total: big.len() as u64,
                files_done: 1,
                files_total: 1,
            }
        );

        // Cancelled after the first chunk of the file: the body ends with an error.
        let cancel = CancellationToken::new();
        let mut s = body(p, b, Arc::new(Counters::default()), cancel.clone());
        for _ in 0..3 {
            s.next().await.unwrap().unwrap();
        }
        cancel.cancel();
        let mut ended = false;
        while let Some(item) = s.next().await {
            if let Err(e) = item {
                assert!(e.to_string().contains("cancelled"));
                ended = true;
                break;
            }
        }
        assert!(ended, "a cancelled add ends its body with an error");
    }
}
