//! Peer monitor (SPEC §6): keeps the latest metric of each name from each peer and raises an
//! alert when one expires without being renewed. Metrics arrive over cluster RPC (each peer
//! pushes its own to every member), so the monitor itself never talks to the network.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast;

use crate::components::Monitor;
use crate::tasks::Tasks;
use crate::types::{Alert, Metric};

pub mod wire;

/// How many recent alerts `GET /health/alerts` shows.
const KEEP_ALERTS: usize = 256;

/// How many peers' metrics of one name are kept: a CRDT cluster's peerset is whoever is
/// heard, so a flood of new peer ids must not grow the monitor without end. Past it, the
/// metric expired longest ago makes room; with none expired, the new peer is not recorded.
pub const MAX_PEERS: usize = 10_000;

/// How many metric names are kept (a peer may publish any name it likes).
pub const MAX_NAMES: usize = 64;

#[derive(Default)]
struct Store {
    /// name → peer → latest metric.
    latest: BTreeMap<String, BTreeMap<String, Metric>>,
    /// (name, peer) already alerted for their current expiry.
    alerted: std::collections::HashSet<(String, String)>,
    alerts: VecDeque<Alert>,
}

/// How long after it expired a peer's metric is forgotten (a peer heard once and gone, a
/// member long down): listed as expired until then.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Which peers always find room in the monitor (a CRDT peer's trusted peers).
type Protected = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Clone)]
pub struct PeerMonitor {
    store: Arc<Mutex<Store>>,
    alerts_tx: broadcast::Sender<Alert>,
    protected: Arc<std::sync::OnceLock<Protected>>,
}

impl Default for PeerMonitor {
    fn default() -> Self {
        PeerMonitor {
            store: Arc::new(Mutex::new(Store::default())),
            alerts_tx: broadcast::channel(1024).0,
            protected: Default::default(),
        }
    }
}

impl PeerMonitor {
    /// Starts the expiry check every `check_interval`.
    pub fn start(check_interval: Duration, tasks: &Tasks) -> PeerMonitor {
        let m = PeerMonitor::default();
        let this = m.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(check_interval.max(Duration::from_millis(50)));
            loop {
                tick.tick().await;
                this.check();
            }
        });
        m
    }

    /// Peers for which `protected` holds always find room: when [`MAX_PEERS`] are kept, one
    /// of them takes the place of another peer's metric (the one expiring first) rather
    /// than being refused, so that a flood of peer ids cannot crowd out the peers that
    /// matter. Set once.
    pub fn protect(&self, protected: Protected) {
        let _ = self.protected.set(protected);
    }

    fn is_protected(&self, peer: &str) -> bool {
        self.protected.get().is_some_and(|p| p(peer))
    }

    /// Raises an alert for each metric that expired since the last check, and forgets those
    /// expired more than [`FORGET_AFTER`] ago.
    pub fn check(&self) {
        let mut st = self.store.lock().unwrap();
        let forget_before = Metric::now_ns() - FORGET_AFTER.as_nanos() as i64;
        let mut forgotten = Vec::new();
        for (name, peers) in st.latest.iter_mut() {
            peers.retain(|peer, m| {
                let keep = m.expire > forget_before;
                if !keep {
                    forgotten.push((name.clone(), peer.clone()));
                }
                keep
            });
        }
        st.latest.retain(|_, peers| !peers.is_empty());
        for f in forgotten {
            st.alerted.remove(&f);
        }
        let expired: Vec<Metric> = st
            .latest
            .values()
            .flat_map(|peers| peers.values())
            .filter(|m| m.expired())
            .filter(|m| !st.alerted.contains(&(m.name.clone(), m.peer.clone())))
            .cloned()
            .collect();
        for m in expired {
            tracing::warn!(peer = %m.peer, metric = %m.name, "metric expired: raising an alert");
            st.alerted.insert((m.name.clone(), m.peer.clone()));
            let alert = Alert {
                metric: m,
                triggered_at: Utc::now(),
            };
            if st.alerts.len() == KEEP_ALERTS {
                st.alerts.pop_front();
            }
            st.alerts.push_back(alert.clone());
            let _ = self.alerts_tx.send(alert);
        }
    }
}

impl Monitor for PeerMonitor {
    fn log_metric(&self, mut m: Metric) {
        m.received_at = Metric::now_ns();
        let mut st = self.store.lock().unwrap();
        if !st.latest.contains_key(&m.name)
            && st.latest.len() >= MAX_NAMES
            && !wire::informer_name(&m.name)
        {
            tracing::debug!(metric = %m.name, peer = %m.peer, "metric not kept: {MAX_NAMES} names already");
            return;
        }
        let protected = self.is_protected(&m.peer);
        let peers = st.latest.entry(m.name.clone()).or_default();
        if !peers.contains_key(&m.peer) && peers.len() >= MAX_PEERS {
            // Room: the metric expired longest ago; for a protected peer, else the one of
            // an unprotected peer expiring first.
            let oldest = peers
                .values()
                .filter(|o| o.expired())
                .min_by_key(|o| o.expire)
                .or_else(|| {
                    protected
                        .then(|| {
                            peers
                                .values()
                                .filter(|o| !self.is_protected(&o.peer))
                                .min_by_key(|o| o.expire)
                        })
                        .flatten()
                })
                .map(|o| o.peer.clone());
            match oldest {
                Some(p) => {
                    peers.remove(&p);
                    st.alerted.remove(&(m.name.clone(), p));
                }
                None => {
                    tracing::debug!(metric = %m.name, peer = %m.peer, "metric not kept: {MAX_PEERS} peers heard already");
                    return;
                }
            }
        }
        st.alerted.remove(&(m.name.clone(), m.peer.clone()));
        st.latest
            .entry(m.name.clone())
            .or_default()
            .insert(m.peer.clone(), m);
    }

