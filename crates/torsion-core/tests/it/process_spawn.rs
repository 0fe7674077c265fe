//! Child processes through `spawn_process`: echo through `cat`, stdout and stderr kept
//! apart, exit codes and signals reported, closing stdin ends `cat`, a missing program, the
//! environment and working directory, several megabytes each way, extra descriptors, and a
//! panicking protocol contained.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use torsion::defer::DeferredQueue;
use torsion::error::PanicError;
use torsion::process::{
    ChildFd, Env, ProcessDone, ProcessExitedAlready, ProcessProtocol, ProcessSpec,
    ProcessTerminated, ProcessTransport, SpawnError,
};
use torsion::{reactor, Failure};

type OnMade = Box<dyn FnOnce(&ProcessTransport)>;

/// Everything a child's protocol heard, in order.
#[derive(Default)]
struct Rec {
    out: RefCell<Vec<u8>>,
    err: RefCell<Vec<u8>>,
    extra: RefCell<Vec<(i32, Vec<u8>)>>,
    events: RefCell<Vec<String>>,
    exited: RefCell<Option<Failure>>,
    ended: DeferredQueue<Failure>,
}

struct Recorder {
    rec: Rc<Rec>,
    on_made: Option<OnMade>,
    panic_on_out: bool,
}

impl Recorder {
    fn new(on_made: impl FnOnce(&ProcessTransport) + 'static) -> (Recorder, Rc<Rec>) {
        let rec = Rc::new(Rec::default());
        let p = Recorder {
            rec: rec.clone(),
            on_made: Some(Box::new(on_made)),
            panic_on_out: false,
        };
        (p, rec)
    }
}

impl ProcessProtocol for Recorder {
    fn connection_made(&mut self, t: &ProcessTransport) {
        self.rec.events.borrow_mut().push("made".into());
        if let Some(f) = self.on_made.take() {
            f(t);
        }
    }
    fn child_data_received(&mut self, t: &ProcessTransport, fd: i32, data: &[u8]) {
        match fd {
            1 => {
                if self.panic_on_out {
                    panic!("out_received blew up");
                }
                self.rec.out.borrow_mut().extend_from_slice(data)
            }
            2 => self.rec.err.borrow_mut().extend_from_slice(data),
            _ => self.rec.extra.borrow_mut().push((fd, data.to_vec())),
        }
        let _ = t;
    }
    fn child_connection_lost(&mut self, _: &ProcessTransport, fd: i32) {
        self.rec.events.borrow_mut().push(format!("lost {fd}"));
    }
    fn process_exited(&mut self, reason: Failure) {
        self.rec.events.borrow_mut().push("exited".into());
        *self.rec.exited.borrow_mut() = Some(reason);
    }
    fn process_ended(&mut self, reason: Failure) {
        self.rec.events.borrow_mut().push("ended".into());
        self.rec.ended.put(reason).unwrap();
    }
}

async fn ended(rec: &Rec) -> Failure {
    rec.ended.get().unwrap().await.unwrap()
}

fn spawn(spec: ProcessSpec, p: Recorder) -> ProcessTransport {
    reactor().spawn_process_spec(p, spec).expect("spawn")
}

#[torsion::test(timeout = 30)]
async fn echo_through_cat() {
    let (p, rec) = Recorder::new(|t| {
        t.write(b"hello, ");
        t.write_sequence(&[b"cat", b"\n"]);
        t.close_stdin();
    });
    let t = reactor()
        .spawn_process(p, "cat", &[] as &[&str], Env::Inherit, None)
        .unwrap();
    assert!(t.pid().is_some());
    let reason = ended(&rec).await;
    assert!(reason.check::<ProcessDone>(), "{reason:?}");
    assert!(rec.exited.borrow().as_ref().unwrap().check::<ProcessDone>());
    assert_eq!(&*rec.out.borrow(), b"hello, cat\n");
    assert!(rec.err.borrow().is_empty());
    let events = rec.events.borrow().clone();
    assert_eq!(events.first().unwrap(), "made");
    assert_eq!(events.last().unwrap(), "ended");
    for e in ["lost 0", "lost 1", "lost 2", "exited"] {
        assert!(events.contains(&e.to_string()), "{events:?}");
    }
    assert_eq!(t.pid(), None, "no pid once the child has exited");
    assert!(t.ended());
    assert!(t.exit_info().unwrap().success());
}

