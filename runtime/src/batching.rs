//! Text generation for many callers at once: requests wait in a bounded queue and run on a
//! [`TextGenerator`] shared by every caller; each caller hears about its own sequence only,
//! through an [`EventSink`] called with every new token and once at the end.
//!
//! The queue is what `torchless serve` and `torchless worker` put in front of a decoder. A sink
//! that returns `false` (its client went away) takes its sequence out at the next step.
//!
//! Continuous batching: one scheduler thread per queue owns every running sequence. Each step
//! it admits waiting requests (first come, first served) while fewer than `max_batch_size`
//! run, prefills each newcomer on its own, chooses one token for every running sequence with
//! that sequence's own sampler, retires the ones that stopped, and runs one decode step for all
//! the others together ([`CausalLm::decode_batch`](torchless_models::CausalLm::decode_batch):
//! the weights are read once for the whole batch). Each sequence keeps its own KV cache, so
//! sequences join and leave between any two steps. The design note is `docs/batching.md`.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::generator::{Begun, GenerateOptions, Generation, Sequence, TextGenerator};

/// How many sequences run at once and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Sequences generated together (at least 1).
    pub max_batch_size: usize,
    /// Requests that may wait for a place; one more is refused with [`Error::Busy`].
    pub max_queue: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_batch_size: 16,
            max_queue: 256,
        }
    }
}

/// What a caller hears about its sequence.
#[derive(Debug)]
pub enum GenerationEvent {
    /// A new token id, as soon as it is chosen.
    Token(u32),
    /// The sequence ended (always the last event unless [`GenerationEvent::Failed`] is).
    Finished(Generation),
    /// The sequence could not run or failed part-way (the last event).
    Failed(Error),
}

/// Receives a sequence's events, on a thread of the queue; returns `false` to stop the
/// sequence (it ends with [`StopReason::Callback`](crate::StopReason::Callback)). It must not
/// block: hand the event to a channel.
pub type EventSink = Box<dyn FnMut(GenerationEvent) -> bool + Send>;

struct Request {
    prompt_ids: Vec<u32>,
    options: GenerateOptions,
    sink: EventSink,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Request>,
    running: usize,
    closed: bool,
}

struct Shared {
    generator: Arc<TextGenerator>,
    limits: BatchLimits,
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters behind: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bounded queue in front of one [`TextGenerator`].
pub struct GenerationQueue {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl GenerationQueue {
    /// Starts the queue's scheduler thread for `generator`.
    pub fn new(generator: Arc<TextGenerator>, limits: BatchLimits) -> Self {
        let limits = BatchLimits {
            max_batch_size: limits.max_batch_size.max(1),
            ..limits
        };
        let shared = Arc::new(Shared {
            generator,
            limits,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let scheduler = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || schedule(&shared))
        };
        GenerationQueue {
            shared,
            threads: Mutex::new(vec![scheduler]),
        }
    }

    /// The generator every sequence runs on.
    pub fn generator(&self) -> &Arc<TextGenerator> {
        &self.shared.generator
    }

    /// The limits in force.
    pub fn limits(&self) -> BatchLimits {
        self.shared.limits
    }

    /// Queues a sequence. Refused at once, with [`Error::Busy`] when `max_queue` requests are
    /// already waiting and with [`Error::ShuttingDown`] after [`GenerationQueue::shutdown`];
    /// otherwise every later outcome reaches `sink`.
    pub fn submit(
        &self,
        prompt_ids: Vec<u32>,
        options: GenerateOptions,
        sink: EventSink,
    ) -> Result<()> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(Error::ShuttingDown);
        }
        if state.waiting.len() >= self.shared.limits.max_queue {
            return Err(Error::Busy {
                waiting: state.waiting.len(),
            });
        }
        state.waiting.push_back(Request {
            prompt_ids,
            options,
            sink,
        });
        drop(state);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Requests waiting for a place.
    pub fn waiting(&self) -> usize {
        self.shared.lock().waiting.len()
    }

    /// Sequences generating now (admitted into the batch, prefilling or decoding).
    pub fn running(&self) -> usize {
        self.shared.lock().running
    }

