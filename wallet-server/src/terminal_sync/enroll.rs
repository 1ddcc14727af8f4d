//! One-time enrollment codes (created by school staff or `wallet-server terminal enroll-code`)
//! and the enrollment that consumes one.

use super::credentials::{generate_code, generate_secret, normalize_code, sha256_hex};
use super::snapshot;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::roster::School;
use crate::store::terminals::{CodeState, NewTerminal};
use crate::store::StoreError;
use shared::ids::Bin;
use shared::wire::{EnrollRequest, EnrollResponse};
use uuid::Uuid;

/// A code is valid for 24 hours (DESIGN §5).
pub const CODE_TTL_SECONDS: i64 = 24 * 3600;
/// Longest terminal label, in characters.
pub const MAX_LABEL_CHARS: usize = 80;

#[derive(Debug)]
pub struct IssuedCode {
    /// The code in clear: shown once, stored only hashed.
    pub code: String,
    pub school: School,
    pub expires_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("{0:?} is not a valid school BIN: {1}")]
    BadBin(String, shared::ids::IdError),
    #[error("no school with BIN {0}; import the roster that lists it first")]
    UnknownSchool(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes a fresh single-use code for the school with this BIN, audited under `actor`.
pub async fn create_code(
    state: &AppState,
    bin: &str,
    actor: &str,
) -> Result<IssuedCode, CodeError> {
    let bin = Bin::parse(bin).map_err(|e| CodeError::BadBin(bin.to_owned(), e))?;
    let school = state
        .store
        .school_by_bin(bin.as_str())
        .await?
        .ok_or_else(|| CodeError::UnknownSchool(bin.to_string()))?;
    let now = state.now();
    let expires_at = now + CODE_TTL_SECONDS;
    let mut attempts = 0;
    loop {
        let code = generate_code();
        match state
            .store
            .create_enroll_code(
                &sha256_hex(code.as_bytes()),
                school.code,
                actor,
                now,
                expires_at,
            )
            .await
        {
            Ok(()) => {
                return Ok(IssuedCode {
                    code,
                    school,
                    expires_at,
                })
            }
            // Two equal random codes: vanishingly rare, and a new one fixes it.
            Err(StoreError::Conflict(_)) if attempts < 3 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("the enrollment code must be {len} letters and digits, as printed (no 0, 1, I, L or O)", len = super::credentials::CODE_LEN)]
    MalformedCode,
    #[error("unknown enrollment code; check it or ask the school for a new one")]
    UnknownCode,
    #[error("this enrollment code was already used; ask the school for a new one")]
    UsedCode,
    #[error("this enrollment code has expired (codes are valid for 24 hours); ask the school for a new one")]
    ExpiredCode,
    #[error("the label must be at most {MAX_LABEL_CHARS} characters without control characters")]
    BadLabel,
    #[error(
        "terminal_key must be 43 to 128 characters of URL-safe base64 (32 random bytes or more)"
    )]
    BadTerminalKey,
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<StoreError> for EnrollError {
    fn from(e: StoreError) -> Self {
        EnrollError::App(e.into())
    }
}

impl EnrollError {
    /// Whether this counts as a failed guess for rate limiting.
    pub fn is_failed_guess(&self) -> bool {
        matches!(
            self,
            EnrollError::MalformedCode
                | EnrollError::UnknownCode
                | EnrollError::UsedCode
                | EnrollError::ExpiredCode
        )
    }
}

fn clean_label(label: Option<&str>, id: Uuid) -> Result<String, EnrollError> {
    let label = label.map(str::trim).unwrap_or("");
    if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(EnrollError::BadLabel);
    }
    Ok(if label.is_empty() {
        format!("terminal-{}", &id.simple().to_string()[..8])
    } else {
        label.to_owned()
    })
}

