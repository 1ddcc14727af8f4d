//! This school year's vouchers that came or left with their pupil, and the revoked ones with
//! their reasons (DESIGN §10).

use super::layout::Page;
use super::{PageError, SchoolPage};
use crate::api::school::vouchers::year_shown;
use crate::config::Lang;
use crate::review::texts::{esc, local_datetime, revoke_reason_label, tr};
use crate::state::AppState;
use crate::store::roster::full_name;
use crate::store::school_view::VoucherTransfer;
use axum::extract::State;

pub async fn page(State(state): State<AppState>, page: SchoolPage) -> Result<Page, PageError> {
    let lang = page.req.lang;
    let t = |kk, ru| tr(lang, kk, ru);
    let year = year_shown(&state.settings, page.today(&state));
    let changes = state
        .store
        .voucher_changes(page.access.school.code, &year.label())
        .await
        .map_err(|e| page.req.fail(e))?;
    let mut body = format!(
        "<p>{} {}.</p>",
        t("Оқу жылы", "Учебный год"),
        esc(&changes.school_year)
    );
    body.push_str(&format!(
        "<h2>{}</h2>",
        t("Басқа мектептен келген оқушылар", "Перешли из другой школы")
    ));
    transfers(
        &mut body,
        lang,
        &changes.transfers_in,
        t("Қай мектептен", "Из школы"),
    );
    body.push_str(&format!(
        "<h2>{}</h2>",
        t("Басқа мектепке кеткен оқушылар", "Перешли в другую школу")
    ));
    transfers(
        &mut body,
        lang,
        &changes.transfers_out,
        t("Қай мектепке", "В школу"),
    );
    body.push_str(&format!(
        "<h2>{}</h2>",
        t("Жойылған ваучерлер", "Отменённые ваучеры")
    ));
    if changes.revocations.is_empty() {
        body.push_str(&format!("<p class=\"ok\">{}</p>", t("Жоқ.", "Нет.")));
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Оқушы", "Ученик"),
            t("Сынып", "Класс"),
            t("Себебі", "Причина"),
            t("Уақыты", "Время")
        ));
        for r in &changes.revocations {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
                esc(&full_name(
                    &r.last_name,
                    &r.first_name,
                    r.middle_name.as_deref()
                )),
                r.grade,
                esc(&r.class_letter),
                esc(&revoke_reason_label(lang, &r.reason)),
                local_datetime(r.revoked_at)
            ));
        }
        body.push_str("</table>");
    }
    Ok(page.render(t("Ваучерлер", "Ваучеры"), "vouchers", &body))
}

/// A table of transfers, `other` heading the column of the school on the other side.
fn transfers(body: &mut String, lang: Lang, rows: &[VoucherTransfer], other: &str) {
    let t = |kk, ru| tr(lang, kk, ru);
    if rows.is_empty() {
        body.push_str(&format!("<p class=\"ok\">{}</p>", t("Жоқ.", "Нет.")));
        return;
    }
    body.push_str(&format!(
        "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        t("Оқушы", "Ученик"),
        t("Сынып", "Класс"),
        esc(other),
        t("Уақыты", "Время")
    ));
    for r in rows {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}{}</td><td>{} ({})</td><td>{}</td></tr>",
            esc(&full_name(
                &r.last_name,
                &r.first_name,
                r.middle_name.as_deref()
            )),
            r.grade,
            esc(&r.class_letter),
            esc(&r.other_school_name),
            esc(&r.other_school_bin),
            local_datetime(r.moved_at)
        ));
    }
    body.push_str("</table>");
}
