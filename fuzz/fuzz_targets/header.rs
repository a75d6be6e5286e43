//! The header parser on any line.
#![no_main]

use libfuzzer_sys::fuzz_target;

// Each target uses part of the shared properties.
#[allow(dead_code)]
#[path = "../../tests/it/decoder_properties.rs"]
mod decoder_properties;

fuzz_target!(|line: &[u8]| decoder_properties::check_header(line));
