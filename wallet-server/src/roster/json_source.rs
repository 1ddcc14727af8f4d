//! Reading a JSON roster: an array of objects with the §7.1 field names. A field may be absent
//! or `null` (empty), text, a number or `true`/`false`. Rows are reported by the line where
//! their object starts.

use super::csv_source::strip_bom;
use super::fields::{Column, RawRow, RowError};
use super::ImportError;
use serde_json::Value;

/// Byte offsets where the elements of the top-level array start (the text is valid JSON).
fn element_offsets(text: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut expect) = (0usize, false, false, false);
    for (i, &b) in text.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if expect && !b.is_ascii_whitespace() && b != b']' {
            offsets.push(i);
            expect = false;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                expect = depth == 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expect = true,
            _ => {}
        }
    }
    offsets
}

fn line_numbers(text: &[u8], offsets: &[usize]) -> Vec<u64> {
    let mut lines = Vec::with_capacity(offsets.len());
    let (mut line, mut pos) = (1u64, 0usize);
    for &o in offsets {
        line += text[pos..o].iter().filter(|&&b| b == b'\n').count() as u64;
        pos = o;
        lines.push(line);
    }
    lines
}

pub fn read(bytes: &[u8]) -> Result<Vec<RawRow>, ImportError> {
    let mut rows = Vec::new();
    read_each(bytes, |r| rows.push(r))?;
    Ok(rows)
}

/// Hands each element of the array to `f` as a row.
pub fn read_each(bytes: &[u8], mut f: impl FnMut(RawRow)) -> Result<(), ImportError> {
    let text = strip_bom(bytes);
    let value: Value = serde_json::from_slice(text)
        .map_err(|e| ImportError::File(format!("not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(ImportError::File(
            "a JSON roster must be an array of objects: [{\"school_bin\": …}, …]".into(),
        ));
    };
    let lines = line_numbers(text, &element_offsets(text));
    for (i, item) in items.into_iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(0);
        let mut row = RawRow::new(line);
        let Value::Object(fields) = item else {
            row.errors.push(RowError::row(
                line,
                "expected an object with the roster's fields",
            ));
            f(row);
            continue;
        };
        for (key, value) in fields {
            let Some(column) = Column::from_name(&key) else {
                row.errors.push(RowError {
                    line,
                    column: Some(key),
                    reason: "unknown field".into(),
                });
                continue;
            };
            match value {
                Value::Null => {}
                Value::String(s) => row.set(column, &s),
                Value::Number(n) => row.set(column, &n.to_string()),
                Value::Bool(b) => row.set(column, if b { "true" } else { "false" }),
                Value::Array(_) | Value::Object(_) => row.errors.push(RowError::at(
                    line,
                    column,
                    "must be text, a number, true/false or null",
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

    #[test]
    fn elements_are_found_with_their_lines() {
        let text = br#"[
  {"a": "x,{[\"]"},
  {"b": [1, {"c": 2}]},

  3, "s"
]"#;
        let offsets = element_offsets(text);
        assert_eq!(offsets.len(), 4);
        assert_eq!(line_numbers(text, &offsets), vec![2, 3, 5, 5]);
        assert_eq!(text[offsets[3]], b'"');
        assert!(element_offsets(b"[]").is_empty());
        assert!(element_offsets(b"[ ]").is_empty());
    }

    #[test]
    fn values_and_problems() {
        let rows = read(
            "[{\"grade\": 3, \"orphan\": false, \"lang\": null, \"x\": 1},\n{\"grade\": [3]}, 7]"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(rows[0].get(Column::Grade), "3");
        assert_eq!(rows[0].get(Column::Orphan), "false");
        assert_eq!(rows[0].get(Column::Lang), "");
        assert_eq!(
            rows[0].errors[0].to_string(),
            "line 1, column x: unknown field"
        );
        assert_eq!(
            rows[1].errors[0].to_string(),
            "line 2, column grade: must be text, a number, true/false or null"
        );
        assert_eq!(
            rows[2].errors[0].to_string(),
            "line 2: expected an object with the roster's fields"
        );
        assert!(matches!(read(b"{}"), Err(ImportError::File(_))));
        assert!(matches!(read(b"[{]"), Err(ImportError::File(_))));
    }
}
