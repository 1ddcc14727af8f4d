//! `POST /api/v1/sms/inbound` `{from, text}`: a parent's SMS, handed over by the SMS gateway.
//!
//! The gateway proves itself with the `X-Gateway-Secret` header, compared in constant time to
//! `[sms] inbound_secret`. With no secret configured every request is refused (403), except in
//! `demo` mode. A body that is not `{"from": "<phone>", "text": "<text>"}` gets 400 and changes
//! nothing. The answer says what the text did (`result`: `consented`, `refused`, `help`,
//! `nothing_pending`, `withdrawn`, `already_withdrawn`).

use crate::consent::{self, ReplyOutcome};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use shared::phone::Phone;

pub const SECRET_HEADER: &str = "x-gateway-secret";
/// The longest SMS we read: ten concatenated parts.
pub const MAX_TEXT_CHARS: usize = 1600;

pub fn router() -> Router<AppState> {
    Router::new().route("/sms/inbound", post(inbound))
}

#[derive(Debug, Deserialize)]
pub struct InboundSms {
    pub from: String,
    pub text: String,
}

/// Equal without revealing, through timing, how much of `given` matched.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn check_secret(state: &AppState, headers: &HeaderMap) -> AppResult<()> {
    let expected = state
        .settings
        .sms
        .inbound_secret
        .as_ref()
        .map(|s| s.expose())
        .filter(|s| !s.is_empty());
    match expected {
        None if state.demo => Ok(()),
        None => Err(AppError::Forbidden(
            "SMS inbound is switched off: set [sms] inbound_secret (or TAMAQ_SMS_INBOUND_SECRET) \
             on the server and send it in the X-Gateway-Secret header"
                .into(),
        )),
        Some(secret) => {
            let given = headers
                .get(SECRET_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if same_secret(given, secret.as_bytes()) {
                Ok(())
            } else {
                Err(AppError::Forbidden(
                    "missing or wrong X-Gateway-Secret header".into(),
                ))
            }
        }
    }
}

/// The body, checked: a Kazakhstan mobile number and a text of sensible length.
pub fn parse_body(body: &[u8]) -> AppResult<(Phone, String)> {
    let msg: InboundSms = serde_json::from_slice(body).map_err(|e| {
        AppError::BadRequest(format!(
            "the body must be JSON {{\"from\": \"+77…\", \"text\": \"…\"}}: {}",
            shared::error::clip(&e.to_string())
        ))
    })?;
    let from = Phone::parse(&msg.from).map_err(|e| {
        AppError::Invalid(
            "bad_phone",
            format!("from {}: {e}", shared::error::excerpt(&msg.from)),
        )
    })?;
    if msg.text.chars().count() > MAX_TEXT_CHARS {
        return Err(AppError::Invalid(
            "text_too_long",
            format!("text is longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok((from, msg.text))
}

async fn inbound(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Json<ReplyOutcome>> {
    check_secret(&state, &headers)?;
    let (from, text) = parse_body(&body)?;
    let outcome = consent::handle_reply(
        state.store.as_ref(),
        &state.settings,
        &from,
        &text,
        state.now(),
    )
    .await?;
    tracing::info!(from = %from.masked(), ?outcome, "inbound SMS");
    Ok(Json(outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"", b"abc"));
    }

    #[test]
    fn bodies() {
        let (p, t) = parse_body(br#"{"from": "8 701 123 45 67", "text": " 3#1 "}"#).unwrap();
        assert_eq!(p.as_str(), "+77011234567");
        assert_eq!(t, " 3#1 ");
        for bad in [
            &br#"{"from": "123", "text": "3#1"}"#[..],
            br#"{"from": "+77011234567"}"#,
            br#"{"from": 77011234567, "text": "3#1"}"#,
            b"3#1",
            b"",
        ] {
            let err = parse_body(bad).unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_body(&body);
        }

        #[test]
        fn arbitrary_fields_never_panic(from in "\\PC{0,20}", text in "\\PC{0,50}") {
            let body = serde_json::json!({"from": from, "text": text}).to_string();
            if let Ok((p, t)) = parse_body(body.as_bytes()) {
                prop_assert!(p.as_str().starts_with("+77"));
                prop_assert_eq!(t, text);
            }
        }
    }
}
