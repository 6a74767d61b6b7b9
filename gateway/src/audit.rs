//! The decision audit log: one JSON line per policy decision, written by a
//! thread of its own so that a slow disk never holds up authentication.
//!
//! Decisions hand their line to a bounded queue ([`QUEUE_LINES`]) and move
//! on. When the queue is full the line is dropped, counted in
//! `keygate_audit_dropped_total` and reported: a warning in keygate's log at
//! the first drop, and a `{"event":"dropped","count":N}` line in the audit
//! log itself once the writer catches up, so a gap is never silent.
//!
//! The file is opened for appending and reopened on SIGHUP and whenever the
//! path no longer names the open file (checked at most once a second, busy
//! or idle), so both rename-and-signal and rename-only log rotation work;
//! copy-and-truncate rotation works because every write appends.
//!
//! A line counts as written once the flush after it succeeds. When a write
//! or flush fails, every line since the last good flush counts as dropped,
//! though some of them may have reached the file, and a line cut short by
//! the failure is left in it. On shutdown the queue is written out and
//! flushed before keygate exits.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde_json::Value;

use crate::domain::Fingerprint;

/// Lines that may wait for the writer before new ones are dropped.
pub const QUEUE_LINES: usize = 16_384;

/// How often the writer checks whether the file was rotated away.
const ROTATION_CHECK: Duration = Duration::from_secs(1);

/// Where audit lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    /// Standard output (`--audit-log -`).
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

impl AuditTarget {
    /// `-` is standard output; anything else a path.
    pub fn parse(arg: &str) -> AuditTarget {
        if arg == "-" {
            AuditTarget::Stdout
        } else {
            AuditTarget::File(PathBuf::from(arg))
        }
    }
}

enum Message {
    Line(String),
    /// Write what is queued, flush, and stop; then signal.
    Close(Sender<()>),
}

/// The sending side, shared by every connection.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: Sender<Message>,
    reopen: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl AuditLog {
    /// Open the target and start the writer thread. Fails if the file
    /// cannot be opened now; later failures are logged and retried.
    pub fn start(target: AuditTarget) -> anyhow::Result<AuditLog> {
        AuditLog::start_with_queue(target, QUEUE_LINES)
    }

    fn start_with_queue(target: AuditTarget, queue: usize) -> anyhow::Result<AuditLog> {
        let sink = Sink::open(&target)?;
        let (tx, rx) = crossbeam_channel::bounded(queue);
        let log = AuditLog {
            tx,
            reopen: Arc::default(),
            dropped: Arc::default(),
            written: Arc::default(),
        };
        let writer = Writer {
            target,
            sink: Some(sink),
            rx,
            reopen: log.reopen.clone(),
            dropped: log.dropped.clone(),
            written: log.written.clone(),
            pending: 0,
            reported_drops: 0,
            last_check: Instant::now(),
        };
        std::thread::Builder::new()
            .name("keygate-audit".into())
            .spawn(move || writer.run())
            .map_err(|e| anyhow::anyhow!("failed to start the audit log writer; {e}"))?;
        Ok(log)
    }

    /// Queue one record, serialised as a JSON line. Never blocks.
    pub fn record(&self, record: &Value) {
        let line = record.to_string();
        match self.tx.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        "audit log writer is behind; dropping audit lines (counted in \
                         keygate_audit_dropped_total)"
                    );
                }
            }
        }
    }

    /// Ask the writer to reopen the file (after SIGHUP). Takes effect within
    /// [`ROTATION_CHECK`], however full the queue is.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    /// Write out what is queued and stop the writer, waiting at most
    /// `limit`. Lines recorded afterwards are dropped and counted.
    pub fn close(&self, limit: Duration) {
        let (done, finished) = crossbeam_channel::bounded(1);
        if self.tx.send_timeout(Message::Close(done), limit).is_ok()
            && finished.recv_timeout(limit).is_err()
        {
            tracing::warn!("the audit log writer did not finish in time; lines may be lost");
        }
    }

    /// Lines dropped (queue full, or the file could not be written), since
    /// start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines written and flushed, since start.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

