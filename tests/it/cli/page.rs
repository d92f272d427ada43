//! Issue 20: the agent's status page and API, read over HTTP and in a real browser (Debian's
//! chromium driven headless through chromedriver's `WebDriver`).

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use super::agent::{Agent, free_address, http_get, live_version};
use crate::common::site::{PackEntry, TestSite, pack_yaml, run_json};

/// A site of two packs, `clush` (goes live) and `broken` (asks for a distribution the mirror
/// lacks), under an agent serving on a free local address.
fn site_with_agent() -> (TestSite, crate::common::git::GitRepo, Agent, String) {
    let address = free_address();
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    let broken = site.pack_repo("broken", "0.1.0");
    broken.write("requirements.txt", "no-such-dist\n");
    broken.commit("Needs what the mirror lacks");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .add_pack(PackEntry::new("broken", broken.path()))
        .section("[watch]\ndebounce = \"100ms\"\n")
        .agent_line(&format!("metrics_listen = \"{address}\""));
    let agent = Agent::start(&site);
    agent.wait_for("the first run", || agent.log().contains("run finished"));
    agent.wait_for("the server", || http_get(&address, "/healthz").is_ok());
    (site, clush, agent, address)
}

fn body_json(address: &str, path: &str) -> (String, serde_json::Value) {
    let (status, body) = http_get(address, path).expect("the agent answers");
    let json = serde_json::from_str(&body).unwrap_or_else(|err| panic!("{path}: {err}: {body}"));
    (status, json)
}

#[test]
fn issue_20_the_api_serves_what_status_and_history_print_and_announces_runs() {
    let (site, clush, agent, address) = site_with_agent();

    let (status, served) = body_json(&address, "/api/v1/status");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        served,
        run_json(site.cmd(["status", "--json", "--all-hosts"]))
    );
    let (_, history) = body_json(&address, "/api/v1/history");
    assert_eq!(
        history,
        run_json(site.cmd(["history", "--json", "--limit", "50"]))
    );
    assert_eq!(history["entries"][0]["action"], "install");
    let (_, one) = body_json(&address, "/api/v1/history?pack=clush&limit=1");
    assert_eq!(one["entries"].as_array().unwrap().len(), 1);
    let (status, error) = body_json(&address, "/api/v1/history?pack=No%20Such");
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(
        error["error"].as_str().unwrap().contains("No Such"),
        "{error}"
    );

    let (status, page) = http_get(&address, "/").unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(page.contains("<script src=\"page.js\""), "{page}");
    let (status, _) = http_get(&address, "/nothing").unwrap();
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // A commit makes a run, and the run is announced to whoever follows the events.
    let mut events = std::net::TcpStream::connect(&address).unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        events,
        "GET /api/v1/events HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut lines = BufReader::new(events).lines();
    let head: Vec<String> = lines
        .by_ref()
        .map(Result::unwrap)
        .take_while(|line| !line.is_empty())
        .collect();
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("content-type: text/event-stream")),
        "{head:?}"
    );
    clush.write("pack.yaml", pack_yaml("clush", "1.1.0", ""));
    clush.commit("clush 1.1.0");
    let announced = lines
        .map(|line| line.unwrap_or_else(|err| panic!("no run announced: {err}")))
        .find(|line| line.trim_end() == "event: run");
    assert!(announced.is_some());
    agent.wait_for("clush 1.1.0 live", || {
        live_version(&site, "clush").as_deref() == Some("1.1.0")
    });
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    address: String,
}

impl Driver {
    fn start() -> Self {
        let address = free_address();
        let port = address.rsplit(':').next().expect("host:port").to_string();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs: scripts/test installs Debian's chromium-driver");
        let driver = Self { child, address };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&driver.address).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of the first element `css` selects, once there is one (up to 30 s). Read in one
/// script, as the page replaces its rows whenever it loads the status again.
async fn text(browser: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = browser
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
                vec![json!(css)],
            )
            .await
            .expect("the browser runs the script");
        if let Some(text) = found.as_str() {
            return text.to_string();
        }
        assert!(Instant::now() < deadline, "nothing matches {css}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 30 s) until the text of `css` is `expected`.
async fn wait_for_text(browser: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = text(browser, css).await;
        if found == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} still says {found:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn issue_20_the_status_page_shows_the_site_and_follows_a_commit_without_a_reload() {
    let (site, clush, agent, address) = site_with_agent();
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_string(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://{}", driver.address))
            .await
            .expect("a chromium session");
        browser.goto(&format!("http://{address}/")).await.unwrap();

        let status = run_json(site.cmd(["status", "--json"]));
        assert_eq!(
            text(&browser, "#host").await,
            status["host"].as_str().unwrap()
        );
        wait_for_text(&browser, "tr[data-pack='clush'] td.live .version", "1.0.0").await;
        let state = text(&browser, "tr[data-pack='clush'] td.state").await;
        assert_eq!(state, "ok");
        let live = text(&browser, "tr[data-pack='clush'] td.live .release").await;
        let clush_status = status["packs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pack"] == "clush")
            .unwrap();
        assert_eq!(live, clush_status["active"]["release"].as_str().unwrap());
        // The failed pack, with why.
        let broken = text(&browser, "tr[data-pack='broken'] td.state").await;
        assert!(broken.starts_with("failed"), "{broken}");
        assert!(broken.contains("cannot be read"), "{broken}");
        assert!(broken.contains("no-such-dist"), "{broken}");
        // The history, newest first.
        let history = text(&browser, "#history li").await;
        assert!(history.contains("clush install applied"), "{history}");

        // A commit goes live and appears without the page being loaded again: what the page
        // set in its window is still there.
        browser
            .execute("window.notReloaded = true; return null;", vec![])
            .await
            .unwrap();
        clush.write("pack.yaml", pack_yaml("clush", "1.1.0", ""));
        clush.commit("clush 1.1.0");
        wait_for_text(&browser, "tr[data-pack='clush'] td.live .version", "1.1.0").await;
        let same_page = browser
            .execute("return window.notReloaded === true;", vec![])
            .await
            .unwrap();
        assert_eq!(same_page, json!(true));
        let change = text(&browser, "tr[data-pack='clush'] td.change").await;
        assert!(change.starts_with("upgrade applied"), "{change}");
        assert_eq!(
            text(&browser, "tr[data-pack='clush'] td.releases").await,
            "2"
        );

        let png = browser.screenshot().await.unwrap();
        fs_err::write(&screenshot, png).unwrap();
        browser.close().await.unwrap();
    });
    assert_eq!(live_version(&site, "clush").as_deref(), Some("1.1.0"));
    drop(agent);
    eprintln!("screenshot: {}", screenshot.display());
}
