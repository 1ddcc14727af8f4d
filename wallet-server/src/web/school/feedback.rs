//! Parents' ratings (averages per day and per week, comments) and complaints with their status.
//! Reads the wallet's tables through `store::feedback_read`.

use super::layout::Page;
use super::meals::filter_form;
use super::{PageError, SchoolPage};
use crate::api::school::feedback::{load_complaints, load_ratings};
use crate::review::texts::{
    class_name, complaint_status_label, esc, local_datetime, pupil_name, tr,
};
use crate::state::AppState;
use axum::extract::State;

pub async fn page(State(state): State<AppState>, page: SchoolPage) -> Result<Page, PageError> {
    let lang = page.req.lang;
    let t = |kk, ru| tr(lang, kk, ru);
    let q = &page.req.query;
    let f = q
        .filter(page.access.school.code, page.today(&state))
        .map_err(|e| page.req.fail(e))?;
    let ratings = load_ratings(&state, &page.access, q)
        .await
        .map_err(|e| page.req.fail(e))?;
    let complaints = load_complaints(&state, &page.access, q)
        .await
        .map_err(|e| page.req.fail(e))?;

    let mut body = filter_form(lang, &f, false, None);
    body.push_str(&format!(
        "<h2>{}</h2>",
        t("Апта бойынша орташа баға", "Средняя оценка по неделям")
    ));
    if ratings.by_week.is_empty() {
        body.push_str(&format!("<p>{}</p>", t("Бағалар жоқ.", "Оценок нет.")));
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Апта", "Неделя"),
            t("Бағалар", "Оценок"),
            t("Орташа", "Среднее")
        ));
        for w in &ratings.by_week {
            body.push_str(&format!(
                "<tr><td>{} ({})</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td></tr>",
                esc(&w.week),
                esc(&w.starts),
                w.ratings,
                w.average
            ));
        }
        body.push_str("</table>");
        body.push_str(&format!(
            "<h2>{}</h2><table><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Күн бойынша орташа баға", "Средняя оценка по дням"),
            t("Күні", "Дата"),
            t("Бағалар", "Оценок"),
            t("Орташа", "Среднее")
        ));
        for d in &ratings.by_day {
            body.push_str(&format!(
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td></tr>",
                esc(&d.service_day),
                d.ratings,
                d.average
            ));
        }
        body.push_str("</table>");
    }
    body.push_str(&format!("<h2>{}</h2>", t("Пікірлер", "Комментарии")));
    if ratings.comments.is_empty() {
        body.push_str(&format!(
            "<p>{}</p>",
            t("Пікірлер жоқ.", "Комментариев нет.")
        ));
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Күні", "Дата"),
            t("Сынып", "Класс"),
            t("Баға", "Оценка"),
            t("Пікір", "Комментарий")
        ));
        for c in &ratings.comments {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&c.service_day),
                esc(&class_name(c.grade, c.class_letter.as_deref())),
                c.stars,
                esc(&c.comment)
            ));
        }
        body.push_str("</table>");
    }
    body.push_str(&format!("<h2>{}</h2>", t("Шағымдар", "Жалобы")));
    if complaints.is_empty() {
        body.push_str(&format!("<p>{}</p>", t("Шағымдар жоқ.", "Жалоб нет.")));
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            t("Уақыты", "Время"),
            t("Оқушы", "Ученик"),
            t("Сынып", "Класс"),
            t("Мәтін", "Текст"),
            t("Күйі", "Статус")
        ));
        for c in &complaints {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                local_datetime(c.created_at),
                esc(&pupil_name(c.last_name.as_deref(), c.first_name.as_deref())),
                esc(&class_name(c.grade, c.class_letter.as_deref())),
                esc(&c.text),
                esc(&complaint_status_label(lang, &c.status))
            ));
        }
        body.push_str("</table>");
    }
    Ok(page.render(
        t("Бағалар мен шағымдар", "Оценки и жалобы"),
        "feedback",
        &body,
    ))
}
