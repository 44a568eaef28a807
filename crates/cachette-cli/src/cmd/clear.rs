//! `cachette clear [--yes]`: every key under the prefix and nothing else (never FLUSHDB), with
//! the same safeguards as `delete-pattern`.

use crate::args::ConfirmArgs;
use crate::context::Context;
use crate::exit;

pub(crate) async fn run(ctx: &Context, confirm: &ConfirmArgs) -> anyhow::Result<u8> {
    if ctx.prefix().is_empty() {
        return Err(exit::usage(
            "refusing to clear with an empty prefix: that would delete every key of the database \
             (use delete-pattern '*' if you mean it)",
        ));
    }
    let full = ctx.full_pattern("*");
    super::delete_pattern::confirm_and_delete(ctx, &full, confirm).await
}
