//! Delivery of documents to outside systems (e-Otinish complaints, NOBD reports): a file per
//! document in an outbox folder by default, or an HTTP POST with an idempotency key.
//!
//! A delivery either lands whole or fails; callers keep the document in their own table and
//! retry with [`backoff`] until it is accepted, so a crash or an outage loses nothing.

use crate::config::{DeliverySettings, Secret};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// How long an HTTP receiver gets to answer before the attempt counts as failed.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("document id {0:?} is not usable as a file name")]
    BadId(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("request to the receiver failed: {0}")]
    Http(String),
    #[error("the receiver refused the document: HTTP {status}: {body}")]
    Refused { status: u16, body: String },
}

/// Where one kind of document goes.
#[derive(Debug, Clone)]
pub enum Sink {
    /// `<root>/<kind_dir>/<id>.json`.
    Dir(PathBuf),
    /// POSTed as JSON with `Idempotency-Key: <id>` and, if configured, `Authorization: Bearer`.
    Http { url: String, token: Option<Secret> },
}

impl Sink {
    /// The configured URL, else the outbox folder (`<data-dir>/outbox`).
    pub fn from_settings(settings: &DeliverySettings, outbox_dir: &Path) -> Sink {
        match &settings.url {
            Some(url) if !url.trim().is_empty() => Sink::Http {
                url: url.trim().to_owned(),
                token: settings.token.clone(),
            },
            _ => Sink::Dir(outbox_dir.to_path_buf()),
        }
    }

    /// Delivers one document. Delivering the same id again is harmless: the file is replaced
    /// with the same content, the HTTP receiver sees the same idempotency key.
    pub async fn deliver(
        &self,
        kind_dir: &str,
        id: &str,
        json: &[u8],
    ) -> Result<(), DeliveryError> {
        if !safe_id(id) || !safe_id(kind_dir) {
            return Err(DeliveryError::BadId(format!("{kind_dir}/{id}")));
        }
        match self {
            Sink::Dir(root) => {
                let dir = root.join(kind_dir);
                let path = dir.join(format!("{id}.json"));
                let json = json.to_vec();
                tokio::task::spawn_blocking(move || write_durably(&dir, &path, &json))
                    .await
                    .map_err(|e| DeliveryError::Http(format!("writer task failed: {e}")))?
            }
            Sink::Http { url, token } => post(url, token.as_ref(), id, json).await,
        }
    }
}

/// Seconds to wait before attempt `attempts + 1`: 30 s doubling per failure, at most an hour.
pub fn backoff(attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 7) as u32;
    (30_i64 << exp).min(3_600)
}

fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Temp file in the same folder, fsync, rename, fsync the folder: after a crash the document
/// is either absent (and will be retried) or complete — never half written.
fn write_durably(dir: &Path, path: &Path, content: &[u8]) -> Result<(), DeliveryError> {
    let io = |source: std::io::Error| DeliveryError::Io {
        path: path.display().to_string(),
        source,
    };
    shared::private_fs::create_private_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("doc"),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = shared::private_fs::private_options()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        shared::private_fs::restrict(&f)?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .expect("HTTP client with default TLS settings")
    })
}

async fn post(
    url: &str,
    token: Option<&Secret>,
    id: &str,
    json: &[u8],
) -> Result<(), DeliveryError> {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .header("idempotency-key", id)
        .body(json.to_vec());
    if let Some(token) = token {
        request = request.bearer_auth(token.expose());
    }
    let response = request
        .send()
        .await
        .map_err(|e| DeliveryError::Http(e.without_url().to_string()))?;
    let status = response.status();
    // 409: the receiver already holds a document with this idempotency key.
    if status.is_success() || status.as_u16() == 409 {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(DeliveryError::Refused {
        status: status.as_u16(),
        body: body.chars().take(300).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The e-Otinish outbox holds parents' complaints: owner only, whatever the umask (a umask
    /// can only narrow the mode given at creation, so the test process's own umask will do).
    #[cfg(unix)]
    #[test]
    fn outbox_documents_and_their_folder_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("outbox/eotinish");
        let path = dir.join("c-1.json");
        write_durably(&dir, &path, b"{}").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("outbox")), 0o700);
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), 30);
        assert_eq!(backoff(1), 60);
        assert_eq!(backoff(3), 240);
        assert_eq!(backoff(7), 3_600);
        assert_eq!(backoff(1_000), 3_600);
        assert_eq!(backoff(-5), 30);
    }

    #[test]
    fn ids_must_be_plain_file_names() {
        for good in ["c-1", "0001-2026-11-23-r1", "a.b_c"] {
            assert!(safe_id(good), "{good}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "a b", "ä"] {
            assert!(!safe_id(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn dir_sink_writes_whole_files_and_refuses_odd_ids() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::Dir(dir.path().to_path_buf());
        sink.deliver("eotinish", "c1", br#"{"a":1}"#).await.unwrap();
        sink.deliver("eotinish", "c1", br#"{"a":1}"#).await.unwrap();
        let path = dir.path().join("eotinish/c1.json");
        assert_eq!(std::fs::read(&path).unwrap(), br#"{"a":1}"#);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("eotinish"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp files left: {names:?}");
        assert!(matches!(
            sink.deliver("eotinish", "../evil", b"{}").await,
            Err(DeliveryError::BadId(_))
        ));
    }

    #[test]
    fn settings_pick_the_sink() {
        let dir = Path::new("/tmp/outbox");
        assert!(matches!(
            Sink::from_settings(&DeliverySettings::default(), dir),
            Sink::Dir(p) if p == dir
        ));
        let http = DeliverySettings {
            url: Some("http://127.0.0.1:9/x".into()),
            ..Default::default()
        };
        assert!(matches!(Sink::from_settings(&http, dir), Sink::Http { .. }));
    }
}
