//! `cachette del KEY...`: prints how many of the keys existed.

use crate::args::DelArgs;
use crate::context::Context;
use crate::exit;
use crate::output;

pub(crate) async fn run(ctx: &Context, args: &DelArgs) -> anyhow::Result<u8> {
    let removed = ctx.reach(ctx.cache.delete_many(&args.keys).await)?;
    output::line(removed.to_string())?;
    Ok(exit::OK)
}
