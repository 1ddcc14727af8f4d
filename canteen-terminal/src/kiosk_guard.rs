//! What the kiosk page accepts, before any handler runs: requests for its own host only (a DNS
//! name that resolves to 127.0.0.1 must not turn a web page into a local client), state changes
//! only from its own origin (no cross-site form posts), and on every answer headers that keep
//! the page from being framed, sniffed or given foreign scripts.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};
use shared::error::ErrorBody;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The address the kiosk listens on, which decides the host names it answers to.
#[derive(Debug)]
pub struct Guard {
    own: SocketAddr,
    csp: HeaderValue,
    refused: AtomicU64,
    last_log: Mutex<Option<Instant>>,
}

/// Refusals are logged at most this often; the total is in `/status`.
const LOG_EVERY: Duration = Duration::from_secs(10);

fn csp_hash(text: &str) -> String {
    use base64::Engine;
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn between<'a>(page: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = page.find(open)? + open.len();
    let end = start + page[start..].find(close)?;
    Some(&page[start..end])
}

/// The page's one inline script and one inline style are allowed by their hashes; nothing else
/// runs or loads, except the page's own requests and the camera stream.
pub fn content_security_policy(page: &str) -> String {
    let script = between(page, "<script>", "</script>").map(csp_hash);
    let style = between(page, "<style>", "</style>").map(csp_hash);
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
         img-src 'self' data: blob:; media-src 'self' blob: mediastream:; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
        script.unwrap_or_else(|| "'none'".into()),
        style.unwrap_or_else(|| "'none'".into()),
    )
}

/// `Host` values the kiosk answers: its port, with `localhost` or an address literal that is
/// its own (any loopback address when it listens on loopback, any address when it listens on
/// all). A DNS name other than `localhost` never matches, whatever it resolves to.
pub fn host_allowed(own: SocketAddr, host: &str) -> bool {
    let Some((name, port)) = split_host(host) else {
        return false;
    };
    if port.unwrap_or(80) != own.port() {
        return false;
    }
    let own_ip = front_door::client_address(own);
    if name.eq_ignore_ascii_case("localhost") {
        return own_ip.is_loopback() || own_ip.is_unspecified();
    }
    let Ok(ip) = name.parse::<IpAddr>() else {
        return false;
    };
    own_ip.is_unspecified() || ip == own_ip || (own_ip.is_loopback() && ip.is_loopback())
}

/// `name[:port]` or `[v6][:port]`; `None` when it is not a host at all.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (name, after) = rest.split_once(']')?;
        match after {
            "" => (name, None),
            p => (name, Some(p.strip_prefix(':')?)),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, p)) => (name, Some(p)),
            None => (host, None),
        }
    };
    if name.is_empty() {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse().ok()?),
    };
    Some((name, port))
}

/// A state-changing request is the page's own when its `Origin` (or, lacking one, `Referer`)
/// is this very host. Programs that send neither (curl, the test clients) are not browsers a
/// foreign page can drive, and are let through.
pub fn origin_allowed(host: &str, headers: &HeaderMap) -> bool {
    let own = format!("http://{host}");
    if let Some(origin) = headers.get(header::ORIGIN) {
        return origin.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(&own));
    }
    if let Some(referer) = headers.get(header::REFERER) {
        return referer.to_str().is_ok_and(|r| {
            r.len() > own.len()
                && r[..own.len()].eq_ignore_ascii_case(&own)
                && r.as_bytes()[own.len()] == b'/'
        });
    }
    true
}

impl Guard {
    pub fn new(own: SocketAddr, page: &str) -> Guard {
        let csp = HeaderValue::from_str(&content_security_policy(page))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
        Guard {
            own,
            csp,
            refused: AtomicU64::new(0),
            last_log: Mutex::new(None),
        }
    }

    /// Requests refused for a foreign host or origin since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn refuse(&self, code: &str, message: &str, detail: &str) -> Response {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                "kiosk refused a request ({code}, {}; {n} refused since start)",
                shared::error::excerpt(detail)
            );
        }
        (StatusCode::FORBIDDEN, Json(ErrorBody::new(code, message))).into_response()
    }

    fn secure(&self, response: &mut Response) {
        let h = response.headers_mut();
        h.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
}

pub async fn guard(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let mut response = if !host_allowed(g.own, &host) {
        g.refuse(
            "foreign_host",
            "Бұл терминал тек өз мекенжайымен ашылады / Терминал открывается только по своему адресу",
            &host,
        )
    } else if !matches!(*req.method(), Method::GET | Method::HEAD)
        && !origin_allowed(&host, req.headers())
    {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .or_else(|| req.headers().get(header::REFERER))
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        g.refuse(
            "foreign_origin",
            "Басқа беттен келген сұрау қабылданбайды / Запросы с чужих страниц не принимаются",
            &origin,
        )
    } else {
        next.run(req).await
    };
    g.secure(&mut response);
    response
}

/// The media type of a request without its parameters, lower-cased.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn hosts() {
        let lo = addr("127.0.0.1:8090");
        for ok in [
            "127.0.0.1:8090",
            "localhost:8090",
            "LOCALHOST:8090",
            "[::1]:8090",
            "127.0.0.2:8090",
        ] {
            assert!(host_allowed(lo, ok), "{ok}");
        }
        for bad in [
            "evil.example:8090",
            "127.0.0.1.nip.io:8090",
            "127.0.0.1:8091",
            "127.0.0.1",
            "",
            ":8090",
            "[::1",
            "10.0.0.5:8090",
            "localhost.:8090",
        ] {
            assert!(!host_allowed(lo, bad), "{bad}");
        }
        let lan = addr("192.168.1.20:8090");
        assert!(host_allowed(lan, "192.168.1.20:8090"));
        assert!(!host_allowed(lan, "localhost:8090"));
        assert!(!host_allowed(lan, "192.168.1.21:8090"));
        let any = addr("0.0.0.0:80");
        assert!(host_allowed(any, "192.168.1.20"));
        assert!(!host_allowed(any, "kiosk.example"));
    }

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        assert!(origin_allowed("127.0.0.1:8090", &h));
        h.insert(
            header::REFERER,
            HeaderValue::from_static("http://127.0.0.1:8090/"),
        );
        assert!(origin_allowed("127.0.0.1:8090", &h));
        h.insert(
            header::REFERER,
            HeaderValue::from_static("http://127.0.0.1:80901/"),
        );
        assert!(!origin_allowed("127.0.0.1:8090", &h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8090"),
        );
        assert!(origin_allowed("127.0.0.1:8090", &h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!origin_allowed("127.0.0.1:8090", &h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:8090"),
        );
        assert!(!origin_allowed("127.0.0.1:8090", &h));
    }

    #[test]
    fn policy_pins_the_inline_code() {
        let page = "<style>a{}</style><script>go()</script>";
        let csp = content_security_policy(page);
        assert!(csp.contains(&csp_hash("go()")), "{csp}");
        assert!(csp.contains(&csp_hash("a{}")), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
    }

    proptest! {
        #[test]
        fn host_parsing_never_panics_and_names_never_pass(host in "\\PC{0,40}") {
            let own = addr("127.0.0.1:8090");
            let allowed = host_allowed(own, &host);
            if allowed {
                let (name, _) = split_host(&host).unwrap();
                prop_assert!(name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok());
            }
        }
    }
}
