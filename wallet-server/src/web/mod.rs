//! Server-rendered web pages. Each page module has its own `router()`; `app.rs` merges this one.

pub mod i18n;
pub mod school;
pub mod share;
pub mod wallet;

use crate::state::AppState;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(wallet::router())
        .merge(share::router())
        .merge(school::router())
}

/// Scripts and styles come only from this server; the pages cannot be framed, and links to a
/// share page (which carry a token) do not leak through the `Referer` header.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A page response with the security headers every page gets.
pub fn page(status: axum::http::StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    r
}

/// A static asset compiled into the binary.
pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The language a page is shown in: the `tamaq_lang` cookie the page's switch sets, else the
/// browser's preference between Kazakh and Russian, else the server default.
pub fn lang(headers: &HeaderMap, default: crate::config::Lang) -> crate::config::Lang {
    use crate::config::Lang;
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "tamaq_lang")
        .and_then(|(_, v)| Lang::parse(v));
    if let Some(l) = cookie {
        return l;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept
        .split(',')
        .filter_map(|part| Lang::parse(part.split(';').next()?.trim().get(..2)?))
        .next()
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Lang;

    #[test]
    fn escaping() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn language_choice() {
        let mut h = HeaderMap::new();
        assert_eq!(lang(&h, Lang::Ru), Lang::Ru);
        h.insert(header::ACCEPT_LANGUAGE, "kk-KZ,ru;q=0.8".parse().unwrap());
        assert_eq!(lang(&h, Lang::Ru), Lang::Kk);
        h.insert(header::COOKIE, "a=b; tamaq_lang=ru".parse().unwrap());
        assert_eq!(lang(&h, Lang::Kk), Lang::Ru);
        h.insert(header::COOKIE, "tamaq_lang=xx".parse().unwrap());
        assert_eq!(lang(&h, Lang::Ru), Lang::Kk, "a bad cookie falls back");
    }
}
