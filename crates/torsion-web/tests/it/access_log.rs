//! The access log with addresses the network chose: a PROXY protocol header can name any
//! Unix path, and its bytes must not reach the log raw. The finished-request hook, which needs
//! no log.

use std::cell::RefCell;
use std::rc::Rc;

use crate::support::exchange;
use torsion::protocols::haproxy::HAProxyWrappingFactory;
use torsion::{reactor, Failure};
use torsion_web::resources::Data;
use torsion_web::Site;

/// A PROXY v2 header for a Unix stream connection from `source`.
fn v2_unix_header(source: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    h.push(0x31); // AF_UNIX, STREAM
    h.extend_from_slice(&216u16.to_be_bytes());
    let mut src = [0u8; 108];
    src[..source.len()].copy_from_slice(source);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[0u8; 108]);
    h
}

#[torsion::test]
async fn an_access_log_line_has_no_raw_control_bytes_from_a_proxy_header() -> Result<(), Failure> {
    let lines = Rc::new(RefCell::new(Vec::<String>::new()));
    let site = Site::new(Data::new(b"hi".to_vec(), "text/plain"));
    let l = lines.clone();
    site.set_access_log(move |line| l.borrow_mut().push(line.to_owned()));
    let port = reactor()
        .listen_tcp_on(0, HAProxyWrappingFactory::new(site), "127.0.0.1")
        .unwrap();
    let addr = port.get_host().socket_addr().unwrap();
    let mut request = v2_unix_header(b"/run/evil\nFAKE LINE \x1b[31mred");
    request.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let out = exchange(addr, request).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let lines = lines.borrow().clone();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(!line.contains('\n') && !line.contains('\x1b'), "{line:?}");
    assert!(
        line.starts_with("unix:/run/evil\\nFAKE LINE \\x1b[31mred - - ["),
        "{line:?}"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn the_finished_hook_counts_requests_with_or_without_an_access_log() -> Result<(), Failure> {
    let pipelined =
        "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for keep_log in [false, true] {
        let finished = Rc::new(RefCell::new(0));
        let lines = Rc::new(RefCell::new(Vec::<String>::new()));
        let site = Site::new(Data::new(b"hi".to_vec(), "text/plain"));
        let f = finished.clone();
        site.on_request_finished(move || *f.borrow_mut() += 1);
        if keep_log {
            let l = lines.clone();
            site.set_access_log(move |line| l.borrow_mut().push(line.to_owned()));
        }
        let port = reactor().listen_tcp_on(0, site, "127.0.0.1").unwrap();
        let addr = port.get_host().socket_addr().unwrap();
        let out = exchange(addr, pipelined).await;
        assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
        assert_eq!(*finished.borrow(), 2, "keep_log {keep_log}");
        assert_eq!(lines.borrow().len(), if keep_log { 2 } else { 0 });
        port.stop_listening().await?;
    }
    Ok(())
}
