//! A plugin from another crate (docs/plugins.md): the `greeter_plugin` example is a runner of
//! its own holding the built-in plugins plus `greeter`, with no edit to torsiond. It is built
//! and run as a user would (`cargo run -p torsiond --example greeter_plugin`), and every
//! runner option works for the new plugin: its help is listed, it serves on its endpoint with
//! two workers, and SIGTERM stops it gracefully.

use std::io::{BufRead, BufReader, Write};
use std::process::Command;

use crate::support::Running;

fn greeter_plugin() -> Command {
    let mut c = Command::new(env!("CARGO"));
    c.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "run",
        "--quiet",
        "-p",
        "torsiond",
        "--example",
        "greeter_plugin",
        "--",
    ]);
    c
}

#[test]
fn a_plugin_from_another_crate_runs_under_the_runners_options() {
    let help = greeter_plugin().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{help:?}");
    for plugin in ["greeter", "web", "echo"] {
        assert!(
            text.contains(plugin),
            "{plugin} missing from --help: {text}"
        );
    }

    let mut c = greeter_plugin();
    c.args([
        "--workers",
        "2",
        "greeter",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--greeting",
        "Hi",
    ]);
    let mut running = Running::spawn(c);
    let port = running.port();
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(b"Ada\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(&client).read_line(&mut line).unwrap();
    assert!(line.starts_with("Hi, Ada!"), "{line:?}");
    drop(client);
    assert!(running.terminate().success());
}
