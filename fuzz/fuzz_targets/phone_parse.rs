//! Any text into the phone parser: no panic, and an accepted number is normalised for good.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::Phone;

fuzz_target!(|text: &str| {
    if let Ok(phone) = Phone::parse(text) {
        let s = phone.as_str();
        assert!(s.len() == 12 && s.starts_with("+77"), "{s}");
        assert!(s[1..].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(Phone::parse(s).as_ref().map(Phone::as_str), Ok(s));
        let _ = phone.masked();
    }
});
