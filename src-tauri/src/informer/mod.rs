//! Informers (SPEC §6): what this peer tells the others about itself, as metrics with a TTL.
//! The allocator ranks peers by them; the monitor raises alerts when they stop arriving.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::components::{
    Informer, IpfsConnector, IpfsError, Member, Monitor, PeerRpc, PinTracker, FREESPACE, NUMPIN,
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
    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn unmeasured(&self, peer: &str) -> Vec<Metric> {
        vec![metric(FREESPACE, peer, "0".into(), self.ttl, false)]
    }

    async fn metrics(&self, peer: &str) -> Vec<Metric> {
        let free = self
            .ipfs
            .repo_stat()
            .await
            .map(|st| st.storage_max.saturating_sub(st.repo_size));
        measured(FREESPACE, peer, self.ttl, free)
    }
}

/// How many pins this peer's IPFS holds, as the tracker counts them (no call to IPFS: a
/// full `pin/ls` of millions every few seconds would cost more than the metric is worth).
pub struct NumPin {
    pub tracker: Arc<dyn PinTracker>,
    pub ttl: Duration,
}

#[async_trait]
impl Informer for NumPin {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn unmeasured(&self, peer: &str) -> Vec<Metric> {
        vec![metric(NUMPIN, peer, "0".into(), self.ttl, false)]
    }

    async fn metrics(&self, peer: &str) -> Vec<Metric> {
        match self.tracker.ipfs_pin_count() {
            Some(n) => vec![metric(NUMPIN, peer, n.to_string(), self.ttl, true)],
            None => self.unmeasured(peer),
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
    fn ttl(&self) -> Duration {
        self.ttl
    }

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
    fn ttl(&self) -> Duration {
        self.ttl
    }

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
            ipfs,
            ttl: cfg.disk.metric_ttl.get(),
        }),
        Arc::new(NumPin {
            tracker: tracker.clone(),
            ttl: cfg.numpin.metric_ttl.get(),
        }),
        Arc::new(Tags {
            tags: cfg.tags.tags.clone(),
            ttl: cfg.tags.metric_ttl.get(),
        }),
        Arc::new(PinQueue {
            tracker,
            ttl: cfg.pinqueue.metric_ttl.get(),
        }),
    ]
}

/// The liveness metric, valid for twice the ping interval.
pub fn ping(peer: &str, interval: Duration) -> Metric {
    metric(PING, peer, String::new(), interval * 2, true)
}

/// Sends this peer's metrics: `ping` every `monitor_ping_interval`, and each informer's
/// twice per its TTL (IPFS Cluster's schedule), each on a timer of its own, so that a slow
/// IPFS delays neither the liveness signal nor the other metrics. A measurement gets a
/// quarter of its TTL; one that takes longer is sent as invalid. Renewed at most three
/// quarters of a TTL apart, no metric expires while this peer runs.
pub struct Publisher {
    pub me: String,
    /// This peer's name, in its ping's value (IPFS Cluster's `pingValue.peer_name`, which
    /// its peers show in statuses).
    pub peername: String,
    pub informers: Vec<Arc<dyn Informer>>,
    /// `cluster.monitor_ping_interval`.
    pub interval: Duration,
    pub monitor: Arc<dyn Monitor>,
    /// The members to send to (the peerset as this peer knows it, renewed as it changes).
    pub members: watch::Receiver<Vec<Member>>,
    pub rpc: Arc<dyn PeerRpc>,
    /// How metrics reach the others.
    pub route: Route,
}

/// How a peer's metrics reach the others.
pub enum Route {
    /// Pushed to each member over cluster RPC (Raft: the members are known).
    ToMembers,
    /// Published on the metrics topic ([`crate::monitor::wire::TOPIC`]), as IPFS Cluster's
    /// pubsub monitor does (CRDT: the peerset is whoever is heard there). A peer met is not
    /// greeted (a greeting on the topic reaches every peer, for each peer met): the swarm
    /// records a ping for a peer that joins the topic, as IPFS Cluster's `logPingMetric`.
    Pubsub,
}

/// The shortest period of any timer here (a config with a zero TTL must not spin).
const MIN_PERIOD: Duration = Duration::from_millis(100);

/// How soon first metrics that did not reach a new member are sent again.
const GREETING_RETRY: Duration = Duration::from_millis(500);