#[torsion::test(timeout = 30)]
async fn stdout_and_stderr_are_separate() {
    let (p, rec) = Recorder::new(|_| {});
    spawn(
        ProcessSpec::new("sh").args(["-c", "echo to-out; echo to-err >&2; echo more-out"]),
        p,
    );
    ended(&rec).await;
    assert_eq!(&*rec.out.borrow(), b"to-out\nmore-out\n");
    assert_eq!(&*rec.err.borrow(), b"to-err\n");
}

#[torsion::test(timeout = 30)]
async fn exit_code_is_reported() {
    let (p, rec) = Recorder::new(|_| {});
    spawn(ProcessSpec::new("sh").args(["-c", "exit 3"]), p);
    let reason = ended(&rec).await;
    let t = reason
        .downcast_ref::<ProcessTerminated>()
        .expect("ProcessTerminated");
    assert_eq!((t.exit_code, t.signal), (Some(3), None));
    assert!(reason.to_string().contains("exit code 3"), "{reason}");
    let exited = rec.exited.borrow_mut().take().unwrap();
    assert_eq!(
        exited
            .downcast_ref::<ProcessTerminated>()
            .unwrap()
            .exit_code,
        Some(3)
    );
}

#[torsion::test(timeout = 30)]
async fn signals_are_sent_and_reported() {
    for (name, number) in [("TERM", 15), ("KILL", 9), ("SIGINT", 2)] {
        let (p, rec) = Recorder::new(|_| {});
        let t = spawn(ProcessSpec::new("sleep").arg("30"), p);
        t.signal_process(name).unwrap();
        let reason = ended(&rec).await;
        let term = reason
            .downcast_ref::<ProcessTerminated>()
            .expect("ProcessTerminated");
        assert_eq!(
            (term.exit_code, term.signal),
            (None, Some(number)),
            "{name}"
        );
        assert!(reason.to_string().contains(&format!("signal {number}")));
        let again = t.signal_process("KILL").unwrap_err();
        assert!(again.check::<ProcessExitedAlready>(), "{again:?}");
    }
    let (p, rec) = Recorder::new(|_| {});
    let t = spawn(ProcessSpec::new("sleep").arg("30"), p);
    let bad = t.signal_process("NOT-A-SIGNAL").unwrap_err();
    assert_eq!(
        bad.downcast_ref::<std::io::Error>().unwrap().kind(),
        std::io::ErrorKind::InvalidInput
    );
    t.signal_process("9").unwrap();
    ended(&rec).await;
}

#[torsion::test(timeout = 30)]
async fn a_typed_signal_is_sent_as_its_number() {
    use torsion::process::Signal;
    let (p, rec) = Recorder::new(|_| {});
    let t = spawn(ProcessSpec::new("sleep").arg("30"), p);
    t.signal_process(Signal::Term).unwrap();
    let reason = ended(&rec).await;
    let term = reason
        .downcast_ref::<ProcessTerminated>()
        .expect("ProcessTerminated");
    assert_eq!(term.signal, Some(Signal::Term.number()));
    assert_eq!(Signal::Term.number(), 15);
}

#[torsion::test(timeout = 30)]
async fn closing_stdin_makes_cat_exit() {
    let (p, rec) = Recorder::new(|_| {});
    let t = spawn(ProcessSpec::new("cat"), p);
    // cat waits for input; give it a moment of real running, then close its input.
    reactor().call_later(0.05, move || t.close_stdin());
    let reason = ended(&rec).await;
    assert!(reason.check::<ProcessDone>(), "{reason:?}");
    let events = rec.events.borrow();
    let lost0 = events.iter().position(|e| e == "lost 0").unwrap();
    let exited = events.iter().position(|e| e == "exited").unwrap();
    assert!(lost0 < exited, "{events:?}");
}

#[torsion::test(timeout = 30)]
async fn lose_connection_closes_every_pipe() {
    let (p, rec) = Recorder::new(|t| t.lose_connection());
    spawn(ProcessSpec::new("cat"), p);
    let reason = ended(&rec).await;
    assert!(reason.check::<ProcessDone>(), "{reason:?}");
    let events = rec.events.borrow();
    for e in ["lost 0", "lost 1", "lost 2"] {
        assert!(events.contains(&e.to_string()), "{events:?}");
    }
}

