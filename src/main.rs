use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = flowsql::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(flowsql::EXIT_FAILURE);
        }
    };
    ExitCode::from(runtime.block_on(flowsql::run(args)))
}
