//! Terminal actions of school staff: one-time enrollment codes and revocation, both audited.

use crate::error::{AppError, AppResult};
use crate::store::audit::AuditEntry;
use crate::store::roster::School;
use crate::store::school_terminals::TerminalRow;
use crate::store::Store;

/// An enrollment code works once, within a day (DESIGN §5).
pub const ENROLL_CODE_TTL_SECONDS: i64 = 24 * 3600;
/// The same codes `wallet-server terminal enroll-code` prints and `POST /terminal/enroll`
/// accepts: one generator and one hash for both.
pub use crate::terminal_sync::credentials::CODE_LEN as ENROLL_CODE_LEN;

pub fn new_enroll_code() -> String {
    crate::terminal_sync::credentials::generate_code()
}

/// SHA-256 hex of the code: all the server keeps.
pub fn enroll_code_hash(code: &str) -> String {
    crate::terminal_sync::credentials::sha256_hex(code.as_bytes())
}

/// Creates a code for the school; returns it (shown once) and when it expires.
pub async fn create_enroll_code(
    store: &dyn Store,
    school: &School,
    actor: &str,
    now: i64,
) -> AppResult<(String, i64)> {
    let code = new_enroll_code();
    let expires_at = now + ENROLL_CODE_TTL_SECONDS;
    store
        .insert_enroll_code(
            &enroll_code_hash(&code),
            school.code,
            now,
            expires_at,
            actor,
        )
        .await?;
    store
        .audit(&AuditEntry {
            at: now,
            actor: actor.to_owned(),
            action: "terminal.enroll_code".into(),
            subject: Some(school.bin.clone()),
            detail: Some(format!("expires_at={expires_at}")),
        })
        .await?;
    Ok((code, expires_at))
}

/// Revokes one of the school's terminals; 404 for a terminal of another school.
pub async fn revoke_terminal(
    store: &dyn Store,
    school: &School,
    terminal_id: &str,
    actor: &str,
    now: i64,
) -> AppResult<TerminalRow> {
    let row = store
        .revoke_school_terminal(school.code, terminal_id, now)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no terminal {terminal_id} at this school")))?;
    store
        .audit(&AuditEntry {
            at: now,
            actor: actor.to_owned(),
            action: "terminal.revoke".into(),
            subject: Some(terminal_id.to_owned()),
            detail: Some(format!("school={}", school.bin)),
        })
        .await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_readable_alphabet() {
        let a = new_enroll_code();
        assert_eq!(a.len(), ENROLL_CODE_LEN);
        assert!(a
            .bytes()
            .all(|b| crate::terminal_sync::credentials::CODE_ALPHABET.contains(&b)));
        assert_ne!(a, new_enroll_code());
        assert_eq!(enroll_code_hash("ABC").len(), 64);
    }
}
