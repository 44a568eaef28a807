//! `cachette expire KEY SECONDS`.

use std::time::Duration;

use crate::args::ExpireArgs;
use crate::context::Context;
use crate::exit;
use crate::output;

pub(crate) async fn run(ctx: &Context, args: &ExpireArgs) -> anyhow::Result<u8> {
    let ttl = Duration::from_secs(args.seconds);
    if ctx.reach(ctx.cache.expire(&args.key, ttl).await)? {
        output::line("OK")?;
        Ok(exit::OK)
    } else {
        Err(exit::not_found(format!(
            "key {:?} does not exist",
            args.key
        )))
    }
}
