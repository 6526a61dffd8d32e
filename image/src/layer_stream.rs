//! The decompressed, verified stream of a layer, produced on a thread of its
//! own: reading the blob, its digest, decompression and the diff_id digest run
//! beside the caller, who only parses the tar and writes files. Chunks travel
//! over a bounded channel (memory stays flat in the layer's size), and the
//! next layer starts decompressing while the current one is applied.
//!
//! Errors are reported exactly as a single-threaded reader would: a read error
//! reaches the caller's `Read` at the byte where it happened, a diff_id
//! mismatch when the stream is drained, and a corrupt stored blob (its digest
//! checked to the last byte even when the caller stopped early) wins over both.

use crate::digest::{Check, Verifier};
use crate::error::{Error, Result};
use crate::sources::LayerBlob;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

/// Bytes per chunk handed over, and how many chunks a layer may be decoded
/// ahead of its application: 8 x 128 KiB per layer in flight.
const CHUNK: usize = 128 * 1024;
const AHEAD: usize = 8;
/// Layers being decoded at once: the one applied and the next.
const LAYERS_IN_FLIGHT: usize = 2;

enum Msg {
    /// Decompressed bytes, and the stored bytes read to produce them.
    Data(Vec<u8>, u64),
    /// The error the decompressed stream returned here; nothing follows.
    Failed(io::Error),
}

/// What the decoding thread found out beside the stream it sent.
struct Verdict {
    /// The decoder could not even start (bad media type, unreadable magic).
    setup: Option<Error>,
    /// The stored blob's size and digest, checked to its end.
    blob: Result<u64>,
}

/// A started layer: its stream, or the error opening its blob (reported
/// when that layer's turn comes, so earlier layers' errors come first).
enum Started<'s> {
    Open(Error),
    Running { rx: Receiver<Msg>, recycle: SyncSender<Vec<u8>>, handle: ScopedJoinHandle<'s, Verdict> },
}

/// Calls `f` with each layer's decompressed, verified tar, in order; layer
/// `i + 1` is decoded while `f` applies layer `i`. `on_bytes` is told the
/// stored bytes read (on the caller's thread, as `f` consumes them).
pub fn each_layer(
    layers: &[LayerBlob],
    on_bytes: Option<&dyn Fn(u64)>,
    mut f: impl FnMut(usize, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|s| {
        let mut started: VecDeque<Started> = VecDeque::new();
        let mut next = 0;
        for i in 0..layers.len() {
            while next < layers.len() && started.len() < LAYERS_IN_FLIGHT {
                started.push_back(start(s, &layers[next]));
                next += 1;
            }
            let layer = started.pop_front().expect("started above");
            finish(&layers[i], layer, on_bytes, |r| f(i, r))?;
        }
        Ok(())
    })
}

/// One layer's stream to `f`, decoded on a thread beside it.
pub fn with_layer<T>(
    layer: &LayerBlob,
    on_bytes: Option<&dyn Fn(u64)>,
    f: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<T> {
    std::thread::scope(|s| finish(layer, start(s, layer), on_bytes, f))
}

fn start<'s>(s: &'s Scope<'s, '_>, layer: &'s LayerBlob) -> Started<'s> {
    let file = match open_blob(layer) {
        Ok(file) => file,
        Err(e) => return Started::Open(e),
    };
    let (tx, rx) = sync_channel(AHEAD);
    let (recycle, spare) = sync_channel(AHEAD + 2);
    let handle = s.spawn(move || decode(layer, file, tx, spare));
    Started::Running { rx, recycle, handle }
}

fn open_blob(layer: &LayerBlob) -> Result<File> {
    let name = layer.name();
    File::open(&layer.path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound
            if !layer.urls.is_empty()
                || layer.media_type.contains("nondistributable")
                || layer.media_type.contains("foreign") =>
        {
            Error::Invalid(format!(
                "blob {name}: non-distributable layer not present locally (urls: {})",
                layer.urls.join(" ")
            ))
        }
        io::ErrorKind::NotFound => Error::MissingBlob { digest: name.to_string(), path: layer.path.clone() },
        _ => Error::io(&layer.path, e),
    })
}

