//! The school overview (meals-per-day chart) and the meals page (by day, class, pupil, or
//! every meal).

use super::layout::{url_encode, Page};
use super::{PageError, SchoolPage};
use crate::config::Lang;
use crate::review::chart;
use crate::review::export::{load_meals, MealRows, ROW_LIMIT};
use crate::review::params::Group;
use crate::review::texts::{class_name, esc, local_clock, meal_kind_label, pupil_name, tr};
use crate::state::AppState;
use crate::store::school_view::MealFilter;
use axum::extract::State;
use chrono::{Duration, NaiveDate};

/// The filter form; `group` adds the grouping choice, `class` the class box.
pub fn filter_form(lang: Lang, f: &MealFilter, class: bool, group: Option<Group>) -> String {
    let mut html = format!(
        "<form method=\"get\" class=\"filters\">\
         <label>{}<br><input type=\"date\" name=\"from\" value=\"{}\"></label>\
         <label>{}<br><input type=\"date\" name=\"to\" value=\"{}\"></label>",
        tr(lang, "Бастап", "С"),
        esc(&f.from),
        tr(lang, "Дейін", "По"),
        esc(&f.to)
    );
    if class {
        html.push_str(&format!(
            "<label>{}<br><input name=\"class\" size=\"5\" placeholder=\"3А\" value=\"{}\"></label>",
            tr(lang, "Сынып", "Класс"),
            esc(&f.class.as_ref().map(|c| c.to_string()).unwrap_or_default())
        ));
    }
    if let Some(current) = group {
        html.push_str(&format!(
            "<label>{}<br><select name=\"group\">",
            tr(lang, "Топтау", "Группировка")
        ));
        for g in Group::ALL {
            let (kk, ru) = match g {
                Group::Day => ("Күн бойынша", "По дням"),
                Group::Class => ("Сынып бойынша", "По классам"),
                Group::Pupil => ("Оқушы бойынша", "По ученикам"),
                Group::List => ("Әр тамақ", "Каждый приём пищи"),
            };
            html.push_str(&format!(
                "<option value=\"{}\"{}>{}</option>",
                g.as_str(),
                if g == current { " selected" } else { "" },
                tr(lang, kk, ru)
            ));
        }
        html.push_str("</select></label>");
    }
    html.push_str(&format!(
        "<button>{}</button></form>",
        tr(lang, "Көрсету", "Показать")
    ));
    html
}

/// The query string of a filter, for CSV links.
pub fn filter_query(lang: Lang, f: &MealFilter, extra: &[(&str, &str)]) -> String {
    let mut parts = vec![
        format!("from={}", url_encode(&f.from)),
        format!("to={}", url_encode(&f.to)),
        format!("lang={}", lang.as_str()),
    ];
    if let Some(c) = &f.class {
        parts.push(format!("class={}", url_encode(&c.to_string())));
    }
    if let Some(v) = &f.voucher {
        parts.push(format!("voucher={}", url_encode(v)));
    }
    for (k, v) in extra {
        parts.push(format!("{k}={}", url_encode(v)));
    }
    parts.join("&amp;")
}

pub fn csv_link(lang: Lang, href: &str) -> String {
    format!(
        "<p><a href=\"{href}\">{}</a></p>",
        tr(lang, "CSV жүктеу (Excel)", "Скачать CSV (Excel)")
    )
}

fn days_between(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    (0..=(to - from).num_days()).map(move |i| from + Duration::days(i))
}

pub async fn overview(State(state): State<AppState>, page: SchoolPage) -> Result<Page, PageError> {
    let lang = page.req.lang;
    let f = page
        .req
        .query
        .filter(page.access.school.code, page.today(&state))
        .map_err(|e| page.req.fail(e))?;
    let store = state.store.as_ref();
    let by_day = store.meals_by_day(&f).await.map_err(|e| page.req.fail(e))?;
    let verdicts = store
        .verdict_counts(&f)
        .await
        .map_err(|e| page.req.fail(e))?;
    let from = NaiveDate::parse_from_str(&f.from, "%Y-%m-%d").expect("checked");
    let to = NaiveDate::parse_from_str(&f.to, "%Y-%m-%d").expect("checked");
    let points: Vec<(NaiveDate, i64)> = days_between(from, to)
        .map(|d| {
            let key = d.to_string();
            (
                d,
                by_day
                    .iter()
                    .find(|r| r.service_day == key)
                    .map_or(0, |r| r.meals),
            )
        })
        .collect();
    let meals: i64 = by_day.iter().map(|r| r.meals).sum();
    let duplicates: i64 = by_day.iter().map(|r| r.duplicates).sum();
    let rejected: i64 = verdicts
        .iter()
        .filter(|v| v.verdict != "ok")
        .map(|v| v.scans)
        .sum();
    let days_with_meals = by_day.iter().filter(|r| r.meals > 0).count();
    let title = tr(lang, "Күн сайынғы тамақтану", "Питание по дням");
    let mut body = filter_form(lang, &f, false, None);
    body.push_str(&chart::meals_per_day(&points, title));
    body.push_str(&format!(
        "<table><tr><th>{}</th><td class=\"n\">{meals}</td></tr>\
         <tr><th>{}</th><td class=\"n\">{days_with_meals}</td></tr>\
         <tr><th>{}</th><td class=\"n\">{}</td></tr>\
         <tr><th>{}</th><td class=\"n\">{duplicates}</td></tr>\
         <tr><th>{}</th><td class=\"n\">{rejected}</td></tr></table>",
        tr(lang, "Берілген тамақ", "Выдано питания"),
        tr(lang, "Тамақ берілген күндер", "Дней с питанием"),
        tr(lang, "Күніне орта есеппен", "В среднем за день"),
        if days_with_meals > 0 {
            format!("{:.1}", meals as f64 / days_with_meals as f64)
        } else {
            "0".into()
        },
        tr(lang, "Қайталанған сканерлеу", "Повторные сканирования"),
        tr(lang, "Бас тартылған сканерлеу", "Отклонённые сканирования"),
    ));
    body.push_str(&csv_link(
        lang,
        &format!(
            "/api/v1/school/schools/{}/meals.csv?{}",
            page.access.school.bin,
            filter_query(lang, &f, &[("group", "day")])
        ),
    ));
    Ok(page.render(tr(lang, "Шолу", "Обзор"), "", &body))
}

