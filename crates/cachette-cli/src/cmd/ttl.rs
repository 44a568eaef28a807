//! `cachette ttl KEY`: remaining seconds (rounded up), `-1` for a key without expiry.

use std::io::IsTerminal;

use cachette::KeyTtl;

use crate::args::KeyArg;
use crate::context::Context;
use crate::exit;
use crate::output;

pub(crate) async fn run(ctx: &Context, args: &KeyArg) -> anyhow::Result<u8> {
    match ctx.reach(ctx.cache.ttl(&args.key).await)? {
        KeyTtl::Missing => Err(exit::not_found(format!(
            "key {:?} does not exist",
            args.key
        ))),
        KeyTtl::Persistent => {
            output::line("-1")?;
            if std::io::stderr().is_terminal() {
                eprintln!("cachette: note: {:?} never expires", args.key);
            }
            Ok(exit::OK)
        }
        KeyTtl::Expires(left) => {
            let secs = left.as_millis().div_ceil(1000) as u64;
            output::line(secs.to_string())?;
            if std::io::stderr().is_terminal() {
                eprintln!("cachette: note: expires in {}", output::human_secs(secs));
            }
            Ok(exit::OK)
        }
    }
}
