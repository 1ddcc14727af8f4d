//! The roster's columns (DESIGN §7.1) and a row as read from a file, before validation.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    SchoolBin,
    SchoolName,
    StudentIin,
    LastName,
    FirstName,
    MiddleName,
    Grade,
    ClassLetter,
    ReceivesAsp,
    PerCapitaIncomeKzt,
    Orphan,
    MotherName,
    MotherPhone,
    FatherName,
    FatherPhone,
    GuardianName,
    GuardianPhone,
    CardNumber,
    Lang,
    // Optional columns (DESIGN §11): a file may leave them out.
    AspEntitled,
    InFamily,
}

/// The required columns of §7.1.
pub const REQUIRED_COUNT: usize = 19;
/// Every column a row can hold: the required ones and the optional ones.
pub const COLUMN_COUNT: usize = REQUIRED_COUNT + 2;

impl Column {
    /// The required columns, in the order of §7.1.
    pub const ALL: [Column; REQUIRED_COUNT] = [
        Column::SchoolBin,
        Column::SchoolName,
        Column::StudentIin,
        Column::LastName,
        Column::FirstName,
        Column::MiddleName,
        Column::Grade,
        Column::ClassLetter,
        Column::ReceivesAsp,
        Column::PerCapitaIncomeKzt,
        Column::Orphan,
        Column::MotherName,
        Column::MotherPhone,
        Column::FatherName,
        Column::FatherPhone,
        Column::GuardianName,
        Column::GuardianPhone,
        Column::CardNumber,
        Column::Lang,
    ];

    /// Columns a file may give or leave out (DESIGN §11): `asp_entitled` where NOBD supplies
    /// it, `in_family` (true when absent or empty).
    pub const OPTIONAL: [Column; COLUMN_COUNT - REQUIRED_COUNT] =
        [Column::AspEntitled, Column::InFamily];

    pub fn name(self) -> &'static str {
        match self {
            Column::SchoolBin => "school_bin",
            Column::SchoolName => "school_name",
            Column::StudentIin => "student_iin",
            Column::LastName => "last_name",
            Column::FirstName => "first_name",
            Column::MiddleName => "middle_name",
            Column::Grade => "grade",
            Column::ClassLetter => "class_letter",
            Column::ReceivesAsp => "receives_asp",
            Column::PerCapitaIncomeKzt => "per_capita_income_kzt",
            Column::Orphan => "orphan",
            Column::MotherName => "mother_name",
            Column::MotherPhone => "mother_phone",
            Column::FatherName => "father_name",
            Column::FatherPhone => "father_phone",
            Column::GuardianName => "guardian_name",
            Column::GuardianPhone => "guardian_phone",
            Column::CardNumber => "card_number",
            Column::Lang => "lang",
            Column::AspEntitled => "asp_entitled",
            Column::InFamily => "in_family",
        }
    }

    pub fn from_name(name: &str) -> Option<Column> {
        Column::ALL
            .into_iter()
            .chain(Column::OPTIONAL)
            .find(|c| c.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A problem with one row: `line N, column C: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line of the file where the row starts.
    pub line: u64,
    /// The column (or, in JSON, the field) at fault; `None` for the row as a whole.
    pub column: Option<String>,
    pub reason: String,
}

impl RowError {
    pub fn row(line: u64, reason: impl Into<String>) -> RowError {
        RowError {
            line,
            column: None,
            reason: reason.into(),
        }
    }

    pub fn at(line: u64, column: Column, reason: impl Into<String>) -> RowError {
        RowError {
            line,
            column: Some(column.name().to_owned()),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, column {}: {}", self.line, c, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// A row as read: every column's text, trimmed (`""` when empty or absent), plus the problems
/// found while reading it (wrong field count, bad UTF-8, a JSON value of the wrong type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    pub line: u64,
    pub values: [String; COLUMN_COUNT],
    pub errors: Vec<RowError>,
}

impl RawRow {
    pub fn new(line: u64) -> RawRow {
        RawRow {
            line,
            values: Default::default(),
            errors: Vec::new(),
        }
    }

    pub fn get(&self, c: Column) -> &str {
        &self.values[c.index()]
    }

    pub fn set(&mut self, c: Column, value: &str) {
        self.values[c.index()] = value.trim().to_owned();
    }
}
