//! The cluster's status of every pin as one stream: each member's status arrives in CID order
//! (this peer's from its tracker, the others' in pages over cluster RPC), and the streams are
//! merged as they arrive into one GlobalPinInfo per CID. Memory stays at a page per member,
//! whatever the size of the pinset; IPFS Cluster gathers every peer's whole answer first.
//!
//! A member that cannot be asked, or stops answering half-way, does not fail the listing: from
//! where it stopped, each pin allocated to it shows `cluster_error` with the reason.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::components::{Member, PeerCall, PeerRpc, Pinset, RpcError};
use crate::types::{GlobalPinInfo, PinInfo, PinInfoShort, PinKey, TrackerStatus};

/// Pins per page asked of another member: about half a megabyte per message.
pub(crate) const PAGE: usize = 1000;
/// Pins a member is asked to recover in one call.
pub(crate) const RECOVER_CALL: usize = 100;

/// `member`'s status of every pin, page by page; when it cannot be asked, `cluster_error` for
/// the pins allocated to it, read from this peer's pinset.
pub(crate) fn remote(
    rpc: Arc<dyn PeerRpc>,
    state: Arc<dyn Pinset>,
    member: Member,
    listing: u64,
    timeout: Duration,
) -> BoxStream<'static, PinInfo> {
    paged(
        rpc,
        state,
        member,
        listing,
        timeout,
        |_, _, page| async move { Ok(page) },
    )
}

/// Recovers on `member` page by page: each page of its status, then the pins of it in error
/// or unexpectedly unpinned recovered in calls of [`RECOVER_CALL`] (each costs the member an
/// IPFS question per unexpectedly unpinned pin, within one timeout; a last page may hold more
/// than [`PAGE`], with operations on CIDs gone from the pinset); the status of each one queued
/// again. When it cannot be asked, as [`remote`].
pub(crate) fn recover_remote(
    rpc: Arc<dyn PeerRpc>,
    state: Arc<dyn Pinset>,
    member: Member,
    listing: u64,
    timeout: Duration,
) -> BoxStream<'static, PinInfo> {
    paged(
        rpc,
        state,
        member,
        listing,
        timeout,
        move |rpc, member, page| async move {
            let errored: Vec<_> = page
                .iter()
                .filter(|i| recoverable(i.info.status))
                .map(|i| i.pin.cid)
                .collect();
            let mut recovered = Vec::new();
            for chunk in errored.chunks(RECOVER_CALL) {
                let call = PeerCall::RecoverCids(chunk.to_vec());
                recovered.extend(rpc.pins(&member, call, timeout).await?);
            }
            recovered.sort_by_cached_key(|i| i.pin.cid.key());
            Ok(recovered)
        },
    )
}

