//! Keeping a cache's local tiers in step with other caches' writes to the shared Redis.
//!
//! Every write through a `RedisLayer` runs the `WRITE` script (a promotion into Redis, the
//! `PROMOTE_FINISH` script), which ends with one `PUBLISH` on the prefix's invalidation channel
//! naming the writer's origin and the keys written (unless `publish_invalidations(false)`).
//! `RedisLayer::keep_in_sync` starts one thread per cache with a dedicated subscribed
//! connection; for each message from *another* origin it deletes the named keys from the
//! cache's in-process tiers (`delete_with(local_only)`).
//!
//! # Why a channel of our own, not `CLIENT TRACKING`
//!
//! Server-assisted client-side caching (`CLIENT TRACKING ... BCAST PREFIX`) would tell every
//! subscriber of every write under the prefix, the writer's own included: the writer would then
//! drop the value it had just written to its L1, unless every pooled data connection turned
//! tracking on with `NOLOOP` and a redirect to the subscription, a per-connection setup that a
//! cluster multiplies by its nodes. The write script's `PUBLISH` names the writing cache, so a
//! cache skips its own writes with one comparison, and it works the same on one server and on
//! a cluster (classic pub/sub reaches every node's subscribers). The price: a program that
//! writes under the prefix without the script sends no invalidation.
//!
//! # The race between a read reply and its invalidation
//!
//! Redis's client-side caching guide closes it with a placeholder: mark the key "being fetched"
//! before the read, and let an invalidation that arrives meanwhile void the fetch. strata's
//! promotion ticket is that placeholder. A read takes its ticket before asking Redis; the
//! invalidation is a local *write* of the key (it bumps the key's write stripe), so a promotion
//! of the value read before the other cache's write either fails its ticket (the invalidation
//! began first) or is deleted by it (the promotion published first, with an older version
//! than the invalidation's). See `strata::protocol`.
//!
//! # When the subscription drops
//!
//! Messages published while this cache is not subscribed are lost. A dropped connection is seen
//! at once when the socket closes, and otherwise by a `PING` after a second of silence (within
//! one second plus the read timeout). The thread resubscribes at once and then clears the cache's local tiers ([`Cache::clear_local`]), so nothing it missed
//! survives; until then, values read from Redis are handed up with a 1 ms lifetime
//! (`RedisStats::sync` says `Lost`). While Redis itself cannot be reached, the local tiers keep
//! serving: no cache can write to a server nobody reaches (a partition that cuts off only
//! this cache is the exception the crate docs state), and they are cleared once it is back.

use crate::codec::RedisKey;
use crate::conn::Timeouts;
use redis::Client;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;
use strata::layer::LayerHealth;
use strata::{Cache, DeleteOptions};

/// How long a subscribed connection waits for a message before checking whether to stop.
const POLL: Duration = Duration::from_millis(50);
/// The pause between two attempts to resubscribe.
const RETRY: Duration = Duration::from_millis(20);
/// After this long without a message, the subscription is checked with a `PING`: a connection
/// that died without a word (a network partition, a server gone without closing the socket)
/// is found within this plus the read timeout, instead of never.
const PING_AFTER: Duration = Duration::from_secs(1);

/// Whether a cache hears of other caches' writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// [`RedisLayer::keep_in_sync`](crate::RedisLayer::keep_in_sync) was never called: the cache assumes it is the only writer
    /// of the prefix (or tolerates stale local values for the local tiers' TTL).
    NotSubscribed,
    /// Subscribed: other caches' writes are applied within the invalidation delay.
    InSync,
    /// The subscription dropped; local tiers are cleared once it is back.
    Lost,
}

/// The Redis layer's own figures ([`RedisLayer::redis_stats`](crate::RedisLayer::redis_stats)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// The circuit breaker's state (also in the cache's `stats()`).
    pub health: LayerHealth,
    /// How many times the breaker opened.
    pub circuit_opened: u64,
    /// The invalidation subscription's state.
    pub sync: SyncState,
    /// Keys named in other caches' invalidation messages, deleted locally.
    pub invalidations: u64,
    /// Times the subscription was re-established (each followed by a clear of the local tiers).
    pub resubscriptions: u64,
    /// Values under our prefix that did not decode (garbage, or another codec's bytes).
    pub decode_errors: u64,
}

