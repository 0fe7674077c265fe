//! The tests of the seed programs in `examples/`, and the check of every crate's floors
//! (`layers`), in one binary (linking one test binary per
//! file dominated CI time): each file is a module named after the examples it runs, and
//! `support` holds what they share. Every example runs as a child process (`cargo run
//! --example`), so nothing one test does to its example reaches the others.

mod support;

mod examples;
mod examples_amp;
mod examples_cli;
mod examples_db;
mod examples_dns;
mod examples_get_page;
mod examples_highscore;
mod examples_irc;
mod examples_net;
mod examples_process;
mod examples_slow_clients;
mod examples_ssh;
mod examples_static;
mod examples_template;
mod examples_threads;
mod examples_tls;
mod examples_udp;
mod examples_web;
mod examples_ws;
mod layers;
mod reliability;
mod scaleout;
