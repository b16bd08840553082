//! The continuous-batching queue (`torchless::batching`) on the committed decoder fixtures:
//! many sequences generated together give exactly the ids of one `generate` call each (greedy
//! and seeded sampling, sequences joining and leaving between steps, Phi-3's recompute past
//! its original length); cancellation, refusals and failures touch only their own sequence.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::DType;
use torchless::batching::{BatchLimits, EventSink, GenerationEvent, GenerationQueue};
use torchless::{
    DeviceSpec, Error, GenerateOptions, Generation, LoadOptions, SamplerConfig, Sampling,
    StopReason, TextGenerator,
};

use crate::common::{fixture, rel_err};

fn load(kind: &str) -> Arc<TextGenerator> {
    let opts = LoadOptions {
        device: DeviceSpec::Cpu,
        dtype: DType::F32,
        quantize: None,
    };
    let dir = fixture(&format!("decoders/{kind}"));
    Arc::new(TextGenerator::load(&dir, &opts).unwrap_or_else(|e| panic!("{kind}: {e}")))
}

/// How one request ended: the streamed tokens, then the generation or the error's message.
struct Outcome {
    tokens: Vec<u32>,
    end: std::result::Result<Generation, String>,
}

/// A sink tagging each event with `tag`; it returns `false` once `stop_after` tokens were sent.
fn sink(tag: usize, tx: Sender<(usize, GenerationEvent)>, stop_after: Option<usize>) -> EventSink {
    let mut sent = 0;
    Box::new(move |ev| {
        if matches!(ev, GenerationEvent::Token(_)) {
            sent += 1;
        }
        let _ = tx.send((tag, ev));
        stop_after.is_none_or(|n| sent < n)
    })
}

/// Waits (at most a minute) for `n` requests to end; their outcomes by tag.
fn collect(rx: &Receiver<(usize, GenerationEvent)>, n: usize) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = (0..n)
        .map(|_| Outcome {
            tokens: Vec::new(),
            end: Err("never ended".into()),
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ended = 0;
    while ended < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let (tag, ev) = rx
            .recv_timeout(left)
            .expect("every request ends within a minute");
        match ev {
            GenerationEvent::Token(t) => out[tag].tokens.push(t),
            GenerationEvent::Finished(g) => {
                out[tag].end = Ok(g);
                ended += 1;
            }
            GenerationEvent::Failed(e) => {
                out[tag].end = Err(e.to_string());
                ended += 1;
            }
        }
    }
    out
}

fn options(max_new_tokens: usize, seed: Option<u64>, stop_at_eos: bool) -> GenerateOptions {
    let sampler = match seed {
        None => SamplerConfig::default(),
        Some(seed) => SamplerConfig {
            sampling: Sampling::Sample {
                temperature: 1.3,
                top_k: Some(40),
                top_p: Some(0.95),
                seed,
            },
            repetition_penalty: 1.1,
        },
    };
    GenerateOptions {
        max_new_tokens,
        sampler,
        stop_at_eos,
    }
}

/// Submits every request at once (one thread each) to a queue of `limits` and checks each outcome against a
/// `generate` call of its own.
fn same_as_one_at_a_time(
    kind: &str,
    requests: &[(Vec<u32>, GenerateOptions)],
    limits: BatchLimits,
) {
    let g = load(kind);
    let q = GenerationQueue::new(Arc::clone(&g), limits);
    let (tx, rx) = channel();
    // Each request from its own thread, all at once.
    std::thread::scope(|s| {
        for (i, (prompt, opts)) in requests.iter().enumerate() {
            let (q, tx) = (&q, tx.clone());
            s.spawn(move || {
                q.submit(prompt.clone(), opts.clone(), sink(i, tx, None))
                    .unwrap()
            });
        }
    });
    let got = collect(&rx, requests.len());
    for (i, ((prompt, opts), o)) in requests.iter().zip(got).enumerate() {
        let want = g.generate(prompt, opts, |_| true).unwrap();
        let end = o
            .end
            .unwrap_or_else(|e| panic!("{kind} request {i} failed: {e}"));
        assert_eq!(end.new_ids, want.new_ids, "{kind} request {i}");
        assert_eq!(
            o.tokens, want.new_ids,
            "{kind} request {i}: streamed tokens"
        );
        assert_eq!(end.stop, want.stop, "{kind} request {i}");
        assert!(rel_err(&end.first_step_logits, &want.first_step_logits) < 1e-6);
    }
    q.shutdown();
    assert_eq!((q.waiting(), q.running()), (0, 0));
}

