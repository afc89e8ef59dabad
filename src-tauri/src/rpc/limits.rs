//! How many connections the swarm holds, so that whoever can reach the swarm port (the LAN,
//! without the secret) cannot exhaust the peer's file descriptors and stop it.
//!
//! A connection holds a descriptor from `accept` until it is dropped, and one without the
//! secret never gets past the private-network handshake. So: few connections may be
//! handshaking at once ([`SwarmLimits::pending_incoming`], and fewer per remote address:
//! [`SwarmLimits::pending_per_ip`], so that one host cannot take every slot from the
//! others), a handshake has [`SwarmLimits::handshake`] to finish, and established
//! connections follow `cluster.connection_manager` (`high_water` at most, a few per peer). A
//! connection over a limit is closed as soon as it is accepted: its descriptor is given back
//! at once. Established connections are kept, so a flood of strangers leaves the members'
//! traffic alone.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::Endpoint;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use crate::config::ConnMgrConfig;

/// The swarm's connection limits.
#[derive(Clone, Debug, PartialEq)]
pub struct SwarmLimits {
    /// Inbound connections still handshaking, from everyone.
    pub pending_incoming: u32,
    /// Inbound connections still handshaking, from one remote address.
    pub pending_per_ip: u32,
    /// Established inbound connections (`connection_manager.high_water`).
    pub established_incoming: u32,
    /// Established connections with one peer (simultaneous dials make two).
    pub established_per_peer: u32,
    /// How long the secret, noise and yamux handshakes may take together.
    pub handshake: Duration,
    /// Incoming calls other than Raft's answered at once, from all peers together; one more
    /// is answered "busy" at once (the caller retries, as after any transient failure).
    pub calls_in_flight: usize,
    /// Incoming Raft calls answered at once (a limit of their own, so that a flood of other
    /// calls never starves heartbeats and votes).
    pub raft_calls_in_flight: usize,
}

impl SwarmLimits {
    /// The limits for `connection_manager` (its `high_water` bounds established
    /// connections; this swarm keeps no more than that rather than trimming later).
    pub fn of(cm: &ConnMgrConfig) -> SwarmLimits {
        SwarmLimits {
            established_incoming: cm.high_water.max(8),
            ..SwarmLimits::default()
        }
    }
}

impl Default for SwarmLimits {
    fn default() -> Self {
        SwarmLimits {
            pending_incoming: 64,
            pending_per_ip: 16,
            established_incoming: 400,
            established_per_peer: 4,
            handshake: Duration::from_secs(5),
            calls_in_flight: 256,
            raft_calls_in_flight: 64,
        }
    }
}

/// The libp2p behaviours that enforce [`SwarmLimits`].
pub(super) fn behaviours(l: &SwarmLimits) -> (libp2p::connection_limits::Behaviour, PendingPerIp) {
    let limits = libp2p::connection_limits::ConnectionLimits::default()
        .with_max_pending_incoming(Some(l.pending_incoming))
        .with_max_established_incoming(Some(l.established_incoming))
        .with_max_established_per_peer(Some(l.established_per_peer));
    (
        libp2p::connection_limits::Behaviour::new(limits),
        PendingPerIp::new(l.pending_per_ip),
    )
}

/// Denies an inbound connection while `max` from the same IP address are handshaking.
pub(super) struct PendingPerIp {
    max: u32,
    pending: HashMap<IpAddr, HashSet<ConnectionId>>,
    /// Which address each pending connection came from.
    from: HashMap<ConnectionId, IpAddr>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0} connections from {1} are already handshaking")]
struct TooManyFrom(u32, IpAddr);

impl PendingPerIp {
    fn new(max: u32) -> PendingPerIp {
        PendingPerIp {
            max,
            pending: HashMap::new(),
            from: HashMap::new(),
        }
    }

    fn done(&mut self, id: ConnectionId) {
        if let Some(ip) = self.from.remove(&id) {
            if let Some(set) = self.pending.get_mut(&ip) {
                set.remove(&id);
                if set.is_empty() {
                    self.pending.remove(&ip);
                }
            }
        }
    }
}

/// Whose share a connection from `addr` counts against: its IPv4 address, or its IPv6 /64
/// (one host holds a whole /64 and can pick a new address per connection).
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        libp2p::multiaddr::Protocol::Ip6(ip) => {
            let net = u128::from(ip) & !((1u128 << 64) - 1);
            Some(IpAddr::V6(net.into()))
        }
        _ => None,
    })
}

impl NetworkBehaviour for PendingPerIp {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote) else {
            return Ok(());
        };
        let set = self.pending.entry(ip).or_default();
        if set.len() >= self.max as usize {
            return Err(ConnectionDenied::new(TooManyFrom(self.max, ip)));
        }
        set.insert(id);
        self.from.insert(id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.done(id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: libp2p::core::transport::PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) = event {
            self.done(connection_id);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_its_share_of_handshakes_and_no_more() {
        let mut b = PendingPerIp::new(2);
        let here: Multiaddr = "/ip4/127.0.0.1/tcp/9096".parse().unwrap();
        let a: Multiaddr = "/ip4/10.0.0.1/tcp/5000".parse().unwrap();
        let other: Multiaddr = "/ip4/10.0.0.2/tcp/5000".parse().unwrap();
        let ids: Vec<ConnectionId> = (0..5)
            .map(|_| ConnectionId::new_unchecked(rand::random()))
            .collect();
        assert!(b
            .handle_pending_inbound_connection(ids[0], &here, &a)
            .is_ok());
        assert!(b
            .handle_pending_inbound_connection(ids[1], &here, &a)
            .is_ok());
        assert!(b
            .handle_pending_inbound_connection(ids[2], &here, &a)
            .is_err());
        assert!(b
            .handle_pending_inbound_connection(ids[3], &here, &other)
            .is_ok());
        // A handshake that finished or failed gives its slot back.
        let peer = PeerId::random();
        assert!(b
            .handle_established_inbound_connection(ids[0], peer, &here, &a)
            .is_ok());
        assert!(b
            .handle_pending_inbound_connection(ids[4], &here, &a)
            .is_ok());
        b.done(ids[1]);
        b.done(ids[4]);
        b.done(ids[3]);
        assert!(b.pending.is_empty() && b.from.is_empty());
        // Addresses of one IPv6 /64 share one allowance.
        let v6 = |a: &str| a.parse::<Multiaddr>().unwrap();
        assert_eq!(
            ip_of(&v6("/ip6/2001:db8:1:2::5/tcp/1")),
            ip_of(&v6("/ip6/2001:db8:1:2:ffff::9/tcp/1"))
        );
        assert_ne!(
            ip_of(&v6("/ip6/2001:db8:1:2::5/tcp/1")),
            ip_of(&v6("/ip6/2001:db8:1:3::5/tcp/1"))
        );
    }
}
