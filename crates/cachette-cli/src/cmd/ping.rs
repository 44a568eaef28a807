//! `cachette ping`: does Redis answer, and how fast.

use std::time::Instant;

use crate::context::Context;
use crate::exit;
use crate::output;

pub(crate) async fn run(ctx: &Context) -> anyhow::Result<u8> {
    let backend = ctx.cache.backend();
    // The first PING connects; the second one is the round trip.
    let start = Instant::now();
    ctx.reach(backend.ping().await)?;
    let connect = start.elapsed();
    let start = Instant::now();
    ctx.reach(backend.ping().await)?;
    let rtt = start.elapsed();
    output::line(format!(
        "PONG from {} in {:.3} ms (connect + first PING {:.3} ms)",
        ctx.server(),
        rtt.as_secs_f64() * 1e3,
        connect.as_secs_f64() * 1e3
    ))?;
    Ok(exit::OK)
}
