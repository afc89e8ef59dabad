//! Informers (SPEC §6): what this peer tells the others about itself, as metrics with a TTL.
//! The allocator ranks peers by them; the monitor raises alerts when they stop arriving.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::components::IpfsConnector;
use crate::config::InformerConfig;
use crate::types::Metric;

/// Name of the liveness metric every peer sends each `monitor_ping_interval`.
pub const PING: &str = "ping";
pub const FREESPACE: &str = "freespace";
pub const NUMPIN: &str = "numpin";
pub const PINQUEUE: &str = "pinqueue";
/// Tag metrics are named `tag:<key>`, as in `allocate_by`.
pub const TAG_PREFIX: &str = "tag:";

/// Something that measures this peer.
#[async_trait]
pub trait Informer: Send + Sync + 'static {
    /// The metrics of one round (a tag informer gives one per tag).
    async fn metrics(&self, peer: &str) -> Vec<Metric>;
}

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

/// Free space in the IPFS repo: `StorageMax − RepoSize`.
pub struct Disk {
    pub ipfs: Arc<dyn IpfsConnector>,
    pub ttl: Duration,
}

#[async_trait]
impl Informer for Disk {
    async fn metrics(&self, peer: &str) -> Vec<Metric> {
        match self.ipfs.repo_stat().await {
            Ok(st) => {
                let free = st.storage_max.saturating_sub(st.repo_size);
                vec![metric(FREESPACE, peer, free.to_string(), self.ttl, true)]
            }
            // An invalid metric: the allocator will not choose a peer whose IPFS is down.
            Err(_) => vec![metric(FREESPACE, peer, "0".into(), self.ttl, false)],
        }
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
        match self.ipfs.pin_ls().await {
            Ok(pins) => vec![metric(NUMPIN, peer, pins.len().to_string(), self.ttl, true)],
            Err(_) => vec![metric(NUMPIN, peer, "0".into(), self.ttl, false)],
        }
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
    pub queued: Arc<dyn Fn() -> usize + Send + Sync>,
    pub ttl: Duration,
}

#[async_trait]
impl Informer for PinQueue {
    async fn metrics(&self, peer: &str) -> Vec<Metric> {
        vec![metric(
            PINQUEUE,
            peer,
            (self.queued)().to_string(),
            self.ttl,
            true,
        )]
    }
}

/// The informers a peer runs, from its configuration.
pub fn from_config(
    cfg: &InformerConfig,
    ipfs: Arc<dyn IpfsConnector>,
    queued: Arc<dyn Fn() -> usize + Send + Sync>,
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
            queued,
            ttl: cfg.disk.metric_ttl.get(),
        }),
    ]
}

/// The liveness metric, valid for twice the ping interval.
pub fn ping(peer: &str, interval: Duration) -> Metric {
    metric(PING, peer, String::new(), interval * 2, true)
}

#[cfg(test)]
mod tests {
    use super::*;
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
