//! What the command line says on stderr: errors, warnings and notes, each
//! under its prefix.

use std::fmt::Display;

use datafusion::common::DataFusionError;

use super::exec::RunError;

/// Prints `error: {message}`. Every error the command line reports goes
/// out through here.
pub(crate) fn print_error(message: impl Display) {
    eprintln!("error: {message}");
}

/// Prints `warning: {message}`.
pub(crate) fn print_warning(message: impl Display) {
    eprintln!("warning: {message}");
}

/// Prints `note: {message}`.
pub(crate) fn print_note(message: impl Display) {
    eprintln!("note: {message}");
}

/// Tells the user how running statements ended badly, in one-shot mode
/// and in the shell alike: `cancelled`, or the error after `{origin}: `
/// when the statements came from a named script.
pub(crate) fn print_run_error(error: &RunError, origin: Option<&str>) {
    match (error, origin) {
        (RunError::Cancelled, _) => eprintln!("cancelled"),
        (RunError::Failed(e), None) => print_error(user_message(e)),
        (RunError::Failed(e), Some(origin)) => {
            print_error(format_args!("{origin}: {}", user_message(e)))
        }
    }
}

/// The message a user sees for an error: the innermost error's own words,
/// without DataFusion's category prefix where we wrote the message.
pub(crate) fn user_message(error: &DataFusionError) -> String {
    let message = match error.find_root() {
        DataFusionError::Execution(m)
        | DataFusionError::Configuration(m)
        | DataFusionError::Plan(m) => m.clone(),
        DataFusionError::SQL(e, _) => e.to_string(),
        root => root.to_string(),
    };
    // DataFusion lists every column after an unknown name; with some 75
    // flow-log columns that buries the message (`\d TABLE` lists them).
    match message.split_once("\nValid fields are") {
        Some((first, _)) => first.to_string(),
        None => message,
    }
}
