//! Reading: the execution plan that lists while it reads, and the reader of
//! each object format.

pub(crate) mod exec;
pub(crate) mod inflate;
pub(crate) mod text;

pub(crate) use exec::FlowLogScanExec;
pub use exec::list_scans;
