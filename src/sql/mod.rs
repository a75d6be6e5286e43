//! flowsql's SQL: the Athena dialect and the functions.

pub(crate) mod dialect;
pub(crate) mod functions;
