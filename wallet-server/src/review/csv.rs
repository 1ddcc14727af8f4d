//! CSV that Excel opens correctly in Kazakh and Russian locales.
//!
//! - UTF-8 with a byte-order mark: without it Excel reads UTF-8 as the ANSI code page and
//!   Cyrillic turns into mojibake.
//! - `;` between fields: Excel splits on the locale's list separator, which is `;` wherever the
//!   decimal separator is a comma (kk-KZ, ru-RU); with `,` every row lands in one column.
//!   (A `sep=;` first line would also work, but makes Excel ignore the BOM.)
//! - CRLF line ends; fields with `;`, `"`, CR, LF or edge spaces in double quotes, inner quotes
//!   doubled (RFC 4180).
//! - Text that Excel would run as a formula (`=`, `+`, `-`, `@` first) gets a leading `'`; plain
//!   numbers are left alone.

pub const BOM: &[u8] = b"\xEF\xBB\xBF";
pub const DELIMITER: char = ';';

pub struct CsvWriter {
    out: String,
}

impl Default for CsvWriter {
    fn default() -> Self {
        CsvWriter::new()
    }
}

impl CsvWriter {
    pub fn new() -> CsvWriter {
        CsvWriter { out: String::new() }
    }

    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut first = true;
        for cell in cells {
            if !first {
                self.out.push(DELIMITER);
            }
            first = false;
            push_cell(&mut self.out, cell.as_ref());
        }
        self.out.push_str("\r\n");
    }

    /// The file: BOM, then the rows.
    pub fn finish(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(BOM.len() + self.out.len());
        bytes.extend_from_slice(BOM);
        bytes.extend_from_slice(self.out.as_bytes());
        bytes
    }
}

fn is_number(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|&b| b == b'.').count() <= 1
}

fn push_cell(out: &mut String, raw: &str) {
    let guarded;
    let text = if raw.starts_with(['=', '+', '-', '@', '\t', '\r']) && !is_number(raw) {
        guarded = format!("'{raw}");
        guarded.as_str()
    } else {
        raw
    };
    let needs_quotes =
        text.contains([DELIMITER, '"', '\r', '\n']) || text.starts_with(' ') || text.ends_with(' ');
    if needs_quotes {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bytes_for_a_small_file() {
        let mut w = CsvWriter::new();
        w.row(["Күні", "Сынып", "Пікір"]);
        w.row(["2026-11-23", "3А", "вкусно; \"очень\""]);
        w.row(["-5", "=SUM(A1)", "две\nстроки"]);
        let bytes = w.finish();
        let expected = "\u{feff}Күні;Сынып;Пікір\r\n\
                        2026-11-23;3А;\"вкусно; \"\"очень\"\"\"\r\n\
                        -5;'=SUM(A1);\"две\nстроки\"\r\n";
        assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    }

    proptest::proptest! {
        #[test]
        fn any_cells_read_back_the_same(rows in proptest::collection::vec(
            proptest::collection::vec("[^=+@\\-\t\r]\\PC{0,10}|([ ;\"\na-яА-Я0-9][ ;\"\r\na-яА-Я0-9]{0,7})?", 1..5), 1..5)) {
            // Same number of cells per row, as every export writes.
            let width = rows[0].len();
            let rows: Vec<Vec<String>> = rows.into_iter().map(|mut r| { r.resize(width, String::new()); r }).collect();
            // A reader takes a U+FEFF at the very start for a second byte-order mark.
            proptest::prop_assume!(!rows[0][0].starts_with('\u{feff}'));
            let mut w = CsvWriter::new();
            for r in &rows { w.row(r); }
            let bytes = w.finish();
            proptest::prop_assert!(bytes.starts_with(BOM));
            let mut reader = ::csv::ReaderBuilder::new()
                .delimiter(b';')
                .has_headers(false)
                .from_reader(&bytes[BOM.len()..]);
            let back: Vec<Vec<String>> = reader
                .records()
                .map(|r| r.unwrap().iter().map(str::to_owned).collect())
                .collect();
            // The csv crate drops wholly empty lines; an all-empty single-cell row is one.
            let expected: Vec<Vec<String>> = rows.into_iter()
                .filter(|r| !(r.len() == 1 && r[0].is_empty()))
                .collect();
            proptest::prop_assert_eq!(back, expected);
        }
    }
}
