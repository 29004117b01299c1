//! The `/v1/credentials` query-string parser on arbitrary bytes (as a request target may carry
//! them): never panics; a `location` it accepts goes on to `Location::parse` as in the handler.
#![no_main]

use emrfs_role_agent::handler::parse_query;
use emrfs_role_agent::location::Location;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    match parse_query(&raw) {
        Ok((location, user)) => {
            assert_ne!(user.as_deref(), Some(""), "an empty user is refused");
            if let Some(location) = location {
                let _ = Location::parse(&location).map(|l| l.to_string());
            }
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
