//! `cachette get KEY`: the stored value, pretty JSON when it is JSON, escaped otherwise.

use std::io::Write;

use crate::args::GetArgs;
use crate::context::Context;
use crate::exit;
use crate::output::{self, Shown};

pub(crate) async fn run(ctx: &Context, args: &GetArgs) -> anyhow::Result<u8> {
    let Some(bytes) = ctx.reach(ctx.cache.get_raw(&args.key).await)? else {
        return Err(exit::not_found(format!(
            "key {:?} does not exist (full key {:?})",
            args.key,
            ctx.cache.full_key(&args.key)
        )));
    };
    if args.raw {
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes)?;
        out.flush()?;
        return Ok(exit::OK);
    }
    match output::show(&bytes) {
        Shown::Json(pretty) => output::line(pretty)?,
        Shown::Text(text) => {
            eprintln!("cachette: note: not JSON: {} bytes of text", bytes.len());
            output::line(text)?;
        }
        Shown::Binary(escaped) => {
            eprintln!(
                "cachette: note: not JSON: {} bytes of binary data, shown escaped (--raw writes them unchanged)",
                bytes.len()
            );
            output::line(escaped)?;
        }
    }
    Ok(exit::OK)
}
