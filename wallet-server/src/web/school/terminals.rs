//! Terminals: last sync, clock offset, enrollment codes (created here, shown once) and
//! revocation.

use super::layout::{school_href, Page};
use super::{PageError, SchoolPage};
use crate::api::school::terminals::require_manager;
use crate::review::terminals as actions;
use crate::review::texts::{esc, local_datetime, tr};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

/// The terminal warns past this clock offset (DESIGN §5); so does the page.
const CLOCK_WARN_SECONDS: i64 = 120;
/// A terminal not heard from for a day is worth a look.
const STALE_SYNC_SECONDS: i64 = 24 * 3600;

async fn render(
    state: &AppState,
    page: &SchoolPage,
    new_code: Option<(String, i64)>,
) -> Result<Page, PageError> {
    let lang = page.req.lang;
    let t = |kk, ru| tr(lang, kk, ru);
    let now = state.now();
    let store = state.store.as_ref();
    let terminals = store
        .school_terminals(page.access.school.code)
        .await
        .map_err(|e| page.req.fail(e))?;
    let codes = store
        .school_enroll_codes(page.access.school.code, now)
        .await
        .map_err(|e| page.req.fail(e))?;
    let manages = page.access.staff.role.manages_terminals();
    let base = school_href(&page.access.school, "terminals");
    let mut body = String::new();
    if let Some((code, expires_at)) = &new_code {
        body.push_str(&format!(
            "<p>{}</p><p class=\"code\">{}</p><p>{} {}. {}</p>",
            t("Жаңа тіркеу коды:", "Новый код регистрации:"),
            esc(code),
            t("Жарамды мерзімі:", "Действует до:"),
            local_datetime(*expires_at),
            t(
                "Код бір рет көрсетіледі және бір рет қолданылады: canteen-terminal enroll --code КОД",
                "Код показывается один раз и действует один раз: canteen-terminal enroll --code КОД"
            )
        ));
    }
    if terminals.is_empty() {
        body.push_str(&format!(
            "<p>{}</p>",
            t("Терминалдар тіркелмеген.", "Терминалы не зарегистрированы.")
        ));
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr>",
            t("Атауы", "Название"),
            t("Тіркелген", "Зарегистрирован"),
            t("Соңғы синхрондау", "Последняя синхронизация"),
            t("Сағат ауытқуы, с", "Отклонение часов, с"),
            t("Күйі", "Статус")
        ));
        for term in &terminals {
            let stale = term
                .last_sync_at
                .is_none_or(|s| now - s > STALE_SYNC_SECONDS);
            let clock_off = term
                .clock_offset
                .is_some_and(|o| o.abs() > CLOCK_WARN_SECONDS);
            let status = if term.revoked_at.is_some() {
                format!(
                    "<span class=\"warn\">{} {}</span>",
                    t("Бұғатталған", "Отозван"),
                    term.revoked_at.map(local_datetime).unwrap_or_default()
                )
            } else if term.upgrade_required_at.is_some() {
                format!(
                    "<span class=\"warn\">{}</span>",
                    t(
                        "Жаңарту керек: бұл нұсқа QR-дәлелсіз жібереді, тамақ терминалда күтеді",
                        "Нужно обновить: эта версия отправляет без подтверждения QR, питание ждёт на терминале"
                    )
                )
            } else {
                format!("<span class=\"ok\">{}</span>", t("Белсенді", "Активен"))
            };
            let action = if manages && term.revoked_at.is_none() {
                format!(
                    "<form method=\"post\" action=\"{base}/{}/revoke\"><button>{}</button></form>",
                    esc(&term.id),
                    t("Бұғаттау", "Отозвать")
                )
            } else {
                String::new()
            };
            body.push_str(&format!(
                "<tr><td>{}<br><small>{} · {}</small></td><td>{}</td><td{}>{}</td><td class=\"n{}\">{}</td><td>{status}</td><td>{action}</td></tr>",
                esc(&term.label),
                esc(&term.id),
                esc(term.version.as_deref().unwrap_or("v?")),
                local_datetime(term.enrolled_at),
                if stale { " class=\"warn\"" } else { "" },
                term.last_sync_at.map(local_datetime).unwrap_or_else(|| "—".into()),
                if clock_off { " warn" } else { "" },
                term.clock_offset.map(|o| o.to_string()).unwrap_or_else(|| "—".into()),
            ));
        }
        body.push_str("</table>");
    }
    body.push_str(&format!(
        "<h2>{}</h2>",
        t("Тіркеу кодтары", "Коды регистрации")
    ));
    if manages {
        body.push_str(&format!(
            "<form method=\"post\" action=\"{base}/enroll-code\"><button>{}</button></form>",
            t(
                "Жаңа код жасау (24 сағат, бір рет)",
                "Создать код (24 часа, одноразовый)"
            )
        ));
    }
    if !codes.is_empty() {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Жасалды", "Создан"),
            t("Кім", "Кем"),
            t("Мерзімі", "Действует до"),
            t("Қолданылды", "Использован")
        ));
        for c in &codes {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                local_datetime(c.created_at),
                esc(&c.created_by),
                local_datetime(c.expires_at),
                c.used_at.map(local_datetime).unwrap_or_else(|| "—".into())
            ));
        }
        body.push_str("</table>");
    }
    Ok(page.render(t("Терминалдар", "Терминалы"), "terminals", &body))
}

pub async fn page(State(state): State<AppState>, page: SchoolPage) -> Result<Page, PageError> {
    render(&state, &page, None).await
}

pub async fn create_code(
    State(state): State<AppState>,
    page: SchoolPage,
) -> Result<Page, PageError> {
    require_manager(&page.access).map_err(|e| page.req.fail(e))?;
    let created = actions::create_enroll_code(
        state.store.as_ref(),
        &page.access.school,
        &page.access.staff.account.username,
        state.now(),
    )
    .await
    .map_err(|e| page.req.fail(e))?;
    let mut out = render(&state, &page, Some(created)).await?;
    out.status = StatusCode::CREATED;
    Ok(out)
}

pub async fn revoke(
    State(state): State<AppState>,
    page: SchoolPage,
    Path((_, terminal_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    require_manager(&page.access).map_err(|e| page.req.fail(e))?;
    actions::revoke_terminal(
        state.store.as_ref(),
        &page.access.school,
        &terminal_id,
        &page.access.staff.account.username,
        state.now(),
    )
    .await
    .map_err(|e| page.req.fail(e))?;
    Ok(Redirect::to(&school_href(&page.access.school, "terminals")).into_response())
}
