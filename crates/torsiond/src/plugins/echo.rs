//! `torsiond echo`: the Echo protocol.

use std::rc::Rc;

use clap::{ArgMatches, Command};
use torsion::application::Service;
use torsion::{factory, Protocol, Transport};

use super::Plugin;
use crate::listen::{endpoints_of, listen_arg, multi_listen, parse_endpoint};

/// `torsiond echo`: the Echo protocol (RFC 862), sending back whatever it receives.
///
/// Options: `--listen ENDPOINT` (repeatable, default `tcp:1033`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoPlugin;

/// Sends back what it receives.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data);
    }
}

impl Plugin for EchoPlugin {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn description(&self) -> &'static str {
        "Echo back whatever clients send (RFC 862)"
    }

    fn command(&self) -> Command {
        Command::new("echo").arg(listen_arg("tcp:1033"))
    }

    fn make_service(&self, matches: &ArgMatches) -> Result<Rc<dyn Service>, String> {
        let mut endpoints = endpoints_of(matches, "listen");
        if endpoints.is_empty() {
            endpoints.push(parse_endpoint("tcp:1033").expect("a valid default"));
        }
        Ok(multi_listen(endpoints, Rc::new(factory(|| Echo))))
    }
}
