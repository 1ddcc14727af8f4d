//! Who sees which school — decided here and nowhere else.
//!
//! A session becomes a [`Scope`] (the school codes its account may see) in [`scope_for`];
//! every school page and endpoint turns the school in its URL into a [`School`] through
//! [`school_in_scope`], which answers "not found" alike for a school that does not exist and for
//! one outside the scope, so a tampered URL learns nothing.

use super::Role;
use crate::error::{AppError, AppResult};
use crate::store::roster::School;
use crate::store::staff::StaffAccount;
use crate::store::{Store, StoreResult};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Operators: every school.
    All,
    /// School admins and authorities: the schools given when the account was created.
    Schools(BTreeSet<i64>),
}

impl Scope {
    pub fn allows(&self, school_code: i64) -> bool {
        match self {
            Scope::All => true,
            Scope::Schools(codes) => codes.contains(&school_code),
        }
    }
}

/// The schools an account may see.
pub async fn scope_for(store: &dyn Store, account: &StaffAccount) -> StoreResult<Scope> {
    match Role::parse(&account.role) {
        Some(Role::Operator) => Ok(Scope::All),
        Some(Role::SchoolAdmin | Role::Authority) => Ok(Scope::Schools(
            store
                .staff_school_codes(account.id)
                .await?
                .into_iter()
                .collect(),
        )),
        // A role this build does not know sees nothing.
        None => Ok(Scope::Schools(BTreeSet::new())),
    }
}

/// The school named by `bin` if the scope includes it; otherwise 404.
pub async fn school_in_scope(store: &dyn Store, scope: &Scope, bin: &str) -> AppResult<School> {
    let not_found = || AppError::NotFound(format!("no school {bin} among your schools"));
    if bin.len() != 12 || !bin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_found());
    }
    match store.school_by_bin(bin).await? {
        Some(school) if scope.allows(school.code) => Ok(school),
        _ => Err(not_found()),
    }
}

/// The schools in scope, optionally narrowed by a search on BIN or name, by code.
pub async fn schools_in_scope(
    store: &dyn Store,
    scope: &Scope,
    search: Option<&str>,
    limit: usize,
) -> StoreResult<Vec<School>> {
    let needle = search
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    Ok(store
        .schools()
        .await?
        .into_iter()
        .filter(|s| scope.allows(s.code))
        .filter(|s| match &needle {
            Some(n) => s.bin.contains(n.as_str()) || s.name.to_lowercase().contains(n.as_str()),
            None => true,
        })
        .take(limit)
        .collect())
}

/// The school named by the `{bin}` of the URL, for a signed-in staff member whose scope
/// includes it. Every per-school route extracts this, so the check cannot be forgotten.
#[derive(Debug, Clone)]
pub struct SchoolAccess {
    pub staff: super::session::Staff,
    pub school: School,
}

impl axum::extract::FromRequestParts<crate::state::AppState> for SchoolAccess {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, AppError> {
        let staff = super::session::Staff::from_parts(parts, state).await?;
        let axum::extract::Path(params) = axum::extract::Path::<
            std::collections::HashMap<String, String>,
        >::from_request_parts(parts, state)
        .await
        .map_err(|_| AppError::NotFound("no such school".into()))?;
        let bin = params
            .get("bin")
            .ok_or_else(|| AppError::NotFound("no such school".into()))?;
        let school = school_in_scope(state.store.as_ref(), &staff.scope, bin).await?;
        Ok(SchoolAccess { staff, school })
    }
}
