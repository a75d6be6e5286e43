//! flowsql's own errors, as facts a caller can match on.

use std::fmt;

use datafusion::common::DataFusionError;

/// An error flowsql raises. Queries run inside DataFusion, so a caller gets
/// it wrapped in a [`DataFusionError`]; [`Error::find`] finds it there. Its
/// text names the location, bucket, prefix, object or line, and says what
/// is wrong; what to do about it on a command line is the command line's to
/// say.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let missing = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/no-such-folder");
/// let Err(error) = flowsql::new_context(&[missing], &flowsql::SessionOptions::default()).await
/// else {
///     panic!("a missing folder opened");
/// };
/// match flowsql::Error::find(&error) {
///     Some(flowsql::Error::Location { location, .. }) => assert_eq!(location, missing),
///     other => panic!("expected a location error, got {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No LOCATION was given.
    NoLocation,
    /// A LOCATION that cannot be used: not a folder or `s3://` URL, or one
    /// that holds no flow logs.
    Location {
        /// The LOCATION as given.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Access to a bucket could not be set up.
    Bucket {
        /// The bucket's name.
        bucket: String,
        /// Why.
        problem: StoreProblem,
    },
    /// A listing failed (after retries).
    Listing {
        /// The prefix listed.
        prefix: String,
        /// The store it was listed in.
        store: String,
        /// Why.
        problem: StoreProblem,
    },
    /// An object could not be fetched (after retries).
    Unreadable {
        /// The object (URL or local path).
        object: String,
        /// Why.
        problem: StoreProblem,
    },
    /// A converted object could not be stored (after retries).
    Unwritable {
        /// The object (URL or local path) being written.
        object: String,
        /// Why.
        problem: StoreProblem,
    },
    /// An object that is not a readable flow-log object: empty, not gzip,
    /// corrupt or truncated, or without a flow-log header line.
    BadObject {
        /// The object (URL or local path).
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A malformed line, where malformed lines fail the statement (strict
    /// mode) instead of being skipped and counted.
    MalformedLine {
        /// The object (URL or local path).
        object: String,
        /// 1-based line number; the header is line 1.
        line: u64,
        /// Why the line is malformed.
        reason: String,
    },
}

/// Why a request to an object store failed, in S3's terms where S3 said.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreProblem {
    /// The bucket does not exist.
    NoSuchBucket,
    /// The credentials may not list or read here (S3's `AccessDenied`).
    AccessDenied,
    /// A 403 without S3's code: the credentials lack the privileges.
    Forbidden,
    /// The access key id is not valid.
    InvalidAccessKeyId,
    /// The secret key does not match the access key id.
    SignatureDoesNotMatch,
    /// The credentials have expired.
    ExpiredToken,
    /// The session token is not valid.
    InvalidToken,
    /// The bucket is in another region than the one requests went to.
    WrongRegion,
    /// The bucket's region could not be found, and none was configured.
    UnknownRegion {
        /// What the region request answered.
        detail: String,
    },
    /// No provider of the AWS credential chain had credentials.
    NoCredentials {
        /// The bucket they were wanted for.
        bucket: String,
        /// The profile looked in.
        profile: String,
    },
    /// The request kept failing: throttled, server errors, dropped
    /// connections.
    GaveUp {
        /// Retries made.
        retries: u32,
        /// The last failure, in one line.
        last: String,
    },
    /// Anything else, in the store's words.
    Other(String),
}

impl Error {
    /// The flowsql error inside a DataFusion error, if there is one.
    pub fn find(error: &DataFusionError) -> Option<&Error> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(current) = next {
            if let Some(found) = current.downcast_ref::<Error>() {
                return Some(found);
            }
            next = current.source();
        }
        None
    }
}

impl From<Error> for DataFusionError {
    fn from(error: Error) -> Self {
        DataFusionError::External(Box::new(error))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoLocation => f.write_str(
                "no LOCATION given: name an s3://bucket/prefix or a local folder holding AWSLogs/",
            ),
            Error::Location { location, reason } => write!(f, "location `{location}` {reason}"),
            Error::Bucket { bucket, problem } => match problem {
                StoreProblem::NoSuchBucket => write!(f, "bucket `{bucket}` does not exist"),
                StoreProblem::UnknownRegion { detail } => {
                    write!(f, "cannot find the region of bucket `{bucket}` ({detail})")
                }
                StoreProblem::NoCredentials { .. } => write!(f, "{problem}"),
                problem => write!(
                    f,
                    "cannot set up S3 access for bucket `{bucket}`: {problem}"
                ),
            },
            Error::Listing {
                prefix,
                store,
                problem,
            } => write!(f, "cannot list `{prefix}` in {store}: {problem}"),
            Error::Unreadable { object, problem } => {
                write!(f, "{object} could not be read: {problem}")
            }
            Error::Unwritable { object, problem } => {
                write!(f, "{object} could not be written: {problem}")
            }
            Error::BadObject { object, reason } => write!(f, "{object} {reason}"),
            Error::MalformedLine {
                object,
                line,
                reason,
            } => write!(f, "{object} line {line}: malformed line: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

impl fmt::Display for StoreProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreProblem::NoSuchBucket => f.write_str("the bucket does not exist"),
            StoreProblem::AccessDenied => f.write_str(
                "access denied: the credentials lack s3:ListBucket or s3:GetObject here",
            ),
            StoreProblem::Forbidden => f.write_str(
                "access denied (403): the credentials lack s3:ListBucket or s3:GetObject here",
            ),
            StoreProblem::InvalidAccessKeyId => {
                f.write_str("the AWS access key id is not valid (wrong account or deleted key)")
            }
            StoreProblem::SignatureDoesNotMatch => {
                f.write_str("the AWS secret key does not match the access key id")
            }
            StoreProblem::ExpiredToken => {
                f.write_str("the AWS credentials have expired (for SSO, run `aws sso login`)")
            }
            StoreProblem::InvalidToken => f.write_str("the AWS session token is not valid"),
            StoreProblem::WrongRegion => f.write_str("the bucket is in another region"),
            StoreProblem::UnknownRegion { detail } => {
                write!(f, "cannot find the bucket's region ({detail})")
            }
            StoreProblem::NoCredentials { bucket, profile } => write!(
                f,
                "no AWS credentials for bucket `{bucket}` (looked in the environment, profile \
                 `{profile}` of ~/.aws/config and ~/.aws/credentials, SSO, web identity and \
                 instance roles): set them up as for the AWS CLI"
            ),
            StoreProblem::GaveUp { retries, last } => {
                write!(f, "gave up after {retries} retries: {last}")
            }
            StoreProblem::Other(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_found_through_datafusion_wrappers() {
        let error = Error::MalformedLine {
            object: "a.log.gz".to_string(),
            line: 3,
            reason: "expected 14 fields".to_string(),
        };
        let wrapped = DataFusionError::Context(
            "reading".to_string(),
            Box::new(DataFusionError::Shared(std::sync::Arc::new(
                error.clone().into(),
            ))),
        );
        assert_eq!(Error::find(&wrapped), Some(&error));
        assert_eq!(
            error.to_string(),
            "a.log.gz line 3: malformed line: expected 14 fields"
        );
        assert_eq!(
            Error::find(&DataFusionError::Execution("other".to_string())),
            None
        );
    }
}
