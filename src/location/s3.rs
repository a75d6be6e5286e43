//! S3 access as the AWS CLI sets it up: credentials from aws-config's
//! chain (environment, shared config and credentials files with profiles,
//! SSO, `credential_process`, web identity, container and instance roles),
//! the region from the options, the environment or the profile, else the
//! bucket's own, and S3-compatible endpoints.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use datafusion::common::{DataFusionError, Result};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsCredential, resolve_bucket_region};
use object_store::{BackoffConfig, ClientOptions, CredentialProvider, RetryConfig};
use tokio::sync::Mutex;

use crate::error::{Error, StoreProblem};

/// How S3 is reached. Empty fields fall back as the AWS CLI does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct S3Options {
    /// A profile of `~/.aws/config` (otherwise `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// The region (otherwise `AWS_REGION`, the profile's, else the bucket's).
    pub region: Option<String>,
    /// An S3-compatible endpoint such as `http://127.0.0.1:9000`
    /// (otherwise `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's).
    pub endpoint_url: Option<String>,
    /// Send requests unsigned, for public buckets.
    pub no_sign_request: bool,
    /// Retries of one request before its error is reported (default 10).
    pub max_retries: Option<usize>,
    /// How long one request may keep retrying (default three minutes).
    pub retry_timeout: Option<Duration>,
}

/// Retries for throttling (503 SlowDown), server errors, dropped
/// connections and bodies cut short (resumed with a range request): by
/// default up to 10 attempts over at most three minutes, with exponential
/// backoff from 100 ms to 15 s; then the last error is reported.
pub(crate) fn retry_config(options: &S3Options) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: options.max_retries.unwrap_or(10),
        retry_timeout: options.retry_timeout.unwrap_or(Duration::from_secs(180)),
    }
}

/// Builds the client for one bucket. Notes for the user (a corrected
/// region) go to `notes`.
pub(crate) async fn bucket_store(
    bucket: &str,
    options: &S3Options,
    notes: &mut Vec<String>,
) -> Result<AmazonS3> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &options.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    if options.no_sign_request {
        loader = loader.no_credentials();
    }
    let config = loader.load().await;
    let endpoint = options
        .endpoint_url
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
        .or_else(|| config.endpoint_url().map(str::to_string));

    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_retry(retry_config(options));
    let configured = config.region().map(|r| r.to_string());
    let region = match (&endpoint, configured) {
        // S3-compatible stores rarely care; AWS's own default keeps signing valid.
        (Some(_), configured) => configured.unwrap_or_else(|| "us-east-1".to_string()),
        // AWS: the bucket's region wins, so a wrong one is corrected, not a 301.
        (None, configured) => match resolve_bucket_region(bucket, &ClientOptions::new()).await {
            Ok(actual) => {
                if let Some(configured) = configured.filter(|c| *c != actual) {
                    notes.push(format!(
                        "bucket {bucket} is in {actual}, not {configured}; using {actual}"
                    ));
                }
                actual
            }
            // object_store's region lookup says "not found" for a 404.
            Err(e) if e.to_string().contains("not found") => {
                return Err(bucket_error(bucket, StoreProblem::NoSuchBucket));
            }
            Err(e) => match configured {
                Some(configured) => configured,
                None => {
                    let detail = e.to_string();
                    return Err(bucket_error(bucket, StoreProblem::UnknownRegion { detail }));
                }
            },
        },
    };
    builder = builder.with_region(region);
    if let Some(endpoint) = &endpoint {
        builder = builder
            .with_endpoint(endpoint.as_str())
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if options.no_sign_request {
        builder = builder.with_skip_signature(true);
    } else {
        let missing = Error::Bucket {
            bucket: bucket.to_string(),
            problem: no_credentials(bucket, options),
        };
        let provider = config
            .credentials_provider()
            .ok_or_else(|| DataFusionError::from(missing.clone()))?;
        builder = builder.with_credentials(Arc::new(AwsConfigCredentials::new(provider, missing)));
    }
    builder
        .build()
        .map_err(|e| bucket_error(bucket, StoreProblem::Other(e.to_string())))
}

fn bucket_error(bucket: &str, problem: StoreProblem) -> DataFusionError {
    Error::Bucket {
        bucket: bucket.to_string(),
        problem,
    }
    .into()
}

fn no_credentials(bucket: &str, options: &S3Options) -> StoreProblem {
    let profile = options
        .profile
        .clone()
        .or_else(|| std::env::var("AWS_PROFILE").ok())
        .unwrap_or_else(|| "default".to_string());
    StoreProblem::NoCredentials {
        bucket: bucket.to_string(),
        profile,
    }
}

/// aws-config's credential chain as an object_store credential provider.
/// Credentials are kept until five minutes before they expire, then fetched
/// again, so long queries outlive short-lived role credentials.
#[derive(Debug)]
struct AwsConfigCredentials {
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
    /// Said when no provider of the chain has credentials.
    missing: Error,
}

