//! School staff: accounts and roles, passwords, sessions, and the one place that decides which
//! schools a session may see.

pub mod access;
pub mod accounts;
pub mod password;
pub mod session;

use crate::store::audit::AuditEntry;
use crate::store::staff::StaffAccount;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Staff of their own school(s).
    SchoolAdmin,
    /// A district education authority: reads its schools, manages nothing.
    Authority,
    /// Runs the server: every school.
    Operator,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::SchoolAdmin, Role::Authority, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::SchoolAdmin => "school_admin",
            Role::Authority => "authority",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }

    /// Creating enrollment codes and revoking terminals: the school's own staff and operators.
    pub fn manages_terminals(self) -> bool {
        matches!(self, Role::SchoolAdmin | Role::Operator)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("username {0:?} is not valid: use 3-64 characters a-z, 0-9, '.', '_' or '-'")]
    BadUsername(String),
    #[error("unknown role {0:?}: expected school_admin, authority or operator")]
    BadRole(String),
    #[error("role {0} needs at least one --school BIN")]
    NoSchools(&'static str),
    #[error("an operator sees every school; do not give --school")]
    OperatorWithSchools,
    #[error("{0:?} is not a valid BIN (12 digits with a check digit)")]
    BadBin(String),
    #[error("no school with BIN {0} in the roster; import the roster first")]
    UnknownSchool(String),
    // Not `#[from]`: that would make the reason the error's source too, and `{:#}` (how the
    // CLI prints errors) would then say it twice.
    #[error("weak password: {0}")]
    WeakPassword(password::WeakPassword),
    #[error("username {0:?} already exists")]
    Exists(String),
    #[error("no staff account {0:?}; `wallet-server staff list` shows them")]
    Unknown(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<password::WeakPassword> for StaffError {
    fn from(e: password::WeakPassword) -> Self {
        StaffError::WeakPassword(e)
    }
}

impl From<StoreError> for StaffError {
    fn from(e: StoreError) -> Self {
        StaffError::Store(e)
    }
}

/// Usernames are compared in lower case; they appear in logs and audit entries as given here.
pub fn normalize_username(raw: &str) -> Result<String, StaffError> {
    let u = raw.trim().to_lowercase();
    let ok = (3..=64).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(u)
    } else {
        Err(StaffError::BadUsername(raw.to_owned()))
    }
}

/// Creates a staff account after checking everything (nothing is written on any error), and
/// audits it under `actor`.
pub async fn add_staff(
    store: &dyn Store,
    username: &str,
    role: &str,
    school_bins: &[String],
    password: &str,
    actor: &str,
    now: i64,
) -> Result<StaffAccount, StaffError> {
    let username = normalize_username(username)?;
    let role = Role::parse(role).ok_or_else(|| StaffError::BadRole(role.to_owned()))?;
    match role {
        Role::Operator if !school_bins.is_empty() => return Err(StaffError::OperatorWithSchools),
        Role::SchoolAdmin | Role::Authority if school_bins.is_empty() => {
            return Err(StaffError::NoSchools(role.as_str()))
        }
        _ => {}
    }
    let mut codes = Vec::new();
    for raw in school_bins {
        let bin = shared::Bin::parse(raw).map_err(|_| StaffError::BadBin(raw.clone()))?;
        let school = store
            .school_by_bin(bin.as_str())
            .await?
            .ok_or_else(|| StaffError::UnknownSchool(bin.to_string()))?;
        codes.push(school.code);
    }
    password::check_strength(&username, password)?;
    if store.staff_by_username(&username).await?.is_some() {
        return Err(StaffError::Exists(username));
    }
    let pw = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .expect("hashing does not panic");
    let account = match store
        .create_staff(&username, &hash, role.as_str(), &codes, now)
        .await
    {
        Err(StoreError::Conflict(_)) => return Err(StaffError::Exists(username)),
        other => other?,
    };
    store
        .audit(&AuditEntry {
            at: now,
            actor: actor.to_owned(),
            action: "staff.add".into(),
            subject: Some(username),
            detail: Some(format!(
                "role={} schools={}",
                role.as_str(),
                school_bins.join(",")
            )),
        })
        .await?;
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(normalize_username(" Aigerim.S ").unwrap(), "aigerim.s");
        for bad in ["ab", "айгерим", "a b c", "x;drop", &"a".repeat(65)] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
        assert!(!Role::Authority.manages_terminals());
    }
}
