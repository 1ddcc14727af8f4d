//! The day's local summary for canteen staff.

use crate::outcome::local_datetime;
use crate::store;
use crate::terminal::{Status, Terminal, TerminalError};
use chrono::NaiveDate;
use serde::Serialize;
use shared::calendar::MealKind;
use shared::verdict::Verdict;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub service_day: NaiveDate,
    pub served: Vec<(MealKind, i64)>,
    pub served_total: i64,
    pub rejected: Vec<(Verdict, i64)>,
    pub rejected_total: i64,
    /// Of the rejections, those over the per-minute cap (kept only as counts).
    pub rejected_capped: i64,
    pub status: Status,
}

impl Terminal {
    pub async fn report(&self, day: Option<NaiveDate>) -> Result<Report, TerminalError> {
        let status = self.status().await?;
        let day = day.unwrap_or(status.service_day);
        let counts = store::day_counts(&self.pool, day).await?;
        let rejected: Vec<_> = counts
            .by_verdict
            .into_iter()
            .filter(|(v, _)| *v != Verdict::Ok)
            .collect();
        Ok(Report {
            service_day: day,
            served_total: counts.served.iter().map(|(_, n)| n).sum(),
            served: counts.served,
            rejected_total: rejected.iter().map(|(_, n)| n).sum(),
            rejected_capped: counts.capped,
            rejected,
            status,
        })
    }
}

impl Report {
    pub fn text(&self) -> String {
        let mut s = String::new();
        let st = &self.status;
        let _ = writeln!(
            s,
            "{} ({}) — {} / {}",
            st.school_name,
            st.school_bin,
            st.label.as_deref().unwrap_or("-"),
            self.service_day
        );
        let _ = writeln!(s, "Берілді / Выдано: {}", self.served_total);
        for (kind, n) in &self.served {
            let _ = writeln!(s, "  {kind}: {n}");
        }
        let _ = writeln!(s, "Бас тартылды / Отказано: {}", self.rejected_total);
        for (verdict, n) in &self.rejected {
            let _ = writeln!(s, "  {verdict}: {n}");
        }
        if self.rejected_capped > 0 {
            let _ = writeln!(
                s,
                "  минуттық шектен тыс / сверх лимита в минуту: {}",
                self.rejected_capped
            );
        }
        let _ = writeln!(
            s,
            "Жіберілмеген оқиғалар / Неотправленные события: {}",
            st.unsynced_events
        );
        let _ = writeln!(
            s,
            "Соңғы синхрондау / Последняя синхронизация: {}",
            st.last_sync_at
                .map(local_datetime)
                .unwrap_or_else(|| "—".to_owned())
        );
        for w in &st.warnings {
            let _ = writeln!(s, "! {} / {}", w.message_kk, w.message_ru);
        }
        s
    }
}
