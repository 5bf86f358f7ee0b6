//! The dashboard: an axum server over the case store. Server-rendered pages (maud escapes
//! every interpolated string, so log text cannot become markup), a small script and style
//! sheet embedded in the binary, a JSON API behind the pages, and triage that writes to the
//! store. Loopback by default; any other address needs a token, checked on every request.

mod api;
mod auth;
mod campaign;
mod pages;
mod query;
mod respond;
mod state;
mod widgets;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::state::{AppState, Shared};

use axum::Router;
use axum::routing::{get, post};
use cellwarden_store::Store;

pub use auth::constant_time_eq;

/// What `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The case store.
    pub store: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Token every request must carry (needed off loopback).
    pub token: Option<String>,
    /// Host names the server is reached by besides its address (a DNS name, a reverse
    /// proxy's); requests addressed to any other host are refused.
    pub host_names: Vec<String>,
}

impl ServeConfig {
    /// The host names requests may carry: the address listened on (loopback: `localhost`,
    /// `127.0.0.1`, `::1`) and the configured names; `None` (any) when listening on every
    /// address with no name given, which needs a token.
    pub fn allowed_hosts(&self) -> Option<Vec<String>> {
        let ip = self.listen.ip();
        let mut hosts: Vec<String> = self
            .host_names
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        if ip.is_loopback() {
            hosts.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
        } else if ip.is_unspecified() {
            if hosts.is_empty() {
                return None;
            }
        } else {
            hosts.push(ip.to_string());
        }
        Some(hosts)
    }
}

/// A key for the scope view's pseudonyms: 32 bytes from the system's random source.
fn new_key() -> String {
    use std::io::Read;
    let mut b = [0u8; 32];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !ok {
        // No random source: time and process id (pseudonyms stay keyed, less secret).
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        for (i, c) in seed.bytes().enumerate() {
            b[i % 32] ^= c;
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The application, for `serve` and for tests.
pub fn app(
    mut store: Store,
    token: Option<String>,
    hosts: Option<Vec<String>>,
) -> Result<Router, ServeError> {
    let key = store.meta_or_insert("pseudonym_key", new_key)?;
    let pseudonymiser = cellwarden_report::Pseudonymiser::from_key_bytes(key.as_bytes())?;
    let state: Shared = Arc::new(AppState {
        store: Mutex::new(store),
        token,
        pseudonymiser,
        hosts,
    });
    Ok(Router::new()
        .route("/", get(pages::overview))
        .route("/alerts", get(pages::alerts))
        .route("/alert", get(pages::alert))
        .route("/campaigns", get(campaign::campaigns))
        .route("/campaign", get(campaign::campaign))
        .route("/incidents", get(pages::incidents))
        .route("/incident", get(pages::incident))
        .route("/scope", get(pages::scope))
        .route("/triage", post(pages::triage))
        .route("/static/app.css", get(pages::css))
        .route("/static/app.js", get(pages::js))
        .route("/api/summary", get(api::summary))
        .route("/api/alerts", get(api::alerts))
        .route("/api/alert", get(api::alert))
        .route("/api/campaigns", get(api::campaigns))
        .route("/api/campaign", get(api::campaign))
        .route("/api/incidents", get(api::incidents))
        .route("/api/incident", get(api::incident))
        .route("/api/scope", get(api::scope))
        .route("/api/runs", get(api::runs))
        .route("/api/attack", get(api::attack))
        .route("/api/triage", post(api::triage))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::check,
        ))
        .with_state(state))
}

/// Why the dashboard could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address without a token.
    #[error(
        "{0} is not a loopback address: give --token-file (every request must then carry the token)"
    )]
    NeedsToken(SocketAddr),
    /// The case store could not be opened.
    #[error("{}: {source}", path.display())]
    OpenStore {
        /// The store's file.
        path: PathBuf,
        /// Why.
        source: cellwarden_store::StoreError,
    },
    /// The case store could not be read.
    #[error("{0}")]
    Store(#[from] cellwarden_store::StoreError),
    /// The store's pseudonym key is unusable.
    #[error("{0}")]
    Key(#[from] cellwarden_report::KeyError),
    /// The address could not be listened on.
    #[error("{addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Serves until interrupted. Refuses a non-loopback address without a token.
pub fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    if !cfg.listen.ip().is_loopback() && cfg.token.is_none() {
        return Err(ServeError::NeedsToken(cfg.listen));
    }
    let store = Store::open(&cfg.store).map_err(|source| ServeError::OpenStore {
        path: cfg.store.clone(),
        source,
    })?;
    let app = app(store, cfg.token.clone(), cfg.allowed_hosts())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr()?;
        if cfg.token.is_some() {
            eprintln!(
                "serving {} on http://{addr}/ — a token is required on every request (Authorization: Bearer, or open http://{addr}/?token=… once)",
                cfg.store.display()
            );
        } else {
            eprintln!(
                "serving {} on http://{addr}/ (loopback only, no token)",
                cfg.store.display()
            );
        }
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(ServeError::Io)
    })
}
