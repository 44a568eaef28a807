//! `cachette delete-pattern PATTERN [--yes]`: counts the matching keys, asks on a terminal
//! (refuses without one unless `--yes`), then deletes them in SCAN pages with a progress bar.

use std::io::{BufRead, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{ConfirmArgs, DeletePatternArgs};
use crate::context::{Context, Scan};
use crate::exit;
use crate::output;

pub(crate) async fn run(ctx: &Context, args: &DeletePatternArgs) -> anyhow::Result<u8> {
    if args.pattern.is_empty() {
        return Err(exit::usage(
            "the pattern must not be empty (use \"*\" for every key)",
        ));
    }
    let full = ctx.full_pattern(&args.pattern);
    confirm_and_delete(ctx, &full, &args.confirm).await
}

/// Counts the keys matching `full`, gets a confirmation, deletes them; prints how many.
pub(super) async fn confirm_and_delete(
    ctx: &Context,
    full: &str,
    confirm: &ConfirmArgs,
) -> anyhow::Result<u8> {
    let matching = ctx.count(full).await?;
    if matching == 0 {
        eprintln!("cachette: note: no keys match {full:?}: nothing to delete");
        output::line("0")?;
        return Ok(exit::OK);
    }
    let what = format!(
        "{matching} key{} matching {full:?} on {}",
        if matching == 1 { "" } else { "s" },
        ctx.cache.describe()
    );
    if !confirm.yes {
        if !std::io::stdin().is_terminal() {
            return Err(exit::refused(format!(
                "refusing to delete {what} without confirmation: stdin is not a terminal (pass --yes)"
            )));
        }
        eprint!("Delete {what}? [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err(exit::refused("not confirmed: nothing deleted"));
        }
    }
    let bar = ProgressBar::new(matching);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} deleting [{bar:40}] {pos}/{len} keys {per_sec} eta {eta}",
        )
        .map_or_else(
            |_| ProgressStyle::default_bar(),
            |s| s.progress_chars("=> "),
        ),
    );
    let backend = ctx.cache.backend();
    let mut removed = 0u64;
    // Deleted page by page as SCAN finds them (bounded memory; a matching key written after
    // the count is deleted too). Deleting while scanning is safe: SCAN still returns every
    // key that existed for the whole iteration.
    let mut scan = Scan::new(full);
    while let Some(page) = scan.next_page(ctx).await? {
        removed += ctx.reach(backend.delete_many(&page).await)?;
        bar.inc(page.len() as u64);
    }
    bar.finish_and_clear();
    eprintln!("cachette: deleted {removed} of the {matching} keys counted");
    output::line(removed.to_string())?;
    Ok(exit::OK)
}
