//! syslog receivers: UDP (one message per datagram) and TCP with octet-counted framing
//! (RFC 6587 `LEN SP MSG`) or newline framing, told apart per message by its first byte.
//! Messages in RFC 5424 or RFC 3164 form are read as the syslog file format reads lines.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cellwarden_source::{ErrorKind, Format, Position, SourceError, Unit};

use crate::source::{Input, PositionUpdate, Source};

/// Longest message taken; longer ones are cut there (RFC 5425 asks receivers for 2 KiB at
/// least; 64 KiB covers what UDP carries).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Numbers the messages of one receiver (so each has a stable record number) and turns
/// them into units.
#[derive(Clone)]
pub struct Numbering {
    name: Arc<str>,
    next: Arc<AtomicU64>,
    /// When the last messages went on, and whether the receiver was said idle since.
    quiet: Arc<std::sync::Mutex<Quiet>>,
    idle_after: Duration,
}

#[derive(Default)]
struct Quiet {
    last: Option<Instant>,
    said: bool,
}

impl Numbering {
    /// Numbering for receiver `name`, starting after `start` messages. A receiver that got
    /// messages and then none for `idle_after` is said idle (it stops holding the watermark
    /// back until its next message), like a file at its end.
    pub fn new(name: &str, start: u64, idle_after: Duration) -> Self {
        Numbering {
            name: Arc::from(name),
            next: Arc::new(AtomicU64::new(start)),
            quiet: Default::default(),
            idle_after,
        }
    }

    /// Says the receiver idle once it has been quiet for `idle_after`; false when the loop
    /// is gone.
    fn idle(&self, tx: &crossbeam_channel::Sender<Input>) -> bool {
        let mut q = self.quiet.lock().unwrap_or_else(|p| p.into_inner());
        if q.said || q.last.is_none_or(|t| t.elapsed() < self.idle_after) {
            return true;
        }
        q.said = true;
        tx.send(Input::Idle(self.name.clone())).is_ok()
    }

    fn unit(&self, messages: &[Vec<u8>]) -> (Unit, PositionUpdate) {
        let mut buf = Vec::new();
        let mut records = Vec::with_capacity(messages.len());
        let first = self
            .next
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        for (i, m) in messages.iter().enumerate() {
            let start = buf.len();
            // A message is one record: line ends inside it become spaces.
            buf.extend(
                m.iter()
                    .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
            );
            records.push((first + i as u64 + 1, start, buf.len()));
        }
        let year = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .year();
        let count = first + messages.len() as u64;
        (
            Unit::Records {
                file: self.name.clone(),
                kind: Format::Syslog,
                context: Arc::new(cellwarden_source::Context::of_year(year)),
                buf,
                records,
                header: None,
                order: None,
            },
            PositionUpdate::Counter {
                name: self.name.to_string(),
                count,
            },
        )
    }

    fn send(&self, tx: &crossbeam_channel::Sender<Input>, messages: &mut Vec<Vec<u8>>) -> bool {
        if messages.is_empty() {
            return true;
        }
        let (unit, update) = self.unit(messages);
        messages.clear();
        // Under the lock: an idle notice cannot pass these messages.
        let mut q = self.quiet.lock().unwrap_or_else(|p| p.into_inner());
        *q = Quiet {
            last: Some(Instant::now()),
            said: false,
        };
        tx.send(Input::Unit {
            unit: unit.into(),
            position: Some(update),
            clock: None,
            uses: cellwarden_pipeline::Uses::ALL,
        })
        .is_ok()
    }
}

/// Receives datagrams until `stop`; a batch goes on every 4096 messages or 100 ms.
/// A UDP syslog receiver as a source of the watch loop.
pub struct UdpReceiver {
    /// The bound socket.
    pub socket: UdpSocket,
    /// Record numbers of its messages.
    pub numbering: Numbering,
}

impl Source for UdpReceiver {
    fn run(self: Box<Self>, tx: crossbeam_channel::Sender<Input>, stop: Arc<AtomicBool>) {
        run_udp(self.socket, self.numbering, tx, stop)
    }
}

