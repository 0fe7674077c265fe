//! Procedural macros for Torsion. Use them through the `torsion` crate: `#[torsion::test]`.
//!
//! Written against `proc_macro` alone (no `syn`/`quote`), so they add almost nothing to build
//! times: the attribute only renames the test function and wraps it.
#![forbid(unsafe_code)]

use proc_macro::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};

/// Runs an `async fn` (or a `fn` returning a `Deferred`) as a test inside a fresh reactor,
/// like Twisted's trial: the test fails if its result is an error, if it does not finish
/// within the timeout (default 120 s, or `#[torsion::test(timeout = 5)]`), or if it leaves
/// the reactor dirty — pending delayed calls, open ports or connections, or failures that
/// nobody handled.
///
/// ```ignore
/// #[torsion::test]
/// async fn answers() -> Result<(), torsion::Failure> {
///     let v = torsion::defer::succeed(42).await?;
///     assert_eq!(v, 42);
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let timeout = match parse_timeout(attr) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let mut tokens: Vec<TokenTree> = item.into_iter().collect();
    // Find `fn NAME` and rename the function; keep every other token (and its span).
    let Some(pos) = tokens.windows(2).position(|w| {
        matches!(&w[0], TokenTree::Ident(i) if i.to_string() == "fn")
            && matches!(&w[1], TokenTree::Ident(_))
    }) else {
        return error("#[torsion::test] goes on a function", Span::call_site());
    };
    let name = match &tokens[pos + 1] {
        TokenTree::Ident(i) => i.clone(),
        _ => unreachable!(),
    };
    let inner = Ident::new("__torsion_test_body", name.span());
    tokens[pos + 1] = TokenTree::Ident(inner.clone());
    // Attributes before the function (doc comments, #[should_panic], ...) stay on the test.
    let fn_start = tokens[..pos]
        .iter()
        .rposition(|t| matches!(t, TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket))
        .map(|i| i + 1)
        .unwrap_or(0);
    let outer_attrs: TokenStream = tokens[..fn_start].iter().cloned().collect();
    let item: TokenStream = tokens[fn_start..].iter().cloned().collect();

    let mut body = TokenStream::new();
    body.extend(item);
    body.extend(
        format!(
            "::torsion::testing::run_test({:?}, {timeout}f64, {inner})",
            name.to_string()
        )
        .parse::<TokenStream>()
        .expect("valid tokens"),
    );
    let mut out: TokenStream = "#[test]".parse().expect("valid tokens");
    out.extend(outer_attrs);
    out.extend([
        TokenTree::Ident(Ident::new("fn", Span::call_site())),
        TokenTree::Ident(name),
        TokenTree::Group(Group::new(Delimiter::Parenthesis, TokenStream::new())),
        TokenTree::Group(Group::new(Delimiter::Brace, body)),
    ]);
    out
}

/// Reads `timeout = N` (seconds) from the attribute's arguments.
fn parse_timeout(attr: TokenStream) -> Result<String, TokenStream> {
    let tokens: Vec<TokenTree> = attr.into_iter().collect();
    match tokens.as_slice() {
        [] => Ok("120.0".to_owned()),
        [TokenTree::Ident(k), TokenTree::Punct(eq), TokenTree::Literal(v)]
            if k.to_string() == "timeout" && eq.as_char() == '=' =>
        {
            let v = v.to_string();
            match v.parse::<f64>() {
                Ok(secs) if secs > 0.0 => Ok(format!("{secs:?}")),
                _ => Err(error(
                    "timeout must be a positive number of seconds",
                    Span::call_site(),
                )),
            }
        }
        _ => Err(error(
            "expected #[torsion::test] or #[torsion::test(timeout = SECONDS)]",
            Span::call_site(),
        )),
    }
}

fn error(message: &str, _span: Span) -> TokenStream {
    format!("compile_error!({message:?});")
        .parse()
        .expect("valid tokens")
}
