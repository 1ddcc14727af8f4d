//! Staff sign-in: rate-limited password checks, random session tokens kept only as hashes,
//! the session cookie for the pages and bearer tokens for the API.

use super::access::{scope_for, Scope};
use super::{normalize_username, password, Role};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::staff::StaffAccount;
use crate::store::{Store, StoreError};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "tamaq_staff";
/// A working day; staff sign in again the next morning.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// Failed attempts are counted over this window...
pub const WINDOW_SECONDS: i64 = 15 * 60;
/// ...and sign-in stops for a username from one client address after this many (counting per
/// address too, so that a stranger's wrong passwords cannot lock the owner out from elsewhere),
pub const MAX_FAILURES_PER_USER_AND_ADDRESS: i64 = 5;
/// ...and for an address after this many (one school's computer room shares an address).
pub const MAX_FAILURES_PER_ADDRESS: i64 = 20;

#[derive(Debug)]
pub struct NewSession {
    /// Shown once to the client; the server keeps its SHA-256 only.
    pub token: String,
    pub expires_at: i64,
    pub account: StaffAccount,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("too many failed sign-in attempts; try again in {WINDOW_SECONDS} seconds")]
    TooMany,
    #[error("wrong username or password")]
    Invalid,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks the rate limits, then the password (as long for an unknown username as for a wrong
/// password), records the attempt and opens a session.
pub async fn login(
    store: &dyn Store,
    username: &str,
    password_text: &str,
    address: &str,
    now: i64,
) -> Result<NewSession, LoginError> {
    // An impossible username is still counted, under what was typed, so that guessing usernames
    // costs attempts too.
    let username = normalize_username(username).unwrap_or_else(|_| {
        username
            .trim()
            .to_lowercase()
            .chars()
            .take(64)
            .collect::<String>()
    });
    let failures = store
        .login_failures_since(&username, address, now - WINDOW_SECONDS)
        .await?;
    if failures.by_user_and_address >= MAX_FAILURES_PER_USER_AND_ADDRESS
        || failures.by_address >= MAX_FAILURES_PER_ADDRESS
    {
        return Err(LoginError::TooMany);
    }
    let account = store
        .staff_by_username(&username)
        .await?
        .filter(|a| a.disabled_at.is_none());
    let phc = account
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(|| password::decoy_hash().to_owned());
    let pw = password_text.to_owned();
    let matches = tokio::task::spawn_blocking(move || {
        pw.chars().count() <= password::MAX_LEN && password::verify(&pw, &phc)
    })
    .await
    .expect("verifying does not panic");
    let account = match account {
        Some(a) if matches => a,
        _ => {
            store
                .record_login_attempt(&username, address, now, false)
                .await?;
            return Err(LoginError::Invalid);
        }
    };
    store
        .record_login_attempt(&username, address, now, true)
        .await?;
    let token = new_token();
    let expires_at = now + SESSION_SECONDS;
    store
        .create_staff_session(&token_hash(&token), account.id, now, expires_at, address)
        .await?;
    Ok(NewSession {
        token,
        expires_at,
        account,
    })
}

/// `Set-Cookie` value for a new session: HttpOnly, SameSite=Strict (a form on another site
/// cannot post with it), Secure when the server is reached over HTTPS.
pub fn session_cookie(token: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie(secure: bool) -> String {
    session_cookie("", 0, secure)
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The token of an `Authorization: Bearer ...` header.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// The session token of a request: the bearer token if any, else the cookie.
pub fn request_token(parts: &Parts) -> Option<String> {
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
        return auth.to_str().ok().and_then(bearer).map(str::to_owned);
    }
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| cookie_value(h, COOKIE))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// A signed-in staff member and the schools they may see.
#[derive(Debug, Clone)]
pub struct Staff {
    pub account: StaffAccount,
    pub role: Role,
    pub scope: Scope,
    pub token_hash: String,
}

impl Staff {
    pub async fn from_parts(parts: &Parts, state: &AppState) -> Result<Staff, AppError> {
        let token = request_token(parts).ok_or(AppError::Unauthorized)?;
        if token.len() > 128 {
            return Err(AppError::Unauthorized);
        }
        let hash = token_hash(&token);
        let account = state
            .store
            .staff_by_session(&hash, state.now())
            .await?
            .ok_or(AppError::Unauthorized)?;
        let role = Role::parse(&account.role).ok_or(AppError::Unauthorized)?;
        let scope = scope_for(state.store.as_ref(), &account).await?;
        Ok(Staff {
            account,
            role,
            scope,
            token_hash: hash,
        })
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        Staff::from_parts(parts, state).await
    }
}

/// The client's address for rate limits and lockouts: the real client (see
/// [`crate::client_addr`]); requests without a socket, as in tests, share the name `local`.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            crate::client_addr::client_ip(&parts.extensions)
                .map(|ip| ip.to_string())
                .unwrap_or_else(|| "local".to_owned()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_bearer_are_read() {
        assert_eq!(
            cookie_value("a=1; tamaq_staff=tok; b=2", COOKIE),
            Some("tok")
        );
        assert_eq!(cookie_value("tamaq_staffx=tok", COOKIE), None);
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        let c = session_cookie("t", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(!session_cookie("t", 60, false).contains("Secure"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_token());
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    proptest::proptest! {
        #[test]
        fn header_parsers_never_panic(h in "\\PC{0,80}") {
            let _ = cookie_value(&h, COOKIE);
            if let Some(t) = bearer(&h) {
                proptest::prop_assert!(!t.is_empty() && !t.contains(' '));
            }
        }
    }
}
