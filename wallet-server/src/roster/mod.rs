//! Roster import (DESIGN §7.1): read a NOBD roster (CSV or JSON), validate every row, apply the
//! good ones in one transaction.
//!
//! * [`read_rows`]: file bytes → raw rows ([`csv_source`], [`json_source`]).
//! * [`prepare`]: raw rows → valid pupils grouped by school, and every bad row's problems
//!   (line, column, reason); a later row repeating an IIN is refused.
//! * [`import`]: both, then [`crate::store::ImportStore::apply_roster`] — nothing when a row was
//!   refused, unless `skip_invalid`.
//!
//! Eligibility is decided here (`eligibility::Family::category` with the monthly subsistence
//! minimum in force on the import's date), as is the parent to ask (mother, father, guardian:
//! the first with a phone; an orphan's guardian first).

pub mod csv_source;
pub mod fields;
pub mod json_source;
pub mod sample;
pub mod validate;

use crate::config::Settings;
use crate::lifecycle;
use crate::store::import::{ImportCounts, ImportPupil, ImportSchool, ListedRules, RosterBatch};
use crate::store::vouchers::Voucher;
use crate::store::{Store, StoreError};
use shared::ids::Iin;
use std::collections::{HashMap, HashSet};
use std::path::Path;

pub use fields::{Column, RawRow, RowError};
pub use validate::{ValidRow, Validator};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file as a whole cannot be read: nothing is imported.
    #[error("{0}")]
    File(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Adds and updates the listed pupils.
    #[default]
    Incremental,
    /// Also removes the listed schools' pupils the file leaves out, revoking their vouchers.
    Snapshot,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Incremental => "incremental",
            Mode::Snapshot => "snapshot",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportOptions {
    pub mode: Mode,
    /// Import the good rows even when some are refused.
    pub skip_invalid: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

/// `.json` / `.csv` by name; otherwise JSON when the first character (after a byte-order mark
/// and blanks) is `[`.
pub fn detect_format(name: Option<&Path>, bytes: &[u8]) -> Format {
    let ext = name
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        _ => match csv_source::strip_bom(bytes)
            .iter()
            .find(|b| !b.is_ascii_whitespace())
        {
            Some(b'[') => Format::Json,
            _ => Format::Csv,
        },
    }
}

/// Files that are not text in UTF-8 at all, recognised by their first bytes, with what to do.
pub fn check_file_kind(bytes: &[u8]) -> Result<(), ImportError> {
    let message = if bytes.starts_with(b"PK\x03\x04") {
        "this is an Excel workbook (.xlsx) or another ZIP file, not CSV: open it in Excel and \
         save it as \"CSV UTF-8 (comma delimited)\" (File → Save As)"
    } else if bytes.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        "this is an old Excel workbook (.xls), not CSV: open it in Excel and save it as \
         \"CSV UTF-8 (comma delimited)\" (File → Save As)"
    } else if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        "the file is in UTF-16 (\"Unicode text\"): save it as \"CSV UTF-8\" and import that"
    } else {
        return Ok(());
    };
    Err(ImportError::File(message.to_owned()))
}

pub fn read_rows(bytes: &[u8], format: Format) -> Result<Vec<RawRow>, ImportError> {
    check_file_kind(bytes)?;
    match format {
        Format::Csv => csv_source::read(bytes),
        Format::Json => json_source::read(bytes),
    }
}

/// Hands each row to `f` as it is read.
pub fn read_each(bytes: &[u8], format: Format, f: impl FnMut(RawRow)) -> Result<(), ImportError> {
    check_file_kind(bytes)?;
    match format {
        Format::Csv => csv_source::read_each(bytes, f),
        Format::Json => json_source::read_each(bytes, f),
    }
}

/// The file's rows, checked.
#[derive(Debug, Default)]
pub struct Prepared {
    pub schools: Vec<ImportSchool>,
    pub pupils: Vec<ImportPupil>,
    /// Every problem of every refused row, in file order.
    pub errors: Vec<RowError>,
    pub rejected_rows: usize,
    pub total_rows: usize,
    /// Every valid IIN the file names (refused rows too).
    pub listed_iins: HashSet<String>,
}