/// Whether some member (other than `me`) has not had its first metrics yet.
fn now_pending(greeted: &HashSet<String>, members: &[Member], me: &str) -> bool {
    members
        .iter()
        .any(|m| m.peer_id != me && !greeted.contains(&m.peer_id))
}

impl Publisher {
    /// Records this peer's own `ping` at once (so a lone peer can allocate before the first
    /// round), then starts the timers, and greets every member it has not sent to yet.
    pub fn start(self, tasks: &Tasks) {
        self.monitor.log_metric(self.ping());
        let informers = self.informers.clone();
        let this = Arc::new(self);
        tasks.spawn(this.clone().pings());
        if let Route::ToMembers = this.route {
            tasks.spawn(this.clone().greetings());
        }
        for informer in informers {
            tasks.spawn(this.clone().measurements(informer));
        }
    }

    async fn pings(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.interval.max(MIN_PERIOD));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first ping was recorded by start()
        loop {
            tick.tick().await;
            self.send(vec![self.ping()], self.interval).await;
        }
    }

    async fn measurements(self: Arc<Self>, informer: Arc<dyn Informer>) {
        let period = (informer.ttl() / 2).max(MIN_PERIOD);
        let limit = period / 2;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let metrics = match tokio::time::timeout(limit, informer.metrics(&self.me)).await {
                Ok(m) => m,
                Err(_) => {
                    let unmeasured = informer.unmeasured(&self.me);
                    let names: Vec<&str> = unmeasured.iter().map(|m| m.name.as_str()).collect();
                    tracing::warn!(
                        metrics = ?names,
                        "measuring took longer than {limit:?}: sent as invalid"
                    );
                    unmeasured
                }
            };
            self.send(metrics, limit).await;
        }
    }

    /// Sends a ping and this peer's current metrics to each member as soon as it is one
    /// (at start, every member; later, each peer that joins), as IPFS Cluster sends its
    /// first ping at once: the timers alone left a new peer unknown to the others' allocators
    /// for a whole `monitor_ping_interval` (a pin with replication 2 right after three peers
    /// were ready found one candidate). Sending to a new member does not wait for the others.
    async fn greetings(self: Arc<Self>) {
        let mut members = self.members.clone();
        let mut greeted: HashSet<String> = HashSet::new();
        loop {
            let now: Vec<Member> = members.borrow_and_update().clone();
            greeted.retain(|p| now.iter().any(|m| &m.peer_id == p));
            let new: Vec<Member> = now
                .into_iter()
                .filter(|m| m.peer_id != self.me && greeted.insert(m.peer_id.clone()))
                .collect();
            if !new.is_empty() {
                let metrics = self.greeting();
                let timeout = self.interval.max(MIN_PERIOD);
                let sends = new
                    .iter()
                    .map(|m| self.rpc.metrics(m, metrics.clone(), timeout));
                for (m, r) in new.iter().zip(futures::future::join_all(sends).await) {
                    if let Err(e) = r {
                        // A peer that joins answers only once it has started: try again.
                        tracing::debug!(peer = %m.peer_id, "first metrics not delivered: {e}");
                        greeted.remove(&m.peer_id);
                    }
                }
            }
            let retry = now_pending(&greeted, &members.borrow(), &self.me);
            tokio::select! {
                changed = members.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(GREETING_RETRY), if retry => {}
            }
        }
    }

    /// This peer's ping, its value as IPFS Cluster's (`{"peer_name": …}`; no IPFS id: the
    /// informers, not the ping, ask IPFS).
    fn ping(&self) -> Metric {
        let mut m = ping(&self.me, self.interval);
        if !self.peername.is_empty() {
            m.value = serde_json::json!({ "peer_name": self.peername }).to_string();
        }
        m
    }

    /// This peer's ping and current metrics.
    fn greeting(&self) -> Vec<Metric> {
        let mut metrics = vec![self.ping()];
        metrics.extend(
            self.monitor
                .names()
                .iter()
                .filter(|n| *n != PING)
                .filter_map(|n| self.monitor.current(n, &self.me)),
        );
        metrics
    }

    /// Records `metrics` here and sends them to the others: pushed to every other member
    /// (each within `timeout`), or published on the metrics topic.
    async fn send(&self, metrics: Vec<Metric>, timeout: Duration) {
        if metrics.is_empty() {
            return;
        }
        for m in &metrics {
            self.monitor.log_metric(m.clone());
        }
        if let Route::Pubsub = self.route {
            self.rpc.publish_metrics(metrics).await;
            return;
        }
        let members = self.members.borrow().clone();
        let sends = members
            .iter()
            .filter(|m| m.peer_id != self.me)
            .map(|m| self.rpc.metrics(m, metrics.clone(), timeout));
        for r in futures::future::join_all(sends).await {
            if let Err(e) = r {
                tracing::debug!("metrics not delivered: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::{RpcError, FREESPACE};
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

    /// Records when each metric was logged (tokio's clock, paused in these tests).
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<(tokio::time::Instant, Metric)>>);

    impl Monitor for Recorder {
        fn log_metric(&self, m: Metric) {
            self.0
                .lock()
                .unwrap()
                .push((tokio::time::Instant::now(), m));
        }
        fn forget(&self, _: &str) {}
        fn current(&self, _: &str, _: &str) -> Option<Metric> {
            None
        }
        fn latest(&self, _: &str) -> Vec<Metric> {
            Vec::new()
        }
        fn names(&self) -> Vec<String> {
            Vec::new()
        }
        fn alerts(&self) -> Vec<crate::types::Alert> {
            Vec::new()
        }
        fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::types::Alert> {
            tokio::sync::broadcast::channel(1).1
        }
    }

    /// An informer whose measurement takes `takes` (an IPFS that answers slowly, or never).
    struct Measuring {
        name: &'static str,
        ttl: Duration,
        takes: Duration,
    }

    #[async_trait]
    impl Informer for Measuring {
        fn ttl(&self) -> Duration {
            self.ttl
        }
        async fn metrics(&self, peer: &str) -> Vec<Metric> {
            tokio::time::sleep(self.takes).await;
            vec![metric(self.name, peer, "1".into(), self.ttl, true)]
        }
        fn unmeasured(&self, peer: &str) -> Vec<Metric> {
            vec![metric(self.name, peer, "0".into(), self.ttl, false)]
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ping_and_each_informer_keep_their_own_time_and_a_slow_one_is_cut_short() {
        let rec = Arc::new(Recorder::default());
        let tasks = Tasks::new();
        let informer = |name, ttl: u64, takes: u64| -> Arc<dyn Informer> {
            Arc::new(Measuring {
                name,
                ttl: Duration::from_secs(ttl),
                takes: Duration::from_secs(takes),
            })
        };
        // As `init` writes them: ping every 15 s, numpin's TTL 10 s, freespace's 30 s.
        Publisher {
            me: "p".into(),
            peername: String::new(),
            informers: vec![informer("numpin", 10, 0), informer("freespace", 30, 3600)],
            interval: Duration::from_secs(15),
            monitor: rec.clone(),
            members: watch::channel(Vec::new()).1,
            rpc: Arc::new(Sent::default()),
            route: Route::ToMembers,
        }
        .start(&tasks);
        let start = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(120)).await;
        let seen = rec.0.lock().unwrap().clone();
        for (name, ttl) in [(PING, 30), ("numpin", 10), ("freespace", 30)] {
            let times: Vec<_> = seen
                .iter()
                .filter(|(_, m)| m.name == name)
                .map(|(t, _)| *t)
                .collect();
            assert!(times.len() >= 4, "{name}: {times:?}");
            let mut last = start;
            for t in times {
                assert!(
                    t - last < Duration::from_secs(ttl),
                    "{name} renewed {:?} after the previous one (TTL {ttl} s)",
                    t - last
                );
                last = t;
            }
        }
        let pings: Vec<_> = seen.iter().filter(|(_, m)| m.name == PING).collect();
        assert!(
            pings.len() >= 8,
            "ping every 15 s, never behind an informer"
        );
        assert!(
            seen.iter()
                .filter(|(_, m)| m.name == "freespace")
                .all(|(_, m)| !m.valid),
            "a measurement that takes too long is sent as invalid"
        );
    }

    /// Cluster RPC that records which metrics each member was sent.
    #[derive(Default)]
    struct Sent(std::sync::Mutex<Vec<(String, Vec<String>)>>);

    #[async_trait]
    impl PeerRpc for Sent {
        async fn id(&self, _: &Member, _: Duration) -> Result<crate::types::Id, RpcError> {
            unreachable!()
        }
        async fn pins(
            &self,
            _: &Member,
            _: crate::components::PeerCall,
            _: Duration,
        ) -> Result<Vec<crate::types::PinInfo>, RpcError> {
            unreachable!()
        }
        async fn metrics(&self, to: &Member, m: Vec<Metric>, _: Duration) -> Result<(), RpcError> {
            let names = m.into_iter().map(|m| m.name).collect();
            self.0.lock().unwrap().push((to.peer_id.clone(), names));
            Ok(())
        }
        async fn node(
            &self,
            _: &Member,
            _: crate::components::NodeCall,
            _: Duration,
        ) -> Result<crate::components::NodeAnswer, RpcError> {
            unreachable!()
        }
        async fn publish_metrics(&self, m: Vec<Metric>) {
            let names = m.into_iter().map(|m| m.name).collect();
            self.0.lock().unwrap().push((TOPIC.into(), names));
        }
        fn bandwidth(&self) -> std::collections::BTreeMap<String, crate::types::Bandwidth> {
            Default::default()
        }
    }

    const TOPIC: &str = crate::monitor::wire::TOPIC;

    #[tokio::test(start_paused = true)]
    async fn a_member_gets_this_peers_metrics_as_soon_as_it_joins_not_a_round_later() {
        let monitor = Arc::new(crate::monitor::PeerMonitor::default());
        monitor.log_metric(metric(
            FREESPACE,
            "p",
            "5".into(),
            Duration::from_secs(30),
            true,
        ));
        let sent = Arc::new(Sent::default());
        let member = |id: &str| Member {
            peer_id: id.into(),
            addrs: Vec::new(),
            role: crate::types::PeerRole::Voter,
        };
        let (members, rx) = watch::channel(vec![member("p")]);
        let tasks = Tasks::new();
        Publisher {
            me: "p".into(),
            peername: String::new(),
            informers: Vec::new(),
            interval: Duration::from_secs(15),
            monitor: monitor.clone(),
            members: rx,
            rpc: sent.clone(),
            route: Route::ToMembers,
        }
        .start(&tasks);
        let to = |peer: &str| -> Vec<Vec<String>> {
            let all = sent.0.lock().unwrap();
            all.iter()
                .filter(|(p, _)| p == peer)
                .map(|(_, m)| m.clone())
                .collect()
        };
        members.send_replace(vec![member("p"), member("a")]);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            to("a"),
            vec![vec![PING.to_string(), FREESPACE.to_string()]],
            "a new member gets a ping and the current metrics at once"
        );
        members.send_replace(vec![member("p"), member("a"), member("b")]);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(to("b").len(), 1, "the next newcomer too");
        assert_eq!(to("a").len(), 1, "the others are not greeted again");
        tasks.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn on_the_metrics_topic_metrics_are_published_never_pushed_to_members() {
        let monitor = Arc::new(crate::monitor::PeerMonitor::default());
        let sent = Arc::new(Sent::default());
        let member = |id: &str| Member {
            peer_id: id.into(),
            addrs: Vec::new(),
            role: crate::types::PeerRole::Voter,
        };
        let (members, rx) = watch::channel(vec![member("p"), member("a")]);
        let tasks = Tasks::new();
        Publisher {
            me: "p".into(),
            peername: "laptop".into(),
            informers: Vec::new(),
            interval: Duration::from_secs(15),
            monitor: monitor.clone(),
            members: rx,
            rpc: sent.clone(),
            route: Route::Pubsub,
        }
        .start(&tasks);
        let all = || sent.0.lock().unwrap().clone();
        members.send_replace(vec![member("p"), member("a"), member("b")]);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            all().is_empty(),
            "no greeting: nothing before the first round"
        );
        let own = monitor.current(PING, "p").expect("its own ping, at once");
        let value: serde_json::Value = serde_json::from_str(&own.value).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"peer_name": "laptop"}),
            "IPFS Cluster's pingValue"
        );
        tokio::time::sleep(Duration::from_secs(31)).await;
        let sent_now = all();
        assert_eq!(
            sent_now,
            vec![(TOPIC.to_string(), vec![PING.to_string()]); 2],
            "a ping each round, on the topic only"
        );
        tasks.shutdown().await;
    }
}
