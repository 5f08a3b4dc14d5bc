//! `attend serve`: a local web page and JSON API for a tagger's tags and
//! attention.
//!
//! API (JSON in, JSON out; errors are `{"error": "..."}` with a 4xx status):
//! - `GET /api/info`: the model (layers, heads, tags, word limit).
//! - `POST /api/tag` with `{"text": "The old man the boat ."}` (whitespace
//!   tokenized; `"attention": false` leaves the weights out): words, tags,
//!   which words are unknown, and `attention[l][h][i][j]`, how much word i
//!   looks at word j in head h of layer l (rows sum to 1; absent for a
//!   BiLSTM tagger, which has none).
//! - `GET /`: the viewer page, which uses the API above.

use anyhow::{Context, Result};
use attend::data::conllu::Sentence;
use attend::models::tagger::load::LoadedTagger;
use attend::models::Tagger;
use attend_cli::timing::{quantile, sample_ms};
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
        .fallback(|| async {
            ApiError(StatusCode::NOT_FOUND, "no such page: the viewer is at /, the API at /api/info and /api/tag".into())
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn info(State(state): State<Arc<AppState>>) -> Response {
    let m = &state.loaded.model.config;
    let e = &m.encoder;
    let body = serde_json::json!({
        "kind": "tagger",
        "encoder": e.kind,
        "layers": e.layers,
        "heads": e.heads,
        "d_model": e.d_model,
        "position": e.position,
        "window": e.window,
        "parameters": m.parameter_count() as u64,
        "tags": state.loaded.data.tags.items(),
        "max_words": state.max_words,
        "max_body_bytes": BODY_LIMIT,
        "version": env!("CARGO_PKG_VERSION"),
    });
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

async fn tag(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<TagRequest>, JsonRejection>,
) -> std::result::Result<Json<TagResponse>, ApiError> {
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
        let unknown = words.iter().map(|w| loaded.data.is_unknown(w)).collect();
        let has_attention = loaded.model.config.encoder.kind == attend::models::EncoderKind::Attention;
        let (tags, attention) = if req.attention && has_attention {
            let maps = attend_cli::viz::attention_maps(&loaded.model, &loaded.data, &sentence)?;
            let round = |x: f32| (x * 1e4).round() / 1e4;
            let layers = maps
                .layers
                .into_iter()
                .map(|l| l.into_iter().map(|h| h.into_iter().map(|r| r.into_iter().map(round).collect()).collect()).collect())
                .collect();
            (maps.tags, Some(layers))
        } else {
            let ids = loaded.model.predict(std::slice::from_ref(&sentence), &loaded.data, attend::models::EVAL_BATCH_TOKENS)?.remove(0);
            (ids.into_iter().map(|t| loaded.data.tags.name(t).to_string()).collect(), None)
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
    let loaded = attend::checkpoint::load::<Tagger>(&args.model)?;
    let mut max_words = args.max_words.max(1);
    if loaded.model.config.encoder.position == attend::nn::position::PositionKind::Learned {
        max_words = max_words.min(loaded.model.config.encoder.max_positions);
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

#[derive(Args)]
pub struct BenchServeArgs {
    /// Checkpoint directory written by `attend train tagger`.
    #[arg(long)]
    model: PathBuf,
    /// Words in the test sentence.
    #[arg(long, default_value_t = 50)]
    words: usize,
    /// Requests per measurement (at least; more until --min-seconds pass).
    #[arg(long, default_value_t = 50)]
    requests: usize,
    /// Keep measuring each row for at least this long.
    #[arg(long, default_value_t = 2.0)]
    min_seconds: f64,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

/// A plain English passage the test sentence is cut from (repeated as needed).
const PASSAGE: &str = "The committee said on Tuesday that it would review the new proposal before the end of the month , \
    but several members warned that the plan could raise costs for small businesses and families who already struggle \
    to pay their bills . A spokesman for the company declined to comment on the report , which was published after \
    a long investigation into how the money had been spent over the last three years .";

/// Median and 95th percentile of `runs` (sorted) in milliseconds.
fn quantiles(runs: Vec<f64>) -> (f64, f64) {
    (quantile(&runs, 0.5), quantile(&runs, 0.95))
}

/// `attend bench serve`: latency of `POST /api/tag` over loopback for one
/// sentence, against tagging the same sentence in-process (same run).
pub fn bench(args: BenchServeArgs) -> Result<()> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let loaded = attend::checkpoint::load::<Tagger>(&args.model)?;
    let words: Vec<&str> = PASSAGE.split_whitespace().cycle().take(args.words.max(1)).collect();
    let text = words.join(" ");
    let sentence = Sentence::from_words(&words);
    let baseline =
        sample_ms(args.requests, args.min_seconds, || attend_cli::viz::attention_maps(&loaded.model, &loaded.data, &sentence).map(|_| ()))?;
    let config = loaded.model.config.clone();
    let state = Arc::new(AppState { loaded, max_words: args.words.max(1), permits: Semaphore::new(1) });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
    let url = format!("http://{}/api/tag", listener.local_addr()?);
    runtime.spawn(async move { axum::serve(listener, app(state)).await });
    let client: Client<_, Full<axum::body::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let http = |attention: bool| -> Result<Vec<f64>> {
        let body = serde_json::json!({ "text": text, "attention": attention }).to_string();
        sample_ms(args.requests, args.min_seconds, || {
            runtime.block_on(async {
                let req =
                    axum::http::Request::post(&url).header(header::CONTENT_TYPE, "application/json").body(Full::from(body.clone()))?;
                let res = client.request(req).await?;
                let status = res.status();
                let bytes = res.into_body().collect().await?.to_bytes();
                if !status.is_success() {
                    anyhow::bail!("{status}: {}", String::from_utf8_lossy(&bytes));
                }
                Ok(())
            })
        })
    };
    let with_weights = http(true)?;
    let tags_only = http(false)?;
    let (b50, b95) = quantiles(baseline);
    let (w50, w95) = quantiles(with_weights);
    let (t50, t95) = quantiles(tags_only);
    let threads = attend::rayon::current_num_threads();
    if args.json {
        let row = |name: &str, med: f64, p95: f64| serde_json::json!({ "name": name, "median_ms": med, "p95_ms": p95, "ratio_to_in_process": med / b50 });
        let doc = serde_json::json!({
            "words": args.words, "model": args.model, "threads": threads,
            "layers": config.encoder.layers, "heads": config.encoder.heads, "d_model": config.encoder.d_model,
            "rows": [row("in-process attention_maps", b50, b95), row("POST /api/tag with weights", w50, w95), row("POST /api/tag tags only", t50, t95)],
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "attend bench serve: {}-word sentence, {} ({} layers x {} heads, d_model {}), {threads} threads, loopback HTTP",
            args.words,
            args.model.display(),
            config.encoder.layers,
            config.encoder.heads,
            config.encoder.d_model
        );
        println!("{:<32} {:>10} {:>10} {:>10}", "", "median ms", "p95 ms", "x in-proc");
        for (name, med, p95) in
            [("in-process attention_maps", b50, b95), ("POST /api/tag with weights", w50, w95), ("POST /api/tag tags only", t50, t95)]
        {
            println!("{name:<32} {med:>10.2} {p95:>10.2} {:>10.2}", med / b50);
        }
    }
    Ok(())
}
