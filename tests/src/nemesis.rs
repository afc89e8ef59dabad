//! A randomized fault schedule, checked (Jepsen's method, as its checks of etcd and Consul):
//! clients pin and unpin through every peer while a nemesis, drawing from a seeded random
//! generator, kills peers (`kill -9`), pauses them (SIGSTOP: a laptop's lid), restarts them,
//! wipes their state and has them rejoin (`state cleanup` + `--bootstrap`), cuts hosts off
//! (network namespaces), removes peers (`peers rm`, then a rejoin) and changes the follower's
//! role. Then every fault is healed and a checker reads the history of acknowledged and
//! failed operations against the final pinsets:
//!
//! - every pin acknowledged, and never asked to be unpinned, is on every peer (an unpin that
//!   failed may still have been committed);
//! - every acknowledged unpin (after its pin was acknowledged) holds: the pin is gone;
//! - nothing is pinned that no client asked for;
//! - all peers agree, and each takes writes again;
//! - no peer panicked.
//!
//! Each schedule prints its seed and every step as it runs; `NEMESIS_SEED=<seed>` runs that
//! one again with the same `NEMESIS_STEPS`: each step draws from a generator of its own (seed,
//! step), so the draws are the same; what they meet (which peer is up, what a removal did)
//! depends on timing, as in any run of real processes.
//!
//! The nemesis never takes away what a cluster needs to recover by itself: at most a minority
//! of the voters (`(voters - 1) / 2`) have lost their state (wiped or removed) and not yet
//! rejoined at any time. Beyond that only an operator can decide (see the README's "Safety").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use ipfs_cluster::client::Client;
use ipfs_cluster::types::{Cid, PinOptions};

use crate::netns::{Host, Net};
use crate::{identity_cid, Gather, Peer, TestCluster};

/// splitmix64: tiny, and the same draws for a seed whatever crate versions the tests use.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// The shape of one schedule.
#[derive(Clone, Debug)]
pub struct Plan {
    pub seed: u64,
    pub voters: usize,
    pub followers: usize,
    /// Fault or heal steps.
    pub steps: usize,
}

impl Plan {
    /// CI's mix: mostly three voters, every third schedule five; always one follower.
    pub fn for_seed(seed: u64, steps: usize) -> Plan {
        Plan {
            seed,
            voters: if seed.is_multiple_of(3) { 5 } else { 3 },
            followers: 1,
            steps,
        }
    }
}

/// What the nemesis does in one step.
#[derive(Clone, Copy, Debug)]
enum Action {
    Kill,
    Pause,
    Restart,
    Wipe,
    CutOff,
    Remove,
    Promote,
    Demote,
}

const ACTIONS: [Action; 8] = [
    Action::Kill,
    Action::Pause,
    Action::Restart,
    Action::Wipe,
    Action::CutOff,
    Action::Remove,
    Action::Promote,
    Action::Demote,
];

/// One client operation and how it ended.
#[derive(Clone, Debug, Default)]
struct Record {
    pin_acked: bool,
    /// Which peer acknowledged the pin, and when (seconds into the schedule).
    acked_by: Option<(usize, f64)>,
    /// An unpin was asked for (its outcome may be unknown: a failed request may still have
    /// been committed).
    unpin_tried: bool,
    /// An unpin was acknowledged after the pin was.
    unpin_acked: bool,
    /// An unpin answered 404: the acknowledged pin was not found.
    unpin_not_found: bool,
}

/// What the checker found: empty when the schedule kept every guarantee.
#[derive(Debug, Default)]
pub struct Outcome {
    pub violations: Vec<String>,
    pub acknowledged_pins: usize,
    pub acknowledged_unpins: usize,
    pub failed_ops: usize,
    /// Steps as they were taken (for the report).
    pub steps: Vec<String>,
}

