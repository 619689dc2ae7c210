//! [`RedisLayer`]: the `Layer` trait over Redis or Redis Cluster.
//!
//! One read path (`read`: one `MGET`, or on a cluster a pipeline of `GET`s, for one key or a
//! batch) and one write path (`write`: the `WRITE` script once per hash slot, all in one
//! pipeline, for sets and deletes alike); promotions have their own two-step path
//! (`promote_batch`). Every call to the server goes through `call`, which applies the circuit
//! breaker and the pool.
//! See the crate docs for the design and the contracts.

use crate::breaker::Breaker;
use crate::codec::{Codec, CodecError, Postcard, RedisKey};
use crate::conn::{is_reply, Conn, Pool, Target, Timeouts};
use crate::sync::{Subscription, SyncShared};
use crate::wire::{self, FORCED_TOMBSTONE, MAX_TTL_MS, NO_EXPIRY, PENDING, TOMBSTONE, VALUE};
use redis::cluster::ClusterClient;
use redis::cluster_routing::Slot;
use redis::{Client, ErrorKind, RedisResult, ServerErrorKind};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use strata::layer::{
    Clock, Entry, GetResults, Layer, LayerCounters, LayerError, Ticket, Timestamp, Version,
};
use strata::Cache;
use thiserror::Error;

/// Why a [`RedisLayerBuilder`] refused its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL (or a cluster node's URL) did not parse.
    #[error("invalid Redis URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What redis-rs said of it.
        reason: String,
    },
    /// A cluster needs at least one node to start from.
    #[error("a cluster needs at least one node URL")]
    NoClusterNodes,
    /// A timeout of zero (redis-rs refuses it: it would mean "wait forever" to some calls).
    #[error("the {0} timeout must be above zero")]
    ZeroTimeout(&'static str),
    /// A size limit, pool size or breaker threshold of zero.
    #[error("{0} must be above zero")]
    Zero(&'static str),
    /// Tombstones must live at least a millisecond to refuse a late write, and at most what
    /// `PX` takes (about a hundred years here).
    #[error("the tombstone TTL must be between 1 ms and 100 years")]
    TombstoneTtl,
}

/// A failure of the Redis layer for one key or one call, inside
/// [`LayerError::Other`] (or, for an unreachable server or an open breaker,
/// [`LayerError::Unavailable`]). Downcast the source to tell them apart.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum RedisLayerError {
    /// The bytes under the key are not a value this layer wrote (another program's garbage
    /// under our prefix, or a value the codec cannot read). The key counts as failed; nothing
    /// is overwritten until the next write of the key.
    #[error("the value under {key:?} does not decode: {reason}")]
    Decode {
        /// The Redis key, lossily as text.
        key: String,
        /// Why.
        reason: String,
    },
    /// The value could not be encoded.
    #[error("the value does not encode: {0}")]
    Encode(CodecError),
    /// The key, with the prefix, is longer than the layer's limit.
    #[error("the key is {len} bytes with the prefix; the limit is {max}")]
    KeyTooLong {
        /// The key's length in bytes.
        len: usize,
        /// The limit ([`RedisLayerBuilder::max_key_bytes`]).
        max: usize,
    },
    /// The encoded value is larger than the layer's limit.
    #[error("the encoded value is {len} bytes; the limit is {max}")]
    ValueTooLarge {
        /// The value's encoded length.
        len: usize,
        /// The limit ([`RedisLayerBuilder::max_value_bytes`]).
        max: usize,
    },
    /// The server answered with an error (for example a script error).
    #[error("redis replied with an error: {0}")]
    Server(String),
}

impl From<RedisLayerError> for LayerError {
    fn from(error: RedisLayerError) -> Self {
        LayerError::Other(Arc::new(error))
    }
}

