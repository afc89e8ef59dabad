//! Metrics on pubsub as IPFS Cluster's pubsub monitor sends them (`monitor/pubsubmon`): one
//! `api.Metric` per message on the topic [`TOPIC`], encoded by ugorji's msgpack codec with
//! its default handle. That codec writes a struct as a map of its `codec` field names
//! (`n`, `p`, `v`, `e`, `d`, `w`, `o`, `t`) in declaration order, leaving out zero values
//! (`omitempty`); strings and the peer id (its binary form, `peer.ID.MarshalBinary`) as
//! msgpack's legacy raw (fixstr, str16, str32: never str8), signed integers in their
//! smallest signed form, and booleans as `true`/`false`. IPFS Cluster before 0.13.3 put
//! `\x09/msgpack\n` (multicodec) in front: read as well.
//!
//! Decoding takes any msgpack a peer might send (every string, binary and integer form,
//! unknown keys skipped) within bounds: a message of at most [`MAX_MESSAGE`] bytes, nesting
//! at most [`MAX_DEPTH`] deep.

use crate::types::Metric;

/// The topic IPFS Cluster's peers publish their metrics on (`pubsubmon.PubsubTopic`).
pub const TOPIC: &str = "monitor.metrics";

/// The largest metric message taken (gossipsub's own limit is 64 KiB).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// The longest value taken (IPFS Cluster's ping value, its JSON with the IPFS node's
/// addresses, is well under 1 KiB): a peer cannot fill every other peer's monitor with
/// 64 KiB values.
pub const MAX_VALUE: usize = 8 * 1024;

/// The metric names IPFS Cluster's informers publish (and `tag:<name>`, its tags
/// informer's): the only ones taken from the topic, so that no peer fills the monitor's
/// names ([`super::MAX_NAMES`]) with its own.
pub fn known_name(name: &str) -> bool {
    informer_name(name)
        || name
            .strip_prefix("tag:")
            .is_some_and(|t| !t.is_empty() && t.len() <= 64)
}

/// The names of IPFS Cluster's own metrics (tags aside): always kept by the monitor.
pub fn informer_name(name: &str) -> bool {
    matches!(
        name,
        "ping" | "freespace" | "reposize" | "numpin" | "pinqueue"
    )
}

/// The deepest nesting skipped in an unknown value.
const MAX_DEPTH: usize = 16;

/// What a multicodec-prefixed metric (IPFS Cluster ≤ 0.13.3) starts with.
const MULTICODEC: &[u8] = b"\x09/msgpack\n";

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("metric message: {0}")]
pub struct WireError(pub String);

fn bad<T>(why: impl Into<String>) -> Result<T, WireError> {
    Err(WireError(why.into()))
}

/// `m` as IPFS Cluster publishes it. Its peer must be a peer id.
pub fn encode(m: &Metric) -> Result<Vec<u8>, WireError> {
    let peer = match m.peer.is_empty() {
        true => Vec::new(),
        false => m
            .peer
            .parse::<libp2p_identity::PeerId>()
            .map_err(|e| WireError(format!("peer {:?}: {e}", m.peer)))?
            .to_bytes(),
    };
    let mut fields: Vec<(&str, Value)> = Vec::with_capacity(8);
    if !m.name.is_empty() {
        fields.push(("n", Value::Raw(m.name.as_bytes())));
    }
    if !peer.is_empty() {
        fields.push(("p", Value::Raw(&peer)));
    }
    if !m.value.is_empty() {
        fields.push(("v", Value::Raw(m.value.as_bytes())));
    }
    if m.expire != 0 {
        fields.push(("e", Value::Int(m.expire)));
    }
    if m.valid {
        fields.push(("d", Value::Bool(true)));
    }
    if m.weight != 0 {
        fields.push(("w", Value::Int(m.weight)));
    }
    if m.partitionable {
        fields.push(("o", Value::Bool(true)));
    }
    if m.received_at != 0 {
        fields.push(("t", Value::Int(m.received_at)));
    }
    let mut out = Vec::with_capacity(64 + m.value.len());
    // Fewer than 16 fields: always a fixmap.
    out.push(0x80 | fields.len() as u8);
    for (k, v) in fields {
        raw(&mut out, k.as_bytes());
        match v {
            Value::Raw(b) => raw(&mut out, b),
            Value::Int(i) => int(&mut out, i),
            Value::Bool(b) => out.push(if b { 0xc3 } else { 0xc2 }),
        }
    }
    Ok(out)
}