/// The test's view of each peer: the faults in force on it, and how to start it again.
#[derive(Clone, Debug, Default)]
struct PeerState {
    killed: bool,
    paused: bool,
    cut_off: bool,
    /// Its state was wiped or it was removed: it must start with `--bootstrap` until a run
    /// started so has logged READY.
    lost_state: bool,
    /// The current run was started with `--bootstrap` (after the state was lost).
    rejoining: bool,
    /// Joins as a follower.
    follower: bool,
}

impl PeerState {
    fn faulty(&self) -> bool {
        self.killed || self.paused || self.cut_off
    }
}

struct Nemesis<'a> {
    c: &'a mut TestCluster,
    hosts: Vec<Host>,
    state: Vec<PeerState>,
    rng: Rng,
    voters: usize,
    log: Vec<String>,
    start: Instant,
    /// Exits the nemesis did not cause (not a removal, not a join that found no leader).
    unexpected: Vec<String>,
    seed: u64,
}

fn client_of(peer: &Peer, timeout: Duration) -> Client {
    Client::new(
        &format!("{}:{}", peer.addr(), peer.rest_port),
        None,
        timeout,
    )
    .expect("client")
}

impl Nemesis<'_> {
    fn say(&mut self, what: String) {
        let line = format!("[{:>6.1}s] {what}", self.start.elapsed().as_secs_f64());
        eprintln!("nemesis: {line}");
        self.log.push(line);
    }

    /// Peers that lost their state and have not rejoined yet: only a run started with
    /// `--bootstrap` after the loss that logged READY ends it.
    fn lost(&mut self) -> usize {
        for (i, s) in self.state.iter_mut().enumerate() {
            let p = &mut self.c.peers[i];
            if s.lost_state
                && s.rejoining
                && p.is_running()
                && p.current_log().contains("IPFS Cluster is READY")
            {
                s.lost_state = false;
                s.rejoining = false;
            }
        }
        self.state.iter().filter(|s| s.lost_state).count()
    }

    /// A running peer other than `not`, to bootstrap through or to ask.
    fn other_running(&mut self, not: usize) -> Option<usize> {
        let n = self.c.peers.len();
        let start = self.rng.below(n);
        (0..n).map(|k| (start + k) % n).find(|&i| {
            i != not
                && !self.state[i].faulty()
                && !self.state[i].lost_state
                && self.c.peers[i].is_running()
        })
    }

    /// Starts peer `i` again (with `--bootstrap` through another peer if it lost its state),
    /// without waiting for it to be ready: the cluster may have no quorum yet.
    fn respawn(&mut self, i: usize) {
        if self.state[i].paused || self.c.peers[i].is_running() {
            return;
        }
        let exit = self.c.peers[i].reap();
        self.state[i].killed = false;
        let log = self.c.peers[i].current_log();
        // A removed peer cleans its state as it shuts down.
        if log.contains("this peer was removed from the cluster") {
            self.state[i].lost_state = true;
        } else if let Some(status) = exit.filter(|s| !s.success()) {
            // A join that found no leader or no bootstrap peer gives up; anything else is
            // a crash.
            if !log.contains("could not join the cluster") {
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                self.unexpected.push(format!(
                    "peer {i} exited by itself ({status}): {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
        }
        let spawned = if self.state[i].lost_state {
            let via = self
                .other_running(i)
                .unwrap_or((i + 1) % self.c.peers.len());
            let addr = self.c.peers[via].cluster_addr();
            self.say(format!(
                "start peer {i} with --bootstrap through peer {via}"
            ));
            let mut args = vec!["--bootstrap", addr.as_str()];
            if self.state[i].follower {
                args.push("--follower");
            }
            self.state[i].rejoining = true;
            self.c.peers[i].spawn(&args)
        } else {
            self.say(format!("start peer {i}"));
            self.c.peers[i].spawn(&[])
        };
        if let Err(e) = spawned {
            self.say(format!("peer {i} did not start: {e}"));
        }
    }

    /// Ends whatever fault holds peer `i` (and starts it if it is not running).
    fn heal(&mut self, i: usize) {
        if std::mem::take(&mut self.state[i].paused) {
            self.say(format!("resume peer {i} (SIGCONT)"));
            self.c.peers[i].signal("-CONT");
        }
        if std::mem::take(&mut self.state[i].cut_off) {
            self.say(format!("reconnect peer {i}'s host"));
            if let Err(e) = self.hosts[i].reconnect() {
                self.unexpected
                    .push(format!("cannot reconnect peer {i}'s host: {e}"));
            }
        }
        self.respawn(i);
    }

    /// Stops peer `i` for a restart or a wipe: resumed first if paused (a stopped process
    /// would not see SIGTERM), reconnected if cut off.
    fn stop(&mut self, i: usize) {
        if self.state[i].faulty() {
            self.heal(i);
        }
        self.c.peers[i].stop();
    }

    async fn step(&mut self, k: u64) {
        // Each step draws from its own generator: a step that went differently in a replay
        // (timing) does not change the draws of the next ones.
        self.rng = Rng::new(self.seed ^ (k + 1).wrapping_mul(0xd1b5_4a32_d192_ed03));
        let n = self.c.peers.len();
        // Faults in force, and peers that exited (a removed peer shuts down).
        let active: Vec<usize> = (0..n)
            .filter(|&i| self.state[i].faulty() || !self.c.peers[i].is_running())
            .collect();
        if !active.is_empty() && self.rng.chance(35) {
            let i = active[self.rng.below(active.len())];
            self.heal(i);
            return;
        }
        let i = self.rng.below(n);
        let action = ACTIONS[self.rng.below(ACTIONS.len())];
        let may_lose = self.lost() < (self.voters - 1) / 2;
        match action {
            Action::Kill => {
                self.say(format!("kill -9 peer {i}"));
                self.c.peers[i].kill9();
                self.state[i].killed = true;
                self.state[i].paused = false;
            }
            Action::Pause if !self.state[i].faulty() && self.c.peers[i].is_running() => {
                self.say(format!("pause peer {i} (SIGSTOP)"));
                self.c.peers[i].signal("-STOP");
                self.state[i].paused = true;
            }
            Action::CutOff if !self.state[i].cut_off && !self.hosts.is_empty() => {
                self.say(format!("cut peer {i}'s host off"));
                match self.hosts[i].cut_off() {
                    Ok(()) => self.state[i].cut_off = true,
                    Err(e) => self.say(format!("cannot cut off: {e}")),
                }
            }
            Action::Restart => {
                self.say(format!("restart peer {i} (SIGTERM, start)"));
                self.stop(i);
                self.respawn(i);
            }
            Action::Wipe if may_lose && !self.state[i].lost_state => {
                self.say(format!(
                    "wipe peer {i}: stop, state cleanup --force, rejoin with --bootstrap"
                ));
                self.stop(i);
                if let Err(e) = self.c.peers[i].cleanup_state() {
                    self.say(format!("cleanup failed: {e}"));
                }
                self.state[i].lost_state = true;
                self.respawn(i);
            }
            Action::Remove if may_lose && !self.state[i].lost_state => {
                let Some(via) = self.other_running(i) else {
                    return;
                };
                let id = self.c.peers[i].id();
                let client = client_of(&self.c.peers[via], Duration::from_secs(20));
                let removed = client.peer_rm(&id).await;
                self.say(format!(
                    "peers rm peer {i} through peer {via}: {}",
                    match &removed {
                        Ok(()) => "done".to_string(),
                        Err(e) => format!("failed ({e})"),
                    }
                ));
                // Whether or not it answered, the removal may have been committed: the peer
                // shuts down when it learns it, and counts as having lost its state until it
                // has rejoined with --bootstrap (if it was not removed, until it is stopped
                // and rejoins: the nemesis stays on the safe side).
                self.state[i].lost_state = true;
                self.state[i].rejoining = false;
            }
            Action::Promote | Action::Demote => {
                let role = if matches!(action, Action::Promote) {
                    "voter"
                } else {
                    "follower"
                };
                // The followers only: demoting voters could leave the cluster a single voter
                // that the nemesis then wipes, which no cluster survives by itself.
                let f = self.voters + self.rng.below(n - self.voters);
                let Some(via) = self.other_running(f) else {
                    return;
                };
                let id = self.c.peers[f].id();
                let client = client_of(&self.c.peers[via], Duration::from_secs(20));
                let done = client.peer_role(&id, role).await;
                if done.is_ok() {
                    self.state[f].follower = role == "follower";
                }
                self.say(format!(
                    "make peer {f} a {role} through peer {via}: {}",
                    match &done {
                        Ok(()) => "done".to_string(),
                        Err(e) => format!("failed ({e})"),
                    }
                ));
            }
            _ => {}
        }
    }
}

/// Clients: each pins new CIDs through a random peer and unpins some of its acknowledged
/// ones through another, until `stop`.
fn start_clients(
    c: &TestCluster,
    seed: u64,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<BTreeMap<String, Record>>>,
    asked: Arc<Mutex<BTreeSet<String>>>,
    failed: Arc<std::sync::atomic::AtomicUsize>,
) -> tokio::task::JoinSet<()> {
    let clients: Vec<Client> = c
        .peers
        .iter()
        .map(|p| client_of(p, Duration::from_secs(10)))
        .collect();
    let mut set = tokio::task::JoinSet::new();
    let start = Instant::now();
    for w in 0..4u64 {
        let clients = clients.clone();
        let (stop, history, asked, failed) =
            (stop.clone(), history.clone(), asked.clone(), failed.clone());
        set.spawn(async move {
            let mut rng = Rng::new(seed ^ (w + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
            let mut mine: Vec<String> = Vec::new();
            // Bounded in count as well as by the nemesis.
            for k in 0..5_000u64 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let via = rng.below(clients.len());
                let through = &clients[via];
                if !mine.is_empty() && rng.chance(30) {
                    let cid = mine.swap_remove(rng.below(mine.len()));
                    history
                        .lock()
                        .unwrap()
                        .entry(cid.clone())
                        .or_default()
                        .unpin_tried = true;
                    match through.unpin(&cid).await {
                        Ok(_) => history.lock().unwrap().entry(cid).or_default().unpin_acked = true,
                        // The pin was acknowledged: "not found" means it was lost.
                        Err(e) if e.code() == Some(404) => {
                            history
                                .lock()
                                .unwrap()
                                .entry(cid)
                                .or_default()
                                .unpin_not_found = true
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    continue;
                }
                let cid: Cid = identity_cid(&format!("nemesis {seed} client {w} pin {k}"))
                    .parse()
                    .expect("a CID");
                let cid = cid.to_string();
                asked.lock().unwrap().insert(cid.clone());
                match through.pin(&cid, &PinOptions::default()).await {
                    Ok(_) => {
                        let mut h = history.lock().unwrap();
                        let r = h.entry(cid.clone()).or_default();
                        r.pin_acked = true;
                        r.acked_by = Some((via, start.elapsed().as_secs_f64()));
                        mine.push(cid);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    set
}

/// Every peer's pinset, or why one could not be read.
async fn pinsets(c: &TestCluster) -> Result<Vec<BTreeSet<String>>, String> {
    let mut out = Vec::new();
    for (i, p) in c.peers.iter().enumerate() {
        let pins = client_of(p, Duration::from_secs(20))
            .allocations("")
            .await
            .gather()
            .await
            .map_err(|e| format!("peer {i}: {e}"))?;
        out.push(pins.iter().map(|p| p.cid.to_string()).collect());
    }
    Ok(out)
}

/// Whether every peer sees the same leader and every test peer as a reachable member.
async fn settled(c: &TestCluster) -> bool {
    let ids: BTreeSet<String> = c.peers.iter().map(Peer::id).collect();
    let mut leaders = BTreeSet::new();
    for p in &c.peers {
        let client = client_of(p, Duration::from_secs(20));
        let Ok(id) = client.id().await else {
            return false;
        };
        leaders.insert(id.leader);
        let Ok(list) = client.peers().await else {
            return false;
        };
        let reachable: BTreeSet<String> = list
            .into_iter()
            .filter(|m| m.error.is_empty())
            .map(|m| m.id)
            .collect();
        if reachable != ids {
            return false;
        }
    }
    leaders.len() == 1 && leaders.first().is_some_and(Option::is_some)
}

/// Runs one schedule and checks it.
pub async fn run(plan: &Plan) -> Result<Outcome> {
    let net = Net::create(plan.voters + plan.followers)?;
    let hosts: Vec<Host> = net.as_ref().map(|n| n.hosts.clone()).unwrap_or_default();
    eprintln!(
        "nemesis: seed {} — {} voters, {} follower(s), {} steps, {}",
        plan.seed,
        plan.voters,
        plan.followers,
        plan.steps,
        if hosts.is_empty() {
            "on loopback (no partitions)"
        } else {
            "each peer on its own host"
        }
    );
    let mut c =
        TestCluster::start_consensus_only(&hosts, plan.voters, plan.followers, |_| {}).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let history: Arc<Mutex<BTreeMap<String, Record>>> = Default::default();
    let asked: Arc<Mutex<BTreeSet<String>>> = Default::default();
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = start_clients(
        &c,
        plan.seed,
        stop.clone(),
        history.clone(),
        asked.clone(),
        failed.clone(),
    );
    let n = c.peers.len();
    let mut state = vec![PeerState::default(); n];
    for s in &mut state[plan.voters..] {
        s.follower = true;
    }
    let mut nemesis = Nemesis {
        c: &mut c,
        hosts,
        state,
        rng: Rng::new(plan.seed),
        voters: plan.voters,
        log: Vec::new(),
        start: Instant::now(),
        unexpected: Vec::new(),
        seed: plan.seed,
    };
    for k in 0..plan.steps as u64 {
        let pause = 200 + Rng::new(plan.seed.wrapping_add(k)).below(1_300) as u64;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        nemesis.step(k).await;
    }
    // Heal everything; the clients stop once their operation in flight ends.
    nemesis.say("heal every fault".into());
    for i in 0..n {
        nemesis.heal(i);
    }
    stop.store(true, Ordering::Relaxed);
    while clients.join_next().await.is_some() {}

    // Converged: every peer running and ready, every peer sees the same leader and all the
    // peers as members (none unreachable), and every pinset is the same on two polls in a
    // row. Peers that exited meanwhile (a removed peer shuts down; a join that found no
    // leader gives up) are started again.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut outcome = Outcome::default();
    let mut last: Option<BTreeSet<String>> = None;
    let agreed = loop {
        for i in 0..n {
            nemesis.lost();
            nemesis.respawn(i);
        }
        let ready = (0..n).all(|i| {
            nemesis.c.peers[i]
                .current_log()
                .contains("IPFS Cluster is READY")
        });
        let now = if ready && settled(nemesis.c).await {
            match pinsets(nemesis.c).await {
                Ok(sets) if sets.windows(2).all(|w| w[0] == w[1]) => Some(sets[0].clone()),
                _ => None,
            }
        } else {
            None
        };
        if now.is_some() && now == last {
            break now;
        }
        last = now;
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(1_000)).await;
    };
    nemesis.say("healed".into());
    outcome.steps = std::mem::take(&mut nemesis.log);
    outcome.violations.append(&mut nemesis.unexpected);
    let c = &mut c;
    let history = history.lock().unwrap().clone();
    outcome.acknowledged_pins = history.values().filter(|r| r.pin_acked).count();
    outcome.acknowledged_unpins = history.values().filter(|r| r.unpin_acked).count();
    outcome.failed_ops = failed.load(Ordering::Relaxed);
    match &agreed {
        None => {
            let mut why = Vec::new();
            for (i, p) in c.peers.iter_mut().enumerate() {
                why.push(format!(
                    "peer {i}: running {}, ready {}",
                    p.is_running(),
                    p.current_log().contains("IPFS Cluster is READY")
                ));
            }
            match pinsets(c).await {
                Ok(sets) => {
                    for (i, s) in sets.iter().enumerate() {
                        why.push(format!("peer {i} holds {} pins", s.len()));
                    }
                }
                Err(e) => why.push(e),
            }
            outcome.violations.push(format!(
                "not converged 240 s after healing: {}",
                why.join("; ")
            ));
        }
        Some(set) => {
            let asked = asked.lock().unwrap().clone();
            for (cid, r) in &history {
                if r.pin_acked && !r.unpin_tried && !set.contains(cid) {
                    let (by, at) = r.acked_by.unwrap_or_default();
                    outcome.violations.push(format!(
                        "acknowledged pin {cid} lost (acknowledged by peer {by} at {at:.1}s)"
                    ));
                }
                if r.pin_acked && r.unpin_not_found {
                    outcome.violations.push(format!(
                        "acknowledged pin {cid} not found by its unpin (404)"
                    ));
                }
                if r.pin_acked && r.unpin_acked && set.contains(cid) {
                    outcome
                        .violations
                        .push(format!("acknowledged unpin of {cid} undone"));
                }
            }
            for cid in set {
                if !asked.contains(cid) {
                    outcome
                        .violations
                        .push(format!("{cid} pinned though no client asked for it"));
                }
            }
            // Writes are accepted again, through every peer, and reach every peer.
            let mut expected = set.clone();
            for (i, p) in c.peers.iter().enumerate() {
                let text = format!("nemesis {} after healing, peer {i}", plan.seed);
                let cid: Cid = identity_cid(&text).parse().expect("a CID");
                match client_of(p, Duration::from_secs(60))
                    .pin(&cid.to_string(), &PinOptions::default())
                    .await
                {
                    Ok(_) => {
                        expected.insert(cid.to_string());
                    }
                    Err(e) => outcome
                        .violations
                        .push(format!("peer {i} refused a write after healing: {e}")),
                }
            }
            let end = Instant::now() + Duration::from_secs(60);
            loop {
                match pinsets(c).await {
                    Ok(sets) if sets.iter().all(|s| *s == expected) => break,
                    _ if Instant::now() >= end => {
                        outcome.violations.push(
                            "the writes after healing did not reach every peer within 60 s".into(),
                        );
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        }
    }
    for (i, p) in c.peers.iter().enumerate() {
        let log = std::fs::read_to_string(p.log_path()).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("panicked at")) {
            outcome
                .violations
                .push(format!("peer {i} panicked: {line}"));
        }
    }
    outcome.violations.truncate(20);
    if !outcome.violations.is_empty() {
        eprintln!(
            "nemesis: seed {} FAILED; replay with NEMESIS_SEED={} NEMESIS_STEPS={}\nsteps:\n{}\nviolations:\n{}",
            plan.seed,
            plan.seed,
            plan.steps,
            outcome.steps.join("\n"),
            outcome.violations.join("\n")
        );
        // The whole logs, kept where the next run does not remove them.
        let keep = crate::bin_dir()
            .join("nemesis")
            .join(format!("seed-{}", plan.seed));
        let _ = std::fs::create_dir_all(&keep);
        for (i, p) in c.peers.iter().enumerate() {
            let _ = std::fs::copy(p.log_path(), keep.join(format!("peer-{i}.log")));
        }
        let _ = std::fs::write(keep.join("steps.txt"), outcome.steps.join("\n"));
        eprintln!("nemesis: the peers' logs are in {}", keep.display());
    }
    // The peers stop (dropped with `c`) before their hosts go (`net`, declared first).
    Ok(outcome)
}