/// Configures a [`RedisLayer`]. Start from [`RedisLayer::builder`] or
/// [`RedisLayer::cluster_builder`].
#[must_use]
#[derive(Debug)]
pub struct RedisLayerBuilder<C = Postcard> {
    urls: Vec<String>,
    cluster: bool,
    codec: C,
    prefix: String,
    timeouts: Timeouts,
    pool_size: usize,
    max_connections: usize,
    tombstone_ttl: Duration,
    max_key_bytes: usize,
    max_value_bytes: usize,
    breaker_threshold: u32,
    breaker_cool_down: Duration,
    sole_writer: bool,
    publish: bool,
    clock: Option<Clock>,
}

impl RedisLayerBuilder<Postcard> {
    fn new(urls: Vec<String>, cluster: bool) -> Self {
        RedisLayerBuilder {
            urls,
            cluster,
            codec: Postcard,
            prefix: "strata:".into(),
            timeouts: Timeouts {
                connect: Duration::from_millis(500),
                read: Duration::from_millis(250),
                write: Duration::from_millis(250),
            },
            pool_size: 16,
            max_connections: 64,
            tombstone_ttl: Duration::from_secs(30),
            max_key_bytes: 1024,
            max_value_bytes: 1 << 20,
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(1),
            sole_writer: false,
            publish: true,
            clock: None,
        }
    }
}

impl<C> RedisLayerBuilder<C> {
    /// The codec for values (default [`Postcard`]; [`Raw`](crate::Raw) stores bytes as they are).
    pub fn codec<C2>(self, codec: C2) -> RedisLayerBuilder<C2> {
        RedisLayerBuilder {
            urls: self.urls,
            cluster: self.cluster,
            codec,
            prefix: self.prefix,
            timeouts: self.timeouts,
            pool_size: self.pool_size,
            max_connections: self.max_connections,
            tombstone_ttl: self.tombstone_ttl,
            max_key_bytes: self.max_key_bytes,
            max_value_bytes: self.max_value_bytes,
            breaker_threshold: self.breaker_threshold,
            breaker_cool_down: self.breaker_cool_down,
            sole_writer: self.sole_writer,
            publish: self.publish,
            clock: self.clock,
        }
    }

