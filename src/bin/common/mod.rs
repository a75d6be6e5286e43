//! What the scheduler and executor binaries share.

use clap::Parser;

#[path = "../../allocator.rs"]
pub(crate) mod allocator;

/// The flags of a binary whose `--version` also names the Ballista and
/// DataFusion versions (every process of a cluster must speak the same
/// Ballista protocol).
pub(crate) fn parse_args<A: Parser>() -> A {
    let long_version: &'static str = Box::leak(
        format!(
            "{} (Ballista {}, DataFusion {})",
            env!("CARGO_PKG_VERSION"),
            ballista_core::BALLISTA_VERSION,
            datafusion::DATAFUSION_VERSION
        )
        .into_boxed_str(),
    );
    let matches = A::command().long_version(long_version).get_matches();
    A::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Completes on Ctrl-C or SIGTERM; never, for a signal that cannot be
/// listened to.
pub(crate) async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
