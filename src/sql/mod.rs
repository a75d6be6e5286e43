//! flowsql's SQL: the Athena dialect and the functions.

pub mod dialect;
pub mod functions;