const NOT_SUBSCRIBED: u8 = 0;
const IN_SYNC: u8 = 1;
const LOST: u8 = 2;

/// What the layer and its subscription thread share. The counters are `Relaxed` reports. The
/// state and the generation are `SeqCst`: a read compares the generation it saw before asking
/// Redis with the one after (see [`SyncShared::vouches_since`]); they are touched once per
/// read below L1 and once per change of state, never on an L1 hit.
pub(crate) struct SyncShared {
    /// One server, or every node of a cluster: resubscribing tries them in turn, so one node
    /// down does not keep the cache unsubscribed.
    clients: Vec<Client>,
    next_client: AtomicUsize,
    channel: String,
    timeouts: Timeouts,
    state: AtomicU8,
    /// Bumped when the subscription is lost and when it is back.
    generation: AtomicU64,
    invalidations: AtomicU64,
    resubscriptions: AtomicU64,
    decode_errors: AtomicU64,
}

impl SyncShared {
    pub(crate) fn new(clients: Vec<Client>, channel: String, timeouts: Timeouts) -> Self {
        SyncShared {
            clients,
            next_client: AtomicUsize::new(0),
            channel,
            timeouts,
            state: AtomicU8::new(NOT_SUBSCRIBED),
            generation: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            resubscriptions: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
        }
    }

    /// The generation to pass to [`vouches_since`](Self::vouches_since), read before asking
    /// Redis.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Whether a value read since `generation` may be handed up with its full lifetime: the
    /// subscription is not lost, and was not lost (or re-established) while the read ran. A
    /// read that spans a loss and a resubscription could otherwise hand up a value whose
    /// overwrite was published while nobody listened, after the clear that follows the
    /// resubscription.
    pub(crate) fn vouches_since(&self, generation: u64) -> bool {
        self.state.load(Ordering::SeqCst) != LOST
            && self.generation.load(Ordering::SeqCst) == generation
    }

    fn set_state(&self, state: u8) -> u8 {
        let was = self.state.swap(state, Ordering::SeqCst);
        if was != state {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        was
    }

    pub(crate) fn count_decode_error(&self) {
        self.decode_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self, health: LayerHealth, circuit_opened: u64) -> RedisStats {
        RedisStats {
            health,
            circuit_opened,
            sync: match self.state.load(Ordering::SeqCst) {
                IN_SYNC => SyncState::InSync,
                LOST => SyncState::Lost,
                _ => SyncState::NotSubscribed,
            },
            invalidations: self.invalidations.load(Ordering::Relaxed),
            resubscriptions: self.resubscriptions.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
        }
    }

    /// A new connection for the subscription, to the next server in turn.
    fn subscribe(&self) -> redis::RedisResult<redis::Connection> {
        // Relaxed: a round-robin turn; it publishes nothing.
        let turn = self.next_client.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        let mut conn = self.clients[turn].get_connection_with_timeout(self.timeouts.connect)?;
        conn.set_write_timeout(Some(self.timeouts.write))?;
        conn.set_read_timeout(Some(self.timeouts.read))?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg("strata-invalidations")
            .exec(&mut conn)?;
        Ok(conn)
    }
}

/// The invalidation subscription of one cache; dropping it stops the thread.
#[must_use = "dropping the subscription stops it"]
#[derive(Debug)]
pub struct Subscription {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Relaxed: the flag is only a signal to stop; the join below is what orders the thread's
        // last actions before the drop returns.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts `cache`'s subscription (see `RedisLayer::keep_in_sync`): `origin` is the layer's
/// identity (its own messages are skipped), `prefix` what its keys start with.
pub(crate) fn start<K, V>(
    shared: &Arc<SyncShared>,
    cache: &Cache<K, V>,
    origin: u64,
    prefix: &[u8],
) -> Result<Subscription, redis::RedisError>
where
    K: RedisKey + Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let first = shared.subscribe()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (ready, subscribed) = mpsc::channel();
    let listener = Listener {
        shared: shared.clone(),
        cache: cache.clone(),
        origin,
        prefix: prefix.to_vec(),
        stop: stop.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("strata-redis-sync".into())
        .spawn(move || listener.run(first, ready))
        .map_err(|e| redis::RedisError::from(std::io::Error::other(e)))?;
    let outcome = subscribed
        .recv()
        .unwrap_or_else(|_| Err("the subscription thread ended".to_string()));
    let subscription = Subscription {
        stop,
        thread: Some(thread),
    };
    match outcome {
        Ok(()) => Ok(subscription),
        Err(reason) => Err(redis::RedisError::from(std::io::Error::other(reason))),
    }
}

struct Listener<K, V> {
    shared: Arc<SyncShared>,
    cache: Cache<K, V>,
    origin: u64,
    prefix: Vec<u8>,
    stop: Arc<AtomicBool>,
}

impl<K, V> Listener<K, V>
where
    K: RedisKey + Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn run(self, first: redis::Connection, ready: mpsc::Sender<Result<(), String>>) {
        let mut conn = Some(first);
        let mut ready = Some(ready);
        while !self.stop.load(Ordering::Relaxed) && !self.cache.is_closed() {
            let Some(mut current) = conn.take() else {
                match self.shared.subscribe() {
                    Ok(fresh) => conn = Some(fresh),
                    Err(_) => std::thread::sleep(RETRY),
                }
                continue;
            };
            // Returns when the connection fails (or when told to stop).
            let outcome = self.listen(&mut current, &mut ready);
            if let (Err(reason), Some(ready)) = (&outcome, ready.take()) {
                let _ = ready.send(Err(reason.clone()));
                return;
            }
            if outcome.is_ok() {
                break; // told to stop, or the cache closed
            }
            self.shared.set_state(LOST);
        }
        // Nobody listens any more: the layer says so, and hands values up with their full
        // lifetime as a cache that never subscribed does.
        self.shared.set_state(NOT_SUBSCRIBED);
    }