impl AwsConfigCredentials {
    fn new(provider: SharedCredentialsProvider, missing: Error) -> Self {
        Self {
            provider,
            cached: Mutex::new(None),
            missing,
        }
    }
}

const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[async_trait]
impl CredentialProvider for AwsConfigCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((credential, expiry)) = cached.as_ref() {
            let fresh = expiry.is_none_or(|e| e > SystemTime::now() + REFRESH_MARGIN);
            if fresh {
                return Ok(Arc::clone(credential));
            }
        }
        let credentials = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                // The error names the provider that failed, never a secret.
                source: match e {
                    aws_credential_types::provider::error::CredentialsError::CredentialsNotLoaded(_) => {
                        Box::new(self.missing.clone())
                    }
                    other => format!("cannot get AWS credentials: {}", error_chain(&other)).into(),
                },
            })?;
        let credential = Arc::new(AwsCredential {
            key_id: credentials.access_key_id().to_string(),
            secret_key: credentials.secret_access_key().to_string(),
            token: credentials.session_token().map(str::to_string),
        });
        *cached = Some((Arc::clone(&credential), credentials.expiry()));
        Ok(credential)
    }
}

/// An error and its sources, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

/// What went wrong with a request, after object_store's retries: the
/// credential chain's own error, else S3's error code, else the last
/// failure of a request that kept failing, else the store's words.
pub(crate) fn classify(error: &object_store::Error) -> StoreProblem {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(Error::Bucket { problem, .. }) = current.downcast_ref::<Error>() {
            return problem.clone();
        }
        source = current.source();
    }
    let text = error_chain(error);
    // S3's error codes; a 403 from a store without codes (moto) is worded
    // by object_store.
    const CODES: &[(&str, StoreProblem)] = &[
        ("NoSuchBucket", StoreProblem::NoSuchBucket),
        ("AccessDenied", StoreProblem::AccessDenied),
        ("lacked the necessary privileges", StoreProblem::Forbidden),
        ("InvalidAccessKeyId", StoreProblem::InvalidAccessKeyId),
        ("SignatureDoesNotMatch", StoreProblem::SignatureDoesNotMatch),
        ("ExpiredToken", StoreProblem::ExpiredToken),
        ("InvalidToken", StoreProblem::InvalidToken),
        ("PermanentRedirect", StoreProblem::WrongRegion),
    ];
    for (code, problem) in CODES {
        if text.contains(code) {
            return problem.clone();
        }
    }
    match gave_up(&text) {
        Some((retries, last)) => StoreProblem::GaveUp { retries, last },
        None => StoreProblem::Other(text.split_whitespace().collect::<Vec<_>>().join(" ")),
    }
}

/// The retries and the last failure ("S3 answered 503 Service Unavailable
/// (SlowDown)") from object_store's account of a request that kept failing.
fn gave_up(text: &str) -> Option<(u32, String)> {
    let retries = regex::Regex::new(r"after (\d+) retries").ok()?;
    let status = regex::Regex::new(r"status code: (\d{3}[^:<]*)").ok()?;
    let code = regex::Regex::new(r"<Code>(\w+)</Code>").ok()?;
    let retries = retries.captures(text)?[1].parse().ok()?;
    let what = match (status.captures(text), code.captures(text)) {
        (Some(status), Some(code)) => {
            format!("S3 answered {} ({})", status[1].trim(), &code[1])
        }
        (Some(status), None) => format!("S3 answered {}", status[1].trim()),
        // A transport error: the last line of the chain says what it was.
        _ => text
            .rsplit(": ")
            .next()
            .unwrap_or(text)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    };
    Some((retries, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_that_kept_failing_are_told_in_one_line() {
        // As object_store words a listing throttled past its retries.
        let text = "Generic S3 error: Error performing list request: Error performing GET \
            http://127.0.0.1:40891/b?list-type=2 in 101ms, after 1 retries, max_retries: 1, \
            retry_timeout: 180s  - Server returned non-2xx status code: 503 Service Unavailable: \
            <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>m</Message></Error>";
        assert_eq!(
            gave_up(text).unwrap(),
            (
                1,
                "S3 answered 503 Service Unavailable (SlowDown)".to_string()
            )
        );
        let transport = "Generic S3 error: Error performing GET http://h/k in 2s, after 3 retries, \
            max_retries: 3, retry_timeout: 180s  - HTTP error: error sending request: connection closed";
        assert_eq!(
            gave_up(transport).unwrap(),
            (3, "connection closed".to_string())
        );
        assert_eq!(gave_up("no retries mentioned"), None);
    }

    #[test]
    fn explains_a_missing_bucket() {
        let e = object_store::Error::Generic {
            store: "S3",
            source: "Client error with status 404 Not Found: <Code>NoSuchBucket</Code>".into(),
        };
        assert_eq!(classify(&e), StoreProblem::NoSuchBucket);
        assert_eq!(classify(&e).to_string(), "the bucket does not exist");
    }
}
