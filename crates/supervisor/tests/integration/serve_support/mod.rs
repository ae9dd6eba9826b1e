//! Helpers of the dashboard tests: workdirs built by really running the engine on a job whose
//! end each test decides (per-value gate files), `supervisor serve` started on a free loopback
//! port and stopped on drop, an HTTP client, and a real headless Chromium driven through
//! chromedriver (WebDriver), with screenshots saved under `target/dashboard-screenshots/`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::support::{Lab, SeedDef, TIMEOUT, bin};

/// The job of the dashboard tests: `sh job.sh V` prints a tick every 0.1 s until the gate
/// `gate-V` (or the lab's global `gate`) exists, then reports `score=V` and `other=10·V`;
/// `V = 0` fails with exit status 3 after its gate.
pub(crate) fn gated_lab() -> Lab {
    let lab = Lab::new();
    let script = format!(
        "# sh job.sh VALUE: ticks until gate-VALUE (or gate) exists, then reports VALUE\n\
         root='{}'\n\
         i=0\n\
         while [ ! -e \"$root/gate-$1\" ] && [ ! -e \"$root/gate\" ] && [ -d \"$root\" ] && [ $i -lt 1200 ]; do\n\
         \x20 echo \"tick $i waiting for gate-$1\"; sleep 0.1; i=$((i+1))\n\
         done\n\
         if [ \"$1\" = 0 ]; then echo 'no score for 0' >&2; exit 3; fi\n\
         echo \"METRIC score=$1\"\n\
         echo \"METRIC other=$(( $1 * 10 ))\"\n",
        lab.root.display()
    );
    lab.write("job.sh", &script);
    lab
}

/// Lets the job of value `v` finish.
pub(crate) fn open_gate(lab: &Lab, v: i64) {
    lab.write(&format!("gate-{v}"), "open\n");
}

/// Writes `cfg.json` with `seeds` (planner `none`, one job at a time, baseline `v = 1`) and
/// starts the engine on workdir `wd` in the background.
pub(crate) fn start_engine(lab: &Lab, wd: &str, seeds: &[SeedDef]) -> crate::support::Engine {
    let cfg = serde_json::to_string_pretty(&lab.config(seeds, 50)).unwrap();
    let path = lab.write("cfg.json", &cfg);
    lab.start_run(wd, &["--config", path.to_str().unwrap()])
}

/// Finds a free loopback port for chromedriver.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `supervisor serve` process; SIGTERM and reaped on drop.
pub(crate) struct Dashboard {
    child: Child,
    /// The URL it printed (with `?token=…` when it printed one).
    pub url: String,
    /// `http://ADDR:PORT` (no path, no token).
    pub base: String,
    /// The token, when the URL carries one.
    pub token: Option<String>,
    /// Everything it printed at start.
    pub banner: String,
}

impl Dashboard {
    /// Starts `supervisor serve PATH --port 0 ARGS` in `dir` and waits for its URL.
    pub(crate) fn start(dir: &Path, path: &str, args: &[&str]) -> Dashboard {
        let mut cmd = Command::new(bin());
        cmd.args(["serve", path, "--port", "0"])
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn supervisor serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut banner = String::new();
            // The banner ends with the Ctrl+C line.
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                banner.push_str(&line);
                banner.push('\n');
                if line.starts_with("Ctrl+C") {
                    break;
                }
            }
            let _ = tx.send(banner);
            // Keep reading so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let banner = rx
            .recv_timeout(TIMEOUT)
            .expect("supervisor serve printed its URL");
        let url = banner
            .lines()
            .find_map(|l| l.strip_prefix("dashboard: "))
            .unwrap_or_else(|| panic!("no URL in the banner:\n{banner}"))
            .trim()
            .to_string();
        let base = url
            .split_once("://")
            .map(|(s, rest)| format!("{s}://{}", rest.split('/').next().unwrap()))
            .unwrap();
        let token = url.split_once("?token=").map(|(_, t)| t.to_string());
        Dashboard {
            child,
            url,
            base,
            token,
            banner,
        }
    }

    /// The port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// `http://127.0.0.1:PORT` (for a dashboard bound to 0.0.0.0: requests go to loopback).
    pub(crate) fn loopback(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) fn terminate(&mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("supervisor serve did not stop within {TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.terminate();
        }
    }
}

