//! Cookies for the client (Twisted's `CookieAgent` and its `CookieJar`): a [`CookieJar`]
//! keeps what servers set with `Set-Cookie` and gives back, for each request, the cookies
//! RFC 6265 says it should carry; [`CookieAgent`] is an [`Agent`] that uses one. The rules
//! (domain and path matching, host-only cookies, `Secure`, `Expires` and `Max-Age`,
//! replacement and deletion) are those of the `cookie_store` crate.
//!
//! ```
//! use torsion_web::client::CookieJar;
//!
//! let jar = CookieJar::new();
//! jar.set_cookie("https://www.example.com/app/login", "sid=42; Domain=example.com; Path=/app; Secure");
//! jar.set_cookie("https://www.example.com/", "lang=en");
//! // Domain cookies reach sub-domains; host-only ones do not.
//! assert_eq!(jar.cookie_header("https://shop.example.com/app/cart").as_deref(), Some("sid=42"));
//! assert_eq!(jar.cookie_header("https://www.example.com/").as_deref(), Some("lang=en"));
//! // A Secure cookie is not sent over plain http.
//! assert_eq!(jar.cookie_header("http://shop.example.com/app/cart"), None);
//! assert_eq!(jar.len(), 2);
//! ```

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use cookie_store::CookieStore;
use torsion::defer::Deferred;

use super::agent::Agent;
use super::body::RequestBodyProducer;
use super::response::Response;
use crate::proto::Headers;

/// A cookie jar (Twisted's `cookielib.CookieJar` as `CookieAgent` uses it): cheap to clone,
/// clones share the cookies. Cookies without `Expires` or `Max-Age` last as long as the jar.
#[derive(Clone, Default)]
pub struct CookieJar {
    store: Rc<RefCell<CookieStore>>,
}

/// `url` as the cookie store's URL type, if it parses.
fn parse_url(url: &str) -> Option<url::Url> {
    url::Url::parse(url).ok()
}

impl CookieJar {
    /// An empty jar.
    pub fn new() -> CookieJar {
        CookieJar::default()
    }

    /// Stores a cookie as if a response to `url` had sent `Set-Cookie: set_cookie`. Returns
    /// whether it was taken: a malformed one, or one `url` may not set (a `Domain` that does
    /// not cover its host, a `Secure` one over http), is refused. One that is already expired
    /// removes the stored cookie of that name, domain and path.
    pub fn set_cookie(&self, url: &str, set_cookie: &str) -> bool {
        let Some(url) = parse_url(url) else {
            return false;
        };
        self.store.borrow_mut().parse(set_cookie, &url).is_ok()
    }

    /// The `Cookie` header a request to `url` carries, if any cookie matches: `name=value`
    /// pairs joined by `; `, more specific paths first.
    pub fn cookie_header(&self, url: &str) -> Option<String> {
        let url = parse_url(url)?;
        let store = self.store.borrow();
        let mut cookies = store.matches(&url);
        // RFC 6265 section 5.4: longer paths first (the sort is stable).
        cookies.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        let pairs: Vec<String> = cookies
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// How many unexpired cookies the jar holds.
    pub fn len(&self) -> usize {
        self.store.borrow().iter_unexpired().count()
    }

    /// True when the jar holds no unexpired cookie.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every cookie.
    pub fn clear(&self) {
        self.store.borrow_mut().clear();
    }

    /// Stores the `Set-Cookie` headers of a response to `url`.
    pub(crate) fn extract(&self, url: &str, headers: &Headers) {
        let Some(url) = parse_url(url) else {
            return;
        };
        let mut store = self.store.borrow_mut();
        for value in headers.get_all("set-cookie") {
            if let Ok(text) = std::str::from_utf8(value) {
                // Refused cookies are dropped, as a browser drops them.
                let _ = store.parse(text, &url);
            }
        }
    }

    /// `headers` with the jar's cookies for `url` added to any `Cookie` header already there.
    pub(crate) fn add_to(&self, url: &str, headers: &Headers) -> Option<Headers> {
        let jar = self.cookie_header(url)?;
        let mut headers = headers.clone();
        let value = match headers.get_str("cookie") {
            Some(own) if !own.trim().is_empty() => format!("{own}; {jar}"),
            _ => jar,
        };
        headers.set("Cookie", value);
        Some(headers)
    }
}

impl fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieJar")
            .field("cookies", &self.len())
            .finish()
    }
}

/// An [`Agent`] that keeps cookies (Twisted's `CookieAgent`): each request (and each hop of
/// a redirect) carries the jar's cookies for its URL, and each response's `Set-Cookie`
/// headers go into the jar.
///
/// ```no_run
/// use torsion_web::client::{Agent, CookieAgent, CookieJar};
///
/// let jar = CookieJar::new();
/// let agent = CookieAgent::new(Agent::new().with_redirects(20), jar.clone());
/// let response = agent.get("http://example.com/login");
/// ```
#[derive(Clone, Debug)]
pub struct CookieAgent {
    agent: Agent,
    jar: CookieJar,
}

impl CookieAgent {
    /// Wraps `agent` (its settings, redirects and pool) with `jar`.
    pub fn new(agent: Agent, jar: CookieJar) -> CookieAgent {
        CookieAgent {
            agent: agent.with_cookie_jar(Some(jar.clone())),
            jar,
        }
    }

    /// The jar.
    pub fn jar(&self) -> &CookieJar {
        &self.jar
    }

    /// The agent that sends the requests (the jar installed).
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// Sends a request; see [`Agent::request`].
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: Headers,
        body: Option<Vec<u8>>,
    ) -> Deferred<Response> {
        self.agent.request(method, url, headers, body)
    }

    /// Sends a request with a streamed body; see [`Agent::request_streaming`].
    pub fn request_streaming(
        &self,
        method: &str,
        url: &str,
        headers: Headers,
        producer: Rc<dyn RequestBodyProducer>,
    ) -> Deferred<Response> {
        self.agent.request_streaming(method, url, headers, producer)
    }

    /// A GET of `url`.
    pub fn get(&self, url: &str) -> Deferred<Response> {
        self.agent.get(url)
    }
}
