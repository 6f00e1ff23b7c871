//! Who may talk to the server: an allow/deny list of address prefixes.
//!
//! A peer is admitted when it matches no `deny` prefix and, if any `allow` prefix is given,
//! at least one of them. Deny wins over allow. Addresses from a dual-stack socket arrive as
//! IPv4-mapped IPv6 (`::ffff:10.0.0.1`) and are matched as the IPv4 address they are, so an
//! operator writes `10.0.0.0/8` whatever the socket. What a refused peer gets back is the
//! handler's decision, not this module's.

use std::net::IpAddr;

use ipnet::IpNet;

/// Address prefixes allowed and denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    /// If not empty, only peers inside one of these may use the server.
    allow: Vec<IpNet>,
    /// Peers inside any of these may not use the server.
    deny: Vec<IpNet>,
}

impl AccessList {
    /// A list that admits every peer.
    pub fn open() -> Self {
        Self::default()
    }

    /// Admits peers in `net` (and, once any prefix is allowed, only those allowed).
    pub fn allow(mut self, net: IpNet) -> Self {
        self.allow.push(net);
        self
    }

    /// Refuses peers in `net`, whatever is allowed.
    pub fn deny(mut self, net: IpNet) -> Self {
        self.deny.push(net);
        self
    }

    /// Whether `ip` may use the server.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let inside = |nets: &[IpNet]| nets.iter().any(|net| net.contains(&ip));
        !inside(&self.deny) && (self.allow.is_empty() || inside(&self.allow))
    }
}

/// Parses `10.0.0.0/8`, `fd00::/8`, or a bare address (a prefix of one address).
pub fn parse_prefix(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is not an address or prefix (try 10.0.0.0/8 or fd00::/8)"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn net(text: &str) -> IpNet {
        parse_prefix(text).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_empty_list_admits_everyone() {
        assert!(AccessList::open().admits(ip("203.0.113.9")));
        assert!(AccessList::open().admits(ip("::1")));
    }

    #[test]
    fn once_something_is_allowed_only_that_is_admitted() {
        let list = AccessList::open().allow(net("10.0.0.0/8"));
        assert!(list.admits(ip("10.1.2.3")));
        assert!(!list.admits(ip("192.168.1.1")));
    }

    #[test]
    fn deny_wins_over_allow() {
        let list = AccessList::open()
            .allow(net("10.0.0.0/8"))
            .deny(net("10.66.0.0/16"));
        assert!(list.admits(ip("10.1.0.1")));
        assert!(!list.admits(ip("10.66.3.4")));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_prefixes() {
        let list = AccessList::open().deny(net("127.0.0.1"));
        assert!(!list.admits(ip("::ffff:127.0.0.1")));
        assert!(list.admits(ip("::ffff:127.0.0.2")));
    }

    #[test]
    fn malformed_prefixes_are_reported() {
        assert!(parse_prefix("10.0.0.0/33").is_err());
        assert!(parse_prefix("lan").is_err());
        assert_eq!(net("::1"), "::1/128".parse::<IpNet>().unwrap());
    }
}
