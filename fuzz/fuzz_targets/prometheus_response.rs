//! The Prometheus query API response parser: any body the client could receive with a 2xx
//! status is either parsed data or a non-empty error message, never a panic.
#![no_main]

use gate_engine::prometheus::{parse_response_body, QueryData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_response_body(data) {
        Ok((data, _warnings)) => {
            // Reading what was parsed must not panic either.
            let _ = data.kind();
            let _ = data.scalar();
            if let QueryData::Vector(samples) = data.clone() {
                let vector = data.into_vector().expect("a vector reads as a vector");
                assert_eq!(vector.len(), samples.len());
            }
        }
        Err(message) => assert!(!message.is_empty(), "an error without a message"),
    }
});
