//! Reading: the execution plan that lists while it reads, and the reader of
//! each object format.

pub mod exec;
pub mod inflate;
pub mod text;

pub use exec::{FlowLogScanExec, list_scans};
