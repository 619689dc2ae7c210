//! What the layer stores under a key, and the scripts that write it: `WRITE` for sets and
//! deletes, `PROMOTE_INSERT` and `PROMOTE_FINISH` for promotions.
//!
//! # The record
//!
//! A Redis string: a 50-byte ASCII header, then the codec's bytes.
//!
//! ```text
//!   byte 0      kind      'V' a value, 'T' a tombstone (a delete, kept for `tombstone_ttl`);
//!                         a delete outside any cache sends 'D', stored as 'T' whatever is held;
//!                         'P' a promotion not yet validated (read as absent)
//!   byte 1      format    '1'
//!   bytes 2..18  origin   the writing layer instance, 16 lowercase hex digits
//!   bytes 18..34 version  the writing cache's version of the write, 16 lowercase hex digits
//!   bytes 34..50 expiry   Unix milliseconds, 16 lowercase hex digits ('f' * 16: none)
//!   bytes 50..   payload  the value's encoding (empty for a tombstone)
//! ```
//!
//! Everything a read needs is in the one string, so `get_many` is one `MGET`. Fixed-width
//! lowercase hex compares as numbers when compared as strings, which is how the script
//! compares versions (Lua 5.1 numbers are doubles and would lose 64-bit integers).
//!
//! # The write script (`WRITE`)
//!
//! One script writes values and tombstones, for one key or a batch (one slot's keys in a
//! cluster), in one script run on the server (no other command runs in between):
//!
//! - a key whose record comes from the **same origin with a higher version** keeps it (the
//!   `Layer` trait's "keep the higher version", and "delete unless a newer version is held":
//!   a tombstone carries the delete's version, so a slower, older write of this instance that
//!   arrives after the delete is refused);
//! - otherwise the record is stored (`SET ... PX ttl`): between instances, versions are not
//!   comparable, and the order in which writes reach Redis decides;
//! - then one `PUBLISH` on the invalidation channel names the origin and every key written, so
//!   other instances drop their local copies (see `sync.rs`).
//!
//! A key holding something that is not a string (another program's list under our prefix) is
//! overwritten: `GET` is called with `pcall` so the batch does not fail on it.

/// Header length in bytes.
pub(crate) const HEADER: usize = 50;
/// A value record.
pub(crate) const VALUE: u8 = b'V';
/// A tombstone record.
pub(crate) const TOMBSTONE: u8 = b'T';
/// A tombstone that replaces whatever the key holds (a delete outside any cache, with an
/// unconditional ticket); the script stores it as a plain tombstone of version 0.
pub(crate) const FORCED_TOMBSTONE: u8 = b'D';
/// A promotion's record between its insert and its ticket check: readers treat it as absent,
/// writes overwrite it.
pub(crate) const PENDING: u8 = b'P';
/// The longest TTL sent as `PX` (100 years): Redis refuses an expiry past `i64` milliseconds,
/// and a longer TTL is written as no expiry.
pub(crate) const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
const FORMAT: u8 = b'1';
/// The expiry field of a record that never expires.
pub(crate) const NO_EXPIRY: u64 = u64::MAX;

