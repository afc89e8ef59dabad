//! A real web browser for tests: WebKitGTK's MiniBrowser on a private Xvfb display, driven
//! over W3C WebDriver by `WebKitWebDriver` (the packages the desktop end-to-end test already
//! needs: `xvfb`, `webkit2gtk-driver`). Used to show what a web page on the user's desktop
//! can and cannot make the browser do to a peer.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{free_port, spawn_logged, terminate, wait_for, DEADLINE};

const MINIBROWSER: &str = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";

/// One browser window; everything it started stops when it is dropped.
pub struct Browser {
    http: reqwest::Client,
    driver: String,
    session: String,
    children: Vec<Child>,
}

impl Browser {
    /// Starts Xvfb, WebKitWebDriver and a MiniBrowser session; logs go into `dir`.
    pub async fn start(dir: &Path) -> Result<Browser> {
        if !Path::new(MINIBROWSER).exists() {
            bail!("{MINIBROWSER} is missing: install libwebkit2gtk-4.1-0 (see .ci/install)");
        }
        let mut b = Browser {
            http: reqwest::Client::new(),
            driver: String::new(),
            session: String::new(),
            children: Vec::new(),
        };
        let display = b.start_display(dir).await?;
        let port = free_port();
        let driver = spawn_logged(
            Command::new("WebKitWebDriver")
                .arg(format!("--port={port}"))
                .env("DISPLAY", &display),
            &dir.join("webdriver.log"),
        )
        .context("WebKitWebDriver (package webkit2gtk-driver)")?;
        b.children.push(driver);
        b.driver = format!("http://127.0.0.1:{port}");
        let status = format!("{}/status", b.driver);
        let http = b.http.clone();
        wait_for("WebKitWebDriver to answer", DEADLINE, || {
            let (http, status) = (http.clone(), status.clone());
            async move { http.get(&status).send().await.ok().map(|_| ()) }
        })
        .await?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "webkitgtk:browserOptions": {"binary": MINIBROWSER, "args": ["--automation"]}
        }}});
        let v = b.call("POST", "/session", caps).await?;
        b.session = v["sessionId"]
            .as_str()
            .context("no session id from WebKitWebDriver")?
            .to_string();
        Ok(b)
    }

    /// An Xvfb display of its own (the first free number from a random start).
    async fn start_display(&mut self, dir: &Path) -> Result<String> {
        let first = 200 + std::process::id() % 500;
        for n in first..first + 20 {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                || Path::new(&format!("/tmp/.X{n}-lock")).exists()
            {
                continue;
            }
            let display = format!(":{n}");
            let mut xvfb = spawn_logged(
                Command::new("Xvfb").args([
                    &display,
                    "-screen",
                    "0",
                    "1024x768x24",
                    "-nolisten",
                    "tcp",
                ]),
                &dir.join("xvfb.log"),
            )
            .context("Xvfb (package xvfb)")?;
            let socket = format!("/tmp/.X11-unix/X{n}");
            let up = wait_for("Xvfb's socket", DEADLINE, || {
                let exited = matches!(xvfb.try_wait(), Ok(Some(_)));
                let ready = Path::new(&socket).exists();
                async move { (exited || ready).then_some(ready) }
            })
            .await?;
            if up {
                self.children.push(xvfb);
                return Ok(display);
            }
        }
        bail!("no free X display for Xvfb")
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}{path}", self.driver);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let v: Value = req.send().await?.json().await?;
        if let Some(e) = v["value"]["error"].as_str() {
            bail!("WebDriver {method} {path}: {e}: {}", v["value"]["message"]);
        }
        Ok(v["value"].clone())
    }

    /// Loads `url` in the window (returns once the page has loaded).
    pub async fn open(&self, url: &str) -> Result<()> {
        let path = format!("/session/{}/url", self.session);
        self.call("POST", &path, json!({ "url": url })).await?;
        Ok(())
    }

    /// The title of the page now shown (pages under test report through it).
    pub async fn title(&self) -> Result<String> {
        let path = format!("/session/{}/title", self.session);
        let v = self.call("GET", &path, Value::Null).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Waits until the page's title starts with `prefix`; returns it.
    pub async fn wait_title(&self, prefix: &str, deadline: Duration) -> Result<String> {
        wait_for(
            &format!("a page title starting with {prefix:?}"),
            deadline,
            || async { self.title().await.ok().filter(|t| t.starts_with(prefix)) },
        )
        .await
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver first, then the display: MiniBrowser exits when its display goes away.
        for c in self.children.iter_mut().rev() {
            terminate(c);
        }
    }
}
