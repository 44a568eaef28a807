//! `cachette keys PATTERN [--count N]`: streams matching keys, one per line, as SCAN finds
//! them (unsorted; each key once).

use std::io::Write;

use crate::args::KeysArgs;
use crate::context::Context;
use crate::exit;

pub(crate) async fn run(ctx: &Context, args: &KeysArgs) -> anyhow::Result<u8> {
    let full = ctx.full_pattern(&args.pattern);
    let prefix = ctx.prefix().to_owned();
    let limit = args.count.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    ctx.scan_pages(&full, |page| {
        let mut out = stdout.lock();
        for key in page {
            if printed >= limit {
                break;
            }
            out.write_all(key.strip_prefix(prefix.as_str()).unwrap_or(&key).as_bytes())?;
            out.write_all(b"\n")?;
            printed += 1;
        }
        // One flush per SCAN page: keys appear as they are found.
        out.flush()?;
        Ok(printed < limit)
    })
    .await?;
    if printed == 0 {
        eprintln!("cachette: note: no keys match {full:?}");
    }
    Ok(exit::OK)
}
