//! `POST /add?format=car`: a CAR file's blocks go to IPFS (`dag/import`) and its root is
//! pinned. Only the header is read here, to find the root (a CAR with more or fewer than
//! one root is refused, as IPFS Cluster does); the blocks stream on to IPFS.

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};

use crate::components::ByteStream;
use crate::error::{Error, Result};
use crate::types::Cid;

/// Longest CAR header accepted (a header names roots only: a few hundred bytes).
const MAX_HEADER: usize = 1 << 20;

/// The CAR file of a multipart upload: its name, its single root, and its bytes (the
/// header included) as they arrive.
pub(super) struct CarUpload {
    pub name: String,
    pub root: Cid,
    pub bytes: ByteStream,
}

fn bad(why: impl std::fmt::Display) -> Error {
    Error::BadInput(format!("format=car: {why}"))
}

/// Reads `body` (multipart, `content_type` with its boundary) up to the end of the first
/// file's CAR header.
pub(super) async fn open(content_type: &str, body: ByteStream) -> Result<CarUpload> {
    let boundary = multer::parse_boundary(content_type).map_err(bad)?;
    let mut form = multer::Multipart::new(body, boundary);
    let mut field = form
        .next_field()
        .await
        .map_err(bad)?
        .ok_or_else(|| bad("the request holds no file"))?;
    let name = field.file_name().unwrap_or_default().to_string();
    let mut head = BytesMut::new();
    let root = loop {
        if let Some(header) = header_len(&head)? {
            break root_of(&head[header.0..header.0 + header.1])?;
        }
        if head.len() > MAX_HEADER {
            return Err(bad("the CAR header is too long"));
        }
        match field.chunk().await.map_err(bad)? {
            Some(c) => head.extend_from_slice(&c),
            None => return Err(bad("the file ends before its CAR header does")),
        }
    };
    let first = futures::stream::once(futures::future::ready(Ok::<Bytes, std::io::Error>(
        head.freeze(),
    )));
    // Only the first file is read; the form (and anything after it) is dropped with it.
    let rest = field.map_err(std::io::Error::other);
    Ok(CarUpload {
        name,
        root,
        bytes: first.chain(rest).boxed(),
    })
}

/// Reads an unsigned varint at the start of `b`: (value, its length), or None if `b` ends
/// inside it.
fn varint(b: &[u8]) -> Result<Option<(u64, usize)>> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((v, i + 1)));
        }
    }
    if b.len() >= 10 {
        return Err(bad("not a CAR file (bad header length)"));
    }
    Ok(None)
}

/// Where the header's CBOR starts and how long it is, once `b` holds all of it.
fn header_len(b: &[u8]) -> Result<Option<(usize, usize)>> {
    let Some((len, at)) = varint(b)? else {
        return Ok(None);
    };
    let len = usize::try_from(len).map_err(bad)?;
    if len == 0 || len > MAX_HEADER {
        return Err(bad("not a CAR file (bad header length)"));
    }
    Ok((b.len() >= at + len).then_some((at, len)))
}

/// A minimal CBOR reader for the CAR v1 header: `{"roots": [CID…], "version": 1}`.
struct Cbor<'a> {
    b: &'a [u8],
}

impl Cbor<'_> {
    fn byte(&mut self) -> Result<u8> {
        let (first, rest) = self
            .b
            .split_first()
            .ok_or_else(|| bad("truncated header"))?;
        self.b = rest;
        Ok(*first)
    }

    /// A major type and its argument.
    fn head(&mut self) -> Result<(u8, u64)> {
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        let arg = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let n = 1usize << (info - 24);
                let mut v = 0u64;
                for _ in 0..n {
                    v = (v << 8) | u64::from(self.byte()?);
                }
                v
            }
            _ => return Err(bad("unsupported CBOR in the header")),
        };
        Ok((major, arg))
    }

    fn bytes(&mut self, n: u64) -> Result<&[u8]> {
        let n = usize::try_from(n).map_err(bad)?;
        if self.b.len() < n {
            return Err(bad("truncated header"));
        }
        let (v, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(v)
    }
}

