//! `attend serve`: the JSON API answers what the library computes, rejects
//! bad requests with a 4xx and a message, and survives a bounded load of
//! mixed good and bad requests.

mod common;

use attend::data::conllu::Sentence;
use attend::models::EncoderKind;
use common::{small_model, small_model_with, Server};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

async fn post(c: &Client, url: &str, content_type: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
    let mut req = c.post(format!("{url}/api/tag")).body(body);
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("status {status}: not JSON: {text:?}"));
    (status, body)
}

async fn post_json(c: &Client, url: &str, body: Value) -> (StatusCode, Value) {
    post(c, url, Some("application/json"), body.to_string().into_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_like_the_library_and_rejects_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    small_model(dir.path());
    let server = Server::start(dir.path(), &["--max-words", "40"]);
    let (c, url) = (client(), server.url.clone());

    let info: Value = c.get(format!("{url}/api/info")).send().await.unwrap().json().await.unwrap();
    assert_eq!((info["layers"].as_u64(), info["heads"].as_u64(), info["max_words"].as_u64()), (Some(2), Some(4), Some(40)), "{info}");
    let page = c.get(format!("{url}/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("attention viewer") && page.contains("/api/tag"));

    // Tags and weights equal the library's for the same checkpoint.
    let text = "the run watch it . zzyzx";
    let (status, got) = post_json(&c, &url, json!({ "text": text })).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let loaded = attend::checkpoint::load::<attend::models::Tagger>(dir.path()).unwrap();
    let words: Vec<&str> = text.split_whitespace().collect();
    let want = attend_cli::viz::attention_maps(&loaded.model, &loaded.data, &Sentence::from_words(&words)).unwrap();
    assert_eq!(got["words"], json!(want.words));
    assert_eq!(got["tags"], json!(want.tags));
    assert_eq!(got["unknown"], json!([false, false, false, false, false, true]));
    let att: Vec<Vec<Vec<Vec<f32>>>> = serde_json::from_value(got["attention"].clone()).unwrap();
    assert_eq!((att.len(), att[0].len(), att[0][0].len(), att[0][0][0].len()), (2, 4, 6, 6));
    for (l, layer) in att.iter().enumerate() {
        for (h, head) in layer.iter().enumerate() {
            for (i, row) in head.iter().enumerate() {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-3, "row sum layer {l} head {h} word {i}");
                for (j, &w) in row.iter().enumerate() {
                    assert!((w - want.layers[l][h][i][j]).abs() <= 6e-5, "weight {l} {h} {i} {j}: {w} vs {}", want.layers[l][h][i][j]);
                }
            }
        }
    }
    // Without weights: same tags, no attention field.
    let (status, lean) = post_json(&c, &url, json!({ "text": text, "attention": false })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lean["tags"], got["tags"]);
    assert!(lean.get("attention").is_none());

    // Bad requests: a 4xx with a message naming the problem.
    let long = vec!["word"; 41].join(" ");
    // (what, content type, body, status, what the message says)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        ("empty text", Some("application/json"), br#"{"text": ""}"#.to_vec(), StatusCode::BAD_REQUEST, "no words"),
        ("blank text", Some("application/json"), br#"{"text": " \n\t "}"#.to_vec(), StatusCode::BAD_REQUEST, "no words"),
        (
            "too long",
            Some("application/json"),
            json!({ "text": long }).to_string().into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "at most 40",
        ),
        ("invalid UTF-8", Some("application/json"), b"{\"text\": \"caf\xe9 \xff\"}".to_vec(), StatusCode::BAD_REQUEST, "invalid"),
        ("not JSON", Some("application/json"), b"the text".to_vec(), StatusCode::BAD_REQUEST, "expected"),
        ("truncated JSON", Some("application/json"), br#"{"text": "a b"#.to_vec(), StatusCode::BAD_REQUEST, "EOF"),
        ("missing field", Some("application/json"), br#"{"words": ["a"]}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "words"),
        ("wrong type", Some("application/json"), br#"{"text": 5}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid type"),
        ("no content type", None, br#"{"text": "a"}"#.to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type"),
        (
            "huge body",
            Some("application/json"),
            json!({ "text": "x".repeat(100_000) }).to_string().into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
    ];
    for (what, ct, body, status, needle) in cases {
        let r = {
            let mut req = c.post(format!("{url}/api/tag")).body(body);
            if let Some(t) = ct {
                req = req.header("content-type", t);
            }
            req.send().await.unwrap()
        };
        assert_eq!(r.status(), status, "{what}");
        let text = r.text().await.unwrap();
        assert!(text.contains(needle), "{what}: {text}");
        assert!(text.starts_with("{\"error\":"), "{what}: not a JSON error: {text}");
    }
    let r = c.get(format!("{url}/api/nothing")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.get(format!("{url}/api/tag")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// 1,000 requests, a third of them bad, 16 at a time: every one gets its
/// expected status, none hangs (60 s client timeout) or kills the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_thousand_mixed_requests() {
    let dir = tempfile::tempdir().unwrap();
    small_model(dir.path());
    let mut server = Server::start(dir.path(), &["--max-words", "64"]);
    let (c, url) = (client(), Arc::new(server.url.clone()));
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    let mut jobs = tokio::task::JoinSet::new();
    let start = Instant::now();
    for k in 0..1000usize {
        let (c, url, limit) = (c.clone(), url.clone(), limit.clone());
        jobs.spawn(async move {
            let _slot = limit.acquire_owned().await.unwrap();
            let words = ["the", "dog", "runs", "quickly", "home", "."];
            let sentence: Vec<&str> = (0..1 + k % 50).map(|i| words[(i * 7 + k) % words.len()]).collect();
            let t = Instant::now();
            let (expect, result) = match k % 6 {
                0 => (StatusCode::BAD_REQUEST, post_json(&c, &url, json!({ "text": "" })).await),
                1 => (StatusCode::BAD_REQUEST, post(&c, &url, Some("application/json"), b"{\"text\": \"\xc3\x28\"}".to_vec()).await),
                2 => (StatusCode::OK, post_json(&c, &url, json!({ "text": sentence.join(" "), "attention": k % 4 != 0 })).await),
                3 => (StatusCode::PAYLOAD_TOO_LARGE, post_json(&c, &url, json!({ "text": vec!["a"; 65].join(" ") })).await),
                _ => (StatusCode::OK, post_json(&c, &url, json!({ "text": sentence.join(" ") })).await),
            };
            let (status, body) = result;
            assert_eq!(status, expect, "request {k}: {body}");
            if status == StatusCode::OK {
                assert_eq!(body["tags"].as_array().unwrap().len(), sentence.len(), "request {k}");
            } else {
                assert!(!body["error"].as_str().unwrap().is_empty());
            }
            t.elapsed()
        });
    }
    let mut slowest = Duration::ZERO;
    while let Some(done) = jobs.join_next().await {
        slowest = slowest.max(done.expect("a request failed"));
    }
    eprintln!("1000 mixed requests in {:.2?}, slowest {:.2?}", start.elapsed(), slowest);
    assert!(server.alive(), "the server died under load");
    let r = c.get(format!("{}/api/info", server.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// A BiLSTM tagger is served too: tags, and no attention to show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bilstm_tagger_gets_tags_without_weights() {
    let dir = tempfile::tempdir().unwrap();
    small_model_with(dir.path(), EncoderKind::Rnn);
    let server = Server::start(dir.path(), &[]);
    let c = client();
    let info: Value = c.get(format!("{}/api/info", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["encoder"], "rnn");
    let (status, got) = post_json(&c, &server.url, json!({ "text": "the run watch it ." })).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["tags"].as_array().unwrap().len(), 5);
    assert!(got.get("attention").is_none());
}