#[torsion::test(timeout = 30)]
async fn a_missing_program_fails_with_its_name() {
    let (p, _rec) = Recorder::new(|_| panic!("never started"));
    let f = reactor()
        .spawn_process(p, "/no/such/torsion-program", &["x"], Env::Inherit, None)
        .unwrap_err();
    let e = f.downcast_ref::<SpawnError>().expect("SpawnError");
    assert_eq!(e.program(), "/no/such/torsion-program");
    assert_eq!(e.io_error().kind(), std::io::ErrorKind::NotFound);
    assert!(f.to_string().contains("/no/such/torsion-program"), "{f}");

    let (p, _rec) = Recorder::new(|_| panic!("never started"));
    let f = reactor()
        .spawn_process(
            p,
            "sh",
            &["-c", "true"],
            Env::Inherit,
            Some(Path::new("/no/such/dir")),
        )
        .unwrap_err();
    assert!(f.check::<SpawnError>(), "{f:?}");
}

#[torsion::test(timeout = 30)]
async fn environment_and_working_directory_are_passed() {
    let dir = std::env::temp_dir().canonicalize().unwrap();
    let (p, rec) = Recorder::new(|_| {});
    reactor()
        .spawn_process(
            p,
            "sh",
            &[
                "-c",
                "echo \"$TORSION_TEST_VAR\"; pwd; echo \"${HOME:+home-set}\"",
            ],
            Env::extend([("TORSION_TEST_VAR", "forty two")]),
            Some(&dir),
        )
        .unwrap();
    ended(&rec).await;
    let home = if std::env::var_os("HOME").is_some() {
        "home-set\n"
    } else {
        "\n"
    };
    assert_eq!(
        String::from_utf8(rec.out.borrow().clone()).unwrap(),
        format!("forty two\n{}\n{home}", dir.display())
    );

    // Env::Exactly is Twisted's explicit environment: nothing else is passed.
    let (p, rec) = Recorder::new(|_| {});
    spawn(
        ProcessSpec::new("/usr/bin/env").env(Env::exactly([("ONLY", "this")])),
        p,
    );
    ended(&rec).await;
    assert_eq!(&*rec.out.borrow(), b"ONLY=this\n");
}

#[torsion::test(timeout = 60)]
async fn megabytes_each_way_arrive_complete() {
    const SIZE: usize = 6 * 1024 * 1024;
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let sent = data.clone();
    let (p, rec) = Recorder::new(move |t| {
        // One big write and many small ones, all buffered while cat drains them.
        t.write(&sent[..SIZE / 2]);
        for chunk in sent[SIZE / 2..].chunks(1000) {
            t.write(chunk);
        }
        assert!(t.buffered_size() > 0);
        t.close_stdin();
    });
    spawn(ProcessSpec::new("cat"), p);
    let reason = ended(&rec).await;
    assert!(reason.check::<ProcessDone>(), "{reason:?}");
    {
        let out = rec.out.borrow();
        assert_eq!(out.len(), SIZE);
        assert!(*out == data, "the output differs from the input");
    }

    // A child that only writes: several megabytes of output.
    let (p, rec) = Recorder::new(|_| {});
    spawn(
        ProcessSpec::new("head").args(["-c", "8000000", "/dev/zero"]),
        p,
    );
    ended(&rec).await;
    let out = rec.out.borrow();
    assert_eq!(out.len(), 8_000_000);
    assert!(out.iter().all(|&b| b == 0));
}

#[torsion::test(timeout = 30)]
async fn extra_descriptors_are_mapped() {
    let (p, rec) = Recorder::new(|t| {
        t.write_to_child(4, b"via four");
        t.close_child_fd(4);
        t.close_stdin();
    });
    spawn(
        ProcessSpec::new("sh")
            .args(["-c", "echo three >&3; exec 3>&-; cat <&4; echo done >&2"])
            .child_fd(3, ChildFd::Read)
            .child_fd(4, ChildFd::Write),
        p,
    );
    let reason = ended(&rec).await;
    assert!(reason.check::<ProcessDone>(), "{reason:?}");
    assert_eq!(*rec.extra.borrow(), vec![(3, b"three\n".to_vec())]);
    assert_eq!(&*rec.out.borrow(), b"via four");
    assert_eq!(&*rec.err.borrow(), b"done\n");
    let events = rec.events.borrow();
    for e in ["lost 0", "lost 1", "lost 2", "lost 3", "lost 4"] {
        assert!(events.contains(&e.to_string()), "{events:?}");
    }
}

