//! A minimal D-Bus client: enough to ask systemd for transient units and wait for
//! their jobs. The system bus over its unix socket (or systemd's private socket when
//! no bus daemon runs), EXTERNAL auth, method calls with the marshalling they need,
//! and the JobRemoved signal. Blocking and single-threaded, as the runtime is; nothing
//! here runs unless the systemd cgroup driver is asked for.
//!
//! Wire format (D-Bus specification, "Message Protocol"): little-endian messages, a
//! 16-byte fixed header, the header fields `a(yv)`, padding to 8, then the body. Every
//! value is aligned to its type's alignment, counted from the start of the message;
//! the body starts 8-aligned, so it is marshalled on its own from offset 0.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The system bus, as the specification names it when $DBUS_SYSTEM_BUS_ADDRESS is unset.
pub const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
/// systemd's own peer-to-peer socket (root only; used by systemctl when the bus is down).
pub const SYSTEMD_PRIVATE: &str = "/run/systemd/private";
/// How long a call or a job may take before the runtime gives up (runc: 30 s).
pub const TIMEOUT: Duration = Duration::from_secs(30);

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

/// A D-Bus value, typed as on the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    Path(String),
    Sig(String),
    /// Element signature and elements (the signature types an empty array).
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn variant(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }

    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Double(_) => "d".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => format!("({})", fields.iter().map(Value::signature).collect::<String>()),
            Value::Variant(_) => "v".into(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            Value::Variant(v) => v.as_str(),
            _ => None,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Byte(b) => out.push(*b),
            Value::Bool(b) => put_u32(out, *b as u32),
            Value::I32(v) => put_u32(out, *v as u32),
            Value::U32(v) => put_u32(out, *v),
            Value::I64(v) => put_u64(out, *v as u64),
            Value::U64(v) => put_u64(out, *v),
            Value::Double(v) => put_u64(out, v.to_bits()),
            Value::Str(s) | Value::Path(s) => {
                put_u32(out, s.len() as u32);
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            Value::Sig(s) => {
                out.push(s.len() as u8);
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            Value::Array(elem, items) => {
                put_u32(out, 0);
                let len_at = out.len() - 4;
                pad(out, align_of(elem.as_bytes()[0]));
                let start = out.len();
                for item in items {
                    pad(out, align_of(item.signature().as_bytes()[0]));
                    item.write(out);
                }
                let len = (out.len() - start) as u32;
                out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                pad(out, 8);
                for f in fields {
                    pad(out, align_of(f.signature().as_bytes()[0]));
                    f.write(out);
                }
            }
            Value::Variant(v) => {
                Value::Sig(v.signature()).write(out);
                pad(out, align_of(v.signature().as_bytes()[0]));
                v.write(out);
            }
        }
    }
}

