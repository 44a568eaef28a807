//! Parsing of the attribute options (`ttl = 300, key = "user:{id}", ...`).
//!
//! Syntax errors stop at the first one (as syn does); everything that parses is then
//! validated, and those errors are accumulated (see `Errors`).

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{bracketed, parenthesized, Expr, ExprLit, ExprUnary, Ident, Lit, LitBool, LitStr, Token};

use crate::Errors;

mod kw {
    syn::custom_keyword!(ttl);
    syn::custom_keyword!(key);
    syn::custom_keyword!(keys);
    syn::custom_keyword!(tags);
    syn::custom_keyword!(key_builder);
    syn::custom_keyword!(pattern);
    syn::custom_keyword!(unless);
    syn::custom_keyword!(fallback_on_error);
    syn::custom_keyword!(cache);
    syn::custom_keyword!(skip);
    syn::custom_keyword!(cache_none);
    syn::custom_keyword!(before);
    syn::custom_keyword!(always);
    syn::custom_keyword!(name);
    syn::custom_keyword!(field);
    syn::custom_keyword!(lock);
    syn::custom_keyword!(lock_ttl);
    syn::custom_keyword!(lock_wait);
    syn::custom_keyword!(early_refresh);
    syn::custom_keyword!(stale_ttl);
    syn::custom_keyword!(soft_timeout);
    syn::custom_keyword!(hard_timeout);
    syn::custom_keyword!(jitter);
    syn::custom_keyword!(coalesce);
}

/// Which attribute is being expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Macro {
    Cached,
    Put,
    Evict,
    Property,
}

impl Macro {
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Macro::Cached => "#[cached]",
            Macro::Put => "#[cache_put]",
            Macro::Evict => "#[cache_evict]",
            Macro::Property => "#[cached_property]",
        }
    }

    pub(crate) fn options(self) -> &'static [&'static str] {
        match self {
            Macro::Cached => &[
                "ttl",
                "key",
                "key_builder",
                "unless",
                "fallback_on_error",
                "cache",
                "skip",
                "cache_none",
                "name",
                "lock",
                "lock_ttl",
                "lock_wait",
                "early_refresh",
                "stale_ttl",
                "soft_timeout",
                "hard_timeout",
                "jitter",
                "coalesce",
                "tags",
            ],
            Macro::Put => &[
                "ttl",
                "key",
                "key_builder",
                "unless",
                "fallback_on_error",
                "cache",
                "skip",
                "cache_none",
                "name",
                "tags",
            ],
            Macro::Evict => &[
                "key",
                "keys",
                "pattern",
                "tags",
                "before",
                "always",
                "fallback_on_error",
                "cache",
            ],
            Macro::Property => &["ttl", "field"],
        }
    }

    fn allows(self, option: &str) -> bool {
        self.options().contains(&option)
    }
}

/// A `ttl = ...` value.
pub(crate) enum TtlValue {
    /// `ttl = 300`
    Secs(u64, Span),
    /// `ttl = None`
    Never(Span),
    /// `ttl = Duration::from_secs(5)` or any `Into<Ttl>` expression.
    Expr(Box<Expr>),
}

/// A duration option's value (`lock_ttl`, `lock_wait`, `stale_ttl`, `soft_timeout`,
/// `hard_timeout`), parsed as `ttl` is.
pub(crate) enum DurationValue {
    /// `stale_ttl = 60`: seconds.
    Secs(u64, Span),
    /// `soft_timeout = Duration::from_millis(200)`: any `Duration` expression.
    Expr(Box<Expr>),
}

impl DurationValue {
    pub(crate) fn secs(&self) -> Option<u64> {
        match self {
            DurationValue::Secs(secs, _) => Some(*secs),
            DurationValue::Expr(_) => None,
        }
    }
}

/// Every option of every attribute; each attribute accepts a subset.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) ttl: Option<TtlValue>,
    pub(crate) key: Option<LitStr>,
    pub(crate) keys: Option<Vec<LitStr>>,
    /// `tags = ["user:{id}", "users"]`: tag templates.
    pub(crate) tags: Option<Vec<LitStr>>,
    pub(crate) pattern: Option<LitStr>,
    pub(crate) key_builder: Option<Expr>,
    pub(crate) unless: Option<Expr>,
    pub(crate) fallback_on_error: Option<LitBool>,
    pub(crate) cache: Option<Expr>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) cache_none: Option<LitBool>,
    pub(crate) before: Option<LitBool>,
    pub(crate) always: Option<LitBool>,
    pub(crate) name: Option<LitStr>,
    pub(crate) field: Option<Ident>,
    pub(crate) lock: Option<LitBool>,
    pub(crate) lock_ttl: Option<DurationValue>,
    pub(crate) lock_wait: Option<DurationValue>,
    /// `early_refresh = 1.0`: the XFetch factor (finite, not negative).
    pub(crate) early_refresh: Option<f64>,
    pub(crate) stale_ttl: Option<DurationValue>,
    pub(crate) soft_timeout: Option<DurationValue>,
    pub(crate) hard_timeout: Option<DurationValue>,
    /// `jitter = 10`: percent, 0 to 100.
    pub(crate) jitter: Option<u8>,
    pub(crate) coalesce: Option<LitBool>,
    /// The span of each option's keyword, for conflicts.
    pub(crate) spans: Vec<(&'static str, Span)>,
}

