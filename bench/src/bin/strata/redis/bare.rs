//! A measuring instrument, not a client: `GET` and `MGET` round trips on a bare `TcpStream`,
//! read by the smallest RESP2 reader that handles the two reply shapes it asks for (a bulk
//! string, an array of bulk strings). It shows what a round trip costs on this machine below
//! any client library, so the `get_many(100)` row can be read against the floor it stands on.
//! It parses nothing else (no errors, no nesting, no RESP3): the layer uses redis-rs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A bare connection and the two commands it sends.
pub struct Floor {
    stream: std::cell::RefCell<TcpStream>,
    get: Vec<Vec<u8>>,
    mget: Vec<Vec<u8>>,
    buf: std::cell::RefCell<Vec<u8>>,
}

impl Floor {
    /// Connects to the local server; prepares 64 `GET`s and 64 `MGET`s of 100 keys named by
    /// `name`, packed by redis-rs (the same bytes the client would send).
    pub fn connect(port: u16, name: impl Fn(u64) -> String) -> Result<Floor, String> {
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let get = (0..64)
            .map(|i| redis::cmd("GET").arg(name(i)).get_packed_command())
            .collect();
        let mget = (0..64)
            .map(|i| {
                let mut cmd = redis::cmd("MGET");
                (0..100).for_each(|j| {
                    cmd.arg(name(i * 100 + j));
                });
                cmd.get_packed_command()
            })
            .collect();
        Ok(Floor {
            stream: std::cell::RefCell::new(stream),
            get,
            mget,
            buf: std::cell::RefCell::new(vec![0; 1 << 16]),
        })
    }

    /// One round trip: sends `command`, reads until one whole reply is in; returns its length.
    fn round_trip(&self, command: &[u8]) -> usize {
        let mut stream = self.stream.borrow_mut();
        let mut buf = self.buf.borrow_mut();
        stream.write_all(command).expect("bare socket write");
        let mut have = 0;
        loop {
            let n = stream.read(&mut buf[have..]).expect("bare socket read");
            assert!(n > 0, "the server closed the bare socket");
            have += n;
            if let Some((values, used)) = parse_reply(&buf[..have]) {
                assert_eq!(used, have, "one reply per command");
                return std::hint::black_box(values).len();
            }
        }
    }

    /// A bare `GET` and a bare `MGET` of 100 keys in alternating slices: (GET, MGET) ns each.
    pub fn paired(&self, duration: Duration) -> (f64, f64) {
        super::paired(
            duration,
            |i| {
                self.round_trip(&self.get[i as usize % 64]);
            },
            |i| {
                self.round_trip(&self.mget[i as usize % 64]);
            },
        )
    }

    /// The bytes of one `MGET` reply, for timing parsers without I/O.
    pub fn mget_reply(&self) -> Result<Vec<u8>, String> {
        let mut stream = self.stream.borrow_mut();
        stream.write_all(&self.mget[0]).map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 1 << 16];
        while parse_reply(&reply).is_none() {
            let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server closed the bare socket".into());
            }
            reply.extend_from_slice(&chunk[..n]);
        }
        Ok(reply)
    }
}

/// Parses one reply at the start of `buf`: a bulk string (one value) or an array of bulk
/// strings. `None` while the reply is incomplete; otherwise the values (a nil is `None`) and
/// the bytes used.
pub fn parse_reply(buf: &[u8]) -> Option<(Vec<Option<Vec<u8>>>, usize)> {
    match buf.first()? {
        b'$' => {
            let (value, used) = bulk(buf, 0)?;
            Some((vec![value], used))
        }
        b'*' => {
            let (count, mut at) = header(buf, 0)?;
            let mut values = Vec::with_capacity(count.max(0) as usize);
            for _ in 0..count {
                let (value, next) = bulk(buf, at)?;
                values.push(value);
                at = next;
            }
            Some((values, at))
        }
        _ => panic!("the bare reader only reads bulk strings and arrays of them"),
    }
}

/// The number after a type byte at `at`, and the index after its `\r\n`.
fn header(buf: &[u8], at: usize) -> Option<(i64, usize)> {
    let end = at + buf.get(at..)?.iter().position(|&b| b == b'\r')?;
    buf.get(end + 1)?;
    let digits = std::str::from_utf8(&buf[at + 1..end]).ok()?;
    Some((digits.parse().ok()?, end + 2))
}

/// A bulk string at `at` (nil for a negative length), and the index after it.
fn bulk(buf: &[u8], at: usize) -> Option<(Option<Vec<u8>>, usize)> {
    let (len, start) = header(buf, at)?;
    if len < 0 {
        return Some((None, start));
    }
    let end = start + len as usize;
    buf.get(end + 1)?;
    Some((Some(buf[start..end].to_vec()), end + 2))
}
