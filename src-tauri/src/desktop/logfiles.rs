//! The app's log on disk, for a bug report: every line the app logs also goes to
//! `<state folder>/logs/ipfs-cluster-desktop.log` (the XDG state folder on Linux:
//! `~/.local/state/ipfs-cluster-desktop`), rotated by size ([`FILE_MAX`] each, [`KEEP`] files
//! kept, the oldest dropped), so the log costs a bounded amount of disk however long the app
//! runs. And whether the last run ended cleanly: a marker file is written when the app starts
//! and removed when it quits (Quit, or SIGTERM/SIGINT at logout); a marker found at start means
//! the last run crashed or was killed, and the app says so and where its log is.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bytes in one log file at most (a line that would pass it starts the next file).
pub const FILE_MAX: u64 = 10 * 1024 * 1024;
/// Files kept: the current one and the ones before it.
pub const KEEP: usize = 5;
const NAME: &str = "ipfs-cluster-desktop.log";
const MARKER: &str = "running";

/// Where the app keeps its logs: the XDG state folder (Linux), else the local data folder.
pub fn default_dir() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("ipfs-cluster-desktop").join("logs"))
}

/// The log files of one folder, written by every line the app logs (a handle: clones write
/// to the same files).
#[derive(Clone)]
pub struct LogFiles(Arc<Files>);

struct Files {
    dir: PathBuf,
    current: Mutex<Current>,
}

struct Current {
    file: Option<File>,
    written: u64,
}

impl LogFiles {
    /// Opens (or makes) `dir` and appends to its current file.
    pub fn open(dir: &Path) -> io::Result<LogFiles> {
        std::fs::create_dir_all(dir)?;
        // Yours only: a log names peers, addresses and CIDs.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let file = append_to(&dir.join(NAME))?;
        let written = file.metadata()?.len();
        Ok(LogFiles(Arc::new(Files {
            dir: dir.to_path_buf(),
            current: Mutex::new(Current {
                file: Some(file),
                written,
            }),
        })))
    }

    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// The file being written.
    pub fn path(&self) -> PathBuf {
        self.0.path()
    }

    fn write_line(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_line(buf)
    }
}

impl Files {
    fn path(&self) -> PathBuf {
        self.dir.join(NAME)
    }

    fn numbered(&self, n: usize) -> PathBuf {
        self.dir.join(format!("{NAME}.{n}"))
    }

    /// The current file becomes `.1`, `.1` becomes `.2`…, the last one kept is dropped.
    fn rotate(&self, cur: &mut Current) -> io::Result<()> {
        cur.file = None;
        let _ = std::fs::remove_file(self.numbered(KEEP - 1));
        for n in (1..KEEP - 1).rev() {
            let from = self.numbered(n);
            if from.exists() {
                std::fs::rename(&from, self.numbered(n + 1))?;
            }
        }
        std::fs::rename(self.path(), self.numbered(1))?;
        cur.file = Some(append_to(&self.path())?);
        cur.written = 0;
        Ok(())
    }

    fn write_line(&self, buf: &[u8]) -> io::Result<usize> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if cur.written > 0 && cur.written + buf.len() as u64 > FILE_MAX {
            // A failed rotation keeps writing where it can.
            if let Err(e) = self.rotate(&mut cur) {
                if cur.file.is_none() {
                    return Err(e);
                }
            }
        }
        let file = cur
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("the log file could not be reopened"))?;
        file.write_all(buf)?;
        cur.written += buf.len() as u64;
        Ok(buf.len())
    }
}

/// A log file opened to append to, made readable by its owner only.
fn append_to(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}

/// A writer of one event's text, for `tracing_subscriber::fmt`.
pub struct LineWriter(LogFiles);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_line(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFiles {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter(self.clone())
    }
}

/// Marks this run as under way in `dir`; what the last run left, if it did not end cleanly:
/// when it started (the marker's time), for the message.
/// A mark of a process still running (another instance, if the single-instance check could
/// not run) is left alone and is no unclean end.
pub fn begin_run(dir: &Path) -> io::Result<Option<std::time::SystemTime>> {
    let marker = dir.join(MARKER);
    let Ok(meta) = std::fs::metadata(&marker) else {
        std::fs::write(&marker, std::process::id().to_string())?;
        return Ok(None);
    };
    let pid = std::fs::read_to_string(&marker).unwrap_or_default();
    if pid.trim().parse::<u32>().is_ok_and(running) {
        return Ok(None);
    }
    std::fs::write(&marker, std::process::id().to_string())?;
    Ok(Some(meta.modified().unwrap_or(std::time::UNIX_EPOCH)))
}

/// Whether process `pid`, not this one, is an instance of this app still running.
fn running(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let exe = |p: &str| std::fs::read_link(format!("/proc/{p}/exe")).ok();
    match (exe(&pid.to_string()), exe("self")) {
        (Some(other), Some(me)) => other == me,
        _ => false,
    }
}

/// This run ends cleanly: the marker goes.
pub fn end_run(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(MARKER));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    #[test]
    fn files_rotate_by_size_and_only_a_few_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogFiles::open(dir.path()).unwrap();
        let line = vec![b'x'; 1024 * 1024 - 1]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        // 60 lines of 1 MiB: six files' worth, of which five are kept.
        for _ in 0..60 {
            logs.make_writer().write_all(&line).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "ipfs-cluster-desktop.log",
                "ipfs-cluster-desktop.log.1",
                "ipfs-cluster-desktop.log.2",
                "ipfs-cluster-desktop.log.3",
                "ipfs-cluster-desktop.log.4"
            ]
        );
        for n in &names {
            let meta = std::fs::metadata(dir.path().join(n)).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{n}: yours only");
            }
            let len = meta.len();
            assert!(len <= FILE_MAX, "{n}: {len}");
            assert_eq!(len % line.len() as u64, 0, "{n}: lines are never cut");
        }
        // Opened again (the next start): appends to the current file.
        let dir = tempfile::tempdir().unwrap();
        LogFiles::open(dir.path())
            .unwrap()
            .make_writer()
            .write_all(b"first run\n")
            .unwrap();
        let again = LogFiles::open(dir.path()).unwrap();
        again.make_writer().write_all(b"next run\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(again.path()).unwrap(),
            "first run\nnext run\n"
        );
    }

    #[test]
    fn a_run_that_did_not_end_cleanly_is_told_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(begin_run(dir.path()).unwrap(), None, "the first run");
        end_run(dir.path());
        assert_eq!(begin_run(dir.path()).unwrap(), None, "after a clean end");
        // Killed: no end.
        assert!(begin_run(dir.path()).unwrap().is_some());
        // That start marked its own run: told once.
        end_run(dir.path());
        assert_eq!(begin_run(dir.path()).unwrap(), None);
        // A mark of a process gone, or of another program, is an unclean end.
        assert!(
            !running(std::process::id()),
            "this process is not another instance"
        );
        std::fs::write(dir.path().join(MARKER), "1").unwrap();
        assert!(
            begin_run(dir.path()).unwrap().is_some(),
            "pid 1 is another program"
        );
    }
}
