//! The gRPC side of `torchless serve` (`--grpc-port`): service `torchless.v1.Inference` of
//! `runtime/proto/torchless/v1/torchless.proto` (compiled by `build.rs` with protox, no
//! `protoc`), `grpc.health.v1.Health` and server reflection, on their own port.
//!
//! Every method calls the same functions as its HTTP route (`routes::embed::embed_texts`,
//! `routes::classify::{rerank_texts, classify_inputs}`, `routes::generate::{prepare,
//! stream_events}`), so both protocols share the models' queues, limits and metrics. Errors are
//! [`ApiError`]s turned into statuses by [`status`]; the API key, the timeout and the request
//! counting are done in one place for every method.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status};

use super::error::{ApiError, ServeError};
use super::models::AppState;
use super::routes::classify::{classify_inputs, rerank_texts, ClassifyArgs, ImageData};
use super::routes::embed::embed_texts;
use super::routes::generate::{prepare, stream_events, GenRequest, Kind, StreamEvent};
use super::routes::{same, with_timeout, InFlight};

/// The messages, the server trait and a client, generated from the .proto at build time.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("torchless.v1");

    /// The encoded `FileDescriptorSet` of the .proto (what reflection serves).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/torchless_descriptor.bin"));
}

use proto::inference_server::{Inference, InferenceServer};

/// The full name of the service, as in `grpc:/torchless.v1.Inference/Embed`.
pub const SERVICE: &str = "torchless.v1.Inference";

/// The status for an error: 400 → INVALID_ARGUMENT, 401 → UNAUTHENTICATED, 404 → NOT_FOUND,
/// 413 and 429 → RESOURCE_EXHAUSTED, 503 → UNAVAILABLE, 504 → DEADLINE_EXCEEDED, anything
/// else INTERNAL; a retry hint travels as `retry-after` (seconds) metadata.
pub fn status(e: ApiError) -> Status {
    let mut s = Status::new(code(&e), e.message);
    if let Some(secs) = e.retry_after {
        s.metadata_mut()
            .insert("retry-after", MetadataValue::from(secs));
    }
    s
}

fn code(e: &ApiError) -> Code {
    match e.status.as_u16() {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        404 => Code::NotFound,
        413 | 429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => Code::Internal,
    }
}

/// `torchless.v1.Inference` over the server's [`AppState`].
pub struct InferenceService {
    state: Arc<AppState>,
}