/// An HTTP client for the tests (no proxy, no cookies kept).
pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// GETs `url` and returns status and body.
pub(crate) async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let r = client.get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

/// GETs `url` as JSON, failing unless it answers 200.
pub(crate) async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let (status, body) = get(client, url).await;
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
}

/// Polls `f` every 50 ms until it returns `Some`; fails after [`TIMEOUT`] saying what was
/// awaited and what was seen last.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let last = match f().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        if Instant::now() > deadline {
            panic!("timed out after {TIMEOUT:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where the screenshots go: `target/dashboard-screenshots/`.
pub(crate) fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

/// A headless Chromium driven by chromedriver; both end on drop.
pub(crate) struct Browser {
    driver: Child,
    /// The WebDriver session.
    pub client: fantoccini::Client,
    _profile: tempfile::TempDir,
}

/// The Chromium binary (Debian's `chromium` package).
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
/// Its driver (Debian's `chromium-driver` package).
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

impl Browser {
    /// Starts chromedriver on a free loopback port and a fresh headless Chromium session
    /// (no sandbox, no GPU, nothing that reaches the network, a new profile).
    pub(crate) async fn start() -> Browser {
        assert!(
            Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
            "the browser tests need Debian's chromium and chromium-driver packages \
             (`apt-get install -y chromium chromium-driver`; scripts/test.sh installs them)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let profile = tempfile::Builder::new()
            .prefix("chromium-profile-")
            .tempdir()
            .expect("profile dir");
        let mut caps = Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1400,1000",
                ]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + TIMEOUT;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot start a Chromium session through chromedriver: {e}"),
            }
        };
        Browser {
            driver,
            client,
            _profile: profile,
        }
    }

    /// Opens `url` and waits until the page has rendered its data (`main[data-ready]`).
    pub(crate) async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
        self.wait_js(
            "the page to render",
            "document.querySelector('main[data-ready]') !== null",
        )
        .await;
    }

    /// Runs `script` (a function body: use `return`) and returns its value.
    pub(crate) async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until the expression `expr` is truthy in the page; fails with the page's errors.
    pub(crate) async fn wait_js(&self, what: &str, expr: &str) -> Value {
        let script = format!("return ({expr}) || null;");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let v = self.js(&script).await;
            if !v.is_null() && v != Value::Bool(false) {
                return v;
            }
            if Instant::now() > deadline {
                let errors = self
                    .js("return (window.__ar && window.__ar.errors) || [];")
                    .await;
                let text = self
                    .js("return document.body.innerText.slice(0, 2000);")
                    .await;
                panic!(
                    "timed out after {TIMEOUT:?} waiting for {what} ({expr})\npage errors: {errors}\npage text: {text}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot of the whole page (the window grown to its height, at most 2,400
    /// pixels) as `target/dashboard-screenshots/<name>.png` and returns its path.
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let height = self
            .js("return document.documentElement.scrollHeight")
            .await
            .as_u64()
            .unwrap_or(1000)
            .clamp(600, 2400) as u32;
        // The window's frame takes some of its height in headless mode too.
        let _ = self.client.set_window_size(1400, height + 140).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await.expect("screenshot");
        let _ = self.client.set_window_size(1400, 1000).await;
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Ends the session and the driver.
    pub(crate) async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // A driver killed mid-session may leave its Chromium behind: end the processes started
        // with this session's own profile folder (by pid).
        let marker = format!("--user-data-dir={}", self._profile.path().display());
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&marker) {
                    // SAFETY: kill(2) on a process this test started (its profile folder is ours).
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// A reader of a server-sent-event stream.
pub(crate) struct Sse {
    stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>,
    >,
    buf: String,
}

impl Sse {
    /// Opens the stream at `url` (fails unless it answers 200).
    pub(crate) async fn open(client: &reqwest::Client, url: &str) -> Sse {
        let r = client.get(url).send().await.expect("GET event stream");
        assert_eq!(r.status().as_u16(), 200, "GET {url}");
        Sse {
            stream: Box::pin(r.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event as `(name, data)`; fails after [`TIMEOUT`].
    pub(crate) async fn next(&mut self) -> (String, String) {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data: Vec<&str> = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() && name == "message" {
                    continue; // a keep-alive comment
                }
                return (name, data.join("\n"));
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("an event within the timeout")
                .expect("the stream stays open")
                .expect("reading the stream");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