impl Options {
    pub(crate) fn span_of(&self, option: &str) -> Span {
        self.spans
            .iter()
            .find(|(name, _)| *name == option)
            .map_or_else(Span::call_site, |(_, span)| *span)
    }

    pub(crate) fn fallback(&self) -> bool {
        self.fallback_on_error.as_ref().is_none_or(LitBool::value)
    }

    /// The span of the option's keyword, if it was given.
    pub(crate) fn given(&self, option: &str) -> Option<Span> {
        self.spans
            .iter()
            .find(|(name, _)| *name == option)
            .map(|(_, span)| *span)
    }
}

/// Parses the options of `which`; validation errors go to `errors`.
pub(crate) fn parse(
    tokens: proc_macro2::TokenStream,
    which: Macro,
    errors: &mut Errors,
) -> syn::Result<Options> {
    let parser = |input: ParseStream| parse_options(input, which, errors);
    parser.parse2(tokens)
}

fn parse_options(input: ParseStream, which: Macro, errors: &mut Errors) -> syn::Result<Options> {
    let mut o = Options::default();
    while !input.is_empty() {
        // A known option of another attribute gets a precise message.
        if let Ok(ident) = input.fork().call(Ident::parse_any) {
            let name = ident.to_string();
            let owners: Vec<&str> = [Macro::Cached, Macro::Put, Macro::Evict, Macro::Property]
                .into_iter()
                .filter(|m| m.allows(&name))
                .map(Macro::attr)
                .collect();
            if !which.allows(&name) && !owners.is_empty() {
                return Err(syn::Error::new(
                    ident.span(),
                    format!(
                        "`{name}` is not an option of {}; it belongs to {} (options of {}: {})",
                        which.attr(),
                        owners.join(", "),
                        which.attr(),
                        which.options().join(", "),
                    ),
                ));
            }
            if owners.is_empty() {
                let hint = closest(&name, which.options())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(syn::Error::new(
                    ident.span(),
                    format!(
                        "unknown option `{name}` of {}{hint} (options of {}: {})",
                        which.attr(),
                        which.attr(),
                        which.options().join(", "),
                    ),
                ));
            }
        }
        let la = input.lookahead1();
        macro_rules! option {
            ($kw:ident, $name:literal, |$span:ident| $body:block) => {
                if which.allows($name) && la.peek(kw::$kw) {
                    let keyword: kw::$kw = input.parse()?;
                    let $span = keyword.span;
                    if o.spans.iter().any(|(n, _)| *n == $name) {
                        errors.push(syn::Error::new(
                            $span,
                            concat!("duplicate `", $name, "` option"),
                        ));
                    }
                    o.spans.push(($name, $span));
                    $body
                    if input.is_empty() {
                        break;
                    }
                    input.parse::<Token![,]>()?;
                    continue;
                }
            };
        }
        option!(ttl, "ttl", |span| {
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            match classify_ttl(value) {
                Ok(ttl) => o.ttl = Some(ttl),
                Err(e) => errors.push(e),
            }
            let _ = span;
        });
        option!(key, "key", |_span| {
            input.parse::<Token![=]>()?;
            o.key = Some(input.parse()?);
        });
        option!(keys, "keys", |span| {
            input.parse::<Token![=]>()?;
            let content;
            bracketed!(content in input);
            let list = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
            if list.is_empty() {
                errors.push(syn::Error::new(span, "`keys` needs at least one key"));
            }
            o.keys = Some(list.into_iter().collect());
        });
        option!(tags, "tags", |span| {
            input.parse::<Token![=]>()?;
            let content;
            bracketed!(content in input);
            let list = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
            if list.is_empty() {
                errors.push(syn::Error::new(span, "`tags` needs at least one tag"));
            }
            o.tags = Some(list.into_iter().collect());
        });
        option!(pattern, "pattern", |_span| {
            input.parse::<Token![=]>()?;
            o.pattern = Some(input.parse()?);
        });
        option!(key_builder, "key_builder", |_span| {
            input.parse::<Token![=]>()?;
            o.key_builder = Some(input.parse()?);
        });
        option!(unless, "unless", |_span| {
            input.parse::<Token![=]>()?;
            o.unless = Some(input.parse()?);
        });
        option!(fallback_on_error, "fallback_on_error", |_span| {
            input.parse::<Token![=]>()?;
            o.fallback_on_error = Some(parse_bool(input, "fallback_on_error")?);
        });
        option!(cache, "cache", |_span| {
            input.parse::<Token![=]>()?;
            o.cache = Some(input.parse()?);
        });
        option!(skip, "skip", |_span| {
            let content;
            parenthesized!(content in input);
            let list =
                Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any)?;
            o.skip.extend(list);
        });
        option!(cache_none, "cache_none", |_span| {
            input.parse::<Token![=]>()?;
            o.cache_none = Some(parse_bool(input, "cache_none")?);
        });
        option!(before, "before", |_span| {
            input.parse::<Token![=]>()?;
            o.before = Some(parse_bool(input, "before")?);
        });
        option!(always, "always", |_span| {
            input.parse::<Token![=]>()?;
            o.always = Some(parse_bool(input, "always")?);
        });
        option!(name, "name", |_span| {
            input.parse::<Token![=]>()?;
            let name: LitStr = input.parse()?;
            if syn::parse_str::<Ident>(&name.value()).is_err() {
                errors.push(syn::Error::new(
                    name.span(),
                    "`name` must be a function name (an identifier)",
                ));
            }
            o.name = Some(name);
        });
        option!(field, "field", |_span| {
            input.parse::<Token![=]>()?;
            o.field = Some(input.parse()?);
        });
        option!(lock, "lock", |_span| {
            input.parse::<Token![=]>()?;
            o.lock = Some(parse_bool(input, "lock")?);
        });
        option!(coalesce, "coalesce", |_span| {
            input.parse::<Token![=]>()?;
            o.coalesce = Some(parse_bool(input, "coalesce")?);
        });
        option!(lock_ttl, "lock_ttl", |_span| {
            input.parse::<Token![=]>()?;
            o.lock_ttl = duration(input.parse()?, "lock_ttl", false, errors);
        });
        option!(lock_wait, "lock_wait", |_span| {
            input.parse::<Token![=]>()?;
            o.lock_wait = duration(input.parse()?, "lock_wait", true, errors);
        });
        option!(stale_ttl, "stale_ttl", |_span| {
            input.parse::<Token![=]>()?;
            o.stale_ttl = duration(input.parse()?, "stale_ttl", false, errors);
        });
        option!(soft_timeout, "soft_timeout", |_span| {
            input.parse::<Token![=]>()?;
            o.soft_timeout = duration(input.parse()?, "soft_timeout", false, errors);
        });
        option!(hard_timeout, "hard_timeout", |_span| {
            input.parse::<Token![=]>()?;
            o.hard_timeout = duration(input.parse()?, "hard_timeout", false, errors);
        });
        option!(early_refresh, "early_refresh", |_span| {
            input.parse::<Token![=]>()?;
            match classify_beta(input.parse()?) {
                Ok(beta) => o.early_refresh = Some(beta),
                Err(e) => errors.push(e),
            }
        });
        option!(jitter, "jitter", |_span| {
            input.parse::<Token![=]>()?;
            match classify_jitter(input.parse()?) {
                Ok(percent) => o.jitter = Some(percent),
                Err(e) => errors.push(e),
            }
        });
        return Err(la.error());
    }
    Ok(o)
}

