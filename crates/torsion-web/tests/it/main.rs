//! The integration tests of torsion-web, in one binary (linking one test binary per file
//! dominated CI time): each file is a module named after the behaviour it pins down, and
//! `support` holds what they share.

mod support;

mod access_log;
mod bodies;
mod client;
mod client_cookies;
mod client_encoding;
mod client_https;
mod client_interop;
mod client_proxy;
mod client_stream;
mod client_timeouts;
mod client_treq;
mod client_upload;
mod drain;
mod encoding;
mod flow_body;
mod forms;
mod http2;
mod interop_clients;
mod methods;
mod pipeline_flow;
mod proto_props;
mod proxy;
mod request_misuse;
mod resources;
mod server;
mod session;
mod static_file;
mod static_file_curl;
mod static_file_sendfile;
mod template;
mod tower_service;
mod websocket;
mod websocket_deflate;
mod websocket_interop;
