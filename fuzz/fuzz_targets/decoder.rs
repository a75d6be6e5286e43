//! The decoder on any object text: no panic, chunking never matters, every
//! line is a row or a reject, values agree with the standard library.
#![no_main]

use libfuzzer_sys::fuzz_target;

// Each target uses part of the shared properties.
#[allow(dead_code)]
#[path = "../../tests/it/decoder_properties.rs"]
mod decoder_properties;

fuzz_target!(|text: &[u8]| decoder_properties::check_decoder(text));