/// Walks `member`'s status a page at a time and yields what `each` makes of every page. When
/// the member cannot be asked, or `each` fails on a page, that page and the rest show
/// `cluster_error` for the pins allocated to the member, read from this peer's pinset.
fn paged<F, Fut>(
    rpc: Arc<dyn PeerRpc>,
    state: Arc<dyn Pinset>,
    member: Member,
    listing: u64,
    timeout: Duration,
    each: F,
) -> BoxStream<'static, PinInfo>
where
    F: Fn(Arc<dyn PeerRpc>, Member, Vec<PinInfo>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Vec<PinInfo>, RpcError>> + Send,
{
    Box::pin(async_stream::stream! {
        let mut after: Option<PinKey> = None;
        loop {
            let call = PeerCall::StatusPage { listing, after: after.clone(), limit: PAGE };
            let answer = match rpc.pins(&member, call, timeout).await {
                Ok(page) => {
                    let last = page.len() < PAGE;
                    let next = page.last().map(|i| i.pin.cid.key());
                    each(rpc.clone(), member.clone(), page).await.map(|items| (items, last, next))
                }
                Err(e) => Err(e),
            };
            match answer {
                // It takes no calls from this peer (a trusted peer asked by a follower):
                // left out, as IPFS Cluster leaves out authorization errors.
                Err(RpcError::Unauthorized { .. }) => return,
                Ok((items, last, next)) => {
                    for info in items {
                        yield info;
                    }
                    if last {
                        return;
                    }
                    after = next.or(after);
                }
                Err(e) => {
                    let mut rest = unreachable(state, member, after, e);
                    while let Some(info) = rest.next().await {
                        yield info;
                    }
                    return;
                }
            }
        }
    })
}

/// The statuses a recover queues again (as IPFS Cluster's tracker).
fn recoverable(status: TrackerStatus) -> bool {
    matches!(
        status,
        TrackerStatus::PinError | TrackerStatus::UnpinError | TrackerStatus::UnexpectedlyUnpinned
    )
}

/// How a member that could not answer shows in a pin's status: `cluster_error` with the
/// reason, or, when its release does not have the call (a rolling upgrade in progress),
/// `undefined` ("not known": IPFS Cluster's status for it) saying so, since nothing is wrong
/// with the peer or the pin.
pub(crate) fn unanswered(member: &str, e: &RpcError) -> PinInfoShort {
    match e {
        RpcError::Unsupported { .. } => PinInfoShort::now(TrackerStatus::Undefined, e.to_string()),
        e => PinInfoShort::now(
            TrackerStatus::ClusterError,
            format!("peer {member} not reachable: {e}"),
        ),
    }
}

/// [`unanswered`] for each pin allocated to `member` after `after` (all from the start when
/// None), read from this peer's pinset as the stream is consumed.
pub(crate) fn unreachable(
    state: Arc<dyn Pinset>,
    member: Member,
    after: Option<PinKey>,
    error: RpcError,
) -> BoxStream<'static, PinInfo> {
    Box::pin(async_stream::stream! {
        let mut pins = state.stream_after(after);
        while let Some(Ok(pin)) = pins.next().await {
            if pin.is_allocated_to(&member.peer_id) {
                yield PinInfo::of(&pin, &member.peer_id, unanswered(&member.peer_id, &error));
            }
        }
    })
}

/// One member's answer (a list, in any order) as a source for [`merge`].
#[cfg(test)]
pub(crate) fn sorted(mut infos: Vec<PinInfo>) -> BoxStream<'static, PinInfo> {
    infos.sort_by_cached_key(|i| i.pin.cid.key());
    Box::pin(futures::stream::iter(infos))
}

