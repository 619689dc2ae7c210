//! Throwaway Redis servers for tests, examples and benchmarks: `redis-server` started on
//! 127.0.0.1 on a free port with persistence off, stopped (and its files removed) when the
//! handle drops, also when a test panics. [`RedisCluster`] starts three masters and joins them
//! with `redis-cli --cluster create`.
//!
//! Nothing here is needed to use the layer against a real deployment.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why a throwaway server could not be started.
#[derive(Debug, Error)]
pub enum ServerError {
    /// `redis-server` (or `redis-cli`) is not installed.
    #[error(
        "{0} was not found on PATH: install it (Debian: apt-get install -y redis-server), or run \
         scripts/test.sh, which installs it"
    )]
    NotInstalled(&'static str),
    /// The server did not come up.
    #[error("redis-server on port {port} did not start: {reason}")]
    Start {
        /// The port tried.
        port: u16,
        /// Why.
        reason: String,
    },
    /// An I/O error around the process.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One `redis-server` process on 127.0.0.1. Stopped on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port.
    pub fn start() -> Result<RedisServer, ServerError> {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `["--cluster-enabled", "yes"]`).
    pub fn start_with(extra: &[&str]) -> Result<RedisServer, ServerError> {
        let port = free_port()?;
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "strata-redis-{}-{port}-{}",
            std::process::id(),
            // Relaxed: only uniqueness of the number matters, which the RMW gives.
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let mut server = RedisServer {
            port,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), ServerError> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(not_installed("redis-server"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), ServerError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    return Err(ServerError::Start {
                        port: self.port,
                        reason: format!("exited with {status}"),
                    });
                }
            }
            if ping(self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ServerError::Start {
                    port: self.port,
                    reason: "no PONG within 10 s".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL: the server dies at once, its data with it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill)), empty.
    pub fn restart(&mut self) -> Result<(), ServerError> {
        self.kill();
        self.spawn()
    }

    /// SIGSTOP: the server stops answering, connections stay open.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT, after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(signal)
                .arg(child.id().to_string())
                .status();
        }
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> Result<String, ServerError> {
        cli(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-master Redis Cluster on 127.0.0.1. Stopped on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three masters (no replicas) and creates the cluster; returns once every node
    /// reports `cluster_state:ok`.
    pub fn start() -> Result<RedisCluster, ServerError> {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                "2000",
            ])?);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        cli(nodes[0].port(), &args)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            loop {
                if node.cli(&["cluster", "info"])?.contains("cluster_state:ok") {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(ServerError::Start {
                        port: node.port(),
                        reason: "cluster_state not ok within 20 s".into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(RedisCluster { nodes })
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// A failure to run `program`: not installed, or another I/O error.
fn not_installed(program: &'static str) -> impl Fn(std::io::Error) -> ServerError {
    move |e| match e.kind() {
        std::io::ErrorKind::NotFound => ServerError::NotInstalled(program),
        _ => ServerError::Io(e),
    }
}

fn cli(port: u16, args: &[&str]) -> Result<String, ServerError> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(not_installed("redis-cli"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr))
}

/// A port free now whose cluster bus port (+10000) is free too.
fn free_port() -> Result<u16, ServerError> {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err(ServerError::Start {
        port: 0,
        reason: "no free port pair found".into(),
    })
}

fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