fn parse_bool(input: ParseStream, option: &str) -> syn::Result<LitBool> {
    let lookahead = input.lookahead1();
    if lookahead.peek(LitBool) {
        input.parse()
    } else {
        let e = lookahead.error();
        Err(syn::Error::new(
            e.span(),
            format!("`{option}` expects `true` or `false`"),
        ))
    }
}

fn classify_ttl(value: Expr) -> syn::Result<TtlValue> {
    const EXPECTED: &str = "expected a number of seconds (`ttl = 300`), `None` (no expiry), or a \
                            `Duration` expression (`ttl = Duration::from_millis(500)`)";
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            let secs: u64 = int.base10_parse().map_err(|_| {
                syn::Error::new(int.span(), format!("`ttl` is too large; {EXPECTED}"))
            })?;
            if secs == 0 {
                return Err(syn::Error::new(
                    int.span(),
                    "`ttl` must be positive; use `ttl = None` for no expiry",
                ));
            }
            Ok(TtlValue::Secs(secs, int.span()))
        }
        Expr::Lit(ExprLit { lit, .. }) => {
            let what = match &lit {
                Lit::Str(_) => "a string",
                Lit::Float(_) => "a float (use `Duration::from_secs_f64(..)`)",
                Lit::Bool(_) => "a boolean",
                _ => "this literal",
            };
            Err(syn::Error::new(
                lit.span(),
                format!("`ttl` cannot be {what}; {EXPECTED}"),
            ))
        }
        Expr::Unary(ExprUnary {
            op: syn::UnOp::Neg(_),
            ref expr,
            ..
        }) if matches!(**expr, Expr::Lit(_)) => Err(syn::Error::new(
            value.span(),
            format!("`ttl` cannot be negative; {EXPECTED}"),
        )),
        Expr::Path(ref path) if path.qself.is_none() && path.path.is_ident("None") => {
            Ok(TtlValue::Never(path.span()))
        }
        other => Ok(TtlValue::Expr(Box::new(other))),
    }
}

