//! Connections: to one server or to a cluster, with timeouts, pooled.
//!
//! The pool is a stack of idle connections and a count of open ones behind a mutex, held only
//! to push, pop or count (never across a round trip): a call pops a connection (or opens one,
//! with the connect timeout, while fewer than `max_connections` are open; otherwise it waits
//! for one to come back, at most the connect timeout), uses it, and pushes it back if its
//! protocol state is clean. A connection that failed with
//! anything but a server's error reply (an I/O error, a timeout: a reply may still be on its
//! way) is dropped, so the next call reconnects; that is how the layer recovers by itself
//! after the server returns. Written here rather than with r2d2, which would add a thread pool
//! and a `PING` per checkout to what is a push and a pop.

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Client, Connection, ConnectionLike, ErrorKind, RedisError, RedisResult};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The timeouts every connection gets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) read: Duration,
    pub(crate) write: Duration,
}

/// Where connections come from.
pub(crate) enum Target {
    Single(Client),
    Cluster(ClusterClient),
}

/// One pooled connection.
pub(crate) enum Conn {
    Single(Connection),
    /// Boxed: a cluster connection is four times a plain one's size.
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    pub(crate) fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(conn) => conn,
            Conn::Cluster(conn) => &mut **conn,
        }
    }
}

impl Target {
    /// A new connection with the timeouts set.
    pub(crate) fn connect(&self, timeouts: Timeouts) -> RedisResult<Conn> {
        match self {
            Target::Single(client) => {
                let conn = client.get_connection_with_timeout(timeouts.connect)?;
                conn.set_read_timeout(Some(timeouts.read))?;
                conn.set_write_timeout(Some(timeouts.write))?;
                Ok(Conn::Single(conn))
            }
            Target::Cluster(client) => {
                let conn = client.get_connection()?;
                conn.set_read_timeout(Some(timeouts.read))?;
                conn.set_write_timeout(Some(timeouts.write))?;
                Ok(Conn::Cluster(Box::new(conn)))
            }
        }
    }
}

/// Idle connections, how many are open, and how to make more.
pub(crate) struct Pool {
    target: Target,
    timeouts: Timeouts,
    state: Mutex<PoolState>,
    /// Signalled when a connection is returned or closed (a slot may be free).
    freed: Condvar,
    max_idle: usize,
    max_open: usize,
}

struct PoolState {
    idle: Vec<Conn>,
    /// Connections open, idle or in use.
    open: usize,
}

impl Pool {
    pub(crate) fn new(
        target: Target,
        timeouts: Timeouts,
        max_idle: usize,
        max_open: usize,
    ) -> Self {
        let max_open = max_open.max(1);
        Pool {
            target,
            timeouts,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            max_idle: max_idle.clamp(1, max_open),
            max_open,
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding the lock leaves the state consistent (every update is one
        // statement), so a poisoned lock is used as it is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection, or a new one if fewer than `max_open` are open; otherwise waits up
    /// to the connect timeout for one to come back.
    fn take(&self) -> RedisResult<Conn> {
        let deadline = Instant::now() + self.timeouts.connect;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(conn);
            }
            if state.open < self.max_open {
                state.open += 1;
                drop(state);
                return self.target.connect(self.timeouts).inspect_err(|_| {
                    self.lock().open -= 1;
                    self.freed.notify_one();
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "all {} connections of the pool are in use (max_connections)",
                        self.max_open
                    ),
                )));
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Runs `op` on a pooled connection.
    pub(crate) fn with<T>(&self, op: impl FnOnce(&mut Conn) -> RedisResult<T>) -> RedisResult<T> {
        let mut conn = self.take()?;
        let result = op(&mut conn);
        let clean = match &result {
            Ok(_) => true,
            Err(error) => is_reply(error),
        };
        let mut state = self.lock();
        if clean && conn.like().is_open() && state.idle.len() < self.max_idle {
            state.idle.push(conn);
        } else {
            state.open -= 1;
        }
        drop(state);
        self.freed.notify_one();
        result
    }

    /// Closes every idle connection (after a failure, so that the next calls reconnect).
    pub(crate) fn clear(&self) {
        let mut state = self.lock();
        let closed = state.idle.len();
        state.idle.clear();
        state.open -= closed;
        drop(state);
        self.freed.notify_all();
    }
}

/// Whether the error is the server's reply to a command (the connection is still in step),
/// rather than a failure to reach it. A reply that did not parse is not: the stream may be out
/// of step, so the connection is dropped.
pub(crate) fn is_reply(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(_) | ErrorKind::UnexpectedReturnType
    ) && !error.is_timeout()
        && !error.is_io_error()
}
