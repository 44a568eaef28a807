//! One module per command; [`run`] dispatches.

mod bench;
mod clear;
mod del;
mod delete_pattern;
mod expire;
mod get;
mod info;
mod keys;
mod ping;
mod set;
mod stats;
mod ttl;

use crate::args::{Cli, Command};
use crate::context::Context;

/// Runs the command and returns the exit code (errors are mapped by `main`).
pub(crate) async fn run(cli: Cli) -> anyhow::Result<u8> {
    let ctx = Context::new(&cli.global)?;
    match cli.command {
        Command::Ping => ping::run(&ctx).await,
        Command::Info(args) => info::run(&ctx, &args).await,
        Command::Keys(args) => keys::run(&ctx, &args).await,
        Command::Get(args) => get::run(&ctx, &args).await,
        Command::Set(args) => set::run(&ctx, &args).await,
        Command::Del(args) => del::run(&ctx, &args).await,
        Command::Ttl(args) => ttl::run(&ctx, &args).await,
        Command::Expire(args) => expire::run(&ctx, &args).await,
        Command::DeletePattern(args) => delete_pattern::run(&ctx, &args).await,
        Command::Clear(args) => clear::run(&ctx, &args).await,
        Command::Stats(args) => stats::run(&ctx, &args).await,
        Command::Bench(args) => bench::run(&ctx, &args).await,
    }
}
