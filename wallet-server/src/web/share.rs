//! `/q/{token}`: the page a parent sends to the child's phone. No login and no personal data:
//! only the QR code, big, and how long it stays valid, in Kazakh and Russian at once.
//!
//! The token in the address is checked against this server's own trust list before it is
//! drawn, so the page never renders arbitrary text as a QR code.

use super::i18n::t;
use super::{escape, page};
use crate::config::Lang;
use crate::state::AppState;
use crate::wallet::qr::Matrix;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use shared::token;
use shared::Verdict;

pub fn router() -> Router<AppState> {
    Router::new().route("/q/{token}", get(share))
}

fn both(key: &str) -> String {
    format!(
        r#"<span lang="kk">{}</span><span class="sep" aria-hidden="true"> / </span><span lang="ru">{}</span>"#,
        escape(t(Lang::Kk, key)),
        escape(t(Lang::Ru, key))
    )
}

fn shell(body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="kk">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<link rel="stylesheet" href="/wallet/app.css">
</head>
<body class="share">
<main>
<h1>{heading}</h1>
{body}
</main>
<script src="/wallet/share.js"></script>
</body>
</html>
"#,
        title = escape(&format!(
            "{} / {}",
            t(Lang::Kk, "share_page_title"),
            t(Lang::Ru, "share_page_title")
        )),
        heading = both("share_page_title"),
    )
}

fn message(status: StatusCode, key: &str) -> Response {
    page(
        status,
        shell(&format!(
            r#"<p class="notice error" role="alert">{}</p>"#,
            both(key)
        )),
    )
}

async fn share(State(state): State<AppState>, Path(text): Path<String>) -> Response {
    let Ok(decoded) = token::decode(&text) else {
        return message(StatusCode::BAD_REQUEST, "share_bad_link");
    };
    let now = state.now();
    let keys = state.keys.active();
    // The audience check is the terminal's business; here the token only has to be ours.
    let school = decoded.claims.school_code;
    match token::verify_decoded(&decoded, &keys.ring, school, now, 0) {
        Ok(_) => {}
        Err(Verdict::Expired) => return message(StatusCode::GONE, "share_expired"),
        Err(_) => return message(StatusCode::BAD_REQUEST, "share_bad_link"),
    }
    let Ok(matrix) = Matrix::encode(text.as_bytes()) else {
        return message(StatusCode::BAD_REQUEST, "share_bad_link");
    };
    let remaining = i64::from(decoded.claims.expires_at) - now;
    let body = format!(
        r#"<figure class="qr qr-big" id="qr" aria-label="QR">{svg}</figure>
<p class="countdown"><span class="label">{label}</span> <strong id="left" data-remaining="{remaining}"></strong></p>
<p class="hint">{hint}</p>
<p id="expired" class="notice error" role="alert" hidden>{expired}</p>"#,
        svg = matrix.svg(),
        hint = both("share_page_hint"),
        expired = both("share_expired"),
        label = both("expires_in"),
    );
    page(StatusCode::OK, shell(&body))
}
