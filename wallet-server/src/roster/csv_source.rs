//! Reading a CSV roster: a header row naming the §7.1 columns in any order, UTF-8 with or
//! without a byte-order mark, CRLF or LF line ends, quoted fields (`"…"`, `""` for a quote).
//! Excel in Kazakh and Russian locales separates fields with `;`: the separator (`,`, `;` or
//! tab) is taken from the header line.

use super::fields::{Column, RawRow, RowError, REQUIRED_COUNT};
use super::ImportError;

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// The separator used most often outside quotes in the first line.
pub fn detect_delimiter(bytes: &[u8]) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in bytes {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            _ if !quoted => {
                if let Some(c) = counts.iter_mut().find(|(d, _)| *d == b) {
                    c.1 += 1;
                }
            }
            _ => {}
        }
    }
    // On a tie (e.g. a one-column file) the comma wins: it comes first.
    counts
        .iter()
        .fold((b',', 0), |best, &c| if c.1 > best.1 { c } else { best })
        .0
}

/// Column names quoted in a header error: a header of 100,000 columns must not become a
/// megabyte of message.
const LISTED_NAMES: usize = 10;

fn name_list(names: &[String]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(LISTED_NAMES)
        .map(|n| shared::error::excerpt(n))
        .collect();
    let mut out = format!("[{}]", shown.join(", "));
    if names.len() > LISTED_NAMES {
        out.push_str(&format!(" and {} more", names.len() - LISTED_NAMES));
    }
    out
}

/// Maps each header position to its column; refuses unknown, repeated or missing columns.
fn read_header(fields: &csv::ByteRecord) -> Result<Vec<Column>, ImportError> {
    let mut columns = Vec::with_capacity(fields.len());
    let mut unknown = Vec::new();
    let mut repeated = Vec::new();
    for field in fields {
        let name = String::from_utf8_lossy(field).trim().to_ascii_lowercase();
        match Column::from_name(&name) {
            Some(c) if columns.contains(&c) => repeated.push(name),
            Some(c) => columns.push(c),
            None => unknown.push(name),
        }
    }
    let missing: Vec<&str> = Column::ALL
        .iter()
        .filter(|c| !columns.contains(c))
        .map(|c| c.name())
        .collect();
    let mut problems = Vec::new();
    if !unknown.is_empty() {
        problems.push(format!("unknown columns {}", name_list(&unknown)));
    }
    if !repeated.is_empty() {
        problems.push(format!("columns given twice {}", name_list(&repeated)));
    }
    if !missing.is_empty() {
        problems.push(format!("missing columns {missing:?}"));
    }
    if problems.is_empty() {
        Ok(columns)
    } else {
        Err(ImportError::File(format!(
            "line 1 (header): {}; the header must name these {} columns in any order: {} \
             (and may add {})",
            problems.join("; "),
            REQUIRED_COUNT,
            Column::ALL.map(|c| c.name()).join(", "),
            Column::OPTIONAL.map(|c| c.name()).join(", ")
        )))
    }
}

/// Line numbers from byte offsets. The csv crate's own line count lags behind after CRLF line
/// ends, so records are located by byte offset; an offset may point at the line break that ended
/// the previous record (or at blank lines before the record), which is skipped.
#[derive(Default)]
struct LineCounter {
    pos: usize,
    line: u64,
}

