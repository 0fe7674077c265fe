//! `CookieAgent` and `CookieJar` (RFC 6265 via cookie_store) against torsion-web's own server
//! setting cookies: paths, host-only cookies, deletion with `Max-Age=0`, expiry, cookies set
//! by a redirect's hop, and a `Cookie` header of the caller's own. Domain and `Secure` rules
//! are checked on the jar with URLs (no DNS for other names here).

use torsion::task::defer_later;
use torsion::{reactor, Failure};
use torsion_web::client::{read_body, Agent, CookieAgent, CookieJar};
use torsion_web::proto::Headers;
use torsion_web::{Render, Request, Resource, Site};

/// `/set?<Set-Cookie>` sets one cookie; `/redirect` sets `hop=1` and redirects to `/echo`;
/// anything else answers with the request's `Cookie` header (or `-`).
struct Cookies;

impl Resource for Cookies {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render_get(&self, r: &Request) -> Render {
        let uri = r.uri().to_owned();
        if let Some(cookie) = uri.split_once("/set?").map(|(_, c)| c) {
            let cookie = cookie.replace("%20", " ");
            r.add_header("Set-Cookie", cookie);
            return "set".into();
        }
        if uri == "/redirect" {
            r.add_header("Set-Cookie", "hop=1");
            r.set_response_code(302);
            r.set_header("Location", "/echo");
            return "".into();
        }
        r.get_header("cookie").unwrap_or("-").to_owned().into()
    }
}

async fn fetch(agent: &CookieAgent, url: &str) -> Result<String, Failure> {
    let response = agent.get(url).await?;
    Ok(String::from_utf8(read_body(response).await?).unwrap())
}

#[torsion::test]
async fn cookies_set_by_a_server_come_back_by_path_and_go_when_deleted() -> Result<(), Failure> {
    let port = reactor()
        .listen_tcp_on(0, Site::new(Cookies), "127.0.0.1")
        .unwrap();
    let base = format!("http://127.0.0.1:{}", port.get_host().port().unwrap());
    let jar = CookieJar::new();
    let agent = CookieAgent::new(Agent::new().with_redirects(5), jar.clone());
    assert_eq!(fetch(&agent, &format!("{base}/echo")).await?, "-");
    fetch(&agent, &format!("{base}/set?theme=dark")).await?;
    fetch(&agent, &format!("{base}/set?sid=abc;%20Path=/app")).await?;
    assert_eq!(jar.len(), 2);
    // Path matching: /app's cookie only under /app, more specific paths first.
    assert_eq!(fetch(&agent, &format!("{base}/echo")).await?, "theme=dark");
    assert_eq!(
        fetch(&agent, &format!("{base}/app/echo")).await?,
        "sid=abc; theme=dark"
    );
    assert_eq!(
        fetch(&agent, &format!("{base}/application")).await?,
        "theme=dark"
    );
    // Replacement, then deletion with Max-Age=0.
    fetch(&agent, &format!("{base}/set?theme=light")).await?;
    assert_eq!(fetch(&agent, &format!("{base}/echo")).await?, "theme=light");
    fetch(&agent, &format!("{base}/set?theme=x;%20Max-Age=0")).await?;
    assert_eq!(fetch(&agent, &format!("{base}/echo")).await?, "-");
    assert_eq!(jar.len(), 1);
    // A redirect's own Set-Cookie is kept and sent on the next hop.
    assert_eq!(fetch(&agent, &format!("{base}/redirect")).await?, "hop=1");
    // The caller's own Cookie header is kept, the jar's cookies added.
    let mut headers = Headers::new();
    headers.add("Cookie", "mine=1");
    let response = agent
        .request("GET", &format!("{base}/app/x"), headers, None)
        .await?;
    assert_eq!(read_body(response).await?, b"mine=1; sid=abc; hop=1");
    agent.agent().close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test]
async fn a_cookie_with_max_age_expires() -> Result<(), Failure> {
    let port = reactor()
        .listen_tcp_on(0, Site::new(Cookies), "127.0.0.1")
        .unwrap();
    let base = format!("http://127.0.0.1:{}", port.get_host().port().unwrap());
    let agent = CookieAgent::new(Agent::new(), CookieJar::new());
    fetch(&agent, &format!("{base}/set?brief=1;%20Max-Age=1")).await?;
    assert_eq!(fetch(&agent, &format!("{base}/echo")).await?, "brief=1");
    // cookie_store reads the wall clock (not a reactor's): poll, with a deadline.
    let mut left = 100;
    while !agent.jar().is_empty() {
        left -= 1;
        assert!(left > 0, "the cookie never expired");
        defer_later(&reactor(), 0.05, || ()).await?;
    }
    assert_eq!(fetch(&agent, &format!("{base}/echo")).await?, "-");
    agent.agent().close_cached_connections().await?;
    port.stop_listening().await
}

#[test]
fn domain_and_secure_rules_follow_rfc_6265() {
    let jar = CookieJar::new();
    // A Domain that does not cover the host is refused; a host-only cookie stays on its host.
    assert!(!jar.set_cookie("http://www.example.com/", "a=1; Domain=other.org"));
    assert!(jar.set_cookie("http://www.example.com/", "host=1"));
    assert!(jar.set_cookie("http://www.example.com/", "dom=1; Domain=.example.com"));
    // (Cookies of equal path length come in no set order.)
    let sorted = |header: Option<String>| {
        let header = header.unwrap_or_default();
        let mut pairs: Vec<String> = header.split("; ").map(str::to_owned).collect();
        pairs.sort_unstable();
        pairs
    };
    assert_eq!(
        sorted(jar.cookie_header("http://www.example.com/")),
        ["dom=1", "host=1"]
    );
    assert_eq!(
        jar.cookie_header("http://a.b.example.com/").as_deref(),
        Some("dom=1")
    );
    assert_eq!(jar.cookie_header("http://notexample.com/"), None);
    // Secure cookies go over https only.
    assert!(jar.set_cookie("https://www.example.com/", "s=1; Secure"));
    assert_eq!(
        sorted(jar.cookie_header("https://www.example.com/")),
        ["dom=1", "host=1", "s=1"]
    );
    assert!(!jar
        .cookie_header("http://www.example.com/")
        .unwrap()
        .contains("s=1"));
    // Malformed input is refused, never a panic.
    assert!(!jar.set_cookie("http://www.example.com/", "=; ;;"));
    assert!(!jar.set_cookie("not a url", "a=1"));
    assert_eq!(jar.cookie_header("not a url"), None);
    jar.clear();
    assert!(jar.is_empty());
}
