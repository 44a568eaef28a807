//! The decorated function: parsing and what the expansion needs to know about its signature.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Attribute, Block, FnArg, Ident, Pat, ReturnType, Signature, Token, Type, Visibility};

/// A function item, free or associated, with or without a body.
pub(crate) struct FnItem {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) defaultness: Option<Token![default]>,
    pub(crate) sig: Signature,
    pub(crate) body: Option<Block>,
}

impl Parse for FnItem {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let defaultness: Option<Token![default]> = input.parse()?;
        let sig: Signature = input.parse()?;
        let body = if input.peek(Token![;]) {
            input.parse::<Token![;]>()?;
            None
        } else {
            Some(input.parse()?)
        };
        Ok(FnItem {
            attrs,
            vis,
            defaultness,
            sig,
            body,
        })
    }
}

/// What a function returns, judged by the last path segment of its return type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnKind {
    /// `Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`, ...
    Result,
    /// `Option<T>`
    Option,
    /// Anything else (including `()`).
    Value,
}

/// One argument other than the receiver.
pub(crate) struct Arg {
    /// The argument's name, when its pattern is a plain identifier.
    pub(crate) ident: Option<Ident>,
    /// The span of the whole argument (pattern and type).
    pub(crate) span: Span,
}

/// Collects the identifiers bound by a pattern.
struct Bindings(Vec<String>);

impl<'ast> Visit<'ast> for Bindings {
    fn visit_pat_ident(&mut self, node: &'ast syn::PatIdent) {
        self.0.push(node.ident.to_string());
        syn::visit::visit_pat_ident(self, node);
    }
}

/// The signature facts the expansions use.
pub(crate) struct SigInfo {
    pub(crate) has_receiver: bool,
    pub(crate) receiver_token: Option<Token![self]>,
    /// Whether the receiver is exactly `&self`.
    pub(crate) shared_receiver: bool,
    pub(crate) args: Vec<Arg>,
    /// Every name bound by the arguments (for templates).
    pub(crate) names: Vec<String>,
    pub(crate) kind: ReturnKind,
    /// The explicit return type, when it can be written in a `let` (no `impl Trait`).
    pub(crate) return_type: Option<Type>,
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

fn return_kind(ty: &Type) -> ReturnKind {
    match ty {
        Type::Path(path) if path.qself.is_none() => match path.path.segments.last() {
            Some(last) if last.ident == "Result" => ReturnKind::Result,
            Some(last) if last.ident == "Option" => ReturnKind::Option,
            _ => ReturnKind::Value,
        },
        Type::Group(group) => return_kind(&group.elem),
        Type::Paren(paren) => return_kind(&paren.elem),
        _ => ReturnKind::Value,
    }
}

impl SigInfo {
    pub(crate) fn of(sig: &Signature) -> SigInfo {
        let mut info = SigInfo {
            has_receiver: false,
            receiver_token: None,
            shared_receiver: false,
            args: Vec::new(),
            names: Vec::new(),
            kind: ReturnKind::Value,
            return_type: None,
        };
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(receiver) => {
                    info.has_receiver = true;
                    info.receiver_token = Some(receiver.self_token);
                    info.shared_receiver = receiver.reference.is_some()
                        && receiver.mutability.is_none()
                        && receiver.colon_token.is_none();
                }
                FnArg::Typed(typed) => {
                    let ident = match &*typed.pat {
                        Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => {
                            Some(p.ident.clone())
                        }
                        _ => None,
                    };
                    let mut bindings = Bindings(Vec::new());
                    bindings.visit_pat(&typed.pat);
                    info.names.extend(bindings.0);
                    info.args.push(Arg {
                        ident,
                        span: typed.span(),
                    });
                }
            }
        }
        if let ReturnType::Type(_, ty) = &sig.output {
            info.kind = return_kind(ty);
            if !contains_impl_trait(ty) {
                info.return_type = Some((**ty).clone());
            }
        }
        info
    }
}

impl FnItem {
    /// The item with a new body.
    pub(crate) fn with_body(&self, body: TokenStream) -> TokenStream {
        let FnItem {
            attrs,
            vis,
            defaultness,
            sig,
            ..
        } = self;
        let mut out = TokenStream::new();
        for attr in attrs {
            attr.to_tokens(&mut out);
        }
        vis.to_tokens(&mut out);
        defaultness.to_tokens(&mut out);
        sig.to_tokens(&mut out);
        out.extend(quote::quote!({ #body }));
        out
    }
}
