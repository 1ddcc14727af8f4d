//! The terminal's verdicts (DESIGN §4): stable codes, checked in this order, and short messages
//! for canteen staff in Kazakh and Russian. None of them mentions why a pupil eats for free.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    ClockUntrusted,
    BadFormat,
    UnknownKey,
    BadSignature,
    WrongSchool,
    NotYetValid,
    Expired,
    UnknownVoucher,
    VoucherInactive,
    NotASchoolDay,
    OutsideMealWindow,
    AlreadyServed,
    Ok,
}

impl Verdict {
    pub const ALL: [Verdict; 13] = [
        Verdict::ClockUntrusted,
        Verdict::BadFormat,
        Verdict::UnknownKey,
        Verdict::BadSignature,
        Verdict::WrongSchool,
        Verdict::NotYetValid,
        Verdict::Expired,
        Verdict::UnknownVoucher,
        Verdict::VoucherInactive,
        Verdict::NotASchoolDay,
        Verdict::OutsideMealWindow,
        Verdict::AlreadyServed,
        Verdict::Ok,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Verdict::ClockUntrusted => "clock_untrusted",
            Verdict::BadFormat => "bad_format",
            Verdict::UnknownKey => "unknown_key",
            Verdict::BadSignature => "bad_signature",
            Verdict::WrongSchool => "wrong_school",
            Verdict::NotYetValid => "not_yet_valid",
            Verdict::Expired => "expired",
            Verdict::UnknownVoucher => "unknown_voucher",
            Verdict::VoucherInactive => "voucher_inactive",
            Verdict::NotASchoolDay => "not_a_school_day",
            Verdict::OutsideMealWindow => "outside_meal_window",
            Verdict::AlreadyServed => "already_served",
            Verdict::Ok => "ok",
        }
    }

    /// Whether the meal is served. Only `ok` serves; `already_served` shows the pupil but refuses.
    pub fn serves(self) -> bool {
        self == Verdict::Ok
    }

    /// Whether staff see the pupil's name and class with this verdict.
    pub fn shows_pupil(self) -> bool {
        matches!(self, Verdict::Ok | Verdict::AlreadyServed)
    }

    pub fn message_kk(self) -> &'static str {
        match self {
            Verdict::ClockUntrusted => "Терминал сағаты артқа кетті. Әкімшіге хабарлаңыз.",
            Verdict::BadFormat => "QR-код оқылмады. Қайта көрсетіңіз.",
            Verdict::UnknownKey => "QR-код танылмады. Терминалды синхрондаңыз.",
            Verdict::BadSignature => "QR-код жарамсыз.",
            Verdict::WrongSchool => "Бұл QR-код басқа мектепке арналған.",
            Verdict::NotYetValid => "QR-код әлі жарамды емес. Сағатты тексеріңіз.",
            Verdict::Expired => "QR-кодтың мерзімі өтті. Жаңасын жасаңыз.",
            Verdict::UnknownVoucher => "Ваучер табылмады. Терминалды синхрондаңыз.",
            Verdict::VoucherInactive => "Ваучер белсенді емес.",
            Verdict::NotASchoolDay => "Бүгін оқу күні емес.",
            Verdict::OutsideMealWindow => "Қазір тамақтану уақыты емес.",
            Verdict::AlreadyServed => "Бүгін тамақ берілді.",
            Verdict::Ok => "Тамақ беріңіз.",
        }
    }

    pub fn message_ru(self) -> &'static str {
        match self {
            Verdict::ClockUntrusted => "Часы терминала ушли назад. Сообщите администратору.",
            Verdict::BadFormat => "QR-код не читается. Покажите ещё раз.",
            Verdict::UnknownKey => "QR-код не распознан. Синхронизируйте терминал.",
            Verdict::BadSignature => "QR-код недействителен.",
            Verdict::WrongSchool => "Этот QR-код для другой школы.",
            Verdict::NotYetValid => "QR-код ещё не действует. Проверьте часы.",
            Verdict::Expired => "Срок QR-кода истёк. Создайте новый.",
            Verdict::UnknownVoucher => "Ваучер не найден. Синхронизируйте терминал.",
            Verdict::VoucherInactive => "Ваучер не активен.",
            Verdict::NotASchoolDay => "Сегодня не учебный день.",
            Verdict::OutsideMealWindow => "Сейчас не время питания.",
            Verdict::AlreadyServed => "Сегодня уже питался.",
            Verdict::Ok => "Выдать питание.",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown verdict code {0:?}")]
pub struct UnknownVerdict(pub String);

impl FromStr for Verdict {
    type Err = UnknownVerdict;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.code() == s)
            .ok_or_else(|| UnknownVerdict(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for v in Verdict::ALL {
            assert!(seen.insert(v.code()));
            assert_eq!(v.code().parse::<Verdict>().unwrap(), v);
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                format!("\"{}\"", v.code())
            );
        }
        assert!("nope".parse::<Verdict>().is_err());
    }

    #[test]
    fn only_ok_serves_and_pupil_is_shown_for_ok_and_already_served() {
        for v in Verdict::ALL {
            assert_eq!(v.serves(), v == Verdict::Ok);
            assert_eq!(
                v.shows_pupil(),
                v == Verdict::Ok || v == Verdict::AlreadyServed
            );
            assert!(!v.message_kk().is_empty() && !v.message_ru().is_empty());
        }
    }
}
