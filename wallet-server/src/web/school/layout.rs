//! The frame of every school page, the page response (with its security headers), and the
//! error page.

use crate::config::Lang;
use crate::error::AppError;
use crate::review::texts::{esc, role_label, tr};
use crate::staff::session::Staff;
use crate::store::roster::School;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

/// No script at all; inline styles and SVG only; forms post back here only.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}\
header{background:#1b5e20;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;gap:1em;align-items:center}\
header a{color:#fff}header .who{margin-left:auto;font-size:.9em}header form{display:inline}\
nav{background:#e8f5e9;padding:.4em 1em;display:flex;flex-wrap:wrap;gap:1em}nav a.on{font-weight:bold}\
main{padding:1em;max-width:1100px}table{border-collapse:collapse;margin:.5em 0 1.5em;background:#fff}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}td.n{text-align:right}\
tr.warn td{background:#fff3e0}.warn{color:#b71c1c}.ok{color:#1b5e20}\
.filters{display:flex;flex-wrap:wrap;gap:.8em;align-items:end;margin-bottom:1em}\
.code{font-size:2em;font-family:monospace;letter-spacing:.15em;background:#fff;border:2px dashed #1b5e20;padding:.3em .6em;display:inline-block}\
.chart{width:100%;max-width:720px;background:#fff;border:1px solid #ddd}\
.error{background:#ffebee;border:1px solid #e57373;padding:.6em}button{cursor:pointer}";

/// An HTML page with its status, and the cookie it sets, if any.
pub struct Page {
    pub status: StatusCode,
    pub html: String,
    pub set_cookie: Option<String>,
}

impl Page {
    pub fn ok(html: String) -> Page {
        Page {
            status: StatusCode::OK,
            html,
            set_cookie: None,
        }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut resp = (self.status, self.html).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = self.set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::SET_COOKIE, c);
        }
        resp
    }
}

/// What every page knows about its request.
pub struct Ctx<'a> {
    pub lang: Lang,
    pub staff: Option<&'a Staff>,
    /// Path and query of this page, to come back to after switching language.
    pub here: String,
}

/// Percent-encodes a path-and-query for use as a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_./".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn school_href(school: &School, section: &str) -> String {
    if section.is_empty() {
        format!("/school/s/{}", school.bin)
    } else {
        format!("/school/s/{}/{section}", school.bin)
    }
}

pub const SECTIONS: [(&str, &str, &str); 9] = [
    ("", "Шолу", "Обзор"),
    ("meals", "Тамақтану", "Питание"),
    ("scans", "Қайталау мен бас тарту", "Дубликаты и отказы"),
    ("anomalies", "Ауытқулар", "Аномалии"),
    ("consent", "Келісім", "Согласия"),
    ("vouchers", "Ваучерлер", "Ваучеры"),
    ("feedback", "Бағалар мен шағымдар", "Оценки и жалобы"),
    ("terminals", "Терминалдар", "Терминалы"),
    ("reports", "ҰБДҚ есептері", "Отчёты НОБД"),
];

pub fn layout(ctx: &Ctx, title: &str, school: Option<(&School, &str)>, body: &str) -> String {
    let lang = ctx.lang;
    let mut html = format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Tamaq</title><style>{STYLE}</style></head><body><header>\
         <a href=\"/school\"><b>Tamaq</b></a>",
        lang.as_str(),
        esc(title)
    );
    if let Some((s, _)) = school {
        html.push_str(&format!("<span>{} · {}</span>", esc(&s.name), esc(&s.bin)));
    }
    let back = url_encode(&ctx.here);
    html.push_str(&format!(
        "<span class=\"who\"><a href=\"/school/lang/kk?back={back}\">қаз</a> · \
         <a href=\"/school/lang/ru?back={back}\">рус</a>"
    ));
    if let Some(staff) = ctx.staff {
        html.push_str(&format!(
            " · {} ({}) <form method=\"post\" action=\"/school/logout\"><button>{}</button></form>",
            esc(&staff.account.username),
            esc(&role_label(lang, &staff.account.role)),
            tr(lang, "Шығу", "Выйти")
        ));
    }
    html.push_str("</span></header>");
    if let Some((s, active)) = school {
        html.push_str("<nav>");
        for (section, kk, ru) in SECTIONS {
            html.push_str(&format!(
                "<a href=\"{}\"{}>{}</a>",
                school_href(s, section),
                if section == active {
                    " class=\"on\""
                } else {
                    ""
                },
                tr(lang, kk, ru)
            ));
        }
        html.push_str("</nav>");
    }
    html.push_str(&format!(
        "<main><h1>{}</h1>{body}</main></body></html>",
        esc(title)
    ));
    html
}

/// Errors of a page: not signed in → the login page; anything else → an error page.
pub struct PageError {
    pub error: AppError,
    pub lang: Lang,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if matches!(self.error, AppError::Unauthorized) {
            return Redirect::to("/school/login").into_response();
        }
        let status = self.error.status();
        let message = match &self.error {
            AppError::Internal(e) => {
                tracing::error!(error = %e, "school page failed");
                tr(
                    self.lang,
                    "Серверде қате болды. Бір минуттан соң қайталаңыз.",
                    "На сервере произошла ошибка. Повторите через минуту.",
                )
                .to_owned()
            }
            AppError::NotFound(_) => tr(
                self.lang,
                "Бет табылмады немесе сізге қолжетімсіз.",
                "Страница не найдена или недоступна вам.",
            )
            .to_owned(),
            AppError::Forbidden(_) => tr(
                self.lang,
                "Бұл әрекет сіздің рөліңізге рұқсат етілмеген.",
                "Это действие не разрешено для вашей роли.",
            )
            .to_owned(),
            other => other.to_string(),
        };
        let ctx = Ctx {
            lang: self.lang,
            staff: None,
            here: "/school".into(),
        };
        let body = format!(
            "<p class=\"error\">{}</p><p><a href=\"/school\">{}</a></p>",
            esc(&message),
            tr(self.lang, "Басты бет", "На главную")
        );
        Page {
            status,
            html: layout(&ctx, tr(self.lang, "Қате", "Ошибка"), None, &body),
            set_cookie: None,
        }
        .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_links_are_encoded() {
        assert_eq!(
            url_encode("/school/s/1/meals?from=2026-11-01&class=3А"),
            "/school/s/1/meals%3Ffrom%3D2026-11-01%26class%3D3%D0%90"
        );
    }
}
