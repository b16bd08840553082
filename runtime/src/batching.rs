//! Text generation for many callers at once: requests wait in a bounded queue and run on a
//! [`TextGenerator`] shared by every caller; each caller hears about its own sequence only,
//! through an [`EventSink`] called with every new token and once at the end.
//!
//! The queue is what `torchless serve` and `torchless worker` put in front of a decoder. A sink
//! that returns `false` (its client went away) takes its sequence out at the next step.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::generator::{GenerateOptions, Generation, TextGenerator};

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
    /// Starts the queue's threads for `generator`.
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
        let threads = (0..limits.max_batch_size)
            .map(|_| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || run_sequences(&shared))
            })
            .collect();
        GenerationQueue {
            shared,
            threads: Mutex::new(threads),
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

    /// Sequences generating now.
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

/// One of the queue's threads: takes the next waiting request and generates it, until the
/// queue is closed and empty.
fn run_sequences(shared: &Shared) {
    loop {
        let mut req = {
            let mut state = shared.lock();
            loop {
                if let Some(r) = state.waiting.pop_front() {
                    state.running += 1;
                    break r;
                }
                if state.closed {
                    return;
                }
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let sink = &mut req.sink;
        let result = shared
            .generator
            .generate(&req.prompt_ids, &req.options, |id| {
                sink(GenerationEvent::Token(id))
            });
        let _ = match result {
            Ok(g) => sink(GenerationEvent::Finished(g)),
            Err(e) => sink(GenerationEvent::Failed(e)),
        };
        shared.lock().running -= 1;
    }
}
