//! Key templates: `"user:{user_id}:extra:{include_extra}"`, `"{user.id}"`, `"{{literal}}"`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Ident, LitStr};

use crate::{mixed, Errors};

/// One piece of a template.
enum Piece {
    Lit(String),
    /// An argument (or `self`) and its field path, with the span to report errors at.
    Value {
        root: String,
        path: Vec<String>,
        span: Span,
    },
}

/// The names a template may use.
pub(crate) struct Names<'a> {
    /// Argument names (including names bound inside argument patterns).
    pub(crate) args: &'a [String],
    /// Whether `self` is available.
    pub(crate) has_self: bool,
}

impl Names<'_> {
    fn describe(&self) -> String {
        let mut all: Vec<&str> = self.args.iter().map(String::as_str).collect();
        if self.has_self {
            all.insert(0, "self");
        }
        if all.is_empty() {
            "the function has no arguments".to_owned()
        } else {
            format!("available: {}", all.join(", "))
        }
    }
}

/// The literal braces of a template, which make a Redis Cluster *hash tag*: `{{` and `}}` are a
/// literal `{` and `}`, so `"user:{{{id}}}:posts"` is `user:{42}:posts`, and every key with the
/// same tag lands in the same cluster slot. Redis reads only the first `{` of a key and the
/// first `}` after it, so anything else would not do what it seems to, and is refused here:
///
/// - at most one pair `{{ ... }}`, not nested, each `{{` closed by a `}}` and each `}}` opened;
/// - not empty (`{{}}` hashes the whole key);
/// - `{{name}}` where `name` is an argument is ambiguous (the literal text `{name}`, or a tag
///   around the value?): write `{{{name}}}` for the value.
///
/// Substituted values have their own braces escaped (`%7B`, `%7D`), so only the template's
/// literal text can make a hash tag.
#[derive(Default)]
struct HashTag {
    /// Where the open tag's `{{` starts, and the literal text since it.
    open: Option<(usize, String)>,
    /// Whether the open tag contains a placeholder.
    has_value: bool,
    /// Whether a tag was closed already.
    closed: bool,
    /// `{{` refused (nested or second) whose `}}` is still to come: it is not reported again.
    refused: usize,
    /// The open tag had an error reported inside it already.
    reported: bool,
}

impl HashTag {
    fn open(&mut self, lit: &LitStr, at: usize, value: &str, errors: &mut Errors) {
        let span = sub_span(lit, at, at + 2);
        if self.open.is_some() {
            errors.push(syn::Error::new(
                span,
                "nested `{{` in key template: a hash tag `{{...}}` cannot contain another",
            ));
            self.refused += 1;
            self.reported = true;
            return;
        }
        if self.closed {
            errors.push(syn::Error::new(
                span,
                "a second hash tag `{{...}}` in key template: Redis Cluster only reads the \
                 first `{` of a key, so this one would not choose the slot",
            ));
            self.refused += 1;
            return;
        }
        if value[at + 2..].starts_with("}}") {
            errors.push(syn::Error::new(
                sub_span(lit, at, at + 4),
                "empty hash tag `{{}}` in key template: Redis Cluster then hashes the whole key",
            ));
        }
        self.open = Some((at, String::new()));
        self.has_value = false;
        self.reported = false;
    }

    fn text(&mut self, text: &str) {
        if let Some((_, since)) = &mut self.open {
            since.push_str(text);
        }
    }

    fn placeholder(&mut self) {
        self.has_value = true;
    }

    fn close(&mut self, lit: &LitStr, at: usize, names: &Names<'_>, errors: &mut Errors) {
        if self.refused > 0 {
            self.refused -= 1;
            return;
        }
        let Some((start, since)) = self.open.take() else {
            errors.push(syn::Error::new(
                sub_span(lit, at, at + 2),
                "`}}` without a `{{` before it in key template: literal braces make a Redis \
                 Cluster hash tag `{{...}}` and must come in pairs",
            ));
            return;
        };
        self.closed = true;
        let name = since.trim();
        let is_argument =
            (name == "self" && names.has_self) || names.args.iter().any(|a| a == name);
        if !self.has_value && !self.reported && is_argument {
            errors.push(syn::Error::new(
                sub_span(lit, start, at + 2),
                format!(
                    "ambiguous `{{{{{name}}}}}` in key template: it is the literal text \
                     `{{{name}}}`, not the argument `{name}`; write `{{{{{{{name}}}}}}}` for a \
                     hash tag around its value"
                ),
            ));
        }
    }

    fn finish(&self, lit: &LitStr, len: usize, errors: &mut Errors) {
        if self.refused > 0 {
            return;
        }
        if let Some((start, _)) = &self.open {
            errors.push(syn::Error::new(
                sub_span(lit, *start, len),
                "`{{` without a `}}` after it in key template: literal braces make a Redis \
                 Cluster hash tag `{{...}}` and must come in pairs",
            ));
        }
    }
}

/// A parsed template.
pub(crate) struct Template {
    pieces: Vec<Piece>,
    lit_span: Span,
}

/// The span of bytes `start..end` of the string's *value*, when the compiler can point inside
/// literals (nightly) and the literal has no escapes; else the whole literal.
fn sub_span(lit: &LitStr, start: usize, end: usize) -> Span {
    let token = lit.token();
    let text = token.to_string();
    if text.len() >= 2 && text.starts_with('"') && text[1..text.len() - 1] == lit.value() {
        if let Some(span) = token.subspan(start + 1..end + 1) {
            return span;
        }
    }
    lit.span()
}

fn is_ident(s: &str) -> bool {
    syn::parse_str::<Ident>(s).is_ok()
}