enum Value<'a> {
    Raw(&'a [u8]),
    Int(i64),
    Bool(bool),
}

/// Msgpack's legacy raw, as ugorji writes strings and bytes without `WriteExt`.
fn raw(out: &mut Vec<u8>, b: &[u8]) {
    let l = b.len();
    if l < 32 {
        out.push(0xa0 | l as u8);
    } else if l < 65536 {
        out.push(0xda);
        out.extend_from_slice(&(l as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(l as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

/// A signed integer in its smallest signed form, as ugorji's `EncodeInt`.
fn int(out: &mut Vec<u8>, i: i64) {
    if i > i8::MAX as i64 {
        if i <= i16::MAX as i64 {
            out.push(0xd1);
            out.extend_from_slice(&(i as i16).to_be_bytes());
        } else if i <= i32::MAX as i64 {
            out.push(0xd2);
            out.extend_from_slice(&(i as i32).to_be_bytes());
        } else {
            out.push(0xd3);
            out.extend_from_slice(&i.to_be_bytes());
        }
    } else if i >= -32 {
        out.push(i as i8 as u8);
    } else if i >= i8::MIN as i64 {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= i16::MIN as i64 {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i32::MIN as i64 {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

/// A metric from a message on [`TOPIC`]. The peer comes back as its text form.
pub fn decode(data: &[u8]) -> Result<Metric, WireError> {
    if data.len() > MAX_MESSAGE {
        return bad(format!("{} bytes, more than {MAX_MESSAGE}", data.len()));
    }
    match (Reader { data, at: 0 }).metric() {
        Ok(m) => Ok(m),
        Err(e) => match data.strip_prefix(MULTICODEC) {
            Some(rest) => Reader { data: rest, at: 0 }.metric(),
            None => Err(e),
        },
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

/// One msgpack value as read: what a metric's fields can be.
enum Read<'a> {
    Bytes(&'a [u8]),
    Int(i64),
    Bool(bool),
    Nil,
    /// Anything else (skipped).
    Other,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.data.len());
        let Some(end) = end else {
            return bad("cut short");
        };
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn len(&mut self, bytes: usize) -> Result<usize, WireError> {
        let b = self.take(bytes)?;
        Ok(b.iter().fold(0usize, |n, x| (n << 8) | *x as usize))
    }

    fn metric(mut self) -> Result<Metric, WireError> {
        let fields = match self.byte()? {
            b @ 0x80..=0x8f => (b & 0x0f) as usize,
            0xde => self.len(2)?,
            0xdf => self.len(4)?,
            _ => return bad("not a map"),
        };
        let mut m = Metric::default();
        for _ in 0..fields {
            let Read::Bytes(key) = self.value(0)? else {
                return bad("a key that is not a string");
            };
            let v = self.value(0)?;
            let text = |v: &Read| match v {
                Read::Bytes(b) => std::str::from_utf8(b)
                    .map(str::to_string)
                    .map_err(|_| WireError("a string that is not UTF-8".into())),
                Read::Nil => Ok(String::new()),
                _ => bad("a string field that is not one"),
            };
            let number = |v: &Read| match v {
                Read::Int(i) => Ok(*i),
                Read::Nil => Ok(0),
                _ => bad("an integer field that is not one"),
            };
            let flag = |v: &Read| match v {
                Read::Bool(b) => Ok(*b),
                Read::Nil => Ok(false),
                _ => bad("a boolean field that is not one"),
            };
            match key {
                b"n" => m.name = text(&v)?,
                b"p" => {
                    m.peer = match v {
                        Read::Bytes(b) if !b.is_empty() => libp2p_identity::PeerId::from_bytes(b)
                            .map_err(|e| WireError(format!("peer: {e}")))?
                            .to_string(),
                        Read::Bytes(_) | Read::Nil => String::new(),
                        _ => return bad("a peer that is not bytes"),
                    }
                }
                b"v" => {
                    m.value = text(&v)?;
                    if m.value.len() > MAX_VALUE {
                        return bad(format!(
                            "a value of {} bytes, more than {MAX_VALUE}",
                            m.value.len()
                        ));
                    }
                }
                b"e" => m.expire = number(&v)?,
                b"d" => m.valid = flag(&v)?,
                b"w" => m.weight = number(&v)?,
                b"o" => m.partitionable = flag(&v)?,
                b"t" => m.received_at = number(&v)?,
                _ => {}
            }
        }
        if self.at != self.data.len() {
            return bad("bytes after the metric");
        }
        Ok(m)
    }

    /// Reads one value; containers and other kinds are skipped (`depth` deep so far).
    fn value(&mut self, depth: usize) -> Result<Read<'a>, WireError> {
        if depth > MAX_DEPTH {
            return bad("nested too deep");
        }
        let b = self.byte()?;
        let be = |s: &[u8]| s.iter().fold(0u64, |n, x| (n << 8) | *x as u64);
        Ok(match b {
            0x00..=0x7f => Read::Int(b as i64),
            0xe0..=0xff => Read::Int(b as i8 as i64),
            0xc0 => Read::Nil,
            0xc2 => Read::Bool(false),
            0xc3 => Read::Bool(true),
            0xcc => Read::Int(self.byte()? as i64),
            0xcd => Read::Int(be(self.take(2)?) as i64),
            0xce => Read::Int(be(self.take(4)?) as i64),
            0xcf => Read::Int(
                i64::try_from(be(self.take(8)?)).or_else(|_| bad("an integer too large"))?,
            ),
            0xd0 => Read::Int(self.byte()? as i8 as i64),
            0xd1 => Read::Int(be(self.take(2)?) as u16 as i16 as i64),
            0xd2 => Read::Int(be(self.take(4)?) as u32 as i32 as i64),
            0xd3 => Read::Int(be(self.take(8)?) as i64),
            0xa0..=0xbf => Read::Bytes(self.take((b & 0x1f) as usize)?),
            0xd9 | 0xc4 => {
                let n = self.len(1)?;
                Read::Bytes(self.take(n)?)
            }
            0xda | 0xc5 => {
                let n = self.len(2)?;
                Read::Bytes(self.take(n)?)
            }
            0xdb | 0xc6 => {
                let n = self.len(4)?;
                Read::Bytes(self.take(n)?)
            }
            0xca => {
                self.take(4)?;
                Read::Other
            }
            0xcb => {
                self.take(8)?;
                Read::Other
            }
            0xd4..=0xd8 => {
                // fixext 1, 2, 4, 8, 16: a type byte and the data.
                self.take(1 + (1usize << (b - 0xd4)))?;
                Read::Other
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (b - 0xc7))?;
                self.take(1 + n)?;
                Read::Other
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                let n = match b {
                    0xdc => self.len(2)?,
                    0xdd => self.len(4)?,
                    _ => (b & 0x0f) as usize,
                };
                for _ in 0..n {
                    self.value(depth + 1)?;
                }
                Read::Other
            }
            0x80..=0x8f | 0xde | 0xdf => {
                let n = match b {
                    0xde => self.len(2)?,
                    0xdf => self.len(4)?,
                    _ => (b & 0x0f) as usize,
                };
                for _ in 0..n.saturating_mul(2) {
                    self.value(depth + 1)?;
                }
                Read::Other
            }
            0xc1 => return bad("0xc1 is never used"),
        })
    }
}

#[cfg(test)]
mod tests;
