//! Bandwidth of the cluster RPC protocol (`GET /health/bandwidth`, IPFS Cluster's bandwidth
//! by protocol): the request-response codec counts the bytes it reads and writes, and a
//! sampler turns the totals into rates over the last [`WINDOW`].

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncWrite};
use libp2p::request_response::Codec;

use crate::types::Bandwidth;

/// Rates are averaged over this long.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// Bytes read and written so far, and samples of them for the rates.
#[derive(Default)]
pub(crate) struct Meter {
    read: AtomicU64,
    written: AtomicU64,
    samples: Mutex<VecDeque<(Instant, u64, u64)>>,
}

impl Meter {
    fn totals(&self) -> (u64, u64) {
        (
            self.read.load(Ordering::Relaxed),
            self.written.load(Ordering::Relaxed),
        )
    }

    /// Records the totals now (called every second by the sampler).
    pub(crate) fn sample(&self) {
        let (r, w) = self.totals();
        let now = Instant::now();
        let mut s = self.samples.lock().unwrap();
        s.push_back((now, r, w));
        while s
            .front()
            .is_some_and(|(t, ..)| now.duration_since(*t) > WINDOW)
        {
            s.pop_front();
        }
    }

    pub(crate) fn bandwidth(&self) -> Bandwidth {
        let (r, w) = self.totals();
        let s = self.samples.lock().unwrap();
        let (rate_in, rate_out) = match s.front() {
            Some((t, r0, w0)) if t.elapsed() > Duration::ZERO => {
                let secs = t.elapsed().as_secs_f64();
                ((r - r0) as f64 / secs, (w - w0) as f64 / secs)
            }
            _ => (0.0, 0.0),
        };
        Bandwidth {
            total_in: r as i64,
            total_out: w as i64,
            rate_in,
            rate_out,
        }
    }
}

/// A codec that counts the bytes its inner codec reads and writes (and, when asked, keeps a
/// copy of the messages it writes: [`super::record`]).
#[derive(Clone)]
pub(crate) struct Counting<C> {
    pub inner: C,
    pub meter: Arc<Meter>,
    pub recorder: Option<Arc<super::record::Recorder>>,
}

/// A stream whose reads and writes are counted on a [`Meter`].
struct Counted<'a, T> {
    io: &'a mut T,
    meter: &'a Meter,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut *this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.meter.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut *this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.meter.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_close(cx)
    }
}

impl<C> Codec for Counting<C>
where
    C: Codec + Send + Clone,
    C::Protocol: Sync,
    C::Request: std::fmt::Debug,
    C::Response: std::fmt::Debug,
{
    type Protocol = C::Protocol;
    type Request = C::Request;
    type Response = C::Response;

    async fn read_request<T>(&mut self, p: &Self::Protocol, io: &mut T) -> io::Result<Self::Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let meter = self.meter.clone();
        let mut io = Counted { io, meter: &meter };
        self.inner.read_request(p, &mut io).await
    }

    async fn read_response<T>(
        &mut self,
        p: &Self::Protocol,
        io: &mut T,
    ) -> io::Result<Self::Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let meter = self.meter.clone();
        let mut io = Counted { io, meter: &meter };
        self.inner.read_response(p, &mut io).await
    }

    async fn write_request<T>(
        &mut self,
        p: &Self::Protocol,
        io: &mut T,
        req: Self::Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let meter = self.meter.clone();
        let mut io = Counted { io, meter: &meter };
        match self.recorder.clone() {
            None => self.inner.write_request(p, &mut io, req).await,
            Some(r) => {
                let debug = format!("{req:?}");
                let mut tee = super::record::Tee {
                    io: &mut io,
                    copy: Vec::new(),
                };
                self.inner.write_request(p, &mut tee, req).await?;
                r.record("request", &debug, &tee.copy);
                Ok(())
            }
        }
    }

    async fn write_response<T>(
        &mut self,
        p: &Self::Protocol,
        io: &mut T,
        res: Self::Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let meter = self.meter.clone();
        let mut io = Counted { io, meter: &meter };
        match self.recorder.clone() {
            None => self.inner.write_response(p, &mut io, res).await,
            Some(r) => {
                let debug = format!("{res:?}");
                let mut tee = super::record::Tee {
                    io: &mut io,
                    copy: Vec::new(),
                };
                self.inner.write_response(p, &mut tee, res).await?;
                r.record("response", &debug, &tee.copy);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_rates_over_the_window() {
        let m = Meter::default();
        m.sample();
        m.read.fetch_add(1000, Ordering::Relaxed);
        m.written.fetch_add(10, Ordering::Relaxed);
        let b = m.bandwidth();
        assert_eq!((b.total_in, b.total_out), (1000, 10));
        assert!(b.rate_in > 0.0 && b.rate_in >= b.rate_out);
    }
}
