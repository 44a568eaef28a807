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
    // Keys found, printed or not (`--count 0` prints none, but must not claim none match).
    let mut matched = 0u64;
    let stdout = std::io::stdout();
    ctx.scan_pages(&full, |page| {
        let mut out = stdout.lock();
        matched += page.len() as u64;
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
        // Go on while keys are wanted, or (with `--count 0`) until one is found.
        Ok(printed < limit || matched == 0)
    })
    .await?;
    if matched == 0 {
        eprintln!("cachette: note: no keys match {full:?}");
    }
    Ok(exit::OK)
}
