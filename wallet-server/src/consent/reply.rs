//! Reading a parent's SMS answer leniently: `3#1` agrees, `3#2` refuses.
//!
//! Accepted exactly: the three characters `3`, `#`, then `1` or `2`, with any whitespace
//! (spaces, tabs, line breaks, no-break spaces) before, between and after them. Phone keyboards
//! in East-Asian input modes type full-width forms, so `３`, `＃`, `１`, `２` count as well.
//! Anything else — other characters, a trailing dot, two answers — is not an answer.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Agree,
    Refuse,
}

impl Reply {
    /// The canonical text, as recorded with the transition.
    pub fn as_str(self) -> &'static str {
        match self {
            Reply::Agree => "3#1",
            Reply::Refuse => "3#2",
        }
    }
}

pub fn parse_reply(text: &str) -> Option<Reply> {
    let mut chars = text.chars().filter(|c| !c.is_whitespace());
    let first = chars.next()?;
    let hash = chars.next()?;
    let answer = chars.next()?;
    if chars.next().is_some() || !matches!(first, '3' | '３') || !matches!(hash, '#' | '＃') {
        return None;
    }
    match answer {
        '1' | '１' => Some(Reply::Agree),
        '2' | '２' => Some(Reply::Refuse),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lenient_forms() {
        for t in [
            "3#1",
            "3 #1",
            " 3# 1 ",
            "3 # 1\n",
            "\t3#1",
            "３＃１",
            "3\u{a0}#\u{a0}1",
        ] {
            assert_eq!(parse_reply(t), Some(Reply::Agree), "{t:?}");
        }
        for t in ["3#2", " 3 # 2 ", "3＃2"] {
            assert_eq!(parse_reply(t), Some(Reply::Refuse), "{t:?}");
        }
        for t in [
            "", "3#", "3#3", "31", "3#1.", "3#12", "да", "#31", "3*1", "3#1 3#2", "33#1",
        ] {
            assert_eq!(parse_reply(t), None, "{t:?}");
        }
    }

    fn ws() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just(' '),
                Just('\t'),
                Just('\n'),
                Just('\r'),
                Just('\u{a0}'),
                Just('\u{3000}')
            ],
            0..4,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,40}") {
            let _ = parse_reply(&text);
        }

        #[test]
        fn every_lenient_form_is_read(
            a in ws(), b in ws(), c in ws(), d in ws(),
            three in prop_oneof![Just('3'), Just('３')],
            hash in prop_oneof![Just('#'), Just('＃')],
            agree in any::<bool>(),
            wide in any::<bool>(),
        ) {
            let digit = match (agree, wide) {
                (true, false) => '1',
                (true, true) => '１',
                (false, false) => '2',
                (false, true) => '２',
            };
            let text = format!("{a}{three}{b}{hash}{c}{digit}{d}");
            let want = if agree { Reply::Agree } else { Reply::Refuse };
            prop_assert_eq!(parse_reply(&text), Some(want));
        }

        #[test]
        fn anything_else_is_not_an_answer(text in "\\PC{0,12}") {
            let kept: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let canonical = kept.replace('３', "3").replace('＃', "#").replace('１', "1").replace('２', "2");
            let expected = match canonical.as_str() {
                "3#1" => Some(Reply::Agree),
                "3#2" => Some(Reply::Refuse),
                _ => None,
            };
            prop_assert_eq!(parse_reply(&text), expected);
        }
    }
}
