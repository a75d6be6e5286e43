//! Malformed lines: why a line was rejected ([`Reject`]), and what is done
//! with it ([`RejectSink`]: the scan's adds it to the query's report, or,
//! in strict mode, stops the read with an error).

use std::fmt;

use datafusion::common::Result;

use super::MAX_LINE_BYTES;

/// Why a record line was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// The line does not have one value per header field.
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Values on the line.
        found: usize,
    },
    /// A value is not of its column's type.
    BadValue {
        /// The header field.
        field: String,
        /// The value (shortened).
        value: String,
    },
    /// The line holds bytes that are not UTF-8.
    NotUtf8,
    /// The line is longer than [`MAX_LINE_BYTES`].
    TooLong,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::FieldCount { expected, found } => {
                write!(
                    f,
                    "expected {expected} fields as the header says, found {found}"
                )
            }
            Reject::BadValue { field, value } => {
                write!(
                    f,
                    "`{value}` is not a valid {field} (expected an integer or `-`)"
                )
            }
            Reject::NotUtf8 => write!(f, "the line is not UTF-8 text"),
            Reject::TooLong => write!(f, "the line is longer than {MAX_LINE_BYTES} bytes"),
        }
    }
}

/// What happens to a malformed line.
pub trait RejectSink: Send {
    /// Called once per malformed line (1-based line number, header is line 1).
    /// Returning an error stops the read with that error.
    fn reject(&mut self, line: u64, reason: Reject, raw: &[u8]) -> Result<()>;
}
