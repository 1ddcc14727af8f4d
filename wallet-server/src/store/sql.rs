//! SQL text built at run time: multi-row `VALUES` lists and `IN` lists with `$N` placeholders
//! numbered in order of appearance, and the statement that opens a write transaction.

use super::{Backend, PgStore, SqliteStore};

/// The sqlx database type behind a store, for helpers that take its transactions.
pub trait HasDb {
    type Db: sqlx::Database;
}

impl HasDb for SqliteStore {
    type Db = sqlx::Sqlite;
}

impl HasDb for PgStore {
    type Db = sqlx::Postgres;
}

/// Rows per multi-row statement: 500 rows of ~25 columns stay far below both SQLite's
/// (32,766) and PostgreSQL's (65,535) limit on bound parameters.
pub const CHUNK: usize = 500;

/// A statement with many parameters, for the backend. Its `$1…$N` must each appear once, in
/// order; on SQLite they become anonymous `?`.
///
/// Why: sqlx finds the argument of a named SQLite parameter (`$N`) by asking SQLite for the
/// parameter's name, which SQLite looks up with a linear search, so binding a statement with
/// thousands of `$N` costs quadratically (measured: 500 rows of 23 columns bound 15 times slower
/// per row than single rows). Anonymous parameters bind in order at constant cost.
pub fn bulk(backend: Backend, sql: String) -> String {
    match backend {
        Backend::Postgres => sql,
        Backend::Sqlite => {
            let mut out = String::with_capacity(sql.len());
            let mut chars = sql.chars().peekable();
            let mut expected = 1usize;
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                    let mut n = 0usize;
                    while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                        n = n * 10 + d as usize;
                        chars.next();
                    }
                    debug_assert_eq!(n, expected, "bulk parameters must appear once, in order");
                    expected += 1;
                    out.push('?');
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}

/// `$first, $first+1, …` — `n` placeholders.
pub fn placeholders(n: usize, first: usize) -> String {
    let mut s = String::with_capacity(n * 6);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('$');
        s.push_str(&(first + i).to_string());
    }
    s
}

/// `($first, …), (…)` — `rows` tuples of `cols` placeholders, numbered row by row.
pub fn values_list(rows: usize, cols: usize, first: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 6);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        s.push_str(&placeholders(cols, first + r * cols));
        s.push(')');
    }
    s
}

/// Opens a transaction that will write. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later can fail to
/// upgrade when another connection committed in between, while an immediate one simply waits
/// its turn (busy timeout). PostgreSQL locks rows as it goes.
pub fn begin_write(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    }
}

/// The row-locking suffix of a claiming `SELECT`: on PostgreSQL, rows another instance is
/// working on are skipped rather than waited for. SQLite has one writer at a time and needs none.
pub fn skip_locked(backend: Backend, of: &str) -> String {
    match backend {
        Backend::Sqlite => String::new(),
        Backend::Postgres => format!(" FOR UPDATE OF {of} SKIP LOCKED"),
    }
}

/// `column` is one of the strings of the JSON array bound at `$n`. Lists go to the database as
/// one JSON parameter: statements with hundreds of `$N` placeholders are slow to prepare and
/// bind (measured: a 500-row VALUES insert took 180 ms on SQLite, 100-value `IN` lists 10 ms
/// each on PostgreSQL). On PostgreSQL `= ANY(ARRAY(...))` keeps index scans: an `IN` over a
/// set-returning function is planned as a hash join over the whole table.
pub fn json_in(backend: Backend, column: &str, n: usize) -> String {
    match backend {
        Backend::Sqlite => format!("{column} IN (SELECT value FROM json_each(${n}))"),
        Backend::Postgres => {
            format!("{column} = ANY(ARRAY(SELECT jsonb_array_elements_text(${n}::jsonb)))")
        }
    }
}

pub fn json_array<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("strings serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_forms() {
        let sql = format!("UPDATE t SET a = $1 WHERE id IN ({})", placeholders(3, 2));
        assert_eq!(
            bulk(Backend::Sqlite, sql.clone()),
            "UPDATE t SET a = ? WHERE id IN (?, ?, ?)"
        );
        assert_eq!(bulk(Backend::Postgres, sql.clone()), sql);
        assert_eq!(
            bulk(Backend::Sqlite, format!("VALUES {}", values_list(2, 2, 1))),
            "VALUES (?, ?), (?, ?)"
        );
    }

    #[test]
    #[should_panic(expected = "once, in order")]
    fn bulk_refuses_reused_parameters() {
        bulk(Backend::Sqlite, "SET a = $1, b = $1".into());
    }

    #[test]
    fn numbered_in_order() {
        assert_eq!(placeholders(3, 2), "$2, $3, $4");
        assert_eq!(values_list(2, 2, 1), "($1, $2), ($3, $4)");
        assert_eq!(placeholders(0, 1), "");
    }
}
