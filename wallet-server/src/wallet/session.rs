//! Parent sessions: a random bearer token (32 bytes, base64url) handed out once at login and
//! stored only as its SHA-256. Requests authenticate with `Authorization: Bearer <token>`.
//!
//! The hot path (QR issuance) must not pay a database round trip per request for the session:
//! a session once read is cached for [`CACHE_SECONDS`]. Logging out on this instance takes effect
//! at once; on other instances sharing the database within that time.

use super::limits::Sharded;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// How long a session lasts after login.
pub const SESSION_SECONDS: i64 = 30 * 86_400;
/// How long a session read from the database is trusted without reading it again.
pub const CACHE_SECONDS: i64 = 60;

pub type TokenHash = [u8; 32];

pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    shared::b64::encode(&bytes)
}

pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Clone)]
struct Cached {
    phone: Arc<str>,
    expires_at: i64,
    read_at: i64,
}

#[derive(Default)]
pub struct SessionCache {
    entries: Sharded<TokenHash, Cached>,
}

impl SessionCache {
    fn get(&self, hash: &TokenHash, now: i64) -> Option<Arc<str>> {
        let shard = self.entries.shard(hash);
        let c = shard.get(hash)?;
        (now < c.expires_at && now - c.read_at < CACHE_SECONDS).then(|| c.phone.clone())
    }

    fn put(&self, hash: TokenHash, phone: Arc<str>, expires_at: i64, now: i64) {
        self.entries.shard(&hash).insert(
            hash,
            Cached {
                phone,
                expires_at,
                read_at: now,
            },
        );
    }

    pub fn forget(&self, hash: &TokenHash) {
        self.entries.shard(hash).remove(hash);
    }

    /// Drops entries that would be read again anyway.
    pub fn evict_stale(&self, now: i64) {
        for mut shard in self.entries.each_shard() {
            shard.retain(|_, c| now < c.expires_at && now - c.read_at < CACHE_SECONDS);
        }
    }
}

/// How long an ownership read for signing (session, voucher → active voucher) is reused at most.
pub const OWNERSHIP_SECONDS: i64 = 5;

/// How often the signing cache asks the database whether any voucher changed: a revocation, a
/// move or a new priority phone committed by any process stops the cached reads this long
/// after its commit at the latest.
pub const OWNERSHIP_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// Recently read active vouchers per session, so a parent's page renewing its QR code, or
/// sending it to the child right after showing it, does not read the database again. Only
/// `active` vouchers are kept (nothing else can be signed), so an activation is seen at once.
/// Each entry carries the voucher change number it was read under
/// (`VoucherStore::voucher_change_number`, which every change of a voucher's state or school and
/// every new priority phone moves); the number is read again every [`OWNERSHIP_CHECK`], and an
/// entry of an older number is read afresh. So the old number's open sessions lose a pupil,
/// and a moved voucher's tokens carry the new school, within that time of the import's commit,
/// whichever process made it.
#[derive(Default)]
pub struct OwnershipCache {
    entries: Sharded<(TokenHash, uuid::Uuid), (crate::store::wallet::SigningVoucher, i64, i64)>,
    /// The change number last read, and when.
    seen: std::sync::Mutex<Option<(i64, std::time::Instant)>>,
}

impl OwnershipCache {
    /// The voucher change number, from the database at most every [`OWNERSHIP_CHECK`].
    pub async fn epoch(&self, store: &dyn crate::store::Store) -> crate::store::StoreResult<i64> {
        let recent = *self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((epoch, at)) = recent {
            if at.elapsed() < OWNERSHIP_CHECK {
                return Ok(epoch);
            }
        }
        let read = std::time::Instant::now();
        let epoch = store.voucher_change_number().await?;
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some((epoch, read));
        Ok(epoch)
    }

    pub fn get(
        &self,
        session: &TokenHash,
        voucher: uuid::Uuid,
        now: i64,
        epoch: i64,
    ) -> Option<crate::store::wallet::SigningVoucher> {
        let key = (*session, voucher);
        let shard = self.entries.shard(&key);
        let (v, read_at, read_epoch) = shard.get(&key)?;
        (*read_epoch == epoch && *read_at <= now && now - read_at < OWNERSHIP_SECONDS)
            .then(|| v.clone())
    }

