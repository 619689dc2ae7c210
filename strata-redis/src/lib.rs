//! # strata-redis — Redis and Redis Cluster as a strata layer
//!
//! [`RedisLayer`] implements strata's [`Layer`](strata::layer::Layer) trait over redis-rs
//! (sync connections, pooled, with connect, read and write timeouts). Put it under an
//! in-memory L1, and several processes of one service share one Redis: each keeps a local L1,
//! Redis is the tier they share and that outlives them, and [`RedisLayer::keep_in_sync`]
//! drops a process's local copies when another process writes.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use strata::{Cache, LayerSpec};
//! use strata_redis::RedisLayer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Arc::new(
//!     RedisLayer::builder("redis://127.0.0.1:6379/")
//!         .prefix("users:")
//!         .read_timeout(Duration::from_millis(100))
//!         .build::<String, String>()?,
//! );
//! let cache: Cache<String, String> = Cache::builder()
//!     .layer(LayerSpec::memory("l1", 10_000).ttl(Duration::from_secs(60)))
//!     .layer(LayerSpec::shared("redis", redis.clone()).ttl(Duration::from_secs(3600)))
//!     .build()?;
//! // Other processes' writes now invalidate this process's L1, until `_sync` is dropped.
//! let _sync = redis.keep_in_sync(&cache)?;
//!
//! cache.set("user:1".into(), "Ada".into())?; // Redis first, then L1
//! assert_eq!(cache.get("user:1")?.as_deref(), Some("Ada"));
//! # Ok(())
//! # }
//! ```
//!
//! `examples/two_processes.rs` runs that with two real processes against a throwaway server.
//!
//! # What Redis holds
//!
//! Under `prefix + key`, one string: a 50-byte header (record kind, the writing layer
//! instance's *origin*, the write's version in that cache, the expiry in Unix milliseconds) and
//! the value's bytes from the [`Codec`] ([`Postcard`] by default, [`Raw`] for bytes and
//! strings). TTLs are `PX`. A read, one key or a batch, is one `MGET` (on a cluster, a
//! pipeline of `GET`s: one round trip per node). A value that does not decode (garbage written by another program under the
//! prefix) is a [`RedisLayerError::Decode`] for that key: the cache reports the layer failed
//! for that key and goes on; nothing is overwritten.
//!
//! # Writes, on the server
//!
//! Sets and deletes run one Lua script (`EVALSHA`; after a `NOSCRIPT`, as on a restarted
//! server, the layer loads it, on every node of a cluster, and sends the call again): per key, **a record of the same origin with a higher version is kept** (the
//! trait's "keep the higher version"; deletes write a *tombstone* carrying their version that
//! lives [`tombstone_ttl`](RedisLayerBuilder::tombstone_ttl), so a slower, older write of the
//! same cache that arrives after a delete is refused), otherwise the record is stored. Then one
//! `PUBLISH` names the keys written. A batch (`set_many`, `delete_many`) is one script call:
//! one round trip, **isolated on the server**: no other client sees part of it (per hash slot
//! in a cluster; a batch is not isolated across slots). Every argument is checked before it is
//! sent (key and value sizes; a TTL beyond what `PX` takes is stored as no expiry), so the
//! script does not fail
//! midway; if it did, Redis would not roll back the keys already written.
//!
//! **Promotions into Redis** (a hit in a layer below, such as a database layer, copied up) follow
//! the trait's protocol in two round trips: the value is inserted as a *pending* record only if
//! the key is absent (no value, no tombstone: a recent delete by any cache wins), which readers
//! treat as absent and writes overwrite; then the promotion's ticket is checked, and a second
//! script publishes the record (and an invalidation) if it is still the one inserted, or
//! removes it. A batch of promotions costs the same two round trips. The one race this leaves
//! is every cache-aside design's: a value read below *before* another cache's write, inserted
//! after that write's record already left Redis (its TTL ran out or Redis evicted it), lands.
//! Keep Redis's TTL far above the time between a read below and its promotion (microseconds
//! to milliseconds).
//!
//! # Several caches on one Redis: the cross-instance contract
//!
//! Versions are per cache instance ([`strata::protocol`]) and are never compared across
//! instances: between caches, **the order in which writes reach Redis decides**. Within one
//! cache, strata's own contract holds unchanged: after a write returns, no later read of that
//! cache returns an older value. Among one cache's writes *in flight together*, Redis keeps the
//! higher version while its record (or tombstone) is what the key holds; once another cache's
//! write, an eviction by Redis (`maxmemory`) or the end of a tombstone's TTL replaced it, a
//! slower write of the first cache lands in arrival order. The contract allows that (the writes
//! overlapped), but the memory tier's stronger promise, that concurrent writes always settle on
//! the highest version, is not kept there. Run Redis with a `noeviction` or `volatile-*`
//! policy for a prefix whose values have no TTL.
//!
//! One [`RedisLayer`] serves one cache: its identity (the *origin*) is how the server tells that
//! cache's writes apart and how the cache skips its own invalidations. Build one layer per
//! cache, with the clock the cache uses ([`RedisLayerBuilder::clock`]; both default to
//! `Clock::system`): the layer turns the cache's expiries into TTLs with it, and with another
//! clock an entry's TTL would be wrong (with a manual clock at 0 against the system clock,
//! every expiring write would be sent as already expired).
//!
//! Across caches, with every cache subscribed ([`RedisLayer::keep_in_sync`]):
//!
//! - after `set(k, v)` returns on cache A, a `get(k)` on cache B that starts more than the
//!   **invalidation delay** later returns `v`, a value that reached Redis after it, or a miss;
//!   likewise after a `delete`, no older value. The delay is the `PUBLISH` delivery plus B's
//!   local delete: on loopback, p99 under 1 ms (PERF.md, measured by the runner's Redis rows).
//!   Within the delay B may still return its older local copy. The bound needs B's
//!   subscription up: a connection that closes is noticed at once, one that dies silently
//!   within a second plus the read timeout (a `PING` after a second of silence).
//! - a read on B that raced A's write never leaves the old value in B's L1 (the promotion
//!   ticket is the placeholder of Redis's client-side caching guide; see [`sync`]).
//! - when B's invalidation connection drops, B resubscribes (to the next node of a cluster in
//!   turn) and clears its local tiers; values it reads from Redis while unsubscribed, or by a
//!   read that spanned the loss, live 1 ms in its L1. While Redis is unreachable B's
//!   local tiers keep serving (no cache can write to a server nobody reaches); a network
//!   partition that cuts off B alone while other caches write lets B serve its local copies for
//!   up to their TTL: give L1 a TTL.
//! - two caches writing one key at once: Redis's arrival order decides, and every cache
//!   converges on Redis's value, except in one case: cache A's two racing writes of the key,
//!   the older arriving last, after another cache's write. A then keeps its newer value in L1
//!   while Redis holds the older, until the L1 entry is rewritten, evicted or expires.
//!
//! # Failures
//!
//! Every call has the configured timeouts; a failing server makes reads fall through to the
//! other layers and writes return `Incomplete` naming this layer. After
//! [`circuit_breaker`](RedisLayerBuilder::circuit_breaker) consecutive failures the layer
//! refuses calls at once for the cool-down, then probes; its state is in the cache's
//! `stats()` (`LayerStats::health`) and in [`RedisLayer::redis_stats`]. Connections that
//! failed are dropped and reopened on the next call: the layer recovers by itself when the
//! server returns.
//!
//! # Transactions (the seed's `BeginTx`)
//!
//! strata offers what Redis can make isolated: a `set_many` or `delete_many` is one script, so
//! other Redis readers see all of its keys written or none of them (within one hash slot; use a hash
//! tag such as `{order:17}` in the keys to keep a cluster batch in one slot). It does not offer
//! a transaction across layers: the in-process tiers have no rollback, Redis's `MULTI`/`EXEC`
//! has none either (a failing command does not undo the others), and holding other caches'
//! readers out of a multi-key update would need locks the design avoids. A batch that must be
//! all-or-nothing in the system of record belongs in that system's transaction, followed by a
//! `delete_many` of the keys it touched.
//!
//! # Redis Cluster
//!
//! [`RedisLayer::cluster_builder`] takes the nodes' URLs. A batch read is a pipeline of `GET`s
//! and a batch write a pipeline of one script call per hash slot, which redis-rs sends as one
//! batch per node: one round trip per node the keys live on (nodes in turn). Promotions into
//! a cluster cost two round trips per slot they touch. Invalidations use classic pub/sub, which
//! the cluster bus delivers to every node's subscribers. `for_each` (listing the layer) is not
//! offered for a cluster.

#![warn(missing_docs, missing_debug_implementations)]

mod breaker;
mod codec;
mod conn;
mod layer;
pub mod server;
pub mod sync;
mod wire;

pub use codec::{Codec, CodecError, Postcard, Raw, RedisKey};
pub use layer::{ConfigError, RedisLayer, RedisLayerBuilder, RedisLayerError};
pub use sync::{RedisStats, Subscription, SyncState};
