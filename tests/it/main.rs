//! One integration-test binary (DataFusion links once), a module per topic.

mod bucketed_aggregate;
mod cache;
mod cli;
#[cfg(feature = "cluster")]
mod cluster;
mod conformance;
mod decoder_oracle;
mod decoder_properties;
mod fault_proxy;
mod fuzz_replay;
mod parquet;
mod pruning;
mod repl;
mod s3;
mod s3_faults;
mod saved;
mod slt;
mod support;
