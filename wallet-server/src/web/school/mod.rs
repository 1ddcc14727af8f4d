//! `/school`: pages for school staff, district authorities and operators, in Kazakh and
//! Russian, without script. Access goes through the same [`SchoolAccess`] as the API.

pub mod anomalies;
pub mod consent;
pub mod feedback;
pub mod layout;
pub mod login;
pub mod meals;
pub mod reports;
pub mod scans;
pub mod states;
pub mod terminals;
pub mod vouchers;

use crate::config::Lang;
use crate::error::AppError;
use crate::review::params::ReviewQuery;
use crate::review::texts::request_lang;
use crate::staff::access::SchoolAccess;
use crate::staff::session::Staff;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use layout::{Ctx, PageError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/school", get(login::home))
        .route("/school/login", get(login::form).post(login::submit))
        .route("/school/logout", post(login::logout))
        .route("/school/voucher-states", get(states::page))
        .route("/school/lang/{lang}", get(login::switch_lang))
        .route("/school/s/{bin}", get(meals::overview))
        .route("/school/s/{bin}/meals", get(meals::meals))
        .route("/school/s/{bin}/scans", get(scans::page))
        .route("/school/s/{bin}/anomalies", get(anomalies::page))
        .route("/school/s/{bin}/consent", get(consent::page))
        .route("/school/s/{bin}/consent/record", post(consent::record))
        .route("/school/s/{bin}/vouchers", get(vouchers::page))
        .route("/school/s/{bin}/feedback", get(feedback::page))
        .route("/school/s/{bin}/terminals", get(terminals::page))
        .route(
            "/school/s/{bin}/terminals/enroll-code",
            post(terminals::create_code),
        )
        .route(
            "/school/s/{bin}/terminals/{terminal_id}/revoke",
            post(terminals::revoke),
        )
        .route("/school/s/{bin}/reports", get(reports::page))
}

/// Language and address of a page request, and its query.
pub struct PageReq {
    pub lang: Lang,
    pub here: String,
    pub query: ReviewQuery,
}

impl PageReq {
    fn from_parts(parts: &Parts, state: &AppState) -> Result<PageReq, PageError> {
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/school".into());
        let query = Query::<ReviewQuery>::try_from_uri(&parts.uri).map(|q| q.0);
        let lang = request_lang(
            query.as_ref().ok().and_then(|q| q.lang.as_deref()),
            &parts.headers,
            state.settings.server.default_lang,
        );
        match query {
            Ok(query) => Ok(PageReq { lang, here, query }),
            Err(e) => Err(PageError {
                error: AppError::BadRequest(e.body_text()),
                lang,
            }),
        }
    }

    pub fn ctx<'a>(&self, staff: Option<&'a Staff>) -> Ctx<'a> {
        Ctx {
            lang: self.lang,
            staff,
            here: self.here.clone(),
        }
    }

    pub fn fail(&self, error: impl Into<AppError>) -> PageError {
        PageError {
            error: error.into(),
            lang: self.lang,
        }
    }
}

impl FromRequestParts<AppState> for PageReq {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        PageReq::from_parts(parts, state)
    }
}

/// A signed-in page request.
pub struct StaffPage {
    pub req: PageReq,
    pub staff: Staff,
}

impl FromRequestParts<AppState> for StaffPage {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let req = PageReq::from_parts(parts, state)?;
        match Staff::from_parts(parts, state).await {
            Ok(staff) => Ok(StaffPage { req, staff }),
            Err(e) => Err(req.fail(e)),
        }
    }
}

/// A page of one school the signed-in staff member may see.
pub struct SchoolPage {
    pub req: PageReq,
    pub access: SchoolAccess,
}

impl FromRequestParts<AppState> for SchoolPage {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let req = PageReq::from_parts(parts, state)?;
        match SchoolAccess::from_request_parts(parts, state).await {
            Ok(access) => Ok(SchoolPage { req, access }),
            Err(e) => Err(req.fail(e)),
        }
    }
}

impl SchoolPage {
    pub fn ctx(&self) -> Ctx<'_> {
        self.req.ctx(Some(&self.access.staff))
    }

    pub fn today(&self, state: &AppState) -> chrono::NaiveDate {
        crate::api::school::today(state)
    }

    /// The frame of this school's page `section`.
    pub fn render(&self, title: &str, section: &str, body: &str) -> layout::Page {
        layout::Page::ok(layout::layout(
            &self.ctx(),
            title,
            Some((&self.access.school, section)),
            body,
        ))
    }
}