    /// The namespace every key is written under (default `"strata:"`). Caches that share data
    /// use the same prefix; the invalidation channel is named after it.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long to wait for a connection (default 500 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect = timeout;
        self
    }

    /// How long to wait for a reply (default 250 ms): a paused server costs a call this long,
    /// until the breaker opens.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.read = timeout;
        self
    }

    /// How long a send may block (default 250 ms).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.write = timeout;
        self
    }

    /// Connections kept idle for reuse (default 16; at most `max_connections`).
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections;
        self
    }

    /// Connections open at once, at most (default 64). A call that finds them all in use waits
    /// for one, at most the connect timeout, then fails as an unreachable server does.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// How long a delete's tombstone refuses slower, older writes of this cache (default 30 s):
    /// it must exceed the longest time a write can take to reach Redis.
    pub fn tombstone_ttl(mut self, ttl: Duration) -> Self {
        self.tombstone_ttl = ttl;
        self
    }

    /// The longest key accepted, prefix included (default 1 KiB).
    pub fn max_key_bytes(mut self, bytes: usize) -> Self {
        self.max_key_bytes = bytes;
        self
    }

    /// The largest encoded value accepted (default 1 MiB).
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// Opens the circuit after `failures` consecutive failures to reach the server, for
    /// `cool_down` (defaults 5 and 1 s).
    pub fn circuit_breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.breaker_threshold = failures;
        self.breaker_cool_down = cool_down;
        self
    }

    /// Declares this cache the only writer of its prefix: the cache then puts a negative filter
    /// in front of the layer by default (a miss costs no round trip), and `for_each` lists
    /// the layer (a `SCAN` of the prefix) to rebuild it. The layer cannot tell the cache that
    /// it starts empty, so the filter lets every lookup through until its first rebuild: call
    /// `cache.rebuild_filters()` after building, or build the cache with
    /// `.maintenance(interval)`. Leave it off when several caches share the prefix: a filter
    /// cannot know of other caches' writes.
    pub fn sole_writer(mut self) -> Self {
        self.sole_writer = true;
        self
    }

    /// Whether writes publish invalidations for other caches (default on). Off saves the
    /// `PUBLISH` when no other cache shares the prefix.
    pub fn publish_invalidations(mut self, publish: bool) -> Self {
        self.publish = publish;
        self
    }

    /// The clock the cache uses (default [`Clock::system`], which is also the cache's
    /// default): the layer converts the cache's expiries to Redis TTLs with it.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Checks the configuration and opens the client. Connects lazily: a cache can start
    /// while Redis is down, and the layer fails (and reports) until it is back.
    pub fn build<K, V>(self) -> Result<RedisLayer<K, V, C>, ConfigError>
    where
        C: Codec<V>,
    {
        let t = self.timeouts;
        for (name, d) in [("connect", t.connect), ("read", t.read), ("write", t.write)] {
            if d.is_zero() {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        for (name, n) in [
            ("the pool size", self.pool_size),
            ("max_connections", self.max_connections),
            ("max_key_bytes", self.max_key_bytes),
            ("max_value_bytes", self.max_value_bytes),
            ("the breaker threshold", self.breaker_threshold as usize),
        ] {
            if n == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.tombstone_ttl < Duration::from_millis(1)
            || self.tombstone_ttl.as_millis() > u128::from(MAX_TTL_MS)
        {
            return Err(ConfigError::TombstoneTtl);
        }
        let invalid = |url: &String, e: redis::RedisError| ConfigError::InvalidUrl {
            url: url.clone(),
            reason: e.to_string(),
        };
        let first = self.urls.first().ok_or(ConfigError::NoClusterNodes)?;
        // The invalidation subscription uses a plain connection: to the server, or to any node
        // of a cluster (a PUBLISH on any node reaches every node's subscribers), tried in turn.
        let node_clients = self
            .urls
            .iter()
            .map(|url| Client::open(url.as_str()).map_err(|e| invalid(url, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let target = if self.cluster {
            let client = ClusterClient::builder(self.urls.clone())
                .connection_timeout(t.connect)
                .response_timeout(t.read)
                .retries(1)
                .build()
                .map_err(|e| invalid(first, e))?;
            Target::Cluster(client)
        } else {
            Target::Single(node_clients[0].clone())
        };
        let channel = format!("{}__strata_invalidations", self.prefix);
        Ok(RedisLayer {
            pool: Pool::new(target, t, self.pool_size, self.max_connections),
            codec: self.codec,
            prefix: self.prefix.into_bytes(),
            channel: if self.publish {
                channel.clone()
            } else {
                String::new()
            },
            origin: new_origin(),
            clock: self.clock.unwrap_or_else(Clock::system),
            tombstone_ttl_ms: u64::try_from(self.tombstone_ttl.as_millis()).unwrap_or(u64::MAX),
            max_key_bytes: self.max_key_bytes,
            max_value_bytes: self.max_value_bytes,
            sole_writer: self.sole_writer,
            breaker: Breaker::new(self.breaker_threshold, self.breaker_cool_down),
            script: redis::Script::new(wire::WRITE),
            promote_insert: redis::Script::new(wire::PROMOTE_INSERT),
            promote_finish: redis::Script::new(wire::PROMOTE_FINISH),
            sync: Arc::new(SyncShared::new(node_clients, channel, t)),
            _types: PhantomData,
        })
    }
}

/// A Redis (or Redis Cluster) layer. See the [crate docs](crate).
pub struct RedisLayer<K, V, C = Postcard> {
    pool: Pool,
    codec: C,
    prefix: Vec<u8>,
    /// Where writes publish invalidations ('' for none).
    channel: String,
    /// This layer instance's identity in records and messages.
    origin: u64,
    clock: Clock,
    tombstone_ttl_ms: u64,
    max_key_bytes: usize,
    max_value_bytes: usize,
    sole_writer: bool,
    breaker: Breaker,
    script: redis::Script,
    promote_insert: redis::Script,
    promote_finish: redis::Script,
    sync: Arc<SyncShared>,
    _types: PhantomData<fn(K) -> V>,
}

impl<K, V, C> std::fmt::Debug for RedisLayer<K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLayer")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("cluster", &self.pool.is_cluster())
            .field("origin", &format_args!("{:016x}", self.origin))
            .finish_non_exhaustive()
    }
}

impl RedisLayer<(), ()> {
    /// A layer on one Redis server, e.g. `"redis://127.0.0.1:6379/"`.
    pub fn builder(url: impl Into<String>) -> RedisLayerBuilder {
        RedisLayerBuilder::new(vec![url.into()], false)
    }

    /// A layer on a Redis Cluster, from one or more of its nodes' URLs.
    pub fn cluster_builder<S: Into<String>>(
        nodes: impl IntoIterator<Item = S>,
    ) -> RedisLayerBuilder {
        RedisLayerBuilder::new(nodes.into_iter().map(Into::into).collect(), true)
    }
}

/// A key prepared for the wire: its Redis key, or why it cannot be sent.
type WireKey = Result<Vec<u8>, LayerError>;
/// A write prepared for the wire: key, record, TTL in ms (0: none).
type WireWrite = Result<(Vec<u8>, Vec<u8>, u64), LayerError>;

impl<K, V, C> RedisLayer<K, V, C>
where
    K: RedisKey,
    C: Codec<V>,
{
    /// The layer's figures: breaker state, invalidation subscription, decode failures.
    pub fn redis_stats(&self) -> crate::RedisStats {
        self.sync
            .stats(self.breaker.health(), self.breaker.times_opened())
    }

    fn wire_key(&self, key: &K) -> WireKey {
        let mut out = Vec::with_capacity(self.prefix.len() + 16);
        out.extend_from_slice(&self.prefix);
        key.write_key(&mut out);
        if out.len() > self.max_key_bytes {
            return Err(RedisLayerError::KeyTooLong {
                len: out.len(),
                max: self.max_key_bytes,
            }
            .into());
        }
        Ok(out)
    }

    /// A record for a value (or, if it has already expired, a tombstone: it must still
    /// supersede older values).
    fn wire_value(&self, key: &K, entry: &Entry<V>) -> WireWrite {
        self.wire_record(key, entry, VALUE)
    }

    /// A record of `kind` (a value, or a pending promotion) for an entry.
    fn wire_record(&self, key: &K, entry: &Entry<V>, kind: u8) -> WireWrite {
        let key = self.wire_key(key)?;
        let (expiry, ttl_ms) = match entry.expires_at {
            Timestamp::NEVER => (NO_EXPIRY, 0),
            at => match at.0.checked_sub(self.clock.write_time().0) {
                // Beyond what `PX` takes (a "forever" written as a huge TTL): no expiry.
                Some(ms) if ms > MAX_TTL_MS => (NO_EXPIRY, 0),
                Some(ms) if ms > 0 => (unix_ms().saturating_add(ms), ms),
                _ => return Ok(self.wire_tombstone_for(key, entry.version)),
            },
        };
        let mut record = Vec::with_capacity(wire::HEADER + 32);
        wire::write_header(&mut record, kind, self.origin, entry.version, expiry);
        self.codec
            .encode(&entry.value, &mut record)
            .map_err(RedisLayerError::Encode)?;
        let len = record.len() - wire::HEADER;
        if len > self.max_value_bytes {
            return Err(RedisLayerError::ValueTooLarge {
                len,
                max: self.max_value_bytes,
            }
            .into());
        }
        Ok((key, record, ttl_ms))
    }

    fn wire_tombstone(&self, key: &K, ticket: &Ticket<'_>) -> WireWrite {
        let key = self.wire_key(key)?;
        if ticket.stripe().is_none() {
            // Outside a cache (an unconditional ticket) the delete must win whatever the key
            // holds, and refuse no later write: a forced tombstone of version 0.
            let mut record = Vec::with_capacity(wire::HEADER);
            let expiry = unix_ms().saturating_add(self.tombstone_ttl_ms);
            wire::write_header(&mut record, FORCED_TOMBSTONE, self.origin, 0, expiry);
            return Ok((key, record, self.tombstone_ttl_ms));
        }
        Ok(self.wire_tombstone_for(key, ticket.version()))
    }

    fn wire_tombstone_for(&self, key: Vec<u8>, version: u64) -> (Vec<u8>, Vec<u8>, u64) {
        let mut record = Vec::with_capacity(wire::HEADER);
        let expiry = unix_ms().saturating_add(self.tombstone_ttl_ms);
        wire::write_header(&mut record, TOMBSTONE, self.origin, version, expiry);
        (key, record, self.tombstone_ttl_ms)
    }

    /// Runs one server call through the breaker and the pool.
    fn call<T>(&self, op: impl FnOnce(&mut Conn) -> RedisResult<T>) -> Result<T, LayerError> {
        if !self.breaker.allow() {
            return Err(LayerError::Unavailable(
                "redis: circuit open after repeated failures".into(),
            ));
        }
        match self.pool.with(op) {
            Ok(value) => {
                self.breaker.success();
                Ok(value)
            }
            Err(error) if is_reply(&error) => {
                self.breaker.success();
                Err(RedisLayerError::Server(error.to_string()).into())
            }
            Err(error) => {
                self.breaker.failure();
                // The other idle connections went to the same server: reconnect them too.
                self.pool.clear();
                Err(LayerError::Unavailable(format!("redis: {error}")))
            }
        }
    }

    /// Groups the indexes of sendable keys: one group per hash slot in a cluster, one group
    /// otherwise.
    fn groups<'a>(&self, keys: impl Iterator<Item = (usize, &'a [u8])>) -> Vec<Vec<usize>> {
        if !self.pool.is_cluster() {
            return vec![keys.map(|(i, _)| i).collect()];
        }
        let mut by_slot: HashMap<Slot, Vec<usize>> = HashMap::new();
        for (i, key) in keys {
            by_slot.entry(Slot::for_key(key)).or_default().push(i);
        }
        by_slot.into_values().collect()
    }

    /// The read path: the sendable keys fetched at once (see [`fetch`](Self::fetch)), each
    /// record decoded on its own.
    fn read(&self, keys: Vec<WireKey>, now: Timestamp) -> GetResults<V> {
        let sendable: Vec<&[u8]> = keys
            .iter()
            .filter_map(|key| key.as_ref().ok().map(Vec::as_slice))
            .collect();
        let generation = self.sync.generation();
        let fetched = if sendable.is_empty() {
            Ok(Vec::new())
        } else {
            self.fetch(&sendable)
        };
        let vouched = self.sync.vouches_since(generation);
        let mut replies = match fetched {
            Ok(values) if values.len() == sendable.len() => Ok(values.into_iter()),
            Ok(values) => Err(LayerError::from(RedisLayerError::Server(format!(
                "{} keys asked, {} answered",
                sendable.len(),
                values.len()
            )))),
            Err(error) => Err(error),
        };
        keys.into_iter()
            .map(|key| {
                let key = key?;
                match &mut replies {
                    Ok(values) => self.decode(&key, values.next().flatten(), now, vouched),
                    Err(error) => Err(error.clone()),
                }
            })
            .collect()
    }

    /// The records under `keys`, in order, in one call: one `MGET` on one server; on a cluster
    /// (where an `MGET` must stay within one hash slot), a pipeline of `GET`s, which redis-rs
    /// sends as one batch per node: one round trip per node the keys live on.
    fn fetch(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, LayerError> {
        self.call(|conn| match conn {
            Conn::Single(conn) => redis::cmd("MGET").arg(keys).query(conn),
            Conn::Cluster(conn) => {
                let mut pipe = redis::cluster::cluster_pipe();
                for key in keys {
                    pipe.get(key);
                }
                pipe.query(conn)
            }
        })
    }

    /// One record read back; `vouched`: whether the invalidation subscription covered the
    /// whole read (see `SyncShared::vouches_since`).
    fn decode(
        &self,
        key: &[u8],
        bytes: Option<Vec<u8>>,
        now: Timestamp,
        vouched: bool,
    ) -> Result<Option<Entry<V>>, LayerError> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let bad = |reason: String| {
            self.sync.count_decode_error();
            LayerError::from(RedisLayerError::Decode {
                key: String::from_utf8_lossy(key).into_owned(),
                reason,
            })
        };
        let record = wire::read_record(&bytes).ok_or_else(|| bad("not a strata record".into()))?;
        if record.kind == TOMBSTONE || record.kind == PENDING {
            return Ok(None);
        }
        let expires_at = match record.expiry {
            NO_EXPIRY => Timestamp::NEVER,
            expiry => match expiry.checked_sub(unix_ms()) {
                Some(left) if left > 0 => Timestamp(now.0.saturating_add(left)),
                _ => return Ok(None),
            },
        };
        let value = self
            .codec
            .decode(record.payload)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Some(Entry {
            value,
            // Versions of other caches mean nothing to this one. Report them as the newest
            // possible: a promotion clamps the version to its ticket's epoch, which makes the
            // value exactly as new as this cache's last write of the stripe. Reporting 0
            // instead would make it older than the local delete an invalidation left in L1,
            // and L1 would refuse every promotion of the key from then on.
            version: if record.origin == self.origin {
                record.version
            } else {
                Version::MAX
            },
            // While the invalidation subscription is down (or was, during the read), a value
            // read now may be overwritten by another cache unannounced: let its copies above
            // live 1 ms.
            expires_at: if vouched {
                expires_at
            } else {
                expires_at.min(Timestamp(now.0.saturating_add(1)))
            },
        }))
    }

    /// The write path: the `WRITE` script once per group, sets and deletes alike, all groups in
    /// one call (see [`run_script`](Self::run_script)).
    fn write(&self, writes: Vec<WireWrite>) -> Vec<Result<(), LayerError>> {
        let mut results: Vec<Result<(), LayerError>> = writes
            .iter()
            .map(|w| w.as_ref().map(|_| ()).map_err(Clone::clone))
            .collect();
        let sendable = writes
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.as_ref().ok().map(|(key, _, _)| (i, key.as_slice())));
        let groups: Vec<Vec<usize>> = self
            .groups(sendable)
            .into_iter()
            .filter(|group| !group.is_empty())
            .collect();
        let invocations: Vec<ScriptArgs> = groups
            .iter()
            .map(|group| {
                let mut call = ScriptArgs::default();
                call.args.push(self.channel.as_bytes().to_vec());
                for &i in group {
                    if let Ok((key, record, ttl)) = &writes[i] {
                        call.keys.push(key.clone());
                        call.args.push(record.clone());
                        call.args.push(ttl.to_string().into_bytes());
                    }
                }
                call
            })
            .collect();
        if let Err(error) = self.run_script(&self.script, &invocations) {
            for &i in groups.iter().flatten() {
                results[i] = Err(error.clone());
            }
        }
        // A 0 ("kept a newer record of this cache") is the layer keeping the higher version, as
        // the trait asks: a success.
        results
    }

    /// Runs `script` once per invocation (one hash slot's keys each), in one call: one
    /// `EVALSHA` on one server; on a cluster, a pipeline of them that redis-rs sends as one
    /// batch per node. A server that lost its script cache (`NOSCRIPT`, after a restart) gets
    /// the script loaded (on every node) and the call once more: the write script is
    /// idempotent, so the invocations that had already run may run again.
    fn run_script(
        &self,
        script: &redis::Script,
        invocations: &[ScriptArgs],
    ) -> Result<Vec<Vec<i64>>, LayerError> {
        if invocations.is_empty() {
            return Ok(Vec::new());
        }
        self.call(|conn| {
            let once = |conn: &mut Conn| -> RedisResult<Vec<Vec<i64>>> {
                match conn {
                    Conn::Single(conn) => {
                        let mut pipe = redis::pipe();
                        for call in invocations {
                            pipe.add_command(call.evalsha(script));
                        }
                        pipe.query(conn)
                    }
                    Conn::Cluster(conn) => {
                        let mut pipe = redis::cluster::cluster_pipe();
                        for call in invocations {
                            pipe.add_command(call.evalsha(script));
                        }
                        pipe.query(conn)
                    }
                }
            };
            match once(conn) {
                Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script.load(conn.like())?;
                    once(conn)
                }
                outcome => outcome,
            }
        })
    }
}

