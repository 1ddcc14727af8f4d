//! Consent outcomes to follow up: pupils whose parents have no phone, refused, or never
//! answered — the school may reach them another way.

use super::layout::{school_href, Page};
use super::meals::csv_link;
use super::{PageError, SchoolPage};
use crate::review::texts::{consent_label, esc, local_datetime, tr};
use crate::state::AppState;
use crate::store::school_view::FOLLOW_UP_STATUSES;
use axum::extract::State;

pub async fn page(State(state): State<AppState>, page: SchoolPage) -> Result<Page, PageError> {
    let lang = page.req.lang;
    let t = |kk, ru| tr(lang, kk, ru);
    let status = page
        .req
        .query
        .follow_up_status()
        .map_err(|e| page.req.fail(e))?;
    let rows = state
        .store
        .consent_follow_ups(page.access.school.code, status)
        .await
        .map_err(|e| page.req.fail(e))?;
    let base = school_href(&page.access.school, "consent");
    let mut body = format!(
        "<p>{}</p><p><a href=\"{base}\"{}>{}</a>",
        t(
            "Келісім процесі ваучерсіз аяқталған оқушылар.",
            "Ученики, у которых процесс согласия завершился без ваучера."
        ),
        if status.is_none() {
            " class=\"on\""
        } else {
            ""
        },
        t("Барлығы", "Все")
    );
    for s in FOLLOW_UP_STATUSES {
        body.push_str(&format!(
            " · <a href=\"{base}?status={s}\">{}</a>",
            if status == Some(s) {
                format!("<b>{}</b>", esc(&consent_label(lang, s)))
            } else {
                esc(&consent_label(lang, s))
            }
        ));
    }
    body.push_str("</p>");
    if rows.is_empty() {
        body.push_str(&format!("<p class=\"ok\">{}</p>", t("Жоқ.", "Нет.")));
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Оқушы", "Ученик"),
            t("Сынып", "Класс"),
            t("Нәтиже", "Итог"),
            t("Уақыты", "Время")
        ));
        for r in &rows {
            let name = [
                Some(&r.last_name),
                Some(&r.first_name),
                r.middle_name.as_ref(),
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
                esc(&name),
                r.grade,
                esc(&r.class_letter),
                esc(&consent_label(lang, &r.status)),
                local_datetime(r.at)
            ));
        }
        body.push_str("</table>");
    }
    body.push_str(&csv_link(
        lang,
        &format!(
            "/api/v1/school/schools/{}/consent.csv?lang={}{}",
            page.access.school.bin,
            lang.as_str(),
            status
                .map(|s| format!("&amp;status={s}"))
                .unwrap_or_default()
        ),
    ));
    Ok(page.render(t("Келісім", "Согласия"), "consent", &body))
}
