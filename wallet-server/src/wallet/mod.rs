//! The parents' wallet (DESIGN §1 steps 6, 7, 10): SMS-code login, sessions, vouchers as a
//! parent sees them, QR token issuance, history, ratings and complaints.
//!
//! HTTP handlers live in `api::wallet`, pages in `web::wallet` and `web::share`; this module
//! holds the rules and the in-memory state they share ([`WalletRuntime`]).

pub mod complaints;
pub mod extract;
pub mod issuance;
pub mod jobs;
pub mod limits;
pub mod login;
pub mod qr;
pub mod session;
pub mod views;

use std::path::Path;

/// What the wallet keeps in memory between requests: the pepper for login-code hashes, short
/// caches of sessions and of signing reads, per-address rate limits and the per-voucher token counts (persisted in
/// batches by [`jobs`]).
pub struct WalletRuntime {
    pepper: [u8; 32],
    pub sessions: session::SessionCache,
    pub ownership: session::OwnershipCache,
    pub addresses: limits::AddressLimiter,
    pub phones: limits::PhoneLimiter,
    pub tokens: limits::TokenCounter,
}

impl std::fmt::Debug for WalletRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WalletRuntime(pepper hidden)")
    }
}

/// File in the keys folder holding the login-code pepper (mode 0600).
pub const PEPPER_FILE: &str = "wallet-login.pepper";

impl WalletRuntime {
    /// Loads the pepper from the keys folder, creating it on first start. Instances that share
    /// a database must share the keys folder (as they must for the signing keys).
    pub fn open(keys_dir: &Path) -> std::io::Result<WalletRuntime> {
        let path = keys_dir.join(PEPPER_FILE);
        let pepper = match std::fs::read_to_string(&path) {
            Ok(text) => shared::b64::decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not 32 bytes of base64url", path.display()),
                    )
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pepper: [u8; 32] = rand::random();
                shared::private_fs::create_private_dir_all(keys_dir)?;
                shared::keys::write_secret_file(
                    &path,
                    format!("{}\n", shared::b64::encode(&pepper)).as_bytes(),
                )?;
                pepper
            }
            Err(e) => return Err(e),
        };
        Ok(WalletRuntime::with_pepper(pepper))
    }

    pub fn with_pepper(pepper: [u8; 32]) -> WalletRuntime {
        WalletRuntime {
            pepper,
            sessions: session::SessionCache::default(),
            ownership: session::OwnershipCache::default(),
            addresses: limits::AddressLimiter::default(),
            phones: limits::PhoneLimiter::default(),
            tokens: limits::TokenCounter::default(),
        }
    }

    pub(crate) fn pepper(&self) -> &[u8; 32] {
        &self.pepper
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pepper_is_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let a = WalletRuntime::open(&keys).unwrap();
        let b = WalletRuntime::open(&keys).unwrap();
        assert_eq!(a.pepper(), b.pepper());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(keys.join(PEPPER_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{a:?}").contains(&shared::b64::encode(a.pepper())));
        std::fs::write(keys.join(PEPPER_FILE), "short").unwrap();
        assert!(WalletRuntime::open(&keys).is_err());
    }
}
