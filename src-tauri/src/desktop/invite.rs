//! Invitations: what one desktop peer gives another to join its cluster, as copyable text and
//! as a QR code. The text is `ipfs-cluster-invite:` followed by base64url JSON
//! `{"bootstrap": [multiaddr/p2p/id, …], "secret": "<64 hex>"}`; a bare bootstrap multiaddr
//! plus a separately pasted secret is accepted too.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::config::Secret;

pub const PREFIX: &str = "ipfs-cluster-invite:";

/// The longest invitation link taken from a command line (one with a few addresses is under
/// 1 kB).
const LINK_MAX: usize = 16 * 1024;

/// The invitation link among a program's arguments (`ipfs-cluster-invite:…`, as the desktop
/// opens the app for a link: the scheme in any case, with or without `//`, a trailing `/`
/// dropped), as invitation text; none when there is none, or it is too long to be one.
pub fn link_in<I: IntoIterator<Item = String>>(args: I) -> Option<String> {
    args.into_iter().find_map(|a| {
        let a = a.trim();
        let (head, rest) = (a.get(..PREFIX.len())?, a.get(PREFIX.len()..)?);
        if a.len() > LINK_MAX || !head.eq_ignore_ascii_case(PREFIX) {
            return None;
        }
        let body = rest.trim_start_matches("//").trim_end_matches('/');
        (!body.is_empty()).then(|| format!("{PREFIX}{body}"))
    })
}

/// The most addresses an invitation made here names: with the secret, its link stays well
/// within what a QR code holds (about 2.3 kB of base64 text).
pub const ADDRESSES_MAX: usize = 8;

/// The IP address `addr` starts with: none for a DNS name; an `/ip4/` or `/ip6/` part that is
/// not an address reads as the unspecified address (no use to anyone).
fn ip_of(addr: &str) -> Option<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut parts = addr.split('/').skip(1);
    match (parts.next(), parts.next().unwrap_or("")) {
        (Some("ip4"), ip) => Some(IpAddr::V4(ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED))),
        (Some("ip6"), ip) => Some(IpAddr::V6(ip.parse().unwrap_or(Ipv6Addr::UNSPECIFIED))),
        _ => None,
    }
}

