//! `client::treq` against torsion-web's own server: JSON and form bodies arrive with their
//! content types, `json()` parses (and fails on what is not JSON), `text()` honours the
//! charset, and the shared agent follows redirects.

use std::rc::Rc;

use serde_json::{json, Value};
use torsion::{reactor, Failure};
use torsion_web::client::treq::{self, Body};
use torsion_web::resources::{Data, Directory, Redirect};
use torsion_web::{Render, Request, Resource, Site};

/// POST: answers JSON describing the request; GET: `café` in ISO-8859-1, or (`?utf8`) in
/// UTF-8 with no charset.
struct Echo;

impl Resource for Echo {
    fn is_leaf(&self) -> bool {
        true
    }

    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "POST"]
    }

    fn render_get(&self, r: &Request) -> Render {
        if r.uri().ends_with("?utf8") {
            r.set_header("Content-Type", "text/plain");
            return "café".into();
        }
        r.set_header("Content-Type", "text/plain; charset=ISO-8859-1");
        b"caf\xE9".to_vec().into()
    }

    fn render_post(&self, r: &Request) -> Render {
        r.set_header("Content-Type", "application/json");
        let answer = json!({
            "method": r.method(),
            "type": r.get_header("content-type").unwrap_or("-"),
            "body": String::from_utf8_lossy(&r.content()),
        });
        answer.to_string().into()
    }
}

#[torsion::test]
async fn treq_posts_json_and_forms_and_reads_json_and_text() -> Result<(), Failure> {
    let root = Directory::new();
    root.put_child(b"echo", Rc::new(Echo));
    root.put_child(b"moved", Rc::new(Redirect::new("/echo")));
    root.put_child(b"bad", Rc::new(Data::new("{not json", "application/json")));
    let port = reactor()
        .listen_tcp_on(0, Site::new(root), "127.0.0.1")
        .unwrap();
    let base = format!("http://127.0.0.1:{}", port.get_host().port().unwrap());

    let body = Body::json(&json!({"score": 42, "name": "ann"})).unwrap();
    let got: Value = treq::post(&format!("{base}/echo"), body)
        .await?
        .json()
        .await?;
    assert_eq!(got["method"], "POST");
    assert_eq!(got["type"], "application/json");
    let sent: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({"score": 42, "name": "ann"}));

    let form = Body::form(&[("q", "a b&c"), ("n", "1")]);
    let got: Value = treq::json(treq::post(&format!("{base}/echo"), form).await?).await?;
    assert_eq!(got["type"], "application/x-www-form-urlencoded");
    assert_eq!(got["body"], "q=a+b%26c&n=1");

    let got: Value = treq::post_json(&format!("{base}/echo"), &[1, 2, 3])
        .await?
        .json()
        .await?;
    assert_eq!(got["body"], "[1,2,3]");

    // Redirects are followed; the charset says ISO-8859-1.
    let text = treq::get(&format!("{base}/moved")).await?.text().await?;
    assert_eq!(text, "café");
    // No charset: UTF-8 (treq would read ISO-8859-1 and give "cafÃ©").
    let text = treq::get(&format!("{base}/echo?utf8"))
        .await?
        .text()
        .await?;
    assert_eq!(text, "café");

    // Not JSON: the serde_json error.
    let f = treq::get(&format!("{base}/bad"))
        .await?
        .json::<Value>()
        .await
        .unwrap_err();
    assert!(f.check::<serde_json::Error>(), "{f}");

    assert_eq!(treq::agent().pool().idle_connections(), 1);
    treq::close_cached_connections().await?;
    port.stop_listening().await
}
