//! `add`: files and folders from disk, streamed to `POST /add` in Kubo's multipart form (one
//! part per file, read as it is sent, and one `application/x-directory` part per folder),
//! with a progress bar on a terminal.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use ipfs_cluster::client::Client;
use ipfs_cluster::types::AddedOutput;
use reqwest::multipart::{Form, Part};

/// One entry of the upload: its path in the form, and the file on disk (None: a folder).
struct Entry {
    name: String,
    file: Option<(PathBuf, u64)>,
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Every entry under `path`, parents before children, named from `prefix`.
fn walk(
    path: &Path,
    prefix: &str,
    recursive: bool,
    hidden: bool,
    out: &mut Vec<Entry>,
) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if meta.is_file() {
        out.push(Entry {
            name: prefix.to_string(),
            file: Some((path.to_path_buf(), meta.len())),
        });
        return Ok(());
    }
    if !recursive {
        bail!("{} is a directory: use -r to add it", path.display());
    }
    out.push(Entry {
        name: prefix.to_string(),
        file: None,
    });
    let mut children: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("{}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    children.sort();
    for child in children {
        if !hidden && is_hidden(&child) {
            continue;
        }
        // Links inside a folder are not followed (a link to ~/.ssh would be added, links to
        // `.` would loop); the paths given on the command line are.
        if std::fs::symlink_metadata(&child).is_ok_and(|m| m.file_type().is_symlink()) {
            eprintln!("skipping the symbolic link {}", child.display());
            continue;
        }
        let name = child.file_name().unwrap_or_default().to_string_lossy();
        walk(&child, &format!("{prefix}/{name}"), recursive, hidden, out)?;
    }
    Ok(())
}

/// The entries of `paths` (each named by its last component), and their total size.
fn entries(paths: &[PathBuf], recursive: bool, hidden: bool) -> anyhow::Result<(Vec<Entry>, u64)> {
    let mut out = Vec::new();
    for p in paths {
        // The path given is followed; from there on, nothing is (see `walk`, `form`).
        let p = &p
            .canonicalize()
            .with_context(|| format!("{}", p.display()))?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into());
        walk(p, &name, recursive, hidden, &mut out)?;
    }
    let total = out
        .iter()
        .filter_map(|e| e.file.as_ref())
        .map(|f| f.1)
        .sum();
    Ok((out, total))
}

/// The multipart form of `entries`, each file read as it is sent and counted on `bar`.
async fn form(entries: Vec<Entry>, bar: &ProgressBar) -> anyhow::Result<Form> {
    let mut form = Form::new();
    for e in entries {
        let part = match e.file {
            None => Part::bytes(Vec::new()).mime_str("application/x-directory")?,
            Some((path, len)) => {
                // A link swapped in since the walk is not followed; nor is a FIFO waited on.
                let file = tokio::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(&path)
                    .await
                    .with_context(|| format!("{}", path.display()))?;
                let bar = bar.clone();
                let body = tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
                    if let Ok(c) = chunk {
                        bar.inc(c.len() as u64);
                    }
                });
                Part::stream_with_length(reqwest::Body::wrap_stream(body), len)
                    .mime_str("application/octet-stream")?
            }
        };
        form = form.part("file", part.file_name(e.name));
    }
    Ok(form)
}

/// How to show what was added.
pub struct Output {
    pub json: bool,
    /// `-q`: CIDs only.
    pub quiet: bool,
    /// `-Q`: the root's CID only.
    pub quieter: bool,
}

/// Adds `paths`; prints each added node as it comes (the root only with `-Q`). Returns the
/// root's CID.
pub async fn add(
    client: &Client,
    paths: &[PathBuf],
    recursive: bool,
    hidden: bool,
    query: Vec<(String, String)>,
    show: Output,
) -> anyhow::Result<String> {
    let (entries, total) = entries(paths, recursive, hidden)?;
    let bar = if show.quiet || show.quieter || show.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .expect("static template"),
    );
    let form = form(entries, &bar).await?;
    let mut last: Option<AddedOutput> = None;
    let print = |o: &AddedOutput| {
        if show.json {
            println!("{}", serde_json::to_string_pretty(o).expect("serializes"));
        } else if show.quiet || show.quieter {
            println!("{}", o.cid);
        } else {
            println!("added {} {}", o.cid, o.name);
        }
    };
    client
        .add(form, &query, |o| {
            if !show.quieter {
                bar.suspend(|| print(&o));
            }
            last = Some(o);
        })
        .await?;
    bar.finish_and_clear();
    let root = last.context("the peer reported nothing added")?;
    if show.quieter {
        print(&root);
    }
    Ok(root.cid.to_string())
}