/// Whether another machine could dial `addr`: not an unspecified address (0.0.0.0, `::`),
/// not a link-local one (IPv4 169.254/16 is no route off the link; IPv6 fe80::/10 needs a
/// zone, which a multiaddr cannot carry).
fn usable_elsewhere(addr: &str) -> bool {
    match ip_of(addr) {
        Some(std::net::IpAddr::V4(v4)) => !v4.is_unspecified() && !v4.is_link_local(),
        Some(std::net::IpAddr::V6(v6)) => {
            !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
        None => true,
    }
}

/// Interfaces of containers and virtual machines on this host (Docker, libvirt, CNI, veth
/// pairs): their addresses reach this machine's guests, not this machine from elsewhere.
fn virtual_bridge(name: &str) -> bool {
    [
        "docker", "br-", "virbr", "veth", "cni", "flannel", "vnet", "podman", "lxc",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// The largest picture file read for a QR code.
pub const PICTURE_MAX: u64 = 20 * 1024 * 1024;

/// Text or a picture that is not a usable invitation, with what is wrong with it.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct InvalidInvitation(pub String);

impl From<InvalidInvitation> for crate::error::Error {
    fn from(e: InvalidInvitation) -> Self {
        crate::error::Error::BadInput(e.0)
    }
}

fn invalid(message: impl Into<String>) -> InvalidInvitation {
    InvalidInvitation(message.into())
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Invitation {
    pub bootstrap: Vec<String>,
    pub secret: String,
}

impl Invitation {
    /// The invitation to the peer reachable at `addrs` (multiaddrs ending in `/p2p/<id>`):
    /// an address on 0.0.0.0 or `::`, or a link-local one, is no use to another machine and
    /// is left out, loopback too unless nothing else is left; DNS names come first (they
    /// survive address changes).
    pub fn to_peer(addrs: impl IntoIterator<Item = String>, secret: String) -> Invitation {
        let mut seen = std::collections::HashSet::new();
        let mut bootstrap: Vec<String> = addrs
            .into_iter()
            .filter(|a| usable_elsewhere(a) && seen.insert(a.clone()))
            .collect();
        // Loopback reaches only this machine: named only when nothing else is there (a
        // cluster all on one machine), and never to someone on another machine otherwise.
        let loopback = |a: &String| ip_of(a).is_some_and(|ip| ip.is_loopback());
        if bootstrap.iter().any(|a| !loopback(a)) {
            bootstrap.retain(|a| !loopback(a));
        }
        bootstrap.sort_by_key(|a| !a.starts_with("/dns"));
        // A link short enough for its QR code (and to read before trusting it).
        bootstrap.truncate(ADDRESSES_MAX);
        Invitation { bootstrap, secret }
    }

    /// The invitation a headless peer gives (`ipfs-cluster-service invite`), from its
    /// configuration alone, running or not: its announced addresses, or else its listen
    /// addresses with an unspecified address (0.0.0.0, `::`) replaced by each address of this
    /// machine's interfaces, as the running peer listens on them. A listen port of 0 is chosen
    /// only when the peer starts: such an address cannot be given, and is named in the error
    /// when nothing else is left.
    pub fn of_config(
        cluster: &crate::config::ClusterConfig,
        peer: &libp2p::PeerId,
    ) -> Result<Invitation, InvalidInvitation> {
        use libp2p::multiaddr::Protocol;
        let interfaces: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
            .map_err(|e| invalid(format!("listing this machine's addresses: {e}")))?
            .into_iter()
            .filter(|i| !virtual_bridge(&i.name))
            .map(|i| i.ip())
            .collect();
        let mut addrs = Vec::new();
        let mut unknown_port = None;
        let given = if cluster.announce_multiaddress.0.is_empty() {
            &cluster.listen_multiaddress.0
        } else {
            &cluster.announce_multiaddress.0
        };
        for a in given {
            if a.iter()
                .any(|p| matches!(p, Protocol::Tcp(0) | Protocol::Udp(0)))
            {
                unknown_port = Some(a.to_string());
                continue;
            }
            let mut parts = a.iter();
            let first = parts.next();
            let rest: Vec<Protocol> = parts.collect();
            let any_v4 = matches!(first, Some(Protocol::Ip4(ip)) if ip.is_unspecified());
            let any_v6 = matches!(first, Some(Protocol::Ip6(ip)) if ip.is_unspecified());
            let expanded: Vec<libp2p::Multiaddr> = if any_v4 || any_v6 {
                interfaces
                    .iter()
                    .filter(|ip| ip.is_ipv4() == any_v4)
                    .map(|ip| {
                        let p = match ip {
                            std::net::IpAddr::V4(v4) => Protocol::Ip4(*v4),
                            std::net::IpAddr::V6(v6) => Protocol::Ip6(*v6),
                        };
                        std::iter::once(p).chain(rest.iter().cloned()).collect()
                    })
                    .collect()
            } else {
                vec![a.clone()]
            };
            for mut e in expanded {
                if crate::net::split_p2p(&e).is_none() {
                    e.push(Protocol::P2p(*peer));
                }
                addrs.push(e.to_string());
            }
        }
        let inv = Invitation::to_peer(addrs, cluster.secret.to_string());
        if inv.bootstrap.is_empty() {
            return Err(invalid(match unknown_port {
                Some(a) => format!(
                    "this peer listens on {a}, a port chosen when it starts: set \
                     cluster.listen_multiaddress to a fixed port, or \
                     cluster.announce_multiaddress to the address others reach it at"
                ),
                None => "this peer has no address another machine can reach: set \
                         cluster.announce_multiaddress"
                    .into(),
            }));
        }
        inv.validate()?;
        Ok(inv)
    }

    /// The invitation's QR code. (Any invitation made here fits one: at most
    /// [`ADDRESSES_MAX`] addresses.)
    fn qr_code(&self) -> qrcode::QrCode {
        qrcode::QrCode::new(self.to_text().as_bytes()).expect("an invitation fits a QR code")
    }

    /// The invitation as a QR code drawn in text (two rows of modules per line), for a
    /// terminal.
    pub fn qr_text(&self) -> String {
        let code = self.qr_code();
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build()
    }

    pub fn to_text(&self) -> String {
        let json = serde_json::to_vec(self).expect("invitation serializes");
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
        )
    }

    /// Reads an invitation text, or a bootstrap multiaddr with `secret` given apart.
    pub fn parse(text: &str, secret: Option<&str>) -> Result<Invitation, InvalidInvitation> {
        let text = text.trim();
        let inv = if let Some(body) = text.strip_prefix(PREFIX) {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body.trim())
                .map_err(|_| {
                    invalid("this invitation is damaged (not valid base64): copy it again")
                })?;
            serde_json::from_slice::<Invitation>(&raw)
                .map_err(|e| invalid(format!("this invitation is damaged: {e}")))?
        } else if text.starts_with('/') {
            Invitation {
                bootstrap: text
                    .split([',', ' ', '\n'])
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                secret: secret
                    .ok_or_else(|| invalid("a bootstrap address needs the cluster secret too"))?
                    .trim()
                    .to_string(),
            }
        } else {
            return Err(invalid(format!(
                "not an invitation: expected text starting with {PREFIX} or a multiaddr"
            )));
        };
        inv.validate()?;
        Ok(inv)
    }

    fn validate(&self) -> Result<(), InvalidInvitation> {
        self.secret
            .parse::<Secret>()
            .map_err(|e| invalid(format!("cluster secret: {e}")))?;
        if self.bootstrap.is_empty() {
            return Err(invalid("the invitation names no peer to join"));
        }
        for b in &self.bootstrap {
            let addr: libp2p::Multiaddr = b
                .parse()
                .map_err(|e| invalid(format!("bootstrap address {b:?}: {e}")))?;
            if crate::net::split_p2p(&addr).is_none() {
                return Err(invalid(format!(
                    "bootstrap address {b} must end in /p2p/<peer id>"
                )));
            }
        }
        Ok(())
    }

    /// Reads the invitation in a picture file dropped on the window: a photo or screenshot of
    /// its QR code, up to [`PICTURE_MAX`] bytes.
    pub fn from_qr_file(path: &std::path::Path) -> Result<Invitation, InvalidInvitation> {
        let len = std::fs::metadata(path)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?
            .len();
        if len > PICTURE_MAX {
            return Err(invalid(format!(
                "{} is too large for a picture of a QR code ({len} bytes; at most {PICTURE_MAX})",
                path.display()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        Invitation::from_qr_image(&bytes)
    }

    /// Reads the invitation in a photo or screenshot of its QR code (PNG or JPEG).
    pub fn from_qr_image(bytes: &[u8]) -> Result<Invitation, InvalidInvitation> {
        let img = image::load_from_memory(bytes)
            .map_err(|e| invalid(format!("not a PNG or JPEG image: {e}")))?
            .to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(img);
        for grid in prepared.detect_grids() {
            if let Ok((_, text)) = grid.decode() {
                return Invitation::parse(&text, None);
            }
        }
        Err(invalid("no readable QR code in this image"))
    }

    /// The invitation's QR code for the window to draw: its width in modules (with a quiet
    /// zone of 4 on each side) and an SVG path of its dark modules, one `h1v1h-1z` square
    /// each, so the page draws it as data in an `<svg>` of its own and no markup comes from
    /// the backend.
    pub fn qr_modules(&self) -> (u32, String) {
        let code = self.qr_code();
        let width = code.width();
        let quiet = 4;
        let mut path = String::new();
        for (n, color) in code.to_colors().iter().enumerate() {
            if *color == qrcode::Color::Dark {
                let (x, y) = (n % width + quiet, n / width + quiet);
                path.push_str(&format!("M{x} {y}h1v1h-1z"));
            }
        }
        ((width + 2 * quiet) as u32, path)
    }

    /// The invitation text as an SVG QR code.
    pub fn qr_svg(&self) -> String {
        let code = self.qr_code();
        code.render::<qrcode::render::svg::Color>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Invitation {
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        Invitation {
            bootstrap: vec![format!("/ip4/192.0.2.1/tcp/9096/p2p/{peer}")],
            secret: Secret::generate().to_string(),
        }
    }

    #[test]
    fn an_invitation_names_reachable_addresses_dns_first() {
        let secret = Secret::generate().to_string();
        let p = "/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq";
        let inv = Invitation::to_peer(
            [
                format!("/ip4/127.0.0.1/tcp/9096{p}"),
                format!("/ip4/0.0.0.0/tcp/9096{p}"),
                format!("/ip4/192.0.2.7/tcp/9096{p}"),
                format!("/ip6/::/tcp/9096{p}"),
                format!("/ip4/169.254.3.4/tcp/9096{p}"),
                format!("/ip6/fe80::1/tcp/9096{p}"),
                format!("/ip4/192.0.2.7/tcp/9096{p}"),
                format!("/dns4/home.example/tcp/9096{p}"),
            ],
            secret.clone(),
        );
        assert_eq!(
            inv.bootstrap,
            [
                format!("/dns4/home.example/tcp/9096{p}"),
                format!("/ip4/192.0.2.7/tcp/9096{p}"),
            ]
        );
        assert_eq!(inv.secret, secret);
        // A cluster all on one machine: loopback is all there is, and is named.
        let local = Invitation::to_peer([format!("/ip4/127.0.0.1/tcp/9096{p}")], secret.clone());
        assert_eq!(local.bootstrap, [format!("/ip4/127.0.0.1/tcp/9096{p}")]);
        // However many addresses a machine has, the link stays one a QR code holds.
        let many = (0..40).map(|i| format!("/ip4/192.0.2.{i}/tcp/9096{p}"));
        let inv = Invitation::to_peer(many, secret);
        assert_eq!(inv.bootstrap.len(), ADDRESSES_MAX);
        assert!(inv.qr_text().lines().count() > 10);
        assert!(!virtual_bridge("eth0") && !virtual_bridge("wlp2s0"));
        assert!(virtual_bridge("docker0") && virtual_bridge("br-5f2a") && virtual_bridge("virbr0"));
    }

    #[test]
    fn a_headless_peers_invitation_comes_from_its_configuration() {
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let mut cluster = crate::config::Config::new_for_init().cluster;
        // Listening on every interface: each of this machine's IPv4 addresses that another
        // machine could dial (loopback only when there is none), with the peer's id.
        cluster.listen_multiaddress.0 = vec!["/ip4/0.0.0.0/tcp/9096".parse().unwrap()];
        let inv = Invitation::of_config(&cluster, &peer).unwrap();
        let expected: Vec<String> = if_addrs::get_if_addrs()
            .unwrap()
            .into_iter()
            .filter_map(|i| match i.ip() {
                std::net::IpAddr::V4(v4)
                    if !v4.is_loopback() && !v4.is_link_local() && !virtual_bridge(&i.name) =>
                {
                    Some(format!("/ip4/{v4}/tcp/9096/p2p/{peer}"))
                }
                _ => None,
            })
            .take(ADDRESSES_MAX)
            .collect();
        match expected.is_empty() {
            true => assert_eq!(
                inv.bootstrap,
                [format!("/ip4/127.0.0.1/tcp/9096/p2p/{peer}")]
            ),
            false => assert_eq!(inv.bootstrap, expected),
        }
        assert_eq!(inv.secret, cluster.secret.to_string());
        assert_eq!(Invitation::parse(&inv.to_text(), None).unwrap(), inv);
        // Announced addresses replace the listen addresses.
        cluster.announce_multiaddress.0 = vec!["/dns4/home.example/tcp/4242".parse().unwrap()];
        let inv = Invitation::of_config(&cluster, &peer).unwrap();
        assert_eq!(
            inv.bootstrap,
            [format!("/dns4/home.example/tcp/4242/p2p/{peer}")]
        );
        // A port chosen at start cannot be given: the error says what to set.
        cluster.announce_multiaddress.0.clear();
        cluster.listen_multiaddress.0 = vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()];
        let e = Invitation::of_config(&cluster, &peer).unwrap_err().0;
        assert!(
            e.contains("/tcp/0") && e.contains("announce_multiaddress"),
            "{e}"
        );
        // The QR code for a terminal: lines of block characters, as wide as each other.
        let qr = sample().qr_text();
        let widths: Vec<usize> = qr.lines().map(|l| l.chars().count()).collect();
        assert!(
            widths.len() > 10 && widths.iter().all(|w| *w == widths[0]),
            "{qr}"
        );
        assert!(
            qr.chars()
                .all(|c| " \n\u{2580}\u{2584}\u{2588}".contains(c)),
            "{qr}"
        );
    }

    #[test]
    fn text_round_trips_and_renders_as_qr() {
        let inv = sample();
        let text = inv.to_text();
        assert!(text.starts_with(PREFIX));
        assert_eq!(
            Invitation::parse(&format!("  {text}\n"), None).unwrap(),
            inv
        );
        let svg = inv.qr_svg();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg"),
            "{}",
            &svg[..60]
        );
    }

    #[test]
    fn a_picture_of_the_qr_code_reads_back() {
        let inv = sample();
        let code = qrcode::QrCode::new(inv.to_text().as_bytes()).unwrap();
        let img = code
            .render::<image::Luma<u8>>()
            .min_dimensions(300, 300)
            .build();
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(Invitation::from_qr_image(&png).unwrap(), inv);
        // The same picture dropped on the window as a file; a file too large is not read.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("invite.png");
        std::fs::write(&file, &png).unwrap();
        assert_eq!(Invitation::from_qr_file(&file).unwrap(), inv);
        let huge = dir.path().join("huge.png");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(PICTURE_MAX + 1)
            .unwrap();
        assert!(Invitation::from_qr_file(&huge)
            .unwrap_err()
            .0
            .contains("too large"));
        assert!(Invitation::from_qr_file(&dir.path().join("missing.png")).is_err());
        assert!(Invitation::from_qr_image(b"not an image").is_err());
        let blank = image::GrayImage::from_pixel(64, 64, image::Luma([255]));
        let mut png = Vec::new();
        blank
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(Invitation::from_qr_image(&png)
            .unwrap_err()
            .0
            .contains("no readable QR"));
    }

    /// The modules the window draws read back as the invitation: the path, drawn square by
    /// square (8 pixels a module), is a QR code of it.
    #[test]
    fn the_qr_modules_the_window_draws_read_back() {
        let inv = sample();
        let (size, path) = inv.qr_modules();
        let scale = 8;
        let mut img = image::GrayImage::from_pixel(size * scale, size * scale, image::Luma([255]));
        for square in path.split('M').filter(|s| !s.is_empty()) {
            let xy = square.strip_suffix("h1v1h-1z").expect("one square");
            let (x, y) = xy.split_once(' ').unwrap();
            let (x, y): (u32, u32) = (x.parse().unwrap(), y.parse().unwrap());
            assert!(
                x >= 4 && y >= 4 && x < size - 4 && y < size - 4,
                "quiet zone kept"
            );
            for dx in 0..scale {
                for dy in 0..scale {
                    img.put_pixel(x * scale + dx, y * scale + dy, image::Luma([0]));
                }
            }
        }
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(Invitation::from_qr_image(&png).unwrap(), inv);
    }

    #[test]
    fn an_address_and_a_secret_make_an_invitation() {
        let inv = sample();
        let got = Invitation::parse(&inv.bootstrap[0], Some(&inv.secret)).unwrap();
        assert_eq!(got, inv);
        assert!(Invitation::parse(&inv.bootstrap[0], None).is_err());
    }

    #[test]
    fn damaged_invitations_say_what_is_wrong() {
        let inv = sample();
        let text = inv.to_text();
        assert!(Invitation::parse(&text[..text.len() - 5], None).is_err());
        assert!(Invitation::parse("hello", None)
            .unwrap_err()
            .0
            .contains("not an invitation"));
        let bad_secret = Invitation {
            secret: "abc".into(),
            ..inv.clone()
        };
        assert!(Invitation::parse(&bad_secret.to_text(), None)
            .unwrap_err()
            .0
            .contains("secret"));
        let no_p2p = Invitation {
            bootstrap: vec!["/ip4/192.0.2.1/tcp/9096".into()],
            ..inv
        };
        assert!(Invitation::parse(&no_p2p.to_text(), None)
            .unwrap_err()
            .0
            .contains("/p2p/"));
    }

    #[test]
    fn the_link_among_the_arguments_is_the_invitation_as_the_desktop_passes_it() {
        let inv = sample();
        let text = inv.to_text();
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(link_in(args(&["--hidden", &text])), Some(text.clone()));
        // As browsers and desktops hand schemes over: upper case, `//`, a trailing slash.
        let body = text.strip_prefix(PREFIX).unwrap();
        for given in [
            format!("IPFS-Cluster-Invite:{body}"),
            format!("ipfs-cluster-invite://{body}/"),
        ] {
            let got = link_in(args(&[&given])).unwrap();
            assert_eq!(Invitation::parse(&got, None).unwrap(), inv, "{given}");
        }
        assert_eq!(link_in(args(&["--hidden"])), None);
        assert_eq!(link_in(args(&["ipfs-cluster-invite:"])), None, "empty");
        assert_eq!(link_in(args(&["é"])), None, "short");
        assert_eq!(
            link_in(args(&["ipfs-cluster-invitéabc"])),
            None,
            "not on a boundary"
        );
        let long = format!("{PREFIX}{}", "A".repeat(LINK_MAX));
        assert_eq!(
            link_in(args(&[&long])),
            None,
            "too long to be an invitation"
        );
    }
}
