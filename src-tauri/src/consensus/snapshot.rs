//! Snapshots as files: built by streaming the `pins` table into a file, sent by openraft in
//! chunks read from that file, received into a file and installed from it, so that no step
//! holds the pinset in memory and no SQLite value has to hold it (SQLite refuses values over
//! 1 GB, about two million pins as one JSON value).
//!
//! Format: the 8 bytes `ICDSNAP` + version 1, then one zstd stream (with its checksum) of
//! records, each a little-endian `u32` length and a pin as the `pins` table stores it (JSON),
//! ended by `u32::MAX` and the `u64` count of records. The sender writes the records as they are
//! stored (no re-encoding); the receiver encodes each pin anew in its own format (see
//! `store::pins::PIN_FORMAT`: the sender may be another version), and zstd makes their repeated field names nearly free (about a tenth of the
//! table's size); the count and the checksum make a truncated or damaged file an error,
//! never a smaller pinset.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::pin::Pin as StdPin;
use std::task::{Context, Poll};

use async_compression::tokio::bufread::ZstdDecoder;
use async_compression::tokio::write::ZstdEncoder;
use tokio::fs::File;
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt, BufReader,
    BufWriter, ReadBuf,
};

use crate::types::Pin;

/// The format this version writes and reads (the header's last byte). A later format may
/// be written only once no peer of the cluster runs a version that reads only this one (a
/// leader sends its snapshot files to followers of the previous release during an upgrade).
const FORMAT: u8 = 1;
const MAGIC: &[u8; 8] = b"ICDSNAP\x01";
const END: u32 = u32::MAX;
/// Larger than any pin's JSON; a length beyond it means a damaged file.
const MAX_RECORD: u32 = 16 << 20;

/// Where a peer keeps its snapshot files.
pub fn dir(raft_dir: &Path) -> PathBuf {
    raft_dir.join("snapshots")
}

/// A snapshot's file, as openraft reads, writes and seeks it (`SnapshotData`), with its path
/// so that a received one can be kept under its snapshot's name.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    file: File,
}

/// A new, empty file at `path` that only its owner can read (a snapshot is the pinset).
async fn create_private(path: &std::path::Path) -> std::io::Result<File> {
    let mut opts = tokio::fs::OpenOptions::new();
    opts.read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600);
    crate::process::when_descriptors_free(|| opts.open(path)).await
}

impl SnapshotFile {
    pub async fn open(path: PathBuf) -> std::io::Result<SnapshotFile> {
        let file = crate::process::when_descriptors_free(|| File::open(&path)).await?;
        Ok(SnapshotFile { path, file })
    }