/// Merges streams that are each in CID order into one GlobalPinInfo per CID, in CID order.
pub(crate) fn merge(
    mut sources: Vec<BoxStream<'static, PinInfo>>,
) -> BoxStream<'static, GlobalPinInfo> {
    let key = |i: PinInfo| (i.pin.cid.key(), i);
    Box::pin(async_stream::stream! {
        // Every source is asked at once, for its first item and whenever several need their
        // next: a member that does not answer costs its timeout once, not once per member.
        let firsts = join_all(sources.iter_mut().map(|s| s.next())).await;
        let mut heads: Vec<Option<(PinKey, PinInfo)>> =
            firsts.into_iter().map(|i| i.map(key)).collect();
        loop {
            let Some(min) = heads.iter().flatten().map(|(k, _)| k).min().cloned() else {
                return;
            };
            let mut merged: Option<GlobalPinInfo> = None;
            // A source could repeat a CID: every entry for `min` is taken.
            loop {
                let at_min: Vec<usize> = heads
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| h.as_ref().is_some_and(|(k, _)| *k == min))
                    .map(|(n, _)| n)
                    .collect();
                if at_min.is_empty() {
                    break;
                }
                for &n in &at_min {
                    let (_, info) = heads[n].take().expect("checked");
                    let g = merged.get_or_insert_with(|| GlobalPinInfo {
                        pin: info.pin.clone(),
                        peer_map: Default::default(),
                    });
                    g.peer_map.insert(info.peer, info.info);
                }
                let nexts = join_all(
                    sources
                        .iter_mut()
                        .enumerate()
                        .filter(|(n, _)| at_min.contains(n))
                        .map(|(_, s)| s.next()),
                )
                .await;
                for (&n, next) in at_min.iter().zip(nexts) {
                    heads[n] = next.map(key);
                }
            }
            if let Some(g) = merged {
                yield g;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfsconn::fake::test_cid;
    use crate::types::{Pin, PinOptions};

    fn info(n: u32, peer: &str, status: TrackerStatus) -> PinInfo {
        let pin = Pin::new(test_cid(n), PinOptions::default());
        PinInfo::of(&pin, peer, PinInfoShort::now(status, String::new()))
    }

    #[tokio::test]
    async fn merging_gives_one_entry_per_cid_in_cid_order_with_every_peers_status() {
        let a = sorted(vec![
            info(1, "a", TrackerStatus::Pinned),
            info(2, "a", TrackerStatus::Pinned),
            info(4, "a", TrackerStatus::Remote),
        ]);
        let b = sorted(vec![
            info(2, "b", TrackerStatus::Pinning),
            info(3, "b", TrackerStatus::UnpinQueued),
            info(4, "b", TrackerStatus::Pinned),
        ]);
        let merged: Vec<GlobalPinInfo> = merge(vec![a, b]).collect().await;
        let mut want: Vec<String> = (1..=4).map(|n| test_cid(n).to_string()).collect();
        want.sort();
        let got: Vec<String> = merged.iter().map(|g| g.pin.cid.to_string()).collect();
        assert_eq!(got, want);
        let two = merged.iter().find(|g| g.pin.cid == test_cid(2)).unwrap();
        assert_eq!(two.peer_map["a"].status, TrackerStatus::Pinned);
        assert_eq!(two.peer_map["b"].status, TrackerStatus::Pinning);
        let three = merged.iter().find(|g| g.pin.cid == test_cid(3)).unwrap();
        assert_eq!(three.peer_map.len(), 1);
    }

    /// A source that yields `items` only once every source of the barrier was asked for its
    /// first item: it stands for a member whose first page takes as long as the others'.
    fn at_barrier(
        barrier: Arc<tokio::sync::Barrier>,
        items: Vec<PinInfo>,
    ) -> BoxStream<'static, PinInfo> {
        Box::pin(async_stream::stream! {
            barrier.wait().await;
            for i in items {
                yield i;
            }
        })
    }

    #[tokio::test]
    async fn every_member_is_asked_for_its_first_page_at_once() {
        // One after another, a member that does not answer held up the listing for its whole
        // timeout before the next was even asked (30 s each).
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let sources = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(n, peer)| {
                at_barrier(
                    barrier.clone(),
                    vec![info(n as u32, peer, TrackerStatus::Pinned)],
                )
            })
            .collect();
        let merged: Vec<GlobalPinInfo> =
            tokio::time::timeout(Duration::from_secs(10), merge(sources).collect())
                .await
                .expect("the first pages were asked for together");
        assert_eq!(merged.len(), 3);
    }

    /// A member over cluster RPC holding `pins` (in CID order), those at `errored` in error;
    /// a recover call fails from the `fail_at`-th on.
    struct Member2 {
        pins: Vec<Pin>,
        errored: Vec<usize>,
        recover_calls: std::sync::Mutex<Vec<usize>>,
        fail_at: usize,
    }

    #[async_trait::async_trait]
    impl PeerRpc for Member2 {
        async fn id(
            &self,
            _: &Member,
            _: Duration,
        ) -> Result<crate::types::Id, crate::components::RpcError> {
            unreachable!()
        }
        async fn pins(
            &self,
            to: &Member,
            call: PeerCall,
            _: Duration,
        ) -> Result<Vec<PinInfo>, crate::components::RpcError> {
            let status = |n: usize, s| {
                PinInfo::of(
                    &self.pins[n],
                    &to.peer_id,
                    PinInfoShort::now(s, String::new()),
                )
            };
            match call {
                PeerCall::StatusPage { after, limit, .. } => Ok((0..self.pins.len())
                    .filter(|&n| after.as_ref().is_none_or(|a| self.pins[n].cid.key() > *a))
                    .take(limit)
                    .map(|n| {
                        let s = if self.errored.contains(&n) {
                            TrackerStatus::PinError
                        } else {
                            TrackerStatus::Pinned
                        };
                        status(n, s)
                    })
                    .collect()),
                PeerCall::RecoverCids(cids) => {
                    let mut calls = self.recover_calls.lock().unwrap();
                    calls.push(cids.len());
                    if calls.len() >= self.fail_at {
                        return Err(crate::components::RpcError::Timeout {
                            peer: to.peer_id.clone(),
                            timeout: Duration::from_secs(1),
                        });
                    }
                    Ok(cids
                        .iter()
                        .map(|c| {
                            status(
                                self.pins.iter().position(|p| p.cid == *c).unwrap(),
                                TrackerStatus::PinQueued,
                            )
                        })
                        .collect())
                }
                other => panic!("not asked of a member: {other:?}"),
            }
        }
        async fn metrics(
            &self,
            _: &Member,
            _: Vec<crate::types::Metric>,
            _: Duration,
        ) -> Result<(), crate::components::RpcError> {
            unreachable!()
        }
        async fn node(
            &self,
            _: &Member,
            _: crate::components::NodeCall,
            _: Duration,
        ) -> Result<crate::components::NodeAnswer, crate::components::RpcError> {
            unreachable!()
        }
        fn bandwidth(&self) -> std::collections::BTreeMap<String, crate::types::Bandwidth> {
            Default::default()
        }
    }

    /// Recovering on another member goes a page at a time: each page of its status, then
    /// one call for the pins of that page in error; the status of each one queued again, in
    /// CID order. A member that stops answering half-way shows `cluster_error` from where it
    /// stopped, for the pins allocated to it.
    #[tokio::test]
    async fn recovering_on_another_member_goes_a_page_at_a_time() {
        let state = crate::state::StateHandle::default();
        let mut pins: Vec<Pin> = (0..2_500)
            .map(|n| Pin::new(test_cid(n), PinOptions::default()))
            .collect();
        pins.sort_by_cached_key(|p| p.cid.key());
        for p in &pins {
            state.insert(p.clone());
        }
        let member = Member {
            peer_id: "m".into(),
            addrs: Vec::new(),
            role: crate::types::PeerRole::Voter,
        };
        // Page one: 5, 100..250 and 999 (two calls); page two: 1,000; page three: 2,400.
        let mut errored = vec![5, 999, 1_000, 2_400];
        errored.extend(100..250);
        let rpc = Arc::new(Member2 {
            pins: pins.clone(),
            errored: errored.clone(),
            recover_calls: Default::default(),
            fail_at: usize::MAX,
        });
        let got: Vec<PinInfo> = recover_remote(
            rpc.clone(),
            Arc::new(state.clone()),
            member.clone(),
            1,
            Duration::from_secs(1),
        )
        .collect()
        .await;
        errored.sort();
        let want: Vec<String> = errored.iter().map(|&n| pins[n].cid.to_string()).collect();
        let got_cids: Vec<String> = got.iter().map(|i| i.pin.cid.to_string()).collect();
        assert_eq!(got_cids, want);
        assert!(got
            .iter()
            .all(|i| i.info.status == TrackerStatus::PinQueued));
        assert_eq!(
            *rpc.recover_calls.lock().unwrap(),
            vec![100, 52, 1, 1],
            "calls of at most 100, for a page's pins in error only"
        );
        // The second call (page one's last 52) fails: from page one's start, every pin of
        // the member shows its error.
        let rpc = Arc::new(Member2 {
            pins: pins.clone(),
            errored,
            recover_calls: Default::default(),
            fail_at: 2,
        });
        let got: Vec<PinInfo> =
            recover_remote(rpc, Arc::new(state), member, 1, Duration::from_secs(1))
                .collect()
                .await;
        assert_eq!(got.len(), 2_500);
        assert!(got
            .iter()
            .all(|i| i.info.status == TrackerStatus::ClusterError));
        assert_eq!(got[0].pin.cid, pins[0].cid);
    }

    /// A member whose release does not have a call (a rolling upgrade in progress) is not a
    /// fault: its pins show `undefined` ("not known") saying so, never `cluster_error`; a
    /// member that cannot be reached still shows `cluster_error`.
    #[test]
    fn a_call_a_members_release_lacks_is_told_as_such_not_as_a_cluster_error() {
        let old = RpcError::Unsupported {
            peer: "12D3KooWOld".into(),
            version: "0.1.0".into(),
        };
        let short = unanswered("12D3KooWOld", &old);
        assert_eq!(short.status, TrackerStatus::Undefined);
        assert_eq!(
            short.error,
            "unsupported by peer 12D3KooWOld (version 0.1.0)"
        );
        let gone = RpcError::Timeout {
            peer: "12D3KooWGone".into(),
            timeout: Duration::from_secs(1),
        };
        let short = unanswered("12D3KooWGone", &gone);
        assert_eq!(short.status, TrackerStatus::ClusterError);
        assert!(
            short.error.starts_with("peer 12D3KooWGone not reachable"),
            "{}",
            short.error
        );
    }
}
