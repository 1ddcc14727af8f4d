//! `/school/voucher-states`: the authority's view of its schools' vouchers by school year and
//! lifecycle state, and of the pupils retention erased.

use super::layout::{layout, Page};
use super::{PageError, StaffPage};
use crate::review::states::{self, reason_label};
use crate::review::texts::{esc, tr};
use crate::state::AppState;
use axum::extract::State;

pub async fn page(State(state): State<AppState>, page: StaffPage) -> Result<Page, PageError> {
    let lang = page.req.lang;
    let t = |kk, ru| tr(lang, kk, ru);
    let view = states::for_scope(state.store.as_ref(), &page.staff.scope)
        .await
        .map_err(|e| page.req.fail(e))?;
    let mut body = format!(
        "<p>{}</p>",
        t(
            "Сіз көре алатын мектептердің ваучерлері, оқу жылы мен күйі бойынша.",
            "Ваучеры школ, которые вам доступны, по учебному году и состоянию."
        )
    );
    if view.years.is_empty() {
        body.push_str(&format!("<p>{}</p>", t("Ваучерлер жоқ.", "Ваучеров нет.")));
    } else {
        let reasons: Vec<String> = view.years[0].revoked.keys().cloned().collect();
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th>",
            t("Оқу жылы", "Учебный год"),
            t("Берілді", "Выдан"),
            t("Белсенді", "Активен"),
        ));
        for r in &reasons {
            body.push_str(&format!(
                "<th>{}: {}</th>",
                t("Кері қайтарылды", "Отозван"),
                esc(&reason_label(lang, r))
            ));
        }
        body.push_str(&format!(
            "<th>{}</th><th>{}</th></tr>",
            t("Мерзімі өтті", "Истёк"),
            t("Барлығы", "Всего")
        ));
        for y in &view.years {
            body.push_str(&format!(
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
                esc(&y.school_year),
                y.issued,
                y.active
            ));
            for r in &reasons {
                body.push_str(&format!(
                    "<td class=\"n\">{}</td>",
                    y.revoked.get(r).copied().unwrap_or(0)
                ));
            }
            body.push_str(&format!(
                "<td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                y.expired, y.total
            ));
        }
        body.push_str("</table>");
    }
    body.push_str(&format!(
        "<p>{}: <b>{}</b></p>",
        t(
            "Сақтау мерзімі өткен соң жеке деректері өшірілген оқушылар",
            "Учащихся, чьи персональные данные удалены по истечении срока хранения"
        ),
        view.pupils_erased
    ));
    Ok(Page::ok(layout(
        &page.req.ctx(Some(&page.staff)),
        t("Ваучерлер күйі бойынша", "Ваучеры по состояниям"),
        None,
        &body,
    )))
}
