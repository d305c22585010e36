//! A small W3C WebDriver client for the browser tests: Debian's
//! `chromedriver` driving Debian's headless `chromium` (both from the
//! `chromium` and `chromium-driver` packages, installed by `.ci/run`;
//! nothing is downloaded). Only what the tests use: navigation, finding
//! elements by CSS, clicks, typing, text and attributes, scripts, cookies
//! and screenshots.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where Debian puts the driver and the browser.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The key of an element reference in W3C WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a test waits for the page by default.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running chromedriver with one browser session.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

/// A found element.
#[derive(Debug, Clone)]
pub struct Element(String);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium `width` x `height`.
    /// Fails loudly, naming the packages, when either is missing.
    pub async fn start(width: u32, height: u32) -> Self {
        for (path, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: the browser tests need Debian's {package} \
                 (apt-get install -y chromium chromium-driver; .ci/run does this)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{base}/status")).send().await.ok();
            if let Some(r) = ready
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == json!(true)
            {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start on {base}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            &format!("--window-size={width},{height}"),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let mut browser = Self { driver, base, session: String::new(), http };
        let answer = browser.call(reqwest::Method::POST, "/session", Some(caps)).await;
        browser.session = answer["sessionId"].as_str().unwrap_or_else(|| panic!("no session in {answer}")).to_owned();
        browser
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url).timeout(Duration::from_secs(60));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let value: Value = response.json().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value["value"].clone()
    }

    async fn session_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body).await
    }

    /// Loads `url`.
    pub async fn goto(&self, url: &str) {
        self.session_call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.session_call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// The elements matching `css` now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .session_call(reqwest::Method::POST, "/elements", Some(json!({"using": "css selector", "value": css})))
            .await;
        found
            .as_array()
            .map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_owned()))).collect())
            .unwrap_or_default()
    }

    /// Waits (up to [`WAIT`]) for an element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                return e;
            }
            assert!(started.elapsed() < WAIT, "no element {css} within {WAIT:?}; page: {}", self.describe().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks.
    pub async fn click(&self, e: &Element) {
        self.session_call(reqwest::Method::POST, &format!("/element/{}/click", e.0), Some(json!({}))).await;
    }

    /// Empties an input.
    pub async fn clear(&self, e: &Element) {
        self.session_call(reqwest::Method::POST, &format!("/element/{}/clear", e.0), Some(json!({}))).await;
    }

    /// Types into an element.
    pub async fn type_text(&self, e: &Element, text: &str) {
        self.session_call(reqwest::Method::POST, &format!("/element/{}/value", e.0), Some(json!({ "text": text })))
            .await;
    }

    /// Empties an input and types `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.clear(&e).await;
        self.type_text(&e, text).await;
    }

    /// Sets an input's value as a user's picking would (for date inputs,
    /// whose typed form depends on the browser's locale), firing `input`
    /// and `change`.
    pub async fn set_value(&self, css: &str, value: &str) {
        self.find(css).await;
        let script = "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
                      e.dispatchEvent(new Event('input', {bubbles: true})); \
                      e.dispatchEvent(new Event('change', {bubbles: true})); return e.value;";
        let set = self.execute(script, json!([css, value])).await;
        assert_eq!(set, json!(value), "{css} did not take {value}");
    }

    /// An element's rendered text.
    pub async fn text(&self, e: &Element) -> String {
        let v = self.session_call(reqwest::Method::GET, &format!("/element/{}/text", e.0), None).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// An element's attribute.
    pub async fn attr(&self, e: &Element, name: &str) -> Option<String> {
        let v = self.session_call(reqwest::Method::GET, &format!("/element/{}/attribute/{name}", e.0), None).await;
        v.as_str().map(str::to_owned)
    }

    /// Waits (up to `within`) until `script` returns true; panics with
    /// `what` and the page's state otherwise.
    pub async fn wait_for(&self, what: &str, script: &str, args: Value, within: Duration) {
        let started = Instant::now();
        loop {
            if self.execute(script, args.clone()).await == json!(true) {
                return;
            }
            assert!(
                started.elapsed() < within,
                "{what} did not happen within {within:?}; page: {}",
                self.describe().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the page has rendered `page` (`main#app[data-page]`) and
    /// is no longer loading.
    pub async fn wait_ready(&self, page: &str) {
        let script = "const m = document.getElementById('app'); \
                      return !!m && m.dataset.page === arguments[0] && document.body.dataset.state === 'ready';";
        self.wait_for(&format!("the {page} page"), script, json!([page]), WAIT).await;
    }

    /// The page's URL, state and first text, for failure messages.
    pub async fn describe(&self) -> String {
        let script = "const m = document.getElementById('app'); return location.href + ' state=' + \
                      document.body.dataset.state + ' page=' + (m && m.dataset.page) + ' position=' + \
                      (m && m.dataset.position) + ' text: ' + document.body.innerText.slice(0, 600);";
        self.execute(script, json!([])).await.as_str().unwrap_or_default().to_owned()
    }

    /// The browser's cookies for the current page (as WebDriver lists them).
    pub async fn cookies(&self) -> Vec<Value> {
        self.session_call(reqwest::Method::GET, "/cookie", None).await.as_array().cloned().unwrap_or_default()
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.session_call(reqwest::Method::GET, "/screenshot", None).await;
        base64_decode(v.as_str().unwrap_or_default())
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        let body = json!({"width": width, "height": height});
        self.session_call(reqwest::Method::POST, "/window/rect", Some(body)).await;
    }
}

impl Drop for Browser {
    /// Ends the browser session (chromedriver then closes Chromium) and stops
    /// the driver, also when a test panicked.
    fn drop(&mut self) {
        if let Some(addr) = self.base.strip_prefix("http://")
            && let Ok(mut stream) = TcpStream::connect(addr)
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = stream.write_all(request.as_bytes());
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (WebDriver's screenshots).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_decodes_what_webdriver_sends() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("iVBORw0KGgo="), [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]);
}
