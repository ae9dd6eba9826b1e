//! Who may read and who may steer.
//!
//! - Every start makes a random token (128 bits). The URL printed at start carries it
//!   (`?token=…`) whenever it is needed; a request that presents it (query, the
//!   `X-Autoresearch-Token` header, or the cookie set when the page was opened with it) is
//!   *authorized*.
//! - Bound to a loopback address, reading needs no token, but the `Host` header must name the
//!   loopback address (a page of another site that rebinds its DNS name to 127.0.0.1 is refused).
//! - Bound to any other address, every request needs the token, and the start message says so.
//! - Control (bump, drop, stop) needs `--allow-control`, an authorized request, a POST, and, when
//!   the request comes from a browser (an `Origin` header), an origin equal to the dashboard's.
//!
//! Refusals are `403 Forbidden` with a sentence saying what to do.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The header a script may send the token in.
pub const TOKEN_HEADER: &str = "x-autoresearch-token";

/// The access policy of one server.
#[derive(Debug, Clone)]
pub struct Access {
    /// The per-start token (32 hex digits).
    pub token: String,
    /// Whether `--allow-control` was given.
    pub control: bool,
    /// The address bound.
    pub bind: IpAddr,
    /// The port bound.
    pub port: u16,
}

/// Set on every request that got through [`guard`]: whether it presented the token.
#[derive(Debug, Clone, Copy)]
pub struct Authorized(pub bool);

impl Access {
    /// A policy with a fresh random token.
    pub fn new(bind: IpAddr, port: u16, control: bool) -> anyhow::Result<Access> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| anyhow::anyhow!("cannot make a random token: {e}"))?;
        let token = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Access {
            token,
            control,
            bind,
            port,
        })
    }

    /// Whether the bound address is a loopback address.
    pub fn loopback(&self) -> bool {
        self.bind.is_loopback()
    }

    /// Whether reading needs the token (a non-loopback address).
    pub fn token_for_reads(&self) -> bool {
        !self.loopback()
    }

    /// Whether the printed URL carries the token.
    pub fn url_has_token(&self) -> bool {
        self.token_for_reads() || self.control
    }

    /// The URL to open: `http://ADDR:PORT/`, with `?token=…` when it is needed.
    pub fn url(&self) -> String {
        let host = match self.bind {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        if self.url_has_token() {
            format!("http://{host}:{}/?token={}", self.port, self.token)
        } else {
            format!("http://{host}:{}/", self.port)
        }
    }

    /// The cookie holding the token (named after the port: cookies do not tell ports apart).
    pub fn cookie_name(&self) -> String {
        format!("autoresearch_token_{}", self.port)
    }

    fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.token.as_bytes(), presented.as_bytes());
        // Constant time in the token's length.
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The token presented by a request: query `token`, the header, or the cookie.
    fn presented(&self, query: Option<&str>, headers: &HeaderMap) -> Option<String> {
        if let Some(t) = query.and_then(query_token) {
            return Some(t);
        }
        if let Some(t) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
            return Some(t.to_owned());
        }
        let name = self.cookie_name();
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
            // HTTP/1.0 without Host: not a browser on another site.
            return true;
        };
        let host = host.to_ascii_lowercase();
        let (name, port) = match host.rsplit_once(':') {
            Some((n, p)) if !n.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => {
                (n.to_owned(), Some(p.to_owned()))
            }
            _ => (host.clone(), None),
        };
        if port.is_some_and(|p| p != self.port.to_string()) {
            return false;
        }
        let bind = match self.bind {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        name == "localhost" || name == "127.0.0.1" || name == "[::1]" || name == bind
    }

    /// Whether a control request's `Origin` (when a browser sent one) is this dashboard.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(ORIGIN) else {
            return true;
        };
        let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        origin
            .to_str()
            .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("http://{host}")))
    }
}

/// The value of `token` in a query string.
fn query_token(query: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_owned())
}

/// A `403 Forbidden` with a message.
pub fn forbidden(message: impl Into<String>) -> Response {
    (
        StatusCode::FORBIDDEN,
        [("content-type", "text/plain; charset=utf-8")],
        message.into() + "\n",
    )
        .into_response()
}

