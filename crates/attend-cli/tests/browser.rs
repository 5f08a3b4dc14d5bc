//! The viewer page end to end in headless Chromium (Debian's chromium and
//! chromium-driver; `.ci/run` installs them): load the page, submit a
//! sentence, check that the tags and a heatmap appear and that hovering a
//! word highlights it, and save a screenshot.
//!
//! Without chromedriver the test says so and passes, unless
//! `ATTEND_REQUIRE_BROWSER=1` (set by `.ci/run`), where it fails.
//! `ATTEND_VIEWER_MODEL=DIR` runs it on a trained model instead of the
//! small untrained one, `ATTEND_VIEWER_TEXT` types another sentence, and
//! `ATTEND_SCREENSHOT=FILE` saves the screenshot there too (for the docs).

mod common;

use common::{small_model, Server};
use fantoccini::{ClientBuilder, Locator};
use serde_json::{json, Value};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first of `names` found as given or on PATH.
fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|n| {
        let p = PathBuf::from(n);
        if p.is_absolute() {
            return p.is_file().then_some(p);
        }
        std::env::split_paths(&path).map(|d| d.join(n)).find(|p| p.is_file())
    })
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_page_tags_a_sentence_and_draws_a_heatmap() {
    let driver = std::env::var("ATTEND_CHROMEDRIVER").ok();
    let driver = find(&[driver.as_deref().unwrap_or("chromedriver")]);
    let chromium = std::env::var("ATTEND_CHROMIUM").ok();
    let chromium = find(&[chromium.as_deref().unwrap_or("chromium"), "chromium-browser", "google-chrome"]);
    let (Some(driver), Some(chromium)) = (driver, chromium) else {
        let msg = "no chromedriver/chromium: install Debian's chromium and chromium-driver (.ci/run does)";
        if std::env::var_os("ATTEND_REQUIRE_BROWSER").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED the browser test: {msg}");
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let model = match std::env::var_os("ATTEND_VIEWER_MODEL") {
        Some(m) => PathBuf::from(m),
        None => {
            small_model(dir.path());
            dir.path().to_path_buf()
        }
    };
    let text = std::env::var("ATTEND_VIEWER_TEXT").unwrap_or_else(|_| "the run watch it .".into());
    let server = Server::start(&model, &[]);

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _driver = Kill(Command::new(&driver).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let profile = dir.path().join("chromium-profile");
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1200,1000", "--hide-scrollbars", format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("start a headless Chromium session");

    let outcome = async {
        client.goto(&format!("{}/", server.url)).await?;
        let wait = Duration::from_secs(30);
        client.wait().at_most(wait).for_element(Locator::XPath("//span[@id='model'][starts-with(., 'tagger')]")).await?;
        let input = client.find(Locator::Css("#text")).await?;
        input.clear().await?;
        input.send_keys(&text).await?;
        client.find(Locator::Css("#submit")).await?.click().await?;
        client.wait().at_most(wait).for_element(Locator::Css("#heatmap[data-rendered='1']")).await?;

        // The page shows the tags the API gives.
        let mut shown = Vec::new();
        for t in client.find_all(Locator::Css("#tags .chip .t")).await? {
            shown.push(t.text().await?);
        }
        let api: Value = reqwest::Client::new()
            .post(format!("{}/api/tag", server.url))
            .json(&json!({ "text": text, "attention": false }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let want: Vec<String> = serde_json::from_value(api["tags"].clone()).unwrap();
        assert_eq!(shown, want, "tags on the page");
        let status = client.find(Locator::Css("#status")).await?.text().await?;
        assert!(status.contains("ms on the server"), "status line: {status}");
        eprintln!("page status: {status}");

        // The heatmap is drawn: a coloured cell, one small map per head.
        let probe = client
            .execute(
                "const c = document.getElementById('heatmap'); const k = window.devicePixelRatio || 1;
                 const pad = +c.dataset.pad, cell = +c.dataset.cell;
                 const px = c.getContext('2d').getImageData((pad + cell / 2) * k, (pad + cell / 2) * k, 1, 1).data;
                 return [px[0], px[1], px[2], document.querySelectorAll('#heads canvas').length];",
                vec![],
            )
            .await?;
        let probe: Vec<u32> = serde_json::from_value(probe).unwrap();
        assert!(probe[0] < 250 || probe[1] < 250, "first heatmap cell is white: {probe:?}");
        assert_eq!(probe[3] as usize, api_heads(&server.url).await, "one small map per head");

        // Hovering a word highlights it and shades the words it looks at.
        let second = client.find_all(Locator::Css("#tags .chip")).await?.remove(1);
        client.execute("arguments[0].dispatchEvent(new MouseEvent('mouseenter'));", vec![serde_json::to_value(&second)?]).await?;
        let class = second.attr("class").await?.unwrap_or_default();
        assert!(class.contains("focus"), "hovered chip: {class}");

        // Another layer and head redraw without errors.
        client
            .execute(
                "document.getElementById('layer').value = '2'; document.getElementById('layer').dispatchEvent(new Event('change'));",
                vec![],
            )
            .await?;
        let png = client.screenshot().await?;
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("viewer.png");
        std::fs::write(&out, &png).unwrap();
        eprintln!("screenshot: {}", out.display());
        if let Some(path) = std::env::var_os("ATTEND_SCREENSHOT") {
            std::fs::write(&path, &png).unwrap();
        }
        assert_eq!(&png[1..4], b"PNG");
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    let _ = client.close().await;
    outcome.unwrap();
}

async fn api_heads(url: &str) -> usize {
    let info: Value = reqwest::get(format!("{url}/api/info")).await.unwrap().json().await.unwrap();
    info["heads"].as_u64().unwrap() as usize
}