fn root_of(header: &[u8]) -> Result<Cid> {
    let mut c = Cbor { b: header };
    let (major, entries) = c.head()?;
    if major != 5 {
        return Err(bad("not a CAR file (the header is not a map)"));
    }
    let (mut roots, mut version) = (None, None);
    for _ in 0..entries {
        let (major, n) = c.head()?;
        if major != 3 {
            return Err(bad("not a CAR file (a header key is not text)"));
        }
        let key = c.bytes(n)?.to_vec();
        match key.as_slice() {
            b"version" => {
                let (major, v) = c.head()?;
                if major != 0 {
                    return Err(bad("not a CAR file (bad version)"));
                }
                version = Some(v);
            }
            b"roots" => {
                let (major, n) = c.head()?;
                if major != 4 {
                    return Err(bad("not a CAR file (roots is not a list)"));
                }
                let mut list = Vec::new();
                for _ in 0..n {
                    // A CID: tag 42 around bytes that start with the identity multibase 0x00.
                    if c.head()? != (6, 42) {
                        return Err(bad("not a CAR file (a root is not a CID)"));
                    }
                    let (major, len) = c.head()?;
                    let raw = c.bytes(len)?;
                    if major != 2 || raw.first() != Some(&0) {
                        return Err(bad("not a CAR file (a root is not a CID)"));
                    }
                    let cid = cid::Cid::try_from(&raw[1..]).map_err(bad)?;
                    list.push(Cid(cid));
                }
                roots = Some(list);
            }
            _ => return Err(bad("not a CAR v1 file (unknown header key)")),
        }
    }
    match version {
        Some(1) => {}
        Some(v) => return Err(bad(format!("CAR version {v} is not supported (only 1)"))),
        None => return Err(bad("not a CAR file (no version)")),
    }
    match roots.unwrap_or_default().as_slice() {
        [one] => Ok(*one),
        [] => Err(bad("the CAR has no root")),
        many => Err(bad(format!(
            "the CAR has {} roots: only one is supported",
            many.len()
        ))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A CAR v1 header with `roots` (and no blocks).
    pub(crate) fn car_header(roots: &[Cid]) -> Vec<u8> {
        let mut cbor = vec![0xa2, 0x65];
        cbor.extend_from_slice(b"roots");
        cbor.push(0x80 | roots.len() as u8);
        for r in roots {
            let mut raw = vec![0u8];
            raw.extend_from_slice(&r.0.to_bytes());
            cbor.extend_from_slice(&[0xd8, 0x2a, 0x58, raw.len() as u8]);
            cbor.extend_from_slice(&raw);
        }
        cbor.push(0x67);
        cbor.extend_from_slice(b"version");
        cbor.push(0x01);
        let mut out = vec![cbor.len() as u8];
        out.extend_from_slice(&cbor);
        out
    }

    fn one(b: &[u8]) -> Result<Cid> {
        let (at, len) = header_len(b)?.expect("whole header");
        root_of(&b[at..at + len])
    }

    #[test]
    fn the_single_root_is_read_and_other_headers_are_refused() {
        let a: Cid = "bafkqaaa".parse().unwrap();
        let b: Cid = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
            .parse()
            .unwrap();
        assert_eq!(one(&car_header(&[a])).unwrap(), a);
        assert_eq!(one(&car_header(&[b])).unwrap(), b);
        assert!(one(&car_header(&[a, b]))
            .unwrap_err()
            .to_string()
            .contains("2 roots"));
        assert!(one(&car_header(&[]))
            .unwrap_err()
            .to_string()
            .contains("no root"));
        let whole = car_header(&[a]);
        assert_eq!(
            header_len(&whole[..whole.len() - 1]).unwrap(),
            None,
            "needs more"
        );
        assert!(one(b"\x05hello").is_err());
        assert!(header_len(&[0xff; 12]).is_err());
    }
}
