//! Dynamic batching for encoders and classifiers: one bounded queue and one task per model.
//! Request handlers only enqueue their inputs and await a oneshot; the task takes requests
//! until `max_batch_size` inputs or `max_batch_tokens` tokens are gathered or `max_wait` has
//! passed since the first one, runs the batch on a blocking thread, and hands each caller its
//! own rows, in order. A caller that went away (timeout, disconnect) before its batch formed is
//! skipped: its inputs never reach the model.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::config::Limits;
use super::error::ApiError;
use super::metrics::BatchMetrics;

/// Runs one batch: one output row per input, in order.
pub type RunBatch<I, O> = Arc<dyn Fn(Vec<I>) -> crate::Result<Vec<O>> + Send + Sync>;

struct Job<I, O> {
    inputs: Vec<I>,
    tokens: usize,
    reply: oneshot::Sender<Result<Vec<O>, ApiError>>,
}

/// The queue in front of one model.
pub struct Batcher<I, O> {
    name: String,
    tx: mpsc::Sender<Job<I, O>>,
    max_queue: usize,
    /// Batch sizes and times.
    pub metrics: Arc<BatchMetrics>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the batching task (on the current tokio runtime) for model `name`.
    pub fn start(name: &str, limits: Limits, run: RunBatch<I, O>) -> Self {
        let max_queue = limits.max_queue.max(1);
        let (tx, rx) = mpsc::channel(max_queue);
        let metrics = Arc::new(BatchMetrics::default());
        tokio::spawn(batch_loop(rx, limits, run, Arc::clone(&metrics)));
        Batcher {
            name: name.to_string(),
            tx,
            max_queue,
            metrics,
        }
    }

    /// Queues `inputs` (holding `tokens` tokens in all) and waits for their rows. A full queue
    /// is refused at once (429).
    pub async fn submit(&self, inputs: Vec<I>, tokens: usize) -> Result<Vec<O>, ApiError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        let job = Job {
            inputs,
            tokens,
            reply,
        };
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ApiError::busy(&self.name, self.depth()),
            mpsc::error::TrySendError::Closed(_) => {
                ApiError::unavailable("the server is shutting down")
            }
        })?;
        rx.await
            .map_err(|_| ApiError::internal("the batching task stopped"))?
    }

    /// Requests waiting.
    pub fn depth(&self) -> usize {
        self.max_queue - self.tx.capacity()
    }
}

async fn batch_loop<I: Send + 'static, O: Send + 'static>(
    mut rx: mpsc::Receiver<Job<I, O>>,
    limits: Limits,
    run: RunBatch<I, O>,
    metrics: Arc<BatchMetrics>,
) {
    let max_items = limits.max_batch_size.max(1);
    let max_tokens = limits.max_batch_tokens.max(1);
    let mut carry: Option<Job<I, O>> = None;
    loop {
        let first = match carry.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        if first.reply.is_closed() {
            metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let deadline = tokio::time::Instant::now() + limits.max_wait;
        let mut items = first.inputs.len();
        let mut tokens = first.tokens;
        let mut jobs = vec![first];
        while items < max_items && tokens < max_tokens {
            let next = match rx.try_recv() {
                Ok(j) => j,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(j)) => j,
                        _ => break,
                    }
                }
            };
            if next.reply.is_closed() {
                metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if items + next.inputs.len() > max_items || tokens + next.tokens > max_tokens {
                carry = Some(next);
                break;
            }
            items += next.inputs.len();
            tokens += next.tokens;
            jobs.push(next);
        }
        run_batch(&mut jobs, &run, &metrics).await;
    }
}