    fn forget(&self, peer: &str) {
        let mut st = self.store.lock().unwrap();
        for peers in st.latest.values_mut() {
            peers.remove(peer);
        }
        st.alerted.retain(|(_, p)| p != peer);
    }

    /// New alerts as they fire.
    fn subscribe(&self) -> broadcast::Receiver<Alert> {
        self.alerts_tx.subscribe()
    }

    fn alerts(&self) -> Vec<Alert> {
        self.store.lock().unwrap().alerts.iter().cloned().collect()
    }

    /// Names of every metric seen.
    fn names(&self) -> Vec<String> {
        self.store.lock().unwrap().latest.keys().cloned().collect()
    }

    /// The latest `name` metric of every peer (expired ones included, marked by `expire`).
    fn latest(&self, name: &str) -> Vec<Metric> {
        self.store
            .lock()
            .unwrap()
            .latest
            .get(name)
            .map(|peers| peers.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The current (valid, unexpired) `name` metric of `peer`.
    fn current(&self, name: &str, peer: &str) -> Option<Metric> {
        self.store
            .lock()
            .unwrap()
            .latest
            .get(name)?
            .get(peer)
            .filter(|m| m.is_current())
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, peer: &str, ttl_ms: i64) -> Metric {
        Metric {
            name: name.into(),
            peer: peer.into(),
            value: "1".into(),
            expire: Metric::now_ns() + ttl_ms * 1_000_000,
            valid: true,
            ..Default::default()
        }
    }

    #[test]
    fn expiry_raises_one_alert_until_renewed() {
        let mon = PeerMonitor::default();
        let mut rx = mon.subscribe();
        mon.log_metric(m("ping", "a", 1));
        mon.log_metric(m("ping", "b", 60_000));
        std::thread::sleep(Duration::from_millis(5));
        mon.check();
        mon.check();
        let alerts = mon.alerts();
        assert_eq!(alerts.len(), 1, "one alert per expiry");
        assert_eq!(alerts[0].metric.peer, "a");
        assert_eq!(rx.try_recv().unwrap().metric.peer, "a");
        assert!(mon.current("ping", "a").is_none());
        assert!(mon.current("ping", "b").is_some());
        // Renewed, then expired again: a new alert.
        mon.log_metric(m("ping", "a", 1));
        std::thread::sleep(Duration::from_millis(5));
        mon.check();
        assert_eq!(mon.alerts().len(), 2);
        assert_eq!(mon.names(), vec!["ping".to_string()]);
        assert_eq!(mon.latest("ping").len(), 2);
        mon.forget("a");
        assert_eq!(mon.latest("ping").len(), 1);
    }

    #[test]
    fn the_monitor_keeps_a_bounded_number_of_peers_and_names() {
        let mon = PeerMonitor::default();
        for n in 0..MAX_PEERS {
            mon.log_metric(m("ping", &format!("p{n}"), 60_000));
        }
        // Full of live peers: a new one is not recorded.
        mon.log_metric(m("ping", "new", 60_000));
        assert!(mon.current("ping", "new").is_none());
        assert_eq!(mon.latest("ping").len(), MAX_PEERS);
        // A known peer is still renewed.
        mon.log_metric(m("ping", "p0", 120_000));
        assert!(mon.current("ping", "p0").is_some());
        // One expired: it makes room.
        mon.log_metric(m("ping", "p1", -1));
        mon.log_metric(m("ping", "new", 60_000));
        assert!(mon.current("ping", "new").is_some());
        assert!(mon.latest("ping").iter().all(|x| x.peer != "p1"));
        assert_eq!(mon.latest("ping").len(), MAX_PEERS);
        // A protected peer finds room among live ones; an unprotected one still does not.
        mon.protect(Arc::new(|p: &str| p.starts_with("trusted")));
        mon.log_metric(m("ping", "trusted-1", 60_000));
        assert!(mon.current("ping", "trusted-1").is_some());
        assert_eq!(mon.latest("ping").len(), MAX_PEERS);
        mon.log_metric(m("ping", "other", 60_000));
        assert!(mon.current("ping", "other").is_none());
        // Long expired: forgotten at the next check.
        mon.log_metric(m("ping", "p2", -(FORGET_AFTER.as_millis() as i64) - 1000));
        mon.check();
        assert!(mon.latest("ping").iter().all(|x| x.peer != "p2"));
        for n in 0..MAX_NAMES + 5 {
            mon.log_metric(m(&format!("name{n}"), "a", 60_000));
        }
        assert_eq!(mon.names().len(), MAX_NAMES);
        // IPFS Cluster's own names always find room.
        mon.log_metric(m("freespace", "a", 60_000));
        assert!(mon.current("freespace", "a").is_some());
    }
}
