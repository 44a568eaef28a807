//! The expansions: each rewrites the function body in place into calls to
//! `::cachette::__private` (the `cachette::runtime` module), keeping the signature — generics,
//! `impl Trait` arguments, receivers — exactly as written.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitBool, LitStr};

use crate::item::{FnItem, ReturnKind, SigInfo};
use crate::options::{self, DurationValue, Macro, Options, TtlValue};
use crate::template::{Names, Template};
use crate::{mixed, Errors};

/// Expands one attribute. On any error the function is emitted unchanged next to the errors,
/// so the user sees the macro's messages rather than a cascade from a half-built expansion.
pub(crate) fn expand(which: Macro, attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let func: FnItem = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            errors.push(syn::Error::new(
                Span::call_site(),
                format!("{} can only be used on an `async fn`", which.attr()),
            ));
            return errors.emit_with(item);
        }
    };
    let options = match options::parse(attr, which, &mut errors) {
        Ok(options) => options,
        Err(e) => {
            errors.push(e);
            return errors.emit_with(item);
        }
    };
    check_function(which, &func, &mut errors);
    let body = match which {
        Macro::Cached | Macro::Put => expand_cached(which, &func, &options, &mut errors),
        Macro::Evict => expand_evict(&func, &options, &mut errors),
        Macro::Property => expand_property(&func, &options, &mut errors),
    };
    if !errors.is_empty() {
        return errors.emit_with(item);
    }
    let out = func.with_body(body);
    debug_print(which, &func.sig.ident, &out);
    out
}

fn check_function(which: Macro, func: &FnItem, errors: &mut Errors) {
    if func.sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            func.sig.fn_token.span,
            format!(
                "{} can only be used on an `async fn`; `{}` is not async",
                which.attr(),
                func.sig.ident
            ),
        ));
    }
    if func.body.is_none() {
        errors.push(syn::Error::new(
            func.sig.span(),
            format!("{} needs a function with a body", which.attr()),
        ));
    }
    if func.sig.variadic.is_some() {
        errors.push(syn::Error::new(
            func.sig.span(),
            format!("{} cannot be used on a variadic function", which.attr()),
        ));
    }
}

/// `CACHETTE_MACRO_DEBUG=1` prints every expansion while compiling;
/// `CACHETTE_MACRO_DEBUG=name` only those of functions called `name`.
fn debug_print(which: Macro, name: &Ident, out: &TokenStream) {
    if let Ok(filter) = std::env::var("CACHETTE_MACRO_DEBUG") {
        let name = name.to_string();
        if filter == "1" || filter == "true" || filter == name {
            eprintln!("// {} on `{name}` expands to:\n{out}\n", which.attr());
        }
    }
}

fn fn_name(ident: &Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}

