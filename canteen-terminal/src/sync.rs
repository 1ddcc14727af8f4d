//! Enrollment and the sync round of DESIGN §5: events up from the server's last seq + 1, then
//! the snapshot down, verified against the pinned root key and applied in one transaction.

use crate::client::{normalize_server_url, ClientError, Secret, ServerClient};
use crate::clock::Clock;
use crate::config::{Settings, OFFSET_WARNING_SECONDS};
use crate::store::{self, Identity, SnapshotApply, StoreError};
use crate::terminal::{Terminal, TerminalError, SECRET_FILE};
use serde::Serialize;
use shared::keys::parse_public_key;
use shared::trust::TrustError;
use shared::wire::{EnrollRequest, EventUpload, Snapshot};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Events per upload request (the server's benchmark batch size).
pub const UPLOAD_BATCH: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(
        "the server's trust list was refused: {0}. The terminal keeps the keys it had; \
         tell the operator (the server's keys or the network may be tampered with)"
    )]
    Trust(TrustError),
    #[error("the server sent a snapshot for school code {got}, but this terminal belongs to school code {have}; nothing was changed")]
    WrongSchool { got: u32, have: u32 },
    #[error("the server sent an invalid school calendar ({0}); nothing was changed")]
    BadCalendar(String),
    #[error(
        "the server acknowledged events up to seq {server} but this terminal only has {local}; \
         its data dir may have been restored from an old copy — tell the operator before scanning on"
    )]
    ServerAhead { server: i64, local: i64 },
    #[error("the server keeps acknowledging seq {server} while events from {from} were sent; nothing is lost locally, try again later and tell the operator if it persists")]
    NoProgress { server: i64, from: i64 },
    #[error(transparent)]
    Terminal(#[from] TerminalError),
}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> Self {
        SyncError::Terminal(TerminalError::Store(e))
    }
}

impl SyncError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, SyncError::Client(c) if c.is_unreachable())
    }

    pub fn is_upgrade_required(&self) -> bool {
        matches!(self, SyncError::Client(c) if c.is_upgrade_required())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(
        "the enrollment answer is not usable ({0}); the terminal was not set up. Tell the operator"
    )]
    BadAnswer(String),
    #[error(transparent)]
    Terminal(#[from] TerminalError),
}

