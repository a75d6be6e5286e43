//! The `flowsql` command. The library holds the engine; the command line
//! (flags, output formats, the interactive shell, saved queries) is this
//! binary's own module tree, [`cli`].

#![warn(unreachable_pub)]

mod allocator;
mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    allocator::keep_freed_buffers();
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            cli::messages::print_error(format_args!("cannot start the async runtime: {e}"));
            return cli::Exit::Failure.into();
        }
    };
    runtime.block_on(cli::run(args)).into()
}
