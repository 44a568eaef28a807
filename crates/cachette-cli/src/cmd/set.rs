//! `cachette set KEY JSON [--ttl S | --persist]`.

use std::io::Read;
use std::time::Duration;

use anyhow::Context as _;
use cachette::Ttl;

use crate::args::SetArgs;
use crate::context::Context;
use crate::exit;
use crate::output;

pub(crate) async fn run(ctx: &Context, args: &SetArgs) -> anyhow::Result<u8> {
    let text = if args.json == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the value from stdin")?;
        text
    } else {
        args.json.clone()
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        exit::usage(format!(
            "the value for {:?} is not valid JSON ({e}); quote strings as JSON, e.g. '\"text\"'",
            args.key
        ))
    })?;
    let ttl = match (args.ttl, args.persist) {
        (Some(secs), _) => Ttl::from(Duration::from_secs(secs)),
        (None, true) => Ttl::Never,
        (None, false) => Ttl::Default,
    };
    ctx.reach(ctx.cache.set(&args.key, &value, ttl).await)?;
    output::line("OK")?;
    Ok(exit::OK)
}
