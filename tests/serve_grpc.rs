//! `torchless serve --grpc-port 0` as a gRPC client sees it: the real binary on loopback, a
//! tonic client generated from the same .proto (`torchless::serve::grpc::proto`), the committed
//! fixtures. Values are checked against the HTTP routes of the same server and the recorded
//! PyTorch outputs.

use std::time::{Duration, Instant};

use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Request};
use torchless::serve::grpc::proto;
use torchless::serve::grpc::proto::inference_client::InferenceClient;

use crate::common::{fixture, floats, ints, rel_err};
use crate::serve::{expected, gpt2_case, max_abs, model_arg, sentences, Server};

async fn channel(server: &Server) -> Channel {
    let addr = server.grpc.expect("started with --grpc-port");
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .connect()
        .await
        .unwrap()
}

async fn client(server: &Server) -> InferenceClient<Channel> {
    InferenceClient::new(channel(server).await)
}

/// `grpc.health.v1` status of `service` ("" is the whole server).
async fn health(server: &Server, service: &str) -> i32 {
    use tonic_health::pb::health_client::HealthClient;
    let mut h = HealthClient::new(channel(server).await);
    h.check(tonic_health::pb::HealthCheckRequest {
        service: service.to_string(),
    })
    .await
    .unwrap()
    .into_inner()
    .status
}

