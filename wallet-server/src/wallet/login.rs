//! Login by phone and a 6-digit SMS code (DESIGN §9: 6 digits, 5 minutes, 5 attempts,
//! rate-limited per phone and per address).
//!
//! The answer to a code request is the same whether or not a pupil lists the phone, so the
//! endpoint cannot be used to find out which numbers belong to parents: the per-phone limits
//! are counted in memory for every number alike, but a code is stored and sent only for listed
//! phones; an unlisted one gets a decoy in memory that guesses are taken against. A global
//! hourly budget of stored codes caps what a flood across many addresses can send.
//! Codes are kept as SHA-256 over a server pepper, the phone and the code; the small code space
//! is protected by the attempt limit, not by the hash.

use super::limits::Purpose;
use super::session;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use rand::Rng;
use sha2::{Digest, Sha256};
use shared::phone::Phone;
use std::net::IpAddr;

pub const CODE_SECONDS: i64 = 5 * 60;
pub const MAX_ATTEMPTS: i64 = 5;
/// Codes per phone per ten minutes, and per day.
pub const CODES_PER_10_MIN: i64 = 3;
pub const CODES_PER_DAY: i64 = 10;
/// SMS kind in the outbox (DESIGN §7.2).
pub const SMS_KIND: &str = "login_code";

pub fn code_hash(pepper: &[u8; 32], phone: &str, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tamaq-login-code\0");
    h.update(pepper);
    h.update(phone.as_bytes());
    h.update(b"\0");
    h.update(code.as_bytes());
    hex::encode(h.finalize())
}

/// Short, both languages (a phone may belong to parents of either), one SMS segment.
pub fn sms_text(code: &str) -> String {
    format!("Tamaq коды/код: {code}. 5 мин. Ешкімге айтпаңыз / Никому не говорите")
}

fn limited(addr: Option<IpAddr>, state: &AppState, purpose: Purpose) -> AppResult<()> {
    match addr {
        Some(ip) if !state.wallet.addresses.hit(ip, purpose, state.now()) => {
            Err(AppError::TooManyRequests(
                "Too many requests from this address. Wait 10 minutes.".into(),
            ))
        }
        _ => Ok(()),
    }
}

/// `POST /wallet/login`.
pub async fn request_code(state: &AppState, phone: &Phone, addr: Option<IpAddr>) -> AppResult<()> {
    limited(addr, state, Purpose::Login)?;
    let now = state.now();
    let p = phone.as_str();
    let store = &state.store;
    let too_many = || {
        AppError::TooManyRequests(
            "Too many codes were requested for this number. Wait 10 minutes and try again.".into(),
        )
    };
    let sms = &state.settings.sms;
    if !state.wallet.phones.hit(
        p,
        now,
        CODES_PER_10_MIN as u32,
        sms.login_codes_per_phone_per_hour,
    ) {
        return Err(too_many());
    }
    if store.login_codes_total_since(now - 3600).await? >= i64::from(sms.login_codes_per_hour) {
        tracing::warn!(
            "login codes: the hourly budget of {} is spent",
            sms.login_codes_per_hour
        );
        return Err(AppError::TooManyRequests(
            "Login by SMS is busy right now. Try again in an hour. / \
             Қазір SMS арқылы кіру шектеулі, бір сағаттан кейін қайталаңыз. / \
             Вход по SMS сейчас ограничен, повторите через час."
                .into(),
        ));
    }
    // A listed phone, or the priority phone of a pupil removed from the roster, whose parent
    // still sees the revoked voucher and why.
    let known =
        !store.pupils_by_phone(p).await?.is_empty() || !store.parent_vouchers(p).await?.is_empty();
    if !known {
        state.wallet.phones.decoy(p, now + CODE_SECONDS, now);
        return Ok(());
    }
    // Across instances and restarts the memory counts start over; the stored codes do not.
    if store.login_codes_since(p, now - 600).await? >= CODES_PER_10_MIN
        || store.login_codes_since(p, now - 86_400).await? >= CODES_PER_DAY
    {
        return Err(too_many());
    }
    let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000u32));
    let hash = code_hash(state.wallet.pepper(), p, &code);
    let sms_id = uuid::Uuid::new_v4().to_string();
    let text = sms_text(&code);
    store
        .insert_login_code(
            p,
            &hash,
            now,
            now + CODE_SECONDS,
            Some((sms_id.as_str(), text.as_str())),
        )
        .await?;
    crate::sms::wake();
    tracing::info!(phone = %phone.masked(), "login code queued");
    if state.demo {
        println!("demo: login code for {p}: {code}");
    }
    Ok(())
}

/// Exactly six ASCII digits (spaces around are ignored).
pub fn parse_code(text: &str) -> Option<&str> {
    let t = text.trim();
    (t.len() == 6 && t.bytes().all(|b| b.is_ascii_digit())).then_some(t)
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `POST /wallet/login/verify`: a session token and its expiry.
pub async fn verify_code(
    state: &AppState,
    phone: &Phone,
    code: &str,
    addr: Option<IpAddr>,
) -> AppResult<(String, i64)> {
    let code = parse_code(code).ok_or_else(|| {
        AppError::Invalid("bad_code", "The code is six digits from the SMS.".into())
    })?;
    limited(addr, state, Purpose::Verify)?;
    let now = state.now();
    let p = phone.as_str();
    // Every live code of the phone takes the guess before it is compared, so parallel
    // guesses cannot exceed the attempt limit.
    let live = state.store.take_login_attempt(p, now, MAX_ATTEMPTS).await?;
    let expired = || {
        AppError::Invalid(
            "code_expired",
            "This code has expired or was entered wrongly too many times. Ask for a new code."
                .into(),
        )
    };
    if live.is_empty() {
        return match state.wallet.phones.guess_decoy(p, now, MAX_ATTEMPTS) {
            Some(left) => Err(AppError::Invalid(
                "wrong_code",
                format!("Wrong code. Attempts left: {left}."),
            )),
            None => Err(expired()),
        };
    }
    let hash = code_hash(state.wallet.pepper(), p, code);
    let Some(hit) = live.iter().find(|c| same(&c.code_hash, &hash)) else {
        let left = live
            .iter()
            .map(|c| MAX_ATTEMPTS - c.attempts)
            .max()
            .unwrap_or(0);
        return Err(AppError::Invalid(
            "wrong_code",
            format!("Wrong code. Attempts left: {left}."),
        ));
    };
    if !state.store.use_login_code(hit.id, p, now).await? {
        return Err(expired());
    }
    tracing::info!(phone = %phone.masked(), "parent signed in");
    session::start(state, p).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(parse_code(" 012345 "), Some("012345"));
        for bad in ["12345", "1234567", "12a456", "１２３４５６", ""] {
            assert_eq!(parse_code(bad), None, "{bad}");
        }
        let pepper = [7u8; 32];
        let h = code_hash(&pepper, "+77010000001", "123456");
        assert_eq!(h.len(), 64);
        assert_ne!(
            h,
            code_hash(&pepper, "+77010000002", "123456"),
            "phone is hashed in"
        );
        assert_ne!(
            h,
            code_hash(&[8u8; 32], "+77010000001", "123456"),
            "pepper is hashed in"
        );
        assert!(same(&h, &h.clone()));
        assert!(!same(&h, &h[1..]));
    }

    #[test]
    fn sms_fits_one_unicode_segment() {
        let text = sms_text("123456");
        assert!(text.contains("123456"));
        // Cyrillic SMS are UCS-2: 70 characters per segment.
        assert!(text.chars().count() <= 70, "{}", text.chars().count());
    }
}
