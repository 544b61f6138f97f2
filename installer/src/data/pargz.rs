//! A gzip writer that compresses on every core, the way pigz does: the input is cut into chunks,
//! each chunk is deflated on its own by a worker thread and ends on a byte boundary (a sync flush,
//! the last one with the final block), and the chunks are written out in order as one gzip member
//! whose CRC-32 is combined from the chunks' CRCs. Any gzip reader (`gzip -d`, `tar xz`, flate2)
//! reads the result. Memory is bounded: at most `2 × workers + 1` chunks are in flight.
//!
//! Why not flate2's `GzEncoder`: it deflates on one core, which made a backup of incompressible
//! attachments slower than `tar czf` (tar and gzip already run in two processes there).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Big enough that the per-chunk cost (a fresh deflate state, a sync flush of a few bytes, no
/// back-references across the cut) is negligible; small enough that in-flight chunks stay a few MiB.
const CHUNK: usize = 1 << 20;

struct Job {
    seq: u64,
    data: Vec<u8>,
    last: bool,
}

struct Done {
    seq: u64,
    out: io::Result<Vec<u8>>,
    crc: crc32fast::Hasher,
}

pub struct ParGzWriter<W: Write> {
    inner: Option<W>,
    buf: Vec<u8>,
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    pending: BTreeMap<u64, Done>,
    next_seq: u64,
    next_write: u64,
    max_in_flight: u64,
    crc: crc32fast::Hasher,
    total: u64,
}

/// Whether the bytes' order-0 entropy is so close to 8 bits that deflate cannot shrink them (already
/// compressed or encrypted data): then trying costs most of a backup's CPU for nothing. A chunk
/// that mixes such data with text stays below the threshold and is compressed.
fn looks_random(data: &[u8]) -> bool {
    if data.len() < 64 * 1024 {
        return false;
    }
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    let bits: f64 = counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n).map(|p| -p * p.log2()).sum();
    bits > 7.99
}

/// Deflate "stored" blocks (no compression), at most 65535 bytes each. Every chunk starts and ends
/// on a byte boundary, so stored blocks slot in between compressed ones.
fn stored(data: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + (data.len() / 65535 + 1) * 5);
    if data.is_empty() {
        if last {
            out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        }
        return out;
    }
    let mut pieces = data.chunks(65535).peekable();
    while let Some(p) = pieces.next() {
        // Bit 0: BFINAL; bits 1-2: BTYPE 00 (stored); the rest of the byte is padding.
        out.push(u8::from(last && pieces.peek().is_none()));
        let len = p.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Compresses one chunk; one that does not shrink (photos, PDFs, archives) is stored instead:
/// the compressor would have coded every byte as a literal, and inflating literals one Huffman
/// code at a time is what made restores slow, while copying stored bytes costs nothing.
fn deflate_chunk(level: u32, data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    if looks_random(data) {
        return Ok(stored(data, last));
    }
    let out = deflate_raw(level, data, last)?;
    if out.len() as u64 * 100 >= data.len() as u64 * 98 {
        return Ok(stored(data, last));
    }
    Ok(out)
}

fn deflate_raw(level: u32, data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    // Raw deflate (no zlib header): the chunks are pieces of one deflate stream.
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 1024);
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    loop {
        let consumed = c.total_in() as usize;
        let status = c.compress_vec(&data[consumed..], &mut out, flush).map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once all input is taken and the output did not fill up.
            Status::Ok | Status::BufError if !last && all_in && out.len() < out.capacity() => break,
            _ => out.reserve(64 * 1024),
        }
    }
    Ok(out)
}

