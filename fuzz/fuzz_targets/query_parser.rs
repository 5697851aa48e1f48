//! The query parser never panics, and whatever it accepts prints back to text that parses to
//! the same query.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lore::query::parser::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(query) = parse(text) else {
        return;
    };
    let printed = query.to_string();
    let again = parse(&printed).unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}: {e}"));
    assert_eq!(again.to_string(), printed, "printing is not stable for {text:?}");
});
