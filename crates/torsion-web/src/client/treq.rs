//! A small treq: one-call requests on a shared agent, and a response's body as text or JSON.
//!
//! Like Python's `treq`, [`get`] and [`post`] use one agent per thread (a persistent pool,
//! redirects followed, gzip decoded, [`Agent::new`]'s time-outs) and give the [`Response`];
//! [`text`] and [`json`] read its body (within the agent's body limit). [`Body::json`] and
//! [`Body::form`] make `application/json` and `application/x-www-form-urlencoded` bodies.
//! The `*_with` functions take an agent of your own.
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use torsion::{defer::ensure_deferred, Failure, Reactor};
//! use torsion_web::client::treq;
//! use torsion_web::{resources::Data, Site};
//!
//! let reactor = Reactor::new();
//! let site = Site::new(Data::new(r#"{"name": "torsion", "stars": 3}"#, "application/json"));
//! let port = reactor.listen_tcp_on(0, site, "127.0.0.1")?;
//! let url = format!("http://127.0.0.1:{}/", port.get_host().port().unwrap());
//!
//! let got = Rc::new(RefCell::new(None));
//! let keep = got.clone();
//! reactor.call_when_running(move || {
//!     ensure_deferred(async move {
//!         let response = treq::get(&url).await?;
//!         let value: serde_json::Value = treq::json(response).await?;
//!         treq::close_cached_connections().await?;
//!         port.stop_listening().await?;
//!         Ok::<_, Failure>(value)
//!     })
//!     .add_both(move |out| {
//!         *keep.borrow_mut() = Some(out);
//!         torsion::reactor().stop()
//!     });
//! });
//! reactor.run()?;
//! let value = got.borrow_mut().take().unwrap()?;
//! assert_eq!(value["stars"], 3);
//! # Ok::<(), Failure>(())
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;
use torsion::defer::{fail, Deferred};
use torsion::Failure;

use super::agent::{Agent, DEFAULT_REDIRECT_LIMIT};
use super::response::{read_body, Response};
use crate::proto::Headers;

thread_local! {
    static AGENT: Agent = Agent::new().with_redirects(DEFAULT_REDIRECT_LIMIT).with_gzip();
}

/// The thread's shared agent (treq's default `HTTPConnectionPool`).
pub fn agent() -> Agent {
    AGENT.with(Agent::clone)
}

/// Closes the shared agent's idle connections (call it before stopping, as tests must).
pub fn close_cached_connections() -> Deferred<()> {
    agent().close_cached_connections()
}

/// A request body and its `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    content_type: &'static str,
    bytes: Vec<u8>,
}

impl Body {
    /// `value` as JSON (`application/json`), as treq's `json=`.
    pub fn json(value: &impl Serialize) -> Result<Body, serde_json::Error> {
        Ok(Body {
            content_type: "application/json",
            bytes: serde_json::to_vec(value)?,
        })
    }

    /// `fields` form-encoded (`application/x-www-form-urlencoded`), as treq's `data=` with a
    /// dict or a list of pairs.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(fields: &[(K, V)]) -> Body {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            out.append_pair(k.as_ref(), v.as_ref());
        }
        Body {
            content_type: "application/x-www-form-urlencoded",
            bytes: out.finish().into_bytes(),
        }
    }

    /// Raw bytes with the given `Content-Type`.
    pub fn bytes(content_type: &'static str, bytes: Vec<u8>) -> Body {
        Body {
            content_type,
            bytes,
        }
    }

    /// The `Content-Type` it is sent with.
    pub fn content_type(&self) -> &str {
        self.content_type
    }

    /// The encoded body.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A GET of `url` on the shared agent.
pub fn get(url: &str) -> Deferred<Response> {
    get_with(&agent(), url)
}

/// A GET of `url` on `agent`.
pub fn get_with(agent: &Agent, url: &str) -> Deferred<Response> {
    agent.get(url)
}

/// A POST of `body` to `url` on the shared agent.
pub fn post(url: &str, body: Body) -> Deferred<Response> {
    post_with(&agent(), url, body)
}

/// A POST of `body` to `url` on `agent`.
pub fn post_with(agent: &Agent, url: &str, body: Body) -> Deferred<Response> {
    request_with(agent, "POST", url, Some(body))
}

/// A request of any method on `agent`, with an optional body.
pub fn request_with(
    agent: &Agent,
    method: &str,
    url: &str,
    body: Option<Body>,
) -> Deferred<Response> {
    let mut headers = Headers::new();
    let bytes = body.map(|b| {
        headers.set("Content-Type", b.content_type);
        b.bytes
    });
    agent.request(method, url, headers, bytes)
}

/// The body of `response` (treq's `content`).
pub fn content(response: Response) -> Deferred<Vec<u8>> {
    read_body(response)
}

/// The body of `response` as text (treq's `text_content`): decoded as its `Content-Type`'s
/// `charset` says, ISO-8859-1 (`latin1`, `us-ascii` read the same way) or UTF-8, the
/// default; bytes that are not valid UTF-8 become U+FFFD.
pub fn text(response: Response) -> Deferred<String> {
    let latin1 = response
        .headers
        .get_str("content-type")
        .and_then(charset)
        .is_some_and(|c| {
            ["iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii"]
                .iter()
                .any(|l| c.eq_ignore_ascii_case(l))
        });
    read_body(response).add_callback(move |bytes| {
        if latin1 {
            bytes.iter().map(|&b| char::from(b)).collect()
        } else {
            match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }
        }
    })
}

/// The `charset` parameter of a `Content-Type`.
fn charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// The body of `response` parsed as JSON into `T` (treq's `json_content`); a body that is
/// not such JSON fails with the [`serde_json::Error`].
pub fn json<T: DeserializeOwned + 'static>(response: Response) -> Deferred<T> {
    read_body(response)
        .add_callback_result(|bytes| serde_json::from_slice(&bytes).map_err(Failure::new))
}

/// [`post`] with `value` as JSON; fails with the [`serde_json::Error`] if it cannot be
/// encoded.
pub fn post_json(url: &str, value: &impl Serialize) -> Deferred<Response> {
    match Body::json(value) {
        Ok(body) => post(url, body),
        Err(e) => fail(e),
    }
}

impl Response {
    /// The body as text; see [`treq::text`](text).
    pub fn text(self) -> Deferred<String> {
        text(self)
    }

    /// The body parsed as JSON; see [`treq::json`](json).
    pub fn json<T: DeserializeOwned + 'static>(self) -> Deferred<T> {
        json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charsets_are_found_in_content_types() {
        assert_eq!(charset("text/html; charset=ISO-8859-1"), Some("ISO-8859-1"));
        assert_eq!(charset("text/plain;CHARSET=\"utf-8\""), Some("utf-8"));
        assert_eq!(charset("text/plain"), None);
        assert_eq!(charset("text/plain; charset"), None);
    }

    #[test]
    fn bodies_are_encoded() {
        let form = Body::form(&[("a b", "1&2"), ("é", "=")]);
        assert_eq!(form.as_bytes(), b"a+b=1%262&%C3%A9=%3D");
        assert_eq!(form.content_type(), "application/x-www-form-urlencoded");
        let json = Body::json(&serde_json::json!({"k": [1, 2]})).unwrap();
        assert_eq!(json.as_bytes(), br#"{"k":[1,2]}"#);
        assert_eq!(json.content_type(), "application/json");
    }
}