/// Prompts of different lengths, lengths and samplers: greedy and seeded, with and without
/// end-of-sequence stops, more requests than the batch holds.
fn mixed_requests(n: usize, vocab: u32) -> Vec<(Vec<u32>, GenerateOptions)> {
    (0..n)
        .map(|i| {
            let len = 1 + (i * 5) % 11;
            let prompt: Vec<u32> = (0..len)
                .map(|j| ((i * 31 + j * 17 + 3) as u32) % vocab)
                .collect();
            let seed = (i % 3 != 0).then_some(i as u64 + 7);
            (prompt, options(3 + (i * 7) % 19, seed, i % 2 == 0))
        })
        .collect()
}

#[test]
fn concurrent_requests_give_the_ids_of_one_generate_each() {
    for kind in ["gpt2", "llama", "qwen3"] {
        let vocab = load(kind).model().shape().vocab_size as u32;
        let limits = BatchLimits {
            max_batch_size: 4,
            max_queue: 64,
        };
        same_as_one_at_a_time(kind, &mixed_requests(10, vocab), limits);
    }
}

#[test]
fn sequences_that_need_a_recompute_step_alone_and_match() {
    // Phi-3's fixture computes every token again once a sequence passes 32 positions
    // (longrope); these sequences cross it at different steps while others decode together.
    let requests: Vec<(Vec<u32>, GenerateOptions)> = [(28, None), (30, Some(3)), (5, None)]
        .iter()
        .map(|&(len, seed)| {
            let prompt = (0..len).map(|j| (j * 13 + 5) % 384).collect();
            (prompt, options(8, seed, false))
        })
        .collect();
    let limits = BatchLimits {
        max_batch_size: 8,
        max_queue: 8,
    };
    same_as_one_at_a_time("phi3", &requests, limits);
}

#[test]
fn a_sink_that_returns_false_stops_only_its_own_sequence() {
    let g = load("gpt2");
    let q = GenerationQueue::new(Arc::clone(&g), BatchLimits::default());
    let (tx, rx) = channel();
    let opts = options(20, None, false);
    let prompts = [vec![5, 6, 7], vec![8], vec![9, 10, 11, 12]];
    for (i, p) in prompts.iter().enumerate() {
        let stop_after = (i == 1).then_some(3);
        q.submit(p.clone(), opts.clone(), sink(i, tx.clone(), stop_after))
            .unwrap();
    }
    let got = collect(&rx, prompts.len());
    for (i, (p, o)) in prompts.iter().zip(got).enumerate() {
        let end = o.end.unwrap();
        let want = g.generate(p, &opts, |_| true).unwrap();
        if i == 1 {
            assert_eq!(end.stop, StopReason::Callback);
            assert_eq!(end.new_ids, want.new_ids[..3]);
        } else {
            assert_eq!(end.stop, StopReason::MaxTokens);
            assert_eq!(end.new_ids, want.new_ids);
        }
        assert_eq!(o.tokens, end.new_ids);
    }
}

#[test]
fn bad_requests_fail_alone() {
    let g = load("gpt2");
    let (vocab, positions) = (
        g.model().shape().vocab_size as u32,
        g.model().shape().max_positions,
    );
    let q = GenerationQueue::new(Arc::clone(&g), BatchLimits::default());
    let (tx, rx) = channel();
    let opts = options(6, None, false);
    let prompts = [
        vec![1, 2, 3],
        vec![4, vocab],
        vec![7; positions + 1],
        Vec::new(),
        vec![9, 8],
    ];
    for (i, p) in prompts.iter().enumerate() {
        q.submit(p.clone(), opts.clone(), sink(i, tx.clone(), None))
            .unwrap();
    }
    let got = collect(&rx, prompts.len());
    let message = |o: &Outcome| o.end.as_ref().err().cloned().unwrap_or_default();
    assert!(
        message(&got[1]).contains(&format!("token id {vocab}")),
        "{}",
        message(&got[1])
    );
    assert!(
        message(&got[2]).contains("exceed the model's"),
        "{}",
        message(&got[2])
    );
    assert!(
        message(&got[3]).contains("no tokens"),
        "{}",
        message(&got[3])
    );
    for i in [0, 4] {
        let want = g.generate(&prompts[i], &opts, |_| true).unwrap();
        assert_eq!(got[i].end.as_ref().unwrap().new_ids, want.new_ids);
    }
}

