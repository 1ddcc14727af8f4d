//! Looking after existing staff accounts: list, disable, enable, reset a password. Each change
//! is checked first (nothing written on an error) and audited under the acting user.

use super::{normalize_username, password, StaffError};
use crate::store::audit::AuditEntry;
use crate::store::staff::StaffAccount;
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaffListing {
    pub username: String,
    pub role: String,
    /// BINs of the schools the account sees (none for operators).
    pub schools: Vec<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

pub async fn list(store: &dyn Store) -> Result<Vec<StaffListing>, StaffError> {
    let bins: std::collections::HashMap<i64, String> = store
        .schools()
        .await?
        .into_iter()
        .map(|s| (s.code, s.bin))
        .collect();
    let mut out = Vec::new();
    for a in store.list_staff().await? {
        let mut schools: Vec<String> = store
            .staff_school_codes(a.id)
            .await?
            .into_iter()
            .map(|c| bins.get(&c).cloned().unwrap_or_else(|| c.to_string()))
            .collect();
        schools.sort();
        out.push(StaffListing {
            username: a.username,
            role: a.role,
            schools,
            created_at: a.created_at,
            disabled_at: a.disabled_at,
        });
    }
    Ok(out)
}

async fn account(store: &dyn Store, username: &str) -> Result<StaffAccount, StaffError> {
    let username = normalize_username(username)?;
    store
        .staff_by_username(&username)
        .await?
        .ok_or(StaffError::Unknown(username))
}

async fn audit(
    store: &dyn Store,
    actor: &str,
    action: &str,
    username: &str,
    detail: Option<String>,
    now: i64,
) -> Result<(), StaffError> {
    store
        .audit(&AuditEntry {
            at: now,
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject: Some(username.to_owned()),
            detail,
        })
        .await?;
    Ok(())
}

/// What a change did, for the command's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    /// The account was already in the asked state; nothing was written.
    pub unchanged: bool,
    pub sessions_ended: u64,
}

/// Stops the account signing in and ends its open sessions at once.
pub async fn disable(
    store: &dyn Store,
    username: &str,
    actor: &str,
    now: i64,
) -> Result<Changed, StaffError> {
    let a = account(store, username).await?;
    if a.disabled_at.is_some() {
        return Ok(Changed {
            unchanged: true,
            sessions_ended: 0,
        });
    }
    let ended = store.set_staff_disabled(a.id, Some(now)).await?;
    audit(
        store,
        actor,
        "staff.disable",
        &a.username,
        Some(format!("sessions_ended={ended}")),
        now,
    )
    .await?;
    Ok(Changed {
        unchanged: false,
        sessions_ended: ended,
    })
}

pub async fn enable(
    store: &dyn Store,
    username: &str,
    actor: &str,
    now: i64,
) -> Result<Changed, StaffError> {
    let a = account(store, username).await?;
    if a.disabled_at.is_none() {
        return Ok(Changed {
            unchanged: true,
            sessions_ended: 0,
        });
    }
    store.set_staff_disabled(a.id, None).await?;
    audit(store, actor, "staff.enable", &a.username, None, now).await?;
    Ok(Changed {
        unchanged: false,
        sessions_ended: 0,
    })
}

/// Sets a new password (same strength rules as a new account) and ends every open session.
pub async fn reset_password(
    store: &dyn Store,
    username: &str,
    new_password: &str,
    actor: &str,
    now: i64,
) -> Result<Changed, StaffError> {
    let a = account(store, username).await?;
    password::check_strength(&a.username, new_password)?;
    let pw = new_password.to_owned();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .expect("hashing does not panic");
    let ended = store.set_staff_password(a.id, &hash).await?;
    // The password itself is never part of the audit entry.
    audit(
        store,
        actor,
        "staff.reset_password",
        &a.username,
        Some(format!("sessions_ended={ended}")),
        now,
    )
    .await?;
    Ok(Changed {
        unchanged: false,
        sessions_ended: ended,
    })
}
