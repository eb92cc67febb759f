//! Who the client is (SPEC §7, web): the TCP peer, or — when the peer is one of
//! `web.trusted_proxies` — the address the proxies name in `Forwarded` (RFC 7239) or
//! `X-Forwarded-For`. Every limit keyed on a client uses this address.
//!
//! The hops are read right to left, the way they were appended: each trusted proxy vouches for
//! the hop before it, and the first hop that is not a trusted proxy is the client. Whatever a
//! client writes further left is its own claim and is never believed.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::app::App;

/// The client's IP address, for rate limits.
pub struct ClientIp(pub String);

impl FromRequestParts<App> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
            return Ok(ClientIp("unknown".to_string()));
        };
        let proxies = app.settings.web.proxy_networks();
        Ok(ClientIp(client_address(peer, &parts.headers, &proxies).to_string()))
    }
}

/// The client behind `peer`, believing forwarding headers only as far as trusted proxies go.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_hops(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        if !is_trusted(&client) {
            break;
        }
        match hop {
            Some(ip) => client = *ip,
            // A hop we cannot read (`unknown`, an obfuscated name): stop at the last one we know.
            None => break,
        }
    }
    canonical(client)
}

/// The hops named by `Forwarded` when present, else by `X-Forwarded-For`, left to right.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| parse_node(v))
            })
            .collect();
    }
    values("x-forwarded-for").iter().flat_map(|v| v.split(',')).map(parse_node).collect()
}

/// `192.0.2.1`, `"[2001:db8::1]:4711"`, `192.0.2.1:80` → the address; anything else → None.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    text.strip_prefix('[').and_then(|rest| rest.split(']').next()).and_then(|ip| ip.parse().ok())
}

/// IPv4 addresses seen through an IPv6 socket (`::ffff:a.b.c.d`) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_address("198.51.100.7".parse().unwrap(), &h, &nets(&["127.0.0.1/32"])),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_address("127.0.0.1".parse().unwrap(), &h, &[]), "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn trusted_proxies_are_walked_from_the_right() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.2.3")]);
        // The client forged 6.6.6.6; the first proxy saw 203.0.113.9.
        assert_eq!(
            client_address("127.0.0.1".parse().unwrap(), &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarded_takes_precedence_and_reads_ipv6_with_ports() {
        let trusted = nets(&["::1/128", "127.0.0.0/8"]);
        let h =
            headers(&[("forwarded", r#"for="[2001:db8::7]:4711";proto=https"#), ("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(client_address("::1".parse().unwrap(), &h, &trusted), "2001:db8::7".parse::<IpAddr>().unwrap());
        let h = headers(&[("forwarded", "for=192.0.2.60:8080, for=unknown")]);
        // An unreadable last hop: the proxy itself stays the client (never a forged value).
        assert_eq!(client_address("127.0.0.1".parse().unwrap(), &h, &trusted), "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let peer: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(client_address(peer, &h, &nets(&["127.0.0.1/32"])), "203.0.113.9".parse::<IpAddr>().unwrap());
    }
}