/// A TCP syslog receiver as a source of the watch loop (a thread per connection).
pub struct TcpReceiver {
    /// The bound listener.
    pub listener: TcpListener,
    /// Record numbers of its messages (shared by the connections).
    pub numbering: Numbering,
}

impl Source for TcpReceiver {
    fn run(self: Box<Self>, tx: crossbeam_channel::Sender<Input>, stop: Arc<AtomicBool>) {
        run_tcp(self.listener, self.numbering, tx, stop)
    }
}

fn run_udp(
    socket: UdpSocket,
    numbering: Numbering,
    tx: crossbeam_channel::Sender<Input>,
    stop: Arc<AtomicBool>,
) {
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut batch: Vec<Vec<u8>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                batch.push(buf[..n].to_vec());
                if batch.len() >= 4096 && !numbering.send(&tx, &mut batch) {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if !numbering.send(&tx, &mut batch) || !numbering.idle(&tx) {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Input::Error(SourceError::new(
                    &numbering.name,
                    Position::File,
                    ErrorKind::Io,
                    format!("receive failed: {e}"),
                )));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    numbering.send(&tx, &mut batch);
}

/// Accepts connections until `stop`; each connection is read on its own thread.
fn run_tcp(
    listener: TcpListener,
    numbering: Numbering,
    tx: crossbeam_channel::Sender<Input>,
    stop: Arc<AtomicBool>,
) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (numbering, tx, stop) = (numbering.clone(), tx.clone(), stop.clone());
                std::thread::spawn(move || connection(stream, numbering, tx, stop));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !numbering.idle(&tx) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                let _ = tx.send(Input::Error(SourceError::new(
                    &numbering.name,
                    Position::File,
                    ErrorKind::Io,
                    format!("accept failed: {e}"),
                )));
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn connection(
    stream: TcpStream,
    numbering: Numbering,
    tx: crossbeam_channel::Sender<Input>,
    stop: Arc<AtomicBool>,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut r = BufReader::new(stream);
    let mut batch: Vec<Vec<u8>> = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match next_frame(&mut r) {
            Frame::Message(m) => {
                batch.push(m);
                if batch.len() >= 4096 && !numbering.send(&tx, &mut batch) {
                    return;
                }
            }
            Frame::Wait => {
                if !numbering.send(&tx, &mut batch) {
                    return;
                }
            }
            Frame::End => break,
            Frame::Bad(m) => {
                let _ = tx.send(Input::Error(SourceError::new(
                    &numbering.name,
                    Position::File,
                    ErrorKind::Syntax,
                    m,
                )));
                break;
            }
        }
    }
    numbering.send(&tx, &mut batch);
}

enum Frame {
    Message(Vec<u8>),
    /// Nothing more for now.
    Wait,
    End,
    Bad(String),
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Reads one frame. A message that starts with a digit is octet-counted; otherwise it ends at
/// a line feed (or NUL, which some senders use).
fn next_frame<R: Read>(r: &mut BufReader<R>) -> Frame {
    let first = match r.fill_buf() {
        Ok([]) => return Frame::End,
        Ok(b) => b[0],
        Err(e) if timed_out(&e) => return Frame::Wait,
        Err(_) => return Frame::End,
    };
    if first.is_ascii_digit() {
        let mut len = Vec::new();
        if read_until_blocking(r, b' ', &mut len, 12).is_err() {
            return Frame::End;
        }
        let digits = String::from_utf8_lossy(&len);
        let Ok(n) = digits.trim_end_matches(' ').parse::<usize>() else {
            return Frame::Bad(format!("bad octet count {digits:?}; connection closed"));
        };
        if n > MAX_MESSAGE * 16 {
            return Frame::Bad(format!("octet count {n} too large; connection closed"));
        }
        let mut msg = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match r.read(&mut msg[got..]) {
                Ok(0) => return Frame::End,
                Ok(k) => got += k,
                Err(e) if timed_out(&e) => continue,
                Err(_) => return Frame::End,
            }
        }
        msg.truncate(MAX_MESSAGE);
        Frame::Message(msg)
    } else {
        let mut msg = Vec::new();
        if read_until_blocking(r, b'\n', &mut msg, MAX_MESSAGE * 16).is_err() {
            return Frame::End;
        }
        while msg.last().is_some_and(|b| matches!(b, b'\n' | b'\r' | 0)) {
            msg.pop();
        }
        msg.truncate(MAX_MESSAGE);
        if msg.is_empty() {
            return Frame::Wait;
        }
        Frame::Message(msg)
    }
}

