//! A bounded, ordered worker pool: one producer thread (reads), `threads` workers
//! (compress or decompress, hash), and the caller consuming results in input order (writes).
//!
//! At most `in_flight` items exist at any time — read, being worked on, or waiting for their
//! turn — so memory stays at `in_flight × item size` whatever the disk size.

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, sync_channel};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};

/// How many workers to run: every core the process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Feed the items `produce` returns (until `None`) through `work` on `threads` threads and
/// hand each result to `sink` in production order. The first error from `sink` stops
/// everything and is returned; nothing after it reaches `sink`.
pub fn ordered<I, O, P, W, S>(threads: usize, in_flight: usize, mut produce: P, work: W, mut sink: S) -> Result<()>
where
    I: Send,
    O: Send,
    P: FnMut() -> Option<I> + Send,
    W: Fn(I) -> O + Sync,
    S: FnMut(O) -> Result<()>,
{
    let threads = threads.max(1);
    let in_flight = in_flight.max(threads + 1);
    let (permit_tx, permit_rx) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        permit_tx.send(()).expect("fresh channel");
    }
    let (work_tx, work_rx) = sync_channel::<(u64, I)>(in_flight);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = channel::<(u64, O)>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut n = 0u64;
            while permit_rx.recv().is_ok() {
                let Some(item) = produce() else { return };
                if work_tx.send((n, item)).is_err() {
                    return;
                }
                n += 1;
            }
        });
        for _ in 0..threads {
            let rx = Arc::clone(&work_rx);
            let tx = done_tx.clone();
            let work = &work;
            scope.spawn(move || loop {
                let next = rx.lock().map_err(|_| ()).and_then(|r| r.recv().map_err(|_| ()));
                let Ok((n, item)) = next else { return };
                if tx.send((n, work(item))).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        let mut result = Ok(());
        'outer: for (n, out) in done_rx.iter() {
            waiting.insert(n, out);
            while let Some(out) = waiting.remove(&next) {
                if let Err(e) = sink(out) {
                    result = Err(e);
                    break 'outer;
                }
                next += 1;
                // The producer may have finished already; then no permit is wanted.
                let _ = permit_tx.send(());
            }
        }
        // Unblock everyone: the producer waits for permits, workers for the result channel.
        drop(permit_tx);
        drop(done_rx);
        result
    })
    .map_err(|e: anyhow::Error| anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_stops_at_the_first_error() {
        let mut i = 0u32;
        let mut seen = Vec::new();
        ordered(
            3,
            5,
            || {
                i += 1;
                (i <= 200).then_some(i)
            },
            |x| {
                std::thread::sleep(std::time::Duration::from_micros((x as u64 * 7919) % 300));
                x * 2
            },
            |y| {
                seen.push(y);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (1..=200).map(|x| x * 2).collect::<Vec<_>>());

        let mut produced = 0u32;
        let mut got = Vec::new();
        let e = ordered(
            2,
            4,
            || {
                produced += 1;
                (produced <= 10_000).then_some(produced)
            },
            |x| x,
            |y| {
                got.push(y);
                if y == 7 {
                    anyhow::bail!("stop at 7")
                }
                Ok(())
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "stop at 7");
        assert_eq!(got, (1..=7).collect::<Vec<_>>());
        // Bounded: the producer never ran far ahead of the consumer.
        assert!(produced < 7 + 4 + 3, "produced {produced}");
    }
}
