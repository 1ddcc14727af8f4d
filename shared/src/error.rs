//! The JSON error body of every Tamaq HTTP API: `{"error": {"code", "message"}}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable, snake_case.
    pub code: String,
    /// For people: what went wrong and what to do next. Never internals.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// Characters of an offending input quoted back in an error message.
pub const EXCERPT_CHARS: usize = 40;

/// The start of an offending input for an error message: at most [`EXCERPT_CHARS`] characters,
/// control and quote characters escaped, and the full length said when it was cut. Echoing a
/// megabyte back would make the error itself the attack.
pub fn excerpt(input: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = input.chars();
    for c in chars.by_ref().take(EXCERPT_CHARS) {
        out.extend(c.escape_debug());
    }
    out.push('"');
    if chars.next().is_some() {
        out.push_str(&format!("… ({} bytes)", input.len()));
    }
    out
}

/// Characters of an error message built from outside input (a parser's message may quote the
/// input) kept before it is cut.
pub const CLIP_CHARS: usize = 300;

/// A message cut to [`CLIP_CHARS`] characters, saying so when it was.
pub fn clip(message: &str) -> String {
    match message.char_indices().nth(CLIP_CHARS) {
        None => message.to_owned(),
        Some((at, _)) => format!("{}… ({} bytes in all)", &message[..at], message.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn excerpts() {
        assert_eq!(excerpt("+7701"), "\"+7701\"");
        assert_eq!(excerpt("a\"b\n"), "\"a\\\"b\\n\"");
        let long = "x".repeat(1_000_000);
        let e = excerpt(&long);
        assert!(e.ends_with("… (1000000 bytes)"), "{e}");
        assert!(e.len() < 80);
        assert_eq!(clip("short"), "short");
        let c = clip(&"я".repeat(10_000));
        assert!(
            c.ends_with("… (20000 bytes in all)") && c.chars().count() < CLIP_CHARS + 30,
            "{c}"
        );
    }

    proptest! {
        #[test]
        fn excerpts_are_short_and_single_line(input in "\\PC{0,200}|[\\x00-\\x1f\"\\\\]{0,200}") {
            let e = excerpt(&input);
            prop_assert!(e.chars().count() <= 2 + EXCERPT_CHARS * 10 + 30);
            prop_assert!(!e.contains('\n') && !e.contains('\r'));
        }
    }

    #[test]
    fn shape() {
        let body = ErrorBody::new("not_found", "No such voucher.");
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error": {"code": "not_found", "message": "No such voucher."}})
        );
    }
}