/// `read_until` that waits through read timeouts once a frame has begun; at most `max` bytes
/// are kept.
fn read_until_blocking<R: Read>(
    r: &mut BufReader<R>,
    delim: u8,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), ()> {
    loop {
        let buf = match r.fill_buf() {
            Ok([]) => return if out.is_empty() { Err(()) } else { Ok(()) },
            Ok(b) => b,
            Err(e) if timed_out(&e) => continue,
            Err(_) => return Err(()),
        };
        let (take, done) = match buf
            .iter()
            .position(|b| *b == delim || (delim == b'\n' && *b == 0))
        {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if out.len() < max {
            out.extend_from_slice(&buf[..take.min(max - out.len())]);
        }
        r.consume(take);
        if done {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<String> {
        let mut r = BufReader::new(input);
        let mut out = Vec::new();
        loop {
            match next_frame(&mut r) {
                Frame::Message(m) => out.push(String::from_utf8_lossy(&m).into_owned()),
                Frame::Wait => {}
                Frame::End | Frame::Bad(_) => break,
            }
        }
        out
    }

    #[test]
    fn octet_counted_and_newline_framing() {
        let m1 = "<34>1 2026-11-24T10:00:00Z h sshd 1 - - Accepted password for root";
        let input = format!("{} {m1}<13>Nov 24 10:00:01 h su: hello\n", m1.len());
        assert_eq!(
            frames(input.as_bytes()),
            vec![m1.to_owned(), "<13>Nov 24 10:00:01 h su: hello".to_owned()]
        );
        // A message may hold a line feed when octet-counted.
        let m2 = "<34>1 - h app - - - two\nlines";
        assert_eq!(
            frames(format!("{} {m2}", m2.len()).as_bytes()),
            vec![m2.to_owned()]
        );
    }

    #[test]
    fn a_bad_count_ends_the_connection() {
        let mut r = BufReader::new(&b"99999999999 x"[..]);
        assert!(matches!(next_frame(&mut r), Frame::Bad(_)));
    }

    /// A receiver quiet for `idle_after` after messages says so once, after its messages;
    /// one that never got a message does not (it holds no clock back).
    #[test]
    fn a_quiet_receiver_says_it_is_idle_once_after_its_messages() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let numbering = Numbering::new("syslog-udp://test", 0, Duration::from_millis(300));
        let (tx, rx) = crossbeam_channel::bounded(16);
        let stop = Arc::new(AtomicBool::new(false));
        let run = {
            let stop = stop.clone();
            std::thread::spawn(move || run_udp(socket, numbering, tx, stop))
        };
        let next = || rx.recv_timeout(Duration::from_secs(10)).expect("input");
        // Nothing received: no idle notice.
        assert!(rx.recv_timeout(Duration::from_millis(800)).is_err());
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        for round in 0..2 {
            client
                .send_to(b"<13>Nov 24 10:00:01 h su: hello", addr)
                .unwrap();
            assert!(matches!(next(), Input::Unit { .. }), "round {round}");
            assert!(matches!(next(), Input::Idle(n) if &*n == "syslog-udp://test"));
            // Said once per quiet spell.
            assert!(rx.recv_timeout(Duration::from_millis(800)).is_err());
        }
        stop.store(true, Ordering::Relaxed);
        run.join().unwrap();
    }
}
