//! Any text into the IIN and BIN parsers: no panic, every IIN is a BIN, and an accepted number
//! is twelve digits that parse again to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::{Bin, Iin};

fuzz_target!(|text: &str| {
    let bin = Bin::parse(text);
    if let Ok(iin) = Iin::parse(text) {
        let s = iin.as_str();
        assert!(s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(Iin::parse(s).as_ref().map(Iin::as_str), Ok(s));
        assert_eq!(bin.as_ref().map(Bin::as_str), Ok(s));
        let _ = iin.masked();
    }
    if let Ok(b) = bin {
        assert_eq!(Bin::parse(b.as_str()).as_ref(), Ok(&b));
    }
});
