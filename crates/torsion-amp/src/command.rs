//! Typed commands: the [`Command`] trait, and the [`record!`](crate::record) and
//! [`command!`](macro@crate::command) macros that declare them (Twisted's `Command` subclasses with
//! `arguments`, `response`, `errors`, `fatalErrors` and `requiresAnswer`).
//!
//! ```
//! torsion_amp::command! {
//!     /// Twisted's howto: `Divide(numerator, denominator) -> result`.
//!     pub struct Divide {
//!         numerator: i64,
//!         denominator: i64,
//!     }
//!     response DivideResult { result: f64 }
//!     errors ["ZERO_DIVISION"]
//! }
//!
//! use torsion_amp::Command;
//! assert_eq!(Divide::NAME, "Divide");
//! assert!(Divide::REQUIRES_ANSWER);
//! assert_eq!(Divide::ERRORS, &["ZERO_DIVISION"]);
//! ```

use crate::types::Record;

/// A command: its arguments are the record itself, its answer a [`Record`] too.
pub trait Command: Record + 'static {
    /// The name on the wire (`_command`), the Rust name unless declared `as "..."`.
    const NAME: &'static str;
    /// The error codes responders may answer with; any other code arrives as
    /// [`UNKNOWN_ERROR_CODE`](crate::UNKNOWN_ERROR_CODE), as in Twisted.
    const ERRORS: &'static [&'static str];
    /// Error codes after which the responding side closes the connection.
    const FATAL_ERRORS: &'static [&'static str];
    /// Whether callers wait for an answer (Twisted's `requiresAnswer`, a hint to callers only).
    const REQUIRES_ANSWER: bool;
    /// The answer.
    type Response: Record + 'static;

    /// True when `code` is declared in [`ERRORS`](Self::ERRORS) or
    /// [`FATAL_ERRORS`](Self::FATAL_ERRORS).
    fn declares(code: &str) -> bool {
        Self::ERRORS.contains(&code) || Self::FATAL_ERRORS.contains(&code)
    }
}

/// Declares a struct whose fields travel as one box, each under its field name (a command's
/// response, an [`AmpList`](crate::types::AmpList) element). Field types implement
/// [`Argument`](crate::types::Argument).
///
/// ```
/// torsion_amp::record! {
///     /// One line of an order.
///     #[derive(Debug, PartialEq)]
///     pub struct Line { item: String, count: i64 }
/// }
///
/// use torsion_amp::types::Record;
/// let mut b = torsion_amp::AmpBox::new();
/// Line { item: "tea".into(), count: 2 }.to_box(&mut b).unwrap();
/// assert_eq!(b.get("count"), Some(&b"2"[..]));
/// assert_eq!(Line::from_box(&b).unwrap().item, "tea");
/// ```
#[macro_export]
macro_rules! record {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$fmeta])* #[allow(missing_docs)] pub $field: $fty, )*
        }

        impl $crate::types::Record for $name {
            #[allow(unused_variables)]
            fn to_box(&self, b: &mut $crate::AmpBox) -> ::std::result::Result<(), $crate::AmpError> {
                $( $crate::types::Argument::to_box(&self.$field, stringify!($field), b)?; )*
                Ok(())
            }
            #[allow(unused_variables)]
            fn from_box(b: &$crate::AmpBox) -> ::std::result::Result<Self, $crate::AmpError> {
                Ok($name {
                    $( $field: <$fty as $crate::types::Argument>::from_box(stringify!($field), b)?, )*
                })
            }
        }
    };
}

/// Declares a command: a struct of its arguments, its response record, the error codes it
/// declares, and whether it wants an answer.
///
/// ```
/// torsion_amp::command! {
///     /// Twisted's howto: `Sum(a, b) -> total`.
///     #[derive(Debug)]
///     pub struct Sum { a: i64, b: i64 }
///     response #[derive(Debug)] SumResult { total: i64 }
/// }
///
/// torsion_amp::command! {
///     /// A notification: sent without `_ask`, never answered; on the wire as `"log-line"`.
///     pub struct LogLine as "log-line" { text: String }
///     response LogLineResult {}
///     fatal_errors ["BAD_LOG"]
///     requires_answer false
/// }
///
/// use torsion_amp::Command;
/// assert_eq!(LogLine::NAME, "log-line");
/// assert!(!LogLine::REQUIRES_ANSWER);
/// assert!(LogLine::declares("BAD_LOG"));
/// ```
#[macro_export]
macro_rules! command {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident $(as $wire:literal)? {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)?
        }
        response $(#[$rmeta:meta])* $rname:ident {
            $( $(#[$rfmeta:meta])* $rfield:ident : $rfty:ty ),* $(,)?
        }
        $( errors [ $($code:literal),* $(,)? ] )?
        $( fatal_errors [ $($fcode:literal),* $(,)? ] )?
        $( requires_answer $ra:literal )?
    ) => {
        $crate::record! {
            $(#[$meta])*
            $vis struct $name { $( $(#[$fmeta])* $field : $fty ),* }
        }

        $crate::record! {
            $(#[$rmeta])*
            #[doc = concat!("The answer to [`", stringify!($name), "`].")]
            $vis struct $rname { $( $(#[$rfmeta])* $rfield : $rfty ),* }
        }

        impl $crate::Command for $name {
            const NAME: &'static str = $crate::command!(@name $name $($wire)?);
            const ERRORS: &'static [&'static str] = &[$($($code),*)?];
            const FATAL_ERRORS: &'static [&'static str] = &[$($($fcode),*)?];
            const REQUIRES_ANSWER: bool = $crate::command!(@answer $($ra)?);
            type Response = $rname;
        }
    };
    (@name $name:ident $wire:literal) => { $wire };
    (@name $name:ident) => { stringify!($name) };
    (@answer $ra:literal) => { $ra };
    (@answer) => { true };
}