/// The middleware in front of every route: refuses what the policy refuses, marks the request
/// [`Authorized`] or not, and sets the token cookie when a page is opened with `?token=…`.
pub async fn guard(State(access): State<Arc<Access>>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    if access.loopback() && !access.host_allowed(headers) {
        return forbidden(format!(
            "this dashboard answers only to http://127.0.0.1:{port}/ or http://localhost:{port}/ \
             (the Host header named another site: refused to protect against DNS rebinding)",
            port = access.port
        ));
    }
    let query_has_token = req.uri().query().and_then(query_token).is_some();
    let authorized = access
        .presented(req.uri().query(), headers)
        .is_some_and(|t| access.matches(&t));
    if access.token_for_reads() && !authorized {
        return forbidden(format!(
            "this dashboard is bound to {} (not a loopback address), so every request needs its \
             token: open the URL `supervisor serve` printed at start (it ends in ?token=…)",
            access.bind
        ));
    }
    req.extensions_mut().insert(Authorized(authorized));
    let mut resp = next.run(req).await;
    if authorized && query_has_token {
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            access.cookie_name(),
            access.token
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(bind: &str, control: bool) -> Access {
        Access {
            token: "0123456789abcdef0123456789abcdef".into(),
            control,
            bind: bind.parse().unwrap(),
            port: 8700,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_url_carries_the_token_only_when_needed() {
        assert_eq!(access("127.0.0.1", false).url(), "http://127.0.0.1:8700/");
        assert!(
            access("127.0.0.1", true)
                .url()
                .ends_with("/?token=0123456789abcdef0123456789abcdef")
        );
        assert!(access("0.0.0.0", false).url().contains("?token="));
        assert!(access("::1", false).url().starts_with("http://[::1]:8700/"));
    }

    #[test]
    fn tokens_are_found_in_query_header_and_cookie() {
        let a = access("127.0.0.1", true);
        let t = a.token.clone();
        assert_eq!(
            a.presented(Some(&format!("x=1&token={t}")), &HeaderMap::new()),
            Some(t.clone())
        );
        assert_eq!(
            a.presented(None, &headers(&[(TOKEN_HEADER, &t)])),
            Some(t.clone())
        );
        let cookie = format!("other=1; autoresearch_token_8700={t}");
        assert_eq!(
            a.presented(None, &headers(&[("cookie", &cookie)])),
            Some(t.clone())
        );
        // A cookie of a dashboard on another port is not this one's.
        let cookie = format!("autoresearch_token_8701={t}");
        assert_eq!(a.presented(None, &headers(&[("cookie", &cookie)])), None);
        assert!(a.matches(&t));
        assert!(!a.matches("0123456789abcdef0123456789abcdee"));
        assert!(!a.matches(""));
    }

    #[test]
    fn loopback_hosts_are_checked() {
        let a = access("127.0.0.1", false);
        assert!(a.host_allowed(&headers(&[("host", "127.0.0.1:8700")])));
        assert!(a.host_allowed(&headers(&[("host", "localhost:8700")])));
        assert!(a.host_allowed(&headers(&[("host", "[::1]:8700")])));
        assert!(!a.host_allowed(&headers(&[("host", "evil.example:8700")])));
        assert!(!a.host_allowed(&headers(&[("host", "127.0.0.1:9999")])));
    }

    #[test]
    fn origins_must_be_the_dashboard() {
        let a = access("127.0.0.1", true);
        let h = headers(&[
            ("host", "127.0.0.1:8700"),
            ("origin", "http://127.0.0.1:8700"),
        ]);
        assert!(a.origin_allowed(&h));
        let h = headers(&[
            ("host", "127.0.0.1:8700"),
            ("origin", "http://evil.example"),
        ]);
        assert!(!a.origin_allowed(&h));
        let h = headers(&[("host", "127.0.0.1:8700"), ("origin", "null")]);
        assert!(!a.origin_allowed(&h));
        // Not a browser: no Origin, the token alone decides.
        assert!(a.origin_allowed(&headers(&[("host", "127.0.0.1:8700")])));
    }
}