fn ttl_tokens(ttl: Option<&TtlValue>) -> TokenStream {
    match ttl {
        None => quote!(::cachette::Ttl::Default),
        Some(TtlValue::Secs(secs, span)) => quote_spanned!(*span=> ::cachette::Ttl::secs(#secs)),
        Some(TtlValue::Never(span)) => quote_spanned!(*span=> ::cachette::Ttl::Never),
        Some(TtlValue::Expr(expr)) => {
            quote_spanned!(expr.span()=> ::cachette::__private::ttl(#expr))
        }
    }
}

fn duration_tokens(value: &DurationValue) -> TokenStream {
    match value {
        DurationValue::Secs(secs, span) => {
            quote_spanned!(*span=> ::core::time::Duration::from_secs(#secs))
        }
        DurationValue::Expr(expr) => expr.to_token_stream(),
    }
}

/// The call's `LoadOptions` (TTL and, for `#[cached]`, the stampede options): a `static` when
/// every value is a literal, so that a call costs nothing to set up (the setters are
/// `const fn`); a local built on each call, before the body takes the arguments, when one is
/// an expression.
fn load_options_tokens(which: Macro, options: &Options) -> (Ident, TokenStream) {
    let ttl = ttl_tokens(options.ttl.as_ref());
    let mut literal = !matches!(options.ttl, Some(TtlValue::Expr(_)));
    let mut chain = quote!(::cachette::__private::LoadOptions::new().with_ttl(#ttl));
    if which == Macro::Cached {
        if !options.fallback() {
            chain.extend(quote!(.fallback_on_error(false)));
        }
        if let Some(flag) = &options.coalesce {
            chain.extend(quote!(.coalesce(#flag)));
        }
        if let Some(flag) = &options.lock {
            chain.extend(quote!(.lock(#flag)));
        }
        let durations = [
            ("lock_ttl", &options.lock_ttl),
            ("lock_wait", &options.lock_wait),
            ("stale_ttl", &options.stale_ttl),
            ("soft_timeout", &options.soft_timeout),
            ("hard_timeout", &options.hard_timeout),
        ];
        for (setter, value) in durations {
            if let Some(value) = value {
                literal &= matches!(value, DurationValue::Secs(..));
                let setter = Ident::new(setter, options.span_of(setter));
                let value = duration_tokens(value);
                chain.extend(quote!(.#setter(#value)));
            }
        }
        if let Some(beta) = options.early_refresh {
            let beta = Literal::f64_suffixed(beta);
            chain.extend(quote!(.early_refresh(#beta)));
        }
        if let Some(percent) = options.jitter {
            chain.extend(quote!(.jitter_percent(#percent)));
        }
    }
    if literal {
        let ident = mixed("__CACHETTE_OPTIONS");
        let tokens = quote! {
            static #ident: ::cachette::__private::LoadOptions = #chain;
        };
        (ident, tokens)
    } else {
        let ident = mixed("__cachette_options");
        let tokens = quote! {
            let #ident: ::cachette::__private::LoadOptions = #chain;
        };
        (ident, tokens)
    }
}

/// Combinations of the stampede options that cannot do what they say, reported at the option
/// that has no effect.
fn check_stampede(options: &Options, info: &SigInfo, errors: &mut Errors) {
    if let Some(TtlValue::Never(_)) = options.ttl {
        let needs_ttl = [
            (
                "early_refresh",
                "`early_refresh` needs a finite TTL, but with `ttl = None` values never expire: \
                 there is no expiry to refresh before (give a `ttl` or drop `early_refresh`)",
            ),
            (
                "stale_ttl",
                "`stale_ttl` needs a finite TTL, but with `ttl = None` values never expire, so \
                 they never become stale copies (give a `ttl` or drop `stale_ttl`)",
            ),
            (
                "jitter",
                "`jitter` shortens TTLs at random, but `ttl = None` has none to shorten (give a \
                 `ttl` or drop `jitter`)",
            ),
        ];
        for (option, message) in needs_ttl {
            if let Some(span) = options.given(option) {
                errors.push(syn::Error::new(span, message));
            }
        }
    }
    if options.given("stale_ttl").is_none() {
        if let Some(span) = options.given("soft_timeout") {
            errors.push(syn::Error::new(
                span,
                "`soft_timeout` only applies when a stale copy can be served: add \
                 `stale_ttl = ...` (without one, callers wait for the reload, up to `hard_timeout`)",
            ));
        }
    }
    if !options.lock.as_ref().is_some_and(LitBool::value) {
        for option in ["lock_ttl", "lock_wait"] {
            if let Some(span) = options.given(option) {
                errors.push(syn::Error::new(
                    span,
                    format!(
                        "`{option}` only applies to the cross-process lease: add `lock = true`"
                    ),
                ));
            }
        }
    }
    if let Some(span) = options.given("hard_timeout") {
        if info.kind != ReturnKind::Result {
            errors.push(syn::Error::new(
                span,
                "a body that runs longer than `hard_timeout` is cancelled and the call returns \
                 `Err(E::from(error))` (or the stale copy), so the function must return \
                 `Result<T, E>` with `E: From<cachette::Error>`; `Option<T>` and plain values \
                 have no way to report the timeout",
            ));
        }
    }
    let soft = options.soft_timeout.as_ref().and_then(DurationValue::secs);
    let hard = options.hard_timeout.as_ref().and_then(DurationValue::secs);
    if let (Some(soft), Some(hard)) = (soft, hard) {
        if soft >= hard {
            errors.push(syn::Error::new(
                options.span_of("soft_timeout"),
                "`soft_timeout` must be shorter than `hard_timeout`: the body is given up at the \
                 hard timeout, so a longer soft timeout never applies",
            ));
        }
    }
}

/// `let __cachette_manager: Option<&CacheManager> = ...;`
fn manager_tokens(cache: Option<&Expr>) -> (Ident, TokenStream) {
    let manager = mixed("__cachette_manager");
    let tokens = match cache {
        Some(expr) => {
            // Spanned at the expression, so a wrong type is reported there.
            let borrow = quote_spanned!(expr.span()=> &(#expr));
            quote! {
                #[allow(clippy::needless_borrow, clippy::borrow_deref_ref)]
                let #manager: &::cachette::CacheManager = #borrow;
                let #manager = ::core::option::Option::Some(#manager);
            }
        }
        None => quote! {
            let #manager = ::cachette::__private::default_manager();
        },
    };
    (manager, tokens)
}

fn owner_fn(info: &SigInfo) -> TokenStream {
    if info.has_receiver {
        quote!(::core::option::Option::Some(
            ::cachette::__private::type_label::<Self> as ::cachette::__private::OwnerFn
        ))
    } else {
        quote!(::core::option::Option::None)
    }
}

/// Makes the body's output type the function's return type even before the body is checked,
/// as `tracing::instrument` does, so that `?` and `.into()` infer inside the async block.
fn fake_return(info: &SigInfo) -> TokenStream {
    match &info.return_type {
        Some(ty) => {
            let fake = mixed("__cachette_fake_return");
            quote! {
                #[allow(
                    unknown_lints,
                    unreachable_code,
                    clippy::diverging_sub_expression,
                    clippy::empty_loop,
                    clippy::let_unit_value,
                    clippy::let_with_type_underscore,
                    clippy::needless_return,
                    clippy::unreachable
                )]
                if false {
                    let #fake: #ty = loop {};
                    return #fake;
                }
            }
        }
        None => TokenStream::new(),
    }
}

/// `let __cachette_body = pin!(async move { <original body> });`
///
/// Pinned here, in the decorated function's own future, so that the runtime receives a
/// `Pin<&mut _>` (itself a future): the body's state then exists once. Passed by value, it
/// was stored in the runtime's future as an argument, then again as its pinned local
/// (measured: a 4 KB body made a 13 KB call future).
fn body_tokens(func: &FnItem, info: &SigInfo) -> (Ident, TokenStream) {
    let ident = mixed("__cachette_body");
    let fake = fake_return(info);
    let block = func.body.as_ref().map(ToTokens::to_token_stream);
    let tokens = quote! {
        let #ident = ::core::pin::pin!(async move {
            #fake
            #block
        });
    };
    (ident, tokens)
}

fn site_tokens(name: &str, kind: &str) -> (Ident, TokenStream) {
    let site = mixed("__CACHETTE_SITE");
    let kind = Ident::new(kind, Span::call_site());
    let tokens = quote! {
        static #site: ::cachette::__private::FnSite = ::cachette::__private::FnSite::new(
            ::core::module_path!(),
            #name,
            ::cachette::__private::SiteKind::#kind,
        );
    };
    (site, tokens)
}

fn check_skip(options: &Options, info: &SigInfo, errors: &mut Errors) {
    for skipped in &options.skip {
        if skipped == "self" {
            continue;
        }
        let name = skipped.to_string();
        if !info
            .args
            .iter()
            .any(|a| a.ident.as_ref().is_some_and(|i| *i == name))
        {
            errors.push(syn::Error::new(
                skipped.span(),
                format!(
                    "unknown argument `{name}` in `skip(...)` (arguments: {})",
                    arg_list(info)
                ),
            ));
        }
    }
}

fn arg_list(info: &SigInfo) -> String {
    let names: Vec<String> = info
        .args
        .iter()
        .filter_map(|a| a.ident.as_ref().map(ToString::to_string))
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// The arguments that make up the default key (and are given to a `key_builder`).
fn hashed_args<'a>(options: &Options, info: &'a SigInfo, errors: &mut Errors) -> Vec<&'a Ident> {
    let mut hashed = Vec::new();
    for arg in &info.args {
        match &arg.ident {
            Some(ident) if options.skip.iter().any(|s| s == ident) => {}
            Some(ident) => hashed.push(ident),
            None => errors.push(syn::Error::new(
                arg.span,
                "this argument is a pattern, so it cannot be hashed into the cache key: bind it \
                 to a name (`arg: Type`) and destructure it in the body, or name the key with \
                 `key = \"...\"`",
            )),
        }
    }
    hashed
}

fn expand_key(
    func: &FnItem,
    options: &Options,
    info: &SigInfo,
    key_name: &str,
    site: &Ident,
    errors: &mut Errors,
) -> (TokenStream, Ident) {
    let names = Names {
        args: &info.names,
        has_self: info.has_receiver,
    };
    if let (Some(_), Some(builder)) = (&options.key, &options.key_builder) {
        errors.push(syn::Error::new(
            builder.span(),
            "`key` and `key_builder` cannot be used together: pick one",
        ));
    }
    if let Some(key) = &options.key {
        let template = Template::parse(key, &names, errors);
        let key = template.expand(false);
        return (
            quote!(|| ::core::result::Result::Ok(#key)),
            Ident::new("new", Span::call_site()),
        );
    }
    let hashed = hashed_args(options, info, errors);
    if let Some(builder) = &options.key_builder {
        let callee = match builder {
            Expr::Path(_) => quote!(#builder),
            _ => quote!((#builder)),
        };
        // Spanned at the builder, so that an arity or type mismatch is reported there (and
        // the compiler does not suggest editing the function's own signature).
        let args = hashed.iter().map(|ident| {
            let ident = crate::make_ident(&ident.to_string(), builder.span());
            quote_spanned!(builder.span()=> &#ident)
        });
        let key = quote_spanned! {builder.span()=>
            || ::core::result::Result::Ok(
                ::core::convert::Into::<::std::string::String>::into(#callee(#key_name #(, #args)*))
            )
        };
        return (key, Ident::new("new", Span::call_site()));
    }
    let hasher = mixed("__cachette_hasher");
    let owner = if info.has_receiver {
        quote!(::core::option::Option::Some(
            ::cachette::__private::type_label::<Self>()
        ))
    } else {
        quote!(::core::option::Option::None)
    };
    let feeds = hashed.iter().map(|ident| {
        quote_spanned! {ident.span()=>
            ::cachette::__private::ArgsHasher::arg(&mut #hasher, &#ident);
        }
    });
    let _ = func;
    // The full key (the manager's prefix first) in one allocation, after the stem the site
    // keeps (its module path, rewritten once).
    let key = quote! {
        |__cachette_prefix: &str| {
            let mut #hasher = ::cachette::__private::ArgsHasher::new();
            #(#feeds)*
            #hasher.prefixed_stem_key(__cachette_prefix, #site.key_stem(), #owner, #key_name)
        }
    };
    (key, Ident::new("with_prefixed_key", Span::call_site()))
}

fn expand_cached(
    which: Macro,
    func: &FnItem,
    options: &Options,
    errors: &mut Errors,
) -> TokenStream {
    let info = SigInfo::of(&func.sig);
    check_skip(options, &info, errors);
    if let Some(flag) = &options.fallback_on_error {
        if !flag.value && info.kind != ReturnKind::Result {
            errors.push(syn::Error::new(
                flag.span(),
                "`fallback_on_error = false` returns cache errors through the function's error \
                 type, so the function must return `Result<T, E>` with `E: From<cachette::Error>`",
            ));
        }
    }
    if which == Macro::Cached {
        check_stampede(options, &info, errors);
    }
    let cache_none = options.cache_none.as_ref().is_some_and(|b| b.value);
    if let Some(flag) = &options.cache_none {
        if info.kind != ReturnKind::Option {
            errors.push(syn::Error::new(
                flag.span(),
                "`cache_none` only applies to functions returning `Option<T>`",
            ));
        }
    }
    let name = fn_name(&func.sig.ident);
    let key_name = options
        .name
        .as_ref()
        .map_or_else(|| name.clone(), LitStr::value);
    let kind = if which == Macro::Put { "Put" } else { "Cached" };
    let (site, site_stmt) = site_tokens(&name, kind);
    let (key, new_call) = expand_key(func, options, &info, &key_name, &site, errors);

    let (manager, manager_stmt) = manager_tokens(options.cache.as_ref());
    let (body, body_stmt) = body_tokens(func, &info);
    let call = mixed("__cachette_call");
    let owner = owner_fn(&info);
    let (load_options, mut load_options_stmt) = load_options_tokens(which, options);
    let load_options = match &options.tags {
        // Tags are rendered per call (from the arguments, before the body takes them) into a
        // copy of the options.
        Some(tags) => {
            let names = Names {
                args: &info.names,
                has_self: info.has_receiver,
            };
            let tags = tags
                .iter()
                .map(|t| Template::parse(t, &names, errors).expand(false));
            let tagged = mixed("__cachette_tagged_options");
            load_options_stmt.extend(quote! {
                let #tagged: ::cachette::__private::LoadOptions =
                    ::cachette::__private::LoadOptions::clone(&#load_options).tags([#(#tags),*]);
            });
            tagged
        }
        None => load_options,
    };
    let unless = match &options.unless {
        Some(unless) => unless.to_token_stream(),
        None => quote!(::cachette::__private::never),
    };
    let strict = !options.fallback();
    // A hard timeout is returned through the function's error type (see `check_stampede`).
    let bounded = which == Macro::Cached && options.hard_timeout.is_some();
    let runtime = match (which, info.kind, strict, cache_none) {
        (Macro::Put, ReturnKind::Result, true, _) => "put_result_strict",
        (Macro::Put, ReturnKind::Result, false, _) => "put_result",
        (Macro::Put, ReturnKind::Option, _, false) => "put_option",
        (Macro::Put, _, _, _) => "put_value",
        (_, ReturnKind::Result, true, _) => "cached_result_strict",
        (_, ReturnKind::Result, false, _) if bounded => "cached_result_bounded",
        (_, ReturnKind::Result, false, _) => "cached_result",
        (_, ReturnKind::Option, _, false) => "cached_option",
        _ => "cached_value",
    };
    // Errors about the call's bounds are reported at the option they concern: a missing
    // `E: From<cachette::Error>` at `fallback_on_error = false` or `hard_timeout`, a wrong
    // `unless` signature at `unless`.
    let call_span = match (&options.fallback_on_error, &options.unless) {
        (Some(flag), _) if strict => flag.span(),
        _ if bounded => options.span_of("hard_timeout"),
        (_, Some(unless)) => unless.span(),
        _ => Span::call_site(),
    };
    let invoke = if which == Macro::Cached && info.kind == ReturnKind::Result {
        // The callers that waited for a concurrent call get its `Err` without running their
        // body: cloned, or converted from a `cachette::Error`, whichever `E` allows (chosen
        // at compile time by autoref specialization); else they run one at a time.
        let mode = match (strict, bounded) {
            (true, _) => "strict",
            (false, true) => "bounded",
            (false, false) => "fail_open",
        };
        let mode = Ident::new(mode, call_span);
        let sharing = mixed("__cachette_sharing");
        let (hit, hit_stmt) = hit_path_tokens(&body, "of_result");
        quote_spanned! {call_span=>
            {
                #[allow(unused_imports)]
                use ::cachette::__private::{ShareByClone as _, ShareByFrom as _, ShareNone as _};
                let #sharing = (&&&::cachette::__private::ErrProbe::of(&#body)).err_sharing();
                #hit_stmt
                ::cachette::__private::cached_result_with(
                    #call,
                    #hit,
                    ::cachette::__private::ResultMode::#mode(),
                    #sharing,
                    #unless,
                    #body,
                )
                .await
            }
        }
    } else if which == Macro::Cached {
        // A hit clones the value the near cache keeps decoded when the value type allows it
        // (chosen at compile time by autoref specialization); else it decodes.
        let probe = if runtime == "cached_option" {
            "of_option"
        } else {
            "of_value"
        };
        let (hit, hit_stmt) = hit_path_tokens(&body, probe);
        let runtime = Ident::new(&format!("{runtime}_with"), call_span);
        quote_spanned! {call_span=>
            {
                #hit_stmt
                ::cachette::__private::#runtime(#call, #hit, #unless, #body).await
            }
        }
    } else {
        let runtime = Ident::new(runtime, call_span);
        quote_spanned!(call_span=> ::cachette::__private::#runtime(#call, #unless, #body).await)
    };
    quote! {
        #site_stmt
        #manager_stmt
        #load_options_stmt
        let #call = ::cachette::__private::Call::#new_call(&#site, #owner, #manager, &#load_options, #key);
        #body_stmt
        #invoke
    }
}

/// The statement picking how a `#[cached]` function's hits get their value (`HitPath`), from
/// the value type of `body` (`probe`: the `ValueProbe` constructor for the function's return
/// type), and the variable holding it.
fn hit_path_tokens(body: &Ident, probe: &str) -> (Ident, TokenStream) {
    let hit = mixed("__cachette_hit");
    let probe = Ident::new(probe, Span::call_site());
    let tokens = quote! {
        #[allow(unused_imports)]
        use ::cachette::__private::{HitByClone as _, HitByDecode as _};
        let #hit = (&&::cachette::__private::ValueProbe::#probe(&#body)).hit_path();
    };
    (hit, tokens)
}

fn expand_evict(func: &FnItem, options: &Options, errors: &mut Errors) -> TokenStream {
    let info = SigInfo::of(&func.sig);
    let names = Names {
        args: &info.names,
        has_self: info.has_receiver,
    };
    if options.key.is_none()
        && options.keys.is_none()
        && options.pattern.is_none()
        && options.tags.is_none()
    {
        errors.push(syn::Error::new(
            Span::call_site(),
            "#[cache_evict] needs something to evict: `key = \"...\"`, `keys = [...]`, \
             `pattern = \"...\"` or `tags = [...]`",
        ));
    }
    let before = options.before.as_ref().is_some_and(|b| b.value);
    let always = options.always.as_ref().is_some_and(|b| b.value);
    if before && always {
        errors.push(syn::Error::new(
            options.span_of("always"),
            "`always` only applies to evictions after the body; drop it or `before = true`",
        ));
    }
    if let Some(flag) = &options.fallback_on_error {
        if !flag.value && info.kind != ReturnKind::Result {
            errors.push(syn::Error::new(
                flag.span(),
                "`fallback_on_error = false` returns cache errors through the function's error \
                 type, so the function must return `Result<T, E>` with `E: From<cachette::Error>`",
            ));
        }
    }
    let plan = mixed("__cachette_plan");
    let mut steps = Vec::new();
    for key in options.key.iter().chain(options.keys.iter().flatten()) {
        let key = Template::parse(key, &names, errors).expand(false);
        steps.push(quote!(#plan.key(#key);));
    }
    if let Some(pattern) = &options.pattern {
        let pattern = Template::parse(pattern, &names, errors).expand(true);
        steps.push(quote!(#plan.pattern(#pattern);));
    }
    for tag in options.tags.iter().flatten() {
        let tag = Template::parse(tag, &names, errors).expand(false);
        steps.push(quote!(#plan.tag(#tag);));
    }

    let name = fn_name(&func.sig.ident);
    let (site, site_stmt) = site_tokens(&name, "Evict");
    let (manager, manager_stmt) = manager_tokens(options.cache.as_ref());
    let (body, body_stmt) = body_tokens(func, &info);
    let evict = mixed("__cachette_evict");
    let owner = owner_fn(&info);
    let runtime = match (info.kind, options.fallback()) {
        (ReturnKind::Result, true) => "evict_result",
        (ReturnKind::Result, false) => "evict_result_strict",
        _ => "evict_value",
    };
    let call_span = match &options.fallback_on_error {
        Some(flag) if !flag.value => flag.span(),
        _ => Span::call_site(),
    };
    let runtime = Ident::new(runtime, call_span);
    let invoke = quote_spanned!(call_span=> ::cachette::__private::#runtime(#evict, #body).await);
    quote! {
        #site_stmt
        #manager_stmt
        let #evict = ::cachette::__private::Evict::new(
            &#site,
            #owner,
            #manager,
            ::cachette::__private::EvictWhen::new(#before, #always),
            |#plan: &mut ::cachette::__private::EvictPlan| { #(#steps)* },
        );
        #body_stmt
        #invoke
    }
}

fn expand_property(func: &FnItem, options: &Options, errors: &mut Errors) -> TokenStream {
    let info = SigInfo::of(&func.sig);
    let self_token = match info.receiver_token {
        Some(token) if info.shared_receiver => Some(token),
        _ => {
            errors.push(syn::Error::new(
                func.sig.paren_token.span.join(),
                "#[cached_property] needs a method taking exactly `&self`",
            ));
            None
        }
    };
    if let Some(arg) = info.args.first() {
        errors.push(syn::Error::new(
            arg.span,
            "#[cached_property] methods take no arguments besides `&self` (the value is cached \
             per instance, not per argument: use #[cached] for that)",
        ));
    }
    if info.return_type.is_none() {
        errors.push(syn::Error::new(
            func.sig.output.span(),
            "#[cached_property] needs a method returning a value (`-> T` with `T: Clone`)",
        ));
    }
    let field = options
        .field
        .clone()
        .unwrap_or_else(|| func.sig.ident.clone());
    let (body, body_stmt) = body_tokens(func, &info);
    let ttl = ttl_tokens(options.ttl.as_ref());
    let runtime = if info.kind == ReturnKind::Result {
        quote!(property_result)
    } else {
        quote!(property)
    };
    let Some(self_token) = self_token else {
        return TokenStream::new();
    };
    let property = mixed("__cachette_property");
    // Names the field's expected type, so a field of the wrong type is one clear error.
    let ty = match (&info.return_type, info.kind) {
        (Some(ty), kind) if kind != ReturnKind::Result => {
            quote_spanned!(field.span()=> &::cachette::CachedProperty<#ty>)
        }
        _ => quote!(&_),
    };
    quote! {
        let #property: #ty = &#self_token.#field;
        #body_stmt
        ::cachette::__private::#runtime(#property, #ttl, #body).await
    }
}
