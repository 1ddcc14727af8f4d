//! HTTP calls to the wallet server's terminal API (DESIGN §6.3).

use shared::error::ErrorBody;
use shared::wire::{EnrollRequest, EnrollResponse, EventAck, EventUpload, Snapshot};
use std::fmt;
use std::time::Duration;

/// The terminal's clock (Unix seconds), sent with snapshot and event calls.
pub const TERMINAL_TIME_HEADER: &str = "x-terminal-time";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the server at {url} ({detail}). The terminal keeps working offline and keeps \
         every scan; check the network and run `canteen-terminal sync` again"
    )]
    Unreachable { url: String, detail: String },
    #[error("the server refused the request ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the server at {url} answered with something that is not the terminal API ({detail}); check the --server URL")]
    BadResponse { url: String, detail: String },
    #[error(
        "the server needs a newer terminal: {message} (this terminal runs version {version}). \
         Every event stays on this terminal and uploads after the upgrade; install the new \
         version of canteen-terminal and run `canteen-terminal sync`"
    )]
    UpgradeRequired {
        message: String,
        version: &'static str,
    },
}

/// This terminal's version, sent with every request so the server can ask for an upgrade.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The error code of the server's HTTP 426 answer to a terminal too old to be trusted.
pub const UPGRADE_REQUIRED_CODE: &str = "terminal_upgrade_required";

impl ClientError {
    /// True when the server was never reached or did not answer in time.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }

    pub fn is_upgrade_required(&self) -> bool {
        matches!(self, ClientError::UpgradeRequired { .. })
    }
}

/// The bearer secret; never printed.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

#[derive(Debug, Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    base: String,
    secret: Option<Secret>,
}

/// Checks and normalises a server URL: http(s), no trailing slash.
pub fn normalize_server_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("server URL {url:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(format!("server URL {url:?} has no host"));
    }
    Ok(url.to_owned())
}

impl ServerClient {
    pub fn new(base: &str, secret: Option<Secret>, timeout: Duration) -> ServerClient {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            shared::wire::TERMINAL_VERSION_HEADER,
            reqwest::header::HeaderValue::from_static(VERSION),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .build()
            .expect("HTTP client builds with rustls");
        ServerClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            secret,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/terminal/{path}", self.base)
    }

    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, ClientError> {
        let url = self.url("enroll");
        let resp = self.http.post(&url).json(req).send().await;
        self.read(&url, resp).await
    }

    /// `terminal_time`: this terminal's clock, so the server can show its offset to staff.
    pub async fn snapshot(&self, cursor: i64, terminal_time: i64) -> Result<Snapshot, ClientError> {
        let url = self.url("snapshot");
        let resp = self
            .authed(self.http.get(&url).query(&[("cursor", cursor)]))
            .header(TERMINAL_TIME_HEADER, terminal_time)
            .send()
            .await;
        self.read(&url, resp).await
    }

    pub async fn upload(
        &self,
        upload: &EventUpload,
        terminal_time: i64,
    ) -> Result<EventAck, ClientError> {
        let url = self.url("events");
        let resp = self
            .authed(self.http.post(&url).json(upload))
            .header(TERMINAL_TIME_HEADER, terminal_time)
            .send()
            .await;
        self.read(&url, resp).await
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.secret {
            Some(s) => req.bearer_auth(&s.0),
            None => req,
        }
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, ClientError> {
        let resp = resp.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            detail: describe(&e),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            detail: describe(&e),
        })?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body)
                    if status == reqwest::StatusCode::UPGRADE_REQUIRED
                        && body.error.code == UPGRADE_REQUIRED_CODE =>
                {
                    ClientError::UpgradeRequired {
                        message: body.error.message,
                        version: VERSION,
                    }
                }
                Ok(body) => ClientError::Refused {
                    status: status.as_u16(),
                    code: body.error.code,
                    message: body.error.message,
                },
                // A proxy or gateway error page: the server itself was not reached.
                Err(_) if status.is_server_error() => ClientError::Unreachable {
                    url: self.base.clone(),
                    detail: format!("HTTP {status}"),
                },
                Err(_) => ClientError::BadResponse {
                    url: url.to_owned(),
                    detail: format!("HTTP {status} without an error body"),
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadResponse {
            url: url.to_owned(),
            detail: e.to_string(),
        })
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        // reqwest's Display includes the URL but never headers, so the secret cannot leak here.
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(
            normalize_server_url(" http://127.0.0.1:8080/ ").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalize_server_url("ftp://x").is_err());
        assert!(normalize_server_url("http://").is_err());
        assert!(normalize_server_url("127.0.0.1:8080").is_err());
        assert_eq!(format!("{:?}", Secret("abc".into())), "Secret(hidden)");
    }
}
