//! Twisted's processes: `get_process_output` of a command (Twisted's
//! `utils.getProcessOutput`), then a `ProcessProtocol` talking to `cat` through
//! `spawn_process` (Twisted's `reactor.spawnProcess`): it writes lines to cat's stdin, closes
//! it, prints what comes back, and reports how the process ended. A command that cannot run
//! ends the program with status 1.
//!
//! ```text
//! cargo run --release --example process_demo                  # runs: echo hello from a child
//! cargo run --release --example process_demo -- uname -s      # any command
//! ```
//!
//! From the seed 001's processes.
use std::cell::RefCell;
use std::rc::Rc;

use clap::Parser;
use torsion::defer::{ensure_deferred, Deferred, Trigger};
use torsion::process::{get_process_output, Env, ProcessProtocol, ProcessSpec, ProcessTransport};
use torsion::{reactor, Failure};
use torsion_examples::init_logging;

/// Runs a command, then talks to cat (Twisted's getProcessOutput and spawnProcess).
#[derive(Parser)]
struct Cli {
    /// The command to run and its arguments (default: echo hello from a child).
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Talks to `cat`: sends a few lines, closes cat's input, and prints what it echoes.
struct CatTalker {
    lines: Vec<String>,
    echoed: Vec<u8>,
    done: Option<Trigger<Failure>>,
}

impl ProcessProtocol for CatTalker {
    fn connection_made(&mut self, transport: &ProcessTransport) {
        println!("cat started (pid {})", transport.pid().unwrap_or(0));
        for line in &self.lines {
            transport.write_sequence(&[line.as_bytes(), b"\n"]);
        }
        // End of input: cat writes back what is left and exits.
        transport.close_stdin();
    }

    fn out_received(&mut self, _: &ProcessTransport, data: &[u8]) {
        self.echoed.extend_from_slice(data);
        // Print whole lines as they come back.
        while let Some(end) = self.echoed.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.echoed.drain(..=end).collect();
            println!("cat said: {}", String::from_utf8_lossy(&line[..end]));
        }
    }

    fn err_received(&mut self, _: &ProcessTransport, data: &[u8]) {
        eprint!("cat complained: {}", String::from_utf8_lossy(data));
    }

    fn process_exited(&mut self, reason: Failure) {
        println!("cat exited: {reason}");
    }

    fn process_ended(&mut self, reason: Failure) {
        if let Some(done) = self.done.take() {
            done.callback(reason);
        }
    }
}

fn main() -> Result<(), Failure> {
    let mut command = Cli::parse().command;
    init_logging();
    if command.is_empty() {
        command = vec!["echo".into(), "hello from a child".into()];
    }
    let failed: Rc<RefCell<Option<Failure>>> = Rc::default();
    let failure = failed.clone();

    reactor().call_when_running(move || {
        ensure_deferred(async move {
            // 1. The whole output of a command, as a Deferred.
            let spec = ProcessSpec::new(&command[0]).args(&command[1..]);
            // A command that cannot start fails here, with a message naming it.
            let output = get_process_output(spec, false).await?;
            print!(
                "{} printed: {}",
                command.join(" "),
                String::from_utf8_lossy(&output)
            );

            // 2. A conversation with cat through a ProcessProtocol.
            let ended = Deferred::new();
            let talker = CatTalker {
                lines: vec![
                    "first line".into(),
                    "second line".into(),
                    "third line".into(),
                ],
                echoed: Vec::new(),
                done: Some(ended.trigger()),
            };
            reactor().spawn_process(talker, "cat", &[] as &[&str], Env::Inherit, None)?;
            let reason = ended.await?;
            println!("cat ended: {reason}");
            Ok::<_, Failure>(())
        })
        .add_both(move |result| {
            if let Err(f) = result {
                *failure.borrow_mut() = Some(f);
            }
            reactor().stop()
        });
    });
    reactor().run()?;
    match failed.take() {
        Some(f) => Err(f),
        None => Ok(()),
    }
}
