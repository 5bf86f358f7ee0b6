//! What every handler shares: the store, the token, the pseudonymiser of the scope view.

use std::sync::{Arc, Mutex};

use cellwarden_store::Store;

/// The server's state.
pub struct AppState {
    /// The case store (one connection, taken in turn).
    pub store: Mutex<Store>,
    /// The token requests must carry, when set.
    pub token: Option<String>,
    /// Pseudonymises subscriber identifiers on the scope view (key kept in the store).
    pub pseudonymiser: cellwarden_report::Pseudonymiser,
    /// Host names requests may be addressed to (lowercase, without port); `None`: any.
    pub hosts: Option<Vec<String>>,
}

/// The state as handlers receive it.
pub type Shared = Arc<AppState>;