    /// A new, empty file to receive a snapshot into.
    pub async fn create(path: PathBuf) -> std::io::Result<SnapshotFile> {
        let file = create_private(&path).await?;
        Ok(SnapshotFile { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes what was written and makes it durable.
    pub async fn sync(&mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        self.file.sync_all().await
    }

    /// Reads the records from the start; see [`Records`].
    pub async fn records(mut self) -> std::io::Result<Records> {
        self.file.flush().await?;
        self.file.seek(SeekFrom::Start(0)).await?;
        let mut magic = [0u8; 8];
        self.file
            .read_exact(&mut magic)
            .await
            .map_err(|_| invalid("not a snapshot file (too short)"))?;
        if &magic != MAGIC {
            return Err(match magic.split_last() {
                Some((&format, name)) if name == &MAGIC[..7] && format > FORMAT => {
                    invalid(&format!(
                        "{}: a snapshot file of format {format}, written by a newer version; \
                         this is {}, which reads format {FORMAT}",
                        self.path.display(),
                        crate::types::full_version()
                    ))
                }
                _ => invalid(&format!("{}: not a snapshot file", self.path.display())),
            });
        }
        Ok(Records {
            inner: ZstdDecoder::new(BufReader::new(self.file)),
            read: 0,
            done: false,
        })
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

impl AsyncRead for SnapshotFile {
    fn poll_read(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        StdPin::new(&mut self.get_mut().file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(
        self: StdPin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        StdPin::new(&mut self.get_mut().file).poll_write(cx, buf)
    }

    fn poll_flush(self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        StdPin::new(&mut self.get_mut().file).poll_flush(cx)
    }

    fn poll_shutdown(self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        StdPin::new(&mut self.get_mut().file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(self: StdPin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        StdPin::new(&mut self.get_mut().file).start_seek(position)
    }

    fn poll_complete(self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        StdPin::new(&mut self.get_mut().file).poll_complete(cx)
    }
}

/// Writes a snapshot file record by record.
pub struct Writer {
    path: PathBuf,
    out: ZstdEncoder<BufWriter<File>>,
    count: u64,
}

impl Writer {
    pub async fn create(path: PathBuf) -> std::io::Result<Writer> {
        let mut file = BufWriter::new(create_private(&path).await?);
        file.write_all(MAGIC).await?;
        let out = ZstdEncoder::with_quality_and_params(
            file,
            async_compression::Level::Precise(1),
            &[async_compression::zstd::CParameter::checksum_flag(true)],
        );
        Ok(Writer {
            path,
            out,
            count: 0,
        })
    }

    /// Appends one pin, as the `pins` table stores it.
    pub async fn push(&mut self, pin_json: &str) -> std::io::Result<()> {
        let len = u32::try_from(pin_json.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD)
            .ok_or_else(|| invalid("a pin too large for a snapshot"))?;
        self.out.write_all(&len.to_le_bytes()).await?;
        self.out.write_all(pin_json.as_bytes()).await?;
        self.count += 1;
        Ok(())
    }

    /// Ends the file and makes it durable; returns how many pins it holds.
    pub async fn finish(mut self) -> std::io::Result<(PathBuf, u64)> {
        self.out.write_all(&END.to_le_bytes()).await?;
        self.out.write_all(&self.count.to_le_bytes()).await?;
        self.out.shutdown().await?;
        let mut file = self.out.into_inner().into_inner();
        file.flush().await?;
        file.sync_all().await?;
        Ok((self.path, self.count))
    }
}

/// The records of a snapshot file, each checked to be a pin. The end is only reached through
/// the end marker with the right count, and after the checksum has been checked.
pub struct Records {
    inner: ZstdDecoder<BufReader<File>>,
    read: u64,
    done: bool,
}

impl Records {
    /// The next pin and its JSON, or `None` at a correct end.
    pub async fn next(&mut self) -> std::io::Result<Option<(Pin, String)>> {
        if self.done {
            return Ok(None);
        }
        let truncated = |_| invalid("snapshot file is truncated");
        let mut len = [0u8; 4];
        self.inner.read_exact(&mut len).await.map_err(truncated)?;
        let len = u32::from_le_bytes(len);
        if len == END {
            let mut count = [0u8; 8];
            self.inner.read_exact(&mut count).await.map_err(truncated)?;
            if u64::from_le_bytes(count) != self.read {
                return Err(invalid("snapshot file's count does not match its records"));
            }
            // Reading to the end makes the decoder check the stream's checksum.
            let mut rest = Vec::new();
            self.inner.read_to_end(&mut rest).await?;
            if !rest.is_empty() {
                return Err(invalid("snapshot file has data after its end"));
            }
            self.done = true;
            return Ok(None);
        }
        if len > MAX_RECORD {
            return Err(invalid("snapshot file is damaged (record length)"));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf).await.map_err(truncated)?;
        let text = String::from_utf8(buf).map_err(|_| invalid("snapshot record is not text"))?;
        let pin: Pin = serde_json::from_str(&text)
            .map_err(|e| invalid(&format!("snapshot record is not a pin: {e}")))?;
        self.read += 1;
        Ok(Some((pin, text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfsconn::fake::test_cid;
    use crate::types::PinOptions;

    async fn write(path: &Path, n: u32) {
        let mut w = Writer::create(path.to_path_buf()).await.unwrap();
        for k in 0..n {
            let pin = Pin::new(test_cid(k), PinOptions::default());
            w.push(&serde_json::to_string(&pin).unwrap()).await.unwrap();
        }
        assert_eq!(w.finish().await.unwrap().1, n as u64);
    }

    async fn read_all(path: &Path) -> std::io::Result<Vec<Pin>> {
        let f = SnapshotFile::open(path.to_path_buf()).await?;
        let mut r = f.records().await?;
        let mut pins = Vec::new();
        while let Some((p, _)) = r.next().await? {
            pins.push(p);
        }
        Ok(pins)
    }

    #[tokio::test]
    async fn a_snapshot_file_reads_back_what_was_written_and_is_compact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        write(&path, 2000).await;
        let pins = read_all(&path).await.unwrap();
        assert_eq!(pins.len(), 2000);
        assert_eq!(pins[7].cid, test_cid(7));
        let json_size = 2000 * serde_json::to_string(&pins[0]).unwrap().len() as u64;
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(
            size * 4 < json_size,
            "{size} bytes for {json_size} bytes of JSON"
        );
    }

    #[tokio::test]
    async fn a_truncated_or_damaged_snapshot_file_is_an_error_not_fewer_pins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        write(&path, 2000).await;
        let whole = std::fs::read(&path).unwrap();
        for cut in [whole.len() - 1, whole.len() - 5, whole.len() / 2, 9] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            assert!(read_all(&path).await.is_err(), "cut at {cut} was accepted");
        }
        let mut flipped = whole.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        std::fs::write(&path, &flipped).unwrap();
        assert!(
            read_all(&path).await.is_err(),
            "a flipped byte was accepted"
        );
        std::fs::write(&path, b"{\"pins\": []}").unwrap();
        assert!(
            read_all(&path).await.is_err(),
            "an old JSON snapshot was accepted"
        );
    }

    /// A snapshot file of a later format (a newer version's) is refused, naming its format
    /// and this version, and left as it is.
    #[tokio::test]
    async fn a_snapshot_file_of_a_newer_format_is_refused_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        write(&path, 3).await;
        let mut newer = std::fs::read(&path).unwrap();
        newer[7] = FORMAT + 1;
        std::fs::write(&path, &newer).unwrap();
        let e = read_all(&path).await.unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "format {}, written by a newer version",
                FORMAT + 1
            )) && e.contains(crate::types::full_version())
                && e.contains(&format!("reads format {FORMAT}")),
            "{e}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), newer);
    }
}
