//! The pickle machine reads Python's own pickles (protocols 0–5) to the same values, with
//! shared references kept shared.

use serde_json::{json, Value as Json};
use torchless_convert::pickle::{self, Heap, NoPersistentIds, Node, Options, Value};

use crate::common::fixture;

/// Our value in the fixture's JSON form (bytearray reads as bytes, frozenset as set).
fn to_json(heap: &Heap, v: &Value) -> Json {
    let seq = |items: &[Value]| items.iter().map(|i| to_json(heap, i)).collect::<Vec<_>>();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    match v {
        Value::None => json!({"type": "none"}),
        Value::Bool(b) => json!({"type": "bool", "value": b}),
        Value::Int(i) => json!({"type": "int", "value": i}),
        Value::BigInt(s) => json!({"type": "bigint", "dec": s.to_string()}),
        Value::Float(f) => json!({"type": "float", "bits": format!("{:016x}", f.to_bits())}),
        Value::Str(s) => json!({"type": "str", "value": s.to_string()}),
        Value::Bytes(b) => json!({"type": "bytes", "hex": hex(b)}),
        Value::Global(g) => json!({"type": "global", "value": g.to_string()}),
        Value::Ref(id) => match heap.get(*id) {
            Node::List(items) => json!({"type": "list", "items": seq(items)}),
            Node::Tuple(items) => json!({"type": "tuple", "items": seq(items)}),
            Node::Set(items) => {
                let mut v = seq(items);
                v.sort_by_key(|a| a.to_string());
                json!({"type": "set", "items": v})
            }
            Node::Dict(d) => json!({"type": "dict", "items": d
                .items
                .iter()
                .map(|(k, v)| json!([to_json(heap, k), to_json(heap, v)]))
                .collect::<Vec<_>>()}),
            other => json!({"type": format!("{other:?}")}),
        },
    }
}

/// The fixture's form, normalised the same way.
fn normalise(j: &Json) -> Json {
    match j {
        Json::Object(m) => {
            let mut m = m.clone();
            match m.get("type").and_then(Json::as_str) {
                Some("bytearray") => {
                    m.insert("type".into(), "bytes".into());
                }
                Some("frozenset") => {
                    m.insert("type".into(), "set".into());
                }
                Some("float") => {
                    m.remove("repr");
                }
                _ => {}
            }
            if let Some(items) = m.get("items").cloned() {
                let mut v: Vec<Json> = items.as_array().unwrap().iter().map(normalise).collect();
                if m["type"] == "set" {
                    v.sort_by_key(|a| a.to_string());
                }
                m.insert("items".into(), Json::Array(v));
            }
            Json::Object(m)
        }
        Json::Array(a) => Json::Array(a.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

#[test]
fn python_pickles_of_every_protocol_read_back_equal() {
    let expected: Json = serde_json::from_str(
        &std::fs::read_to_string(fixture("convert/pickles/expected.json")).unwrap(),
    )
    .unwrap();
    let want = normalise(&expected["object"]);
    let files = expected["files"].as_array().unwrap();
    assert_eq!(files.len(), 6, "protocols 0 to 5");
    for f in files {
        let name = f.as_str().unwrap();
        let bytes = std::fs::read(fixture(&format!("convert/pickles/{name}"))).unwrap();
        let mut heap = Heap::new(1 << 16);
        let (root, end) = pickle::unpickle(
            &bytes,
            0,
            name,
            &mut heap,
            &mut NoPersistentIds,
            &Options::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(end, bytes.len(), "{name}: STOP not at the end");
        assert_eq!(to_json(&heap, &root), want, "{name}");
        let Some(Node::Dict(d)) = heap.node(&root) else {
            panic!("{name}: root is not a dict")
        };
        for pair in expected["same_object"].as_array().unwrap() {
            let (a, b) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
            match (d.get_str(a), d.get_str(b)) {
                (Some(Value::Ref(x)), Some(Value::Ref(y))) => {
                    assert_eq!(x, y, "{name}: {a} and {b} not shared")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
