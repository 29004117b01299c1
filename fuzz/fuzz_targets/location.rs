//! `Location::parse` on arbitrary text: never panics, and a parsed location's normalised form
//! parses back to the same location (the promise in src/location.rs).
#![no_main]

use emrfs_role_agent::location::Location;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(location) = Location::parse(text) {
        let shown = location.to_string();
        let again = Location::parse(&shown).unwrap_or_else(|e| panic!("normalised form {shown:?} does not parse: {e}"));
        assert_eq!(again, location, "normalised form {shown:?} parses to another location");
        assert!(location.key().len() <= emrfs_role_agent::location::MAX_KEY_BYTES);
    }
});
