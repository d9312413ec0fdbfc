//! Who may call `/token`, `/send`, `/info` and `/kick`.
//!
//! The original checked nothing: anyone who could reach it could mint a
//! token for any user, message everyone and kick anyone. Here they take the
//! API token (`Authorization: Bearer <token>`, as every native operator
//! endpoint does; `/info`, which only reads, also takes the metrics token).
//!
//! For back-ends that cannot be changed yet, the operator may list their
//! addresses (`compat.goSseBroker.unauthenticatedFrom`, IPs or CIDR blocks):
//! a request from one of them *without* an `Authorization` header is let
//! through, as the original let everyone through. Off by default, warned
//! about at start-up. The address is the TCP peer's (`http::remote`), never
//! a forwarding header a client could write. A request that does send a
//! token must send a right one, whatever its address.

use std::net::IpAddr;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use super::envelope::Failure;
use crate::secret::Secret;

/// An IP address or a CIDR block (`10.0.0.0/8`, `::1`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    base: IpAddr,
    prefix: u8,
}

impl AddrRange {
    /// Parses `10.1.2.3`, `10.0.0.0/8`, `::1` or `fd00::/8`.
    pub fn parse(text: &str) -> Result<AddrRange, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let base: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or a CIDR block"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(AddrRange { base, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                same_prefix(&base.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                same_prefix(&base.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for AddrRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// Whether the first `bits` bits of `a` and `b` agree.
fn same_prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[whole] & mask == b[whole] & mask
}

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `/token`, `/send`, `/kick`: the API token.
    Operator,
    /// `/info`: the API token or the metrics token.
    Monitor,
}

/// The tokens and the allow-list requests are checked against.
pub struct Gate {
    pub api_token: Secret,
    pub metrics_token: Secret,
    pub unauthenticated_from: Vec<AddrRange>,
}

impl Gate {
    /// Lets the request through, or says what is missing.
    pub fn check(
        &self,
        need: Need,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<(), Failure> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            if peer.is_some_and(|ip| self.unauthenticated_from.iter().any(|r| r.contains(ip))) {
                return Ok(());
            }
            return Err(Failure::unauthorized(
                "missing API token: send Authorization: Bearer <API token> (sser requires it where go-sse-broker required nothing; see compat.goSseBroker.unauthenticatedFrom)",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .map(|v| v.trim())
            .map(|v| match v.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                _ => v,
            })
            .unwrap_or_default();
        let ok = self.api_token.matches(token)
            || (need == Need::Monitor && self.metrics_token.matches(token));
        match ok {
            true => Ok(()),
            false => Err(Failure::unauthorized("invalid API token")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn ranges_match_their_prefix_only() {
        let r = AddrRange::parse("10.1.0.0/16").expect("cidr");
        assert!(r.contains(ip("10.1.200.3")));
        assert!(!r.contains(ip("10.2.0.1")));
        assert!(r.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        let one = AddrRange::parse("192.168.2.22").expect("ip");
        assert!(one.contains(ip("192.168.2.22")));
        assert!(!one.contains(ip("192.168.2.23")));
        let odd = AddrRange::parse("172.16.0.0/12").expect("cidr");
        assert!(odd.contains(ip("172.31.255.255")));
        assert!(!odd.contains(ip("172.32.0.0")));
        let v6 = AddrRange::parse("fd00::/8").expect("v6");
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(
            AddrRange::parse("0.0.0.0/0")
                .expect("all")
                .contains(ip("8.8.8.8"))
        );
        for bad in ["", "10.0.0.0/33", "::/129", "host.example", "10.0.0.0/x"] {
            assert!(AddrRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_listed_address_passes_without_a_token_but_never_with_a_wrong_one() {
        let gate = Gate {
            api_token: Secret::new("api"),
            metrics_token: Secret::new("metrics"),
            unauthenticated_from: vec![AddrRange::parse("127.0.0.1").expect("ip")],
        };
        let mut headers = HeaderMap::new();
        assert!(
            gate.check(Need::Operator, &headers, Some(ip("127.0.0.1")))
                .is_ok()
        );
        assert!(
            gate.check(Need::Operator, &headers, Some(ip("127.0.0.2")))
                .is_err()
        );
        assert!(gate.check(Need::Operator, &headers, None).is_err());
        headers.insert(AUTHORIZATION, "Bearer wrong".parse().expect("value"));
        assert!(
            gate.check(Need::Operator, &headers, Some(ip("127.0.0.1")))
                .is_err()
        );
        headers.insert(AUTHORIZATION, "Bearer metrics".parse().expect("value"));
        assert!(gate.check(Need::Operator, &headers, None).is_err());
        assert!(gate.check(Need::Monitor, &headers, None).is_ok());
        headers.insert(AUTHORIZATION, "Bearer api".parse().expect("value"));
        assert!(gate.check(Need::Operator, &headers, None).is_ok());
    }
}
