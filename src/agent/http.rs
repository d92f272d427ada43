//! What the agent serves on `[agent] metrics_listen` (axum):
//! - `/metrics`: the Prometheus metrics of `metrics`;
//! - `/healthz`: 200 when the last run finished and reached the state store, 503 before the
//!   first run or after a run that could not;
//! - `/`: a read-only status page, which follows `/api/v1/events` to update without a reload;
//! - `/api/v1/status`: what `status --json --all-hosts` prints (with the fleet's table when the
//!   site has a `[fleet]`);
//! - `/api/v1/history?pack=P&limit=N`: what `history --json` prints (50 entries by default);
//! - `/api/v1/events`: server-sent events, one `run` event (its data the run's sequence
//!   number) when a reconcile ends.
//!
//! Nothing served changes anything. A status is computed from disk and the store as `packsync
//! status` computes it, at most one at a time, and shared by requests for [`STATUS_MAX_AGE`]
//! unless a run ended since.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::watch;

use super::metrics::Metrics;
use crate::config::SiteConfig;
use crate::diagnostics::Report;
use crate::execute::{self, Include, StatusReport};
use crate::model::PackName;
use crate::state::{HistoryReport, StateStore};

/// How long a computed status answers requests while no run ends.
const STATUS_MAX_AGE: Duration = Duration::from_secs(2);

/// History entries served when the request does not say.
const HISTORY_DEFAULT: usize = 50;

/// The most history entries one request gets.
const HISTORY_MAX: usize = 1000;

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/page.js");
const STYLE: &str = include_str!("page/page.css");

/// The page loads nothing but its own files.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:";

/// What the server shares with the agent: the metrics, the site config (replaced when it is
/// re-read) with its state store, and the runs that ended.
#[derive(Debug, Clone)]
pub(super) struct View {
    metrics: Metrics,
    site: Arc<Mutex<Site>>,
    /// The sequence number of the last run that ended.
    runs: watch::Sender<u64>,
    /// The last status computed; its lock is held while one is computed, so requests
    /// arriving meanwhile wait for it instead of computing another.
    status: Arc<tokio::sync::Mutex<Option<Computed>>>,
}

/// The site config, and its state store once a request opened it: kept for every request
/// after (a MongoDB client with its connections), until the config is re-read.
struct Site {
    config: Arc<SiteConfig>,
    store: Option<Arc<dyn StateStore>>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = self.store.as_ref().map(|store| store.describe());
        f.debug_struct("Site")
            .field("store", &store)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Computed {
    run: u64,
    at: Instant,
    report: Arc<StatusReport>,
}

impl View {
    pub(super) fn new(metrics: Metrics, config: Arc<SiteConfig>) -> Self {
        Self {
            metrics,
            site: Arc::new(Mutex::new(Site {
                config,
                store: None,
            })),
            runs: watch::Sender::new(0),
            status: Arc::default(),
        }
    }

    /// A run ended: the next status is computed afresh and the pages are told.
    pub(super) fn ran(&self, run: u64) {
        self.runs.send_replace(run);
    }

    /// The site config was re-read.
    pub(super) fn reloaded(&self, config: Arc<SiteConfig>) {
        *self.site.lock().unwrap_or_else(PoisonError::into_inner) = Site {
            config,
            store: None,
        };
    }

    /// The site config and its state store, opened the first time (blocking: call it on the
    /// blocking pool).
    fn site(&self) -> Result<(Arc<SiteConfig>, Arc<dyn StateStore>), String> {
        let mut site = self.site.lock().unwrap_or_else(PoisonError::into_inner);
        if site.store.is_none() {
            let store = crate::state::open(&site.config, &site.config.host())
                .map_err(|err| Report::new(&err).one_line())?;
            site.store = Some(store.into());
        }
        let store = Arc::clone(site.store.as_ref().expect("opened above"));
        Ok((Arc::clone(&site.config), store))
    }

    /// The status of the site, computed again when a run ended since the last one or it is
    /// older than [`STATUS_MAX_AGE`]. The packs' series of the metrics follow it.
    async fn status(&self) -> Result<Arc<StatusReport>, String> {
        let mut computed = self.status.lock().await;
        let run = *self.runs.borrow();
        if let Some(last) = computed
            .as_ref()
            .filter(|last| last.run == run && last.at.elapsed() < STATUS_MAX_AGE)
        {
            return Ok(Arc::clone(&last.report));
        }
        let view = self.clone();
        let report = blocking(move || {
            let (config, store) = view.site()?;
            let include = Include {
                other_hosts: true,
                fleet: config.fleet.is_some(),
            };
            execute::report(&config, store.as_ref(), include)
                .map_err(|err| Report::new(&err).one_line())
        })
        .await?;
        let report = Arc::new(report);
        self.metrics.packs(&report);
        *computed = Some(Computed {
            run,
            at: Instant::now(),
            report: Arc::clone(&report),
        });
        Ok(report)
    }
}

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| Err(format!("the request's task failed: {err}")))
}

/// Serves the routes of this module on `address` until the agent stops.
pub(super) async fn serve(address: SocketAddr, view: View) {
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%address, %error, "cannot serve the status page and metrics");
            return;
        }
    };
    tracing::info!(%address, "serving the status page, /api/v1, /metrics and /healthz");
    if let Err(error) = axum::serve(listener, router(view)).await {
        tracing::error!(%address, %error, "the status server stopped");
    }
}

fn router(view: View) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/page.js", get(script))
        .route("/page.css", get(style))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/v1/status", get(status))
        .route("/api/v1/history", get(history))
        .route("/api/v1/events", get(events))
        .with_state(view)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn metrics(State(view): State<View>) -> Response {
    // The packs' series are as fresh as the last status; a store that cannot be read leaves
    // the previous ones, and the run counters say why.
    if let Err(error) = view.status().await {
        tracing::warn!(%error, "the packs' metrics are not current");
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        view.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(view): State<View>) -> Response {
    if view.metrics.healthy() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no successful run yet, or the state store was unreachable\n",
        )
            .into_response()
    }
}

/// An error as `{"error": "..."}`.
fn failure(status: StatusCode, error: &str) -> Response {
    (status, Json(serde_json::json!({ "error": error }))).into_response()
}

async fn status(State(view): State<View>) -> Response {
    match view.status().await {
        Ok(report) => Json(report).into_response(),
        Err(error) => failure(StatusCode::SERVICE_UNAVAILABLE, &error),
    }
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    pack: Option<String>,
    limit: Option<usize>,
}

async fn history(State(view): State<View>, Query(query): Query<HistoryQuery>) -> Response {
    let pack = match query.pack.map(PackName::new).transpose() {
        Ok(pack) => pack,
        Err(err) => return failure(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    let limit = query.limit.unwrap_or(HISTORY_DEFAULT).min(HISTORY_MAX);
    let entries = blocking(move || {
        let (_, store) = view.site()?;
        store
            .history(pack.as_ref(), Some(limit))
            .map_err(|err| Report::new(&err).one_line())
    })
    .await;
    match entries {
        Ok(entries) => Json(HistoryReport { entries }).into_response(),
        Err(error) => failure(StatusCode::SERVICE_UNAVAILABLE, &error),
    }
}

async fn events(State(view): State<View>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let runs = view.runs.subscribe();
    let stream = futures_util::stream::unfold(runs, |mut runs| async move {
        runs.changed().await.ok()?;
        let run = *runs.borrow_and_update();
        Some((
            Ok(Event::default().event("run").data(run.to_string())),
            runs,
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