impl InferenceService {
    /// Checks the API key, runs `work` (within `--request-timeout` when `timed`; a stream
    /// keeps its own deadline) and counts the call in `/metrics` as
    /// `route="grpc:/torchless.v1.Inference/METHOD"` with the gRPC code as its status.
    async fn call<T>(
        &self,
        method: &str,
        metadata: &MetadataMap,
        timed: bool,
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<Response<T>, Status> {
        let start = Instant::now();
        let in_flight = InFlight::new(&self.state);
        let result = match self.authorize(metadata) {
            Err(e) => Err(e),
            Ok(()) if timed => with_timeout(self.state.limits.request_timeout, work).await,
            Ok(()) => work.await,
        };
        drop(in_flight);
        let c = match &result {
            Ok(_) => Code::Ok,
            Err(e) => code(e),
        };
        self.state.metrics.request(
            &format!("grpc:/{SERVICE}/{method}"),
            c as u16,
            start.elapsed().as_secs_f64(),
        );
        result.map(Response::new).map_err(status)
    }

    /// `authorization: Bearer KEY` metadata, when the server has a key.
    fn authorize(&self, metadata: &MetadataMap) -> Result<(), ApiError> {
        let Some(key) = &self.state.api_key else {
            return Ok(());
        };
        let given = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given.is_some_and(|g| same(g.as_bytes(), key.as_bytes())) {
            Ok(())
        } else {
            Err(ApiError {
                message: "missing or wrong API key: send `authorization: Bearer <key>` metadata"
                    .into(),
                ..ApiError::unauthorized()
            })
        }
    }

    /// A streamed generation: checked and queued as HTTP's, its events mapped to messages.
    async fn generate(
        &self,
        method: &str,
        metadata: &MetadataMap,
        req: GenRequest,
        kind: Kind,
    ) -> Result<Response<GenStream>, Status> {
        self.call(method, metadata, false, async {
            let prepared = prepare(&self.state, req, kind)?;
            let events = stream_events(Arc::clone(&self.state), prepared)?;
            let stream = futures_util::stream::unfold(events, |mut rx| async move {
                rx.recv().await.map(|e| (e, rx))
            })
            .map(|ev| match ev {
                StreamEvent::Delta { text, ids } => Ok(proto::GenerateChunk {
                    text,
                    token_ids: ids,
                    finish_reason: None,
                    usage: None,
                }),
                StreamEvent::Finish {
                    reason,
                    prompt_tokens,
                    completion_tokens,
                } => Ok(proto::GenerateChunk {
                    text: String::new(),
                    token_ids: Vec::new(),
                    finish_reason: Some(reason.to_string()),
                    usage: Some(proto::Usage {
                        prompt_tokens: count(prompt_tokens),
                        completion_tokens: count(completion_tokens),
                        total_tokens: count(prompt_tokens + completion_tokens),
                    }),
                }),
                StreamEvent::Error(e) => Err(status(e)),
            });
            Ok(stream.boxed())
        })
        .await
    }
}

/// The stream of a generation.
type GenStream = BoxStream<'static, Result<proto::GenerateChunk, Status>>;

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// An empty `model` means "the only one that fits", as a missing `model` over HTTP.
fn model_name(m: &str) -> Option<&str> {
    (!m.is_empty()).then_some(m)
}

fn stops(stop: Vec<String>) -> Option<serde_json::Value> {
    (!stop.is_empty()).then(|| serde_json::json!(stop))
}

#[tonic::async_trait]
impl Inference for InferenceService {
    async fn embed(
        &self,
        request: Request<proto::EmbedRequest>,
    ) -> Result<Response<proto::EmbedResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        self.call("Embed", &metadata, true, async {
            if req.inputs.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid field `inputs`: the array is empty",
                ));
            }
            let dims = req.dimensions.map(|d| d as usize);
            let e = embed_texts(
                &self.state,
                model_name(&req.model),
                req.inputs,
                req.normalize,
                dims,
            )
            .await?;
            Ok(proto::EmbedResponse {
                model: e.model.to_string(),
                prompt_tokens: count(e.tokens.iter().sum()),
                embeddings: e
                    .rows
                    .into_iter()
                    .zip(e.tokens)
                    .map(|(values, tokens)| proto::Embedding {
                        values,
                        tokens: count(tokens),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn rerank(
        &self,
        request: Request<proto::RerankRequest>,
    ) -> Result<Response<proto::RerankResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        self.call("Rerank", &metadata, true, async {
            let (model, scored) =
                rerank_texts(&self.state, model_name(&req.model), &req.query, &req.texts).await?;
            Ok(proto::RerankResponse {
                model: model.to_string(),
                results: scored
                    .into_iter()
                    .map(|(index, score)| proto::RerankResult {
                        index: count(index),
                        score,
                        text: req.return_text.then(|| req.texts[index].clone()),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn classify(
        &self,
        request: Request<proto::ClassifyRequest>,
    ) -> Result<Response<proto::ClassifyResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        self.call("Classify", &metadata, true, async {
            let images = req
                .images
                .into_iter()
                .enumerate()
                .map(|(i, img)| match img.kind {
                    Some(proto::image::Kind::Encoded(bytes)) => Ok(ImageData::Encoded(bytes)),
                    Some(proto::image::Kind::Tensor(t)) => Ok(ImageData::Tensor {
                        data: t.data,
                        shape: t.shape.into_iter().map(|d| d as usize).collect(),
                    }),
                    None => Err(ApiError::bad_request(format!(
                        "invalid field `images[{i}]`: set `encoded` or `tensor`"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let args = ClassifyArgs {
                model: model_name(&req.model).map(str::to_string),
                texts: (!req.texts.is_empty()).then_some(req.texts),
                images: (!images.is_empty()).then_some(images),
                top_k: req.top_k.map(|k| k as usize),
                fields: ("texts", "images"),
            };
            let (model, results) = classify_inputs(&self.state, args).await?;
            Ok(proto::ClassifyResponse {
                model: model.to_string(),
                results: results
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| proto::Classification {
                        index: count(i),
                        labels: c
                            .labels
                            .into_iter()
                            .map(|l| proto::Label {
                                index: count(l.index),
                                label: l.label,
                                score: l.score,
                            })
                            .collect(),
                        logits: c.logits,
                    })
                    .collect(),
            })
        })
        .await
    }

    type CompleteStream = GenStream;

    async fn complete(
        &self,
        request: Request<proto::CompleteRequest>,
    ) -> Result<Response<GenStream>, Status> {
        let (metadata, _, req) = request.into_parts();
        let prompt = match (req.prompt.is_empty(), req.prompt_ids.is_empty()) {
            (false, true) => Some(serde_json::Value::String(req.prompt)),
            (true, false) => Some(serde_json::json!(req.prompt_ids)),
            // Left to `prepare`'s "missing field" / to the check below.
            (true, true) => None,
            (false, false) => {
                let e = ApiError::bad_request(
                    "invalid field `prompt_ids`: give `prompt` or `prompt_ids`, not both",
                );
                return self
                    .call("Complete", &metadata, false, async { Err(e) })
                    .await;
            }
        };
        let gen = GenRequest {
            model: req.model,
            prompt,
            max_tokens: req.max_tokens.map(|n| n as usize),
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k.map(|k| k as usize),
            seed: req.seed,
            stop: stops(req.stop),
            ..GenRequest::default()
        };
        self.generate("Complete", &metadata, gen, Kind::Completion)
            .await
    }

    type ChatCompleteStream = GenStream;

    async fn chat_complete(
        &self,
        request: Request<proto::ChatCompleteRequest>,
    ) -> Result<Response<GenStream>, Status> {
        let (metadata, _, req) = request.into_parts();
        let gen = GenRequest {
            model: req.model,
            messages: Some(
                req.messages
                    .into_iter()
                    .map(|m| crate::chat::ChatMessage {
                        role: m.role,
                        content: m.content,
                    })
                    .collect(),
            ),
            max_tokens: req.max_tokens.map(|n| n as usize),
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k.map(|k| k as usize),
            seed: req.seed,
            stop: stops(req.stop),
            ..GenRequest::default()
        };
        self.generate("ChatComplete", &metadata, gen, Kind::Chat)
            .await
    }

    async fn list_models(
        &self,
        request: Request<proto::ListModelsRequest>,
    ) -> Result<Response<proto::ListModelsResponse>, Status> {
        let (metadata, _, _) = request.into_parts();
        self.call("ListModels", &metadata, false, async {
            Ok(proto::ListModelsResponse {
                models: self
                    .state
                    .models
                    .values()
                    .map(|m| proto::ModelInfo {
                        name: m.name.clone(),
                        task: serde_json::to_value(m.task)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        ready: m.loaded.get().is_some(),
                    })
                    .collect(),
            })
        })
        .await
    }
}

/// Serves `torchless.v1.Inference`, health and reflection on `listener` until `stop` resolves,
/// then drains as tonic's graceful shutdown does (in-flight calls and streams finish). Health
/// is NOT_SERVING until `loaded` is notified (every model loaded) and again from `stop` on.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    loaded: Arc<Notify>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    use tonic_health::ServingStatus;
    let io = |context: &str, cause: String| ServeError::Io {
        context: context.to_string(),
        cause: std::io::Error::other(cause),
    };
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status(SERVICE, ServingStatus::NotServing)
        .await;
    let watcher = reporter.clone();
    let state2 = Arc::clone(&state);
    let readiness = tokio::spawn(async move {
        loaded.notified().await;
        if !state2.is_draining() {
            watcher.set_service_status("", ServingStatus::Serving).await;
            watcher
                .set_service_status(SERVICE, ServingStatus::Serving)
                .await;
        }
    });
    let reflection = |b: tonic_reflection::server::Builder<'static>| {
        b.register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection(tonic_reflection::server::Builder::configure())
        .build_v1()
        .map_err(|e| io("cannot build gRPC reflection", e.to_string()))?;
    let reflection_v1alpha = reflection(tonic_reflection::server::Builder::configure())
        .build_v1alpha()
        .map_err(|e| io("cannot build gRPC reflection", e.to_string()))?;
    let inference = InferenceServer::new(InferenceService {
        state: Arc::clone(&state),
    })
    .max_decoding_message_size(state.limits.max_body_bytes)
    .max_encoding_message_size(usize::MAX);
    let shutdown = async move {
        stop.await;
        readiness.abort();
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        reporter
            .set_service_status(SERVICE, ServingStatus::NotServing)
            .await;
    };
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(inference)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
        .map_err(|e| io("the gRPC server failed", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::health_check_response::ServingStatus as Health;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    #[test]
    fn errors_map_to_their_status_codes() {
        let busy = status(ApiError::busy("m", 3));
        assert_eq!(busy.code(), Code::ResourceExhausted);
        assert_eq!(busy.metadata().get("retry-after").unwrap(), "1");
        assert_eq!(
            status(ApiError::bad_request("invalid field `x`")).code(),
            Code::InvalidArgument
        );
        assert_eq!(status(ApiError::not_found("m")).code(), Code::NotFound);
        assert_eq!(
            status(ApiError::unauthorized()).code(),
            Code::Unauthenticated
        );
        assert_eq!(
            status(ApiError::timeout(std::time::Duration::from_secs(1))).code(),
            Code::DeadlineExceeded
        );
        assert_eq!(status(ApiError::unavailable("x")).code(), Code::Unavailable);
        assert_eq!(status(ApiError::internal("x")).code(), Code::Internal);
    }

    /// Health is NOT_SERVING and calls UNAVAILABLE while the model loads; SERVING after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_turns_serving_once_every_model_is_loaded() {
        let config = crate::serve::models::tests::config(&[("m", "bert/tiny-st")]);
        let state = Arc::new(AppState::new(&config).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let loaded = Arc::new(Notify::new());
        let stop = Arc::new(Notify::new());
        let stop2 = Arc::clone(&stop);
        let server = tokio::spawn(serve(
            listener,
            Arc::clone(&state),
            Arc::clone(&loaded),
            async move { stop2.notified().await },
        ));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = HealthClient::new(channel.clone());
        for service in ["", SERVICE] {
            let s = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
            assert_eq!(s, Health::NotServing as i32, "{service:?}");
        }
        let mut client = proto::inference_client::InferenceClient::new(channel);
        let req = proto::EmbedRequest {
            model: "m".into(),
            inputs: vec!["x".into()],
            normalize: None,
            dimensions: None,
        };
        let e = client.embed(req.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::Unavailable);
        assert_eq!(e.metadata().get("retry-after").unwrap(), "1");

        let slot = Arc::clone(&state.models["m"]);
        crate::serve::models::load(slot, config.load.clone(), state.limits)
            .await
            .unwrap();
        loaded.notify_one();
        let mut serving = false;
        for _ in 0..200 {
            let s = health
                .check(HealthCheckRequest {
                    service: SERVICE.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
            if s == Health::Serving as i32 {
                serving = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(serving, "health never turned SERVING");
        let rows = client.embed(req).await.unwrap().into_inner();
        assert_eq!(rows.embeddings.len(), 1);

        stop.notify_one();
        drop(client);
        drop(health);
        let done = tokio::time::timeout(std::time::Duration::from_secs(30), server).await;
        assert!(matches!(done, Ok(Ok(Ok(())))), "the server did not stop");
    }
}
