//! Refusing what a web page makes a browser send (SPEC §4, like Kubo's RPC API).
//!
//! A peer's HTTP API listens on the same machine as the user's browser, and browsers send
//! some cross-site requests without asking anyone: a form's POST, or `fetch` with
//! `mode: "no-cors"`. CORS headers only stop the page from reading the answer; the request
//! has already been obeyed. So a request that shows it comes from a page (an `Origin`
//! header, or a `Sec-Fetch-Site` other than `same-origin` and `none`: a page on another
//! loopback port is `same-site`, not `same-origin`) is refused with 403 before anything runs
//! unless the config allows that origin *and* that method. Clients that are not browsers
//! (`ipfs-cluster-ctl`, scripts) send neither header and are not affected; with IPFS
//! Cluster's default config (any origin, GET only) pages can read but not change anything.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// How an API words an error: its status and message in the API's own body shape.
pub type Render = fn(StatusCode, String) -> Response;

/// A plain-text error, for listeners without an error shape of their own (metrics).
pub fn plain_error(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

/// Which origins and methods pages may use (`cors_allowed_origins`, `cors_allowed_methods`).
#[derive(Clone, Debug)]
pub struct CrossSitePolicy {
    any_origin: bool,
    origins: Vec<String>,
    methods: Vec<Method>,
    /// Names the config section in the refusal, so the user knows what to change.
    section: &'static str,
    /// The API has no CORS settings: no page may use it, whatever it asks.
    no_pages: bool,
    /// The API's error body for the 403.
    render: Render,
}

impl CrossSitePolicy {
    pub(crate) fn new(origins: &[String], methods: &[String], section: &'static str) -> Self {
        let mut methods: Vec<Method> = methods
            .iter()
            .filter_map(|m| m.trim().to_ascii_uppercase().parse().ok())
            .collect();
        if methods.contains(&Method::GET) {
            methods.push(Method::HEAD);
        }
        CrossSitePolicy {
            any_origin: origins.iter().any(|o| o.trim() == "*"),
            origins: origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            methods,
            section,
            no_pages: false,
            render: plain_error,
        }
    }

    /// A policy for an API that no web page may use (the IPFS proxy, as Kubo's RPC API).
    pub fn no_pages(section: &'static str) -> Self {
        CrossSitePolicy {
            no_pages: true,
            ..Self::new(&[], &[], section)
        }
    }

    /// Refusals worded as the API words its errors.
    pub fn rendered_by(self, render: Render) -> Self {
        CrossSitePolicy { render, ..self }
    }

    /// Why a request with these headers may not run, if it may not.
    fn refusal(&self, method: &Method, origin: Option<&str>, cross_site: bool) -> Option<String> {
        if *method == Method::OPTIONS || (origin.is_none() && !cross_site) {
            return None;
        }
        let who = origin.unwrap_or("a page of another site");
        if self.no_pages {
            return Some(format!(
                "cross-site request refused: {} takes no requests from web pages ({who})",
                self.section
            ));
        }
        let origin_ok = match origin {
            _ if self.any_origin => true,
            Some(o) => {
                let o = o.trim_end_matches('/').to_ascii_lowercase();
                self.origins.contains(&o)
            }
            // No Origin to check against the list.
            None => false,
        };
        if !origin_ok {
            return Some(format!(
                "cross-site request refused: origin {who} is not in {}.cors_allowed_origins",
                self.section
            ));
        }
        if !self.methods.contains(method) {
            return Some(format!(
                "cross-site request refused: {who} may not {method} ({}.cors_allowed_methods)",
                self.section
            ));
        }
        None
    }
}

/// Middleware: 403 for a request from a page the policy does not allow.
pub async fn refuse_cross_site(
    State(policy): State<CrossSitePolicy>,
    req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("(not text)"));
    // `same-site` too: a page on another port of 127.0.0.1 is the same site.
    let cross_site = headers.get("sec-fetch-site").is_some_and(|v| {
        let v = v.as_bytes();
        !v.eq_ignore_ascii_case(b"same-origin") && !v.eq_ignore_ascii_case(b"none")
    });
    match policy.refusal(req.method(), origin, cross_site) {
        None => next.run(req).await,
        Some(why) => {
            tracing::warn!(method = %req.method(), path = %req.uri().path(), "{why}");
            (policy.render)(StatusCode::FORBIDDEN, why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], methods: &[&str]) -> CrossSitePolicy {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        CrossSitePolicy::new(&s(origins), &s(methods), "api.restapi")
    }

    #[test]
    fn clients_that_are_not_browsers_and_preflights_pass() {
        let p = policy(&["http://app.test"], &["GET"]);
        assert_eq!(p.refusal(&Method::DELETE, None, false), None);
        assert_eq!(
            p.refusal(&Method::OPTIONS, Some("http://evil.test"), true),
            None
        );
    }

    #[test]
    fn origins_compare_without_case_or_trailing_slash_and_head_goes_with_get() {
        let p = policy(&["http://App.test/"], &["get", "post"]);
        assert_eq!(
            p.refusal(&Method::POST, Some("http://app.test"), true),
            None
        );
        assert_eq!(
            p.refusal(&Method::HEAD, Some("http://app.test"), false),
            None
        );
        let why = p
            .refusal(&Method::PUT, Some("http://app.test"), false)
            .unwrap();
        assert!(why.contains("api.restapi.cors_allowed_methods"), "{why}");
        let why = p.refusal(&Method::GET, Some("null"), false).unwrap();
        assert!(why.contains("cors_allowed_origins"), "{why}");
    }
}