#[test]
fn a_full_queue_is_busy_and_a_closed_one_is_shutting_down() {
    let g = load("gpt2");
    let q = GenerationQueue::new(
        Arc::clone(&g),
        BatchLimits {
            max_batch_size: 1,
            max_queue: 2,
        },
    );
    // The first sequence's sink holds the scheduler at its first token until released, so
    // what is submitted meanwhile waits.
    let (entered_tx, entered_rx) = channel::<()>();
    let (go_tx, go_rx) = channel::<()>();
    let (tx, rx) = channel();
    let first = {
        let tx = tx.clone();
        let mut held = false;
        Box::new(move |ev: GenerationEvent| {
            if !held {
                held = true;
                let _ = entered_tx.send(());
                let _ = go_rx.recv_timeout(Duration::from_secs(30));
            }
            let _ = tx.send((0, ev));
            true
        }) as EventSink
    };
    let opts = options(4, None, false);
    q.submit(vec![1, 2], opts.clone(), first).unwrap();
    entered_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the first sequence starts");
    assert_eq!(q.running(), 1);
    q.submit(vec![3], opts.clone(), sink(1, tx.clone(), None))
        .unwrap();
    q.submit(vec![4], opts.clone(), sink(2, tx.clone(), None))
        .unwrap();
    assert_eq!(q.waiting(), 2);
    match q.submit(vec![5], opts.clone(), sink(3, tx.clone(), None)) {
        Err(Error::Busy { waiting }) => assert_eq!(waiting, 2),
        other => panic!("expected Busy, got {:?}", other.err()),
    }
    go_tx.send(()).unwrap();
    // Shutdown finishes what was queued before it returns.
    q.shutdown();
    let got = collect(&rx, 3);
    for o in &got {
        assert_eq!(o.end.as_ref().unwrap().new_ids.len(), 4);
    }
    match q.submit(vec![6], opts, sink(4, tx, None)) {
        Err(Error::ShuttingDown) => {}
        other => panic!("expected ShuttingDown, got {:?}", other.err()),
    }
    assert_eq!((q.waiting(), q.running()), (0, 0));
}

#[test]
fn a_panicking_sink_does_not_stall_the_queue() {
    let g = load("gpt2");
    let q = GenerationQueue::new(Arc::clone(&g), BatchLimits::default());
    let (bad_tx, bad_rx) = channel::<GenerationEvent>();
    let bad: EventSink = Box::new(move |ev| {
        let _ = bad_tx.send(ev);
        panic!("a sink that panics (expected in this test)");
    });
    q.submit(vec![1, 2, 3], options(5, None, false), bad)
        .unwrap();
    // Its first token arrives, then its sink is dropped with the step that panicked.
    assert!(matches!(
        bad_rx.recv_timeout(Duration::from_secs(60)),
        Ok(GenerationEvent::Token(_))
    ));
    assert!(bad_rx.recv_timeout(Duration::from_secs(60)).is_err());
    // The queue still serves.
    let (tx, rx) = channel();
    let opts = options(5, None, false);
    q.submit(vec![4, 5], opts.clone(), sink(0, tx, None))
        .unwrap();
    let got = collect(&rx, 1);
    let want = g.generate(&[4, 5], &opts, |_| true).unwrap();
    assert_eq!(got[0].end.as_ref().unwrap().new_ids, want.new_ids);
    q.shutdown();
    assert_eq!((q.waiting(), q.running()), (0, 0));
}