/// Parses a duration option; errors go to `errors` (and the option is then absent).
fn duration(
    value: Expr,
    option: &str,
    zero_ok: bool,
    errors: &mut Errors,
) -> Option<DurationValue> {
    match classify_duration(value, option, zero_ok) {
        Ok(value) => Some(value),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// `60` (seconds) or a `Duration` expression, as `ttl` (but no `None`: leave the option out).
fn classify_duration(value: Expr, option: &str, zero_ok: bool) -> syn::Result<DurationValue> {
    let expected = format!(
        "expected a number of seconds (`{option} = 5`) or a `Duration` expression \
         (`{option} = Duration::from_millis(200)`)"
    );
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            let secs: u64 = int.base10_parse().map_err(|_| {
                syn::Error::new(int.span(), format!("`{option}` is too large; {expected}"))
            })?;
            if secs == 0 && !zero_ok {
                return Err(syn::Error::new(
                    int.span(),
                    format!("`{option}` must be positive"),
                ));
            }
            Ok(DurationValue::Secs(secs, int.span()))
        }
        Expr::Lit(ExprLit { lit, .. }) => {
            let what = match &lit {
                Lit::Str(_) => "a string",
                Lit::Float(_) => "a float (use `Duration::from_millis(..)`)",
                Lit::Bool(_) => "a boolean",
                _ => "this literal",
            };
            Err(syn::Error::new(
                lit.span(),
                format!("`{option}` cannot be {what}; {expected}"),
            ))
        }
        Expr::Unary(ExprUnary {
            op: syn::UnOp::Neg(_),
            ref expr,
            ..
        }) if matches!(**expr, Expr::Lit(_)) => Err(syn::Error::new_spanned(
            &value,
            format!("`{option}` cannot be negative; {expected}"),
        )),
        Expr::Path(ref path) if path.qself.is_none() && path.path.is_ident("None") => {
            Err(syn::Error::new_spanned(
                &value,
                format!("`{option} = None` is not a value: leave the option out; {expected}"),
            ))
        }
        other => Ok(DurationValue::Expr(Box::new(other))),
    }
}

/// `early_refresh = 1.0`: a float (or integer) literal, finite and not negative.
fn classify_beta(value: Expr) -> syn::Result<f64> {
    const EXPECTED: &str = "expected the XFetch factor as a float literal: `early_refresh = 1.0` \
                            is the usual setting, larger values refresh earlier, `0.0` never";
    let parsed = match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse::<f64>(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<f64>(),
        Expr::Unary(ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) if matches!(**expr, Expr::Lit(_)) => {
            return Err(syn::Error::new_spanned(
                &value,
                format!("`early_refresh` cannot be negative; {EXPECTED}"),
            ));
        }
        _ => {
            return Err(syn::Error::new_spanned(
                &value,
                format!("`early_refresh` must be a literal; {EXPECTED}"),
            ))
        }
    };
    match parsed {
        Ok(beta) if beta.is_finite() && beta >= 0.0 => Ok(beta),
        _ => Err(syn::Error::new_spanned(
            &value,
            format!("`early_refresh` must be a finite number; {EXPECTED}"),
        )),
    }
}

/// `jitter = 10`: a percentage of the TTL, 0 to 100.
fn classify_jitter(value: Expr) -> syn::Result<u8> {
    const EXPECTED: &str =
        "`jitter` is the percentage by which TTLs are shortened at random: an integer from 0 to 100";
    match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => match int.base10_parse::<u64>() {
            Ok(percent) => match u8::try_from(percent) {
                Ok(percent) if percent <= 100 => Ok(percent),
                _ => Err(syn::Error::new(
                    int.span(),
                    format!("{EXPECTED} (got {percent})"),
                )),
            },
            Err(_) => Err(syn::Error::new(int.span(), EXPECTED)),
        },
        _ => Err(syn::Error::new_spanned(&value, EXPECTED)),
    }
}

/// The option closest to a misspelled `name`, if one is close enough.
fn closest<'a>(name: &str, options: &[&'a str]) -> Option<&'a str> {
    options
        .iter()
        .map(|o| (edit_distance(name, o), *o))
        .filter(|(d, o)| *d <= (o.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}
