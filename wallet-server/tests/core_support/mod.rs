//! Helpers shared by the server-core integration tests: settings, roster rows, imports.
#![allow(dead_code)]

use std::sync::Arc;
use wallet_server::config::Settings;
use wallet_server::roster::{self, Column, Format, ImportOptions, ImportReport, ImportRequest};
use wallet_server::store::Store;

pub use wallet_server::testkit::MONDAY_9AM;

pub const DAY: i64 = 24 * 3600;
pub const PUBLIC_URL: &str = "https://tamaq.example.kz";

/// The 2026-2027 year of the design, a known public URL, Russian by default.
pub fn settings() -> Settings {
    Settings::from_toml(&format!(
        r#"
[server]
public_url = "{PUBLIC_URL}"
default_lang = "ru"
[school_year]
start = "2026-09-01"
end = "2027-05-25"
[eligibility]
subsistence_minimum_kzt = 50851
"#
    ))
    .unwrap()
}

pub fn settings_with_secret(secret: &str) -> Settings {
    let mut s = settings();
    s.sms.inbound_secret = Some(wallet_server::config::Secret::new(secret));
    s
}

pub fn iin(n: usize) -> String {
    roster::sample::iins(n * 7 + 1000, 1).remove(0)
}

pub fn bin(k: usize) -> String {
    roster::sample::school_bin(k)
}

/// A valid row: pupil `n` of school `school`, receiving АСП, mother's phone `phone`.
pub fn row(n: usize, school: usize, phone: &str) -> [String; 19] {
    let mut r: [String; 19] = Default::default();
    let mut set = |c: Column, v: &str| r[c.index()] = v.to_owned();
    set(Column::SchoolBin, &bin(school));
    set(Column::SchoolName, &format!("Школа №{}", school + 1));
    set(Column::StudentIin, &iin(n));
    set(Column::LastName, "Сапаров");
    set(Column::FirstName, &format!("Алихан{n}"));
    set(Column::MiddleName, "Русланович");
    set(Column::Grade, "3");
    set(Column::ClassLetter, "А");
    set(Column::ReceivesAsp, "да");
    set(Column::PerCapitaIncomeKzt, "");
    set(Column::Orphan, "нет");
    set(Column::MotherName, "Сапарова Динара Ерлановна");
    set(Column::MotherPhone, phone);
    set(Column::FatherName, "Сапаров Руслан Маратович");
    set(Column::Lang, "ru");
    r
}

pub fn with(mut r: [String; 19], column: Column, value: &str) -> [String; 19] {
    r[column.index()] = value.to_owned();
    r
}

fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r', ';']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// A CSV file with the header and these rows (LF line ends, comma separator).
pub fn csv(rows: &[[String; 19]]) -> String {
    let mut out = Column::ALL.map(|c| c.name()).join(",");
    out.push('\n');
    for r in rows {
        out.push_str(&r.iter().map(|f| quote(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// The rows as the JSON array form: empty fields left out.
pub fn json(rows: &[[String; 19]]) -> String {
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::Value::Object(
                Column::ALL
                    .iter()
                    .filter(|c| !r[c.index()].is_empty())
                    .map(|c| (c.name().to_owned(), r[c.index()].clone().into()))
                    .collect(),
            )
        })
        .collect();
    serde_json::to_string_pretty(&items).unwrap()
}

pub async fn import_with(
    store: &Arc<dyn Store>,
    settings: &Settings,
    bytes: &[u8],
    format: Format,
    options: ImportOptions,
    now: i64,
) -> ImportReport {
    roster::import(
        store.as_ref(),
        settings,
        &ImportRequest {
            name: "roster.csv",
            actor: "test",
            bytes,
            format,
            options,
        },
        now,
        &|_, _| {},
    )
    .await
    .expect("import runs")
}

pub async fn import(store: &Arc<dyn Store>, text: &str, options: ImportOptions) -> ImportReport {
    import_with(
        store,
        &settings(),
        text.as_bytes(),
        Format::Csv,
        options,
        MONDAY_9AM - DAY,
    )
    .await
}

/// Declares `name::sqlite` and `name::postgres` (ignored unless asked for) running
/// `body(pg: bool)`, for tests that need more than a store.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body(false).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
            async fn postgres() {
                $body(true).await;
            }
        }
    };
}

/// The NOBD report's JSON Schema (docs/nobd-report.schema.json), compiled: every report a test
/// produces is checked against the contract.
pub fn nobd_schema() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/nobd-report.schema.json"
    );
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema compiles")
}
