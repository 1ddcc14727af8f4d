//! Loading the meal views once for JSON, HTML and CSV, and their CSV files.

use super::csv::CsvWriter;
use super::params::Group;
use super::texts::{
    class_name, consent_label, local_clock, local_datetime, meal_kind_label, pupil_name, tr,
    verdict_label,
};
use crate::config::Lang;
use crate::store::school_view::{
    ClassMeals, ConsentFollowUp, DayMeals, DuplicateScan, MealFilter, MealRow, PupilMeals,
    RejectedScan,
};
use crate::store::{Store, StoreResult};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Rows one request may list; exports and pages say when a list was cut.
pub const ROW_LIMIT: i64 = 10_000;

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MealRows {
    Day(Vec<DayMeals>),
    Class(Vec<ClassMeals>),
    Pupil(Vec<PupilMeals>),
    List(Vec<MealRow>),
}

impl MealRows {
    pub fn len(&self) -> usize {
        match self {
            MealRows::Day(r) => r.len(),
            MealRows::Class(r) => r.len(),
            MealRows::Pupil(r) => r.len(),
            MealRows::List(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub async fn load_meals(store: &dyn Store, f: &MealFilter, group: Group) -> StoreResult<MealRows> {
    Ok(match group {
        Group::Day => MealRows::Day(store.meals_by_day(f).await?),
        Group::Class => MealRows::Class(store.meals_by_class(f).await?),
        Group::Pupil => MealRows::Pupil(store.meals_by_pupil(f).await?),
        Group::List => MealRows::List(store.meal_list(f, ROW_LIMIT).await?),
    })
}

pub fn meals_csv(lang: Lang, rows: &MealRows) -> Vec<u8> {
    let mut w = CsvWriter::new();
    let t = |kk, ru| tr(lang, kk, ru);
    match rows {
        MealRows::Day(rows) => {
            w.row([
                t("Күні", "Дата"),
                t("Тамақ", "Питание"),
                t("Қайталау", "Дубликаты"),
            ]);
            for r in rows {
                w.row([
                    r.service_day.clone(),
                    r.meals.to_string(),
                    r.duplicates.to_string(),
                ]);
            }
        }
        MealRows::Class(rows) => {
            w.row([
                t("Сынып", "Класс"),
                t("Оқушылар", "Учеников"),
                t("Тамақ", "Питание"),
            ]);
            for r in rows {
                w.row([
                    class_name(r.grade, r.class_letter.as_deref()),
                    r.pupils.to_string(),
                    r.meals.to_string(),
                ]);
            }
        }
        MealRows::Pupil(rows) => {
            w.row([
                t("Оқушы", "Ученик"),
                t("Сынып", "Класс"),
                t("Тамақ", "Питание"),
                t("Алғашқы күн", "Первый день"),
                t("Соңғы күн", "Последний день"),
                t("Ваучер", "Ваучер"),
            ]);
            for r in rows {
                w.row([
                    pupil_name(r.last_name.as_deref(), r.first_name.as_deref()),
                    class_name(r.grade, r.class_letter.as_deref()),
                    r.meals.to_string(),
                    r.first_day.clone(),
                    r.last_day.clone(),
                    r.voucher_id.clone().unwrap_or_default(),
                ]);
            }
        }
        MealRows::List(rows) => {
            w.row([
                t("Күні", "Дата"),
                t("Уақыты", "Время"),
                t("Тамақ түрі", "Приём пищи"),
                t("Оқушы", "Ученик"),
                t("Сынып", "Класс"),
                t("Терминал", "Терминал"),
                t("Тәсіл", "Способ"),
                t("Ваучер", "Ваучер"),
            ]);
            for r in rows {
                w.row([
                    r.service_day.clone(),
                    local_clock(r.served_at),
                    meal_kind_label(lang, &r.meal_kind),
                    pupil_name(r.last_name.as_deref(), r.first_name.as_deref()),
                    class_name(r.grade, r.class_letter.as_deref()),
                    r.terminal_label.clone().unwrap_or_default(),
                    r.source.clone(),
                    r.voucher_id.clone().unwrap_or_default(),
                ]);
            }
        }
    }
    w.finish()
}

pub fn rejected_csv(lang: Lang, rows: &[RejectedScan]) -> Vec<u8> {
    let mut w = CsvWriter::new();
    let t = |kk, ru| tr(lang, kk, ru);
    w.row([
        t("Күні", "Дата"),
        t("Уақыты", "Время"),
        t("Нәтиже", "Результат"),
        t("Тамақ түрі", "Приём пищи"),
        t("Оқушы", "Ученик"),
        t("Сынып", "Класс"),
        t("Терминал", "Терминал"),
        t("Қайта әкелу саны", "Повторов «уже питался»"),
        t("Ваучер", "Ваучер"),
        t("Сканерлеу саны", "Сканирований"),
        t("Минуттық шектен тыс", "Сверх лимита в минуту"),
    ]);
    for r in rows {
        w.row([
            r.service_day.clone(),
            local_clock(r.scanned_at),
            verdict_label(lang, &r.verdict),
            meal_kind_label(lang, &r.meal_kind),
            pupil_name(r.last_name.as_deref(), r.first_name.as_deref()),
            class_name(r.grade, r.class_letter.as_deref()),
            r.terminal_label.clone().unwrap_or_default(),
            r.already_served_count.to_string(),
            r.voucher_id.clone().unwrap_or_default(),
            r.count.to_string(),
            if r.capped {
                t("иә", "да")
            } else {
                t("жоқ", "нет")
            }
            .to_owned(),
        ]);
    }
    w.finish()
}

pub fn duplicates_csv(lang: Lang, rows: &[DuplicateScan]) -> Vec<u8> {
    let mut w = CsvWriter::new();
    let t = |kk, ru| tr(lang, kk, ru);
    w.row([
        t("Күні", "Дата"),
        t("Уақыты", "Время"),
        t("Тамақ түрі", "Приём пищи"),
        t("Оқушы", "Ученик"),
        t("Сынып", "Класс"),
        t("Терминал", "Терминал"),
        t("Есепке алынды", "Учтено"),
        t("Ваучер", "Ваучер"),
    ]);
    for r in rows {
        w.row([
            r.service_day.clone(),
            local_clock(r.scanned_at),
            meal_kind_label(lang, &r.meal_kind),
            pupil_name(r.last_name.as_deref(), r.first_name.as_deref()),
            class_name(r.grade, r.class_letter.as_deref()),
            r.terminal_label.clone().unwrap_or_default(),
            if r.counted {
                t("иә", "да")
            } else {
                t("жоқ", "нет")
            }
            .to_owned(),
            r.voucher_id.clone().unwrap_or_default(),
        ]);
    }
    w.finish()
}

pub fn consent_csv(lang: Lang, rows: &[ConsentFollowUp]) -> Vec<u8> {
    let mut w = CsvWriter::new();
    let t = |kk, ru| tr(lang, kk, ru);
    w.row([
        t("Оқушы", "Ученик"),
        t("Сынып", "Класс"),
        t("Нәтиже", "Итог"),
        t("Уақыты", "Время"),
        t("Оқу жылы", "Учебный год"),
    ]);
    for r in rows {
        let name = [
            Some(&r.last_name),
            Some(&r.first_name),
            r.middle_name.as_ref(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
        w.row([
            name,
            format!("{}{}", r.grade, r.class_letter),
            consent_label(lang, &r.status),
            local_datetime(r.at),
            r.school_year.clone(),
        ]);
    }
    w.finish()
}

/// A CSV download; `name` is ASCII (BIN, dates, a word).
pub fn csv_response(name: &str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response()
}