pub fn prepare(rows: &[RawRow], validator: &Validator) -> Prepared {
    let mut p = Preparer::new(validator);
    for raw in rows {
        p.add(raw);
    }
    p.finish()
}

/// Checks rows one by one, keeping only what the import needs.
pub struct Preparer<'a> {
    validator: &'a Validator,
    out: Prepared,
    first_line: HashMap<String, u64>,
    /// (school BIN, card) → the line that gave it first.
    first_card: HashMap<(String, String), u64>,
    school_index: HashMap<String, usize>,
}

impl<'a> Preparer<'a> {
    pub fn new(validator: &'a Validator) -> Preparer<'a> {
        Preparer {
            validator,
            out: Prepared::default(),
            first_line: HashMap::new(),
            first_card: HashMap::new(),
            school_index: HashMap::new(),
        }
    }

    pub fn add(&mut self, raw: &RawRow) {
        let out = &mut self.out;
        out.total_rows += 1;
        let mut result = self.validator.validate(raw);
        if let Ok(iin) = Iin::parse(raw.get(Column::StudentIin)) {
            let iin = iin.to_string();
            if let Some(&line) = self.first_line.get(&iin) {
                let dup = RowError::at(
                    raw.line,
                    Column::StudentIin,
                    format!("IIN {iin} already given on line {line}"),
                );
                match &mut result {
                    Ok(_) => result = Err(vec![dup]),
                    Err(errors) => errors.push(dup),
                }
            } else {
                self.first_line.insert(iin.clone(), raw.line);
            }
            out.listed_iins.insert(iin);
        }
        if let Ok(row) = &result {
            if let Some(card) = &row.pupil.card_number {
                let key = (row.school_bin.clone(), card.clone());
                if let Some(&line) = self.first_card.get(&key) {
                    result = Err(vec![RowError::at(
                        raw.line,
                        Column::CardNumber,
                        format!(
                            "card {card} already given on line {line}; a card names one pupil of its school"
                        ),
                    )]);
                } else {
                    self.first_card.insert(key, raw.line);
                }
            }
        }
        match result {
            Ok(row) => {
                let next = self.school_index.len();
                let school = *self
                    .school_index
                    .entry(row.school_bin.clone())
                    .or_insert(next);
                if school == out.schools.len() {
                    out.schools.push(ImportSchool {
                        bin: row.school_bin,
                        name: row.school_name,
                    });
                }
                out.pupils.push(ImportPupil {
                    school,
                    pupil: row.pupil,
                    line: raw.line,
                });
            }
            Err(errors) => {
                out.rejected_rows += 1;
                out.errors.extend(errors);
            }
        }
    }

    pub fn finish(self) -> Prepared {
        self.out
    }
}

/// What an import did (or, when `applied` is false, would not do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: usize,
    pub rejected_rows: usize,
    pub errors: Vec<RowError>,
    /// False when refused rows stopped an all-or-nothing import: nothing was written.
    pub applied: bool,
    pub counts: ImportCounts,
}

impl ImportReport {
    /// `added 3, updated 1, unchanged 10, removed 0, rejected 2` and the rest.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        format!(
            "rows {}: added {}, updated {}, unchanged {}, removed {}, rejected {}; \
             schools created {}, vouchers revoked {}{}{}{}",
            self.rows,
            c.added,
            c.updated,
            c.unchanged,
            c.removed,
            self.rejected_rows,
            c.schools_created,
            c.vouchers_revoked,
            if c.vouchers_moved + c.vouchers_not_eligible + c.vouchers_restored == 0 {
                String::new()
            } else {
                format!(
                    "; vouchers moved {}, revoked as not eligible {}, restored {}",
                    c.vouchers_moved, c.vouchers_not_eligible, c.vouchers_restored
                )
            },
            if c.card_conflicts.is_empty() {
                String::new()
            } else {
                format!("; imported without their card {}", c.card_conflicts.len())
            },
            if self.applied {
                ""
            } else {
                " — nothing imported"
            }
        )
    }
}

/// One import: the file, how to apply it, and who asks (file name and actor are audited).
pub struct ImportRequest<'a> {
    pub name: &'a str,
    pub actor: &'a str,
    pub bytes: &'a [u8],
    pub format: Format,
    pub options: ImportOptions,
}