impl Template {
    /// Parses `lit`, checking every placeholder against `names`, and its hash tag (see
    /// [`HashTag`]).
    pub(crate) fn parse(lit: &LitStr, names: &Names<'_>, errors: &mut Errors) -> Template {
        let value = lit.value();
        let bytes = value.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut tag = HashTag::default();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    tag.open(lit, i, &value, errors);
                    literal.push('{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    tag.close(lit, i, names, errors);
                    literal.push('}');
                    i += 2;
                }
                b'{' => {
                    let Some(len) = value[i + 1..].find('}') else {
                        errors.push(syn::Error::new(
                            sub_span(lit, i, value.len()),
                            "unclosed `{` in key template (write `{{` for a literal brace)",
                        ));
                        break;
                    };
                    let end = i + 1 + len;
                    let inner = &value[i + 1..end];
                    let span = sub_span(lit, i, end + 1);
                    tag.placeholder();
                    if let Some(piece) = Self::placeholder(inner, span, names, errors) {
                        if !literal.is_empty() {
                            pieces.push(Piece::Lit(std::mem::take(&mut literal)));
                        }
                        pieces.push(piece);
                    }
                    i = end + 1;
                }
                b'}' => {
                    errors.push(syn::Error::new(
                        sub_span(lit, i, i + 1),
                        "unmatched `}` in key template (write `}}` for a literal brace)",
                    ));
                    i += 1;
                }
                _ => {
                    // Copy a whole UTF-8 character.
                    let ch_len = value[i..].chars().next().map_or(1, char::len_utf8);
                    tag.text(&value[i..i + ch_len]);
                    literal.push_str(&value[i..i + ch_len]);
                    i += ch_len;
                }
            }
        }
        tag.finish(lit, value.len(), errors);
        if !literal.is_empty() {
            pieces.push(Piece::Lit(literal));
        }
        Template {
            pieces,
            lit_span: lit.span(),
        }
    }

    fn placeholder(
        inner: &str,
        span: Span,
        names: &Names<'_>,
        errors: &mut Errors,
    ) -> Option<Piece> {
        let trimmed = inner.trim();
        if trimmed.is_empty() {
            errors.push(syn::Error::new(
                span,
                format!(
                    "empty placeholder `{{}}` in key template: name an argument ({})",
                    names.describe()
                ),
            ));
            return None;
        }
        if let Some((name, _)) = trimmed.split_once(':') {
            errors.push(syn::Error::new(
                span,
                format!(
                    "format specs are not supported in key templates: write `{{{}}}` (values \
                     are written with `Display`)",
                    name.trim()
                ),
            ));
            return None;
        }
        let mut segments = trimmed.split('.').map(str::trim);
        let root = segments.next().unwrap_or_default().to_owned();
        let path: Vec<String> = segments.map(str::to_owned).collect();
        let valid_root = (root == "self" && names.has_self) || names.args.contains(&root);
        if !valid_root {
            let message = if root == "self" {
                "unknown placeholder `{self...}`: this function has no `self`".to_owned()
            } else if is_ident(&root) {
                format!(
                    "unknown placeholder `{{{trimmed}}}`: no argument named `{root}` ({})",
                    names.describe()
                )
            } else {
                format!(
                    "invalid placeholder `{{{trimmed}}}`: expected an argument name, optionally \
                     followed by `.field`s ({})",
                    names.describe()
                )
            };
            errors.push(syn::Error::new(span, message));
            return None;
        }
        for segment in &path {
            let ok = is_ident(segment) || segment.bytes().all(|b| b.is_ascii_digit());
            if !ok || segment.is_empty() {
                errors.push(syn::Error::new(
                    span,
                    format!("invalid placeholder `{{{trimmed}}}`: `{segment}` is not a field name"),
                ));
                return None;
            }
        }
        Some(Piece::Value { root, path, span })
    }

    /// Whether the template has no placeholder.
    pub(crate) fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Lit(_)))
    }

    /// An expression of type `String`: the key (or, with `pattern`, the glob pattern).
    pub(crate) fn expand(&self, pattern: bool) -> TokenStream {
        if self.is_literal() {
            let text: String = self
                .pieces
                .iter()
                .map(|p| match p {
                    Piece::Lit(s) => s.as_str(),
                    Piece::Value { .. } => "",
                })
                .collect();
            let span = self.lit_span;
            return quote_spanned!(span=> ::std::string::String::from(#text));
        }
        let buf = mixed("__cachette_key");
        let capacity: usize = self
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Lit(s) => s.len(),
                Piece::Value { .. } => 12,
            })
            .sum();
        let constructor = if pattern {
            quote!(pattern)
        } else {
            quote!(key)
        };
        let steps = self.pieces.iter().map(|piece| match piece {
            Piece::Lit(s) => quote!(#buf.lit(#s);),
            Piece::Value { root, path, span } => {
                let span = *span;
                let root = if root == "self" {
                    quote_spanned!(span=> self)
                } else {
                    let ident = crate::make_ident(root, span);
                    quote!(#ident)
                };
                let fields = path.iter().map(|segment| {
                    if let Ok(index) = segment.parse::<u32>() {
                        let index = syn::Index { index, span };
                        quote!(.#index)
                    } else {
                        let ident = crate::make_ident(segment, span);
                        quote!(.#ident)
                    }
                });
                quote_spanned!(span=> #buf.value(&(#root #(#fields)*));)
            }
        });
        quote! {{
            let mut #buf = ::cachette::__private::KeyTemplate::#constructor(#capacity);
            #(#steps)*
            #buf.finish()
        }}
    }
}