/// Runs the gathered jobs as one batch and answers each.
async fn run_batch<I: Send + 'static, O: Send + 'static>(
    jobs: &mut Vec<Job<I, O>>,
    run: &RunBatch<I, O>,
    metrics: &BatchMetrics,
) {
    // Callers that left while the batch was gathering are dropped now.
    let before = jobs.len();
    jobs.retain(|j| !j.reply.is_closed());
    metrics
        .cancelled
        .fetch_add((before - jobs.len()) as u64, Ordering::Relaxed);
    if jobs.is_empty() {
        return;
    }
    let counts: Vec<usize> = jobs.iter().map(|j| j.inputs.len()).collect();
    let inputs: Vec<I> = jobs
        .iter_mut()
        .flat_map(|j| std::mem::take(&mut j.inputs))
        .collect();
    let total = inputs.len();
    let run = Arc::clone(run);
    let start = Instant::now();
    let result = tokio::task::spawn_blocking(move || run(inputs)).await;
    metrics.size.observe(total as f64);
    metrics.seconds.observe(start.elapsed().as_secs_f64());
    let rows = match result {
        Ok(Ok(rows)) if rows.len() == total => rows,
        Ok(Ok(rows)) => {
            let e = ApiError::internal(format!(
                "the model returned {} rows for {total} inputs",
                rows.len()
            ));
            return answer_all(jobs, &e);
        }
        Ok(Err(e)) => return answer_all(jobs, &ApiError::from(e)),
        Err(e) => return answer_all(jobs, &ApiError::internal(format!("the batch failed: {e}"))),
    };
    let mut rows = rows.into_iter();
    for (job, n) in jobs.drain(..).zip(counts) {
        let mine: Vec<O> = rows.by_ref().take(n).collect();
        let _ = job.reply.send(Ok(mine));
    }
}

fn answer_all<I, O>(jobs: &mut Vec<Job<I, O>>, e: &ApiError) {
    for job in jobs.drain(..) {
        let _ = job.reply.send(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;
    use std::time::Duration;

    #[tokio::test]
    async fn each_caller_gets_its_own_rows_and_batches_respect_the_limits() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        let run: RunBatch<u32, u32> = Arc::new(move |xs: Vec<u32>| {
            seen2.lock().unwrap().push(xs.len());
            Ok(xs.iter().map(|x| x * 10).collect())
        });
        let limits = Limits {
            max_batch_size: 4,
            max_wait: Duration::from_millis(50),
            ..Limits::default()
        };
        let b = Arc::new(Batcher::start("m", limits, run));
        let mut handles = Vec::new();
        for i in 0..10u32 {
            let b = Arc::clone(&b);
            handles.push(tokio::spawn(async move {
                let inputs: Vec<u32> = (0..(i % 3 + 1)).map(|k| i * 100 + k).collect();
                let out = b.submit(inputs.clone(), inputs.len()).await.unwrap();
                assert_eq!(out, inputs.iter().map(|x| x * 10).collect::<Vec<_>>());
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let sizes = seen.lock().unwrap().clone();
        assert_eq!(
            sizes.iter().sum::<usize>(),
            (0..10).map(|i| i % 3 + 1).sum::<usize>()
        );
        assert!(sizes.iter().all(|&n| n <= 4), "{sizes:?}");
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_with_429() {
        let open = Arc::new(AtomicBool::new(false));
        let open2 = Arc::clone(&open);
        let run: RunBatch<u32, u32> = Arc::new(move |xs: Vec<u32>| {
            // Held until the test opens the gate (bounded: 20 s).
            for _ in 0..20_000 {
                if open2.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(xs)
        });
        let limits = Limits {
            max_batch_size: 1,
            max_queue: 1,
            max_wait: Duration::ZERO,
            ..Limits::default()
        };
        let b = Arc::new(Batcher::start("m", limits, run));
        // The first request is taken into a (blocked) batch, the second waits in the queue.
        let b1 = Arc::clone(&b);
        let first = tokio::spawn(async move { b1.submit(vec![1], 1).await });
        let mut second = None;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if b.depth() == 0 && second.is_none() {
                let b2 = Arc::clone(&b);
                second = Some(tokio::spawn(async move { b2.submit(vec![2], 1).await }));
            }
            if second.is_some() && b.depth() == 1 {
                break;
            }
        }
        let refused = b.submit(vec![3], 1).await.unwrap_err();
        assert_eq!(refused.status.as_u16(), 429);
        open.store(true, Ordering::Relaxed);
        assert_eq!(first.await.unwrap().unwrap(), vec![1]);
        assert_eq!(second.unwrap().await.unwrap().unwrap(), vec![2]);
    }
}
