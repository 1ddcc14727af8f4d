//! The default gateway: one JSON object per line appended to `<data-dir>/outbox/sms.jsonl`,
//! flushed to disk before the rows are marked sent.

use super::gateway::{GatewayError, OutgoingSms, SmsGateway};
use async_trait::async_trait;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct FileGateway {
    path: PathBuf,
    // One writer per process: lines from concurrent batches never interleave.
    lock: Arc<Mutex<()>>,
}

impl FileGateway {
    pub fn new(path: PathBuf) -> FileGateway {
        FileGateway {
            path,
            lock: Arc::new(Mutex::new(())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn append(path: &Path, lock: &Mutex<()>, buf: &[u8]) -> std::io::Result<()> {
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    // O_APPEND and one write per batch: instances sharing the folder append whole lines. The
    // file holds login codes: owner only.
    let mut f = shared::private_fs::open_private_append(path)?;
    f.write_all(buf)?;
    f.sync_data()
}

#[async_trait]
impl SmsGateway for FileGateway {
    async fn send_batch(&self, batch: &[OutgoingSms]) -> Vec<Result<(), GatewayError>> {
        let mut buf = Vec::with_capacity(batch.len() * 256);
        for sms in batch {
            serde_json::to_writer(&mut buf, sms).expect("strings serialise");
            buf.push(b'\n');
        }
        let (path, lock) = (self.path.clone(), self.lock.clone());
        let result = tokio::task::spawn_blocking(move || append(&path, &lock, &buf))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match result {
            Ok(()) => batch.iter().map(|_| Ok(())).collect(),
            Err(e) => batch
                .iter()
                .map(|_| {
                    Err(GatewayError::Temporary(format!(
                        "cannot write {}: {e}",
                        self.path.display()
                    )))
                })
                .collect(),
        }
    }

    fn batch_size(&self) -> usize {
        // One write and one fsync per batch.
        500
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// Reads an outbox file back (tests and tools).
pub fn read_outbox(path: &Path) -> std::io::Result<Vec<OutgoingSms>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
        .collect()
}
