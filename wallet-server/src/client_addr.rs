//! Who is on the other end of a request: the TCP peer, or — when the peer is one of the
//! configured `trusted_proxies` — the client the proxy says it forwards, and whether that
//! client reached the proxy over TLS.
//!
//! The answer is worked out once per request by [`layer`] and kept in the request's
//! extensions; every rate limit, lockout and log line reads it through [`client_ip`] or the
//! [`ClientIp`] extractor, so they all agree on who the client is.

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The networks whose forwarding headers are believed. Empty: none, the TCP peer is the client.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`, `::1/128`) or single addresses (`127.0.0.1`).
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<TrustedProxies, String> {
        let mut nets = Vec::with_capacity(items.len());
        for item in items {
            let text = item.as_ref().trim();
            let net = match text.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match text.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        return Err(format!(
                            "trusted_proxies: {text:?} is neither a network like 10.0.0.0/8 nor an address"
                        ))
                    }
                },
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// For the front door: these proxies are exempt from its per-address connection cap, since
    /// every client behind one arrives from its address. `None` when there are none.
    pub fn cap_exempt(self) -> Option<front_door::ClientCapExempt> {
        if self.is_empty() {
            return None;
        }
        Some(Arc::new(move |ip| self.contains(ip)))
    }
}

/// IPv4 peers on a dual-stack socket arrive as `::ffff:a.b.c.d`; configured networks are
/// written as IPv4, so compare in that form.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The client as far as this server can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// `None` only when the app is called without a socket (tests using `oneshot`).
    pub ip: Option<IpAddr>,
    /// The original request came over TLS (to a trusted proxy that said so).
    pub tls: bool,
}

/// Works out the client from the TCP peer and the forwarding headers.
///
/// `X-Forwarded-For` is read from the right: each proxy appends the address it received the
/// request from, so the rightmost entries were written by our own proxies and the first one
/// that is not a trusted proxy is the client. Anything further left was written by the client
/// itself and is not believed. An unparsable entry stops the walk at the last good address,
/// so a client cannot hide behind garbage.
pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &TrustedProxies) -> ClientInfo {
    let Some(peer) = peer.map(canonical) else {
        return ClientInfo {
            ip: None,
            tls: false,
        };
    };
    if !trusted.contains(peer) {
        return ClientInfo {
            ip: Some(peer),
            tls: false,
        };
    }
    let mut client = peer;
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for entry in forwarded.iter().rev() {
        match parse_forwarded_ip(entry) {
            Some(ip) => {
                client = canonical(ip);
                if !trusted.contains(client) {
                    break;
                }
            }
            None => break,
        }
    }
    // The scheme header is set by the proxy nearest to us; several values mean a chain, whose
    // first hop met the client.
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().eq_ignore_ascii_case("https"))
        .unwrap_or(false);
    ClientInfo {
        ip: Some(client),
        tls,
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:80`.
pub fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = entry.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    None
}

/// Resolves the client once per request and stores it for [`client_ip`] and the access log.
pub async fn layer(
    State(trusted): State<Arc<TrustedProxies>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let info = resolve(peer, req.headers(), &trusted);
    req.extensions_mut().insert(info);
    let mut response = next.run(req).await;
    if info.tls {
        // Only a browser that reached us over TLS may be told to insist on it; over plain HTTP
        // the header would be ignored anyway, and on a LAN demo it would break the next visit.
        response.headers_mut().insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// The real client of a request: what [`layer`] resolved, or the TCP peer when the layer did
/// not run (a router used without it).
pub fn client_info(extensions: &axum::http::Extensions) -> ClientInfo {
    if let Some(info) = extensions.get::<ClientInfo>() {
        return *info;
    }
    ClientInfo {
        ip: extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| canonical(c.0.ip())),
        tls: false,
    }
}

/// The real client's address; see [`client_info`].
pub fn client_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    client_info(extensions).ip
}

/// Extractor for handlers: the real client's address (`None` without a socket).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(&parts.extensions)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_claim() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        let info = resolve(Some(ip("192.0.2.7")), &h, &trusted);
        assert_eq!(info.ip, Some(ip("192.0.2.7")));
        assert!(!info.tls);
        let none = TrustedProxies::default();
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), &h, &none).ip,
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn trusted_chain_is_walked_from_the_right() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1"]).unwrap();
        // The client forged the first entry; the edge proxy appended the real one.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
            ("x-forwarded-for", "10.1.2.3"),
            ("x-forwarded-proto", "https"),
        ]);
        let info = resolve(Some(ip("127.0.0.1")), &h, &trusted);
        assert_eq!(info.ip, Some(ip("203.0.113.9")));
        assert!(info.tls);
        // Garbage stops the walk at the last good hop.
        let h = headers(&[("x-forwarded-for", "203.0.113.9, nonsense")]);
        assert_eq!(
            resolve(Some(ip("127.0.0.1")), &h, &trusted).ip,
            Some(ip("127.0.0.1"))
        );
        // No header: the proxy itself.
        assert_eq!(
            resolve(Some(ip("127.0.0.1")), &HeaderMap::new(), &trusted).ip,
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn mapped_v4_and_ports_are_understood() {
        let trusted = TrustedProxies::parse(&["127.0.0.0/8"]).unwrap();
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(
            resolve(Some(ip("::ffff:127.0.0.1")), &h, &trusted).ip,
            Some(ip("2001:db8::1"))
        );
        let h = headers(&[("x-forwarded-for", "198.51.100.2:5000")]);
        assert_eq!(
            resolve(Some(ip("127.0.0.1")), &h, &trusted).ip,
            Some(ip("198.51.100.2"))
        );
    }

    #[test]
    fn bad_networks_are_refused() {
        let err = TrustedProxies::parse(&["10.0.0.0/33"]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(TrustedProxies::parse(&["proxy.local"]).is_err());
        assert!(TrustedProxies::parse(&["::1", "192.168.0.0/16"]).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn resolution_never_panics_and_never_leaves_untrusted_peers(
            xff in "\\PC{0,120}",
            proto in "\\PC{0,20}",
            peer in proptest::prelude::any::<[u8; 4]>(),
        ) {
            let trusted = TrustedProxies::parse(&["127.0.0.0/8"]).unwrap();
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&xff) { h.insert("x-forwarded-for", v); }
            if let Ok(v) = HeaderValue::from_str(&proto) { h.insert("x-forwarded-proto", v); }
            let peer = IpAddr::from(peer);
            let info = resolve(Some(peer), &h, &trusted);
            if !trusted.contains(peer) {
                proptest::prop_assert_eq!(info.ip, Some(peer));
                proptest::prop_assert!(!info.tls);
            }
            // The chosen address is either the peer or an address the header really names.
            let ip = info.ip.unwrap();
            proptest::prop_assert!(ip == peer || xff.split(',').any(|e| parse_forwarded_ip(e).map(canonical) == Some(ip)));
        }
    }
}