    /// Stops accepting requests, lets every queued and running sequence finish, and returns
    /// when they have. Later calls return at once.
    pub fn shutdown(&self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for GenerationQueue {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A running sequence and the caller that hears about it.
struct Active {
    seq: Box<Sequence>,
    sink: EventSink,
}

impl Active {
    fn fail(mut self, e: Error) {
        let _ = (self.sink)(GenerationEvent::Failed(e));
    }
}

/// The queue's scheduler: admits, samples, retires and steps every running sequence, until
/// the queue is closed and nothing waits or runs. A panic during a step (a sink's or the
/// model's) drops the sequences of that step, whose callers see their sinks dropped, and the
/// scheduler goes on with the others and with what waits: one bad request never stalls the
/// queue.
fn schedule(shared: &Shared) {
    let mut active: Vec<Active> = Vec::new();
    loop {
        let step = std::panic::catch_unwind(AssertUnwindSafe(|| one_step(shared, &mut active)));
        match step {
            Ok(true) => {}
            Ok(false) => return,
            Err(_) => {
                // What the panicking step held was dropped while unwinding; anything left in
                // `active` was not part of it, but its state is no longer trusted either.
                active.clear();
                shared.lock().running = 0;
            }
        }
    }
}

/// One scheduler step; `false` once the queue is closed and drained.
fn one_step(shared: &Shared, active: &mut Vec<Active>) -> bool {
    let g = &*shared.generator;
    let Some(newcomers) = admit(shared, active.len()) else {
        return false;
    };
    for r in newcomers {
        let Request {
            prompt_ids,
            options,
            mut sink,
        } = r;
        match g.begin(&prompt_ids, &options) {
            Ok(Begun::Running(seq)) => active.push(Active { seq, sink }),
            Ok(Begun::Done(out)) => {
                let _ = sink(GenerationEvent::Finished(out));
            }
            Err(e) => {
                let _ = sink(GenerationEvent::Failed(e));
            }
        }
    }
    let going = choose_all(g, std::mem::take(active));
    *active = step_all(g, going);
    shared.lock().running = active.len();
    true
}

/// Takes waiting requests while fewer than `max_batch_size` run (`running` now); blocks while
/// nothing runs or waits. `None` once the queue is closed and drained.
fn admit(shared: &Shared, running: usize) -> Option<Vec<Request>> {
    let mut state = shared.lock();
    loop {
        let room = shared.limits.max_batch_size.saturating_sub(running);
        let n = room.min(state.waiting.len());
        if n > 0 || running > 0 {
            let taken: Vec<Request> = state.waiting.drain(..n).collect();
            state.running = running + taken.len();
            return Some(taken);
        }
        if state.closed {
            state.running = 0;
            return None;
        }
        state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
    }
}

/// Chooses every sequence's next token, tells its caller, and retires the ones that stop
/// (with `Finished`) or fail (with `Failed`).
fn choose_all(g: &TextGenerator, active: Vec<Active>) -> Vec<Active> {
    let mut going = Vec::with_capacity(active.len());
    for mut a in active {
        let id = match a.seq.choose() {
            Ok(id) => id,
            Err(e) => {
                a.fail(e);
                continue;
            }
        };
        let keep_going = (a.sink)(GenerationEvent::Token(id));
        match g.stop_after(&a.seq, id, keep_going) {
            Some(stop) => {
                let _ = (a.sink)(GenerationEvent::Finished(a.seq.finish(stop)));
            }
            None => going.push(a),
        }
    }
    going
}

/// One decode step for every sequence: those that need a recompute alone, all the others in
/// one batched step. When the batched step fails, each of its sequences is retried alone, so
/// only the ones that fail by themselves are retired (with `Failed`).
fn step_all(g: &TextGenerator, active: Vec<Active>) -> Vec<Active> {
    let (solo, together): (Vec<Active>, Vec<Active>) =
        active.into_iter().partition(|a| g.needs_recompute(&a.seq));
    let mut going = Vec::with_capacity(solo.len() + together.len());
    let alone = |mut a: Active, going: &mut Vec<Active>| match g.advance(&mut a.seq) {
        Ok(()) => going.push(a),
        Err(e) => a.fail(e),
    };
    for a in solo {
        alone(a, &mut going);
    }
    if together.is_empty() {
        return going;
    }
    let mut together = together;
    let before: Vec<usize> = together.iter().map(|a| a.seq.cached()).collect();
    let batched = {
        let mut seqs: Vec<&mut Sequence> = together.iter_mut().map(|a| &mut *a.seq).collect();
        g.advance_batch(&mut seqs)
    };
    match batched {
        Ok(()) => going.extend(together),
        Err(e) => {
            for (a, len) in together.into_iter().zip(before) {
                if a.seq.cached() == len {
                    alone(a, &mut going);
                } else {
                    a.fail(Error::Option(format!(
                        "a batched decode step failed after this sequence's step: {e}"
                    )));
                }
            }
        }
    }
    going
}
