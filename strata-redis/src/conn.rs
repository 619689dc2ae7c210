//! Connections: to one server or to a cluster, with timeouts, pooled.
//!
//! The pool is a stack of idle connections behind a mutex, held only to push or pop (never
//! across a round trip): a call pops a connection (or opens one, with the connect timeout),
//! uses it, and pushes it back if its protocol state is clean. A connection that failed with
//! anything but a server's error reply (an I/O error, a timeout: a reply may still be on its
//! way) is dropped, so the next call reconnects; that is how the layer recovers by itself
//! after the server returns. Written here rather than with r2d2, which would add a thread pool
//! and a `PING` per checkout to what is a push and a pop.

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Client, Connection, ConnectionLike, ErrorKind, RedisError, RedisResult};
use std::sync::Mutex;
use std::time::Duration;

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

/// Idle connections, and how to make more.
pub(crate) struct Pool {
    target: Target,
    timeouts: Timeouts,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

impl Pool {
    pub(crate) fn new(target: Target, timeouts: Timeouts, max_idle: usize) -> Self {
        Pool {
            target,
            timeouts,
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// Runs `op` on a pooled connection.
    pub(crate) fn with<T>(&self, op: impl FnOnce(&mut Conn) -> RedisResult<T>) -> RedisResult<T> {
        let popped = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match popped {
            Some(conn) => conn,
            None => self.target.connect(self.timeouts)?,
        };
        let result = op(&mut conn);
        let clean = match &result {
            Ok(_) => true,
            Err(error) => is_reply(error),
        };
        if clean && conn.like().is_open() {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
        result
    }

    /// Drops every idle connection (after a failure, so that the next calls reconnect).
    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
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