/// `KEYS`: the keys written. `ARGV[1]`: the invalidation channel ('' for none). Then, per key
/// `i` (1-based): `ARGV[2i]` its record, `ARGV[2i+1]` its time to live in ms ('0': none).
/// Returns one integer per key: 1 written, 0 kept a newer record of the same origin.
pub(crate) const WRITE: &str = r#"
local written = {}
local changed = {}
for i, key in ipairs(KEYS) do
  local record = ARGV[2 * i]
  local forced = string.sub(record, 1, 1) == 'D'
  if forced then record = 'T' .. string.sub(record, 2) end
  local held = redis.pcall('GET', key)
  if type(held) ~= 'string' then held = nil end
  if not forced and held and #held >= 34 and string.sub(held, 1, 1) ~= 'P'
      and string.sub(held, 3, 18) == string.sub(record, 3, 18)
      and string.sub(held, 19, 34) > string.sub(record, 19, 34) then
    written[i] = 0
  else
    local ttl = ARGV[2 * i + 1]
    if ttl == '0' then
      redis.call('SET', key, record)
    else
      redis.call('SET', key, record, 'PX', ttl)
    end
    written[i] = 1
    changed[#changed + 1] = string.format('%08x', #key) .. key
  end
end
if ARGV[1] ~= '' and #changed > 0 then
  redis.call('PUBLISH', ARGV[1], string.sub(ARGV[2], 3, 18) .. table.concat(changed))
end
return written
"#;

/// Promotions, phase 1. `KEYS`: the keys. Per key `i`: `ARGV[2i-1]` its pending record,
/// `ARGV[2i]` its time to live in ms ('0': none). Inserts each record only where the key holds
/// nothing at all (a tombstone is something: a recent delete wins). One integer per key: 1
/// inserted, 0 not.
pub(crate) const PROMOTE_INSERT: &str = r#"
local inserted = {}
for i, key in ipairs(KEYS) do
  local ttl = ARGV[2 * i]
  local done
  if ttl == '0' then
    done = redis.call('SET', key, ARGV[2 * i - 1], 'NX')
  else
    done = redis.call('SET', key, ARGV[2 * i - 1], 'NX', 'PX', ttl)
  end
  inserted[i] = done and 1 or 0
end
return inserted
"#;

/// Promotions, phase 2. `KEYS`: the keys. `ARGV[1]`: the invalidation channel ('' for none).
/// Per key `i`: `ARGV[2i]` the pending record inserted, `ARGV[2i+1]` '1' to publish it, '0' to
/// remove it. Acts only where the key still holds exactly that record (a write may have
/// replaced it meanwhile). One integer per key: 1 published, 0 not.
pub(crate) const PROMOTE_FINISH: &str = r#"
local published = {}
local changed = {}
for i, key in ipairs(KEYS) do
  local pending = ARGV[2 * i]
  published[i] = 0
  if redis.call('GET', key) == pending then
    if ARGV[2 * i + 1] == '1' then
      redis.call('SET', key, 'V' .. string.sub(pending, 2), 'KEEPTTL')
      published[i] = 1
      changed[#changed + 1] = string.format('%08x', #key) .. key
    else
      redis.call('DEL', key)
    end
  end
end
if ARGV[1] ~= '' and #changed > 0 then
  redis.call('PUBLISH', ARGV[1], string.sub(ARGV[2], 3, 18) .. table.concat(changed))
end
return published
"#;

/// A record read back, borrowed from the bytes Redis returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) kind: u8,
    pub(crate) origin: u64,
    pub(crate) version: u64,
    /// Unix milliseconds, [`NO_EXPIRY`] for none.
    pub(crate) expiry: u64,
    pub(crate) payload: &'a [u8],
}

/// Appends a record header to `out` (the payload follows).
pub(crate) fn write_header(out: &mut Vec<u8>, kind: u8, origin: u64, version: u64, expiry: u64) {
    out.reserve(HEADER);
    out.push(kind);
    out.push(FORMAT);
    for field in [origin, version, expiry] {
        push_hex_u64(out, field);
    }
}

/// Appends `value` as sixteen lowercase hex digits (what [`hex_u64`] reads back). By hand for
/// the reason `hex_u64` is: `write!` with a format spec cost about 1 600 instructions a header.
pub(crate) fn push_hex_u64(out: &mut Vec<u8>, value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.extend(
        (0..16)
            .rev()
            .map(|nibble| DIGITS[(value >> (nibble * 4)) as usize & 0xf]),
    );
}

/// Parses a record; `None` for bytes this layer did not write.
pub(crate) fn read_record(bytes: &[u8]) -> Option<Record<'_>> {
    if bytes.len() < HEADER
        || bytes[1] != FORMAT
        || !matches!(bytes[0], VALUE | TOMBSTONE | PENDING)
    {
        return None;
    }
    Some(Record {
        kind: bytes[0],
        origin: hex_u64(&bytes[2..18])?,
        version: hex_u64(&bytes[18..34])?,
        expiry: hex_u64(&bytes[34..50])?,
        payload: &bytes[HEADER..],
    })
}

/// Sixteen lowercase hex digits as a `u64`; `None` for anything else (the script compares
/// versions as strings, so uppercase digits are not ours). A loop rather than
/// `from_str_radix`: it reads each record of a batch, and the library routine (UTF-8
/// validation, then a generic radix parse) cost about 1 200 instructions per record.
fn hex_u64(digits: &[u8]) -> Option<u64> {
    if digits.len() != 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &digit| {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        Some(value << 4 | u64::from(nibble))
    })
}

/// Splits an invalidation message into its origin and the keys it names; `None` for a message
/// this layer did not publish.
pub(crate) fn read_message(bytes: &[u8]) -> Option<(u64, Vec<&[u8]>)> {
    let origin = hex_u64(bytes.get(..16)?)?;
    let mut keys = Vec::new();
    let mut rest = &bytes[16..];
    while !rest.is_empty() {
        let len = usize::from_str_radix(std::str::from_utf8(rest.get(..8)?).ok()?, 16).ok()?;
        let end = len.checked_add(8)?;
        keys.push(rest.get(8..end)?);
        rest = &rest[end..];
    }
    Some((origin, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        write_header(&mut out, VALUE, 0xabc, 7, NO_EXPIRY);
        assert_eq!(out.len(), HEADER);
        out.extend_from_slice(b"payload");
        let record = read_record(&out).unwrap();
        assert_eq!(
            record,
            Record {
                kind: VALUE,
                origin: 0xabc,
                version: 7,
                expiry: NO_EXPIRY,
                payload: b"payload"
            }
        );
    }

    #[test]
    fn garbage_is_not_a_record() {
        assert_eq!(read_record(b"hello"), None);
        assert_eq!(read_record(&[b'V'; 60]), None);
        let mut out = Vec::new();
        write_header(&mut out, VALUE, 1, 2, 3);
        out[5] = b'G';
        assert_eq!(read_record(&out), None);
        out[5] = b'A'; // uppercase hex is not ours
        assert_eq!(read_record(&out), None);
    }

    #[test]
    fn hex_fields_round_trip() {
        for value in [0, 1, 0xabc, u64::MAX - 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            let mut out = Vec::new();
            push_hex_u64(&mut out, value);
            assert_eq!(out, format!("{value:016x}").into_bytes());
            assert_eq!(hex_u64(&out), Some(value));
        }
        assert_eq!(hex_u64(b"000000000000000"), None);
        assert_eq!(hex_u64(b"000000000000000g"), None);
    }

    #[test]
    fn messages_split_into_keys() {
        let message = b"000000000000000a00000003abc00000000".to_vec();
        let (origin, keys) = read_message(&message).unwrap();
        assert_eq!(origin, 10);
        assert_eq!(keys, vec![&b"abc"[..], &b""[..]]);
        assert_eq!(read_message(b"000000000000000a0000000fab"), None);
    }
}
