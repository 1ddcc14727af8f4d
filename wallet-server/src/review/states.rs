//! Vouchers by school year and lifecycle state, and pupils erased by retention, over the schools
//! a staff member may see: the authority's view (page `/school/voucher-states`, API
//! `GET /api/v1/school/voucher-states`).

use crate::config::Lang;
use crate::lifecycle::RevokeReason;
use crate::review::texts::tr;
use crate::staff::access::Scope;
use crate::store::{Store, StoreResult};
use serde::Serialize;
use std::collections::BTreeMap;

/// One school year's vouchers by state; `revoked` by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct YearStates {
    pub school_year: String,
    pub issued: i64,
    pub active: i64,
    pub revoked: BTreeMap<String, i64>,
    pub revoked_total: i64,
    pub expired: i64,
    pub total: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatesView {
    /// Oldest school year first.
    pub years: Vec<YearStates>,
    pub pupils_erased: i64,
}

/// The counts of the schools in `scope`.
pub async fn for_scope(store: &dyn Store, scope: &Scope) -> StoreResult<StatesView> {
    let codes: Option<Vec<i64>> = match scope {
        Scope::All => None,
        Scope::Schools(codes) => Some(codes.iter().copied().collect()),
    };
    let rows = store.voucher_state_counts(codes.as_deref()).await?;
    let mut years: BTreeMap<String, YearStates> = BTreeMap::new();
    for r in rows {
        let y = years
            .entry(r.school_year.clone())
            .or_insert_with(|| YearStates {
                school_year: r.school_year.clone(),
                revoked: RevokeReason::ALL
                    .iter()
                    .map(|r| (r.as_str().to_owned(), 0))
                    .collect(),
                ..YearStates::default()
            });
        y.total += r.vouchers;
        match r.status.as_str() {
            "issued" => y.issued += r.vouchers,
            "active" => y.active += r.vouchers,
            "expired" => y.expired += r.vouchers,
            _ => {
                y.revoked_total += r.vouchers;
                let reason = r.reason.unwrap_or_else(|| "operator".to_owned());
                *y.revoked.entry(reason).or_insert(0) += r.vouchers;
            }
        }
    }
    Ok(StatesView {
        years: years.into_values().collect(),
        pupils_erased: store.erased_pupil_count(codes.as_deref()).await?,
    })
}

/// A revocation reason for people, in Kazakh or Russian.
pub fn reason_label(lang: Lang, reason: &str) -> String {
    match reason {
        "not_eligible" => tr(lang, "Құқығы жоқ (санат)", "Нет права (категория)"),
        "removed" => tr(lang, "Тізімнен шықты", "Выбыл из списка"),
        "withdrawn" => tr(lang, "Келісім қайтарылды", "Согласие отозвано"),
        "operator" => tr(lang, "Оператор шешімі", "Решение оператора"),
        other => return other.to_owned(),
    }
    .to_owned()
}