fn cut_note(lang: Lang, n: usize) -> String {
    if n as i64 >= ROW_LIMIT {
        format!(
            "<p class=\"warn\">{}</p>",
            tr(
                lang,
                "Тізім қысқартылды: кезеңді тарылтыңыз.",
                "Список сокращён: сузьте период."
            )
        )
    } else {
        String::new()
    }
}

pub async fn meals(State(state): State<AppState>, page: SchoolPage) -> Result<Page, PageError> {
    let lang = page.req.lang;
    let q = &page.req.query;
    let f = q
        .filter(page.access.school.code, page.today(&state))
        .map_err(|e| page.req.fail(e))?;
    let group = q.group().map_err(|e| page.req.fail(e))?;
    let rows = load_meals(state.store.as_ref(), &f, group)
        .await
        .map_err(|e| page.req.fail(e))?;
    let t = |kk, ru| tr(lang, kk, ru);
    let mut body = filter_form(lang, &f, true, Some(group));
    body.push_str(&csv_link(
        lang,
        &format!(
            "/api/v1/school/schools/{}/meals.csv?{}",
            page.access.school.bin,
            filter_query(lang, &f, &[("group", group.as_str())])
        ),
    ));
    if rows.is_empty() {
        body.push_str(&format!(
            "<p>{}</p>",
            t(
                "Бұл кезеңде тамақ берілмеген.",
                "За этот период питание не выдавалось."
            )
        ));
    }
    match &rows {
        MealRows::Day(rows) if !rows.is_empty() => {
            body.push_str(&format!(
                "<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
                t("Күні", "Дата"),
                t("Тамақ", "Питание"),
                t("Қайталау", "Дубликаты")
            ));
            for r in rows {
                body.push_str(&format!(
                    "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    esc(&r.service_day),
                    r.meals,
                    r.duplicates
                ));
            }
            let total: i64 = rows.iter().map(|r| r.meals).sum();
            body.push_str(&format!(
                "<tr><th>{}</th><th class=\"n\">{total}</th><th></th></tr></table>",
                t("Барлығы", "Итого")
            ));
        }
        MealRows::Class(rows) if !rows.is_empty() => {
            body.push_str(&format!(
                "<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
                t("Сынып", "Класс"),
                t("Оқушылар", "Учеников"),
                t("Тамақ", "Питание")
            ));
            for r in rows {
                body.push_str(&format!(
                    "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    esc(&class_name(r.grade, r.class_letter.as_deref())),
                    r.pupils,
                    r.meals
                ));
            }
            body.push_str("</table>");
        }
        MealRows::Pupil(rows) if !rows.is_empty() => {
            body.push_str(&format!(
                "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
                t("Оқушы", "Ученик"),
                t("Сынып", "Класс"),
                t("Тамақ", "Питание"),
                t("Алғашқы күн", "Первый день"),
                t("Соңғы күн", "Последний день")
            ));
            for r in rows {
                let name = esc(&pupil_name(r.last_name.as_deref(), r.first_name.as_deref()));
                let name = match &r.voucher_id {
                    Some(v) => format!(
                        "<a href=\"?group=list&amp;voucher={}&amp;{}\">{name}</a>",
                        url_encode(v),
                        filter_query(lang, &f, &[])
                    ),
                    None => name,
                };
                body.push_str(&format!(
                    "<tr><td>{name}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&class_name(r.grade, r.class_letter.as_deref())),
                    r.meals,
                    esc(&r.first_day),
                    esc(&r.last_day)
                ));
            }
            body.push_str("</table>");
        }
        MealRows::List(rows) if !rows.is_empty() => {
            body.push_str(&format!(
                "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
                t("Күні", "Дата"),
                t("Уақыты", "Время"),
                t("Тамақ түрі", "Приём пищи"),
                t("Оқушы", "Ученик"),
                t("Сынып", "Класс"),
                t("Терминал", "Терминал")
            ));
            for r in rows {
                body.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&r.service_day),
                    local_clock(r.served_at),
                    esc(&meal_kind_label(lang, &r.meal_kind)),
                    esc(&pupil_name(r.last_name.as_deref(), r.first_name.as_deref())),
                    esc(&class_name(r.grade, r.class_letter.as_deref())),
                    esc(r.terminal_label.as_deref().unwrap_or("—"))
                ));
            }
            body.push_str("</table>");
            body.push_str(&cut_note(lang, rows.len()));
        }
        _ => {}
    }
    Ok(page.render(t("Тамақтану", "Питание"), "meals", &body))
}