/// Reads, validates and applies a roster. `progress(done, total)` is called as pupils are
/// written. Refused rows without `skip_invalid`: nothing is written, `applied` is false.
pub async fn import(
    store: &dyn Store,
    settings: &Settings,
    request: &ImportRequest<'_>,
    now: i64,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> Result<ImportReport, ImportError> {
    let today = shared::ServiceDay::from_unix(now).date();
    let validator = Validator {
        subsistence_minimum_kzt: settings.eligibility.minimum_on(today),
        default_lang: settings.server.default_lang,
    };
    let mut preparer = Preparer::new(&validator);
    read_each(request.bytes, request.format, |raw| preparer.add(&raw))?;
    let prepared = preparer.finish();
    let mut report = ImportReport {
        rows: prepared.total_rows,
        rejected_rows: prepared.rejected_rows,
        errors: prepared.errors,
        applied: false,
        counts: ImportCounts::default(),
    };
    if report.rejected_rows > 0 && !request.options.skip_invalid {
        return Ok(report);
    }
    let total = prepared.pupils.len();
    let removal_detail = format!("removed: no longer listed in {}", request.name);
    let not_eligible_detail = format!("not_eligible: by {}", request.name);
    let restore_detail = format!("restored: listed again in {}", request.name);
    let plan = move |v: &Voucher, eligible: bool| lifecycle::listed_plan(v, eligible, today);
    let batch = RosterBatch {
        schools: &prepared.schools,
        pupils: &prepared.pupils,
        listed: ListedRules {
            plan: &plan,
            revoke: lifecycle::not_eligible(request.actor, &not_eligible_detail),
            restore: lifecycle::relisted(request.actor, &restore_detail),
            revoked_sms: &lifecycle::not_eligible_sms,
            moved: lifecycle::moved(request.actor, request.name),
        },
        snapshot: request.options.mode == Mode::Snapshot,
        listed_iins: &prepared.listed_iins,
        removal: lifecycle::removal(request.actor, &removal_detail),
        actor: request.actor,
        source: request.name,
        rejected: report.rejected_rows,
    };
    report.counts = store
        .apply_roster(&batch, now, &|done| progress(done, total))
        .await?;
    if report.counts.vouchers_not_eligible > 0 {
        crate::sms::wake();
    }
    report.applied = true;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_by_name_then_content() {
        assert_eq!(
            detect_format(Some(Path::new("r.JSON")), b"a,b"),
            Format::Json
        );
        assert_eq!(detect_format(Some(Path::new("r.csv")), b"[1]"), Format::Csv);
        assert_eq!(detect_format(None, b"\xEF\xBB\xBF \n [{}]"), Format::Json);
        assert_eq!(
            detect_format(Some(Path::new("r.txt")), b"school_bin,"),
            Format::Csv
        );
    }

    #[test]
    fn excel_and_utf16_files_are_named_with_what_to_do() {
        let utf16: Vec<u8> = b"\xFF\xFE"
            .iter()
            .copied()
            .chain("school_bin".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        for (bytes, needle) in [
            (
                &b"PK\x03\x04\x14\x00rest of a zip"[..],
                "Excel workbook (.xlsx)",
            ),
            (
                b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1....",
                "old Excel workbook (.xls)",
            ),
            (&utf16[..], "UTF-16"),
        ] {
            for format in [Format::Csv, Format::Json] {
                let err = read_rows(bytes, format).unwrap_err().to_string();
                assert!(err.contains(needle), "{err}");
                assert!(err.contains("CSV UTF-8"), "{err}");
            }
        }
    }

    #[test]
    fn a_header_of_many_bad_columns_is_cut_with_a_count() {
        let mut header: Vec<String> = (0..100_000).map(|i| format!("col{i}")).collect();
        header[3] = "x\"\u{7}y".into();
        let text = format!("{}\n", header.join(","));
        let err = read_rows(text.as_bytes(), Format::Csv)
            .unwrap_err()
            .to_string();
        assert!(err.len() < 2_000, "{} bytes", err.len());
        assert!(err.contains("and 99990 more"), "{err}");
        assert!(err.contains("\"x\\\"\\u{7}y\""), "{err}");
        assert!(err.contains("missing columns"), "{err}");
    }
}
