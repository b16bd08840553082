//! `POST /v1/run`: a `torch.export` program (`--model NAME=PROGRAM.pt2`) on typed tensors.
//!
//! Request: `{"model": "m", "inputs": [{"dtype": "float32", "shape": [2, 16], "data":
//! "<base64 of the little-endian C-order bytes>"}, ...]}`, inputs in the program's order.
//! Answer: `{"model": "m", "outputs": [{"name", "dtype", "shape", "data"}, ...]}` in flattened
//! order, `data` the same way (bfloat16 as its 2-byte values). Inputs the program refuses (count,
//! dtype, a static size, a range) are a 400 with the program's message.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;

use super::{pick_model, with_timeout, wrong_task, ApiJson, Shared};
use crate::convert::DType as TorchDType;
use crate::serve::error::ApiError;
use crate::serve::models::Served;
use crate::{Task, TypedTensor};

#[derive(Deserialize)]
pub struct RunRequest {
    #[serde(default)]
    model: Option<String>,
    inputs: Vec<TensorJson>,
}

#[derive(Deserialize)]
pub struct TensorJson {
    dtype: String,
    shape: Vec<usize>,
    data: String,
}

/// The dtypes `/v1/run` carries, by their torch names.
const DTYPES: &[(&str, TorchDType)] = &[
    ("float32", TorchDType::F32),
    ("float16", TorchDType::F16),
    ("bfloat16", TorchDType::BF16),
    ("float64", TorchDType::F64),
    ("int64", TorchDType::I64),
    ("int32", TorchDType::I32),
    ("int16", TorchDType::I16),
    ("int8", TorchDType::I8),
    ("uint8", TorchDType::U8),
    ("bool", TorchDType::Bool),
];

fn dtype_of(name: &str, field: &str) -> Result<TorchDType, ApiError> {
    DTYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid field `{field}`: expected one of {}",
                DTYPES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Runs the program `name` (or the only served program) on `inputs`.
pub async fn run_program(
    state: &Shared,
    name: Option<&str>,
    inputs: Vec<TypedTensor>,
) -> Result<(String, Vec<String>, Vec<TypedTensor>), ApiError> {
    let (slot, served) = pick_model(state, name, |t| t == Task::Run)?;
    let Served::Program {
        program,
        admitted,
        running,
        capacity,
    } = served
    else {
        return Err(wrong_task(&slot.name, slot.task));
    };
    let Ok(_admitted) = admitted.clone().try_acquire_owned() else {
        return Err(ApiError::busy(&slot.name, *capacity));
    };
    let program = program.clone();
    let running = running.clone();
    let work = async move {
        let _permit = running
            .acquire_owned()
            .await
            .map_err(|_| ApiError::unavailable("the server is shutting down"))?;
        tokio::task::spawn_blocking(move || program.run_typed(&inputs))
            .await
            .map_err(|e| ApiError::internal(format!("the program panicked: {e}")))?
            .map_err(|e| match e {
                crate::Error::Graph(torchless_models::graph::GraphError::Input(m)) => {
                    ApiError::bad_request(m)
                }
                other => ApiError::internal(other.to_string()),
            })
    };
    let outputs = with_timeout(state.limits.request_timeout, work).await?;
    let names = match served {
        Served::Program { program, .. } => program.output_names(),
        _ => Vec::new(),
    };
    Ok((slot.name.clone(), names, outputs))
}

pub async fn run(State(state): State<Shared>, ApiJson(req): ApiJson<RunRequest>) -> Response {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut inputs = Vec::with_capacity(req.inputs.len());
    for (i, t) in req.inputs.iter().enumerate() {
        let dtype = match dtype_of(&t.dtype, &format!("inputs[{i}].dtype")) {
            Ok(d) => d,
            Err(e) => return e.into_response(),
        };
        let bytes = match b64.decode(t.data.as_bytes()) {
            Ok(b) => b,
            Err(e) => {
                return ApiError::bad_request(format!(
                    "invalid field `inputs[{i}].data`: not base64 ({e})"
                ))
                .into_response()
            }
        };
        match TypedTensor::from_le_bytes(dtype, &t.shape, &bytes) {
            Ok(x) => inputs.push(x),
            Err(e) => {
                return ApiError::bad_request(format!("invalid field `inputs[{i}]`: {e}"))
                    .into_response()
            }
        }
    }
    let (model, names, outputs) = match run_program(&state, req.model.as_deref(), inputs).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut out = Vec::with_capacity(outputs.len());
    for (i, t) in outputs.iter().enumerate() {
        let bytes = match t.to_le_bytes() {
            Ok(b) => b,
            Err(e) => return ApiError::internal(e.to_string()).into_response(),
        };
        out.push(serde_json::json!({
            "name": names.get(i),
            "dtype": t.dtype.torch_name(),
            "shape": t.tensor.dims(),
            "data": b64.encode(bytes),
        }));
    }
    axum::Json(serde_json::json!({ "model": model, "outputs": out })).into_response()
}
