//! Decoding ahead of the watch loop: text units from the sources are decoded into events on
//! a few threads while the loop runs the detectors over earlier ones (reading a backlog, the
//! loop's one thread was mostly decoding). The loop still receives everything in the order
//! the sources sent it, so what it does is the same as decoding itself.
//!
//! At most [`Ahead::capacity`] decoded units wait for the loop (each holds its bytes and
//! events), on top of the units waiting in the sources' channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cellwarden_source::{Decoded, Mapping};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::source::{Input, Work};

/// Decoding threads: one per core, at most four (the loop itself takes one core).
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// An input in the order the sources sent it; a unit possibly still being decoded.
enum Slot {
    Ready(Input),
    Decoding(Receiver<Input>),
}

/// The inputs of the loop, decoded ahead, in order.
pub struct Ahead {
    rx: Receiver<Slot>,
    /// The sources' channel is closed and everything from it is queued here.
    done: Arc<AtomicBool>,
}

impl Ahead {
    /// Starts `threads` decoding threads (at least one) and one that keeps the order, within
    /// `scope`; they end once `inputs` is closed and drained, or the returned [`Ahead`] is
    /// dropped.
    pub fn start<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        inputs: Receiver<Input>,
        mapping: &'env Mapping,
        threads: usize,
    ) -> Ahead {
        let threads = threads.max(1);
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<(Input, Sender<Input>)>(threads);
        for _ in 0..threads {
            let jobs = jobs_rx.clone();
            scope.spawn(move || {
                for (input, done) in jobs {
                    // The loop may be gone; the order thread then stops too.
                    let _ = done.send(decode(input, mapping));
                }
            });
        }
        let (tx, rx) = crossbeam_channel::bounded(Self::capacity(threads));
        let done = Arc::new(AtomicBool::new(false));
        let finished = Arc::clone(&done);
        scope.spawn(move || {
            order(inputs, jobs_tx, tx);
            finished.store(true, Ordering::Release);
        });
        Ahead { rx, done }
    }

    /// Most inputs queued for the loop with `threads` decoding threads.
    pub fn capacity(threads: usize) -> usize {
        2 * threads.max(1)
    }

    /// The next input, waiting at most `timeout` for one to be queued (a unit queued is then
    /// waited for until decoded).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Input, RecvTimeoutError> {
        self.rx.recv_timeout(timeout).map(ready)
    }

    /// The next input if one is queued (a unit queued is waited for until decoded).
    pub fn try_recv(&self) -> Option<Input> {
        self.rx.try_recv().ok().map(ready)
    }

    /// No input is queued.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The sources are done and every input they sent has been taken.
    pub fn drained(&self) -> bool {
        self.done.load(Ordering::Acquire) && self.rx.is_empty()
    }
}

fn ready(slot: Slot) -> Input {
    match slot {
        Slot::Ready(input) => input,
        Slot::Decoding(r) => r.recv().unwrap_or_else(|_| {
            Input::Note("a decoding thread ended early; the unit it held is missing".into())
        }),
    }
}

/// Queues the inputs in order, text units through the decoding threads.
fn order(inputs: Receiver<Input>, jobs: Sender<(Input, Sender<Input>)>, out: Sender<Slot>) {
    for input in inputs {
        let slot = match input {
            Input::Unit {
                unit: Work::Unit(ref u),
                ..
            } if !matches!(u, cellwarden_source::Unit::Evtx { .. }) => {
                let (tx, rx) = crossbeam_channel::bounded(1);
                if jobs.send((input, tx)).is_err() {
                    return;
                }
                Slot::Decoding(rx)
            }
            input => Slot::Ready(input),
        };
        if out.send(slot).is_err() {
            return;
        }
    }
}

fn decode(input: Input, mapping: &Mapping) -> Input {
    match input {
        Input::Unit {
            unit: Work::Unit(unit),
            position,
            clock,
            uses,
        } => Input::Unit {
            unit: match Decoded::new(unit, mapping) {
                Ok(d) => Work::Decoded(d),
                Err(unit) => Work::Unit(unit),
            },
            position,
            clock,
            uses,
        },
        input => input,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cellwarden_pipeline::Uses;
    use cellwarden_source::{Collected, Format, Limits, Unit};

    fn units(text: &str, lines_per_unit: usize) -> Vec<Unit> {
        let file: Arc<str> = "t.json".into();
        let mut all = Vec::new();
        let lines: Vec<&str> = text.lines().collect();
        for part in lines.chunks(lines_per_unit) {
            let mut c = Collected::default();
            let text = part.join("\n") + "\n";
            cellwarden_source::read_bytes(
                &file,
                text.as_bytes(),
                Some(Format::Json),
                &Limits::default(),
                &mut c,
            );
            all.extend(c.units);
        }
        all
    }

    /// Units, positions and notes come out in the order they went in, units decoded.
    #[test]
    fn inputs_keep_their_order() {
        let text: String = (0..400).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        let mapping = Mapping::builtin();
        let (tx, rx) = crossbeam_channel::bounded(4);
        let got = std::thread::scope(|s| {
            let ahead = Ahead::start(s, rx, &mapping, 3);
            s.spawn(move || {
                for (i, u) in units(&text, 7).into_iter().enumerate() {
                    tx.send(Input::Unit {
                        unit: u.into(),
                        position: None,
                        clock: None,
                        uses: Uses::ALL,
                    })
                    .unwrap();
                    tx.send(Input::Note(format!("after {i}"))).unwrap();
                }
            });
            let mut got = Vec::new();
            while !ahead.drained() {
                match ahead.recv_timeout(Duration::from_millis(50)) {
                    Ok(Input::Unit {
                        unit: Work::Decoded(d),
                        ..
                    }) => {
                        d.events(&mut |e| got.push(e.get_str("n").unwrap().to_string()));
                    }
                    Ok(Input::Note(n)) => got.push(n),
                    Ok(_) => panic!("a unit not decoded"),
                    Err(_) => {}
                }
            }
            got
        });
        let mut want = Vec::new();
        for (i, chunk) in (0..400).collect::<Vec<_>>().chunks(7).enumerate() {
            want.extend(chunk.iter().map(|n| n.to_string()));
            want.push(format!("after {i}"));
        }
        assert_eq!(got, want);
    }
}