impl LineCounter {
    fn line_at(&mut self, bytes: &[u8], offset: u64) -> u64 {
        let mut start = (offset as usize).min(bytes.len());
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        if start >= self.pos {
            self.line += bytes[self.pos..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            self.pos = start;
        }
        self.line + 1
    }
}

/// Every data row of the file, blank rows skipped.
pub fn read(bytes: &[u8]) -> Result<Vec<RawRow>, ImportError> {
    let mut rows = Vec::new();
    read_each(bytes, |r| rows.push(r))?;
    Ok(rows)
}

/// Hands each data row to `f` as it is read (a large file is never held as rows).
pub fn read_each(bytes: &[u8], mut f: impl FnMut(RawRow)) -> Result<(), ImportError> {
    let bytes = strip_bom(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(detect_delimiter(bytes))
        .from_reader(bytes);
    let mut records = reader.byte_records();
    let header = match records.next() {
        Some(r) => r.map_err(|e| {
            ImportError::File(format!(
                "cannot read the header: {}",
                shared::error::clip(&e.to_string())
            ))
        })?,
        None => return Err(ImportError::File("the file is empty".into())),
    };
    let columns = read_header(&header)?;
    let mut lines = LineCounter::default();
    for record in records {
        let record = record.map_err(|e| {
            ImportError::File(format!(
                "cannot read CSV: {}",
                shared::error::clip(&e.to_string())
            ))
        })?;
        let line = lines.line_at(bytes, record.position().map_or(0, |p| p.byte()));
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        let mut row = RawRow::new(line);
        if record.len() != columns.len() {
            row.errors.push(RowError::row(
                line,
                format!(
                    "{} fields where the header has {} (check separators and quotes)",
                    record.len(),
                    columns.len()
                ),
            ));
            f(row);
            continue;
        }
        for (field, &column) in record.iter().zip(&columns) {
            match std::str::from_utf8(field) {
                Ok(text) => row.set(column, text),
                Err(_) => row.errors.push(RowError::at(
                    line,
                    column,
                    "not UTF-8 text (save the file as CSV UTF-8)",
                )),
            }
        }
        f(row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> String {
        Column::ALL.map(|c| c.name()).join(",")
    }

    #[test]
    fn delimiter_from_the_header_line() {
        assert_eq!(detect_delimiter(b"a;b;c\n1,2;3"), b';');
        assert_eq!(detect_delimiter(b"a,b,c\r\n1;2;3;4"), b',');
        assert_eq!(detect_delimiter(b"\"a;b\",c,d"), b',');
        assert_eq!(detect_delimiter(b"a\tb\tc"), b'\t');
        assert_eq!(detect_delimiter(b"abc"), b',');
    }

    #[test]
    fn header_problems_are_named() {
        let text = header().replace("student_iin", "student_inn") + ",extra\n";
        let err = read(text.as_bytes()).unwrap_err().to_string();
        assert!(
            err.contains("unknown columns [\"student_inn\", \"extra\"]"),
            "{err}"
        );
        assert!(err.contains("missing columns [\"student_iin\"]"), "{err}");
        assert!(matches!(read(b""), Err(ImportError::File(_))));
    }

    #[test]
    fn quoted_fields_bom_and_crlf() {
        let mut text = String::from("\u{feff}");
        text.push_str(&header());
        text.push_str("\r\n");
        let mut fields = vec![String::new(); REQUIRED_COUNT];
        fields[Column::SchoolName.index()] = "\"Школа \"\"Болашак\"\", №1\"".into();
        fields[Column::LastName.index()] = "\"Ahmetov\r\nJr\"".into();
        text.push_str(&fields.join(","));
        text.push_str("\r\n\r\n,,,\r\n");
        let rows = read(text.as_bytes()).unwrap();
        assert_eq!(rows.len(), 1, "blank rows are skipped");
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].get(Column::SchoolName), "Школа \"Болашак\", №1");
        assert_eq!(rows[0].get(Column::LastName), "Ahmetov\r\nJr");
        assert!(rows[0].errors.is_empty());
    }

    #[test]
    fn lines_with_crlf_quoted_breaks_and_blank_lines() {
        let h = header();
        for (eol, name) in [("\n", "lf"), ("\r\n", "crlf"), ("\r", "cr")] {
            let mut text = h.clone();
            let row = |last: &str| {
                let mut f = vec![String::new(); REQUIRED_COUNT];
                f[Column::LastName.index()] = last.to_owned();
                f.join(",")
            };
            for part in [
                row("a"),
                String::new(),
                row(&format!("\"b{eol}b\"")),
                row("c"),
            ] {
                text.push_str(eol);
                text.push_str(&part);
            }
            text.push_str(eol);
            let rows = read(text.as_bytes()).unwrap();
            let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
            if name == "cr" {
                // A lone CR ends records but is no line break for the reader of the report.
                assert_eq!(lines.len(), 3, "{name}");
            } else {
                assert_eq!(lines, vec![2, 4, 6], "{name}");
            }
        }
    }

    #[test]
    fn short_rows_and_bad_utf8_are_row_errors() {
        let mut bytes = header().into_bytes();
        bytes.extend_from_slice(b"\n1,2,3\n");
        bytes.extend_from_slice(&[b'\xff'; 1]);
        bytes.extend_from_slice(",".repeat(REQUIRED_COUNT - 1).as_bytes());
        bytes.push(b'\n');
        let rows = read(&bytes).unwrap();
        assert_eq!(
            rows[0].errors[0].to_string(),
            "line 2: 3 fields where the header has 19 (check separators and quotes)"
        );
        assert_eq!(
            rows[1].errors[0].to_string(),
            "line 3, column school_bin: not UTF-8 text (save the file as CSV UTF-8)"
        );
    }
}
