//! Schools and pupils as the NOBD roster describes them.

use super::{StoreError, StoreResult};
use crate::eligibility::Category;
use async_trait::async_trait;
use sqlx::FromRow;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct School {
    pub code: i64,
    pub bin: String,
    pub name: String,
    pub district: Option<String>,
}

/// A pupil as imported; personal data that never leaves the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPupil {
    pub iin: String,
    pub school_code: i64,
    pub last_name: String,
    pub first_name: String,
    pub middle_name: Option<String>,
    pub grade: i64,
    pub class_letter: String,
    pub receives_asp: bool,
    pub per_capita_income_kzt: Option<i64>,
    pub orphan: bool,
    pub mother_name: Option<String>,
    pub mother_phone: Option<String>,
    pub father_name: Option<String>,
    pub father_phone: Option<String>,
    pub guardian_name: Option<String>,
    pub guardian_phone: Option<String>,
    pub card_number: Option<String>,
    pub lang: String,
    pub category: Category,
    pub contact_phone: Option<String>,
    pub contact_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Pupil {
    pub id: i64,
    pub iin: String,
    pub school_code: i64,
    pub last_name: String,
    pub first_name: String,
    pub middle_name: Option<String>,
    pub grade: i64,
    pub class_letter: String,
    pub receives_asp: bool,
    pub per_capita_income_kzt: Option<i64>,
    pub orphan: bool,
    pub mother_name: Option<String>,
    pub mother_phone: Option<String>,
    pub father_name: Option<String>,
    pub father_phone: Option<String>,
    pub guardian_name: Option<String>,
    pub guardian_phone: Option<String>,
    pub card_number: Option<String>,
    pub lang: String,
    #[sqlx(try_from = "String")]
    pub category: Category,
    pub contact_phone: Option<String>,
    pub contact_name: Option<String>,
    pub removed_at: Option<i64>,
}

impl Pupil {
    /// "Surname Name Patronymic", as the consent SMS addresses the child.
    pub fn full_name(&self) -> String {
        full_name(
            &self.last_name,
            &self.first_name,
            self.middle_name.as_deref(),
        )
    }

    /// First name and last initial: all a terminal ever shows.
    pub fn display_name(&self) -> String {
        match self.last_name.chars().next() {
            Some(c) => format!("{} {}.", self.first_name, c),
            None => self.first_name.clone(),
        }
    }

    pub fn phones(&self) -> impl Iterator<Item = &str> {
        [&self.mother_phone, &self.father_phone, &self.guardian_phone]
            .into_iter()
            .filter_map(|p| p.as_deref())
    }
}

