//! Consent outcomes to follow up: pupils whose parents have no phone, refused, or never
//! answered — the school may reach them another way, and record beside each pupil of this
//! school year a consent given in person on a paper form (DESIGN §11): the voucher is issued
//! at once and served by card or staff look-up.

use super::layout::{school_href, Page};
use super::meals::csv_link;
use super::{PageError, SchoolPage};
use crate::api::school::consents::require_school_staff;
use crate::config::Lang;
use crate::consent::school::{self, ConsentForm, Recorded, MAX_DOCUMENT, MAX_NAME};
use crate::error::AppError;
use crate::review::texts::{consent_label, esc, local_datetime, tr};
use crate::state::AppState;
use crate::store::school_view::{ConsentFollowUp, FOLLOW_UP_STATUSES};
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Form;

pub async fn page(State(state): State<AppState>, page: SchoolPage) -> Result<Page, PageError> {
    render(&state, &page, None).await
}

/// `POST /school/s/{bin}/consent/record`: the form beside a pupil; answers with the page.
pub async fn record(
    State(state): State<AppState>,
    page: SchoolPage,
    form: Result<Form<ConsentForm>, FormRejection>,
) -> Result<Page, PageError> {
    require_school_staff(&page.access).map_err(|e| page.req.fail(e))?;
    let Form(form) = form.map_err(|e| page.req.fail(AppError::BadRequest(e.body_text())))?;
    let done = school::record(
        state.store.as_ref(),
        &state.settings,
        &page.access.school,
        &page.access.staff.account.username,
        &form,
        state.now(),
    )
    .await
    .map_err(|e| page.req.fail(e))?;
    let mut out = render(&state, &page, Some(&done)).await?;
    out.status = StatusCode::CREATED;
    Ok(out)
}

/// The paper form's fields for one pupil, labelled for screen readers by their `<label>`.
fn record_form(lang: Lang, base: &str, r: &ConsentFollowUp) -> String {
    let t = |kk, ru| tr(lang, kk, ru);
    let id = esc(&r.pupil_iin);
    let field = |name: &str, label: &str, extra: &str| {
        format!(
            "<label for=\"{name}-{id}\">{label}</label> <input id=\"{name}-{id}\" name=\"{name}\" required{extra}> "
        )
    };
    format!(
        "<details><summary>{}</summary><form method=\"post\" action=\"{base}/record\"><input type=\"hidden\" name=\"pupil_iin\" value=\"{id}\">{}         <label for=\"relation-{id}\">{}</label> <select id=\"relation-{id}\" name=\"relation\" required><option value=\"mother\">{}</option><option value=\"father\">{}</option><option value=\"guardian\">{}</option></select> {}{}<button>{}</button></form></details>",
        t(
            "Мектепте берілген келісімді тіркеу",
            "Записать согласие, данное в школе"
        ),
        field(
            "signer_name",
            t("Қол қойған (аты-жөні)", "Кто подписал (ФИО)"),
            &format!(" maxlength=\"{MAX_NAME}\"")
        ),
        t("Кім болып келеді", "Кем приходится"),
        t("Анасы", "Мать"),
        t("Әкесі", "Отец"),
        t("Заңды өкілі", "Законный представитель"),
        field(
            "document_number",
            t("Құжат нөмірі", "Номер документа"),
            &format!(" maxlength=\"{MAX_DOCUMENT}\"")
        ),
        field(
            "signed_on",
            t("Қол қойылған күні", "Дата подписи"),
            " type=\"date\""
        ),
        t("Тіркеу және ваучер беру", "Записать и выдать ваучер")
    )
}

async fn render(
    state: &AppState,
    page: &SchoolPage,
    done: Option<&Recorded>,
) -> Result<Page, PageError> {
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
    // The form goes beside pupils of the year in force, for the school's own staff.
    let year = state.settings.year_at(state.now()).map(|y| y.label());
    let records = require_school_staff(&page.access).is_ok();
    let mut body = String::new();
    if let Some(d) = done {
        body.push_str(&format!(
            "<p class=\"ok\" role=\"status\">{} {} ({}). {}</p>",
            t(
                "Келісім тіркелді, ваучер берілді:",
                "Согласие записано, ваучер выдан:"
            ),
            esc(&d.voucher_id),
            esc(&d.school_year),
            t(
                "Оқушыға карта немесе тізім бойынша тамақ беріледі.",
                "Ученика кормят по карте или по списку."
            )
        ));
    }
    body.push_str(&format!(
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
    ));
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
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Оқушы", "Ученик"),
            t("Сынып", "Класс"),
            t("Нәтиже", "Итог"),
            t("Уақыты", "Время"),
            t("Әрекет", "Действие")
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
            let action = if records && year.as_deref() == Some(r.school_year.as_str()) {
                record_form(lang, &base, r)
            } else {
                String::new()
            };
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
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