/// The decoding thread: stored blob → digest → decompressor → diff_id digest
/// → chunks on `tx`. Stops sending when the receiver is gone (the caller
/// failed) but still reads the blob to its end to check its digest.
fn decode(layer: &LayerBlob, file: File, tx: SyncSender<Msg>, spare: Receiver<Vec<u8>>) -> Verdict {
    let name = layer.name().to_string();
    let check = match &layer.digest {
        Some(d) => Check::Blob { digest: d.clone(), size: layer.size },
        None => Check::Blob { digest: layer.diff_id.clone(), size: None },
    };
    let stored = Cell::new(0u64);
    let counted = Counting { inner: file, count: &stored };
    let mut outer = Verifier::new(BufReader::with_capacity(CHUNK, counted), check);
    let setup = (|| {
        let decoder = crate::image::decoder(&mut outer, &layer.media_type, &name)?;
        let mut inner = Verifier::new(decoder, Check::DiffId { layer: name.clone(), diff_id: layer.diff_id.clone() });
        loop {
            let mut buf = spare.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let (n, failed) = fill(&mut inner, &mut buf);
            buf.truncate(n);
            let mut sent = true;
            if n > 0 {
                sent = tx.send(Msg::Data(buf, stored.take())).is_ok();
            }
            match failed {
                Some(e) => {
                    let _ = tx.send(Msg::Failed(e));
                    break;
                }
                None if n == 0 || !sent => break,
                None => {}
            }
        }
        Ok(())
    })()
    .err();
    drop(tx);
    Verdict { setup, blob: outer.finish() }
}

/// Reads into `buf` until it is full, at EOF or at an error (returned beside
/// the bytes read before it, which are sent first).
fn fill(r: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

/// The caller's side of one layer: `f` reads the stream, the rest is drained
/// (the diff_id is checked at its end), then the blob's verdict is joined.
fn finish<T>(
    layer: &LayerBlob,
    started: Started,
    on_bytes: Option<&dyn Fn(u64)>,
    f: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<T> {
    let name = layer.name();
    let (rx, recycle, handle) = match started {
        Started::Open(e) => return Err(e),
        Started::Running { rx, recycle, handle } => (rx, recycle, handle),
    };
    let mut stream = Stream { rx, recycle, on_bytes, chunk: Vec::new(), pos: 0, done: false };
    let result = f(&mut stream).and_then(|out| stream.drain().map(|()| out));
    drop(stream); // the thread stops sending, and only verifies the blob
    let verdict = handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let inner = match verdict.setup {
        Some(e) => Err(e),
        None => result,
    };
    // A corrupt blob is named as such rather than as a decoding error
    // (docker-save layers have no blob digest: the diff_id stands for it).
    match (inner, verdict.blob) {
        (_, Err(e)) if layer.digest.is_some() => Err(e.in_layer(name)),
        (Err(e), _) => Err(e.in_layer(name)),
        (Ok(v), _) => Ok(v),
    }
}

/// The decompressed stream as the caller reads it.
struct Stream<'a> {
    rx: Receiver<Msg>,
    recycle: SyncSender<Vec<u8>>,
    on_bytes: Option<&'a dyn Fn(u64)>,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Stream<'_> {
    /// Reads to the end, so the diff_id check at the end of the stream runs.
    fn drain(&mut self) -> Result<()> {
        while !self.done {
            self.pos = self.chunk.len();
            self.next_chunk().map_err(|e| Error::io("<stream>", e))?;
        }
        Ok(())
    }

    /// Replaces the consumed chunk with the next one (empty at the end).
    fn next_chunk(&mut self) -> io::Result<()> {
        match self.rx.recv() {
            Ok(Msg::Data(data, stored)) => {
                let old = std::mem::replace(&mut self.chunk, data);
                let _ = self.recycle.try_send(old);
                self.pos = 0;
                if let Some(f) = self.on_bytes {
                    f(stored);
                }
                Ok(())
            }
            Ok(Msg::Failed(e)) => {
                self.done = true;
                Err(e)
            }
            Err(_) => {
                self.done = true;
                Ok(())
            }
        }
    }
}

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Counts the stored bytes read, for the progress shown by the caller.
struct Counting<'a, R> {
    inner: R,
    count: &'a Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}
