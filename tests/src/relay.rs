//! A delaying TCP relay: what a slow, lossy link looks like to the peers on either side. This
//! kernel has no `netem`, so latency and loss are added here: every chunk waits `one_way` in
//! each direction, and a `loss` fraction of chunks waits a further retransmission timeout
//! (what a lost packet costs a TCP connection), holding back what follows it, as TCP does;
//! `bytes_per_sec` (when above 0) paces what is delivered, as a slow link's bandwidth.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Linux's minimum retransmission timeout.
const RTO: Duration = Duration::from_millis(200);

/// Relays connections to `listen` on to `target`, delayed, until dropped.
pub struct Relay {
    pub addr: SocketAddr,
    _tasks: JoinSet<()>,
}

#[derive(Clone, Copy)]
pub struct Link {
    pub one_way: Duration,
    /// Fraction of chunks that are "lost" once (0.01 = 1 %).
    pub loss: f64,
    /// Bytes delivered per second at most, each way (0: no limit).
    pub bytes_per_sec: u64,
}

impl Relay {
    pub async fn start(listen: SocketAddr, target: SocketAddr, link: Link) -> Result<Relay> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(addr.port());
            while let Ok((inbound, _)) = listener.accept().await {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let s = seed;
                conns.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(pipe(ri, wo, link, s), pipe(ro, wi, link, s ^ 0xffff));
                });
            }
        });
        Ok(Relay {
            addr,
            _tasks: tasks,
        })
    }
}

/// Copies `from` to `to`, each chunk delivered no earlier than its delay and never before the
/// chunk ahead of it.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Link,
    mut rng: u64,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut last = Instant::now();
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let lost = (rng % 10_000) as f64 / 10_000.0 < link.loss;
            let mut at = Instant::now() + link.one_way;
            if lost {
                at += RTO;
            }
            at = at.max(last);
            last = at;
            if tx.send((at, buf[..n].to_vec())).is_err() {
                return;
            }
        }
    };
    let writer = async move {
        let mut free_at = Instant::now();
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at.max(free_at)).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            if link.bytes_per_sec > 0 {
                let took = Duration::from_secs_f64(chunk.len() as f64 / link.bytes_per_sec as f64);
                free_at = Instant::now().max(free_at) + took;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delays_both_ways_and_keeps_order() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let link = Link {
            one_way: Duration::from_millis(50),
            loss: 0.0,
            bytes_per_sec: 0,
        };
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), target, link)
            .await
            .unwrap();
        let mut c = TcpStream::connect(relay.addr).await.unwrap();
        let started = Instant::now();
        c.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        // Two relayed legs of 50 ms each at least: the delay is real (a lower bound only).
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
