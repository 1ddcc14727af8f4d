//! Texts of the school pages and exports in Kazakh and Russian, and HTML escaping.

use crate::config::Lang;
use shared::calendar::KZ_OFFSET_SECONDS;

/// Cookie that remembers the language picked on the school pages.
pub const LANG_COOKIE: &str = "tamaq_lang";

/// The language of a request: `?lang=` first, then the cookie, then the server default.
pub fn request_lang(query: Option<&str>, headers: &axum::http::HeaderMap, default: Lang) -> Lang {
    query.and_then(Lang::parse).unwrap_or_else(|| {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| crate::staff::session::cookie_value(h, LANG_COOKIE))
            .and_then(Lang::parse)
            .unwrap_or(default)
    })
}

/// The Kazakh or the Russian text.
pub fn tr(lang: Lang, kk: &'static str, ru: &'static str) -> &'static str {
    match lang {
        Lang::Kk => kk,
        Lang::Ru => ru,
    }
}

/// Escapes text for HTML element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Local date and time, `2026-11-23 09:05`.
pub fn local_datetime(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts + KZ_OFFSET_SECONDS, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| ts.to_string())
}

/// Local time of day, `09:05:30`.
pub fn local_clock(ts: i64) -> String {
    shared::calendar::local_time(ts)
        .format("%H:%M:%S")
        .to_string()
}

/// A short name for a verdict code, for tables (the terminal's full messages are sentences).
pub fn verdict_label(lang: Lang, code: &str) -> String {
    let (kk, ru) = match code {
        "clock_untrusted" => ("Сағат сенімсіз", "Часы ненадёжны"),
        "bad_format" => ("Код оқылмады", "Код не читается"),
        "unknown_key" => ("Белгісіз кілт", "Неизвестный ключ"),
        "bad_signature" => ("Қолтаңба жарамсыз", "Неверная подпись"),
        "wrong_school" => ("Басқа мектеп", "Другая школа"),
        "not_yet_valid" => ("Әлі жарамсыз", "Ещё не действует"),
        "expired" => ("Мерзімі өткен", "Просрочен"),
        "unknown_voucher" => ("Белгісіз ваучер", "Неизвестный ваучер"),
        "voucher_inactive" => ("Ваучер белсенді емес", "Ваучер не активен"),
        "not_a_school_day" => ("Оқу күні емес", "Не учебный день"),
        "outside_meal_window" => ("Тамақ уақыты емес", "Не время питания"),
        "already_served" => ("Бүгін тамақ алған", "Уже питался сегодня"),
        "ok" => ("Берілді", "Выдано"),
        other => return other.to_owned(),
    };
    tr(lang, kk, ru).to_owned()
}

pub fn consent_label(lang: Lang, status: &str) -> String {
    let (kk, ru) = match status {
        "no_phone" => ("Телефон жоқ", "Нет телефона"),
        "refused" => ("Бас тартты", "Отказ"),
        "expired" => ("Жауап болмады", "Нет ответа"),
        "consented" => ("Келісті", "Согласие"),
        "withdrawn" => ("Келісімін кері қайтарды", "Согласие отозвано"),
        other => return other.to_owned(),
    };
    tr(lang, kk, ru).to_owned()
}

pub fn meal_kind_label(lang: Lang, kind: &str) -> String {
    let (kk, ru) = match kind {
        "breakfast" => ("Таңғы ас", "Завтрак"),
        "lunch" => ("Түскі ас", "Обед"),
        "snack" => ("Бесін ас", "Полдник"),
        other => return other.to_owned(),
    };
    tr(lang, kk, ru).to_owned()
}

pub fn role_label(lang: Lang, role: &str) -> String {
    let (kk, ru) = match role {
        "school_admin" => ("Мектеп әкімшісі", "Администратор школы"),
        "authority" => ("Білім бөлімі", "Отдел образования"),
        "operator" => ("Оператор", "Оператор"),
        other => return other.to_owned(),
    };
    tr(lang, kk, ru).to_owned()
}

pub fn complaint_status_label(lang: Lang, status: &str) -> String {
    let (kk, ru) = match status {
        "new" | "pending" | "queued" => ("Жаңа", "Новая"),
        "sent" | "forwarded" | "delivered" => ("Жіберілді", "Отправлена"),
        "answered" | "resolved" | "closed" => ("Қаралды", "Рассмотрена"),
        other => return other.to_owned(),
    };
    tr(lang, kk, ru).to_owned()
}

/// "Surname Name", or a dash when the voucher is unknown.
pub fn pupil_name(last: Option<&str>, first: Option<&str>) -> String {
    match (last, first) {
        (None, None) => "—".to_owned(),
        (l, f) => [l, f].into_iter().flatten().collect::<Vec<_>>().join(" "),
    }
}

pub fn class_name(grade: Option<i64>, letter: Option<&str>) -> String {
    match grade {
        Some(g) => format!("{g}{}", letter.unwrap_or("")),
        None => "—".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn every_verdict_has_a_label_in_both_languages() {
        for v in shared::Verdict::ALL {
            let kk = verdict_label(Lang::Kk, v.code());
            let ru = verdict_label(Lang::Ru, v.code());
            assert_ne!(kk, v.code());
            assert_ne!(ru, v.code());
            assert_ne!(kk, ru);
        }
    }

    #[test]
    fn times_are_local() {
        assert_eq!(
            local_datetime(crate::testkit::MONDAY_9AM),
            "2026-11-23 09:00"
        );
        assert_eq!(local_clock(crate::testkit::MONDAY_9AM + 5), "09:00:05");
    }
}
