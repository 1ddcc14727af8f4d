//! `/wallet`: the parents' page (DESIGN §6.3). The server renders the frame in the chosen
//! language; one small script (`/wallet/app.js`) calls the JSON API with the session token it
//! keeps in `localStorage`, and draws vouchers, the QR code with its countdown, history,
//! ratings and complaints.

use super::i18n::{self, t};
use super::{asset, escape, page};
use crate::config::Lang;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

const APP_JS: &str = include_str!("assets/wallet.js");
const SHARE_JS: &str = include_str!("assets/share.js");
const APP_CSS: &str = include_str!("assets/wallet.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/wallet", get(wallet_page))
        .route("/wallet/", get(wallet_page))
        .route(
            "/wallet/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/wallet/share.js",
            get(|| async { asset("text/javascript; charset=utf-8", SHARE_JS) }),
        )
        .route(
            "/wallet/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
}

async fn wallet_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let lang = super::lang(&headers, state.settings.server.default_lang);
    page(StatusCode::OK, render(lang))
}

/// The page frame in one language; `<script type="application/json">` carries the texts the
/// script needs (with `</` escaped so the JSON cannot end the element).
pub fn render(lang: Lang) -> String {
    let tx = |key: &str| escape(t(lang, key));
    let pressed = |l: Lang| if l == lang { "true" } else { "false" };
    format!(
        r#"<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<link rel="stylesheet" href="/wallet/app.css">
</head>
<body>
<header class="top">
  <div class="brand"><strong>{app_name}</strong><small>{tagline}</small></div>
  <nav class="langs" aria-label="{lang_switch}">
    <button type="button" class="lang" data-lang="kk" lang="kk" aria-pressed="{kk_pressed}">Қаз</button>
    <button type="button" class="lang" data-lang="ru" lang="ru" aria-pressed="{ru_pressed}">Рус</button>
  </nav>
</header>
<main>
<p id="status" class="notice" role="status" aria-live="polite" hidden></p>
<section id="login" hidden>
  <form id="phone-form" novalidate>
    <label for="phone">{phone_label}</label>
    <input id="phone" name="phone" type="tel" inputmode="tel" autocomplete="tel" required aria-describedby="phone-hint">
    <small id="phone-hint">{phone_hint}</small>
    <button type="submit" id="get-code" class="primary">{get_code}</button>
  </form>
  <form id="code-form" novalidate hidden>
    <p class="notice">{code_sent}</p>
    <label for="code">{code_label}</label>
    <input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="6" required>
    <button type="submit" id="sign-in" class="primary">{sign_in}</button>
    <button type="button" id="other-number" class="link">{other_number}</button>
  </form>
</section>
<section id="home" hidden>
  <div class="row"><h2>{vouchers}</h2><button type="button" id="logout" class="link">{logout}</button></div>
  <div id="vouchers"></div>
</section>
<section id="panel" class="panel" hidden aria-labelledby="panel-title">
  <div class="row"><h2 id="panel-title" tabindex="-1"></h2><button type="button" id="panel-close" class="link">{close}</button></div>
  <div id="panel-body"></div>
</section>
</main>
<script type="application/json" id="i18n">{texts}</script>
<script src="/wallet/app.js"></script>
</body>
</html>
"#,
        lang = lang.as_str(),
        title = tx("title"),
        app_name = tx("app_name"),
        tagline = tx("tagline"),
        lang_switch = tx("lang_switch"),
        kk_pressed = pressed(Lang::Kk),
        ru_pressed = pressed(Lang::Ru),
        phone_label = tx("phone_label"),
        phone_hint = tx("phone_hint"),
        get_code = tx("get_code"),
        code_sent = tx("code_sent"),
        code_label = tx("code_label"),
        sign_in = tx("sign_in"),
        other_number = tx("other_number"),
        vouchers = tx("vouchers"),
        logout = tx("logout"),
        close = tx("close"),
        texts = i18n::json(lang).replace("</", "<\\/"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_in_both_languages() {
        let kk = render(Lang::Kk);
        let ru = render(Lang::Ru);
        assert!(kk.contains(r#"<html lang="kk">"#) && kk.contains("Код алу"));
        assert!(ru.contains(r#"<html lang="ru">"#) && ru.contains("Получить код"));
        assert!(kk.contains(r#"data-lang="kk" lang="kk" aria-pressed="true""#));
        // The texts for the script parse as JSON and are in the page's language.
        let json = ru
            .split(r#"<script type="application/json" id="i18n">"#)
            .nth(1)
            .unwrap()
            .split("</script>")
            .next()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["show_qr"], "Показать QR-код");
    }

    #[test]
    fn script_uses_only_known_texts() {
        // Every T.key / T['key'] the script reads exists in the table.
        let mut missing = Vec::new();
        for part in APP_JS.split("T.").skip(1) {
            let key: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !key.is_empty() && !i18n::TEXTS.iter().any(|(k, _, _)| *k == key) {
                missing.push(key);
            }
        }
        assert!(missing.is_empty(), "{missing:?}");
    }
}