/// Consumes the code and creates the terminal: secret, school, root key and a full snapshot.
/// A code that cannot be used writes nothing.
///
/// With a `terminal_key`, a repeat of a request that already succeeded (the same code and key,
/// while the code is still within its lifetime) answers with the terminal that request made,
/// so a terminal whose answer was lost enrolls on retry instead of leaving a terminal nobody
/// holds the secret of.
pub async fn enroll(state: &AppState, req: &EnrollRequest) -> Result<EnrollResponse, EnrollError> {
    let code = normalize_code(&req.code).ok_or(EnrollError::MalformedCode)?;
    let key = match req.terminal_key.as_deref() {
        Some(k) if shared::wire::is_terminal_key(k) => Some(k),
        Some(_) => return Err(EnrollError::BadTerminalKey),
        None => None,
    };
    let id = Uuid::new_v4();
    let label = clean_label(req.label.as_deref(), id)?;
    let hash = sha256_hex(code.as_bytes());
    let now = state.now();
    let refused = |s: CodeState| match s {
        CodeState::Used => EnrollError::UsedCode,
        CodeState::Expired => EnrollError::ExpiredCode,
        _ => EnrollError::UnknownCode,
    };
    let found = state.store.enroll_code(&hash).await?;
    let school_code = match found.as_ref().map(|c| c.state(now)) {
        Some(CodeState::Valid { school_code }) => school_code,
        Some(CodeState::Used) => {
            let code_row = found.as_ref().expect("state of a found code");
            if let (Some(key), true) = (key, now < code_row.expires_at) {
                if let Some(again) = repeat(state, code_row, key).await? {
                    return Ok(again);
                }
            }
            return Err(EnrollError::UsedCode);
        }
        Some(other) => return Err(refused(other)),
        None => return Err(EnrollError::UnknownCode),
    };
    let school = state
        .store
        .school_by_code(school_code)
        .await?
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "enroll code names school {school_code}, which does not exist"
            ))
        })?;
    // The snapshot before the code is spent: if building it fails, the code still works.
    let snapshot = snapshot::build(state, &school, Some(id), 0).await?;
    let secret = key.map(str::to_owned).unwrap_or_else(generate_secret);
    let terminal = NewTerminal {
        id,
        label,
        secret_hash: sha256_hex(secret.as_bytes()),
    };
    if state
        .store
        .enroll_terminal(&hash, &terminal, now)
        .await?
        .is_none()
    {
        // Spent or expired between the look-up and now (a concurrent enrollment).
        let state_now = state.store.enroll_code(&hash).await?.map(|c| c.state(now));
        return Err(state_now.map(refused).unwrap_or(EnrollError::UnknownCode));
    }
    tracing::info!(terminal = %id, school = %school.bin, label = %terminal.label, "terminal enrolled");
    Ok(EnrollResponse {
        terminal_id: id,
        school_bin: school.bin.clone(),
        school_code: snapshot.school_code,
        school_name: school.name.clone(),
        secret,
        root_public_key: state.keys.root_public_b64(),
        snapshot,
    })
}

/// The answer to a repeated enrollment: the code's terminal, if `key` is its secret and it is
/// still in service.
async fn repeat(
    state: &AppState,
    code: &crate::store::terminals::EnrollCode,
    key: &str,
) -> Result<Option<EnrollResponse>, EnrollError> {
    let Some(terminal_id) = code.terminal_id.as_deref() else {
        return Ok(None);
    };
    let Some(terminal) = state
        .store
        .terminal_by_secret_hash(&sha256_hex(key.as_bytes()))
        .await?
    else {
        return Ok(None);
    };
    if terminal.id != terminal_id || terminal.revoked_at.is_some() {
        return Ok(None);
    }
    let school = state
        .store
        .school_by_code(terminal.school_code)
        .await?
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "terminal {terminal_id} names school {}, which does not exist",
                terminal.school_code
            ))
        })?;
    let snapshot = snapshot::build(state, &school, Some(terminal.uuid()), 0).await?;
    tracing::info!(terminal = %terminal.id, school = %school.bin, "enrollment repeated; same terminal");
    Ok(Some(EnrollResponse {
        terminal_id: terminal.uuid(),
        school_bin: school.bin.clone(),
        school_code: snapshot.school_code,
        school_name: school.name.clone(),
        secret: key.to_owned(),
        root_public_key: state.keys.root_public_b64(),
        snapshot,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let id = Uuid::new_v4();
        assert_eq!(
            clean_label(Some("  Столовая 1 "), id).unwrap(),
            "Столовая 1"
        );
        assert!(clean_label(None, id).unwrap().starts_with("terminal-"));
        assert!(clean_label(Some("   "), id)
            .unwrap()
            .starts_with("terminal-"));
        assert!(clean_label(Some("a\nb"), id).is_err());
        assert!(clean_label(Some(&"я".repeat(81)), id).is_err());
        assert!(clean_label(Some(&"я".repeat(80)), id).is_ok());
    }
}