/// One script invocation's keys and arguments.
#[derive(Default)]
struct ScriptArgs {
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl ScriptArgs {
    fn evalsha(&self, script: &redis::Script) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(self.keys.len());
        for key in &self.keys {
            cmd.arg(key);
        }
        for arg in &self.args {
            cmd.arg(arg);
        }
        cmd
    }
}

impl<K, V, C> RedisLayer<K, V, C>
where
    K: RedisKey + std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    /// Applies other caches' writes to `cache`'s in-process tiers, until the returned
    /// [`Subscription`] is dropped (see [`sync`](crate::sync)). `cache` is the cache this layer
    /// sits in. Returns once subscribed, or with the error that prevented it.
    pub fn keep_in_sync(&self, cache: &Cache<K, V>) -> Result<Subscription, redis::RedisError> {
        crate::sync::start(&self.sync, cache, self.origin, &self.prefix)
    }
}

impl<K, V, C> RedisLayer<K, V, C>
where
    K: RedisKey,
    C: Codec<V>,
{
    /// The promotion path (see the crate docs): pending inserts where the key is absent, the
    /// tickets checked, then one call that publishes or removes each, per group.
    fn promote_batch(
        &self,
        entries: Vec<(&K, Entry<V>, Ticket<'_>)>,
    ) -> Vec<Result<bool, LayerError>> {
        let writes: Vec<WireWrite> = entries
            .iter()
            .map(|(key, entry, _)| self.wire_record(key, entry, PENDING))
            .collect();
        let mut results: Vec<Result<bool, LayerError>> = writes
            .iter()
            .map(|w| w.as_ref().map(|_| false).map_err(Clone::clone))
            .collect();
        // Only pending records go out: an entry that expired on the way became a tombstone
        // record, which a promotion must not write (it is declined).
        let sendable = writes.iter().enumerate().filter_map(|(i, w)| match w {
            Ok((key, record, _)) if record.first() == Some(&PENDING) => Some((i, key.as_slice())),
            _ => None,
        });
        for group in self.groups(sendable) {
            if group.is_empty() {
                continue;
            }
            let mut insert = self.promote_insert.prepare_invoke();
            for &i in &group {
                if let Ok((key, record, ttl)) = &writes[i] {
                    insert.key(key).arg(record).arg(ttl);
                }
            }
            let inserted = match self.call(|conn| insert.invoke::<Vec<i64>>(conn.like())) {
                Ok(inserted) if inserted.len() == group.len() => inserted,
                Ok(_) | Err(_) => {
                    // A failed insert call inserted nothing we must remove: report the keys failed.
                    for &i in &group {
                        results[i] = Err(LayerError::Unavailable(
                            "redis: the promotion's insert failed".into(),
                        ));
                    }
                    continue;
                }
            };
            // The tickets, after the inserts (the round trip orders them; the fence is the
            // protocol's).
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            let mut finish = self.promote_finish.prepare_invoke();
            finish.arg(&self.channel);
            let mut finishing = Vec::new();
            for (&i, &done) in group.iter().zip(&inserted) {
                if let (1, Ok((key, record, _))) = (done, &writes[i]) {
                    let publish = if entries[i].2.is_current() { "1" } else { "0" };
                    finish.key(key).arg(record).arg(publish);
                    finishing.push(i);
                }
            }
            if finishing.is_empty() {
                continue;
            }
            match self.call(|conn| finish.invoke::<Vec<i64>>(conn.like())) {
                Ok(published) => {
                    for (&i, done) in finishing.iter().zip(published) {
                        results[i] = Ok(done == 1);
                    }
                }
                Err(error) => {
                    // The pending records stay until their TTL, read as absent by everyone.
                    for &i in &finishing {
                        results[i] = Err(error.clone());
                    }
                }
            }
        }
        results
    }
}

impl<K, V, C> Layer<K, V> for RedisLayer<K, V, C>
where
    K: RedisKey + Send + Sync,
    V: Send + Sync,
    C: Codec<V>,
{
    fn get(&self, key: &K, now: Timestamp) -> Result<Option<Entry<V>>, LayerError> {
        self.read(vec![self.wire_key(key)], now)
            .pop()
            .unwrap_or(Ok(None))
    }

    fn set(&self, key: &K, entry: Entry<V>, _ticket: &Ticket<'_>) -> Result<(), LayerError> {
        let write = self.wire_value(key, &entry);
        self.write(vec![write]).pop().unwrap_or(Ok(()))
    }

    fn delete(&self, key: &K, ticket: &Ticket<'_>) -> Result<(), LayerError> {
        let write = self.wire_tombstone(key, ticket);
        self.write(vec![write]).pop().unwrap_or(Ok(()))
    }

    fn promote(&self, key: &K, entry: Entry<V>, ticket: &Ticket<'_>) -> Result<bool, LayerError> {
        self.promote_batch(vec![(key, entry, *ticket)])
            .pop()
            .unwrap_or(Ok(false))
    }

    fn promote_many(
        &self,
        entries: Vec<(&K, Entry<V>, Ticket<'_>)>,
    ) -> Vec<Result<bool, LayerError>> {
        self.promote_batch(entries)
    }

    fn get_many(&self, keys: &[&K], now: Timestamp) -> GetResults<V> {
        self.read(keys.iter().map(|key| self.wire_key(key)).collect(), now)
    }

    fn set_many(&self, entries: Vec<(&K, Entry<V>, Ticket<'_>)>) -> Vec<Result<(), LayerError>> {
        let writes = entries
            .iter()
            .map(|(key, entry, _)| self.wire_value(key, entry))
            .collect();
        self.write(writes)
    }

    fn delete_many(&self, keys: &[(&K, Ticket<'_>)]) -> Vec<Result<(), LayerError>> {
        let writes = keys
            .iter()
            .map(|(key, ticket)| self.wire_tombstone(key, ticket))
            .collect();
        self.write(writes)
    }

    fn for_each(&self, now: Timestamp, f: &mut dyn FnMut(&K, &V)) -> Result<(), LayerError> {
        if self.pool.is_cluster() {
            // SCAN walks one node; a cluster-wide listing is not offered.
            return Err(LayerError::Unsupported);
        }
        let mut pattern = Vec::with_capacity(self.prefix.len() + 1);
        for &b in &self.prefix {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                pattern.push(b'\\');
            }
            pattern.push(b);
        }
        pattern.push(b'*');
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self.call(|conn| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(conn.like())
            })?;
            let entries = self.read(keys.iter().map(|key| Ok(key.clone())).collect(), now);
            for (key, entry) in keys.iter().zip(entries) {
                match entry {
                    // A key that does not decode is skipped: it holds no value of ours.
                    Ok(Some(entry)) => {
                        if let Some(key) = K::read_key(&key[self.prefix.len()..]) {
                            f(&key, &entry.value);
                        }
                    }
                    Ok(None) => {} // vanished since the SCAN, or a tombstone
                    Err(LayerError::Other(source))
                        if matches!(
                            source.downcast_ref::<RedisLayerError>(),
                            Some(RedisLayerError::Decode { .. })
                        ) => {}
                    // The server failed: the listing is incomplete, and a filter rebuilt from
                    // it would hide the keys it missed.
                    Err(error) => return Err(error),
                }
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn counters(&self) -> LayerCounters {
        LayerCounters {
            health: self.breaker.health(),
            circuit_opened: self.breaker.times_opened(),
            ..LayerCounters::default()
        }
    }

    fn wants_negative_filter(&self) -> bool {
        self.sole_writer
    }

    fn close(&self) {
        self.pool.clear();
    }
}

/// The wall clock in Unix milliseconds (expiries are stored in wall-clock time, which every
/// process sharing the server agrees on, to the precision of their clocks' synchronization).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A random identity for a layer instance: the standard library's randomly keyed hasher over
/// the process id and the time (no `rand` dependency for 64 bits).
fn new_origin() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}