/// Surname, name, patronymic (where known): how the wallet and the SMS texts name a child.
pub fn full_name(last: &str, first: &str, middle: Option<&str>) -> String {
    [Some(last), Some(first), middle]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub const PUPIL_COLUMNS: &str = "id, iin, school_code, last_name, first_name, middle_name, grade, \
    class_letter, receives_asp, per_capita_income_kzt, orphan, mother_name, mother_phone, \
    father_name, father_phone, guardian_name, guardian_phone, card_number, lang, category, \
    contact_phone, contact_name, removed_at";

#[async_trait]
pub trait RosterStore {
    /// Creates the school (assigning its code) or renames it; returns it.
    async fn upsert_school(&self, bin: &str, name: &str, now: i64) -> StoreResult<School>;
    async fn school_by_bin(&self, bin: &str) -> StoreResult<Option<School>>;
    async fn school_by_code(&self, code: i64) -> StoreResult<Option<School>>;
    async fn schools(&self) -> StoreResult<Vec<School>>;
    /// Inserts or updates by IIN (clearing `removed_at`); returns the pupil's id.
    async fn upsert_pupil(&self, pupil: &NewPupil, now: i64) -> StoreResult<i64>;
    async fn pupil(&self, id: i64) -> StoreResult<Option<Pupil>>;
    async fn pupil_by_iin(&self, iin: &str) -> StoreResult<Option<Pupil>>;
    /// Pupils (not removed) listing this phone as mother's, father's or guardian's.
    async fn pupils_by_phone(&self, phone: &str) -> StoreResult<Vec<Pupil>>;
}

macro_rules! impl_roster {
    ($t:ty) => {
        #[async_trait]
        impl RosterStore for $t {
            async fn upsert_school(&self, bin: &str, name: &str, now: i64) -> StoreResult<School> {
                Ok(sqlx::query_as(
                    "INSERT INTO schools (bin, name, created_at, updated_at) VALUES ($1, $2, $3, $3)
                     ON CONFLICT (bin) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at
                     RETURNING code, bin, name, district",
                )
                .bind(bin)
                .bind(name)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn school_by_bin(&self, bin: &str) -> StoreResult<Option<School>> {
                Ok(sqlx::query_as("SELECT code, bin, name, district FROM schools WHERE bin = $1")
                    .bind(bin)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn school_by_code(&self, code: i64) -> StoreResult<Option<School>> {
                Ok(sqlx::query_as("SELECT code, bin, name, district FROM schools WHERE code = $1")
                    .bind(code)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn schools(&self) -> StoreResult<Vec<School>> {
                Ok(sqlx::query_as("SELECT code, bin, name, district FROM schools ORDER BY code")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn upsert_pupil(&self, p: &NewPupil, now: i64) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "INSERT INTO pupils (iin, school_code, last_name, first_name, middle_name, grade,
                        class_letter, receives_asp, per_capita_income_kzt, orphan, mother_name,
                        mother_phone, father_name, father_phone, guardian_name, guardian_phone,
                        card_number, lang, category, contact_phone, contact_name, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                        $17, $18, $19, $20, $21, $22, $22)
                     ON CONFLICT (iin) DO UPDATE SET school_code = excluded.school_code,
                        last_name = excluded.last_name, first_name = excluded.first_name,
                        middle_name = excluded.middle_name, grade = excluded.grade,
                        class_letter = excluded.class_letter, receives_asp = excluded.receives_asp,
                        per_capita_income_kzt = excluded.per_capita_income_kzt, orphan = excluded.orphan,
                        mother_name = excluded.mother_name, mother_phone = excluded.mother_phone,
                        father_name = excluded.father_name, father_phone = excluded.father_phone,
                        guardian_name = excluded.guardian_name, guardian_phone = excluded.guardian_phone,
                        card_number = excluded.card_number, lang = excluded.lang,
                        category = excluded.category, contact_phone = excluded.contact_phone,
                        contact_name = excluded.contact_name, removed_at = NULL,
                        updated_at = excluded.updated_at
                     RETURNING id",
                )
                .bind(&p.iin)
                .bind(p.school_code)
                .bind(&p.last_name)
                .bind(&p.first_name)
                .bind(&p.middle_name)
                .bind(p.grade)
                .bind(&p.class_letter)
                .bind(p.receives_asp)
                .bind(p.per_capita_income_kzt)
                .bind(p.orphan)
                .bind(&p.mother_name)
                .bind(&p.mother_phone)
                .bind(&p.father_name)
                .bind(&p.father_phone)
                .bind(&p.guardian_name)
                .bind(&p.guardian_phone)
                .bind(&p.card_number)
                .bind(&p.lang)
                .bind(p.category.as_str())
                .bind(&p.contact_phone)
                .bind(&p.contact_name)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn pupil(&self, id: i64) -> StoreResult<Option<Pupil>> {
                Ok(sqlx::query_as(&format!("SELECT {PUPIL_COLUMNS} FROM pupils WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn pupil_by_iin(&self, iin: &str) -> StoreResult<Option<Pupil>> {
                Ok(sqlx::query_as(&format!("SELECT {PUPIL_COLUMNS} FROM pupils WHERE iin = $1"))
                    .bind(iin)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn pupils_by_phone(&self, phone: &str) -> StoreResult<Vec<Pupil>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {PUPIL_COLUMNS} FROM pupils
                     WHERE removed_at IS NULL
                       AND (mother_phone = $1 OR father_phone = $1 OR guardian_phone = $1)
                     ORDER BY id"
                ))
                .bind(phone)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
crate::impl_for_backends!(impl_roster);

impl TryFrom<String> for Category {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Category::parse(&s).ok_or(StoreError::Corrupt(format!("category {s:?}")))
    }
}
