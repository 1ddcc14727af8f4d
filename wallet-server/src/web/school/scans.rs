//! Duplicates (one meal scanned as `ok` at two terminals) and rejected scans; vouchers refused
//! as `already_served` more than once are highlighted.

use super::layout::Page;
use super::meals::{csv_link, filter_form, filter_query};
use super::{PageError, SchoolPage};
use crate::api::school::meals::REPEATED_ALREADY_SERVED;
use crate::review::export::ROW_LIMIT;
use crate::review::texts::{
    class_name, esc, local_clock, local_datetime, meal_kind_label, pupil_name, tr, verdict_label,
};
use crate::state::AppState;
use axum::extract::State;

/// Rows shown per table on the page (exports have all).
const PAGE_ROWS: usize = 500;

pub async fn page(State(state): State<AppState>, page: SchoolPage) -> Result<Page, PageError> {
    let lang = page.req.lang;
    let t = |kk, ru| tr(lang, kk, ru);
    let f = page
        .req
        .query
        .filter(page.access.school.code, page.today(&state))
        .map_err(|e| page.req.fail(e))?;
    let store = state.store.as_ref();
    let fail = |e| page.req.fail(e);
    let verdicts = store.verdict_counts(&f).await.map_err(fail)?;
    let repeated = store
        .repeated_already_served(&f, REPEATED_ALREADY_SERVED)
        .await
        .map_err(fail)?;
    let duplicates = store.duplicate_scans(&f, ROW_LIMIT).await.map_err(fail)?;
    let rejected = store.rejected_scans(&f, ROW_LIMIT).await.map_err(fail)?;
    let bin = &page.access.school.bin;

    let mut body = filter_form(lang, &f, true, None);
    body.push_str(&format!(
        "<h2>{}</h2>",
        t("Нәтижелер", "Результаты сканирования")
    ));
    body.push_str(&format!(
        "<table><tr><th>{}</th><th>{}</th></tr>",
        t("Нәтиже", "Результат"),
        t("Саны", "Количество")
    ));
    for v in &verdicts {
        body.push_str(&format!(
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(&verdict_label(lang, &v.verdict)),
            v.scans
        ));
    }
    body.push_str("</table>");

    body.push_str(&format!(
        "<h2>{}</h2><p>{}</p>",
        t("Назар аударыңыз: қайта әкелінген ваучерлер", "Обратите внимание: повторные попытки"),
        t(
            "«Бүгін тамақ алған» деп бірнеше рет бас тартылған ваучерлер: QR-кодты басқа бала қолданған болуы мүмкін.",
            "Ваучеры, несколько раз отклонённые как «уже питался»: QR-код мог использовать другой ребёнок."
        )
    ));
    if repeated.is_empty() {
        body.push_str(&format!("<p class=\"ok\">{}</p>", t("Жоқ.", "Нет.")));
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Оқушы", "Ученик"),
            t("Сынып", "Класс"),
            t("Бас тарту", "Отказов"),
            t("Күндер", "Дней"),
            t("Соңғысы", "Последний")
        ));
        for r in &repeated {
            body.push_str(&format!(
                "<tr class=\"warn\"><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&pupil_name(r.last_name.as_deref(), r.first_name.as_deref())),
                esc(&class_name(r.grade, r.class_letter.as_deref())),
                r.scans,
                r.days,
                local_datetime(r.last_at)
            ));
        }
        body.push_str("</table>");
    }

    body.push_str(&format!(
        "<h2>{}</h2><p>{}</p>",
        t("Қайталанған тамақ", "Дубликаты"),
        t(
            "Бір тамақ екі терминалда берілген (байланыссыз жұмыс). Есепте бір рет саналады.",
            "Один приём пищи выдан на двух терминалах (работа без связи). В отчёте учтён один раз."
        )
    ));
    if duplicates.is_empty() {
        body.push_str(&format!("<p class=\"ok\">{}</p>", t("Жоқ.", "Нет.")));
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Күні", "Дата"),
            t("Уақыты", "Время"),
            t("Тамақ түрі", "Приём пищи"),
            t("Оқушы", "Ученик"),
            t("Сынып", "Класс"),
            t("Терминал", "Терминал"),
            t("Есепке алынды", "Учтено")
        ));
        for r in duplicates.iter().take(PAGE_ROWS) {
            body.push_str(&format!(
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if r.counted { "" } else { " class=\"warn\"" },
                esc(&r.service_day),
                local_clock(r.scanned_at),
                esc(&meal_kind_label(lang, &r.meal_kind)),
                esc(&pupil_name(r.last_name.as_deref(), r.first_name.as_deref())),
                esc(&class_name(r.grade, r.class_letter.as_deref())),
                esc(r.terminal_label.as_deref().unwrap_or("—")),
                if r.counted { t("иә", "да") } else { t("жоқ", "нет") }
            ));
        }
        body.push_str("</table>");
    }
    body.push_str(&csv_link(
        lang,
        &format!(
            "/api/v1/school/schools/{bin}/scans.csv?{}",
            filter_query(lang, &f, &[("kind", "duplicates")])
        ),
    ));

    body.push_str(&format!(
        "<h2>{}</h2>",
        t("Бас тартылған сканерлеу", "Отклонённые сканирования")
    ));
    if rejected.is_empty() {
        body.push_str(&format!("<p class=\"ok\">{}</p>", t("Жоқ.", "Нет.")));
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Күні", "Дата"),
            t("Уақыты", "Время"),
            t("Нәтиже", "Результат"),
            t("Оқушы", "Ученик"),
            t("Сынып", "Класс"),
            t("Терминал", "Терминал")
        ));
        for r in rejected.iter().take(PAGE_ROWS) {
            let repeated =
                r.verdict == "already_served" && r.already_served_count >= REPEATED_ALREADY_SERVED;
            // One row may stand for many scans: the same input repeated within a second, or
            // every rejection of its kind over the terminal's per-minute cap.
            let times = match (r.count, r.capped) {
                (n, true) => format!(
                    " — {n} {}",
                    t("(минуттық шектен тыс)", "(сверх лимита в минуту)")
                ),
                (1, false) => String::new(),
                (n, false) => format!(" — {n} {}", t("рет", "раз")),
            };
            body.push_str(&format!(
                "<tr{}><td>{}</td><td>{}</td><td>{}{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if repeated || r.capped {
                    " class=\"warn\""
                } else {
                    ""
                },
                esc(&r.service_day),
                local_clock(r.scanned_at),
                esc(&verdict_label(lang, &r.verdict)),
                if repeated {
                    format!(" (×{})", r.already_served_count)
                } else {
                    String::new()
                },
                times,
                esc(&pupil_name(r.last_name.as_deref(), r.first_name.as_deref())),
                esc(&class_name(r.grade, r.class_letter.as_deref())),
                esc(r.terminal_label.as_deref().unwrap_or("—"))
            ));
        }
        body.push_str("</table>");
        if rejected.len() > PAGE_ROWS {
            body.push_str(&format!(
                "<p>{}</p>",
                t(
                    "Алғашқы 500 жол көрсетілді; толығы CSV-де.",
                    "Показаны первые 500 строк; полностью — в CSV."
                )
            ));
        }
    }
    body.push_str(&csv_link(
        lang,
        &format!(
            "/api/v1/school/schools/{bin}/scans.csv?{}",
            filter_query(lang, &f, &[("kind", "rejected")])
        ),
    ));
    Ok(page.render(
        t("Қайталау мен бас тарту", "Дубликаты и отказы"),
        "scans",
        &body,
    ))
}
