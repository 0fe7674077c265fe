//! The plugins: the [`Plugin`] trait a kind of application implements, and the plugins
//! built into `torsiond`, one per file.

mod dns;
mod echo;
mod ftp;
mod irc;
mod mail;
mod news;
pub mod portforward;
mod web;

use std::rc::Rc;

use torsion::application::Service;

pub use dns::DnsPlugin;
pub use echo::{Echo, EchoPlugin};
pub use ftp::FtpPlugin;
pub use irc::IrcPlugin;
pub use mail::MailPlugin;
pub use news::NewsPlugin;
pub use web::WebPlugin;

/// A kind of application `torsiond` can run (Twisted's `IServiceMaker`): a name for the
/// command line, its options, and how to build the service tree from them.
///
/// Plugins are shared by the worker threads (`--workers`), hence `Send + Sync`; the
/// services they build stay on their thread and need not be.
pub trait Plugin: Send + Sync {
    /// The name given on the command line (`torsiond NAME ...`).
    fn name(&self) -> &'static str;

    /// A one-line description, listed by `torsiond --help`.
    fn description(&self) -> &'static str;

    /// The plugin's options. The runner sets the command's name and about text from
    /// [`name`](Self::name) and [`description`](Self::description).
    fn command(&self) -> clap::Command;

    /// Builds the service tree from the parsed options (Twisted's `makeService`). Called once
    /// per worker thread, on that thread, before its reactor runs; the runner starts the tree
    /// when it does. Listening services made with [`listen_service`] share their TCP ports
    /// between the workers and stop gracefully.
    ///
    /// # Errors
    /// A one-line message for the user: the runner prints it and exits with status 1.
    ///
    /// [`listen_service`]: crate::listen_service
    fn make_service(&self, matches: &clap::ArgMatches) -> Result<Rc<dyn Service>, String>;
}

/// The plugins built into `torsiond`: [`WebPlugin`], [`EchoPlugin`], portforward,
/// [`DnsPlugin`], [`MailPlugin`], [`NewsPlugin`], [`FtpPlugin`] and [`IrcPlugin`].
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    vec![
        Box::new(WebPlugin),
        Box::new(EchoPlugin),
        Box::new(portforward::PortForwardPlugin),
        Box::new(DnsPlugin),
        Box::new(MailPlugin),
        Box::new(NewsPlugin),
        Box::new(FtpPlugin),
        Box::new(IrcPlugin),
    ]
}
