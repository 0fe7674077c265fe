//! The integration tests of torsion, in one binary (linking one test binary per file
//! dominated CI time): each file is a module named after the behaviour it pins down, and
//! `support` holds what they share. They run in parallel in one process, so none of them
//! may change process-wide state; the two that must are binaries of their own:
//!
//! - `tests/signals.rs` sends SIGINT and SIGTERM to its own process: every reactor of the
//!   process that watches signals would see them.
//! - `tests/stdio.rs` (`harness = false`) reruns its binary as a child whose standard output
//!   carries only the protocol's bytes, with no test harness printing to it.

mod support;

mod application_client;
mod application_services;
mod application_timer;
mod defer_sync;
mod deferred_async;
mod deferred_cancel;
mod deferred_cancel_await;
mod deferred_chain;
mod deferred_chaining;
mod deferred_firing;
mod deferred_list;
mod deferred_maybe;
mod deferred_pause;
mod deferred_pausing_steps;
mod deferred_props;
mod delayed_calls;
mod endpoints_connect;
mod endpoints_hostname;
mod endpoints_listen;
mod endpoints_parse;
mod fidelity_twisted;
mod flow_file_sender;
mod flow_gigabyte;
mod flow_producers;
mod flow_testing_kit;
mod flow_throttle;
mod framing_answer_later;
mod framing_lines;
mod framing_props;
mod halfclose_default;
mod halfclose_write;
mod haproxy_header;
mod haproxy_interop;
mod interop_twisted;
mod logging;
mod misuse_panics;
mod policies_limits;
mod policies_reconnect;
mod policies_throttle;
mod policies_timeout;
mod policies_traffic;
mod policies_wrapper;
mod portforward;
mod process_spawn;
mod process_utils;
mod reactor_events;
mod reactor_lifecycle;
mod reactor_resolver;
mod reconnect_reset;
mod task_cooperate;
mod task_looping;
mod task_react;
mod tcp_adopt;
mod tcp_close;
mod tcp_connect;
mod tcp_drain;
mod tcp_echo;
mod tcp_panic;
mod tcp_poller;
mod tcp_send_timeout;
mod tcp_timeout;
mod tcp_write_file;
mod tcp_write_limit;
mod testing_kit;
mod testing_memory_reactor;
mod testing_skip;
mod threads_pool;
mod threads_reactor;
mod tls_echo;
mod tls_endpoints;
mod tls_failures;
mod tls_garbage;
mod tls_handshake_timeout;
mod tls_openssl;
mod tls_starttls;
mod udp_batch;
mod udp_connected;
mod udp_echo;
mod udp_interop;
mod udp_multicast;
mod unix_datagram;
mod unix_sockets;