fn align_of(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

fn pad(out: &mut Vec<u8>, align: usize) {
    while !out.len().is_multiple_of(align) {
        out.push(0);
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    pad(out, 4);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    pad(out, 8);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Marshals `args` as a message body (from offset 0, which the header keeps 8-aligned).
pub fn marshal(args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in args {
        pad(&mut out, align_of(a.signature().as_bytes()[0]));
        a.write(&mut out);
    }
    out
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("D-Bus: {}", what.into()))
}

/// Reads values of a given signature from a little-endian buffer.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn align(&mut self, n: usize) {
        self.pos = self.pos.div_ceil(n) * n;
    }

    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or_else(|| bad("message truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> io::Result<u32> {
        self.align(4);
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> io::Result<u64> {
        self.align(8);
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn text(&mut self, len: usize) -> io::Result<String> {
        let s = String::from_utf8(self.take(len)?.to_vec()).map_err(|_| bad("string is not UTF-8"))?;
        self.take(1)?;
        Ok(s)
    }

    /// All values of the signature `sig`, in order.
    fn values(&mut self, sig: &str) -> io::Result<Vec<Value>> {
        let sig = sig.as_bytes();
        let mut i = 0;
        let mut out = Vec::new();
        while i < sig.len() {
            out.push(self.value(sig, &mut i)?);
        }
        Ok(out)
    }

    /// One value of the complete type starting at `sig[*i]`; moves `i` past it.
    fn value(&mut self, sig: &[u8], i: &mut usize) -> io::Result<Value> {
        let code = *sig.get(*i).ok_or_else(|| bad("signature ends early"))?;
        *i += 1;
        Ok(match code {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => Value::Bool(self.u32()? != 0),
            b'n' | b'q' => {
                self.align(2);
                let b = self.take(2)?;
                Value::U32(u16::from_le_bytes([b[0], b[1]]) as u32)
            }
            b'i' => Value::I32(self.u32()? as i32),
            b'u' | b'h' => Value::U32(self.u32()?),
            b'x' => Value::I64(self.u64()? as i64),
            b't' => Value::U64(self.u64()?),
            b'd' => Value::Double(f64::from_bits(self.u64()?)),
            b's' | b'o' => {
                let len = self.u32()? as usize;
                let s = self.text(len)?;
                if code == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            b'g' => {
                let len = self.take(1)?[0] as usize;
                Value::Sig(self.text(len)?)
            }
            b'v' => {
                let len = self.take(1)?[0] as usize;
                let inner = self.text(len)?;
                let mut j = 0;
                let v = self.value(inner.as_bytes(), &mut j)?;
                Value::variant(v)
            }
            b'a' => {
                let len = self.u32()? as usize;
                let elem_start = *i;
                let elem_code = *sig.get(elem_start).ok_or_else(|| bad("array without element type"))?;
                self.align(align_of(elem_code));
                let end = self.pos + len;
                let mut items = Vec::new();
                let mut j = elem_start;
                if len == 0 {
                    skip_type(sig, &mut j)?;
                }
                while self.pos < end {
                    j = elem_start;
                    items.push(self.value(sig, &mut j)?);
                }
                *i = j;
                Value::Array(String::from_utf8_lossy(&sig[elem_start..j]).into_owned(), items)
            }
            b'(' | b'{' => {
                self.align(8);
                let close = if code == b'(' { b')' } else { b'}' };
                let mut fields = Vec::new();
                while sig.get(*i) != Some(&close) {
                    fields.push(self.value(sig, i)?);
                }
                *i += 1;
                Value::Struct(fields)
            }
            c => return Err(bad(format!("unsupported type code {:?}", c as char))),
        })
    }
}

/// Moves `i` past one complete type in `sig`.
fn skip_type(sig: &[u8], i: &mut usize) -> io::Result<()> {
    let code = *sig.get(*i).ok_or_else(|| bad("signature ends early"))?;
    *i += 1;
    match code {
        b'a' => skip_type(sig, i),
        b'(' | b'{' => {
            let close = if code == b'(' { b')' } else { b'}' };
            while sig.get(*i) != Some(&close) {
                skip_type(sig, i)?;
            }
            *i += 1;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A whole message: the fixed header, header `fields` (code, value; the body's
/// signature is added), padding, the body.
fn encode(kind: u8, serial: u32, mut fields: Vec<(u8, Value)>, args: &[Value]) -> Vec<u8> {
    let body = marshal(args);
    if !args.is_empty() {
        fields.push((8, Value::Sig(args.iter().map(Value::signature).collect())));
    }
    let fields =
        fields.into_iter().map(|(code, v)| Value::Struct(vec![Value::Byte(code), Value::variant(v)])).collect();
    let mut msg = vec![b'l', kind, 0, 1];
    msg.extend_from_slice(&(body.len() as u32).to_le_bytes());
    msg.extend_from_slice(&serial.to_le_bytes());
    Value::Array("(yv)".into(), fields).write(&mut msg);
    pad(&mut msg, 8);
    msg.extend_from_slice(&body);
    msg
}

/// A received message: its kind, who it answers, what it is, and its body.
#[derive(Debug, Default)]
pub struct Message {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub body: Vec<Value>,
}

/// An error reply from the peer: its D-Bus name ("org.freedesktop.systemd1.UnitExists")
/// and message.
#[derive(Debug)]
pub struct RemoteError {
    pub name: String,
    pub message: String,
}

#[derive(Debug)]
pub enum CallError {
    Io(io::Error),
    Remote(RemoteError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Io(e) => write!(f, "{e}"),
            CallError::Remote(e) => write!(f, "{} ({})", e.message, e.name),
        }
    }
}

impl From<io::Error> for CallError {
    fn from(e: io::Error) -> Self {
        CallError::Io(e)
    }
}

impl CallError {
    pub fn is(&self, name: &str) -> bool {
        matches!(self, CallError::Remote(e) if e.name == name)
    }
}

/// One connection, to the bus daemon or straight to systemd.
pub struct Connection {
    stream: BufReader<UnixStream>,
    serial: u32,
    /// Signals that arrived while a reply was awaited.
    queued: Vec<Message>,
    /// True on the bus (messages need a destination; signals need a match rule).
    pub bus: bool,
}

impl Connection {
    /// The system bus ($DBUS_SYSTEM_BUS_ADDRESS's unix:path=, else its well-known
    /// socket), or systemd's private socket when no bus daemon listens.
    pub fn system() -> io::Result<Connection> {
        let bus_path = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .ok()
            .and_then(|a| {
                a.split(';')
                    .find_map(|a| a.strip_prefix("unix:path=").map(|p| p.split(',').next().unwrap_or(p).to_string()))
            })
            .unwrap_or_else(|| SYSTEM_BUS.to_string());
        match UnixStream::connect(&bus_path) {
            Ok(s) => Connection::open(s, true),
            Err(bus_err) => match UnixStream::connect(SYSTEMD_PRIVATE) {
                Ok(s) => Connection::open(s, false),
                Err(_) => {
                    Err(io::Error::new(bus_err.kind(), format!("connect to the system bus {bus_path}: {bus_err}")))
                }
            },
        }
    }

    fn open(stream: UnixStream, bus: bool) -> io::Result<Connection> {
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let mut c = Connection { stream: BufReader::new(stream), serial: 0, queued: Vec::new(), bus };
        c.auth()?;
        if bus {
            c.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", &[])
                .map_err(|e| bad(format!("Hello: {e}")))?;
        }
        Ok(c)
    }

    /// SASL EXTERNAL: the kernel vouches for our uid (SO_PEERCRED on the other side).
    fn auth(&mut self) -> io::Result<()> {
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() }.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.stream.get_mut().write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let mut line = String::new();
        self.stream.read_line(&mut line)?;
        if !line.starts_with("OK ") {
            return Err(bad(format!("authentication refused: {}", line.trim())));
        }
        self.stream.get_mut().write_all(b"BEGIN\r\n")
    }

    /// Calls `member` and returns the reply's body; an error reply comes back as
    /// [`CallError::Remote`]. Signals read meanwhile are kept for [`Self::wait_signal`].
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Value],
    ) -> Result<Vec<Value>, CallError> {
        let serial = self.send(dest, path, iface, member, args)?;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let m = self.read(deadline)?;
            match m.kind {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m.body),
                ERROR if m.reply_serial == Some(serial) => {
                    let message = m.body.first().and_then(Value::as_str).unwrap_or_default().to_string();
                    return Err(CallError::Remote(RemoteError { name: m.error_name.unwrap_or_default(), message }));
                }
                SIGNAL => self.queued.push(m),
                _ => {}
            }
        }
    }

    /// Waits for a signal `pred` accepts (queued or new) and returns its body.
    pub fn wait_signal(&mut self, pred: impl Fn(&Message) -> bool) -> io::Result<Vec<Value>> {
        if let Some(i) = self.queued.iter().position(&pred) {
            return Ok(self.queued.remove(i).body);
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let m = self.read(deadline)?;
            if m.kind == SIGNAL && pred(&m) {
                return Ok(m.body);
            }
        }
    }

    fn send(&mut self, dest: &str, path: &str, iface: &str, member: &str, args: &[Value]) -> io::Result<u32> {
        self.serial += 1;
        let mut fields = vec![(1, Value::Path(path.into())), (2, Value::str(iface)), (3, Value::str(member))];
        if self.bus {
            fields.push((6, Value::str(dest)));
        }
        let msg = encode(METHOD_CALL, self.serial, fields, args);
        self.stream.get_mut().write_all(&msg)?;
        Ok(self.serial)
    }

    fn read(&mut self, deadline: Instant) -> io::Result<Message> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "D-Bus: no answer from systemd"));
        }
        self.stream.get_ref().set_read_timeout(Some(left))?;
        let mut fixed = [0u8; 16];
        self.stream.read_exact(&mut fixed)?;
        if fixed[0] != b'l' {
            return Err(bad("big-endian messages are not supported"));
        }
        let body_len = u32::from_le_bytes(fixed[4..8].try_into().expect("4 bytes")) as usize;
        let fields_len = u32::from_le_bytes(fixed[12..16].try_into().expect("4 bytes")) as usize;
        if body_len > 1 << 27 || fields_len > 1 << 26 {
            return Err(bad("message too large"));
        }
        let header_len = (16 + fields_len).div_ceil(8) * 8;
        let mut buf = fixed.to_vec();
        buf.resize(header_len + body_len, 0);
        self.stream.read_exact(&mut buf[16..])?;
        let mut m = Message { kind: fixed[1], ..Message::default() };
        let mut sig = String::new();
        let mut r = Reader { buf: &buf[..16 + fields_len], pos: 12 };
        if let Some(Value::Array(_, fields)) = r.values("a(yv)")?.pop() {
            for f in fields {
                let Value::Struct(kv) = f else { continue };
                let (Some(Value::Byte(code)), Some(v)) = (kv.first(), kv.get(1)) else { continue };
                let text = v.as_str().map(str::to_string);
                match code {
                    1 => m.path = text,
                    2 => m.interface = text,
                    3 => m.member = text,
                    4 => m.error_name = text,
                    5 => {
                        if let Value::Variant(inner) = v {
                            if let Value::U32(s) = **inner {
                                m.reply_serial = Some(s);
                            }
                        }
                    }
                    8 => sig = text.unwrap_or_default(),
                    _ => {}
                }
            }
        }
        m.body = Reader { buf: &buf[header_len..], pos: 0 }.values(&sig)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_marshal_with_their_alignment_and_read_back() {
        let props = Value::Array(
            "(sv)".into(),
            vec![
                Value::Struct(vec![Value::str("Delegate"), Value::variant(Value::Bool(true))]),
                Value::Struct(vec![Value::str("MemoryMax"), Value::variant(Value::U64(1 << 26))]),
                Value::Struct(vec![Value::str("PIDs"), Value::variant(Value::Array("u".into(), vec![Value::U32(42)]))]),
                Value::Struct(vec![
                    Value::str("AllowedCPUs"),
                    Value::variant(Value::Array("y".into(), vec![Value::Byte(1)])),
                ]),
            ],
        );
        let args =
            vec![Value::str("strata-a.scope"), Value::str("replace"), props, Value::Array("(sa(sv))".into(), vec![])];
        let body = marshal(&args);
        // The string "strata-a.scope": length 14, bytes, NUL; then "replace" 4-aligned at 20.
        assert_eq!(&body[..4], &14u32.to_le_bytes());
        assert_eq!(&body[20..24], &7u32.to_le_bytes());
        let sig: String = args.iter().map(Value::signature).collect();
        assert_eq!(sig, "ssa(sv)a(sa(sv))");
        let back = Reader { buf: &body, pos: 0 }.values(&sig).unwrap();
        assert_eq!(back, args);
    }

    #[test]
    fn replies_errors_and_signals_are_told_apart() {
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let mut c = Connection { stream: BufReader::new(ours), serial: 0, queued: Vec::new(), bus: true };
        let job = Value::Path("/org/freedesktop/systemd1/job/7".into());
        let removed = [Value::U32(7), job.clone(), Value::str("strata-a.scope"), Value::str("done")];
        let signal = encode(
            SIGNAL,
            9,
            vec![(1, Value::Path("/org/freedesktop/systemd1".into())), (3, Value::str("JobRemoved"))],
            &removed,
        );
        // Serial 1's reply comes after a signal and another call's reply.
        peer.write_all(&signal).unwrap();
        peer.write_all(&encode(METHOD_RETURN, 10, vec![(5, Value::U32(99))], &[Value::str("not ours")])).unwrap();
        peer.write_all(&encode(METHOD_RETURN, 11, vec![(5, Value::U32(1))], std::slice::from_ref(&job))).unwrap();
        let reply = c.call("org.freedesktop.systemd1", "/", "i", "StartTransientUnit", &[Value::str("x")]).unwrap();
        assert_eq!(reply, vec![job.clone()]);
        let body = c.wait_signal(|m| m.member.as_deref() == Some("JobRemoved") && m.body.get(1) == Some(&job)).unwrap();
        assert_eq!(body[3], Value::str("done"));
        let err = encode(
            ERROR,
            12,
            vec![(4, Value::str("org.freedesktop.systemd1.UnitExists")), (5, Value::U32(2))],
            &[Value::str("Unit strata-a.scope already exists.")],
        );
        peer.write_all(&err).unwrap();
        let e = c.call("org.freedesktop.systemd1", "/", "i", "StartTransientUnit", &[]).unwrap_err();
        assert!(e.is("org.freedesktop.systemd1.UnitExists"), "{e}");
        assert!(e.to_string().contains("already exists"));
        // What we sent parses as a method call with its destination and signature.
        let mut sent = vec![0u8; 256];
        let n = std::io::Read::read(&mut peer, &mut sent).unwrap();
        assert_eq!(&sent[..2], &[b'l', METHOD_CALL]);
        assert!(sent[..n].windows(24).any(|w| w == b"org.freedesktop.systemd1"));
    }

    #[test]
    fn an_empty_array_still_pads_to_its_element_alignment() {
        let body = marshal(&[Value::Byte(7), Value::Array("(sv)".into(), vec![])]);
        // y at 0, array length at 4, element padding to 8, no elements.
        assert_eq!(body, vec![7, 0, 0, 0, 0, 0, 0, 0]);
    }
}