    /// Subscribes on `conn` and applies messages until the connection fails or the thread is
    /// told to stop.
    fn listen(
        &self,
        conn: &mut redis::Connection,
        ready: &mut Option<mpsc::Sender<Result<(), String>>>,
    ) -> Result<(), String> {
        let mut pubsub = conn.as_pubsub();
        pubsub
            .subscribe(&self.shared.channel)
            .map_err(|e| e.to_string())?;
        pubsub
            .set_read_timeout(Some(POLL))
            .map_err(|e| e.to_string())?;
        let was = self.shared.set_state(IN_SYNC);
        if was == LOST {
            // Messages may have been published while we were not listening: drop every local
            // value that one of them might have named.
            self.shared.resubscriptions.fetch_add(1, Ordering::Relaxed);
            let _ = self.cache.clear_local();
        }
        if let Some(ready) = ready.take() {
            let _ = ready.send(Ok(()));
        }
        let mut heard = std::time::Instant::now();
        while !self.stop.load(Ordering::Relaxed) && !self.cache.is_closed() {
            match pubsub.get_message() {
                Ok(message) => {
                    heard = std::time::Instant::now();
                    self.apply(message.get_payload_bytes());
                }
                Err(error) if error.is_timeout() => {
                    if heard.elapsed() >= PING_AFTER {
                        // The reply must come within the layer's read timeout.
                        pubsub
                            .set_read_timeout(Some(self.shared.timeouts.read))
                            .map_err(|e| e.to_string())?;
                        let _: redis::Value = pubsub.ping().map_err(|e| e.to_string())?;
                        pubsub
                            .set_read_timeout(Some(POLL))
                            .map_err(|e| e.to_string())?;
                        heard = std::time::Instant::now();
                    }
                }
                Err(error) => return Err(error.to_string()),
            }
        }
        Ok(())
    }

    fn apply(&self, message: &[u8]) {
        let Some((origin, keys)) = crate::wire::read_message(message) else {
            return;
        };
        if origin == self.origin {
            // This cache's own write: its local tiers already hold it.
            return;
        }
        let local = DeleteOptions::new().local_only();
        for key in keys {
            let Some(key) = key
                .strip_prefix(self.prefix.as_slice())
                .and_then(K::read_key)
            else {
                continue;
            };
            let _ = self.cache.delete_with(&key, &local);
            self.shared.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }
}
