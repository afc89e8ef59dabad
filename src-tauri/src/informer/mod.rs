//! Informers (SPEC §6): what this peer tells the others about itself, as metrics with a TTL.
//! The allocator ranks peers by them; the monitor raises alerts when they stop arriving.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::components::{
    Consensus, Informer, IpfsConnector, IpfsError, Monitor, PeerRpc, PinTracker, FREESPACE, NUMPIN,
    PING, PINQUEUE, TAG_PREFIX,
};
use crate::config::InformerConfig;
use crate::tasks::Tasks;
use crate::types::Metric;

fn metric(name: &str, peer: &str, value: String, ttl: Duration, valid: bool) -> Metric {
    Metric {
        name: name.to_string(),
        peer: peer.to_string(),
        weight: value.parse().unwrap_or(0),
        value,
        expire: Metric::now_ns().saturating_add(ttl.as_nanos() as i64),
        valid,
        partitionable: false,
        received_at: 0,
    }
}

/// A number measured by asking IPFS; an invalid metric when IPFS did not answer, so that the
/// allocator does not choose a peer whose IPFS is down.
fn measured(name: &str, peer: &str, ttl: Duration, value: Result<u64, IpfsError>) -> Vec<Metric> {
    match value {
        Ok(v) => vec![metric(name, peer, v.to_string(), ttl, true)],
        Err(_) => vec![metric(name, peer, "0".into(), ttl, false)],
    }
}

/// Free space in the IPFS repo: `StorageMax − RepoSize`.
pub struct Disk {
    pub ipfs: Arc<dyn IpfsConnector>,
    pub ttl: Duration,
}

#[async_trait]
impl Informer for Disk {
    async fn metrics(&self, peer: &str) -> Vec<Metric> {
        let free = self
            .ipfs
            .repo_stat()
            .await
            .map(|st| st.storage_max.saturating_sub(st.repo_size));
        measured(FREESPACE, peer, self.ttl, free)
    }
}

/// How many pins this peer's IPFS holds.
pub struct NumPin {
    pub ipfs: Arc<dyn IpfsConnector>,
    pub ttl: Duration,
}

#[async_trait]
impl Informer for NumPin {
    async fn metrics(&self, peer: &str) -> Vec<Metric> {
        let count = self.ipfs.pin_ls_each(&mut |_| {}).await;
        measured(NUMPIN, peer, self.ttl, count)
    }
}

/// The tags from `informer.tags.tags`, one partitionable metric each.
pub struct Tags {
    pub tags: std::collections::BTreeMap<String, String>,
    pub ttl: Duration,
}

#[async_trait]
impl Informer for Tags {
    async fn metrics(&self, peer: &str) -> Vec<Metric> {
        self.tags
            .iter()
            .map(|(k, v)| {
                let mut m = metric(&format!("{TAG_PREFIX}{k}"), peer, v.clone(), self.ttl, true);
                m.partitionable = true;
                m.weight = 0;
                m
            })
            .collect()
    }
}

/// Length of this peer's pin queue.
pub struct PinQueue {
    pub tracker: Arc<dyn PinTracker>,
    pub ttl: Duration,
}

#[async_trait]
impl Informer for PinQueue {
    async fn metrics(&self, peer: &str) -> Vec<Metric> {
        let queued = self.tracker.queue_len().to_string();
        vec![metric(PINQUEUE, peer, queued, self.ttl, true)]
    }
}

/// The informers a peer runs, from its configuration.
pub fn from_config(
    cfg: &InformerConfig,
    ipfs: Arc<dyn IpfsConnector>,
    tracker: Arc<dyn PinTracker>,
) -> Vec<Arc<dyn Informer>> {
    vec![
        Arc::new(Disk {
            ipfs: ipfs.clone(),
            ttl: cfg.disk.metric_ttl.get(),
        }),
        Arc::new(NumPin {
            ipfs,
            ttl: cfg.numpin.metric_ttl.get(),
        }),
        Arc::new(Tags {
            tags: cfg.tags.tags.clone(),
            ttl: cfg.tags.metric_ttl.get(),
        }),
        Arc::new(PinQueue {
            tracker,
            ttl: cfg.disk.metric_ttl.get(),
        }),
    ]
}

/// The liveness metric, valid for twice the ping interval.
pub fn ping(peer: &str, interval: Duration) -> Metric {
    metric(PING, peer, String::new(), interval * 2, true)
}

/// Where the publisher sends what the informers measure.
pub struct Publisher {
    pub me: String,
    pub informers: Vec<Arc<dyn Informer>>,
    /// `cluster.monitor_ping_interval`.
    pub interval: Duration,
    pub monitor: Arc<dyn Monitor>,
    pub consensus: Arc<dyn Consensus>,
    pub rpc: Arc<dyn PeerRpc>,
}

impl Publisher {
    /// Records this peer's own `ping` at once (so a lone peer can allocate before the first
    /// round), then every `interval` measures this peer, records it, and pushes it to every
    /// other member; a peer that misses them raises an alert when they expire.
    pub fn start(self, tasks: &Tasks) {
        self.monitor.log_metric(ping(&self.me, self.interval));
        tasks.spawn(self.run());
    }

    async fn run(self) {
        let mut tick = tokio::time::interval(self.interval.max(Duration::from_millis(100)));
        loop {
            tick.tick().await;
            let mut metrics = vec![ping(&self.me, self.interval)];
            for i in &self.informers {
                metrics.extend(i.metrics(&self.me).await);
            }
            for m in &metrics {
                self.monitor.log_metric(m.clone());
            }
            let members = self.consensus.members();
            let sends = members
                .iter()
                .filter(|m| m.peer_id != self.me)
                .map(|m| self.rpc.metrics(m, metrics.clone(), self.interval));
            futures::future::join_all(sends).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::FREESPACE;
    use crate::ipfsconn::fake::{dead_config, FakeKubo};
    use crate::ipfsconn::IpfsHttp;

    #[tokio::test]
    async fn freespace_tags_and_invalid_metrics() {
        let kubo = FakeKubo::start().await;
        let ipfs: Arc<dyn IpfsConnector> = Arc::new(IpfsHttp::new(&kubo.config()).unwrap());
        let disk = Disk {
            ipfs,
            ttl: Duration::from_secs(30),
        };
        let m = &disk.metrics("p").await[0];
        assert_eq!(m.name, FREESPACE);
        assert_eq!(m.value, (10_000_000_000u64 - 1000).to_string());
        assert_eq!(m.weight, 10_000_000_000 - 1000);
        assert!(m.is_current());

        let down: Arc<dyn IpfsConnector> = Arc::new(IpfsHttp::new(&dead_config()).unwrap());
        let m = &Disk {
            ipfs: down,
            ttl: Duration::from_secs(30),
        }
        .metrics("p")
        .await[0];
        assert!(!m.valid, "no free space is known when IPFS is down");

        let tags = Tags {
            tags: [("group".to_string(), "eu".to_string())].into(),
            ttl: Duration::from_secs(30),
        };
        let m = &tags.metrics("p").await[0];
        assert_eq!((m.name.as_str(), m.value.as_str()), ("tag:group", "eu"));
        assert!(m.partitionable);
        let p = ping("p", Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(p.expired());
    }
}