#[torsion::test(timeout = 30)]
async fn standard_descriptors_can_be_null_or_owned() {
    // stdout to a file we own, stdin from /dev/null: nothing arrives on pipe 1.
    let path = std::env::temp_dir().join(format!("torsion-process-fd-{}.txt", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let (p, rec) = Recorder::new(|_| {});
    spawn(
        ProcessSpec::new("sh")
            .args(["-c", "cat; echo into-file"])
            .child_fd(0, ChildFd::Null)
            .child_fd(1, ChildFd::Fd(file.into())),
        p,
    );
    let reason = ended(&rec).await;
    assert!(reason.check::<ProcessDone>(), "{reason:?}");
    assert!(rec.out.borrow().is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "into-file\n");
    let _ = std::fs::remove_file(&path);

    // Descriptor 1 cannot be a pipe the parent writes.
    let (p, _rec) = Recorder::new(|_| {});
    let f = reactor()
        .spawn_process_spec(p, ProcessSpec::new("true").child_fd(1, ChildFd::Write))
        .unwrap_err();
    assert!(f.check::<SpawnError>(), "{f:?}");
}

#[torsion::test(timeout = 30)]
async fn a_panic_in_out_received_is_contained() {
    let (mut p, rec) = Recorder::new(|_| {});
    p.panic_on_out = true;
    // The child would print forever; the panic closes its pipes, so it dies of SIGPIPE.
    spawn(
        ProcessSpec::new("sh").args(["-c", "while echo x; do :; done"]),
        p,
    );
    let reason = ended(&rec).await;
    assert!(
        reason.check::<ProcessTerminated>() || reason.check::<ProcessDone>(),
        "{reason:?}"
    );
    assert!(!reason.check::<PanicError>());
    assert!(
        rec.events.borrow().contains(&"lost 1".to_string()),
        "{:?}",
        rec.events.borrow()
    );

    // The reactor goes on: another child runs normally.
    let (p, rec) = Recorder::new(|t| t.close_stdin());
    spawn(ProcessSpec::new("echo").arg("still here"), p);
    assert!(ended(&rec).await.check::<ProcessDone>());
    assert_eq!(&*rec.out.borrow(), b"still here\n");
}

#[torsion::test(timeout = 30)]
async fn output_can_be_paused() {
    let (p, rec) = Recorder::new(|t| t.pause_producing());
    let t = spawn(ProcessSpec::new("echo").arg("later"), p);
    let t2 = t.clone();
    let resumed = Rc::new(std::cell::Cell::new(false));
    let r2 = resumed.clone();
    let rec2 = rec.clone();
    reactor().call_later(0.2, move || {
        // Paused: the child has exited, but its output waits unread.
        assert!(rec2.out.borrow().is_empty());
        r2.set(true);
        t2.resume_producing();
    });
    ended(&rec).await;
    assert!(resumed.get());
    assert_eq!(&*rec.out.borrow(), b"later\n");
    assert!(!t.as_transport().is_connected());
}

#[torsion::test(timeout = 30)]
async fn a_child_that_closes_its_stdin_early_loses_fd_0_first() {
    let (p, rec) = Recorder::new(|t| {
        // Far more than a pipe holds: the rest waits in the buffer until EPIPE.
        t.write(&vec![b'x'; 4 * 1024 * 1024]);
    });
    spawn(
        ProcessSpec::new("sh").args(["-c", "exec 0<&-; sleep 0.3; echo after"]),
        p,
    );
    let reason = ended(&rec).await;
    assert!(reason.check::<ProcessDone>(), "{reason:?}");
    assert_eq!(&*rec.out.borrow(), b"after\n");
    let events = rec.events.borrow();
    let lost0 = events.iter().position(|e| e == "lost 0").unwrap();
    let exited = events.iter().position(|e| e == "exited").unwrap();
    assert!(lost0 < exited, "{events:?}");
}

/// At reactor shutdown a running child's pipes are closed and `process_ended` says so; the
/// child itself is left running, as in Twisted.
#[test]
fn reactor_shutdown_ends_the_protocol_but_not_the_child() {
    let r = torsion::Reactor::new();
    r.set_install_signal_handlers(false);
    let (p, rec) = Recorder::new(|_| {});
    let t = r
        .spawn_process_spec(p, ProcessSpec::new("sleep").arg("30"))
        .unwrap();
    let pid = t.pid().unwrap();
    r.call_later(0.05, || reactor().stop().unwrap());
    r.run().unwrap();
    let events = rec.events.borrow().clone();
    assert_eq!(
        events.last().map(String::as_str),
        Some("ended"),
        "{events:?}"
    );
    assert!(!events.contains(&"exited".to_string()), "{events:?}");
    // Still alive (checked with kill -0), then cleaned up.
    let alive = std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .status()
        .unwrap();
    assert!(alive.success(), "the child was killed");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}
