//! Sign-in and sign-out, the language switch, and the list of the schools one may see.

use super::layout::{layout, school_href, Page};
use super::{PageReq, StaffPage};
use crate::api::school::auth::secure_cookies;
use crate::config::Lang;
use crate::review::texts::{esc, tr, LANG_COOKIE};
use crate::staff::access::schools_in_scope;
use crate::staff::session::{self, ClientAddr, LoginError};
use crate::state::AppState;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

/// Schools listed on the home page at once; more are found with the search box.
const HOME_LIMIT: usize = 200;

pub async fn home(
    State(state): State<AppState>,
    page: StaffPage,
) -> Result<Response, super::PageError> {
    let lang = page.req.lang;
    let search = page.req.query.q.clone();
    let schools = schools_in_scope(
        state.store.as_ref(),
        &page.staff.scope,
        search.as_deref(),
        HOME_LIMIT + 1,
    )
    .await
    .map_err(|e| page.req.fail(e))?;
    if schools.len() == 1 && search.is_none() {
        return Ok(Redirect::to(&school_href(&schools[0], "")).into_response());
    }
    let mut body = format!(
        "<p><a href=\"/school/voucher-states\">{}</a></p>",
        tr(
            lang,
            "Ваучерлер оқу жылы мен күйі бойынша",
            "Ваучеры по учебному году и состоянию"
        )
    );
    body.push_str(&format!(
        "<form method=\"get\" class=\"filters\"><label>{} <input name=\"q\" value=\"{}\"></label>\
         <button>{}</button></form>",
        tr(lang, "БСН немесе атауы", "БИН или название"),
        esc(search.as_deref().unwrap_or("")),
        tr(lang, "Іздеу", "Найти")
    ));
    if schools.is_empty() {
        body.push_str(&format!(
            "<p>{}</p>",
            tr(lang, "Мектептер жоқ.", "Школ нет.")
        ));
    } else {
        body.push_str(&format!(
            "<table><tr><th>{}</th><th>{}</th></tr>",
            tr(lang, "БСН", "БИН"),
            tr(lang, "Мектеп", "Школа")
        ));
        for s in schools.iter().take(HOME_LIMIT) {
            body.push_str(&format!(
                "<tr><td>{}</td><td><a href=\"{}\">{}</a></td></tr>",
                esc(&s.bin),
                school_href(s, ""),
                esc(&s.name)
            ));
        }
        body.push_str("</table>");
        if schools.len() > HOME_LIMIT {
            body.push_str(&format!(
                "<p>{}</p>",
                tr(
                    lang,
                    "Алғашқы 200 мектеп көрсетілді: іздеуді нақтылаңыз.",
                    "Показаны первые 200 школ: уточните поиск."
                )
            ));
        }
    }
    Ok(Page::ok(layout(
        &page.req.ctx(Some(&page.staff)),
        tr(lang, "Мектептер", "Школы"),
        None,
        &body,
    ))
    .into_response())
}

fn login_page(req: &PageReq, status: StatusCode, error: Option<&str>, username: &str) -> Page {
    let lang = req.lang;
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "{error}<form method=\"post\" action=\"/school/login\">\
         <p><label>{}<br><input name=\"username\" value=\"{}\" autocomplete=\"username\" required></label></p>\
         <p><label>{}<br><input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
         <p><button>{}</button></p></form>",
        tr(lang, "Пайдаланушы аты", "Имя пользователя"),
        esc(username),
        tr(lang, "Құпия сөз", "Пароль"),
        tr(lang, "Кіру", "Войти")
    );
    Page {
        status,
        html: layout(
            &req.ctx(None),
            tr(
                lang,
                "Мектеп қызметкерлерінің кіруі",
                "Вход для сотрудников школы",
            ),
            None,
            &body,
        ),
        set_cookie: None,
    }
}

pub async fn form(req: PageReq) -> Page {
    login_page(&req, StatusCode::OK, None, "")
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
}

pub async fn submit(
    State(state): State<AppState>,
    req: PageReq,
    ClientAddr(addr): ClientAddr,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let lang = req.lang;
    let Ok(Form(f)) = form else {
        return login_page(
            &req,
            StatusCode::BAD_REQUEST,
            Some(tr(
                lang,
                "Пайдаланушы аты мен құпия сөзді енгізіңіз.",
                "Введите имя пользователя и пароль.",
            )),
            "",
        )
        .into_response();
    };
    match session::login(
        state.store.as_ref(),
        &f.username,
        &f.password,
        &addr,
        state.now(),
    )
    .await
    {
        Ok(s) => (
            [(
                header::SET_COOKIE,
                session::session_cookie(&s.token, session::SESSION_SECONDS, secure_cookies(&state)),
            )],
            Redirect::to("/school"),
        )
            .into_response(),
        Err(LoginError::Invalid) => login_page(
            &req,
            StatusCode::UNAUTHORIZED,
            Some(tr(
                lang,
                "Пайдаланушы аты немесе құпия сөз қате.",
                "Неверное имя пользователя или пароль.",
            )),
            &f.username,
        )
        .into_response(),
        Err(LoginError::TooMany) => login_page(
            &req,
            StatusCode::TOO_MANY_REQUESTS,
            Some(tr(
                lang,
                "Тым көп сәтсіз әрекет. 15 минуттан соң қайталаңыз.",
                "Слишком много неудачных попыток. Повторите через 15 минут.",
            )),
            &f.username,
        )
        .into_response(),
        Err(LoginError::Store(e)) => req.fail(e).into_response(),
    }
}

pub async fn logout(
    State(state): State<AppState>,
    page: StaffPage,
) -> Result<Response, super::PageError> {
    state
        .store
        .delete_staff_session(&page.staff.token_hash)
        .await
        .map_err(|e| page.req.fail(e))?;
    Ok((
        [(
            header::SET_COOKIE,
            session::clear_cookie(secure_cookies(&state)),
        )],
        Redirect::to("/school/login"),
    )
        .into_response())
}

/// Only paths of these pages are followed back, so the switch cannot redirect elsewhere.
fn safe_back(back: Option<&str>) -> &str {
    match back {
        Some(b)
            if (b == "/school" || b.starts_with("/school/") || b.starts_with("/school?"))
                && !b.contains("//")
                && !b.contains('\\')
                && !b.chars().any(char::is_control) =>
        {
            b
        }
        _ => "/school",
    }
}

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    pub back: Option<String>,
}

pub async fn switch_lang(
    State(state): State<AppState>,
    Path(lang): Path<String>,
    axum::extract::Query(q): axum::extract::Query<LangQuery>,
) -> Response {
    let lang = Lang::parse(&lang).unwrap_or(state.settings.server.default_lang);
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax{}",
        lang.as_str(),
        if secure_cookies(&state) {
            "; Secure"
        } else {
            ""
        }
    );
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(safe_back(q.back.as_deref())),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_switch_only_goes_back_to_school_pages() {
        assert_eq!(
            safe_back(Some("/school/s/1/meals?x=1")),
            "/school/s/1/meals?x=1"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/school//evil.example",
            "/schoolx",
            "/wallet",
            "/school/\\x",
        ] {
            assert_eq!(safe_back(Some(bad)), "/school", "{bad}");
        }
        assert_eq!(safe_back(None), "/school");
    }

    proptest::proptest! {
        #[test]
        fn back_is_always_a_school_path(b in "\\PC{0,40}") {
            let got = safe_back(Some(&b));
            proptest::prop_assert!(got.starts_with("/school") && !got.contains("//"));
        }
    }
}
