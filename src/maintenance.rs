//! The maintenance thread a builder can turn on ([`CacheBuilder::maintenance`]).
//!
//! Every interval it does what [`Cache::run_pending_tasks`] does: applies queued promotions and
//! rebuilds the negative filters that ask for it (a filter over a layer that may hold keys
//! already starts unready, and only a rebuild makes it rule keys out). Without it, queues are
//! drained by the readers that fill them and filters wait for a call; with it, a cache that
//! never calls `run_pending_tasks` still gets both.
//!
//! The thread holds the engine only weakly: it never keeps a dropped cache alive, and it exits
//! at its next tick after the last handle is dropped or the cache is closed.
//!
//! [`CacheBuilder::maintenance`]: crate::CacheBuilder::maintenance
//! [`Cache::run_pending_tasks`]: crate::Cache::run_pending_tasks

use crate::engine::Engine;
use std::hash::Hash;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Starts the thread for `engine`, ticking every `every`.
pub(crate) fn spawn<K, V>(engine: &Arc<Engine<K, V>>, every: Duration) -> std::io::Result<()>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let weak: Weak<Engine<K, V>> = Arc::downgrade(engine);
    std::thread::Builder::new()
        .name("strata-maintenance".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Some(engine) = weak.upgrade() else {
                return;
            };
            if engine.is_closed() {
                return;
            }
            engine.run_pending_tasks();
        })
        .map(|_| ())
}