/// Health turns SERVING right after `/ready` (both once every model is loaded).
async fn wait_serving(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..600 {
        if health(server, "").await
            == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        {
            return;
        }
        assert!(Instant::now() < deadline, "health never turned SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("health never turned SERVING");
}

fn embed_request(model: &str, inputs: &[String]) -> proto::EmbedRequest {
    proto::EmbedRequest {
        model: model.to_string(),
        inputs: inputs.to_vec(),
        normalize: None,
        dimensions: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_embed_rerank_classify_equal_http_and_pytorch() {
    let m = model_arg("minilm", "bert/tiny-st");
    let rr = model_arg("rr", "rerank/bert-reranker");
    let vit = model_arg("vit", "vit");
    let server = Server::start(&[
        "--model",
        &m,
        "--model",
        &rr,
        "--model",
        &vit,
        "--grpc-port",
        "0",
    ]);
    wait_serving(&server).await;
    assert_eq!(
        health(&server, "torchless.v1.Inference").await,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let mut c = client(&server).await;

    // Embeddings: the HTTP route's values, sentence-transformers' within 1e-4, token counts as
    // its attention masks.
    let texts = sentences();
    let want = expected("bert/expected.json");
    let r = c
        .embed(embed_request("minilm", &texts))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.model, "minilm");
    assert_eq!(r.embeddings.len(), texts.len());
    let http = server
        .post(
            "/v1/embeddings",
            &json!({"model": "minilm", "input": texts}),
        )
        .json();
    let mut total = 0;
    for (i, e) in r.embeddings.iter().enumerate() {
        let h = floats(&http["data"][i]["embedding"]);
        assert!(max_abs(&e.values, &h) < 1e-5, "sentence {i} vs HTTP");
        let st = floats(&want["embeddings"][i]);
        assert!(rel_err(&e.values, &st) < 1e-4, "sentence {i} vs PyTorch");
        let mask = ints(&want["batch"]["attention_mask"][i]);
        let tokens = mask.iter().filter(|&&x| x == 1).count();
        assert_eq!(e.tokens as usize, tokens, "sentence {i}");
        total += tokens;
    }
    assert_eq!(r.prompt_tokens as usize, total);
    assert_eq!(http["usage"]["prompt_tokens"], total);
    // The only encoder answers an empty `model`; normalize=true on a normalising folder is
    // the same rows, normalize=false is refused by name.
    let mut req = embed_request("", &texts[..1]);
    req.normalize = Some(true);
    let one = c.embed(req.clone()).await.unwrap().into_inner();
    assert!(max_abs(&one.embeddings[0].values, &r.embeddings[0].values) < 1e-5);
    req.normalize = Some(false);
    let e = c.embed(req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("`normalize`"), "{}", e.message());

    // Rerank: the HTTP route's order and scores, and the cross-encoder's.
    let rw = expected("rerank/expected.json");
    let docs: Vec<String> = rw["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .take_while(|p| p[0] == rw["query"])
        .map(|p| p[1].as_str().unwrap().to_string())
        .collect();
    let query = rw["query"].as_str().unwrap().to_string();
    let r = c
        .rerank(proto::RerankRequest {
            model: "rr".into(),
            query: query.clone(),
            texts: docs.clone(),
            return_text: true,
        })
        .await
        .unwrap()
        .into_inner();
    let http = server
        .post(
            "/rerank",
            &json!({"model": "rr", "query": query, "texts": docs}),
        )
        .json();
    let scores = floats(&rw["bert-reranker"]["scores"]);
    assert_eq!(r.results.len(), docs.len());
    for (g, h) in r.results.iter().zip(http.as_array().unwrap()) {
        assert_eq!(g.index as u64, h["index"].as_u64().unwrap());
        assert!((g.score - scores[g.index as usize]).abs() < 1e-4);
        assert_eq!(g.text.as_deref(), Some(docs[g.index as usize].as_str()));
    }

    // Image classification from PNG bytes and from a tensor: PyTorch's logits, HTTP's labels.
    let vw = expected("vit/expected.json");
    let png = std::fs::read(fixture("resnet/image.png")).unwrap();
    let pixels = floats(&vw["image_pixel_values"]);
    let r = c
        .classify(proto::ClassifyRequest {
            model: "vit".into(),
            texts: Vec::new(),
            images: vec![
                proto::Image {
                    kind: Some(proto::image::Kind::Encoded(png)),
                },
                proto::Image {
                    kind: Some(proto::image::Kind::Tensor(proto::Tensor {
                        data: pixels,
                        shape: vec![3, 32, 32],
                    })),
                },
            ],
            top_k: Some(2),
        })
        .await
        .unwrap()
        .into_inner();
    let wl = floats(&vw["image_logits"][0]);
    let best = (0..wl.len())
        .max_by(|&a, &b| wl[a].total_cmp(&wl[b]))
        .unwrap();
    assert_eq!(r.results.len(), 2);
    for (i, res) in r.results.iter().enumerate() {
        assert_eq!(res.index as usize, i);
        assert!(rel_err(&res.logits, &wl) < 1e-4, "image {i}");
        assert_eq!(res.labels.len(), 2);
        assert_eq!(res.labels[0].index as usize, best);
        assert_eq!(res.labels[0].label.as_deref(), vw["labels"][best].as_str());
    }
    let e = c
        .classify(proto::ClassifyRequest {
            model: "vit".into(),
            texts: Vec::new(),
            images: vec![proto::Image {
                kind: Some(proto::image::Kind::Encoded(b"not an image".to_vec())),
            }],
            top_k: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("`images[0]`"), "{}", e.message());

    // The model list, and the calls counted under their gRPC route.
    let models = c
        .list_models(proto::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["minilm", "rr", "vit"]);
    assert!(models.iter().all(|m| m.ready));
    assert_eq!(models[0].task, "embed");
    assert_eq!(
        server.metric(
            "torchless_requests_total{route=\"grpc:/torchless.v1.Inference/Embed\",status=\"0\"}"
        ),
        2.0
    );
    assert_eq!(
        server.metric(
            "torchless_requests_total{route=\"grpc:/torchless.v1.Inference/Embed\",status=\"3\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let m = model_arg("minilm", "bert/tiny-st");
    // Reflection and health need no API key.
    let server = Server::start_env(
        &["--model", &m, "--grpc-port", "0"],
        &[("TORCHLESS_API_KEY", "s3cret")],
    );
    let mut r = ServerReflectionClient::new(channel(&server).await);
    let ask = |m: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    // What `grpcurl list` and then `grpcurl describe`/a call ask.
    let requests = [
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "torchless.v1.Inference".into(),
        )),
    ];
    let mut replies = r
        .server_reflection_info(futures_util::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("not a service list: {reply:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"torchless.v1.Inference"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = reply.message_response else {
        panic!("not a file descriptor: {reply:?}");
    };
    // The encoded FileDescriptorProto names its file and the service's methods.
    let file = &files.file_descriptor_proto[0];
    for needle in [
        "torchless/v1/torchless.proto",
        "ChatComplete",
        "GenerateChunk",
    ] {
        assert!(
            file.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} not in the descriptor"
        );
    }
    wait_serving(&server).await;
}

/// The text of a streamed generation, its ids, its finish reason and usage.
async fn collect(
    mut s: tonic::Streaming<proto::GenerateChunk>,
) -> (String, Vec<u32>, String, proto::Usage) {
    let mut text = String::new();
    let mut ids = Vec::new();
    for _ in 0..10_000 {
        let Some(c) = s.message().await.unwrap() else {
            panic!("the stream ended without a finish_reason");
        };
        text.push_str(&c.text);
        ids.extend(c.token_ids);
        if let Some(reason) = c.finish_reason {
            assert!(
                s.message().await.unwrap().is_none(),
                "messages after the last"
            );
            return (
                text,
                ids,
                reason,
                c.usage.expect("usage on the last message"),
            );
        }
    }
    panic!("too many messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_completions_equal_the_http_completion() {
    let gpt2 = model_arg("gpt2", "decoders/gpt2");
    let llama = model_arg("llama", "decoders/llama");
    let server = Server::start(&["--model", &gpt2, "--model", &llama, "--grpc-port", "0"]);
    let mut c = client(&server).await;
    let (case, _) = gpt2_case();
    let new_ids = ints(&case["greedy_new_ids"]);
    let prompt = case["text"].as_str().unwrap().to_string();
    let req = proto::CompleteRequest {
        model: "gpt2".into(),
        prompt: prompt.clone(),
        prompt_ids: Vec::new(),
        max_tokens: Some(new_ids.len() as u32),
        temperature: Some(0.0),
        top_p: None,
        top_k: None,
        seed: None,
        stop: Vec::new(),
    };
    let (text, ids, reason, usage) =
        collect(c.complete(req.clone()).await.unwrap().into_inner()).await;
    let http = server
        .post(
            "/v1/completions",
            &json!({"model": "gpt2", "prompt": prompt, "max_tokens": new_ids.len(), "temperature": 0}),
        )
        .json();
    assert_eq!(text, http["choices"][0]["text"].as_str().unwrap());
    assert_eq!(text, case["greedy_text"].as_str().unwrap());
    assert_eq!(ids, new_ids);
    assert_eq!(reason, "length");
    assert_eq!(
        usage.prompt_tokens as usize,
        case["prompt_ids"].as_array().unwrap().len()
    );
    assert_eq!(usage.completion_tokens as usize, new_ids.len());
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );

    // A stop string cuts the text before it, as over HTTP.
    let full = case["greedy_text"].as_str().unwrap();
    let mut sreq = req.clone();
    sreq.stop = vec!["GG".into()];
    let (text, _, reason, _) = collect(c.complete(sreq).await.unwrap().into_inner()).await;
    assert_eq!(text, &full[..full.find("GG").unwrap()]);
    assert_eq!(reason, "stop");

    // Chat: the same deltas as the non-streamed HTTP chat completion.
    let chat = proto::ChatCompleteRequest {
        model: "llama".into(),
        messages: vec![proto::ChatMessage {
            role: "user".into(),
            content: "The quick brown fox".into(),
        }],
        max_tokens: Some(5),
        temperature: Some(0.0),
        top_p: None,
        top_k: None,
        seed: None,
        stop: Vec::new(),
    };
    let http = server.post(
        "/v1/chat/completions",
        &json!({"model": "llama", "messages": [{"role": "user", "content": "The quick brown fox"}],
                "max_tokens": 5, "temperature": 0}),
    );
    match c.chat_complete(chat).await {
        Ok(stream) => {
            assert_eq!(http.status, 200, "{}", http.text());
            let (text, ids, _, _) = collect(stream.into_inner()).await;
            let h = http.json();
            assert_eq!(
                text,
                h["choices"][0]["message"]["content"].as_str().unwrap()
            );
            assert_eq!(ids, ints(&h["choices"][0]["token_ids"]));
        }
        // A fixture without a usable template: refused over both protocols alike.
        Err(e) => {
            assert_ne!(http.status, 200);
            assert_eq!(
                http.json()["error"]["message"].as_str().unwrap(),
                e.message()
            );
        }
    }

    // Refusals before the stream starts are statuses.
    let mut bad = req.clone();
    bad.max_tokens = Some(100_000);
    let e = c.complete(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("`max_tokens`"), "{}", e.message());
    let mut both = req.clone();
    both.prompt_ids = vec![1, 2];
    let e = c.complete(both).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("`prompt_ids`"), "{}", e.message());
    let mut unknown = req;
    unknown.model = "nope".into();
    let e = c.complete(unknown).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_their_grpc_status_codes() {
    let m = model_arg("minilm", "bert/tiny-st");
    let server = Server::start(&[
        "--model",
        &m,
        "--grpc-port",
        "0",
        "--max-batch-size",
        "1",
        "--max-queue",
        "2",
        "--max-body-bytes",
        "4096",
    ]);
    let mut c = client(&server).await;
    let e = c
        .embed(embed_request("nope", &["x".into()]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("\"nope\""), "{}", e.message());
    let e = c.embed(embed_request("minilm", &[])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("`inputs`"), "{}", e.message());
    let mut req = embed_request("minilm", &["x".into()]);
    req.dimensions = Some(7);
    let e = c.embed(req).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("`dimensions`"), "{}", e.message());
    // One input per job, two jobs waiting: twelve inputs fill the queue at once.
    let many: Vec<String> = (0..12).map(|i| format!("sentence {i}")).collect();
    let e = c.embed(embed_request("minilm", &many)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("--max-queue"), "{}", e.message());
    assert_eq!(
        e.metadata()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // A message over --max-body-bytes is refused by tonic's decoder.
    let e = c
        .embed(embed_request("minilm", &["x".repeat(10_000)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange);
    // The queue drains: a small request goes through.
    let ok = c.embed(embed_request("minilm", &["ok".into()])).await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_timeout_is_deadline_exceeded_and_never_runs() {
    let m = model_arg("minilm", "bert/tiny-st");
    // A batch waits 3 s for company; the call gives up after 0.2 s.
    let server = Server::start(&[
        "--model",
        &m,
        "--grpc-port",
        "0",
        "--max-wait-ms",
        "3000",
        "--request-timeout",
        "0.2",
    ]);
    let mut c = client(&server).await;
    let e = c
        .embed(embed_request("minilm", &["too slow".into()]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded);
    assert!(e.message().contains("--request-timeout"), "{}", e.message());
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("torchless_cancelled_total{model=\"minilm\"}") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the timed-out call was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server.metric("torchless_batch_size_count{model=\"minilm\"}"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_guards_inference_but_not_health() {
    let m = model_arg("minilm", "bert/tiny-st");
    let server = Server::start_env(
        &["--model", &m, "--grpc-port", "0"],
        &[("TORCHLESS_API_KEY", "s3cret")],
    );
    let mut c = client(&server).await;
    let e = c
        .embed(embed_request("minilm", &["x".into()]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut wrong = Request::new(embed_request("minilm", &["x".into()]));
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer wrong".parse().unwrap());
    assert_eq!(
        c.embed(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let e = c
        .list_models(proto::ListModelsRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut right = Request::new(embed_request("minilm", &["x".into()]));
    right
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    let ok = c.embed(right).await;
    assert!(ok.is_ok(), "{ok:?}");
    wait_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_health_not_serving_and_lets_the_call_in_flight_finish() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let m = model_arg("minilm", "bert/tiny-st");
    // The batch waits 1.5 s, so the call is still in flight when the signal arrives.
    let mut server = Server::start(&["--model", &m, "--grpc-port", "0", "--max-wait-ms", "1500"]);
    wait_serving(&server).await;
    let mut h = HealthClient::new(channel(&server).await);
    let mut watch = h
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap().status;
    assert_eq!(first, ServingStatus::Serving as i32);
    let mut c = client(&server).await;
    let call = tokio::spawn(async move {
        c.embed(embed_request("minilm", &["Hello world".into()]))
            .await
    });
    // The /metrics request counts itself: 2 means the gRPC call is in flight too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("torchless_requests_in_flight") < 2.0 {
        assert!(Instant::now() < deadline, "the call never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) },
        0
    );
    let next = tokio::time::timeout(Duration::from_secs(30), watch.message())
        .await
        .expect("no health update after SIGTERM")
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(next, ServingStatus::NotServing as i32);
    // A watch never ends by itself: the client leaves so the drain can finish.
    drop(watch);
    drop(h);
    let r = call.await.unwrap().unwrap().into_inner();
    let lib = crate::serve::library_embeddings(&["Hello world"]);
    assert!(max_abs(&r.embeddings[0].values, &lib[0]) < 1e-5);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
}
