//! The school's NOBD reports: each revision with its delivery state.

use super::layout::Page;
use super::{PageError, SchoolPage};
use crate::api::school::reports::REPORT_LIST_LIMIT;
use crate::review::texts::{esc, local_datetime, tr};
use crate::state::AppState;
use axum::extract::State;

pub async fn page(State(state): State<AppState>, page: SchoolPage) -> Result<Page, PageError> {
    let lang = page.req.lang;
    let t = |kk, ru| tr(lang, kk, ru);
    let rows = state
        .store
        .nobd_school_reports(page.access.school.code, REPORT_LIST_LIMIT)
        .await
        .map_err(|e| page.req.fail(e))?;
    let mut body = format!(
        "<p>{}</p>",
        t(
            "Әр оқу күнінің есебі келесі түнде жасалады; кешіккен деректер жаңа нұсқа береді.",
            "Отчёт за каждый учебный день строится следующей ночью; поздние данные дают новую ревизию."
        )
    );
    if rows.is_empty() {
        body.push_str(&format!(
            "<p>{}</p>",
            t("Есептер әлі жоқ.", "Отчётов пока нет.")
        ));
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Күні", "Дата"),
            t("Нұсқа", "Ревизия"),
            t("Жасалды", "Построен"),
            t("Жеткізілді", "Доставлен"),
            t("Есеп", "Отчёт")
        ));
        for r in &rows {
            let delivered = match (r.delivered_at, &r.last_error) {
                (Some(at), _) => format!("<span class=\"ok\">{}</span>", local_datetime(at)),
                (None, Some(err)) => format!(
                    "<span class=\"warn\">{} ({}: {})</span>",
                    t("Күтуде", "Ожидает"),
                    r.attempts.unwrap_or(0),
                    esc(err)
                ),
                (None, None) => t("Күтуде", "Ожидает").to_owned(),
            };
            body.push_str(&format!(
                "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{delivered}</td>\
                 <td><a href=\"/api/v1/school/schools/{}/reports/{}\">JSON</a></td></tr>",
                esc(&r.service_day),
                r.revision,
                local_datetime(r.built_at),
                esc(&page.access.school.bin),
                esc(&r.report_id)
            ));
        }
        body.push_str("</table>");
    }
    Ok(page.render(t("ҰБДҚ есептері", "Отчёты НОБД"), "reports", &body))
}
