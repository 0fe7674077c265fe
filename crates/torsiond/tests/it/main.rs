//! The integration tests of torsiond, in one binary (linking one test binary per file
//! dominated CI time): each file is a module named after the behaviour it pins down, and
//! `support` holds what they share. Every test runs the `torsiond` binary as a child
//! process, so nothing a test does to its server reaches the others.

mod support;

mod cli;
mod dns_plugin;
mod ftp_plugin;
mod irc_plugin;
mod mail_plugin;
mod manhole;
mod manhole_ssh;
mod news_plugin;
mod plugin_runner;
mod portforward_plugin;
mod privileges;
mod runner;
mod syslog;
mod systemd_activation;