/// The open file or stdout, with the identity of the file to spot rotation.
struct Sink {
    out: BufWriter<Box<dyn Write + Send>>,
    identity: Option<(u64, u64)>,
}

impl Sink {
    fn open(target: &AuditTarget) -> anyhow::Result<Sink> {
        match target {
            AuditTarget::Stdout => Ok(Sink {
                out: BufWriter::new(Box::new(std::io::stdout())),
                identity: None,
            }),
            AuditTarget::File(path) => {
                let file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o640)
                    .open(path)
                    .map_err(|e| {
                        anyhow::anyhow!("failed to open audit log {}; {e}", path.display())
                    })?;
                let identity = file.metadata().ok().map(|m| (m.dev(), m.ino()));
                Ok(Sink {
                    out: BufWriter::new(Box::new(file) as Box<dyn Write + Send>),
                    identity,
                })
            }
        }
    }
}

struct Writer {
    target: AuditTarget,
    sink: Option<Sink>,
    rx: Receiver<Message>,
    reopen: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    /// Decision lines in the buffer, not yet known to have reached the file.
    pending: u64,
    reported_drops: u64,
    last_check: Instant,
}

impl Writer {
    /// Write lines as they come, flushing whenever the queue runs dry, until
    /// told to close or every sender is gone.
    fn run(mut self) {
        loop {
            let message = self.rx.recv_timeout(ROTATION_CHECK);
            self.maybe_reopen();
            match message {
                Ok(Message::Line(line)) => {
                    self.write(&line, true);
                }
                Ok(Message::Close(done)) => {
                    while let Ok(Message::Line(line)) = self.rx.try_recv() {
                        self.write(&line, true);
                    }
                    self.report_drops();
                    self.flush();
                    let _ = done.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.rx.is_empty() {
                self.report_drops();
                self.flush();
            }
        }
        self.flush();
    }

    /// Reopen on request (SIGHUP), and at most once a [`ROTATION_CHECK`]
    /// when the path names another file or none, or the file is not open.
    fn maybe_reopen(&mut self) {
        if self.reopen.swap(false, Ordering::Relaxed) {
            self.last_check = Instant::now();
            return self.reopen_now("reopened on SIGHUP");
        }
        if self.last_check.elapsed() < ROTATION_CHECK {
            return;
        }
        self.last_check = Instant::now();
        let AuditTarget::File(path) = &self.target else {
            return;
        };
        let current = self.sink.as_ref().and_then(|s| s.identity);
        if current.is_none() || current != identity_of(path) {
            self.reopen_now("reopened after rotation");
        }
    }

    /// Write one line; `record` lines are counted once flushed. Returns
    /// whether the line reached the buffer.
    fn write(&mut self, line: &str, record: bool) -> bool {
        if self.sink.is_none() {
            self.reopen_now("reopened after a failure");
        }
        let Some(sink) = &mut self.sink else {
            if record {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            return false;
        };
        if sink.out.write_all(line.as_bytes()).is_ok() && sink.out.write_all(b"\n").is_ok() {
            self.pending += u64::from(record);
            return true;
        }
        if record {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.failed("write");
        false
    }

    /// The file broke: lines not known to have reached it count as dropped,
    /// and it is reopened on the next line or check.
    fn failed(&mut self, what: &str) {
        tracing::error!(target = ?self.target, "failed to {what} the audit log; reopening it");
        self.dropped.fetch_add(self.pending, Ordering::Relaxed);
        self.pending = 0;
        self.sink = None;
    }

    /// After a gap, say so in the audit log itself, once the log works.
    fn report_drops(&mut self) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped <= self.reported_drops || self.sink.is_none() {
            return;
        }
        let count = dropped - self.reported_drops;
        let line = serde_json::json!({
            "time": rfc3339(SystemTime::now()),
            "event": "dropped",
            "count": count,
        });
        if self.write(&line.to_string(), false) && self.flush() {
            self.reported_drops = dropped;
            tracing::warn!(
                count,
                "audit lines were dropped; the gap is marked in the audit log"
            );
        }
    }

    fn flush(&mut self) -> bool {
        let Some(sink) = &mut self.sink else {
            return false;
        };
        if sink.out.flush().is_err() {
            self.failed("flush");
            return false;
        }
        self.written.fetch_add(self.pending, Ordering::Relaxed);
        self.pending = 0;
        true
    }

    fn reopen_now(&mut self, why: &str) {
        if self.target == AuditTarget::Stdout {
            return;
        }
        self.flush();
        match Sink::open(&self.target) {
            Ok(sink) => {
                self.sink = Some(sink);
                tracing::info!(target = ?self.target, "audit log {why}");
            }
            Err(error) => {
                if self.sink.take().is_some() {
                    tracing::error!(%error, "audit lines are dropped until the file can be opened");
                }
            }
        }
    }
}

/// The audit line for a connection whose key proved itself. A `connect`
/// decision is asked when a key is offered, before the client has shown it
/// holds the private key; this line is the proof that it did.
pub fn authenticated(conn: u64, client: IpAddr, user: &str, key: &Fingerprint) -> Value {
    serde_json::json!({
        "time": rfc3339(SystemTime::now()),
        "event": "authenticated",
        "conn": conn,
        "client": client.to_string(),
        "user": user,
        "key": key.to_string(),
    })
}

fn identity_of(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// `time` as RFC 3339 in UTC with milliseconds: `2026-12-03T15:04:05.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Year, month, day of the day `days` after 1970-01-01 (proleptic
/// Gregorian), by the era method: 400-year eras of 146,097 days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_as_rfc3339() {
        let at = |secs: u64, ms: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_796_306_645, 123), "2026-12-03T14:04:05.123Z");
        assert_eq!(at(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
    }

    /// Rotation by rename is noticed while lines keep coming, not only
    /// after an idle second.
    #[test]
    fn a_busy_writer_follows_a_renamed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::start(AuditTarget::File(path.clone())).unwrap();
        let rotated = dir.path().join("audit.log.1");
        let started = Instant::now();
        let mut renamed = false;
        let mut n = 0u64;
        // A line every 10 ms: the writer is never idle for a second.
        while started.elapsed() < Duration::from_secs(3) {
            log.record(&serde_json::json!({ "n": n }));
            n += 1;
            if !renamed && started.elapsed() > Duration::from_millis(500) {
                std::fs::rename(&path, &rotated).unwrap();
                renamed = true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        log.close(Duration::from_secs(5));
        let count = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count() as u64;
        let (old, new) = (count(&rotated), count(&path));
        assert!(new > 0, "nothing reached the new file");
        assert_eq!(old + new, n);
        assert_eq!(log.written(), n);
        assert_eq!(log.dropped(), 0);
    }

    /// A reader that stalls fills the pipe, then the queue; what cannot wait
    /// is dropped, counted, and reported in the log once the reader resumes.
    #[test]
    fn a_stalled_reader_costs_lines_that_are_counted_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("audit.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut file = std::fs::File::open(&fifo).unwrap();
                wait.recv().unwrap();
                let mut text = String::new();
                std::io::Read::read_to_string(&mut file, &mut text).unwrap();
                text
            })
        };
        let log = AuditLog::start_with_queue(AuditTarget::File(fifo), 4).unwrap();
        // 100 lines of 2 KiB cannot fit a 64 KiB pipe, an 8 KiB buffer and
        // a queue of 4, however the threads are scheduled.
        let padding = "x".repeat(2048);
        for i in 0..100 {
            log.record(&serde_json::json!({"n": i, "padding": padding}));
        }
        let dropped = log.dropped();
        assert!(dropped >= 50, "only {dropped} dropped");
        go.send(()).unwrap();
        // Closing writes out the queue, reports the gap, and closes the
        // pipe.
        log.close(Duration::from_secs(10));
        drop(log);
        let text = reader.join().unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let records = lines.iter().filter(|l| l.get("n").is_some()).count();
        assert_eq!(records as u64 + dropped, 100);
        let reported: u64 = lines
            .iter()
            .filter(|l| l["event"] == "dropped")
            .map(|l| l["count"].as_u64().unwrap())
            .sum();
        assert_eq!(reported, dropped);
    }
}
