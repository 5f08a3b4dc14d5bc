//! `attend serve`: a local web page and JSON API for a tagger's tags and
//! attention.
//!
//! API (JSON in, JSON out; errors are `{"error": "..."}` with a 4xx status):
//! - `GET /api/info`: the model (layers, heads, tags, word limit).
//! - `POST /api/tag` with `{"text": "The old man the boat ."}` (whitespace
//!   tokenized; `"attention": false` leaves the weights out): words, tags,
//!   which words are unknown, and `attention[l][h][i][j]`, how much word i
//!   looks at word j in head h of layer l (rows sum to 1).
//! - `GET /`: the viewer page, which uses the API above.

use anyhow::{Context, Result};
use attend::checkpoint::{self, LoadedTagger};
use attend::data::conllu::Sentence;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const PAGE: &str = include_str!("../assets/viewer.html");

/// Largest request body accepted, in bytes.
const BODY_LIMIT: usize = 64 * 1024;

#[derive(Args)]
pub struct ServeArgs {
    /// Checkpoint directory written by `attend train tagger`.
    #[arg(long)]
    model: PathBuf,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to bind. The default serves this machine only; the API has
    /// no authentication, so think before binding 0.0.0.0.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Longest sentence accepted, in words (the weights grow with its square).
    #[arg(long, default_value_t = 128)]
    max_words: usize,
    /// Sentences tagged at the same time; more requests wait their turn.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
}

struct AppState {
    loaded: LoadedTagger,
    max_words: usize,
    /// Bounds the inference running at once.
    permits: Semaphore,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagRequest {
    text: String,
    #[serde(default = "yes")]
    attention: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize)]
struct TagResponse {
    words: Vec<String>,
    tags: Vec<String>,
    /// Words the model has no embedding for (tagged from their characters).
    unknown: Vec<bool>,
    /// `attention[l][h][i][j]`, rounded to 4 decimals; absent when not asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    attention: Option<Vec<Vec<Vec<Vec<f32>>>>>,
    /// Server-side time for this request.
    ms: f64,
}

/// A failed request: its status and a message for the user.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError(r.status(), r.body_text())
    }
}

/// The routes, for a loaded model.
fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/info", get(info))
        .route("/api/tag", post(tag))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such page: the viewer is at /, the API at /api/info and /api/tag".into()) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn info(State(state): State<Arc<AppState>>) -> Response {
    let m = &state.loaded.model.config;
    let body = serde_json::json!({
        "kind": "tagger",
        "layers": m.layers,
        "heads": m.heads,
        "d_model": m.d_model,
        "position": m.position,
        "window": m.window,
        "parameters": m.parameter_count() as u64,
        "tags": state.loaded.vocab.tags.items(),
        "max_words": state.max_words,
        "max_body_bytes": BODY_LIMIT,
        "version": env!("CARGO_PKG_VERSION"),
    });
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

async fn tag(State(state): State<Arc<AppState>>, body: std::result::Result<Json<TagRequest>, JsonRejection>) -> std::result::Result<Json<TagResponse>, ApiError> {
    let start = Instant::now();
    let Json(req) = body?;
    let words: Vec<String> = req.text.split_whitespace().map(String::from).collect();
    if words.is_empty() {
        return Err(ApiError(StatusCode::BAD_REQUEST, "the text has no words: send {\"text\": \"a sentence\"}".into()));
    }
    if words.len() > state.max_words {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the text has {} words; this server takes at most {} (attend serve --max-words)", words.len(), state.max_words),
        ));
    }
    let _permit = tokio::time::timeout(Duration::from_secs(30), state.permits.acquire())
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "the server is busy; try again".into()))?
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down".into()))?;
    let worker = state.clone();
    let job = tokio::task::spawn_blocking(move || -> attend::Result<TagResponse> {
        let loaded = &worker.loaded;
        let sentence = Sentence::from_words(&words);
        let unknown = words.iter().map(|w| loaded.vocab.is_unknown(w)).collect();
        let (tags, attention) = if req.attention {
            let maps = attend::viz::attention_maps(&loaded.model, &loaded.vocab, &sentence)?;
            let round = |x: f32| (x * 1e4).round() / 1e4;
            let layers = maps.layers.into_iter().map(|l| l.into_iter().map(|h| h.into_iter().map(|r| r.into_iter().map(round).collect()).collect()).collect()).collect();
            (maps.tags, Some(layers))
        } else {
            let ids = loaded.model.predict(std::slice::from_ref(&sentence), &loaded.vocab, 8192)?.remove(0);
            (ids.into_iter().map(|t| loaded.vocab.tags.name(t).to_string()).collect(), None)
        };
        Ok(TagResponse { words, tags, unknown, attention, ms: 0.0 })
    });
    let mut response = match job.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
        Err(e) => return Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("tagging failed: {e}"))),
    };
    response.ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(Json(response))
}

/// `attend serve`: loads the model, listens, serves until Ctrl-C.
pub fn serve(args: ServeArgs) -> Result<()> {
    let loaded = checkpoint::load_tagger(&args.model)?;
    let mut max_words = args.max_words.max(1);
    if loaded.model.config.position == attend::nn::position::PositionKind::Learned {
        max_words = max_words.min(loaded.model.config.max_positions);
    }
    let state = Arc::new(AppState { loaded, max_words, permits: Semaphore::new(args.concurrency.max(1)) });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let addr = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        println!("attend serve: {} on http://{bound}/ (API: /api/info, /api/tag; Ctrl-C stops)", args.model.display());
        use std::io::Write;
        std::io::stdout().flush()?;
        axum::serve(listener, app(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("server failed")
    })
}