impl<W: Write> ParGzWriter<W> {
    /// `level` 1 (fastest) to 9; `threads` 0 means one per core.
    pub fn new(mut inner: W, level: u32, threads: usize) -> io::Result<ParGzWriter<W>> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        };
        // gzip header: deflate, no name, mtime 0 (reproducible), OS = Unix.
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])?;
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(threads * 2);
        let jobs_rx = std::sync::Arc::new(std::sync::Mutex::new(jobs_rx));
        let (done_tx, results) = sync_channel::<Done>(threads * 2 + 2);
        let workers = (0..threads)
            .map(|_| {
                let (jobs_rx, done_tx) = (std::sync::Arc::clone(&jobs_rx), done_tx.clone());
                std::thread::spawn(move || loop {
                    let job = match jobs_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let mut crc = crc32fast::Hasher::new();
                    crc.update(&job.data);
                    let out = deflate_chunk(level, &job.data, job.last);
                    if done_tx.send(Done { seq: job.seq, out, crc }).is_err() {
                        return;
                    }
                })
            })
            .collect();
        Ok(ParGzWriter {
            inner: Some(inner),
            buf: Vec::with_capacity(CHUNK),
            jobs: Some(jobs_tx),
            results,
            workers,
            pending: BTreeMap::new(),
            next_seq: 0,
            next_write: 0,
            max_in_flight: threads as u64 * 2 + 1,
            crc: crc32fast::Hasher::new(),
            total: 0,
        })
    }

    fn inner(&mut self) -> &mut W {
        self.inner.as_mut().expect("used after finish")
    }

    /// Writes every finished chunk that is next in order.
    fn write_ready(&mut self) -> io::Result<()> {
        while let Some(done) = self.pending.remove(&self.next_write) {
            let out = done.out?;
            self.crc.combine(&done.crc);
            self.inner().write_all(&out)?;
            self.next_write += 1;
        }
        Ok(())
    }

    fn receive(&mut self, block: bool) -> io::Result<bool> {
        let done = if block {
            self.results.recv().map_err(|_| io::Error::other("a compression thread died"))?
        } else {
            match self.results.try_recv() {
                Ok(d) => d,
                Err(_) => return Ok(false),
            }
        };
        self.pending.insert(done.seq, done);
        Ok(true)
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.next_seq - self.next_write >= self.max_in_flight {
            self.receive(true)?;
            self.write_ready()?;
        }
        let data = std::mem::replace(&mut self.buf, if last { Vec::new() } else { Vec::with_capacity(CHUNK) });
        self.total += data.len() as u64;
        let job = Job { seq: self.next_seq, data, last };
        self.jobs
            .as_ref()
            .expect("used after finish")
            .send(job)
            .map_err(|_| io::Error::other("a compression thread died"))?;
        self.next_seq += 1;
        while self.receive(false)? {}
        self.write_ready()
    }

    /// Compresses what is buffered, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while self.next_write < self.next_seq {
            self.receive(true)?;
            self.write_ready()?;
        }
        let crc = std::mem::take(&mut self.crc).finalize();
        let isize = (self.total & 0xffff_ffff) as u32;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&crc.to_le_bytes());
        trailer[4..].copy_from_slice(&isize.to_le_bytes());
        self.inner().write_all(&trailer)?;
        self.shutdown();
        Ok(self.inner.take().expect("finish runs once"))
    }

    fn shutdown(&mut self) {
        self.jobs = None;
        // Unblock workers waiting to hand in a result, then wait for them.
        while self.results.try_recv().is_ok() {}
        for w in self.workers.drain(..) {
            while !w.is_finished() {
                while self.results.try_recv().is_ok() {}
                std::thread::yield_now();
            }
            let _ = w.join();
        }
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.submit(false)?;
        }
        Ok(n)
    }

    /// Only flushes what is already compressed: cutting a chunk short on every flush would cost
    /// compression and gains nothing here (the archive is complete only after `finish`).
    fn flush(&mut self) -> io::Result<()> {
        self.inner().flush()
    }
}

impl<W: Write> Drop for ParGzWriter<W> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    fn roundtrip(data: &[u8], threads: usize) {
        let mut w = super::ParGzWriter::new(Vec::new(), 1, threads).unwrap();
        for piece in data.chunks(100_003) {
            w.write_all(piece).unwrap();
        }
        let gz = w.finish().unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert!(back == data, "round trip changed {} bytes of input", data.len());
    }

    #[test]
    fn round_trips_empty_small_and_multi_chunk_input() {
        roundtrip(b"", 2);
        roundtrip(b"hello", 1);
        let mut big: Vec<u8> = (0..3_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        big.extend(std::iter::repeat_n(b'a', 2_000_000));
        roundtrip(&big, 3);
        roundtrip(&big[..super::CHUNK * 2], 2);
    }

    #[test]
    fn incompressible_chunks_are_stored_and_read_back() {
        let mut data = vec![0u8; 2_600_000];
        std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut data).unwrap();
        data.extend(std::iter::repeat_n(b'z', 300_000));
        roundtrip(&data, 2);
        let chunk = &data[..super::CHUNK];
        assert!(super::looks_random(chunk));
        let text: Vec<u8> = (0..super::CHUNK).map(|i| b"lorem ipsum dolor "[i % 18]).collect();
        assert!(!super::looks_random(&text));
        let mut mixed = chunk[..super::CHUNK / 2].to_vec();
        mixed.extend_from_slice(&text[..super::CHUNK / 2]);
        assert!(!super::looks_random(&mixed), "half text must still be compressed");
        let out = super::deflate_chunk(1, chunk, false).unwrap();
        assert_eq!(out.len(), chunk.len() + chunk.len().div_ceil(65535) * 5, "random bytes were not stored");
        let mut w = super::ParGzWriter::new(Vec::new(), 1, 2).unwrap();
        w.write_all(&data).unwrap();
        let gz = w.finish().unwrap();
        let dir = std::env::temp_dir().join(format!("pargz-{}.gz", std::process::id()));
        std::fs::write(&dir, &gz).unwrap();
        let o = std::process::Command::new("gzip").arg("-t").arg(&dir).output().unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert!(o.status.success(), "gzip -t: {}", String::from_utf8_lossy(&o.stderr));
    }

    #[test]
    fn gzip_accepts_the_stream() {
        let data: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = super::ParGzWriter::new(Vec::new(), 1, 2).unwrap();
        w.write_all(&data).unwrap();
        let gz = w.finish().unwrap();
        let mut child = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || stdin.write_all(&gz).unwrap());
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert!(out.status.success());
        assert!(out.stdout == data, "gzip -d read back different bytes");
    }
}
