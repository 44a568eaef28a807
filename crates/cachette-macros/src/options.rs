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

    fn options(self) -> &'static [&'static str] {
        match self {
            Macro::Cached | Macro::Put => &[
                "ttl",
                "key",
                "key_builder",
                "unless",
                "fallback_on_error",
                "cache",
                "skip",
                "cache_none",
                "name",
            ],
            Macro::Evict => &[
                "key",
                "keys",
                "pattern",
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

/// Every option of every attribute; each attribute accepts a subset.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) ttl: Option<TtlValue>,
    pub(crate) key: Option<LitStr>,
    pub(crate) keys: Option<Vec<LitStr>>,
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