    /// Keeps `v`, read after the change number was `epoch`.
    pub fn put(
        &self,
        session: TokenHash,
        voucher: uuid::Uuid,
        v: &crate::store::wallet::SigningVoucher,
        now: i64,
        epoch: i64,
    ) {
        if v.status == "active" {
            let key = (session, voucher);
            self.entries
                .shard(&key)
                .insert(key, (v.clone(), now, epoch));
        }
    }

    pub fn evict_stale(&self, now: i64) {
        for mut shard in self.entries.each_shard() {
            shard.retain(|_, (_, read_at, _)| now - *read_at < OWNERSHIP_SECONDS);
        }
    }
}

/// A signed-in parent: whoever holds a phone listed for a pupil.
#[derive(Debug, Clone)]
pub struct Parent {
    pub phone: Arc<str>,
    pub token_hash: TokenHash,
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 128)
        .then_some(token)
}

/// Checks a bearer token; `None` when it is unknown, expired or revoked.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<Parent>, AppError> {
    let hash = hash_token(token);
    let now = state.now();
    if let Some(phone) = state.wallet.sessions.get(&hash, now) {
        return Ok(Some(Parent {
            phone,
            token_hash: hash,
        }));
    }
    let Some(row) = state.store.session(&hex::encode(hash)).await? else {
        return Ok(None);
    };
    if row.revoked_at.is_some() || row.expires_at <= now {
        state.wallet.sessions.forget(&hash);
        return Ok(None);
    }
    let phone: Arc<str> = row.phone.into();
    state
        .wallet
        .sessions
        .put(hash, phone.clone(), row.expires_at, now);
    Ok(Some(Parent {
        phone,
        token_hash: hash,
    }))
}

impl FromRequestParts<AppState> for Parent {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer(parts).ok_or(AppError::Unauthorized)?;
        authenticate(state, token)
            .await?
            .ok_or(AppError::Unauthorized)
    }
}

/// Creates a session for the phone; returns the token (shown once) and its expiry.
pub async fn start(state: &AppState, phone: &str) -> Result<(String, i64), AppError> {
    let token = new_token();
    let now = state.now();
    let expires_at = now + SESSION_SECONDS;
    state
        .store
        .insert_session(&hex::encode(hash_token(&token)), phone, now, expires_at)
        .await?;
    Ok((token, expires_at))
}

pub async fn end(state: &AppState, parent: &Parent) -> Result<(), AppError> {
    state.wallet.sessions.forget(&parent.token_hash);
    state
        .store
        .revoke_session(&hex::encode(parent.token_hash), state.now())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_fixed() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_token());
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&new_token()));
    }

    #[test]
    fn bearer_header_forms() {
        let parts = |v: &str| {
            let (p, _) = axum::http::Request::builder()
                .header("authorization", v)
                .body(())
                .unwrap()
                .into_parts();
            p
        };
        assert_eq!(bearer(&parts("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&parts("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&parts("Basic abc")), None);
        assert_eq!(bearer(&parts("Bearer ")), None);
        assert_eq!(bearer(&parts(&format!("Bearer {}", "a".repeat(200)))), None);
    }

    #[test]
    fn cache_expires() {
        let c = SessionCache::default();
        let h = hash_token("t");
        c.put(h, "+77010000001".into(), 1_000, 100);
        assert!(c.get(&h, 100 + CACHE_SECONDS - 1).is_some());
        assert!(
            c.get(&h, 100 + CACHE_SECONDS).is_none(),
            "read again after the cache time"
        );
        c.put(h, "+77010000001".into(), 120, 100);
        assert!(c.get(&h, 120).is_none(), "never past the session's expiry");
        c.put(h, "+77010000001".into(), 1_000, 100);
        c.forget(&h);
        assert!(c.get(&h, 101).is_none());
    }
}