impl From<StoreError> for EnrollError {
    fn from(e: StoreError) -> Self {
        EnrollError::Terminal(TerminalError::Store(e))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub uploaded: u64,
    pub already_had: u64,
    pub server_last_seq: i64,
    pub local_last_seq: i64,
    pub full_snapshot: bool,
    pub vouchers_received: usize,
    pub trust_version: u64,
    pub server_offset: i64,
    pub cursor: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnrollSummary {
    pub terminal_id: Uuid,
    pub school_name: String,
    pub school_bin: String,
    pub school_code: u32,
    pub vouchers: usize,
    pub trust_version: u64,
}

/// Checks a snapshot before anything of it is stored.
fn check_snapshot(
    snap: &Snapshot,
    root_b64: &str,
    have_version: Option<u64>,
    school_code: u32,
) -> Result<u64, SyncError> {
    let root = parse_public_key(root_b64).map_err(|_| SyncError::Trust(TrustError::Malformed))?;
    let payload = snap
        .trust_list
        .verify(&root, have_version)
        .map_err(SyncError::Trust)?;
    if snap.school_code != school_code {
        return Err(SyncError::WrongSchool {
            got: snap.school_code,
            have: school_code,
        });
    }
    for year in std::iter::once(&snap.calendar).chain(&snap.next_calendar) {
        year.validate()
            .map_err(|e| SyncError::BadCalendar(format!("{}: {e}", year.label())))?;
    }
    Ok(payload.version)
}

/// The clock watermark after a snapshot: when the local clock agrees with the server's, the
/// server vouches for it, so a watermark left by a clock that had run ahead is lowered to now.
/// Otherwise the watermark only rises.
pub fn watermark_after_sync(last_seen: i64, now: i64, server_offset: i64) -> i64 {
    if server_offset.abs() <= OFFSET_WARNING_SECONDS {
        now
    } else {
        last_seen.max(now)
    }
}

pub async fn enroll(
    dir: &Path,
    server: &str,
    code: &str,
    label: Option<&str>,
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> Result<EnrollSummary, EnrollError> {
    let server = normalize_server_url(server).map_err(EnrollError::BadInput)?;
    let code = code.trim();
    if code.is_empty() || code.len() > 200 {
        return Err(EnrollError::BadInput(
            "the enrollment code is empty or too long; copy it exactly as school staff printed it"
                .to_owned(),
        ));
    }
    let label = label.map(str::trim).filter(|l| !l.is_empty());
    let has_secret = dir.join(SECRET_FILE).exists();
    if dir.join(store::DB_FILE).is_file() {
        // Beside credentials the log must be sound before anything is written to it.
        let pool = if has_secret {
            match store::open_existing(dir, store::DEFAULT_BUSY_TIMEOUT).await {
                Ok(pool) => pool,
                Err(StoreError::Damaged { path, detail }) => {
                    return Err(TerminalError::LogDamaged { path, detail }.into())
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            store::open(dir).await?
        };
        let enrolled = store::identity(&pool).await?;
        pool.close().await;
        if let Some(id) = enrolled {
            return Err(TerminalError::AlreadyEnrolled {
                dir: dir.display().to_string(),
                terminal_id: id.terminal_id,
                school: format!("{} ({})", id.school_name, id.school_bin),
            }
            .into());
        }
    } else if has_secret {
        // Credentials without their log: the log was lost. Enrolling here would hide that.
        return Err(TerminalError::LogMissing {
            path: dir.join(store::DB_FILE).display().to_string(),
            dir: dir.display().to_string(),
        }
        .into());
    }
    let client = ServerClient::new(
        &server,
        None,
        Duration::from_secs(settings.http_timeout_seconds),
    );
    let dir_was_there = dir.exists();
    create_private_dir(dir)?;
    let key = pending_key(dir, code)?;
    let t0 = clock.now();
    let e0 = clock.elapsed();
    let resp = match client
        .enroll(&EnrollRequest {
            code: code.to_owned(),
            label: label.map(str::to_owned),
            terminal_key: Some(key.clone()),
        })
        .await
    {
        Ok(resp) => resp,
        Err(e) => {
            // Refused: a retry with this code cannot succeed, so the key is of no further
            // use. Unreachable: the server may have enrolled us; the retry needs the same key.
            if matches!(e, ClientError::Refused { .. }) {
                let _ = std::fs::remove_file(dir.join(PENDING_FILE));
                if !dir_was_there {
                    // Only succeeds if empty: nothing of this attempt stays behind.
                    let _ = std::fs::remove_dir(dir);
                }
            }
            return Err(e.into());
        }
    };
    // A server that predates terminal keys picks the secret itself; it is used as given.
    if resp.secret.trim().is_empty() {
        return Err(EnrollError::BadAnswer("empty terminal secret".to_owned()));
    }
    let now = clock.now();
    let e1 = clock.elapsed();
    let trust_version = check_snapshot(
        &resp.snapshot,
        &resp.root_public_key,
        None,
        resp.school_code,
    )
    .map_err(|e| EnrollError::BadAnswer(e.to_string()))?;
    create_private_dir(dir)?;
    // The log first, then the secret, then the identity: a crash in between leaves a dir
    // without an identity, which a new code enrolls; never credentials without their log.
    let pool = store::open(dir).await?;
    shared::keys::write_secret_file(
        &dir.join(SECRET_FILE),
        format!("{}\n", resp.secret).as_bytes(),
    )
    .map_err(|source| TerminalError::DataDir {
        dir: dir.display().to_string(),
        source,
    })?;
    let identity = Identity {
        terminal_id: resp.terminal_id,
        label: label.map(str::to_owned),
        school_code: resp.school_code,
        school_bin: resp.school_bin.clone(),
        school_name: resp.school_name.clone(),
        server_url: server,
        root_public_key: resp.root_public_key.clone(),
        enrolled_at: now,
    };
    store::insert_identity(&pool, &identity, now).await?;
    let offset = resp.snapshot.server_time - midpoint(t0, now);
    store::apply_snapshot(
        &pool,
        &SnapshotApply {
            snapshot: &resp.snapshot,
            trust_version,
            own_terminal_id: resp.terminal_id,
            local_now: now,
            server_offset: offset,
            last_seen_time: resp.snapshot.server_time,
        },
    )
    .await?;
    pool.close().await;
    crate::clock::save(
        &dir.join(crate::clock::ANCHOR_FILE),
        &crate::clock::anchor_for(resp.snapshot.server_time, mid_elapsed(e0, e1)),
    )
    .map_err(|source| TerminalError::DataDir {
        dir: dir.display().to_string(),
        source,
    })?;
    let _ = std::fs::remove_file(dir.join(PENDING_FILE));
    Ok(EnrollSummary {
        terminal_id: resp.terminal_id,
        school_name: resp.school_name,
        school_bin: resp.school_bin,
        school_code: resp.school_code,
        vouchers: resp.snapshot.vouchers.len(),
        trust_version,
    })
}

/// The key of an enrollment not yet finished: `{"code_sha256", "key"}`, mode 0600. Kept until
/// the enrollment is stored, so a retry after a lost answer sends the same key and the server
/// hands back the terminal it made.
pub const PENDING_FILE: &str = "enroll.pending";

#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    code_sha256: String,
    key: String,
}

/// The code as the server compares it: letters upper-cased, separators dropped.
fn code_digest(code: &str) -> String {
    use sha2::Digest;
    let canonical: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
}

/// The key to enroll with this code: the pending one if it was for this code, else a new one
/// written to the pending file before the request leaves.
fn pending_key(dir: &Path, code: &str) -> Result<String, TerminalError> {
    let path = dir.join(PENDING_FILE);
    let digest = code_digest(code);
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(p) = serde_json::from_str::<Pending>(&text) {
            if p.code_sha256 == digest && shared::wire::is_terminal_key(&p.key) {
                return Ok(p.key);
            }
        }
    }
    let mut bytes = [0u8; shared::wire::TERMINAL_KEY_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let key = shared::b64::encode(&bytes);
    let json = serde_json::to_vec(&Pending {
        code_sha256: digest,
        key: key.clone(),
    })
    .expect("serialisable");
    shared::keys::write_secret_file(&path, &json).map_err(|source| TerminalError::DataDir {
        dir: dir.display().to_string(),
        source,
    })?;
    Ok(key)
}

/// The elapsed-time reading halfway through a request, when both ends are of one boot.
fn mid_elapsed(
    before: Option<crate::clock::Elapsed>,
    after: Option<crate::clock::Elapsed>,
) -> Option<crate::clock::Elapsed> {
    let (b, a) = (before?, after?);
    (a.boot == b.boot).then(|| crate::clock::Elapsed {
        millis: midpoint(b.millis, a.millis),
        boot: a.boot,
    })
}

fn midpoint(a: i64, b: i64) -> i64 {
    a + (b - a) / 2
}

fn create_private_dir(dir: &Path) -> Result<(), TerminalError> {
    let err = |source| TerminalError::DataDir {
        dir: dir.display().to_string(),
        source,
    };
    // The database holds pupils' names and the secret opens the server's API: owner only.
    shared::private_fs::create_private_dir_all(dir).map_err(err)
}

impl Terminal {
    fn client(&self) -> Result<ServerClient, TerminalError> {
        let secret = self.secret()?;
        Ok(ServerClient::new(
            &self.identity.server_url,
            Some(Secret(secret)),
            Duration::from_secs(self.settings.http_timeout_seconds),
        ))
    }

    /// One sync round. On failure the reason is also stored for the status screen.
    pub async fn sync(&self) -> Result<SyncReport, SyncError> {
        let result = self.sync_round().await;
        if let Err(e) = &result {
            let _ =
                store::note_sync_attempt(&self.pool, self.clock.now(), Some(&e.to_string())).await;
        }
        result
    }

    async fn sync_round(&self) -> Result<SyncReport, SyncError> {
        let client = self.client()?;
        let (uploaded, already_had, server_last_seq, local_last_seq) =
            self.upload_events(&client).await?;

        let before = store::sync_state(&self.pool).await?;
        let identity = &self.identity;
        let t0 = self.clock.now();
        let e0 = self.clock.elapsed();
        let snap = client.snapshot(before.snapshot_cursor, t0).await?;
        let now = self.clock.now();
        let e1 = self.clock.elapsed();
        let trust_version = check_snapshot(
            &snap,
            &identity.root_public_key,
            before.trust_version,
            identity.school_code,
        )?;
        let offset = snap.server_time - midpoint(t0, now);
        let current = store::sync_state(&self.pool).await?;
        store::apply_snapshot(
            &self.pool,
            &SnapshotApply {
                snapshot: &snap,
                trust_version,
                own_terminal_id: identity.terminal_id,
                local_now: now,
                server_offset: offset,
                // The server's time is trusted time: the watermark starts again from it.
                last_seen_time: watermark_after_sync(current.last_seen_time, snap.server_time, 0),
            },
        )
        .await?;
        if let Err(e) = self
            .time
            .anchor_to_server(snap.server_time, mid_elapsed(e0, e1))
        {
            tracing::warn!(error = %e, "cannot keep the clock anchor; trusted time lasts until exit");
        }
        self.reload().await?;
        Ok(SyncReport {
            uploaded,
            already_had,
            server_last_seq,
            local_last_seq,
            full_snapshot: snap.full,
            vouchers_received: snap.vouchers.len(),
            trust_version,
            server_offset: offset,
            cursor: snap.cursor,
        })
    }

    /// Uploads every event the server does not hold yet. The local cursor only records what the
    /// server acknowledged, so a failure anywhere just means the next round sends some again.
    async fn upload_events(
        &self,
        client: &ServerClient,
    ) -> Result<(u64, u64, i64, i64), SyncError> {
        let mut uploaded = 0;
        let mut already_had = 0;
        let mut cursor = store::sync_state(&self.pool).await?.uploaded_through;
        let mut rewinds = 0;
        loop {
            let local_last = store::last_seq(&self.pool).await?;
            if local_last <= cursor {
                return Ok((uploaded, already_had, cursor, local_last));
            }
            // What is sent is sealed first: a rejection counted up after the server took its
            // seq would never reach it (it keeps the first copy of each seq).
            let local_last = store::seal_for_upload(&self.pool).await?;
            let batch = store::events_between(&self.pool, cursor, local_last, UPLOAD_BATCH).await?;
            if batch.is_empty() {
                return Ok((uploaded, already_had, cursor, local_last));
            }
            let from = cursor + 1;
            let ack = client
                .upload(&EventUpload { events: batch }, self.clock.now())
                .await?;
            uploaded += ack.stored;
            already_had += ack.already_had;
            if ack.last_seq > local_last {
                return Err(SyncError::ServerAhead {
                    server: ack.last_seq,
                    local: local_last,
                });
            }
            if ack.last_seq < cursor {
                // The server holds less than it acknowledged before (restored from a backup?):
                // send again from right after what it holds.
                rewinds += 1;
                if rewinds > 3 {
                    return Err(SyncError::NoProgress {
                        server: ack.last_seq,
                        from,
                    });
                }
            } else if ack.last_seq == cursor {
                return Err(SyncError::NoProgress {
                    server: ack.last_seq,
                    from,
                });
            }
            cursor = ack.last_seq;
            store::set_uploaded_through(&self.pool, cursor).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_reset_only_when_the_server_agrees() {
        assert_eq!(watermark_after_sync(5_000, 1_000, 60), 1_000);
        assert_eq!(watermark_after_sync(5_000, 1_000, -120), 1_000);
        assert_eq!(watermark_after_sync(5_000, 1_000, 121), 5_000);
        assert_eq!(watermark_after_sync(500, 1_000, 4_000), 1_000);
    }
}

#[cfg(test)]
mod pending_tests {
    use super::*;

    #[test]
    fn a_retry_with_the_same_code_sends_the_same_key_and_another_code_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let first = pending_key(dir.path(), "7KQ2M-ZX4PA").unwrap();
        assert!(shared::wire::is_terminal_key(&first));
        // As typed again: lower case, without the dash.
        assert_eq!(pending_key(dir.path(), "7kq2mzx4pa").unwrap(), first);
        let other = pending_key(dir.path(), "AAAAABBBBB").unwrap();
        assert_ne!(other, first);
        // A damaged file is replaced, not trusted.
        std::fs::write(dir.path().join(PENDING_FILE), b"{").unwrap();
        assert!(shared::wire::is_terminal_key(
            &pending_key(dir.path(), "AAAAABBBBB").unwrap()
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(PENDING_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
